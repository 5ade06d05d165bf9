//! Sysctls of the reading thread's network namespace: the [`NetSysctls`] table (a row per
//! sysctl: its file under `/proc/sys/net` and the gauge it becomes), the ephemeral port range,
//! and the reader.
//!
//! Reads, under `/proc/sys/net`, the files of the table's rows (`ipv4/tcp_fin_timeout`,
//! `core/somaxconn`, ..., one unsigned integer each) and `ipv4/ip_local_port_range`
//! (`start<TAB>end`), which feeds the fold rather than a family of its own.
//!
//! Unlike `/proc/net`, `/proc/sys/net` has no `self` indirection: the kernel resolves it to the
//! network namespace of the task that opens the file, so a thread that entered another
//! namespace with `setns(2)` sees that namespace's values. [`read`] opens every file afresh
//! for that reason and must run on the thread that is in the wanted namespace. Each file is
//! read through [`super::proc_file`]: a regular file of at most 64 KiB.
//!
//! A missing file is `None`, not an error: kernels before 4.13 register several of these
//! sysctls only in the initial namespace, and a container may hide some. See
//! [`NetSysctls::missing_count`].

use std::num::ParseIntError;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::kernel_value::kernel_values;
use super::proc_file::{self, ReadError};

/// Where [`read`] looks by default.
pub const DEFAULT_ROOT: &str = "/proc/sys/net";

/// `ipv4/ip_local_port_range`: directory and file.
const PORT_RANGE: (&str, &str) = ("ipv4", "ip_local_port_range");

kernel_values! {
    /// The sysctls of one network namespace, a field per row of the table and the port
    /// range; `None` when the file does not exist.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct NetSysctls {
        /// `net.ipv4.tcp_fin_timeout`, seconds.
        tcp_fin_timeout: Sysctl "ipv4" "tcp_fin_timeout",
            Gauge "sockdiag_sysctl_tcp_fin_timeout_seconds",
            "net.ipv4.tcp_fin_timeout: how long an orphaned socket stays in FIN_WAIT2.";
        /// `net.ipv4.tcp_keepalive_time`, seconds.
        tcp_keepalive_time: Sysctl "ipv4" "tcp_keepalive_time",
            Gauge "sockdiag_sysctl_tcp_keepalive_time_seconds",
            "net.ipv4.tcp_keepalive_time: idle time before the first keepalive probe.";
        /// `net.ipv4.tcp_keepalive_intvl`, seconds.
        tcp_keepalive_intvl: Sysctl "ipv4" "tcp_keepalive_intvl",
            Gauge "sockdiag_sysctl_tcp_keepalive_intvl_seconds",
            "net.ipv4.tcp_keepalive_intvl: interval between keepalive probes.";
        /// `net.ipv4.tcp_keepalive_probes`.
        tcp_keepalive_probes: Sysctl "ipv4" "tcp_keepalive_probes",
            Gauge "sockdiag_sysctl_tcp_keepalive_probes",
            "net.ipv4.tcp_keepalive_probes: unanswered probes before a connection is dropped.";
        /// `net.ipv4.tcp_tw_reuse`: 0 off, 1 on, 2 loopback only.
        tcp_tw_reuse: Sysctl "ipv4" "tcp_tw_reuse",
            Gauge "sockdiag_sysctl_tcp_tw_reuse",
            "net.ipv4.tcp_tw_reuse: 0 off, 1 on, 2 loopback only; lets connect() reuse TIME_WAIT ports.";
        /// `net.ipv4.tcp_max_tw_buckets`.
        tcp_max_tw_buckets: Sysctl "ipv4" "tcp_max_tw_buckets",
            Gauge "sockdiag_sysctl_tcp_max_tw_buckets",
            "net.ipv4.tcp_max_tw_buckets: TIME_WAIT sockets the namespace holds at most.";
        /// `net.core.somaxconn`: the cap on every `listen(2)` backlog.
        somaxconn: Sysctl "core" "somaxconn",
            Gauge "sockdiag_sysctl_somaxconn",
            "net.core.somaxconn: the largest accept-queue backlog listen() may get.";
        /// `net.ipv4.tcp_max_syn_backlog`.
        tcp_max_syn_backlog: Sysctl "ipv4" "tcp_max_syn_backlog",
            Gauge "sockdiag_sysctl_tcp_max_syn_backlog",
            "net.ipv4.tcp_max_syn_backlog: half-open connections remembered per listener.";
    }
    extra {
        /// `net.ipv4.ip_local_port_range` ([`PORT_RANGE`]).
        pub ip_local_port_range: Option<PortRange>,
    }
}

