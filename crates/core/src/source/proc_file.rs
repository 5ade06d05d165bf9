//! The read half shared by the kernel-value sources ([`super::proc_net_snmp`],
//! [`super::proc_sys_net`]): one small text file under /proc, opened afresh (the kernel binds
//! it to the opening thread's network namespace), read whole through [`super::bounded`] (a
//! regular file, at most [`bounded::PROC_LIMIT`] bytes) and handed to a pure parser.
//!
//! /proc files report a size of 0, so the limit holds on the bytes read: a file past it is a
//! [`ReadError::Refused`], never a silently cut text. A file that does not exist is `None`:
//! whether that is an error is the caller's call.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::str::Utf8Error;

use rustix::fs::{Mode, OFlags};

use super::bounded::{self, BoundedReadError};

/// Failure to read a file, by stage, with its path.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed for another reason than the file not existing.
    #[error("reading {}: {error}", .path.display())]
    Io { path: PathBuf, error: io::Error },
    /// Not a regular file, or longer than [`bounded::PROC_LIMIT`]; the message names the
    /// path.
    #[error(transparent)]
    Refused(BoundedReadError),
    /// The text is not UTF-8.
    #[error("reading {}: {error}", .path.display())]
    NotUtf8 { path: PathBuf, error: Utf8Error },
}

/// What a table of `/proc/net` (`netstat`: 4 KiB on Linux 6.18) fits in: read in one read(2)
/// instead of a read per doubling from 32 bytes.
const NET_TABLE_BUFFER: usize = 16 << 10;

/// The text of the `/proc/net` table at `path`, `None` if it does not exist.
pub fn read(path: &Path) -> Result<Option<String>, ReadError> {
    let file = match bounded::open_regular(path) {
        Ok(file) => file,
        Err(error) => return absent_or(error),
    };
    text(file, path, NET_TABLE_BUFFER)
}

/// The text of file `name` in the open directory `dir`, `None` if it does not exist;
/// `path` (the directory's path joined with `name`) names it in errors.
///
/// Relative to a directory kept open, not by full path: under /proc/sys a path lookup
/// compares each component with the entries of every network namespace on the host.
pub fn read_at(dir: &OwnedFd, name: &str, path: &Path) -> Result<Option<String>, ReadError> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let file = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(errno) => {
            return Err(ReadError::Io {
                path: path.to_path_buf(),
                error: errno.into(),
            })
        }
    };
    // The check `bounded::open_regular` makes, for a file opened relative to a directory.
    let regular = file.metadata().map_err(|error| ReadError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    if !regular.is_file() {
        return Err(ReadError::Refused(BoundedReadError::NotRegular {
            path: path.to_path_buf(),
        }));
    }
    // A sysctl holds a number or two: the read grows from a small probe, since /proc/sys
    // zeroes a kernel buffer the size of each read.
    text(file, path, 0)
}

/// The whole text of `file`, read into a buffer of `first` bytes to begin with.
fn text(file: File, path: &Path, first: usize) -> Result<Option<String>, ReadError> {
    let bytes = match bounded::read_file_sized(file, path, bounded::PROC_LIMIT, first) {
        Ok(bytes) => bytes,
        Err(error) => return absent_or(error),
    };
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(text)),
        Err(error) => Err(ReadError::NotUtf8 {
            path: path.to_path_buf(),
            error: error.utf8_error(),
        }),
    }
}

/// `None` for a file that does not exist, else the error.
fn absent_or(error: BoundedReadError) -> Result<Option<String>, ReadError> {
    match error {
        BoundedReadError::Open { source, .. } | BoundedReadError::Read { source, .. }
            if source.kind() == io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        BoundedReadError::Open { path, source } | BoundedReadError::Read { path, source } => {
            Err(ReadError::Io {
                path,
                error: source,
            })
        }
        refused => Err(ReadError::Refused(refused)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own under the temporary directory, empty.
    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sockdiag-proc-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn open_dir(dir: &Path) -> OwnedFd {
        rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    #[test]
    fn a_missing_file_is_none_by_path_and_in_a_directory() {
        let dir = temp_dir("missing");
        assert!(read(&dir.join("snmp")).unwrap().is_none());
        let missing = read_at(&open_dir(&dir), "somaxconn", &dir.join("somaxconn"));
        assert!(missing.unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn text_not_utf8_is_an_error_naming_the_file() {
        let dir = temp_dir("utf8");
        let path = dir.join("somaxconn");
        std::fs::write(&path, b"40\xff96\n").unwrap();
        for result in [read(&path), read_at(&open_dir(&dir), "somaxconn", &path)] {
            assert_eq!(
                result.unwrap_err().to_string(),
                format!(
                    "reading {}: invalid utf-8 sequence of 1 bytes from index 2",
                    path.display()
                )
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_is_not_a_regular_file() {
        let dir = temp_dir("dir");
        std::fs::create_dir(dir.join("ipv4")).unwrap();
        let err = read_at(&open_dir(&dir), "ipv4", &dir.join("ipv4")).unwrap_err();
        assert!(matches!(err, ReadError::Refused(_)), "{err:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
