//! The real container runtimes the runtime tests run containers on: Docker, containerd
//! (as a kubelet drives it) and Podman, with one tiny image and no registry.
//!
//! [`ensure`] starts what is not running, once per test process: `containerd` in a private
//! network namespace of its own (`unshare --net`), then `dockerd` in that same namespace
//! on that containerd, with no bridge, no iptables and no ip_forward, so that neither
//! daemon touches the host's network. Podman needs no daemon. The image is a busybox root
//! made here (`docker import`), brought to containerd's `k8s.io` namespace and to Podman
//! with `docker save`. Programs run in a container from the host, through read-only bind
//! mounts of /usr, /lib, /lib64 and of the integration binary itself (an actor).
//!
//! [`teardown`] (called once after every test ran) removes the images, stops the daemons
//! it started by pid, and removes the cgroup directories the runtimes made that did not
//! exist before.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The image, as Docker names it.
pub const IMAGE: &str = "sockdiag-it/busybox:1";
/// The same image in containerd (`docker save` writes the full reference).
pub const CTR_IMAGE: &str = "docker.io/sockdiag-it/busybox:1";
/// The same image in Podman.
pub const PODMAN_IMAGE: &str = "localhost/sockdiag-it/busybox:1";

/// Cgroup parents the runtimes create under each hierarchy and leave behind.
const CGROUP_PARENTS: [&str; 3] = ["docker", "libpod_parent", "kubepods"];

/// The runtimes' state and data directories. Those the rig's runtimes create are removed
/// at teardown: a 0700 /run/docker left behind would hide /run/docker/netns from an
/// unprivileged exporter, and dockerd leaves its own namespace bind-mounted at
/// /run/docker/netns/default.
const STATE_DIRS: [&str; 7] = [
    "/run/docker",
    "/run/containerd",
    "/run/containers",
    "/run/libpod",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/containers",
];

struct Rig {
    /// Daemons started here, in start order.
    daemons: Vec<(String, Child)>,
    /// Cgroup directories (under every hierarchy) that did not exist before.
    new_cgroups: Vec<PathBuf>,
    /// State directories that did not exist before.
    new_state: Vec<PathBuf>,
    temp: PathBuf,
}

static RIG: Mutex<Option<Rig>> = Mutex::new(None);

/// Held by the tests that break runtime state on purpose and by those that count every
/// poll error of every namespace: the exporter of one sees the other's containers.
static ERRORS: Mutex<()> = Mutex::new(());

/// Serializes the tests that make or count errors of runtime state (see [`ERRORS`]).
pub fn errors_exclusive() -> std::sync::MutexGuard<'static, ()> {
    ERRORS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `program args`, failing the test with its stderr unless it succeeds; its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e} (tests/run.sh installs it)"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Whether `program args` succeeds, its output discarded.
pub fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits until `ready`, failing the test with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the daemons and loads the image, unless done already.
pub fn ensure() {
    let mut rig = RIG.lock().unwrap_or_else(|p| p.into_inner());
    if rig.is_some() {
        return;
    }
    for program in [
        "containerd",
        "ctr",
        "dockerd",
        "docker",
        "podman",
        "busybox",
    ] {
        assert!(
            succeeds("sh", &["-c", &format!("command -v {program}")]),
            "{program} is not installed: tests/run.sh installs docker.io, containerd, podman \
             and busybox-static"
        );
    }
    let temp = std::env::temp_dir().join(format!("sockdiag-it-runtimes-{}", std::process::id()));
    std::fs::create_dir_all(&temp).expect("create rig dir");
    let new_cgroups = cgroup_dirs()
        .into_iter()
        .filter(|dir| !dir.exists())
        .collect();
    let new_state = STATE_DIRS
        .iter()
        .map(PathBuf::from)
        .filter(|dir| !dir.exists())
        .collect();
    let mut state = Rig {
        daemons: Vec::new(),
        new_cgroups,
        new_state,
        temp,
    };
    start_daemons(&mut state);
    load_image(&state.temp);
    *rig = Some(state);
}

/// The leftover-prone cgroup parents, under every hierarchy mounted here.
fn cgroup_dirs() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut hierarchies = vec![root.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(root) {
        hierarchies.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("cgroup.procs").exists()),
        );
    }
    hierarchies
        .iter()
        .filter(|h| h.join("cgroup.procs").exists())
        .flat_map(|h| CGROUP_PARENTS.iter().map(move |p| h.join(p)))
        .collect()
}