impl NetSysctls {
    /// Number of sysctls whose file does not exist, the port range's included.
    pub fn missing_count(&self) -> usize {
        self.missing_files().len()
    }

    /// Paths, relative to the root, of the sysctls whose file does not exist, e.g.
    /// `ipv4/tcp_tw_reuse`, so the caller can log which metrics are degraded.
    pub fn missing_files(&self) -> Vec<String> {
        let mut missing: Vec<String> = self.missing_rows().map(ToString::to_string).collect();
        if self.ip_local_port_range.is_none() {
            missing.push(format!("{}/{}", PORT_RANGE.0, PORT_RANGE.1));
        }
        missing
    }
}

/// The ephemeral port range, inclusive at both ends; `start <= end` always holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    start: u16,
    end: u16,
}

impl PortRange {
    /// `None` if `start > end`.
    pub fn new(start: u16, end: u16) -> Option<Self> {
        (start <= end).then_some(Self { start, end })
    }

    pub fn start(&self) -> u16 {
        self.start
    }

    pub fn end(&self) -> u16 {
        self.end
    }

    /// Number of ports in the range; u32 because `0..=65535` holds 65536.
    pub fn size(&self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }
}

/// Why the text of `ip_local_port_range` is not a port range.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortRangeError {
    #[error("expected 2 fields (start end), found {count}")]
    FieldCount { count: usize },
    #[error("port {value:?} is not an unsigned integer: {error}")]
    InvalidPort { value: String, error: ParseIntError },
    #[error("port {value} is above 65535")]
    PortTooLarge { value: u64 },
    #[error("start {start} is above end {end}")]
    StartAboveEnd { start: u16, end: u16 },
}

/// Failure to read one sysctl, by stage, with the file's path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file exists but could not be read, is not a regular file, or is too long.
    #[error(transparent)]
    Read(ReadError),
    /// The file does not hold one unsigned integer.
    #[error("parsing {}: {text:?} is not an unsigned integer: {error}", .path.display())]
    InvalidInteger {
        path: PathBuf,
        text: String,
        error: ParseIntError,
    },
    /// The file does not hold a valid port range.
    #[error("parsing {}: {text:?} is not a port range: {error}", .path.display())]
    InvalidPortRange {
        path: PathBuf,
        text: String,
        error: PortRangeError,
    },
}

/// Reads every sysctl under `root` (normally [`DEFAULT_ROOT`]).
///
/// Each directory is opened once and each file is opened relative to it: a name lookup
/// under /proc/sys compares the name with the entries of every network namespace on the
/// host (proc_sys_compare), so a full path per file cost a namespace-count-long scan per
/// path component, every poll, in every namespace.
pub fn read(root: &Path) -> Result<NetSysctls, Error> {
    let mut dirs: Vec<Dir> = Vec::new();
    let mut text_at = |dir: &str, name: &str| -> Result<Option<(String, PathBuf)>, Error> {
        let dir = match dirs.iter().position(|d| d.name == dir) {
            Some(i) => &dirs[i],
            None => {
                dirs.push(Dir::open(root, dir));
                &dirs[dirs.len() - 1]
            }
        };
        dir.read(name)
    };
    let mut sysctls = NetSysctls::default();
    for (row, slot) in NetSysctls::TABLE.iter().zip(sysctls.slots_mut()) {
        *slot = text_at(row.section, row.name)?
            .map(|(text, path)| parse_u64(&path, &text))
            .transpose()?;
    }
    sysctls.ip_local_port_range = text_at(PORT_RANGE.0, PORT_RANGE.1)?
        .map(|(text, path)| parse_port_range(&path, &text))
        .transpose()?;
    Ok(sysctls)
}

/// Reads `ipv4/ip_local_port_range` alone (the TCP fold's ephemeral range), the other
/// sysctls left `None`: what the poll reads with the sysctl collector off.
pub fn read_port_range(root: &Path) -> Result<NetSysctls, Error> {
    let text = Dir::open(root, PORT_RANGE.0).read(PORT_RANGE.1)?;
    Ok(NetSysctls {
        ip_local_port_range: text
            .map(|(text, path)| parse_port_range(&path, &text))
            .transpose()?,
        ..NetSysctls::default()
    })
}

/// A directory of sysctl files: `None` when it does not exist; a failure to open it is
/// reported by the first read, with that file's path.
struct Dir {
    name: String,
    path: PathBuf,
    fd: Result<Option<OwnedFd>, Errno>,
}

