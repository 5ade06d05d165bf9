//! Containers on the real runtimes, each removed by id when its guard drops: a Docker or
//! Podman container with no network but loopback (`--network none`), and a Kubernetes-style
//! pod on containerd (a sandbox and a container joined to its network namespace, in
//! `kubepods/besteffort/pod<uid>/<id>` cgroups, with the CRI annotations a kubelet's
//! containerd writes). A container either sleeps or runs the integration binary as the
//! `close-wait-leak` actor, which leaves N sockets in CLOSE_WAIT on loopback, or as the
//! `udp-recv` actor, a UDP receiver with a small buffer that never reads.

use std::path::Path;
use std::time::Duration;

use super::rig::{self, run, succeeds, wait_until};

/// Where the leaking actor listens, inside its container.
pub const LEAK_ADDRESS: &str = "127.0.0.1:8080";
/// The actor's process name.
pub const LEAKER: &str = "leaker";
/// Where the UDP receiver listens, inside its container.
pub const UDP_SINK_ADDRESS: &str = "127.0.0.1:8125";
/// The UDP receiver's process name.
pub const UDP_SINK: &str = "udp-sink";
/// The UDP receiver's SO_RCVBUF, which the kernel doubles.
pub const UDP_SINK_RCVBUF: &str = "4096";

/// What a container runs.
#[derive(Clone, Copy)]
pub enum Program {
    Sleep,
    /// The CLOSE_WAIT leak with this many sockets.
    Leak(usize),
    /// A UDP receiver on [`UDP_SINK_ADDRESS`] with SO_RCVBUF [`UDP_SINK_RCVBUF`] that
    /// never reads: every datagram past its buffer is dropped.
    UdpSink,
}

impl Program {
    fn command(self) -> Vec<String> {
        match self {
            Program::Sleep => vec!["sleep".into(), "3600".into()],
            Program::Leak(n) => vec![
                "/actor".into(),
                LEAKER.into(),
                LEAK_ADDRESS.into(),
                n.to_string(),
            ],
            Program::UdpSink => [
                "/actor",
                UDP_SINK,
                UDP_SINK_ADDRESS,
                UDP_SINK_RCVBUF,
                "hold",
                "until-killed",
            ]
            .map(String::from)
            .to_vec(),
        }
    }

    /// The actor role the integration binary plays in the container; `None` for `sleep`.
    fn role(self) -> Option<&'static str> {
        match self {
            Program::Sleep => None,
            Program::Leak(_) => Some("close-wait-leak"),
            Program::UdpSink => Some("udp-recv"),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Docker,
    Podman,
    Containerd,
}

/// A running container; removed on drop.
pub struct Container {
    kind: Kind,
    /// The full 64-hex id.
    pub id: String,
    /// Docker's or Podman's name; containerd's id.
    pub name: String,
    /// Its first process.
    pub pid: u32,
    removed: bool,
}

impl Container {
    /// `docker run -d --network none --name NAME EXTRA... IMAGE PROGRAM`.
    pub fn docker(name: &str, program: Program, extra: &[&str]) -> Container {
        let mut args = vec!["run", "-d", "--network", "none", "--name", name];
        args.extend_from_slice(extra);
        let (mounts, command) = (actor_mounts(program, "-v", ":ro"), program.command());
        args.extend(mounts.iter().map(String::as_str));
        args.push(rig::IMAGE);
        args.extend(command.iter().map(String::as_str));
        let id = run("docker", &args).trim().to_string();
        let pid = run("docker", &["inspect", "-f", "{{.State.Pid}}", &id]);
        Container::started(Kind::Docker, id, name, pid.trim(), program)
    }

    /// `podman run -d --network none --name NAME IMAGE PROGRAM`. The rlimits Podman sets
    /// by default are above what some sandboxes allow: smaller ones are given.
    pub fn podman(name: &str, program: Program) -> Container {
        let mut args = vec![
            "run",
            "-d",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--name",
            name,
        ];
        let (mounts, command) = (actor_mounts(program, "-v", ":ro"), program.command());
        args.extend(mounts.iter().map(String::as_str));
        args.push(rig::PODMAN_IMAGE);
        args.extend(command.iter().map(String::as_str));
        let id = run("podman", &args).trim().to_string();
        let pid = run("podman", &["inspect", "-f", "{{.State.Pid}}", &id]);
        Container::started(Kind::Podman, id, name, pid.trim(), program)
    }

    fn started(kind: Kind, id: String, name: &str, pid: &str, program: Program) -> Container {
        let container = Container {
            kind,
            pid: pid
                .parse()
                .unwrap_or_else(|_| panic!("{name}: pid {pid:?}")),
            id,
            name: name.to_string(),
            removed: false,
        };
        match program {
            Program::Sleep => {}
            Program::Leak(n) => container.wait_for_leak(n),
            Program::UdpSink => container.wait_for_udp_sink(),
        }
        container
    }

    /// The inode of the container's network namespace.
    pub fn netns_inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{}/ns/net", self.pid))
            .expect("stat the container's netns")
            .ino()
    }

    /// Waits until the container's namespace has `n` sockets in CLOSE_WAIT.
    pub fn wait_for_leak(&self, n: usize) {
        let netns = format!("--net=/proc/{}/ns/net", self.pid);
        wait_until(
            &format!("{n} CLOSE_WAIT in {}", self.name),
            Duration::from_secs(30),
            || {
                let out = run("nsenter", &[&netns, "ss", "-Htan", "state", "close-wait"]);
                out.lines().count() == n
            },
        );
    }

