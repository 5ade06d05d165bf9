//! Docker's container names, from the engine's own files: `Name` in
//! `<data_root>/containers/<full id>/config.v2.json` (written by dockerd, `/web-1` for
//! `docker run --name web-1`), so naming a container needs no Docker API socket.
//!
//! A container that is not Docker's (containerd, CRI-O, podman) has no such file: that is
//! `None`, not an error. A file that exists but is not the JSON dockerd writes is an error
//! naming the file.

use std::io;
use std::path::{Path, PathBuf};

use crate::source::cgroup::ContainerId;

/// Docker's data root unless configured otherwise (`data-root` in daemon.json).
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/docker";

/// Why a container's config file could not give a name.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("reading {}: {error}", .path.display())]
    Read { path: PathBuf, error: io::Error },
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
}

/// The container name in the text of a config.v2.json, without dockerd's leading `/`;
/// `None` when the file has no (or an empty) name.
pub fn parse_config(text: &str) -> Result<Option<String>, serde_json::Error> {
    let config: ConfigV2 = serde_json::from_str(text)?;
    Ok(config
        .name
        .map(|name| name.strip_prefix('/').unwrap_or(&name).to_string())
        .filter(|name| !name.is_empty()))
}

/// `<data_root>/containers/<id>/config.v2.json`.
pub fn config_path(data_root: &Path, id: &ContainerId) -> PathBuf {
    data_root
        .join("containers")
        .join(id.as_str())
        .join("config.v2.json")
}

/// The name of container `id`; `None` when Docker has no config for it.
pub fn container_name(data_root: &Path, id: &ContainerId) -> Result<Option<String>, DockerError> {
    let path = config_path(data_root, id);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(DockerError::Read { path, error }),
    };
    parse_config(&text).map_err(|error| DockerError::Parse { path, error })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
