//! Bounded reads: every file the exporter reads goes through here, with a size limit that
//! fits it and a check that it is a regular file. A hostile or broken file (a symlink to
//! `/dev/zero`, a FIFO, a 3 GB config) is an error naming the path, never an unbounded read
//! or a blocked poll.
//!
//! The open is non-blocking, so a FIFO is refused by the type check instead of hanging the
//! open. /proc and /sys files report a size of 0, so the limit is on the bytes read, not on
//! the size `fstat` reports.
//!
//! Files under a container runtime's data root are opened with [`open_beneath`]:
//! `openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so the kernel refuses any
//! symlink or `..` that leads out of the root (a `config.v2.json` pointing at `/dev/zero`
//! or `/etc/shadow`) instead of the exporter following it. The root itself may be a
//! symlink: it is the operator's configuration.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

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
    #[error("{} is not UTF-8: {error}", path.display())]
    NotUtf8 {
        path: PathBuf,
        error: std::str::Utf8Error,
    },
    /// A symlink or `..` in the path leads out of the root it must stay beneath.
    #[error("{} leads out of {}", path.display(), root.display())]
    Escapes { path: PathBuf, root: PathBuf },
    /// The kernel has no openat2 (before Linux 5.6, or a seccomp filter refuses it).
    #[error("cannot open {} safely: openat2 is not available (Linux 5.6 or later is needed)", path.display())]
    Unsupported { path: PathBuf },
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

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            BoundedReadError::Open { path, .. }
            | BoundedReadError::NotRegular { path }
            | BoundedReadError::TooLarge { path, .. }
            | BoundedReadError::Read { path, .. }
            | BoundedReadError::NotUtf8 { path, .. }
            | BoundedReadError::Escapes { path, .. }
            | BoundedReadError::Unsupported { path } => path,
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
    check_regular(&file, path)?;
    Ok(file)
}

/// Opens `relative` under the directory `root` without blocking, never leaving `root`: a
/// symlink or `..` that resolves outside it is [`BoundedReadError::Escapes`] (symlinks that
/// stay beneath it are followed), a magic link (`/proc/PID/fd/N`) is refused. Then checks
/// that it is a regular file.
pub fn open_beneath(root: &Path, relative: &Path) -> Result<File, BoundedReadError> {
    let path = root.join(relative);
    let open_error = |source: Errno| BoundedReadError::Open {
        path: path.clone(),
        source: source.into(),
    };
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(open_error)?;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    // EAGAIN: a rename raced the `..` checks; the kernel asks for a retry.
    let mut attempts = 0;
    let opened = loop {
        attempts += 1;
        match rustix::fs::openat2(&dir, relative, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if attempts < 3 => continue,
            result => break result,
        }
    };
    let file = File::from(opened.map_err(|errno| match errno {
        Errno::XDEV => BoundedReadError::Escapes {
            path: path.clone(),
            root: root.to_path_buf(),
        },
        Errno::NOSYS => BoundedReadError::Unsupported { path: path.clone() },
        errno => open_error(errno),
    })?);
    check_regular(&file, &path)?;
    Ok(file)
}

