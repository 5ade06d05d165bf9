//! containerd: the OCI bundle each v2 shim runs, `<state>/<namespace>/<id>/config.json`
//! (state: `/run/containerd/io.containerd.runtime.v2.task`). The CRI plugin (namespace
//! `k8s.io`) writes the pod into the bundle's annotations, for the sandbox and for every
//! container of the pod alike:
//!
//! - `io.kubernetes.cri.sandbox-name`: the pod's name;
//! - `io.kubernetes.cri.sandbox-namespace`: its Kubernetes namespace;
//! - `io.kubernetes.cri.sandbox-uid`: its UID (containerd 1.6 and later);
//! - `io.kubernetes.cri.container-type`: `sandbox` or `container`.
//!
//! A bundle without them (`ctr run` in another namespace) names nothing, but still says the
//! container is containerd's.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::source::bounded;
use crate::source::cgroup::ContainerId;
use crate::source::runtime::oci::{self, non_empty};
use crate::source::runtime::{read_state, Names, RuntimeError};
use crate::source::state_cache::StateFile;

/// The namespace the kubelet's containers live in; looked in first.
pub const KUBERNETES_NAMESPACE: &str = "k8s.io";

/// Docker's namespace in containerd: its bundles name nothing, Docker's own state does
/// (a bare id under a cri-dockerd pod must reach Docker's config, not stop here).
pub const DOCKER_NAMESPACE: &str = "moby";

/// Pod-level annotations of containerd's CRI plugin.
pub const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
pub const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
pub const SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";

/// More namespaces than this under the state directory are not looked in: a real node has
/// two or three (`k8s.io`, `moby`, `default`).
pub const MAX_NAMESPACES: usize = 64;

/// What the annotations of a bundle name.
pub fn names(annotations: &BTreeMap<String, String>) -> Names {
    let get = |key| non_empty(annotations, key).map(String::from);
    Names {
        pod_name: get(SANDBOX_NAME),
        pod_namespace: get(SANDBOX_NAMESPACE),
        pod_uid: get(SANDBOX_UID),
        ..Names::default()
    }
}

/// What the text of a bundle's config.json names.
pub fn parse(text: &str) -> Result<Names, serde_json::Error> {
    oci::parse_annotations(text).map(|annotations| names(&annotations).capped())
}

/// The containerd namespaces under `state`, `k8s.io` first, then by name, Docker's left
/// out; none when the directory does not exist (no containerd on this node).
pub fn namespaces(state: &Path) -> Result<Vec<String>, RuntimeError> {
    let list_error = |error| RuntimeError::List {
        path: state.to_path_buf(),
        error,
    };
    let entries = match std::fs::read_dir(state) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(list_error(error)),
    };
    let mut names = Vec::new();
    for entry in entries.take(MAX_NAMESPACES) {
        let entry = entry.map_err(list_error)?;
        // A name that is not UTF-8 is no namespace containerd accepts.
        match entry.file_name().into_string() {
            Ok(name) if name != DOCKER_NAMESPACE => names.push(name),
            _ => {}
        }
    }
    names.sort_by(|a, b| {
        (a != KUBERNETES_NAMESPACE, a.as_str()).cmp(&(b != KUBERNETES_NAMESPACE, b.as_str()))
    });
    Ok(names)
}

/// `<namespace>/<id>/config.json`, relative to the state directory.
pub fn bundle_config(namespace: &str, id: &ContainerId) -> PathBuf {
    Path::new(namespace).join(id.as_str()).join("config.json")
}

/// The names of container `id` from the first of `namespaces` whose state has its
/// bundle; `None` when none has.
pub fn read(
    state: &Path,
    namespaces: &[String],
    id: &ContainerId,
) -> Result<Option<Names>, RuntimeError> {
    read_file(state, namespaces, id).map(|read| read.map(|(names, _)| names))
}

