//! The poll's discovery step: which network namespaces to sample this poll, what to call
//! each one (the `netns` label) and what is known about it (`sockdiag_netns_info`).
//!
//! Combines three sources: [`netns`] (which namespaces exist and how to enter them),
//! [`cgroup`] (the container and pod its processes sit in) and [`docker`] (the container's
//! name). Runs every poll: namespaces come and go with containers, and nothing is cached
//! that could keep a dead one alive. The one thing kept between polls is
//! [`docker::ConfigCache`]: the Docker configs that failed to read, so that a broken one is
//! read and counted once, not every poll.
//!
//! The label of a namespace, first that applies:
//! 1. `host` for PID 1's namespace (the initial one when PID 1's cannot be read, see
//!    [`Discovery::host`]);
//! 2. its `ip netns` name;
//! 3. the 12-hex short id of the container its lowest member process is in (in a pod, all
//!    containers share the namespace of the sandbox, which starts first);
//! 4. `ns-<inode>`.
//!
//! Labels are unique within one discovery; see [`assemble`] for how collisions fall back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashSet;

use crate::snapshot::Provenance;
use crate::source::cgroup::{self, CgroupError, Container, Runtime};
use crate::source::docker::{self, ConfigCache, DockerError};
use crate::source::netns::{self, Discovery, Netns, NetnsError};
use crate::source::userns::{self, UsernsError, Users};

/// Label of the host's namespace.
pub const HOST_LABEL: &str = "host";

/// Label the cardinality cap folds the smallest namespaces into: never a namespace's own.
pub const OTHER_LABEL: &str = "other";

/// Where discovery reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    pub proc_root: PathBuf,
    /// Directories of bind-mounted namespaces; the first is `ip netns`' (its file names
    /// are labels).
    pub bind_roots: Vec<PathBuf>,
    /// Docker's data root, for container names.
    pub docker_root: PathBuf,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            proc_root: netns::DEFAULT_PROC_ROOT.into(),
            bind_roots: netns::DEFAULT_BIND_ROOTS
                .iter()
                .map(PathBuf::from)
                .collect(),
            docker_root: docker::DEFAULT_DATA_ROOT.into(),
        }
    }
}

/// One namespace to sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The namespace inode.
    pub id: u64,
    /// The `netns` label value.
    pub label: String,
    pub info: NetnsInfo,
    /// Whether a runtime or root made it, for the namespace cap's ranking.
    pub provenance: Provenance,
    /// The path to hand to [`netns::HomeNetns::enter`] with `id`.
    pub enter: PathBuf,
}

/// The labels of `sockdiag_netns_info` besides `netns`; empty strings where unknown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetnsInfo {
    pub inode: u64,
    /// Full 64-hex id.
    pub container_id: String,
    pub container_name: String,
    pub pod_uid: String,
    /// `docker`, `containerd`, `crio` or `podman`.
    pub runtime: String,
}

/// The namespaces of one poll.
#[derive(Debug)]
pub struct Namespaces {
    /// Ordered by inode.
    pub namespaces: Vec<Namespace>,
    /// Our own namespace's inode (the only one sampled without the privileges to enter).
    pub own: u64,
    /// Processes that exited while we looked.
    pub vanished_pids: u64,
    /// Processes whose namespace we may not see (no CAP_SYS_PTRACE).
    pub denied_pids: u64,
    /// Files under the bind roots that are not namespaces.
    pub stray_files: u64,
    /// Failures to name a namespace's container: the namespace is still sampled, with
    /// what could be learnt. For the poll to report; a Docker config that failed in an
    /// earlier poll and did not change is listed again (it still fails), not read again.
    pub attribution_errors: Vec<DiscoverError>,
    /// Of `attribution_errors`, those met now (not remembered): what the poll counts.
    pub attribution_failures: u64,
}

impl Namespaces {
    /// The namespace with this label, if any.
    pub fn by_label(&self, label: &str) -> Option<&Namespace> {
        self.namespaces.iter().find(|ns| ns.label == label)
    }
}

