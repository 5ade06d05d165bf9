//! The poll's discovery step: which network namespaces to sample this poll, what to call
//! each one (the `netns` label) and what is known about it (`sockdiag_netns_info`).
//!
//! Combines four sources: [`netns`] (which namespaces exist and how to enter them),
//! [`cgroup`] (the container and pod its processes sit in), and the container runtimes'
//! state on disk for names: [`docker`] (Docker's `config.v2.json`) and [`runtime`]
//! (containerd's bundles, CRI-O's specs, Podman's conmon). Runs every poll: namespaces
//! come and go with containers, and nothing is cached that could keep a dead one alive.
//! The one thing kept between polls is [`StateCaches`]: the runtime files that failed to
//! read, so that a broken one is read, counted and logged once, not every poll.
//!
//! Names go to `sockdiag_netns_info` (`container_name`, `pod_name`, `pod_namespace`,
//! Compose's project and service), never into the `netns` label: a name changes on
//! `docker rename` while the namespace does not (every series would churn), a pod's
//! `namespace/name` runs to 300 bytes on every series of the namespace, and two runtimes
//! (or a pod re-created under the same name) can give one name to two namespaces. The id
//! is short, fixed for the namespace's life, and unique. A pod's `container_name` is
//! empty: its namespace is shared by all its containers, and the pod names it.
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

use crate::snapshot::{NetnsInfo, Provenance};
use crate::source::cgroup::{self, CgroupError, Container, Runtime};
use crate::source::docker::{self, ConfigCache, DockerError};
use crate::source::netns::{self, Discovery, Netns, NetnsError};
use crate::source::runtime::{self, cache::StateCache, Found, Names, RuntimeError};
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
    /// containerd's v2 task state, for the pods of its CRI plugin.
    pub containerd_state: PathBuf,
    /// The containers/storage run root of CRI-O and Podman.
    pub containers_run_root: PathBuf,
}

impl Sources {
    fn runtime_roots(&self) -> runtime::Roots {
        runtime::Roots {
            containerd_state: self.containerd_state.clone(),
            containers_run_root: self.containers_run_root.clone(),
            proc_root: self.proc_root.clone(),
        }
    }
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
            containerd_state: runtime::DEFAULT_CONTAINERD_STATE.into(),
            containers_run_root: runtime::DEFAULT_CONTAINERS_RUN_ROOT.into(),
        }
    }
}

/// The runtime state files that failed to read, kept from poll to poll.
#[derive(Debug, Default)]
pub struct StateCaches {
    pub docker: ConfigCache,
    pub runtimes: StateCache,
}

