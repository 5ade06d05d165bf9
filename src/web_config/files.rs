//! Reading the files a web config names, and the config itself: paths relative to the
//! config's directory, a regular file after following symlinks (a Kubernetes Secret mount
//! is one), at most [`CONFIG_LIMIT`] bytes.

use std::path::{Path, PathBuf};

use crate::source::bounded::{self, BoundedReadError, CONFIG_LIMIT};

/// A path in the config, relative to the config file's directory as in exporter-toolkit.
pub(super) fn resolve(base: &Path, path: &str) -> PathBuf {
    base.join(path)
}

/// Reads the web config or a file it names (certificate, key, CA), following symlinks (a
/// Kubernetes Secret mount is one) to a regular file of at most [`CONFIG_LIMIT`] bytes.
/// The error is the reason, for the caller to name the file or key.
pub(super) fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    bounded::read(path, CONFIG_LIMIT).map_err(|error| match error {
        BoundedReadError::Open { source, .. } | BoundedReadError::Read { source, .. } => {
            source.to_string()
        }
        BoundedReadError::NotRegular { .. } => {
            "not a regular file (after following symlinks)".to_string()
        }
        BoundedReadError::TooLarge { limit, .. } => {
            format!(
                "larger than the limit of {} MiB ({limit} bytes)",
                limit >> 20
            )
        }
        BoundedReadError::NotUtf8 { .. } => "not UTF-8 text".to_string(),
        // Only opens beneath a root fail these ways; a web config path may go anywhere.
        other @ (BoundedReadError::Escapes { .. } | BoundedReadError::Unsupported { .. }) => {
            other.to_string()
        }
    })
}
