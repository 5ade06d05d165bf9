//! Network namespace discovery, naming and entering against real namespaces, processes and
//! cgroups: an `ip netns` namespace, an `unshare --net` process, one in a cgroup named like
//! a Docker container (with its config.v2.json in a temporary data root) and one in a
//! kubepods-style cgroup. Each test builds its own [`Scene`] and tears it down, even when
//! an assertion fails (Drop).
//!
//! No traffic leaves loopback: the only socket is a listener on 127.0.0.1 inside a
//! namespace the scene created.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::thread::CapabilitySet;
use sockdiag_exporter::poll::discover::{self, Sources};
use sockdiag_exporter::snapshot::NetnsInfo;
use sockdiag_exporter::source::netns::{
    self, EnterError, HomeNetns, MissingPrivileges, VanishedBecause,
};

use crate::cgroups::{random_container_id, unique_tag, write_docker_config, Cgroups};
use crate::netns::output;

const POD_UID: &str = "8f1e2d3c-4b5a-4697-8887-a6b5c4d3e2f1";
const DOCKER_NAME: &str = "sockdiag-it-web";

/// Namespaces, processes, cgroups and files made for one test, removed on drop.
struct Scene {
    /// The `ip netns` name.
    named: String,
    named_inode: u64,
    /// `unshare --net sleep`, no bind mount, no cgroup.
    plain: Child,
    plain_inode: u64,
    /// In `system.slice/docker-<id>.scope`.
    docker: Child,
    docker_inode: u64,
    docker_id: String,
    /// In `kubepods.slice/.../cri-containerd-<id>.scope`.
    kube: Child,
    kube_inode: u64,
    kube_id: String,
    /// Dropped after `Drop::drop` has stopped the processes in them.
    cgroups: Cgroups,
    /// Holds the Docker data root.
    temp: PathBuf,
    netns_deleted: bool,
}

impl Scene {
    fn build() -> Scene {
        let tag = unique_tag();
        let temp = std::env::temp_dir().join(format!("sockdiag-it-ns-{tag}"));
        // Every field is set before anything can fail, so that Drop cleans up whatever
        // exists; the fallible steps come after.
        let mut scene = Scene {
            named: format!("sockdiag-it-{tag}"),
            named_inode: 0,
            plain: sleeper_in_new_netns(),
            plain_inode: 0,
            docker: sleeper_in_new_netns(),
            docker_inode: 0,
            docker_id: random_container_id(),
            kube: sleeper_in_new_netns(),
            kube_inode: 0,
            kube_id: random_container_id(),
            cgroups: Cgroups::default(),
            temp,
            netns_deleted: false,
        };
        output("ip", &["netns", "add", &scene.named]);
        scene.named_inode = inode_of(&Path::new("/run/netns").join(&scene.named));
        scene.plain_inode = wait_for_own_netns(&scene.plain);
        scene.docker_inode = wait_for_own_netns(&scene.docker);
        scene.kube_inode = wait_for_own_netns(&scene.kube);

        let docker_cgroup =
            Path::new("system.slice").join(format!("docker-{}.scope", scene.docker_id));
        scene.cgroups.move_into(&docker_cgroup, scene.docker.id());
        let kube_cgroup = Path::new("kubepods.slice/kubepods-burstable.slice")
            .join(format!(
                "kubepods-burstable-pod{}.slice",
                POD_UID.replace('-', "_")
            ))
            .join(format!("cri-containerd-{}.scope", scene.kube_id));
        scene.cgroups.move_into(&kube_cgroup, scene.kube.id());

        write_docker_config(&scene.docker_root(), &scene.docker_id, DOCKER_NAME);
        scene
    }

    fn docker_root(&self) -> PathBuf {
        self.temp.join("docker")
    }

    fn sources(&self) -> Sources {
        Sources {
            docker_root: self.docker_root(),
            ..Sources::default()
        }
    }

