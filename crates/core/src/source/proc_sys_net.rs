//! TCP-related sysctls of the reading thread's network namespace.
//!
//! Reads, under `/proc/sys/net`:
//! - `ipv4/tcp_fin_timeout`, `ipv4/tcp_keepalive_time`, `ipv4/tcp_keepalive_intvl` (seconds);
//! - `ipv4/tcp_keepalive_probes`, `ipv4/tcp_tw_reuse` (0, 1 or 2), `ipv4/tcp_max_tw_buckets`,
//!   `ipv4/tcp_max_syn_backlog`, `core/somaxconn`;
//! - `ipv4/ip_local_port_range` (`start<TAB>end`).
//!
//! Unlike `/proc/net`, `/proc/sys/net` has no `self` indirection: the kernel resolves it to the
//! network namespace of the task that opens the file, so a thread that entered another
//! namespace with `setns(2)` sees that namespace's values. [`read`] opens every file afresh
//! for that reason and must run on the thread that is in the wanted namespace.
//!
//! A missing file is `None`, not an error: kernels before 4.13 register several of these
//! sysctls only in the initial namespace, and a container may hide some. See
//! [`NetSysctls::missing_count`].

use std::io;
use std::num::ParseIntError;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// Where [`read`] looks by default.
pub const DEFAULT_ROOT: &str = "/proc/sys/net";

const TCP_FIN_TIMEOUT: &str = "ipv4/tcp_fin_timeout";
const TCP_KEEPALIVE_TIME: &str = "ipv4/tcp_keepalive_time";
const TCP_KEEPALIVE_INTVL: &str = "ipv4/tcp_keepalive_intvl";
const TCP_KEEPALIVE_PROBES: &str = "ipv4/tcp_keepalive_probes";
const TCP_TW_REUSE: &str = "ipv4/tcp_tw_reuse";
const TCP_MAX_TW_BUCKETS: &str = "ipv4/tcp_max_tw_buckets";
const SOMAXCONN: &str = "core/somaxconn";
const TCP_MAX_SYN_BACKLOG: &str = "ipv4/tcp_max_syn_backlog";
const IP_LOCAL_PORT_RANGE: &str = "ipv4/ip_local_port_range";

/// The sysctls of one network namespace; `None` when the file does not exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetSysctls {
    /// `net.ipv4.tcp_fin_timeout`, seconds.
    pub tcp_fin_timeout: Option<u64>,
    /// `net.ipv4.tcp_keepalive_time`, seconds.
    pub tcp_keepalive_time: Option<u64>,
    /// `net.ipv4.tcp_keepalive_intvl`, seconds.
    pub tcp_keepalive_intvl: Option<u64>,
    /// `net.ipv4.tcp_keepalive_probes`.
    pub tcp_keepalive_probes: Option<u64>,
    /// `net.ipv4.tcp_tw_reuse`: 0 off, 1 on, 2 loopback only.
    pub tcp_tw_reuse: Option<u64>,
    /// `net.ipv4.tcp_max_tw_buckets`.
    pub tcp_max_tw_buckets: Option<u64>,
    /// `net.core.somaxconn`: the cap on every `listen(2)` backlog.
    pub somaxconn: Option<u64>,
    /// `net.ipv4.tcp_max_syn_backlog`.
    pub tcp_max_syn_backlog: Option<u64>,
    /// `net.ipv4.ip_local_port_range`.
    pub ip_local_port_range: Option<PortRange>,
}

impl NetSysctls {
    /// Number of sysctls whose file does not exist (0 to 9).
    pub fn missing_count(&self) -> usize {
        self.presence()
            .iter()
            .filter(|(_, present)| !present)
            .count()
    }