impl Dir {
    fn open(root: &Path, name: &str) -> Dir {
        let path = root.join(name);
        let fd = match rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) => Ok(None),
            Err(errno) => Err(errno),
        };
        Dir {
            name: name.to_string(),
            path,
            fd,
        }
    }

    /// The text of file `name` and its path, `None` if it (or the directory) does not exist.
    fn read(&self, name: &str) -> Result<Option<(String, PathBuf)>, Error> {
        let path = self.path.join(name);
        let dir = match &self.fd {
            Ok(Some(dir)) => dir,
            Ok(None) => return Ok(None),
            Err(errno) => {
                return Err(Error::Read(ReadError::Io {
                    path,
                    error: (*errno).into(),
                }))
            }
        };
        match proc_file::read_at(dir, name, &path) {
            Ok(text) => Ok(text.map(|text| (text, path))),
            Err(error) => Err(Error::Read(error)),
        }
    }
}

/// Parses a single-integer sysctl file; `path` only labels the error.
pub fn parse_u64(path: &Path, text: &str) -> Result<u64, Error> {
    text.trim().parse().map_err(|error| Error::InvalidInteger {
        path: path.to_path_buf(),
        text: text.to_owned(),
        error,
    })
}

/// Parses `ip_local_port_range`; `path` only labels the error.
pub fn parse_port_range(path: &Path, text: &str) -> Result<PortRange, Error> {
    parse_port_range_text(text).map_err(|error| Error::InvalidPortRange {
        path: path.to_path_buf(),
        text: text.to_owned(),
        error,
    })
}

fn parse_port_range_text(text: &str) -> Result<PortRange, PortRangeError> {
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let [start, end] = fields[..] else {
        return Err(PortRangeError::FieldCount {
            count: fields.len(),
        });
    };
    let (start, end) = (parse_port(start)?, parse_port(end)?);
    PortRange::new(start, end).ok_or(PortRangeError::StartAboveEnd { start, end })
}