    fn named_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.named)
    }

    /// Stops the `unshare` process by pid and waits for it.
    fn stop_plain(&mut self) {
        stop(&mut self.plain);
    }

    fn delete_named(&mut self) {
        output("ip", &["netns", "delete", &self.named]);
        self.netns_deleted = true;
    }

    /// Our four namespaces in the discovery, as (label, info, enter path).
    fn found(&self, found: &discover::Namespaces) -> Vec<(String, NetnsInfo, PathBuf)> {
        [
            self.named_inode,
            self.plain_inode,
            self.docker_inode,
            self.kube_inode,
        ]
        .iter()
        .map(|inode| {
            let matching: Vec<_> = found
                .namespaces
                .iter()
                .filter(|ns| ns.id == *inode)
                .collect();
            assert_eq!(matching.len(), 1, "namespace {inode} found once");
            let ns = matching[0];
            (ns.label.clone(), ns.info.clone(), ns.enter.clone())
        })
        .collect()
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        for child in [&mut self.plain, &mut self.docker, &mut self.kube] {
            stop(child);
        }
        // Also when `ip netns add` seemed to fail: a half-made one is deleted too.
        if !self.netns_deleted {
            let _ = Command::new("ip")
                .args(["netns", "delete", &self.named])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.temp);
    }
}

