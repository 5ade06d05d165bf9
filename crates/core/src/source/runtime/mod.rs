//! Names of containers and pods, from each container runtime's own state on disk: no API
//! socket, no Kubernetes API server. Given the id a cgroup path gave (see [`cgroup`]) and
//! the runtime it hinted, [`lookup`] reads the one small per-container file that runtime
//! keeps, and says what it names:
//!
//! | runtime    | file (relative to its configured root)                 | names                          |
//! |------------|--------------------------------------------------------|--------------------------------|
//! | containerd | `<namespace>/<id>/config.json` under the v2 task state  | CRI annotations: pod, namespace, UID |
//! | CRI-O      | `overlay-containers/<id>/userdata/config.json` under the run root | `io.kubernetes.pod.*` annotations |
//! | Podman     | `overlay-containers/<id>/userdata/conmon.pid` under the run root, then that conmon's command line | `-n NAME` |
//! | Docker     | see [`docker`]                                          | `Name`                         |
//!
//! A cgroup path under a cgroupfs-driver pod (`kubepods/<qos>/pod<uid>/<id>`) does not say
//! which runtime made the container: then containerd's state is looked in first, then
//! CRI-O's, then Docker's (a kubelet with cri-dockerd), and the runtime is the one whose
//! state has the id.
//!
//! Every file is read through [`bounded`]: at most [`bounded::RUNTIME_STATE_LIMIT`], a
//! regular file, opened beneath its configured root (a symlink out of it is refused, not
//! followed). A file that does not exist is `None` (another runtime's container, or one
//! that just stopped); one that exists but cannot be read or parsed is an error naming
//! it. Every name is cut to [`label_cap::CONTAINER_NAME`]. [`cache::StateCache`]
//! remembers what each file gave, names or a failure, so that an unchanged file costs a
//! stat a poll and a broken one is read, counted and logged once.
//!
//! [`cgroup`]: crate::source::cgroup
//! [`docker`]: crate::source::docker

pub mod cache;
pub mod containerd;
pub mod crio;
pub mod oci;
pub mod podman;

use std::io;
use std::path::{Path, PathBuf};

use crate::source::bounded::{self, BoundedReadError};
use crate::source::cgroup::{ContainerId, Runtime};
use crate::source::label_cap;
use crate::source::state_cache::StateFile;

/// containerd's state directory of v2 shims (`state` in config.toml, plus the plugin's
/// directory): one directory per containerd namespace, one bundle per container in it.
pub const DEFAULT_CONTAINERD_STATE: &str = "/run/containerd/io.containerd.runtime.v2.task";

/// The run root of containers/storage, shared by CRI-O (`runroot` in crio.conf) and a
/// root Podman (`runroot` in storage.conf).
pub const DEFAULT_CONTAINERS_RUN_ROOT: &str = "/run/containers/storage";

/// What a runtime's state names about a container; `None` where it says nothing.
///
/// For a container in a Kubernetes pod, `container_name` stays `None`: the network
/// namespace is the pod's, shared by all its containers, and the pod names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Names {
    pub container_name: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub pod_uid: Option<String>,
    /// Docker Compose's `com.docker.compose.project` and `.service` labels.
    pub compose_project: Option<String>,
    pub compose_service: Option<String>,
}

impl Names {
    /// Every name cut to [`label_cap::CONTAINER_NAME`].
    pub fn capped(self) -> Names {
        let cap = |name: Option<String>| {
            name.map(|name| label_cap::cap_owned(name, label_cap::CONTAINER_NAME))
        };
        Names {
            container_name: cap(self.container_name),
            pod_name: cap(self.pod_name),
            pod_namespace: cap(self.pod_namespace),
            pod_uid: cap(self.pod_uid),
            compose_project: cap(self.compose_project),
            compose_service: cap(self.compose_service),
        }
    }
}

/// A container found in a runtime's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The runtime whose state has the container (for a bare id, the one that said so).
    pub runtime: Runtime,
    pub names: Names,
}