    /// Paths, relative to the root, of the sysctls whose file does not exist, e.g.
    /// `ipv4/tcp_tw_reuse`, so the caller can log which metrics are degraded.
    pub fn missing_files(&self) -> Vec<&'static str> {
        self.presence()
            .iter()
            .filter(|(_, present)| !present)
            .map(|(name, _)| *name)
            .collect()
    }

    fn presence(&self) -> [(&'static str, bool); 9] {
        [
            (TCP_FIN_TIMEOUT, self.tcp_fin_timeout.is_some()),
            (TCP_KEEPALIVE_TIME, self.tcp_keepalive_time.is_some()),
            (TCP_KEEPALIVE_INTVL, self.tcp_keepalive_intvl.is_some()),
            (TCP_KEEPALIVE_PROBES, self.tcp_keepalive_probes.is_some()),
            (TCP_TW_REUSE, self.tcp_tw_reuse.is_some()),
            (TCP_MAX_TW_BUCKETS, self.tcp_max_tw_buckets.is_some()),
            (SOMAXCONN, self.somaxconn.is_some()),
            (TCP_MAX_SYN_BACKLOG, self.tcp_max_syn_backlog.is_some()),
            (IP_LOCAL_PORT_RANGE, self.ip_local_port_range.is_some()),
        ]
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
    /// The file exists but could not be read.
    #[error("reading {}: {error}", .path.display())]
    Read { path: PathBuf, error: io::Error },
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
/// The `ipv4` and `core` directories are opened once and each file is opened relative
/// to them: a name lookup under /proc/sys compares the name with the entries of every
/// network namespace on the host (proc_sys_compare), so a full path per file cost a
/// namespace-count-long scan per path component, every poll, in every namespace.
pub fn read(root: &Path) -> Result<NetSysctls, Error> {
    let dirs = [Dir::open(root, "ipv4"), Dir::open(root, "core")];
    // `rel` is `DIR/NAME` with DIR one of `dirs`.
    let text_at = |rel: &str| -> Result<Option<String>, Error> {
        let (dir, name) = rel.split_once('/').unwrap_or(("", rel));
        match dirs.iter().find(|d| d.name == dir) {
            Some(dir) => dir.read(name),
            None => Dir::open(root, dir).read(name),
        }
    };
    let u64_at = |rel: &str| -> Result<Option<u64>, Error> {
        text_at(rel)?
            .map(|text| parse_u64(&root.join(rel), &text))
            .transpose()
    };
    Ok(NetSysctls {
        tcp_fin_timeout: u64_at(TCP_FIN_TIMEOUT)?,
        tcp_keepalive_time: u64_at(TCP_KEEPALIVE_TIME)?,
        tcp_keepalive_intvl: u64_at(TCP_KEEPALIVE_INTVL)?,
        tcp_keepalive_probes: u64_at(TCP_KEEPALIVE_PROBES)?,
        tcp_tw_reuse: u64_at(TCP_TW_REUSE)?,
        tcp_max_tw_buckets: u64_at(TCP_MAX_TW_BUCKETS)?,
        somaxconn: u64_at(SOMAXCONN)?,
        tcp_max_syn_backlog: u64_at(TCP_MAX_SYN_BACKLOG)?,
        ip_local_port_range: text_at(IP_LOCAL_PORT_RANGE)?
            .map(|text| parse_port_range(&root.join(IP_LOCAL_PORT_RANGE), &text))
            .transpose()?,
    })
}

/// Reads `ipv4/ip_local_port_range` alone (the TCP fold's ephemeral range), the other
/// sysctls left `None`: what the poll reads with the sysctl collector off.
pub fn read_port_range(root: &Path) -> Result<NetSysctls, Error> {
    let path = root.join(IP_LOCAL_PORT_RANGE);
    let text = Dir::open(root, "ipv4").read("ip_local_port_range")?;
    Ok(NetSysctls {
        ip_local_port_range: text
            .map(|text| parse_port_range(&path, &text))
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

    /// The text of file `name`, `None` if it (or the directory) does not exist.
    fn read(&self, name: &str) -> Result<Option<String>, Error> {
        let error = |error: io::Error| Error::Read {
            path: self.path.join(name),
            error,
        };
        let dir = match &self.fd {
            Ok(Some(dir)) => dir,
            Ok(None) => return Ok(None),
            Err(errno) => return Err(error((*errno).into())),
        };
        let file =
            match rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
                Ok(file) => file,
                Err(Errno::NOENT) => return Ok(None),
                Err(errno) => return Err(error(errno.into())),
            };
        let mut bytes = Vec::with_capacity(64);
        let mut buf = [0u8; 256];
        loop {
            match rustix::io::read(&file, &mut buf) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(Errno::INTR) => continue,
                Err(errno) => return Err(error(errno.into())),
            }
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|utf8| error(io::Error::new(io::ErrorKind::InvalidData, utf8)))
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

    #[test]
    fn live_namespace_has_every_sysctl() {
        let sysctls = read(Path::new(DEFAULT_ROOT)).unwrap();
        assert_eq!(sysctls.missing_files(), Vec::<&str>::new());
    }
}