pub fn stop(child: &mut Child) {
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

pub fn sleeper_in_new_netns() -> Child {
    Command::new("unshare")
        .args(["--net", "--", "sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn `unshare --net sleep` (util-linux)")
}

/// The namespace inode of `child` once `unshare` has moved it out of ours.
pub fn wait_for_own_netns(child: &Child) -> u64 {
    let ours = inode_of(Path::new("/proc/thread-self/ns/net"));
    let link = format!("/proc/{}/ns/net", child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let inode = inode_of(Path::new(&link));
        if inode != ours {
            return inode;
        }
        assert!(Instant::now() < deadline, "{link} still in our namespace");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn inode_of(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .ino()
}

/// Namespace inodes this process holds an fd on.
fn held_namespace_fds() -> Vec<u64> {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| netns::parse_link(&target.to_string_lossy()))
        .collect()
}

fn discovery_names_every_kind_of_namespace() {
    let scene = Scene::build();
    let found = discover::discover(&scene.sources(), &mut Default::default()).expect("discover");
    let none = NetnsInfo::default;
    assert_eq!(
        scene.found(&found),
        vec![
            (
                scene.named.clone(),
                NetnsInfo {
                    inode: scene.named_inode,
                    ..none()
                },
                scene.named_path(),
            ),
            (
                format!("ns-{}", scene.plain_inode),
                NetnsInfo {
                    inode: scene.plain_inode,
                    ..none()
                },
                PathBuf::from(format!("/proc/{}/ns/net", scene.plain.id())),
            ),
            (
                scene.docker_id[..12].to_string(),
                NetnsInfo {
                    inode: scene.docker_inode,
                    container_id: scene.docker_id.clone(),
                    container_name: DOCKER_NAME.into(),
                    runtime: "docker".into(),
                    ..none()
                },
                PathBuf::from(format!("/proc/{}/ns/net", scene.docker.id())),
            ),
            (
                scene.kube_id[..12].to_string(),
                NetnsInfo {
                    inode: scene.kube_inode,
                    container_id: scene.kube_id.clone(),
                    pod_uid: POD_UID.into(),
                    runtime: "containerd".into(),
                    ..none()
                },
                PathBuf::from(format!("/proc/{}/ns/net", scene.kube.id())),
            ),
        ]
    );
    // `host` is PID 1's namespace; when PID 1's link is not readable (as in a sandbox
    // whose PID 1 has more capabilities than we do), the initial namespace's if its inode
    // is the fixed one.
    let pid_1 = std::fs::read_link("/proc/1/ns/net")
        .ok()
        .and_then(|t| netns::parse_link(&t.to_string_lossy()));
    let initial = found
        .namespaces
        .iter()
        .any(|ns| ns.id == netns::INIT_NET_INODE)
        .then_some(netns::INIT_NET_INODE);
    assert_eq!(found.by_label("host").map(|ns| ns.id), pid_1.or(initial));
    assert!(found.namespaces.iter().any(|ns| ns.id == found.own));
    let mut labels: Vec<&str> = found
        .namespaces
        .iter()
        .map(|ns| ns.label.as_str())
        .collect();
    labels.sort_unstable();
    let count = labels.len();
    labels.dedup();
    assert_eq!(labels.len(), count, "labels are unique: {labels:?}");
    assert!(
        found.attribution_errors.is_empty(),
        "{:?}",
        found.attribution_errors
    );
}

fn entering_a_namespace_opens_sockets_there() {
    let scene = Scene::build();
    let home = HomeNetns::open(Path::new("/proc")).expect("open our namespace");
    // Through the bind mount: a listener there shows in `ip netns exec NAME ss`.
    let listener = home
        .run_in(&scene.named_path(), scene.named_inode, || {
            assert_eq!(
                inode_of(Path::new("/proc/thread-self/ns/net")),
                scene.named_inode
            );
            // Children start in the calling thread's namespace.
            output("ip", &["link", "set", "lo", "up"]);
            TcpListener::bind("127.0.0.1:10140").expect("bind inside the named namespace")
        })
        .expect("enter the named namespace");
    assert_eq!(
        inode_of(Path::new("/proc/thread-self/ns/net")),
        home.inode(),
        "back home"
    );
    let listening = output(
        "ip",
        &[
            "netns",
            "exec",
            &scene.named,
            "ss",
            "-Hltn",
            "sport = :10140",
        ],
    );
    assert!(
        listening.contains("127.0.0.1:10140"),
        "ss said {listening:?}"
    );
    drop(listener);

    // Through a process's link: the thread sees that namespace's devices (only `lo`).
    let plain = format!("/proc/{}/ns/net", scene.plain.id());
    let devices = home
        .run_in(Path::new(&plain), scene.plain_inode, || {
            std::fs::read_to_string("/proc/thread-self/net/dev").expect("read net/dev")
        })
        .expect("enter the unshare namespace");
    let names: Vec<&str> = devices
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(names, vec!["lo"]);
}

fn a_vanished_namespace_is_the_vanished_error() {
    let mut scene = Scene::build();
    let home = HomeNetns::open(Path::new("/proc")).expect("open our namespace");
    // A live path that now names another namespace (a reused pid).
    let docker = PathBuf::from(format!("/proc/{}/ns/net", scene.docker.id()));
    match home.enter(&docker, scene.kube_inode) {
        Err(EnterError::Vanished {
            path,
            inode,
            reason: VanishedBecause::InodeChanged { now },
        }) => assert_eq!(
            (path, inode, now),
            (docker, scene.kube_inode, scene.docker_inode)
        ),
        other => panic!("expected Vanished(InodeChanged), got {other:?}"),
    }
    // The process is gone.
    let plain = PathBuf::from(format!("/proc/{}/ns/net", scene.plain.id()));
    scene.stop_plain();
    assert_vanished(home.enter(&plain, scene.plain_inode).map(drop));
    // The bind mount is gone.
    scene.delete_named();
    assert_vanished(home.enter(&scene.named_path(), scene.named_inode).map(drop));
    // And neither is discovered any more. Not by inode alone: the kernel reuses a freed
    // namespace's inode number, and a namespace another test makes meanwhile may get it.
    let found = discover::discover(&scene.sources(), &mut Default::default()).expect("discover");
    assert!(
        found.namespaces.iter().all(|ns| ns.label != scene.named),
        "{} still discovered",
        scene.named
    );
    assert!(
        found.namespaces.iter().all(|ns| ns.enter != plain),
        "the stopped process's namespace is still discovered"
    );
    assert_eq!(
        inode_of(Path::new("/proc/thread-self/ns/net")),
        home.inode()
    );
}

fn assert_vanished(result: Result<(), EnterError>) {
    match result {
        Err(EnterError::Vanished {
            reason: VanishedBecause::NotFound,
            ..
        }) => {}
        other => panic!("expected Vanished(NotFound), got {other:?}"),
    }
}

fn no_namespace_fd_outlives_discovery_or_entering() {
    let scene = Scene::build();
    let ours = [
        scene.named_inode,
        scene.plain_inode,
        scene.docker_inode,
        scene.kube_inode,
    ];
    let held_of_ours = || -> Vec<u64> {
        held_namespace_fds()
            .into_iter()
            .filter(|inode| ours.contains(inode))
            .collect()
    };
    let found = discover::discover(&scene.sources(), &mut Default::default()).expect("discover");
    assert_eq!(held_of_ours(), Vec::<u64>::new(), "after discovery");
    let home = HomeNetns::open(Path::new("/proc")).expect("open our namespace");
    for ns in found.namespaces.iter().filter(|ns| ours.contains(&ns.id)) {
        let inside = home.run_in(&ns.enter, ns.id, held_of_ours).expect("enter");
        // The fd used for setns is closed before the visit's body runs.
        assert_eq!(inside, Vec::<u64>::new(), "inside {}", ns.label);
    }
    assert_eq!(held_of_ours(), Vec::<u64>::new(), "after entering each");
    // The one fd we do hold is our own namespace, until HomeNetns drops.
    assert!(held_namespace_fds().contains(&home.inode()));
}

/// Capabilities are per thread: a thread that drops some plays an unprivileged exporter
/// while the rest of the test process keeps them.
fn without_capabilities_entering_is_refused_and_discovery_degrades() {
    let scene = Scene::build();
    let sources = scene.sources();
    let (named_path, named_inode, plain_inode) =
        (scene.named_path(), scene.named_inode, scene.plain_inode);
    std::thread::spawn(move || {
        let mut sets = rustix::thread::capabilities(None).expect("capget");
        assert_eq!(netns::missing_privileges().expect("capget"), None);
        sets.effective.remove(CapabilitySet::SYS_ADMIN);
        rustix::thread::set_capabilities(None, sets).expect("capset without CAP_SYS_ADMIN");
        assert_eq!(
            netns::missing_privileges().expect("capget"),
            Some(MissingPrivileges {
                sys_admin: true,
                sys_ptrace: false
            })
        );
        let home = HomeNetns::open(Path::new("/proc")).expect("open our namespace");
        match home.enter(&named_path, named_inode) {
            Err(EnterError::Enter { error, .. }) => {
                assert_eq!(error.raw_os_error(), Some(libc::EPERM))
            }
            other => panic!("expected Enter(EPERM), got {other:?}"),
        }

        sets.effective.remove(CapabilitySet::SYS_PTRACE);
        rustix::thread::set_capabilities(None, sets).expect("capset without CAP_SYS_PTRACE");
        let missing = netns::missing_privileges().expect("capget").unwrap();
        assert_eq!(missing.reason(), "missing_cap_sys_admin_and_sys_ptrace");
        // Other processes' links are denied and counted; bind mounts are still seen.
        let found = discover::discover(&sources, &mut Default::default())
            .expect("discover without CAP_SYS_PTRACE");
        assert!(found.denied_pids > 0, "denied pids counted");
        assert!(found.namespaces.iter().all(|ns| ns.id != plain_inode));
        assert!(found.namespaces.iter().any(|ns| ns.id == named_inode));
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    drop(scene);
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        discovery_names_every_kind_of_namespace,
        entering_a_namespace_opens_sockets_there,
        a_vanished_namespace_is_the_vanished_error,
        no_namespace_fd_outlives_discovery_or_entering,
        without_capabilities_entering_is_refused_and_discovery_degrades,
    ]
}
