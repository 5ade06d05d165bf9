//! Docker's container names, from the engine's own files: `Name` in
//! `<data_root>/containers/<full id>/config.v2.json` (written by dockerd, `/web-1` for
//! `docker run --name web-1`), so naming a container needs no Docker API socket. Its
//! labels (`Config.Labels`) give the Compose project and service
//! (`com.docker.compose.project`, `.service`) and, for a kubelet on cri-dockerd, the pod
//! (`io.kubernetes.pod.name`, `.namespace`, `.uid`): then the container is a pod's, and
//! its own name (`k8s_POD_web_shop_<uid>_0`) names nothing (see [`Names`]).
//!
//! A container that is not Docker's (containerd, CRI-O, podman) has no such file: that is
//! `None`, not an error. A file that exists but is not the JSON dockerd writes is an error
//! naming the file.
//!
//! The file is read through [`bounded`]: at most [`bounded::RUNTIME_STATE_LIMIT`], a
//! regular file, opened beneath the data root (a symlink out of it, to `/dev/zero` or
//! anywhere else, is refused by the kernel, not followed). The name is cut to
//! [`label_cap::CONTAINER_NAME`]. What a read gave, names or a failure, is remembered per
//! container by [`ConfigCache`] (a [`state_cache::FileCache`]) and the file not read again
//! until it changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::source::bounded::{self, BoundedReadError};
use crate::source::cgroup::ContainerId;
use crate::source::runtime::Names;
use crate::source::state_cache::{self, FileCache, StateError, StateFile};

/// Docker's data root unless configured otherwise (`data-root` in daemon.json).
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/docker";

/// Why a container's config file could not give a name.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("{0}")]
    Read(#[from] BoundedReadError),
    #[error("parsing {}: {error}", .path.display())]
    Parse {
        path: PathBuf,
        error: serde_json::Error,
    },
}

/// The part of config.v2.json we read; dockerd writes many more fields.
#[derive(Debug, serde::Deserialize)]
struct ConfigV2 {
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Config")]
    config: Option<ContainerConfig>,
}

#[derive(Debug, serde::Deserialize)]
struct ContainerConfig {
    #[serde(rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

/// Compose's labels on the containers it makes.
pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// What the text of a config.v2.json names, every name cut to
/// [`label_cap::CONTAINER_NAME`]: the container name without dockerd's leading `/`, the
/// Compose labels, and the kubelet's pod labels (which leave the container unnamed).
pub fn parse_names(text: &str) -> Result<Names, serde_json::Error> {
    let config: ConfigV2 = serde_json::from_str(text)?;
    let labels = config.config.and_then(|c| c.labels).unwrap_or_default();
    let label = |key: &str| labels.get(key).filter(|v| !v.is_empty()).cloned();
    let pod_name = label(crate::source::runtime::crio::POD_NAME);
    let container_name = config
        .name
        .map(|name| match name.strip_prefix('/') {
            Some(bare) => bare.to_string(),
            None => name,
        })
        .filter(|name| !name.is_empty() && pod_name.is_none());
    Ok(Names {
        container_name,
        pod_namespace: label(crate::source::runtime::crio::POD_NAMESPACE),
        pod_uid: label(crate::source::runtime::crio::POD_UID),
        pod_name,
        compose_project: label(COMPOSE_PROJECT),
        compose_service: label(COMPOSE_SERVICE),
    }
    .capped())
}

/// The container name in the text of a config.v2.json (see [`parse_names`]); `None` when
/// the file has no (or an empty) name.
pub fn parse_config(text: &str) -> Result<Option<String>, serde_json::Error> {
    parse_names(text).map(|names| names.container_name)
}

/// `containers/<id>/config.v2.json`, relative to the data root.
fn config_relative(id: &ContainerId) -> PathBuf {
    Path::new("containers")
        .join(id.as_str())
        .join("config.v2.json")
}

/// `<data_root>/containers/<id>/config.v2.json`.
pub fn config_path(data_root: &Path, id: &ContainerId) -> PathBuf {
    data_root.join(config_relative(id))
}

/// The name of container `id`; `None` when Docker has no config for it (or no data root).
pub fn container_name(data_root: &Path, id: &ContainerId) -> Result<Option<String>, DockerError> {
    names(data_root, id).map(|names| names.and_then(|n| n.container_name))
}

/// What container `id`'s config names; `None` when Docker has no config for it.
pub fn names(data_root: &Path, id: &ContainerId) -> Result<Option<Names>, DockerError> {
    names_read(data_root, id).map(|read| read.map(|(names, _)| names))
}

/// [`names`], with the file they were read from (for [`ConfigCache`]).
pub fn names_read(
    data_root: &Path,
    id: &ContainerId,
) -> Result<Option<(Names, StateFile)>, DockerError> {
    let relative = config_relative(id);
    let limit = bounded::RUNTIME_STATE_LIMIT;
    let (text, identity) = match bounded::read_beneath_with_identity(data_root, &relative, limit) {
        Ok(read) => read,
        Err(error) if error.io_kind() == Some(std::io::ErrorKind::NotFound) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let path = data_root.join(relative);
    match parse_names(&text) {
        Ok(names) => Ok(Some((names, StateFile { path, identity }))),
        Err(error) => Err(DockerError::Parse { path, error }),
    }
}

impl DockerError {
    /// The config file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DockerError::Read(error) => error.path(),
            DockerError::Parse { path, .. } => path,
        }
    }
}