/// Why discovery, or the naming of one namespace, failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("discovering network namespaces: {0}")]
    Netns(#[from] NetnsError),
    #[error("finding the container of a network namespace: {0}")]
    Cgroup(#[from] CgroupError),
    #[error("naming a container: {0}")]
    Docker(#[from] Arc<DockerError>),
    #[error("finding who made a network namespace: {0}")]
    Userns(#[from] UsernsError),
    /// Our own privileges could not be read, so whether to enter others is unknown.
    #[error("checking the privileges to enter namespaces: {0}")]
    Privileges(#[from] netns::EnterError),
}

/// What is known of the container a namespace belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attribution {
    pub container: Option<Container>,
    pub container_name: Option<String>,
    /// The owner of the user namespace of its lowest member process; `None` for a
    /// namespace with no process left (a bind mount), which only root can make.
    pub owner: Option<userns::Owner>,
}

/// The failures met while attributing namespaces to containers.
#[derive(Debug, Default)]
struct Failures {
    errors: Vec<DiscoverError>,
    fresh: u64,
}

impl Failures {
    fn push(&mut self, error: DiscoverError, fresh: bool) {
        self.errors.push(error);
        self.fresh += u64::from(fresh);
    }
}

/// Discovers every namespace and names it; `docker` remembers the Docker configs that
/// failed from one poll to the next.
pub fn discover(sources: &Sources, docker: &mut ConfigCache) -> Result<Namespaces, DiscoverError> {
    let discovery = netns::discover(&sources.proc_root, &sources.bind_roots)?;
    let mut failures = Failures::default();
    let users = Users::new(&sources.proc_root);
    docker.begin_poll();
    let attributions: Vec<Attribution> = discovery
        .namespaces
        .iter()
        .map(|ns| {
            // The host's processes are not a container's, even when a `--network host`
            // container shares the namespace; its label is `host` whatever they are.
            if discovery.host == Some(ns.inode) {
                Attribution::default()
            } else {
                attribute(sources, &users, ns, docker, &mut failures)
            }
        })
        .collect();
    docker.end_poll();
    Ok(Namespaces {
        namespaces: assemble(&discovery, &attributions, &sources.proc_root),
        own: discovery.own,
        vanished_pids: discovery.vanished_pids,
        denied_pids: discovery.denied_pids,
        stray_files: discovery.stray_files,
        attribution_errors: failures.errors,
        attribution_failures: failures.fresh,
    })
}

/// The container of the lowest member process that is in one, its Docker name, and who
/// owns the lowest member's user namespace.
fn attribute(
    sources: &Sources,
    users: &Users,
    ns: &Netns,
    docker: &mut ConfigCache,
    failures: &mut Failures,
) -> Attribution {
    let container = ns
        .pids
        .iter()
        .find_map(|&pid| match cgroup::read(&sources.proc_root, pid) {
            Ok(container) => container,
            // The next member may still be there.
            Err(CgroupError::Vanished { .. }) => None,
            Err(error) => {
                failures.push(error.into(), true);
                None
            }
        });
    let container_name = container
        .as_ref()
        // Only Docker writes config.v2.json; a bare id under a pod may be Docker's too.
        .filter(|c| matches!(c.runtime, Some(Runtime::Docker) | None))
        .and_then(
            |c| match docker.container_name(&sources.docker_root, &c.id) {
                Ok(name) => name,
                Err(failed) => {
                    failures.push(failed.error.into(), failed.fresh);
                    None
                }
            },
        );
    let owner = ns.pids.first().map(|&pid| match users.owner(pid) {
        Ok(owner) => owner,
        // Unknown ranks last: a namespace whose maker cannot be told is not trusted.
        Err(error) => {
            if !error.is_gone() {
                failures.push(error.into(), true);
            }
            userns::Owner::User
        }
    });
    Attribution {
        container,
        container_name,
        owner,
    }
}

/// Known: the host's; or a runtime's container or an `ip netns` bind mount, in a user
/// namespace of root's. Anything else anyone could have made.
fn provenance(host: bool, ns: &Netns, attribution: &Attribution) -> Provenance {
    let made_by_a_runtime_or_root = attribution.container.is_some() || !ns.bind_mounts.is_empty();
    if host || (made_by_a_runtime_or_root && attribution.owner != Some(userns::Owner::User)) {
        Provenance::Known
    } else {
        Provenance::Unknown
    }
}

/// Labels and infos for `discovery.namespaces`, with `attributions` in the same order.
/// Pure.
///
/// Two namespaces can claim one label: two namespaces whose lowest processes sit in the
/// same container (a container that runs `unshare --net` or `ip netns add` itself), an
/// `ip netns` name that equals a container's short id. Labels are keys of every series, so
/// a shared one would add two namespaces' figures into one (or make duplicate series);
/// the later namespace, by inode, falls back to `ns-<inode>` instead. Inode order keeps the
/// choice stable from poll to poll. `ns-<inode>`, `host` and `other` are never taken from
/// a name, so a fallback is always free.
pub fn assemble(
    discovery: &Discovery,
    attributions: &[Attribution],
    proc_root: &Path,
) -> Vec<Namespace> {
    let mut taken: FxHashSet<String> = FxHashSet::default();
    discovery
        .namespaces
        .iter()
        .zip(attributions)
        .map(|(ns, attribution)| {
            let container = attribution.container.as_ref();
            let host = discovery.host == Some(ns.inode);
            let preferred = if host {
                Some(HOST_LABEL.to_string())
            } else {
                ns.name
                    .clone()
                    .filter(|name| !is_reserved(name))
                    .or_else(|| container.map(|c| c.id.short().to_string()))
            };
            let label = match preferred {
                Some(label) if taken.insert(label.clone()) => label,
                _ => format!("ns-{}", ns.inode),
            };
            Namespace {
                id: ns.inode,
                label,
                info: NetnsInfo {
                    inode: ns.inode,
                    container_id: container.map(|c| c.id.to_string()).unwrap_or_default(),
                    container_name: attribution.container_name.clone().unwrap_or_default(),
                    pod_uid: container
                        .and_then(|c| c.pod_uid.clone())
                        .unwrap_or_default(),
                    runtime: container
                        .and_then(|c| c.runtime)
                        .map(|r| r.as_str().to_string())
                        .unwrap_or_default(),
                },
                provenance: provenance(host, ns, attribution),
                enter: ns.enter_path(proc_root),
            }
        })
        .collect()
}

/// Labels an `ip netns` name may not take: they mean something else.
fn is_reserved(name: &str) -> bool {
    name == HOST_LABEL
        || name == OTHER_LABEL
        || name
            .strip_prefix("ns-")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::cgroup::ContainerId;
    use crate::source::netns::Collector;

    const ID_A: &str = "3f2a9c5b7e1d4f6a8b0c2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a";
    const ID_B: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "8f1e2d3c-4b5a-4697-8887-a6b5c4d3e2f1";

    fn in_container(id: &str, runtime: Option<Runtime>, pod: Option<&str>) -> Attribution {
        Attribution {
            owner: None,
            container: Some(Container {
                id: ContainerId::parse(id).unwrap(),
                runtime,
                pod_uid: pod.map(String::from),
            }),
            container_name: None,
        }
    }

    fn labels(namespaces: &[Namespace]) -> Vec<(u64, &str)> {
        namespaces
            .iter()
            .map(|ns| (ns.id, ns.label.as_str()))
            .collect()
    }

    #[test]
    fn each_kind_of_namespace_gets_its_label_and_info() {
        let mut c = Collector::default();
        c.process(1, 10); // host
        c.process(500, 20); // ip netns
        c.bind_mount("/run/netns/blue".into(), Some("blue".into()), 20);
        c.process(600, 30); // docker container
        c.process(700, 40); // pod sandbox under containerd
        c.process(800, 50); // unshare --net, nothing else known
        c.bind_mount("/run/docker/netns/5e6f7a8b9c0d".into(), None, 60); // no process
        let discovery = c.finish(10, Some(10));
        let mut docker = in_container(ID_A, Some(Runtime::Docker), None);
        docker.container_name = Some("web-1".into());
        let attributions = [
            Attribution::default(),
            Attribution::default(),
            docker,
            in_container(ID_B, Some(Runtime::Containerd), Some(UID)),
            Attribution::default(),
            Attribution::default(),
        ];
        let out = assemble(&discovery, &attributions, Path::new("/proc"));
        assert_eq!(
            labels(&out),
            vec![
                (10, "host"),
                (20, "blue"),
                (30, "3f2a9c5b7e1d"),
                (40, "0123456789ab"),
                (50, "ns-50"),
                (60, "ns-60"),
            ]
        );
        assert_eq!(
            out[2].info,
            NetnsInfo {
                inode: 30,
                container_id: ID_A.into(),
                container_name: "web-1".into(),
                pod_uid: String::new(),
                runtime: "docker".into(),
            }
        );
        assert_eq!(
            out[3].info,
            NetnsInfo {
                inode: 40,
                container_id: ID_B.into(),
                container_name: String::new(),
                pod_uid: UID.into(),
                runtime: "containerd".into(),
            }
        );
        assert_eq!(
            out[4].info,
            NetnsInfo {
                inode: 50,
                ..NetnsInfo::default()
            }
        );
        assert_eq!(out[1].enter, PathBuf::from("/run/netns/blue"));
        assert_eq!(out[2].enter, PathBuf::from("/proc/600/ns/net"));
        assert_eq!(
            out[5].enter,
            PathBuf::from("/run/docker/netns/5e6f7a8b9c0d")
        );
    }

    #[test]
    fn collisions_fall_back_to_the_inode_for_the_later_namespace() {
        let mut c = Collector::default();
        c.process(1, 10);
        // Two namespaces whose processes sit in one container (it ran `unshare --net`).
        c.process(600, 30);
        c.process(601, 31);
        // An ip netns named like the container's short id, and ones named like labels
        // that mean something else.
        c.bind_mount(
            "/run/netns/3f2a9c5b7e1d".into(),
            Some("3f2a9c5b7e1d".into()),
            40,
        );
        c.bind_mount("/run/netns/host".into(), Some("host".into()), 41);
        c.bind_mount("/run/netns/other".into(), Some("other".into()), 42);
        c.bind_mount("/run/netns/ns-10".into(), Some("ns-10".into()), 43);
        c.bind_mount("/run/netns/ns-x".into(), Some("ns-x".into()), 44);
        let discovery = c.finish(10, Some(10));
        let docker = in_container(ID_A, Some(Runtime::Docker), None);
        let attributions = [
            Attribution::default(),
            docker.clone(),
            docker,
            Attribution::default(),
            Attribution::default(),
            Attribution::default(),
            Attribution::default(),
            Attribution::default(),
        ];
        let out = assemble(&discovery, &attributions, Path::new("/proc"));
        assert_eq!(
            labels(&out),
            vec![
                (10, "host"),
                (30, "3f2a9c5b7e1d"),
                (31, "ns-31"),
                (40, "ns-40"),
                (41, "ns-41"),
                (42, "ns-42"),
                (43, "ns-43"),
                (44, "ns-x"),
            ]
        );
        // The fallback keeps the container in the info metric.
        assert_eq!(out[2].info.container_id, ID_A);
    }

    #[test]
    fn without_pid_1_no_namespace_is_host() {
        let mut c = Collector::default();
        c.process(2, 10);
        c.denied_pid();
        let out = assemble(
            &c.finish(10, None),
            &[Attribution::default()],
            Path::new("/proc"),
        );
        assert_eq!(labels(&out), vec![(10, "ns-10")]);
    }
}