/// Where the runtimes keep their state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    pub containerd_state: PathBuf,
    pub containers_run_root: PathBuf,
    /// For the command line of Podman's conmon.
    pub proc_root: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            containerd_state: DEFAULT_CONTAINERD_STATE.into(),
            containers_run_root: DEFAULT_CONTAINERS_RUN_ROOT.into(),
            proc_root: "/proc".into(),
        }
    }
}

/// Why a runtime's state could not name a container.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The file exists but could not be read within the limits.
    #[error("{0}")]
    Read(#[from] BoundedReadError),
    /// The file was read but is not what the runtime writes.
    #[error("parsing {}: {error}", .path.display())]
    Parse {
        path: PathBuf,
        error: serde_json::Error,
    },
    /// Podman's `conmon.pid` holds no process id.
    #[error("{} holds no process id", .path.display())]
    Pid { path: PathBuf },
    /// The containerd state directory could not be listed.
    #[error("listing {}: {error}", .path.display())]
    List { path: PathBuf, error: io::Error },
}

impl RuntimeError {
    /// The file or directory the error is about.
    pub fn path(&self) -> &Path {
        match self {
            RuntimeError::Read(error) => error.path(),
            RuntimeError::Parse { path, .. }
            | RuntimeError::Pid { path }
            | RuntimeError::List { path, .. } => path,
        }
    }
}

/// The runtime state of container `id`, looked up in the runtime `hint` names or, for a
/// bare id, in containerd's, CRI-O's and Docker's in turn. `None` when none has it.
/// Docker is left to the caller (its names come from [`crate::source::docker`]).
pub fn lookup(
    roots: &Roots,
    containerd_namespaces: &[String],
    id: &ContainerId,
    hint: Option<Runtime>,
) -> Result<Option<Found>, RuntimeError> {
    lookup_read(roots, containerd_namespaces, id, hint).map(|read| read.map(|(found, _)| found))
}

/// [`lookup`], with the state file that named the container (for [`cache::StateCache`]).
pub fn lookup_read(
    roots: &Roots,
    containerd_namespaces: &[String],
    id: &ContainerId,
    hint: Option<Runtime>,
) -> Result<Option<(Found, StateFile)>, RuntimeError> {
    let found = |runtime, read: Option<(Names, StateFile)>| {
        read.map(|(names, file)| (Found { runtime, names }, file))
    };
    match hint {
        Some(Runtime::Containerd) => Ok(found(
            Runtime::Containerd,
            containerd::read_file(&roots.containerd_state, containerd_namespaces, id)?,
        )),
        Some(Runtime::Crio) => Ok(found(
            Runtime::Crio,
            crio::read_file(&roots.containers_run_root, id)?,
        )),
        Some(Runtime::Podman) => Ok(found(
            Runtime::Podman,
            podman::read_file(&roots.containers_run_root, &roots.proc_root, id)?,
        )),
        Some(Runtime::Docker) => Ok(None),
        None => {
            if let Some(read) =
                containerd::read_file(&roots.containerd_state, containerd_namespaces, id)?
            {
                return Ok(found(Runtime::Containerd, Some(read)));
            }
            Ok(found(
                Runtime::Crio,
                crio::read_file(&roots.containers_run_root, id)?,
            ))
        }
    }
}

