//! CRI-O: the OCI spec it writes for every container, sandbox or not, into the
//! container's run directory of containers/storage,
//! `<run_root>/overlay-containers/<id>/userdata/config.json` (run root:
//! `/run/containers/storage`; CRI-O writes the same file under the storage root too).
//!
//! CRI-O copies the kubelet's labels into the annotations, so every container's spec
//! names its pod under the keys the kubelet uses everywhere: `io.kubernetes.pod.name`,
//! `io.kubernetes.pod.namespace`, `io.kubernetes.pod.uid`. Its own
//! `io.kubernetes.cri-o.KubeName` and `io.kubernetes.cri-o.Namespace` (sandboxes only)
//! are the fallback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::source::bounded;
use crate::source::cgroup::ContainerId;
use crate::source::runtime::oci::{self, non_empty};
use crate::source::runtime::{read_state, Names, RuntimeError};
use crate::source::state_cache::StateFile;

/// The kubelet's pod labels, which CRI-O copies into every container's annotations.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// CRI-O's own sandbox annotations.
pub const KUBE_NAME: &str = "io.kubernetes.cri-o.KubeName";
pub const NAMESPACE: &str = "io.kubernetes.cri-o.Namespace";

/// What the annotations of a CRI-O container name.
pub fn names(annotations: &BTreeMap<String, String>) -> Names {
    let get = |key, fallback: Option<&str>| {
        non_empty(annotations, key)
            .or_else(|| fallback.and_then(|f| non_empty(annotations, f)))
            .map(String::from)
    };
    Names {
        pod_name: get(POD_NAME, Some(KUBE_NAME)),
        pod_namespace: get(POD_NAMESPACE, Some(NAMESPACE)),
        pod_uid: get(POD_UID, None),
        ..Names::default()
    }
}

/// What the text of a CRI-O config.json names.
pub fn parse(text: &str) -> Result<Names, serde_json::Error> {
    oci::parse_annotations(text).map(|annotations| names(&annotations).capped())
}

/// `overlay-containers/<id>/userdata/<file>`, relative to a containers/storage root: where
/// CRI-O and Podman keep a container's files.
pub fn userdata(id: &ContainerId, file: &str) -> PathBuf {
    Path::new("overlay-containers")
        .join(id.as_str())
        .join("userdata")
        .join(file)
}

/// The names of container `id`; `None` when the run root has no spec for it.
pub fn read(run_root: &Path, id: &ContainerId) -> Result<Option<Names>, RuntimeError> {
    read_file(run_root, id).map(|read| read.map(|(names, _)| names))
}

/// [`read`], with the spec it read.
pub fn read_file(
    run_root: &Path,
    id: &ContainerId,
) -> Result<Option<(Names, StateFile)>, RuntimeError> {
    let relative = userdata(id, "config.json");
    let Some((text, file)) = read_state(run_root, &relative, bounded::RUNTIME_STATE_LIMIT)? else {
        return Ok(None);
    };
    match parse(&text) {
        Ok(names) => Ok(Some((names, file))),
        Err(error) => Err(RuntimeError::Parse {
            path: file.path,
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::runtime::TempRoot;

    /// A pod sandbox's spec as CRI-O's RunPodSandbox writes it: the kubelet's labels, its
    /// own `io.kubernetes.cri-o.*` annotations (from CRI-O's documented annotation keys),
    /// the systemd-driver cgroup path.
    const SANDBOX: &str = include_str!("testdata/crio-sandbox.json");
    /// A container of the same pod, as CreateContainer writes it.
    const CONTAINER: &str = include_str!("testdata/crio-container.json");
    const ID: &str = "5d0c6f1e2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";

    fn checkout() -> Names {
        Names {
            pod_name: Some("checkout-5f6b8c9d7-x2k4p".into()),
            pod_namespace: Some("shop".into()),
            pod_uid: Some("3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a9f".into()),
            ..Names::default()
        }
    }

    #[test]
    fn the_sandbox_and_a_container_both_name_the_pod() {
        assert_eq!(parse(SANDBOX).unwrap(), checkout());
        // No infra container (drop_infra_ctr): the lowest process is an app container's.
        assert_eq!(parse(CONTAINER).unwrap(), checkout());
    }

    #[test]
    fn cri_o_own_keys_are_the_fallback() {
        let text = r#"{"annotations":{"io.kubernetes.cri-o.KubeName":"db-0",
            "io.kubernetes.cri-o.Namespace":"shop","io.kubernetes.pod.name":""}}"#;
        let names = parse(text).unwrap();
        assert_eq!(names.pod_name.as_deref(), Some("db-0"));
        assert_eq!(names.pod_namespace.as_deref(), Some("shop"));
        assert_eq!(names.pod_uid, None);
        // A container Podman made in the same storage names nothing here.
        let podman = include_str!("testdata/podman-config.json");
        assert_eq!(parse(podman).unwrap(), Names::default());
    }

    #[test]
    fn reader_finds_the_spec_in_the_run_root_and_names_a_malformed_one() {
        let root = TempRoot::new("crio-read");
        let id = ContainerId::parse(ID).unwrap();
        assert_eq!(read(&root.0, &id).unwrap(), None);
        let path = root.write(
            &format!("overlay-containers/{ID}/userdata/config.json"),
            SANDBOX.as_bytes(),
        );
        assert_eq!(read(&root.0, &id).unwrap(), Some(checkout()));
        std::fs::write(&path, b"{\"annotations\":").unwrap();
        assert_eq!(
            read(&root.0, &id).unwrap_err().to_string(),
            format!(
                "parsing {}: EOF while parsing a value at line 1 column 15",
                path.display()
            )
        );
    }
}