fn start_daemons(rig: &mut Rig) {
    if !succeeds("ctr", &["version"]) {
        let log = std::fs::File::create(rig.temp.join("containerd.log")).unwrap();
        let child = Command::new("unshare")
            .args(["--net", "containerd"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        // Loopback up, for what runs with the daemons' network (`--network host`).
        let netns = format!("--net=/proc/{}/ns/net", child.id());
        rig.daemons.push(("containerd".into(), child));
        wait_until("containerd answers", Duration::from_secs(60), || {
            succeeds("ctr", &["version"])
        });
        run("nsenter", &[&netns, "ip", "link", "set", "lo", "up"]);
    }
    if !succeeds("docker", &["version"]) {
        // In containerd's namespace when it is ours, else in a private one.
        let mut command = match rig.daemons.first() {
            Some((_, containerd)) => {
                let mut command = Command::new("nsenter");
                command.arg(format!("--net=/proc/{}/ns/net", containerd.id()));
                command
            }
            None => {
                let mut command = Command::new("unshare");
                command.arg("--net");
                command
            }
        };
        let log = std::fs::File::create(rig.temp.join("dockerd.log")).unwrap();
        let child = command
            .args([
                "dockerd",
                "--containerd=/run/containerd/containerd.sock",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let netns = format!("--net=/proc/{}/ns/net", child.id());
        rig.daemons.push(("dockerd".into(), child));
        wait_until("dockerd answers", Duration::from_secs(90), || {
            succeeds("docker", &["version"])
        });
        run("nsenter", &[&netns, "ip", "link", "set", "lo", "up"]);
    }
}

/// `docker import` of a root holding busybox, then the image into containerd and Podman.
fn load_image(temp: &Path) {
    let root = temp.join("rootfs");
    for dir in [
        "bin", "proc", "sys", "dev", "etc", "tmp", "usr", "lib", "lib64",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let busybox = run("sh", &["-c", "command -v busybox"]);
    std::fs::copy(busybox.trim(), root.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let root = root.to_str().unwrap();
    run(
        "sh",
        &[
            "-c",
            &format!("tar -C '{root}' -c . | docker import - {IMAGE} >/dev/null"),
        ],
    );
    run(
        "sh",
        &[
            "-c",
            &format!(
                "docker save {IMAGE} > '{root}.tar' && ctr -n k8s.io images import '{root}.tar' >/dev/null \
                 && podman load -q -i '{root}.tar' >/dev/null"
            ),
        ],
    );
}

/// The network namespace of the running dockerd (`--network host` containers join it).
pub fn dockerd_netns() -> PathBuf {
    let pid = std::fs::read_to_string("/var/run/docker.pid").expect("read /var/run/docker.pid");
    PathBuf::from(format!("/proc/{}/ns/net", pid.trim()))
}

/// Removes the images, stops the daemons started here and removes the cgroups left.
pub fn teardown() {
    let mut rig = RIG.lock().unwrap_or_else(|p| p.into_inner());
    let Some(mut state) = rig.take() else { return };
    let _ = succeeds("docker", &["rmi", "-f", IMAGE]);
    let _ = succeeds("ctr", &["-n", "k8s.io", "images", "rm", CTR_IMAGE]);
    let _ = succeeds("podman", &["rmi", "-f", PODMAN_IMAGE]);
    let started_dockerd = state.daemons.iter().any(|(name, _)| name == "dockerd");
    // dockerd before the containerd it runs on.
    while let Some((name, mut child)) = state.daemons.pop() {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if child.try_wait().ok().flatten().is_none() {
            eprintln!("teardown: {name} ignored SIGTERM, killing it");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    // dockerd leaves its own namespace bind-mounted there, even where /run/docker is not
    // the rig's to remove: it would pin the namespace.
    let default_netns = "/run/docker/netns/default";
    if started_dockerd
        && is_mount_point(default_netns)
        && !succeeds("umount", &["-l", default_netns])
    {
        eprintln!("teardown: umount {default_netns} failed");
    }
    for dir in &state.new_cgroups {
        remove_cgroup_tree(dir);
    }
    for dir in &state.new_state {
        remove_state_dir(dir);
    }
    let _ = std::fs::remove_dir_all(&state.temp);
}

/// Whether something is mounted at `path` in our mount namespace.
fn is_mount_point(path: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(path))
}

/// Unmounts what is mounted beneath `dir` (deepest first), then removes it.
fn remove_state_dir(dir: &Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<&str> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| Path::new(point).starts_with(dir))
        .collect();
    mounts.sort_by_key(|point| std::cmp::Reverse(point.len()));
    for point in mounts {
        if !succeeds("umount", &["-l", point]) {
            eprintln!("teardown: umount {point} failed");
        }
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!("teardown: rm -r {}: {e}", dir.display());
    }
}

/// Removes the empty cgroup tree at `dir`, children first.
pub fn remove_cgroup_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&entry.path());
        }
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        eprintln!("teardown: rmdir {}: {e}", dir.display());
    }
}

/// The integration binary, which containers run as an actor.
pub fn actor_binary() -> String {
    std::env::current_exe()
        .expect("own path")
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

/// The host directories a program from the host needs, as (host path, container path).
pub fn host_mounts() -> Vec<(String, &'static str)> {
    ["/usr", "/lib", "/lib64"]
        .into_iter()
        .filter_map(|dir| {
            let real = std::fs::canonicalize(dir).ok()?;
            Some((real.to_str()?.to_string(), dir))
        })
        .collect()
}