impl StateError for DockerError {
    fn path(&self) -> &Path {
        DockerError::path(self)
    }
}

/// A failed read of a container's config.
pub type Failed = state_cache::Failed<DockerError>;

/// The reads of config.v2.json, per container, kept from poll to poll (see
/// [`state_cache`]): a file that named a container, or that failed (a symlink out of the
/// data root, 2 GB of JSON, a FIFO, a syntax error), is not read again, nor a failure
/// reported again, until its identity changes (a new file, as `docker rename` writes, or
/// a change in place). Only the containers asked about in the last poll are remembered.
#[derive(Debug, Default)]
pub struct ConfigCache {
    files: FileCache<ContainerId, Names, DockerError>,
}

impl ConfigCache {
    /// Starts a poll: failures not asked about again before [`ConfigCache::end_poll`] are
    /// forgotten then.
    pub fn begin_poll(&mut self) {
        self.files.begin_poll();
    }

    /// Forgets the containers not asked about since [`ConfigCache::begin_poll`].
    pub fn end_poll(&mut self) {
        self.files.end_poll();
    }

    /// [`names`], or what they were for an unchanged file (the names, or the failure).
    pub fn names(&mut self, data_root: &Path, id: &ContainerId) -> Result<Option<Names>, Failed> {
        self.files.get_or_read(id, || names_read(data_root, id))
    }

    /// Containers whose failure is remembered.
    pub fn failures(&self) -> usize {
        self.files.failures()
    }

    /// Config files read (or tried) since the cache was made.
    pub fn reads(&self) -> u64 {
        self.files.reads()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Trimmed from a real config.v2.json (dockerd 24): the name sits among many fields.
    const CONFIG: &str = r#"{"StreamConfig":{},"State":{"Running":true,"Pid":4242},
        "ID":"3f2a9c5b7e1d4f6a8b0c2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a",
        "Created":"2026-11-29T10:00:00.000000000Z","Path":"nginx",
        "Config":{"Hostname":"3f2a9c5b7e1d","Image":"nginx:1.27","Labels":{}},
        "Name":"/web-1","Driver":"overlay2","RestartCount":0}"#;

    #[test]
    fn name_without_leading_slash() {
        assert_eq!(parse_config(CONFIG).unwrap().as_deref(), Some("web-1"));
    }

    /// Written by dockerd 20.10 for `docker run --name real-looper --label
    /// com.docker.compose.project=shop --label com.docker.compose.service=web`.
    const COMPOSE: &str = include_str!("runtime/testdata/docker-compose-config.v2.json");

    #[test]
    fn compose_labels_of_a_real_config() {
        assert_eq!(
            parse_names(COMPOSE).unwrap(),
            Names {
                container_name: Some("real-looper".into()),
                compose_project: Some("shop".into()),
                compose_service: Some("web".into()),
                ..Names::default()
            }
        );
    }