    /// Waits until the container's namespace has the UDP receiver's socket.
    pub fn wait_for_udp_sink(&self) {
        let netns = format!("--net=/proc/{}/ns/net", self.pid);
        wait_until(
            &format!("{UDP_SINK_ADDRESS} bound in {}", self.name),
            Duration::from_secs(30),
            || {
                let out = run("nsenter", &[&netns, "ss", "-Huan"]);
                out.lines()
                    .any(|line| line.split_whitespace().nth(3) == Some(UDP_SINK_ADDRESS))
            },
        );
    }

    /// Stops and removes the container now.
    pub fn remove(&mut self) {
        if std::mem::replace(&mut self.removed, true) {
            return;
        }
        let ok = match self.kind {
            Kind::Docker => succeeds("docker", &["rm", "-f", &self.id]),
            Kind::Podman => succeeds("podman", &["rm", "-f", "-t", "0", &self.id]),
            Kind::Containerd => {
                let _ = succeeds("ctr", &["-n", "k8s.io", "task", "rm", "-f", &self.id]);
                succeeds("ctr", &["-n", "k8s.io", "containers", "rm", &self.id])
            }
        };
        if !ok {
            eprintln!("cleanup: could not remove container {}", self.id);
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The bind mounts (`FLAG host:container SUFFIX`) an actor needs: the host's libraries
/// and the integration binary; none for `sleep`, which busybox provides.
fn actor_mounts(program: Program, flag: &str, suffix: &str) -> Vec<String> {
    let Some(role) = program.role() else {
        return Vec::new();
    };
    let mut mounts: Vec<(String, &str)> = rig::host_mounts();
    mounts.push((rig::actor_binary(), "/actor"));
    let mut args: Vec<String> = mounts
        .into_iter()
        .flat_map(|(host, inside)| [flag.to_string(), format!("{host}:{inside}{suffix}")])
        .collect();
    args.extend(["-e".into(), format!("{}={role}", crate::actor::ENV)]);
    args
}

/// A pod as a kubelet runs it on containerd: a sandbox, and one container in its network
/// namespace, both in `kubepods/besteffort/pod<uid>/<id>`, both annotated with the pod.
pub struct Pod {
    pub uid: String,
    /// The app container first, so that it is removed before the sandbox.
    pub app: Container,
    pub sandbox: Container,
}

impl Pod {
    pub fn run(namespace: &str, name: &str, program: Program) -> Pod {
        let uid = uuid();
        let sandbox_id = crate::cgroups::random_container_id();
        let app_id = crate::cgroups::random_container_id();
        let pod = [
            ("sandbox-id", sandbox_id.as_str()),
            ("sandbox-name", name),
            ("sandbox-namespace", namespace),
            ("sandbox-uid", uid.as_str()),
        ];
        let sandbox = ctr_run(&uid, &sandbox_id, "sandbox", None, &pod, Program::Sleep);
        let netns = format!("network:/proc/{}/ns/net", sandbox.pid);
        let app = ctr_run(&uid, &app_id, "container", Some(&netns), &pod, program);
        Pod { uid, app, sandbox }
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.app.remove();
        self.sandbox.remove();
        // runc removes each container's cgroup; the pod level is the kubelet's to remove.
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let pod = hierarchy
                .path()
                .join("kubepods/besteffort")
                .join(format!("pod{}", self.uid));
            rig::remove_cgroup_tree(&pod);
        }
        rig::remove_cgroup_tree(
            &Path::new("/sys/fs/cgroup/kubepods/besteffort").join(format!("pod{}", self.uid)),
        );
    }
}

/// `ctr -n k8s.io run` of one pod member, with the kubelet's cgroup and annotations.
fn ctr_run(
    uid: &str,
    id: &str,
    kind: &str,
    netns: Option<&str>,
    pod: &[(&str, &str)],
    program: Program,
) -> Container {
    let cgroup = format!("/kubepods/besteffort/pod{uid}/{id}");
    let mut args: Vec<String> = ["-n", "k8s.io", "run", "-d", "--cgroup", &cgroup]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let type_annotation = ("container-type", kind);
    for (key, value) in pod.iter().chain([&type_annotation]) {
        args.push("--annotation".into());
        args.push(format!("io.kubernetes.cri.{key}={value}"));
    }
    if kind == "container" {
        args.extend([
            "--annotation".into(),
            "io.kubernetes.cri.container-name=app".into(),
        ]);
    }
    if let Some(netns) = netns {
        args.extend(["--with-ns".into(), netns.into()]);
    }
    if let Some(role) = program.role() {
        let mut mounts = rig::host_mounts();
        mounts.push((rig::actor_binary(), "/actor"));
        for (host, inside) in mounts {
            args.push("--mount".into());
            args.push(format!(
                "type=bind,src={host},dst={inside},options=rbind:ro"
            ));
        }
        args.extend(["--env".into(), format!("{}={role}", crate::actor::ENV)]);
    }
    args.extend([rig::CTR_IMAGE.to_string(), id.to_string()]);
    args.extend(program.command());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("ctr", &args);
    let pid_file = format!("/run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}/init.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap_or_else(|e| panic!("{pid_file}: {e}"));
    Container::started(Kind::Containerd, id.to_string(), id, pid.trim(), program)
}

/// A random pod UID (the kernel's UUID generator).
fn uuid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .expect("read a random uuid")
        .trim()
        .to_string()
}
