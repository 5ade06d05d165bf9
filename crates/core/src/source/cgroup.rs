//! `/proc/PID/cgroup`: the container a process runs in, by the path of its cgroup.
//!
//! Container runtimes name a container's cgroup after its id, and the kubelet names a pod's
//! after its UID, so the path alone says which container (and pod) a process belongs to,
//! without asking any runtime API. Recognised, under cgroup v1 (one line per hierarchy,
//! `ID:controllers:PATH`) and v2 (`0::PATH`):
//!
//! | runtime    | systemd driver                    | cgroupfs driver          |
//! |------------|-----------------------------------|--------------------------|
//! | docker     | `system.slice/docker-<id>.scope`  | `/docker/<id>`           |
//! | containerd | `cri-containerd-<id>.scope`       | `.../pod<uid>/<id>` (*)  |
//! | crio       | `crio-<id>.scope`                 | `crio-<id>`              |
//! | podman     | `machine.slice/libpod-<id>.scope` | `libpod_parent/libpod-<id>` |
//!
//! (*) a bare id under a pod: the runtime is not in the path, so it stays unknown.
//!
//! Pods: `kubepods/<qos>/pod<uid>/...` (cgroupfs) and
//! `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/...` (systemd, where
//! the UID's dashes are written as underscores; kind nodes prefix `kubelet-`); Guaranteed
//! pods have no `<qos>` level.
//!
//! The pod level is recognised by its name alone, since a path read from inside a cgroup
//! namespace may not show the kubepods levels.
//!
//! The deepest container component of a path wins (Docker in Docker, `libpod-<id>.scope/
//! container`). Paths seen from inside a cgroup namespace start with `/..`; those levels
//! are skipped like any other. The conmon monitors of CRI-O and Podman
//! (`crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`) are not in the container: they
//! are not recognised. A format not listed here gives `None`, never an error.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::source::bounded::{self, BoundedReadError};

/// The runtime that created a container, as its cgroup path names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    Docker,
    Containerd,
    Crio,
    Podman,
}

impl Runtime {
    /// The `runtime` label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::Crio => "crio",
            Runtime::Podman => "podman",
        }
    }
}

/// A full container id: 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);

impl ContainerId {
    /// `None` unless `text` is 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 64 && text.bytes().all(is_lower_hex)).then(|| ContainerId(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-digit short form that `docker ps` shows.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The container a process is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: ContainerId,
    /// `None` when the path does not say (a bare id under a cgroupfs-driver pod).
    pub runtime: Option<Runtime>,
    /// The Kubernetes pod UID with dashes (`8f1e2d3c-4b5a-...`), or the 32-hex hash of a
    /// static pod, when the path has a pod level.
    pub pod_uid: Option<String>,
}

/// Why the cgroup file of a process could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The process exited (ENOENT or ESRCH).
    #[error("reading {}: the process is gone", .path.display())]
    Vanished { path: PathBuf },
    #[error("{0}")]
    Read(BoundedReadError),
}

/// The container named by a `/proc/PID/cgroup` file: the v2 line first, then the v1 lines
/// in order; the first path that names a container wins.
pub fn parse(text: &str) -> Option<Container> {
    let paths = text.lines().filter_map(|line| {
        let mut fields = line.splitn(3, ':');
        let hierarchy = fields.next()?;
        let _controllers = fields.next()?;
        Some((hierarchy != "0", fields.next()?))
    });
    let mut paths: Vec<(bool, &str)> = paths.collect();
    // Stable: v2 (`false`) before v1, each group in file order.
    paths.sort_by_key(|(v1, _)| *v1);
    paths.into_iter().find_map(|(_, path)| parse_path(path))
}

/// The container named by one cgroup path; `None` for any other path.
pub fn parse_path(path: &str) -> Option<Container> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let (at, id, runtime) = components
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, component)| {
            let parent = i.checked_sub(1).map(|p| components[p]);
            container_component(component, parent).map(|(id, runtime)| (i, id, runtime))
        })?;
    let pod_uid = pod_uid(&components[..at]);
    // A bare id is a container only under a pod or under `docker`, which the runtime
    // check already covered; anywhere else it is some other 64-hex name.
    if runtime.is_none() && pod_uid.is_none() {
        return None;
    }
    Some(Container {
        id,
        runtime,
        pod_uid,
    })
}