    #[test]
    fn a_pod_container_under_cri_dockerd_is_named_by_its_pod() {
        let text = r#"{"Name":"/k8s_POD_web-7d9f4_shop_8e5d0a43-7c1b-4f2e-9a6d-3b2c1d0e9f8a_0",
            "Config":{"Labels":{"io.kubernetes.pod.name":"web-7d9f4",
            "io.kubernetes.pod.namespace":"shop","io.kubernetes.container.name":"POD",
            "io.kubernetes.pod.uid":"8e5d0a43-7c1b-4f2e-9a6d-3b2c1d0e9f8a"}}}"#;
        assert_eq!(
            parse_names(text).unwrap(),
            Names {
                pod_name: Some("web-7d9f4".into()),
                pod_namespace: Some("shop".into()),
                pod_uid: Some("8e5d0a43-7c1b-4f2e-9a6d-3b2c1d0e9f8a".into()),
                ..Names::default()
            }
        );
        // Labels that are not a map are no config dockerd writes.
        assert!(parse_names(r#"{"Name":"/x","Config":{"Labels":["a"]}}"#).is_err());
    }

    #[test]
    fn missing_or_empty_name_is_none() {
        assert_eq!(parse_config(r#"{"ID":"x"}"#).unwrap(), None);
        assert_eq!(parse_config(r#"{"Name":"/"}"#).unwrap(), None);
        assert_eq!(parse_config(r#"{"Name":null}"#).unwrap(), None);
    }

    #[test]
    fn malformed_json_is_an_error() {
        assert!(parse_config(r#"{"Name":"/web-1""#).is_err());
        assert!(parse_config(r#"{"Name":42}"#).is_err());
        assert!(parse_config("").is_err());
    }

    #[test]
    fn reader_none_for_missing_file_error_naming_the_path_for_bad_json() {
        let root = std::env::temp_dir().join(format!("sockdiag-docker-{}", std::process::id()));
        let id =
            ContainerId::parse("3f2a9c5b7e1d4f6a8b0c2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a")
                .unwrap();
        assert_eq!(container_name(&root, &id).unwrap(), None);
        let path = config_path(&root, &id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, CONFIG).unwrap();
        let named = container_name(&root, &id);
        std::fs::write(&path, "{\"Name\":").unwrap();
        let broken = container_name(&root, &id);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(named.unwrap().as_deref(), Some("web-1"));
        assert_eq!(
            broken.unwrap_err().to_string(),
            format!(
                "parsing {}: EOF while parsing a value at line 1 column 8",
                path.display()
            )
        );
    }

    const ID: &str = "3f2a9c5b7e1d4f6a8b0c2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a";

    /// A data root with container `ID`'s directory, removed on drop.
    struct Root {
        base: PathBuf,
        root: PathBuf,
        id: ContainerId,
    }

    impl Root {
        fn new(tag: &str) -> Root {
            let base =
                std::env::temp_dir().join(format!("sockdiag-docker-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&base);
            let root = base.join("docker");
            let id = ContainerId::parse(ID).unwrap();
            std::fs::create_dir_all(config_path(&root, &id).parent().unwrap()).unwrap();
            Root { base, root, id }
        }
        fn config(&self) -> PathBuf {
            config_path(&self.root, &self.id)
        }
        fn write(&self, text: &str) {
            let _ = std::fs::remove_file(self.config());
            std::fs::write(self.config(), text).unwrap();
        }
        fn link(&self, target: &Path) {
            let _ = std::fs::remove_file(self.config());
            std::os::unix::fs::symlink(target, self.config()).unwrap();
        }
        fn name(&self) -> Result<Option<String>, DockerError> {
            container_name(&self.root, &self.id)
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }

    #[test]
    fn docker_config_symlink_to_dev_zero_was_read_without_bound() {
        let root = Root::new("zero");
        root.link(Path::new("/dev/zero"));
        let expected = format!(
            "{} leads out of {}",
            root.config().display(),
            root.root.display()
        );
        assert_eq!(root.name().unwrap_err().to_string(), expected);
        // Through the cache: read and reported once, then remembered, not read again.
        let mut cache = ConfigCache::default();
        cache.begin_poll();
        let first = cache.names(&root.root, &root.id).unwrap_err();
        assert!(first.fresh);
        assert_eq!(first.error.to_string(), expected);
        for _ in 0..3 {
            cache.begin_poll();
            let again = cache.names(&root.root, &root.id).unwrap_err();
            assert!(!again.fresh, "an unchanged file is not read again");
            assert!(Arc::ptr_eq(&again.error, &first.error));
            cache.end_poll();
        }
        // Replaced by dockerd's file: read again, named.
        root.write(CONFIG);
        cache.begin_poll();
        assert_eq!(
            cache
                .names(&root.root, &root.id)
                .unwrap()
                .unwrap()
                .container_name,
            Some("web-1".to_string())
        );
        cache.end_poll();
        assert_eq!(cache.failures(), 0);
    }

    #[test]
    fn docker_name_of_50_mb_became_a_50_mb_label() {
        let root = Root::new("huge");
        let huge = format!("{{\"Name\":\"/{}\"}}", "a".repeat(50 << 20));
        root.write(&huge);
        assert_eq!(
            root.name().unwrap_err().to_string(),
            format!("{} is larger than 1048576 bytes", root.config().display())
        );
        // Under the file limit, the name is cut to the label cap, with the marker.
        let long = format!("{{\"Name\":\"/{}\"}}", "é".repeat(400 << 10));
        root.write(&long);
        let name = root.name().unwrap().unwrap();
        assert_eq!(name.len(), 253);
        assert_eq!(name, format!("{}…", "é".repeat(125)));
    }

    #[test]
    fn docker_config_symlink_escaping_the_data_root_was_followed() {
        let root = Root::new("escape");
        let outside = root.base.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("config.v2.json"), r#"{"Name":"/evil"}"#).unwrap();
        // The file itself, by a relative path up and out.
        root.link(Path::new("../../../outside/config.v2.json"));
        let by_dotdot = root.name();
        // A directory on the way.
        let dir = root.config().parent().unwrap().to_path_buf();
        std::fs::remove_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&outside, &dir).unwrap();
        let by_dir = root.name();
        for result in [by_dotdot, by_dir] {
            assert_eq!(
                result.unwrap_err().to_string(),
                format!(
                    "{} leads out of {}",
                    root.config().display(),
                    root.root.display()
                )
            );
        }
    }

    #[test]
    fn cache_forgets_containers_not_asked_and_counts_a_changed_file_as_fresh() {
        let root = Root::new("cache");
        root.write("{\"Name\":");
        let mut cache = ConfigCache::default();
        cache.begin_poll();
        assert!(cache.names(&root.root, &root.id).unwrap_err().fresh);
        cache.end_poll();
        // Rewritten, still broken: a new failure.
        root.write("{\"Name\":4");
        cache.begin_poll();
        let failed = cache.names(&root.root, &root.id).unwrap_err();
        assert!(failed.fresh);
        assert_eq!(
            failed.error.to_string(),
            format!(
                "parsing {}: invalid type: integer `4`, expected a string at line 1 column 9",
                root.config().display()
            )
        );
        cache.end_poll();
        assert_eq!(cache.failures(), 1);
        // A poll that no longer asks (the container is gone) forgets it.
        cache.begin_poll();
        cache.end_poll();
        assert_eq!(cache.failures(), 0);
    }

    /// Issue 27: a good config was read again every poll; `docker rename` (dockerd writes
    /// a new config.v2.json) must still show in the poll that follows.
    #[test]
    fn a_name_is_read_once_and_a_rename_shows_in_the_next_poll() {
        let root = Root::new("named");
        root.write(CONFIG);
        let mut cache = ConfigCache::default();
        let poll = |cache: &mut ConfigCache| {
            cache.begin_poll();
            let names = cache.names(&root.root, &root.id).unwrap().unwrap();
            cache.end_poll();
            names.container_name.unwrap()
        };
        let names: Vec<String> = (0..3).map(|_| poll(&mut cache)).collect();
        assert_eq!(names, ["web-1", "web-1", "web-1"]);
        assert_eq!(cache.reads(), 1, "an unchanged config is read once");
        // As dockerd writes it: a temporary file renamed over the config.
        let temp = root.config().with_extension("tmp");
        std::fs::write(&temp, CONFIG.replace("/web-1", "/web-renamed")).unwrap();
        std::fs::rename(&temp, root.config()).unwrap();
        assert_eq!(poll(&mut cache), "web-renamed");
        assert_eq!(poll(&mut cache), "web-renamed");
        assert_eq!(cache.reads(), 2);
    }
}