fn parse_port(text: &str) -> Result<u16, PortRangeError> {
    // Parsed wide first so that 70000 reads as "above 65535", not as a generic overflow.
    let value: u64 = text.parse().map_err(|error| PortRangeError::InvalidPort {
        value: text.to_owned(),
        error,
    })?;
    // TryFromIntError carries nothing beyond `value`, which the variant keeps.
    u16::try_from(value).map_err(|_overflow| PortRangeError::PortTooLarge { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_root(tree: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/proc")
            .join(tree)
            .join("net")
    }

    /// Values captured from the test machine into tests/fixtures/proc/sys.
    fn captured() -> NetSysctls {
        NetSysctls {
            tcp_fin_timeout: Some(60),
            tcp_keepalive_time: Some(7200),
            tcp_keepalive_intvl: Some(75),
            tcp_keepalive_probes: Some(9),
            tcp_tw_reuse: Some(2),
            tcp_max_tw_buckets: Some(131072),
            somaxconn: Some(4096),
            tcp_max_syn_backlog: Some(2048),
            ip_local_port_range: PortRange::new(32768, 60999),
        }
    }

    #[test]
    fn port_range_alone_reads_only_the_port_range() {
        let sysctls = read_port_range(&fixture_root("sys")).unwrap();
        assert_eq!(
            sysctls,
            NetSysctls {
                ip_local_port_range: PortRange::new(32768, 60999),
                ..NetSysctls::default()
            }
        );
        let missing = read_port_range(Path::new("/nonexistent-sysctl-root")).unwrap();
        assert_eq!(missing.ip_local_port_range, None);
    }

    #[test]
    fn reads_captured_tree() {
        let sysctls = read(&fixture_root("sys")).unwrap();
        assert_eq!(sysctls, captured());
        assert_eq!(sysctls.missing_count(), 0);
        assert_eq!(sysctls.missing_files(), Vec::<&str>::new());
    }

    #[test]
    fn missing_file_is_none_and_counted() {
        let sysctls = read(&fixture_root("sys-no-tcp-tw-reuse")).unwrap();
        assert_eq!(
            sysctls,
            NetSysctls {
                tcp_tw_reuse: None,
                ..captured()
            }
        );
        assert_eq!(sysctls.missing_count(), 1);
        assert_eq!(sysctls.missing_files(), ["ipv4/tcp_tw_reuse"]);
    }

    #[test]
    fn missing_root_leaves_everything_missing() {
        let sysctls = read(&fixture_root("no-such-tree")).unwrap();
        assert_eq!(sysctls, NetSysctls::default());
        assert_eq!(sysctls.missing_count(), 9);
    }

    #[test]
    fn port_range_size_and_contains() {
        let range = parse_port_range(Path::new("r"), "32768\t60999\n").unwrap();
        assert_eq!((range.start(), range.end()), (32768, 60999));
        assert_eq!(range.size(), 28232);
        assert!(range.contains(32768));
        assert!(range.contains(60999));
        assert!(!range.contains(32767));
        assert!(!range.contains(61000));

        let full = parse_port_range(Path::new("r"), "0 65535").unwrap();
        assert_eq!(full.size(), 65536);
        assert_eq!(
            parse_port_range(Path::new("r"), "1024 1024")
                .unwrap()
                .size(),
            1
        );
    }

    #[test]
    fn bad_port_range_file_is_an_error_with_path_and_text() {
        let root = fixture_root("sys-bad-port-range");
        let err = read(&root).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidPortRange {
                    error: PortRangeError::StartAboveEnd {
                        start: 60999,
                        end: 32768
                    },
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "parsing {}/ipv4/ip_local_port_range: \"60999\\t32768\\n\" is not a port range: \
                 start 60999 is above end 32768",
                root.display()
            )
        );
    }

    #[test]
    fn port_range_errors() {
        let path = Path::new("/proc/sys/net/ipv4/ip_local_port_range");
        let cases = [
            (
                "32768 70000\n",
                "\"32768 70000\\n\" is not a port range: port 70000 is above 65535",
            ),
            (
                "32768\n",
                "\"32768\\n\" is not a port range: expected 2 fields (start end), found 1",
            ),
            (
                "1 2 3",
                "\"1 2 3\" is not a port range: expected 2 fields (start end), found 3",
            ),
            (
                "-1 2",
                "\"-1 2\" is not a port range: port \"-1\" is not an unsigned integer: \
                 invalid digit found in string",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_port_range(path, text).unwrap_err().to_string(),
                format!("parsing /proc/sys/net/ipv4/ip_local_port_range: {want}"),
                "input {text:?}"
            );
        }
    }

    #[test]
    fn integer_errors() {
        let path = Path::new("/proc/sys/net/ipv4/tcp_fin_timeout");
        assert_eq!(parse_u64(path, "60\n").unwrap(), 60);
        assert_eq!(
            parse_u64(path, "sixty\n").unwrap_err().to_string(),
            "parsing /proc/sys/net/ipv4/tcp_fin_timeout: \"sixty\\n\" is not an unsigned \
             integer: invalid digit found in string"
        );
        assert_eq!(
            parse_u64(path, "").unwrap_err().to_string(),
            "parsing /proc/sys/net/ipv4/tcp_fin_timeout: \"\" is not an unsigned \
             integer: cannot parse integer from empty string"
        );
    }

    #[test]
    fn unreadable_file_is_a_read_error() {
        // A regular file used as the root: opening root/ipv4/... fails with ENOTDIR, not ENOENT.
        let root = fixture_root("sys").join("core/somaxconn");
        let err = read(&root).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "reading {}/ipv4/tcp_fin_timeout: Not a directory (os error 20)",
                root.display()
            )
        );
    }

    /// A copy of the captured tree under the temporary directory, to be broken by a test.
    fn temp_tree(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "sockdiag-proc-sys-net-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["ipv4", "core"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            for entry in std::fs::read_dir(fixture_root("sys").join(dir)).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), root.join(dir).join(entry.file_name())).unwrap();
            }
        }
        root
    }

    /// Issue 23: a sysctl file was read whole, however long. Past 64 KiB it is now an
    /// error for the sysctls (missing and counted), not a cut text parsed as if whole.
    #[test]
    fn sysctl_longer_than_64_kib_is_a_read_error_not_a_cut_text() {
        let root = temp_tree("long");
        let path = root.join("ipv4/tcp_fin_timeout");
        // Digits only: a cut text would parse as a number.
        std::fs::write(&path, "6".repeat((64 << 10) + 1)).unwrap();
        let err = read(&root).unwrap_err();
        assert!(matches!(err, Error::Read(ReadError::Refused(_))), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("{} is larger than 65536 bytes", path.display())
        );
        std::fs::write(&path, "6".repeat(64 << 10)).unwrap();
        assert!(
            matches!(read(&root), Err(Error::InvalidInteger { .. })),
            "64 KiB exactly is read whole, and is too large a number"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Issue 23: a sysctl that is a FIFO blocked the poll in open(2) until a writer came.
    #[test]
    fn sysctl_fifo_is_refused_without_blocking() {
        let root = temp_tree("fifo");
        let path = root.join("core/somaxconn");
        std::fs::remove_file(&path).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = read(&root).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} is not a regular file", path.display())
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn live_namespace_has_every_sysctl() {
        let sysctls = read(Path::new(DEFAULT_ROOT)).unwrap();
        assert_eq!(sysctls.missing_files(), Vec::<&str>::new());
    }
}
