//! Bounded reads: every file the exporter reads goes through here, with a size limit that
//! fits it and a check that it is a regular file. A hostile or broken file (a symlink to
//! `/dev/zero`, a FIFO, a 3 GB config) is an error naming the path, never an unbounded read
//! or a blocked poll.
//!
//! The open is non-blocking, so a FIFO is refused by the type check instead of hanging the
//! open. /proc and /sys files report a size of 0, so the limit is on the bytes read, not on
//! the size `fstat` reports.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Configuration files: the TOML config and the web config.
pub const CONFIG_LIMIT: u64 = 1 << 20;
/// A container runtime's state files (Docker's `config.v2.json`, OCI bundles).
pub const RUNTIME_STATE_LIMIT: u64 = 1 << 20;
/// Files under /proc and /sys.
pub const PROC_LIMIT: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum BoundedReadError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("{} is not a regular file", path.display())]
    NotRegular { path: PathBuf },
    #[error("{} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is not UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
}

impl BoundedReadError {
    /// The I/O error behind an open or a read, for callers that tell a missing file
    /// (`NotFound`) from a broken one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            BoundedReadError::Open { source, .. } | BoundedReadError::Read { source, .. } => {
                Some(source.kind())
            }
            _ => None,
        }
    }
}

/// Opens `path` (following symlinks) without blocking and checks that it is a regular
/// file.
pub fn open_regular(path: &Path) -> Result<File, BoundedReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| BoundedReadError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let meta = file.metadata().map_err(|source| BoundedReadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(BoundedReadError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

/// Reads at most `limit` bytes of an open file; more is an error.
pub fn read_file(file: File, path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    read_file_sized(file, path, limit, 0)
}

/// [`read_file`] into a buffer of `first` bytes to begin with.
///
/// /proc files report a size of 0, so from an empty buffer the read grows from a 32-byte
/// probe, one read(2) per doubling: ten for `/proc/net/netstat`. A caller that knows the
/// usual size saves them. Not more than it needs: /proc/sys allocates and zeroes a kernel
/// buffer the size of each read.
pub fn read_file_sized(
    file: File,
    path: &Path,
    limit: u64,
    first: usize,
) -> Result<Vec<u8>, BoundedReadError> {
    let mut bytes = Vec::with_capacity(first);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| BoundedReadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(BoundedReadError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// Reads the regular file at `path`, at most `limit` bytes.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    read_file(open_regular(path)?, path, limit)
}

/// Reads the regular file at `path`, at most `limit` bytes, as UTF-8.
pub fn read_to_string(path: &Path, limit: u64) -> Result<String, BoundedReadError> {
    String::from_utf8(read(path, limit)?).map_err(|_not_utf8| BoundedReadError::NotUtf8 {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sockdiag-bounded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn a_file_at_the_limit_is_read_whole() {
        let path = temp("at-limit");
        std::fs::write(&path, vec![b'x'; 16]).unwrap();
        assert_eq!(read(&path, 16).unwrap().len(), 16);
    }

    #[test]
    fn one_byte_over_the_limit_is_an_error_naming_the_path() {
        let path = temp("over-limit");
        std::fs::write(&path, vec![b'x'; 17]).unwrap();
        let error = read(&path, 16).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{} is larger than 16 bytes", path.display())
        );
    }

    #[test]
    fn a_first_buffer_beyond_the_limit_does_not_lift_it() {
        let path = temp("sized");
        std::fs::write(&path, vec![b'x'; 17]).unwrap();
        let error = read_file_sized(open_regular(&path).unwrap(), &path, 16, 4096).unwrap_err();
        assert!(
            matches!(error, BoundedReadError::TooLarge { limit: 16, .. }),
            "{error:?}"
        );
        let whole = read_file_sized(open_regular(&path).unwrap(), &path, 17, 4096).unwrap();
        assert_eq!(whole, vec![b'x'; 17]);
    }

    #[test]
    fn dev_zero_is_refused_before_reading() {
        let error = read(Path::new("/dev/zero"), PROC_LIMIT).unwrap_err();
        assert_eq!(error.to_string(), "/dev/zero is not a regular file");
    }

    #[test]
    fn a_symlink_to_dev_zero_is_refused() {
        let path = temp("zero-link");
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        assert!(matches!(
            read(&path, CONFIG_LIMIT),
            Err(BoundedReadError::NotRegular { .. })
        ));
    }

    #[test]
    fn a_proc_file_of_size_zero_is_read() {
        let text = read_to_string(Path::new("/proc/self/stat"), PROC_LIMIT).unwrap();
        assert!(text.starts_with(&format!("{} ", std::process::id())));
    }

    #[test]
    fn a_missing_file_keeps_its_io_kind() {
        let error = read(&temp("missing"), 16).unwrap_err();
        assert_eq!(error.io_kind(), Some(io::ErrorKind::NotFound));
    }
}