/// The text of `relative` beneath `root` (never leaving it) and the file it came from, or
/// `None` when it does not exist.
fn read_state(
    root: &Path,
    relative: &Path,
    limit: u64,
) -> Result<Option<(String, StateFile)>, RuntimeError> {
    match bounded::read_beneath_with_identity(root, relative, limit) {
        Ok((text, identity)) => Ok(Some((
            text,
            StateFile {
                path: root.join(relative),
                identity,
            },
        ))),
        Err(error) if error.io_kind() == Some(io::ErrorKind::NotFound) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// A fresh directory standing for a runtime's root in unit tests, removed on drop.
#[cfg(test)]
pub(crate) struct TempRoot(pub PathBuf);

#[cfg(test)]
impl TempRoot {
    pub fn new(tag: &str) -> TempRoot {
        let path = std::env::temp_dir().join(format!(
            "sockdiag-runtime-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempRoot(path)
    }

    /// Writes `text` at `relative`, making its directories.
    pub fn write(&self, relative: &str, text: &[u8]) -> PathBuf {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

#[cfg(test)]
impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTAINERD_SANDBOX: &str = include_str!("testdata/containerd-sandbox.json");
    const CRIO_SANDBOX: &str = include_str!("testdata/crio-sandbox.json");
    const SANDBOX: &str = "c04514bc6cbfcb24a04dfe1155eccca2fbd5e3b42e25e41b2297baaa047b0e0a";
    const CRIO_ID: &str = "5d0c6f1e2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";

    fn roots(containerd: &TempRoot, run_root: &TempRoot) -> Roots {
        Roots {
            containerd_state: containerd.0.clone(),
            containers_run_root: run_root.0.clone(),
            proc_root: "/proc".into(),
        }
    }

    #[test]
    fn a_bare_id_is_found_in_whichever_runtime_has_it() {
        let containerd = TempRoot::new("lookup-containerd");
        let run_root = TempRoot::new("lookup-runroot");
        containerd.write(
            &format!("k8s.io/{SANDBOX}/config.json"),
            CONTAINERD_SANDBOX.as_bytes(),
        );
        run_root.write(
            &format!("overlay-containers/{CRIO_ID}/userdata/config.json"),
            CRIO_SANDBOX.as_bytes(),
        );
        let roots = roots(&containerd, &run_root);
        let namespaces = containerd::namespaces(&containerd.0).unwrap();
        let sandbox = ContainerId::parse(SANDBOX).unwrap();
        let crio = ContainerId::parse(CRIO_ID).unwrap();
        let neither = ContainerId::parse(&"e".repeat(64)).unwrap();

        let found = lookup(&roots, &namespaces, &sandbox, None)
            .unwrap()
            .unwrap();
        assert_eq!(found.runtime, Runtime::Containerd);
        assert_eq!(found.names.pod_name.as_deref(), Some("web-7d9f4"));
        let found = lookup(&roots, &namespaces, &crio, None).unwrap().unwrap();
        assert_eq!(found.runtime, Runtime::Crio);
        assert_eq!(
            found.names.pod_name.as_deref(),
            Some("checkout-5f6b8c9d7-x2k4p")
        );
        assert_eq!(lookup(&roots, &namespaces, &neither, None).unwrap(), None);
        // A hint looks only where it says.
        assert_eq!(
            lookup(&roots, &namespaces, &crio, Some(Runtime::Containerd)).unwrap(),
            None
        );
        assert_eq!(
            lookup(&roots, &namespaces, &sandbox, Some(Runtime::Docker)).unwrap(),
            None
        );
    }

    /// A bare id under a cri-dockerd pod: Docker runs it through containerd's `moby`
    /// namespace, whose bundle names nothing; the lookup must find nothing there, so that
    /// Docker's config (with the pod's labels) names it.
    #[test]
    fn a_bare_id_in_dockers_containerd_namespace_stopped_short_of_dockers_config() {
        let containerd = TempRoot::new("lookup-moby");
        let run_root = TempRoot::new("lookup-moby-runroot");
        containerd.write(
            &format!("moby/{SANDBOX}/config.json"),
            br#"{"ociVersion":"1.0.2-dev","annotations":{}}"#,
        );
        let roots = roots(&containerd, &run_root);
        let namespaces = containerd::namespaces(&containerd.0).unwrap();
        let id = ContainerId::parse(SANDBOX).unwrap();
        assert_eq!(lookup(&roots, &namespaces, &id, None).unwrap(), None);
    }

    #[test]
    fn missing_roots_name_nothing() {
        let roots = Roots {
            containerd_state: "/nonexistent/containerd".into(),
            containers_run_root: "/nonexistent/storage".into(),
            proc_root: "/proc".into(),
        };
        let namespaces = containerd::namespaces(&roots.containerd_state).unwrap();
        let id = ContainerId::parse(SANDBOX).unwrap();
        for hint in [None, Some(Runtime::Crio), Some(Runtime::Podman)] {
            assert_eq!(lookup(&roots, &namespaces, &id, hint).unwrap(), None);
        }
    }
}