/// The id and runtime one path component names, given its parent component.
fn container_component(
    component: &str,
    parent: Option<&str>,
) -> Option<(ContainerId, Option<Runtime>)> {
    const PREFIXES: [(&str, Runtime); 4] = [
        ("docker-", Runtime::Docker),
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::Crio),
        ("libpod-", Runtime::Podman),
    ];
    let bare = component.strip_suffix(".scope").unwrap_or(component);
    for (prefix, runtime) in PREFIXES {
        if let Some(id) = bare.strip_prefix(prefix).and_then(ContainerId::parse) {
            return Some((id, Some(runtime)));
        }
    }
    let id = ContainerId::parse(component)?;
    let runtime = (parent == Some("docker")).then_some(Runtime::Docker);
    Some((id, runtime))
}

/// The pod UID of the deepest pod level among `components`. The kubepods level itself is
/// not required: seen from the cgroup namespace of a container in another pod, the path
/// goes up to the nearest common ancestor (`/../../kubepods-besteffort-pod<uid>.slice/...`),
/// and the strict UID format keeps lookalikes out.
fn pod_uid(components: &[&str]) -> Option<String> {
    components.iter().rev().find_map(|c| {
        let uid = match c.strip_suffix(".slice") {
            // kubepods-pod<uid>.slice, kubepods-<qos>-pod<uid>.slice, and kind's
            // kubelet-kubepods-<qos>-pod<uid>.slice. ("-pod" cannot occur in a UID.)
            Some(slice) => {
                let (levels, uid) = slice.rsplit_once("-pod")?;
                if !levels.split('-').any(|level| level == "kubepods") {
                    return None;
                }
                uid.replace('_', "-")
            }
            None => c.strip_prefix("pod")?.to_string(),
        };
        is_pod_uid(&uid).then_some(uid)
    })
}