/// One namespace to sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The namespace inode.
    pub id: u64,
    /// The `netns` label value.
    pub label: String,
    /// What `sockdiag_netns_info` says of it; its `netns` stays empty here: the poll sets
    /// it to the label the namespace cap leaves the namespace.
    pub info: NetnsInfo,
    /// Whether a runtime or root made it, for the namespace cap's ranking.
    pub provenance: Provenance,
    /// The path to hand to [`netns::HomeNetns::enter`] with `id`.
    pub enter: PathBuf,
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
    #[error("naming a container: {0}")]
    Runtime(#[from] Arc<RuntimeError>),
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
    /// The runtime whose state has the container, and what it names.
    pub found: Option<Found>,
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

/// Discovers every namespace and names it; `caches` remember the runtime files that
/// failed from one poll to the next.
pub fn discover(sources: &Sources, caches: &mut StateCaches) -> Result<Namespaces, DiscoverError> {
    let discovery = netns::discover(&sources.proc_root, &sources.bind_roots)?;
    let mut failures = Failures::default();
    let users = Users::new(&sources.proc_root);
    let roots = sources.runtime_roots();
    caches.docker.begin_poll();
    if let Err(error) = caches.runtimes.begin_poll(&roots) {
        failures.push(Arc::new(error).into(), true);
    }
    let attributions: Vec<Attribution> = discovery
        .namespaces
        .iter()
        .map(|ns| {
            // The host's processes are not a container's, even when a `--network host`
            // container shares the namespace; its label is `host` whatever they are.
            if discovery.host == Some(ns.inode) {
                Attribution::default()
            } else {
                attribute(sources, &roots, &users, ns, caches, &mut failures)
            }
        })
        .collect();
    caches.docker.end_poll();
    caches.runtimes.end_poll();
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

/// The container of the lowest member process that is in one, what its runtime's state
/// names, and who owns the lowest member's user namespace.
fn attribute(
    sources: &Sources,
    roots: &runtime::Roots,
    users: &Users,
    ns: &Netns,
    caches: &mut StateCaches,
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
    let found = container
        .as_ref()
        .and_then(|c| name(sources, roots, c, caches, failures));
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
        found,
        owner,
    }
}

/// What the state of the container's runtime names: the runtime its cgroup path names,
/// or for a bare id (a cgroupfs-driver pod) containerd's, CRI-O's, then Docker's. A
/// failure is counted (once per broken file) and the container stays named by its id.
fn name(
    sources: &Sources,
    roots: &runtime::Roots,
    container: &Container,
    caches: &mut StateCaches,
    failures: &mut Failures,
) -> Option<Found> {
    let docker = |caches: &mut StateCaches, failures: &mut Failures| match caches
        .docker
        .names(&sources.docker_root, &container.id)
    {
        Ok(names) => names.map(|names| Found {
            runtime: Runtime::Docker,
            names,
        }),
        Err(failed) => {
            failures.push(failed.error.into(), failed.fresh);
            None
        }
    };
    if container.runtime == Some(Runtime::Docker) {
        return docker(caches, failures);
    }
    match caches
        .runtimes
        .lookup(roots, &container.id, container.runtime)
    {
        Ok(Some(found)) => Some(found),
        Ok(None) if container.runtime.is_none() => docker(caches, failures),
        Ok(None) => None,
        Err(failed) => {
            failures.push(failed.error.into(), failed.fresh);
            None
        }
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
                info: info(ns.inode, container, attribution.found.as_ref()),
                provenance: provenance(host, ns, attribution),
                enter: ns.enter_path(proc_root),
            }
        })
        .collect()
}

/// The info of a namespace: the cgroup path's id, runtime and pod UID, and what the
/// runtime's state names (which also settles the runtime of a bare id).
fn info(inode: u64, container: Option<&Container>, found: Option<&Found>) -> NetnsInfo {
    let names = found.map(|f| &f.names);
    // Capped where each runtime's state was parsed.
    let name = |pick: fn(&Names) -> &Option<String>| {
        names.and_then(|n| pick(n).clone()).unwrap_or_default()
    };
    NetnsInfo {
        inode,
        container_id: container.map(|c| c.id.to_string()).unwrap_or_default(),
        container_name: name(|n| &n.container_name),
        pod_name: name(|n| &n.pod_name),
        pod_namespace: name(|n| &n.pod_namespace),
        pod_uid: container
            .and_then(|c| c.pod_uid.clone())
            .or_else(|| names.and_then(|n| n.pod_uid.clone()))
            .unwrap_or_default(),
        runtime: found
            .map(|f| f.runtime)
            .or_else(|| container.and_then(|c| c.runtime))
            .map(|r| r.as_str().to_string())
            .unwrap_or_default(),
        compose_project: name(|n| &n.compose_project),
        compose_service: name(|n| &n.compose_service),
        ..NetnsInfo::default()
    }
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
            found: None,
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
        docker.found = Some(Found {
            runtime: Runtime::Docker,
            names: Names {
                container_name: Some("web-1".into()),
                compose_project: Some("shop".into()),
                compose_service: Some("web".into()),
                ..Names::default()
            },
        });
        // A bare id under a cgroupfs-driver pod, found in containerd's state.
        let mut pod = in_container(ID_B, None, Some(UID));
        pod.found = Some(Found {
            runtime: Runtime::Containerd,
            names: Names {
                pod_name: Some("web-7d9f4".into()),
                pod_namespace: Some("shop".into()),
                pod_uid: Some("ignored: the cgroup path's UID wins".into()),
                ..Names::default()
            },
        });
        let attributions = [
            Attribution::default(),
            Attribution::default(),
            docker,
            pod,
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
                runtime: "docker".into(),
                compose_project: "shop".into(),
                compose_service: "web".into(),
                ..NetnsInfo::default()
            }
        );
        assert_eq!(
            out[3].info,
            NetnsInfo {
                inode: 40,
                container_id: ID_B.into(),
                pod_name: "web-7d9f4".into(),
                pod_namespace: "shop".into(),
                pod_uid: UID.into(),
                runtime: "containerd".into(),
                ..NetnsInfo::default()
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