fn check_regular(file: &File, path: &Path) -> Result<(), BoundedReadError> {
    let meta = file.metadata().map_err(|source| BoundedReadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(BoundedReadError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Reads the regular file `relative` under `root`, at most `limit` bytes, as UTF-8, never
/// leaving `root` (see [`open_beneath`]).
pub fn read_beneath_to_string(
    root: &Path,
    relative: &Path,
    limit: u64,
) -> Result<String, BoundedReadError> {
    let path = root.join(relative);
    let bytes = read_file(open_beneath(root, relative)?, &path, limit)?;
    String::from_utf8(bytes).map_err(|error| BoundedReadError::NotUtf8 {
        path,
        error: error.utf8_error(),
    })
}

/// [`read_beneath_to_string`], with the identity of the file read, taken from the open
/// file before reading: the file the text came from, whatever replaced it since.
pub fn read_beneath_with_identity(
    root: &Path,
    relative: &Path,
    limit: u64,
) -> Result<(String, FileIdentity), BoundedReadError> {
    let path = root.join(relative);
    let file = open_beneath(root, relative)?;
    let identity = file
        .metadata()
        .map(|meta| FileIdentity::from_metadata(&meta))
        .map_err(|source| BoundedReadError::Read {
            path: path.clone(),
            source,
        })?;
    let bytes = read_file(file, &path, limit)?;
    let text = String::from_utf8(bytes).map_err(|error| BoundedReadError::NotUtf8 {
        path,
        error: error.utf8_error(),
    })?;
    Ok((text, identity))
}

/// Reads the regular file `name` in the open directory `dir`, at most `limit` bytes: how
/// the /proc index reads `/proc/PID/{stat,comm}` through the pid's directory, so that a
/// reused pid cannot swap the process between two reads. `path` names the file in errors
/// (built only on an error).
pub fn read_at(
    dir: impl AsFd,
    name: &str,
    limit: u64,
    path: impl Fn() -> PathBuf,
) -> Result<Vec<u8>, BoundedReadError> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let file = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|errno| {
        BoundedReadError::Open {
            path: path(),
            source: errno.into(),
        }
    })?;
    let file = File::from(file);
    let meta = file.metadata().map_err(|source| BoundedReadError::Read {
        path: path(),
        source,
    })?;
    if !meta.is_file() {
        return Err(BoundedReadError::NotRegular { path: path() });
    }
    // /proc/PID/stat is about 300 bytes: one read fills it, the next sees the end.
    let mut bytes = Vec::with_capacity(1024);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| BoundedReadError::Read {
            path: path(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(BoundedReadError::TooLarge {
            path: path(),
            limit,
        });
    }
    Ok(bytes)
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
    String::from_utf8(read(path, limit)?).map_err(|error| BoundedReadError::NotUtf8 {
        path: path.to_path_buf(),
        error: error.utf8_error(),
    })
}

/// A file as `lstat` sees it (device, inode, size, mtime, ctime): runtimes replace their
/// state files by rename, and a change in place moves the ctime, so an equal identity
/// means the same contents. What [`super::state_cache`] compares, so that a runtime's state
/// file is read once until it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileIdentity {
    /// `None` when the path cannot be stat'ed: then the read is tried again every poll.
    pub fn of(path: &Path) -> Option<FileIdentity> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        Some(FileIdentity::from_metadata(&meta))
    }

    /// The identity in `meta` (of a path, or of an open file).
    pub fn from_metadata(meta: &std::fs::Metadata) -> FileIdentity {
        use std::os::unix::fs::MetadataExt;
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
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

    /// A fresh directory standing for a runtime's data root, with a file outside it.
    fn root(tag: &str) -> (PathBuf, PathBuf) {
        let base = temp(&format!("beneath-{tag}"));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("containers")).unwrap();
        std::fs::write(base.join("outside"), "secret").unwrap();
        (base, root)
    }

    #[test]
    fn beneath_a_root_symlinks_inside_it_are_followed() {
        let (base, root) = root("inside");
        std::fs::write(root.join("real.json"), "{}").unwrap();
        std::os::unix::fs::symlink("../real.json", root.join("containers/link.json")).unwrap();
        let text = read_beneath_to_string(&root, Path::new("containers/link.json"), 16);
        std::fs::remove_dir_all(&base).unwrap();
        assert_eq!(text.unwrap(), "{}");
    }

    #[test]
    fn beneath_a_root_a_symlink_escaping_it_is_refused_naming_both() {
        let (base, root) = root("escape");
        let absolute = root.join("containers/absolute.json");
        std::os::unix::fs::symlink(base.join("outside"), &absolute).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("containers/dotdot.json")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("containers/zero.json")).unwrap();
        let results: Vec<String> = ["absolute.json", "dotdot.json", "zero.json"]
            .iter()
            .map(|name| {
                let relative = Path::new("containers").join(name);
                read_beneath_to_string(&root, &relative, RUNTIME_STATE_LIMIT)
                    .unwrap_err()
                    .to_string()
            })
            .collect();
        std::fs::remove_dir_all(&base).unwrap();
        for (name, error) in ["absolute.json", "dotdot.json", "zero.json"]
            .iter()
            .zip(results)
        {
            assert_eq!(
                error,
                format!(
                    "{} leads out of {}",
                    root.join("containers").join(name).display(),
                    root.display()
                )
            );
        }
    }

    #[test]
    fn beneath_a_root_a_fifo_is_refused_without_blocking() {
        let (base, root) = root("fifo");
        let fifo = root.join("containers/fifo.json");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let error = read_beneath_to_string(&root, Path::new("containers/fifo.json"), 16);
        std::fs::remove_dir_all(&base).unwrap();
        assert_eq!(
            error.unwrap_err().to_string(),
            format!("{} is not a regular file", fifo.display())
        );
    }

    #[test]
    fn read_at_reads_a_proc_file_and_refuses_what_is_too_large() {
        let proc = std::fs::File::open("/proc/self").unwrap();
        let stat = read_at(&proc, "stat", PROC_LIMIT, || "/proc/self/stat".into()).unwrap();
        assert!(stat.starts_with(format!("{} (", std::process::id()).as_bytes()));
        let error = read_at(&proc, "stat", 8, || "/proc/self/stat".into()).unwrap_err();
        assert_eq!(error.to_string(), "/proc/self/stat is larger than 8 bytes");
        let error = read_at(&proc, "missing", 8, || "/proc/self/missing".into()).unwrap_err();
        assert_eq!(error.io_kind(), Some(io::ErrorKind::NotFound));
    }
}