/// A UUID (8-4-4-4-12 hex) or the 32-hex config hash the kubelet gives static pods.
fn is_pod_uid(uid: &str) -> bool {
    let uuid = uid.len() == 36
        && uid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => is_lower_hex(b),
        });
    let hash = uid.len() == 32 && uid.bytes().all(is_lower_hex);
    uuid || hash
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// `<proc_root>/<pid>/cgroup`, parsed; read through [`bounded`], at most
/// [`bounded::PROC_LIMIT`].
pub fn read(proc_root: &Path, pid: u32) -> Result<Option<Container>, CgroupError> {
    let path = proc_root.join(pid.to_string()).join("cgroup");
    match bounded::read_to_string(&path, bounded::PROC_LIMIT) {
        Ok(text) => Ok(parse(&text)),
        Err(BoundedReadError::Open { source, .. })
            if source.kind() == io::ErrorKind::NotFound
                || source.raw_os_error() == Some(libc::ESRCH) =>
        {
            Err(CgroupError::Vanished { path })
        }
        Err(BoundedReadError::Read { source, .. })
            if source.raw_os_error() == Some(libc::ESRCH) =>
        {
            Err(CgroupError::Vanished { path })
        }
        Err(error) => Err(CgroupError::Read(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c5b7e1d4f6a8b0c2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a";
    const UID: &str = "8f1e2d3c-4b5a-4697-8887-a6b5c4d3e2f1";

    fn container(runtime: Option<Runtime>, pod_uid: Option<&str>) -> Option<Container> {
        Some(Container {
            id: ContainerId::parse(ID).unwrap(),
            runtime,
            pod_uid: pod_uid.map(String::from),
        })
    }

    fn path(template: &str) -> Option<Container> {
        parse_path(
            // UID before ID, which it contains.
            &template
                .replace("UID_", &UID.replace('-', "_"))
                .replace("UID", UID)
                .replace("ID", ID),
        )
    }

    #[test]
    fn docker() {
        // systemd cgroup driver (Debian, Ubuntu, Fedora defaults), v1 and v2.
        assert_eq!(
            path("/system.slice/docker-ID.scope"),
            container(Some(Runtime::Docker), None)
        );
        // cgroupfs driver.
        assert_eq!(path("/docker/ID"), container(Some(Runtime::Docker), None));
        // Read from inside a cgroup namespace (Docker's default on cgroup v2).
        assert_eq!(
            path("/../../system.slice/docker-ID.scope"),
            container(Some(Runtime::Docker), None)
        );
        // systemd inside the container moves its processes one level down.
        assert_eq!(
            path("/system.slice/docker-ID.scope/init.scope"),
            container(Some(Runtime::Docker), None)
        );
    }

    #[test]
    fn docker_in_docker_gives_the_inner_container() {
        let outer = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let c = parse_path(&format!("/docker/{outer}/docker/{ID}")).unwrap();
        assert_eq!(c.id.as_str(), ID);
    }

    #[test]
    fn containerd_crio_podman() {
        assert_eq!(
            path("/system.slice/cri-containerd-ID.scope"),
            container(Some(Runtime::Containerd), None)
        );
        assert_eq!(
            path("/system.slice/crio-ID.scope"),
            container(Some(Runtime::Crio), None)
        );
        assert_eq!(path("/crio-ID"), container(Some(Runtime::Crio), None));
        assert_eq!(
            path("/machine.slice/libpod-ID.scope"),
            container(Some(Runtime::Podman), None)
        );
        assert_eq!(
            path("/machine.slice/libpod-ID.scope/container"),
            container(Some(Runtime::Podman), None)
        );
        assert_eq!(
            path("/libpod_parent/libpod-ID"),
            container(Some(Runtime::Podman), None)
        );
        // Rootless podman.
        assert_eq!(
            path("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-ID.scope"),
            container(Some(Runtime::Podman), None)
        );
    }

    #[test]
    fn kubepods_systemd_driver() {
        assert_eq!(
            path("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podUID_.slice/cri-containerd-ID.scope"),
            container(Some(Runtime::Containerd), Some(UID))
        );
        assert_eq!(
            path("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podUID_.slice/crio-ID.scope"),
            container(Some(Runtime::Crio), Some(UID))
        );
        // kind nodes put the kubelet's cgroups under kubelet.slice.
        assert_eq!(
            path("/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-podUID_.slice/cri-containerd-ID.scope"),
            container(Some(Runtime::Containerd), Some(UID))
        );
        // Guaranteed QoS: no QoS level.
        assert_eq!(
            path("/kubepods.slice/kubepods-podUID_.slice/docker-ID.scope"),
            container(Some(Runtime::Docker), Some(UID))
        );
        // Seen from the cgroup namespace of a container in another pod: the path climbs
        // to the common ancestor and the kubepods levels above it are not shown.
        assert_eq!(
            path("/../../kubepods-besteffort-podUID_.slice/cri-containerd-ID.scope"),
            container(Some(Runtime::Containerd), Some(UID))
        );
        assert_eq!(
            path("/../../../kubepods-besteffort.slice/kubepods-besteffort-podUID_.slice/cri-containerd-ID.scope"),
            container(Some(Runtime::Containerd), Some(UID))
        );
    }

    #[test]
    fn kubepods_cgroupfs_driver() {
        // The runtime is not in the path.
        assert_eq!(
            path("/kubepods/burstable/podUID/ID"),
            container(None, Some(UID))
        );
        assert_eq!(path("/kubepods/podUID/ID"), container(None, Some(UID)));
        assert_eq!(path("/../../podUID/ID"), container(None, Some(UID)));
        assert_eq!(
            path("/kubepods/besteffort/podUID/crio-ID"),
            container(Some(Runtime::Crio), Some(UID))
        );
        // A static pod's UID is the 32-hex hash of its manifest.
        let hash = "5a3d6b5e6a9c7c6a0b1c2d3e4f5a6b7c";
        assert_eq!(
            parse_path(&format!("/kubepods/burstable/pod{hash}/{ID}"))
                .unwrap()
                .pod_uid
                .as_deref(),
            Some(hash)
        );
    }

    #[test]
    fn conmon_and_lookalikes_are_not_containers() {
        assert_eq!(path("/machine.slice/libpod-conmon-ID.scope"), None);
        assert_eq!(path("/system.slice/crio-conmon-ID.scope"), None);
        // A bare 64-hex name outside a pod or `docker` says nothing about a runtime.
        assert_eq!(path("/system.slice/containerd.service/ID"), None);
        // Upper case, 63 and 65 digits.
        assert_eq!(path(&format!("/docker/{}", ID.to_uppercase())), None);
        assert_eq!(path(&format!("/docker/{}", &ID[1..])), None);
        assert_eq!(path(&format!("/docker/{ID}0")), None);
        assert_eq!(path("/docker-ID.scope.extra"), None);
        // The host itself, a user session, nothing.
        assert_eq!(path("/"), None);
        assert_eq!(path("/user.slice/user-0.slice/session-3.scope"), None);
        assert_eq!(path(""), None);
        // A slice that is not the kubelet's is no pod.
        assert_eq!(
            path("/system.slice/backup-podUID_.slice/crio-ID.scope"),
            container(Some(Runtime::Crio), None)
        );
        // A pod level with a malformed UID is ignored, the container is still found.
        assert_eq!(
            path("/kubepods.slice/kubepods-podnot_a_uid.slice/crio-ID.scope"),
            container(Some(Runtime::Crio), None)
        );
    }

    #[test]
    fn whole_files_v1_hybrid_and_v2() {
        // cgroup v1 with the systemd driver, as Docker on a v1 host writes it.
        let v1 = format!(
            "12:pids:/system.slice/docker-{ID}.scope\n\
             11:memory:/system.slice/docker-{ID}.scope\n\
             1:name=systemd:/system.slice/docker-{ID}.scope\n\
             0::/system.slice/docker-{ID}.scope\n"
        );
        assert_eq!(parse(&v1), container(Some(Runtime::Docker), None));
        // Hybrid host where only the v1 hierarchies name the container.
        let hybrid = format!("4:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/\n");
        assert_eq!(parse(&hybrid), container(Some(Runtime::Docker), None));
        // v2 only.
        let v2 = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope\n",
            UID.replace('-', "_")
        );
        assert_eq!(parse(&v2), container(Some(Runtime::Containerd), Some(UID)));
        // The v2 line wins over a v1 line that names something else.
        let other = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let both = format!("3:pids:/docker/{other}\n0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(parse(&both).unwrap().id.as_str(), ID);
    }

    #[test]
    fn host_and_malformed_files_give_none() {
        assert_eq!(parse("0::/init.scope\n"), None);
        assert_eq!(
            parse("9:name=systemd:/\n8:pids:/\n4:memory:/process_api/b95505\n0::/\n"),
            None
        );
        assert_eq!(parse(""), None);
        assert_eq!(parse("no colons here\n::\n\u{0}\n"), None);
    }

    #[test]
    fn cgroup_file_was_read_without_bound() {
        let proc = std::env::temp_dir().join(format!("sockdiag-cgroup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&proc);
        for pid in ["1", "2"] {
            std::fs::create_dir_all(proc.join(pid)).unwrap();
        }
        // 100 KiB of lines (a real file is a few hundred bytes), and a FIFO that would
        // block a plain read forever.
        let huge = proc.join("1/cgroup");
        std::fs::write(&huge, "0::/\n".repeat(20 << 10)).unwrap();
        let fifo = proc.join("2/cgroup");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        let results = [read(&proc, 1), read(&proc, 2)].map(|r| r.map_err(|e| e.to_string()));
        std::fs::remove_dir_all(&proc).unwrap();
        assert!(made.unwrap().success());
        assert_eq!(
            results,
            [
                Err(format!("{} is larger than 65536 bytes", huge.display())),
                Err(format!("{} is not a regular file", fifo.display())),
            ]
        );
    }

    #[test]
    fn short_id_and_runtime_labels() {
        let id = ContainerId::parse(ID).unwrap();
        assert_eq!(id.short(), "3f2a9c5b7e1d");
        assert_eq!(Runtime::Crio.as_str(), "crio");
        assert_eq!(Runtime::Containerd.as_str(), "containerd");
    }

    /// The cgroup path a runtime and the kubelet would create for `container`, with the
    /// systemd or the cgroupfs driver, under `prefix` levels and above `suffix` levels.
    fn render(
        container: &Container,
        systemd: bool,
        qos: &str,
        prefix: &str,
        suffix: &str,
    ) -> String {
        let id = container.id.as_str();
        let pod = container.pod_uid.as_ref().map(|uid| match (systemd, qos) {
            (true, "") => format!("kubepods.slice/kubepods-pod{}.slice", uid.replace('-', "_")),
            (true, qos) => format!(
                "kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{}.slice",
                uid.replace('-', "_")
            ),
            (false, "") => format!("kubepods/pod{uid}"),
            (false, qos) => format!("kubepods/{qos}/pod{uid}"),
        });
        let leaf = match (container.runtime, systemd) {
            (Some(Runtime::Docker), true) => format!("docker-{id}.scope"),
            (Some(Runtime::Docker), false) => format!("docker/{id}"),
            (Some(Runtime::Containerd), _) => format!("cri-containerd-{id}.scope"),
            (Some(Runtime::Crio), true) => format!("crio-{id}.scope"),
            (Some(Runtime::Crio), false) => format!("crio-{id}"),
            (Some(Runtime::Podman), true) => format!("libpod-{id}.scope"),
            (Some(Runtime::Podman), false) => format!("libpod_parent/libpod-{id}"),
            (None, _) => id.to_string(),
        };
        let levels = [
            prefix.to_string(),
            pod.unwrap_or_default(),
            leaf,
            suffix.to_string(),
        ];
        let path: Vec<&str> = levels
            .iter()
            .map(String::as_str)
            .filter(|l| !l.is_empty())
            .collect();
        format!("/{}", path.join("/"))
    }

    fn arb_container() -> impl proptest::strategy::Strategy<Value = Container> {
        use proptest::prelude::*;
        let runtime = proptest::option::of(prop::sample::select(vec![
            Runtime::Docker,
            Runtime::Containerd,
            Runtime::Crio,
            Runtime::Podman,
        ]));
        let uid = prop_oneof![
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "[0-9a-f]{32}",
        ];
        ("[0-9a-f]{64}", runtime, proptest::option::of(uid)).prop_map(|(id, runtime, pod_uid)| {
            Container {
                id: ContainerId::parse(&id).expect("64 hex"),
                // A bare id names a container only under a pod.
                runtime: if pod_uid.is_none() {
                    runtime.or(Some(Runtime::Docker))
                } else {
                    runtime
                },
                pod_uid,
            }
        })
    }

    proptest::proptest! {
        /// parse_path(render(container)) recovers the container's id, runtime and pod,
        /// for every runtime, driver, QoS class, and levels above and below.
        #[test]
        fn parse_path_of_render_is_the_container(
            container in arb_container(),
            systemd in proptest::prelude::any::<bool>(),
            qos in proptest::sample::select(vec!["", "burstable", "besteffort"]),
            prefix in proptest::sample::select(vec!["", "..", "../..", "system.slice", "kubelet.slice"]),
            suffix in proptest::sample::select(vec!["", "init.scope", "container", "app/worker"]),
        ) {
            let path = render(&container, systemd, qos, prefix, suffix);
            proptest::prop_assert_eq!(parse_path(&path), Some(container.clone()), "{}", path);
            // The same path as a cgroup v2 file, below a v1 line naming nothing.
            let file = format!("4:memory:/user.slice\n0::{path}\n");
            proptest::prop_assert_eq!(parse(&file), Some(container), "{}", file);
        }
    }
}