/// [`read`], with the bundle's config.json it read.
pub fn read_file(
    state: &Path,
    namespaces: &[String],
    id: &ContainerId,
) -> Result<Option<(Names, StateFile)>, RuntimeError> {
    for namespace in namespaces {
        let relative = bundle_config(namespace, id);
        if let Some((text, file)) = read_state(state, &relative, bounded::RUNTIME_STATE_LIMIT)? {
            return match parse(&text) {
                Ok(names) => Ok(Some((names, file))),
                Err(error) => Err(RuntimeError::Parse {
                    path: file.path,
                    error,
                }),
            };
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::runtime::TempRoot;

    /// Written by containerd 1.6.20 for `ctr -n k8s.io run --cgroup /kubepods/besteffort/
    /// pod<uid>/<id>` with the annotations a kubelet's RunPodSandbox gives.
    const SANDBOX: &str = include_str!("testdata/containerd-sandbox.json");
    /// The same for the pod's container `web`, joined to the sandbox's network namespace.
    const CONTAINER: &str = include_str!("testdata/containerd-container.json");
    const SANDBOX_ID: &str = "c04514bc6cbfcb24a04dfe1155eccca2fbd5e3b42e25e41b2297baaa047b0e0a";
    const CONTAINER_ID: &str = "ea493f7acd552441eb8fe7c97153b183db9480ba91f2902d36c2c57d991399af";

    fn shop_web() -> Names {
        Names {
            pod_name: Some("web-7d9f4".into()),
            pod_namespace: Some("shop".into()),
            pod_uid: Some("8e5d0a43-7c1b-4f2e-9a6d-3b2c1d0e9f8a".into()),
            ..Names::default()
        }
    }

    #[test]
    fn the_sandbox_and_its_container_both_name_the_pod() {
        assert_eq!(parse(SANDBOX).unwrap(), shop_web());
        assert_eq!(parse(CONTAINER).unwrap(), shop_web());
    }

    #[test]
    fn a_bundle_without_cri_annotations_names_nothing() {
        // `ctr run` in the default namespace, `docker run` in `moby`.
        let text = r#"{"ociVersion":"1.0.2-dev","annotations":{"other":"x"},"linux":{}}"#;
        assert_eq!(parse(text).unwrap(), Names::default());
        assert_eq!(
            parse(r#"{"ociVersion":"1.0.2-dev"}"#).unwrap(),
            Names::default()
        );
        // Empty values are no names.
        let empty = r#"{"annotations":{"io.kubernetes.cri.sandbox-name":""}}"#;
        assert_eq!(parse(empty).unwrap(), Names::default());
    }

    #[test]
    fn namespaces_kubernetes_first_then_by_name_and_none_without_containerd() {
        let state = TempRoot::new("containerd-ns");
        for ns in ["moby", "default", "k8s.io", "buildkit"] {
            std::fs::create_dir_all(state.0.join(ns)).unwrap();
        }
        assert_eq!(
            namespaces(&state.0).unwrap(),
            ["k8s.io", "buildkit", "default"]
        );
        assert!(namespaces(Path::new("/nonexistent/containerd/state"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn reader_finds_the_bundle_in_its_namespace() {
        let state = TempRoot::new("containerd-read");
        state.write(
            &format!("k8s.io/{SANDBOX_ID}/config.json"),
            SANDBOX.as_bytes(),
        );
        state.write(
            &format!("k8s.io/{CONTAINER_ID}/config.json"),
            CONTAINER.as_bytes(),
        );
        std::fs::create_dir_all(state.0.join("moby")).unwrap();
        let namespaces = namespaces(&state.0).unwrap();
        let sandbox = ContainerId::parse(SANDBOX_ID).unwrap();
        assert_eq!(
            read(&state.0, &namespaces, &sandbox).unwrap(),
            Some(shop_web())
        );
        let absent = ContainerId::parse(&"a".repeat(64)).unwrap();
        assert_eq!(read(&state.0, &namespaces, &absent).unwrap(), None);
    }

    #[test]
    fn reader_error_names_the_malformed_bundle() {
        let state = TempRoot::new("containerd-malformed");
        let path = state.write(
            &format!("k8s.io/{SANDBOX_ID}/config.json"),
            br#"{"annotations":{"io.kubernetes.cri.sandbox-name":7}}"#,
        );
        let namespaces = namespaces(&state.0).unwrap();
        let id = ContainerId::parse(SANDBOX_ID).unwrap();
        assert_eq!(
            read(&state.0, &namespaces, &id).unwrap_err().to_string(),
            format!(
                "parsing {}: invalid type: integer `7`, expected a string at line 1 column 50",
                path.display()
            )
        );
    }

    #[test]
    fn reader_refuses_a_bundle_over_the_limit() {
        let state = TempRoot::new("containerd-large");
        let mut huge = br#"{"annotations":{"x":""#.to_vec();
        huge.resize(bounded::RUNTIME_STATE_LIMIT as usize + 1, b'a');
        let path = state.write(&format!("k8s.io/{SANDBOX_ID}/config.json"), &huge);
        let namespaces = namespaces(&state.0).unwrap();
        let id = ContainerId::parse(SANDBOX_ID).unwrap();
        assert_eq!(
            read(&state.0, &namespaces, &id).unwrap_err().to_string(),
            format!("{} is larger than 1048576 bytes", path.display())
        );
    }
}
