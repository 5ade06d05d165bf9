//! Kernel TCP counters (MIB) of the reading thread's network namespace.
//!
//! Reads two procfs files under `/proc/thread-self/net`:
//! - `netstat`, section `TcpExt`: `ListenOverflows`, `ListenDrops`, `TCPAbortOnTimeout`,
//!   `TCPAbortOnClose`, `TCPTimeWaitOverflow`;
//! - `snmp`, section `Tcp`: `ActiveOpens`, `PassiveOpens`.
//!
//! `/proc/thread-self/net`, not `/proc/net`: `/proc/net` is a symlink to `/proc/self/net`,
//! which shows the namespace of the thread-group leader. The poller enters other namespaces
//! per thread with `setns(2)`, and only `thread-self` follows the calling thread. The kernel
//! binds the namespace when the file is opened, so [`read`] opens both files afresh on every
//! call and must run on the thread that is in the wanted namespace.
//!
//! Both files are pairs of lines per section, a header line and a value line:
//!
//! ```text
//! TcpExt: SyncookiesSent SyncookiesRecv ...
//! TcpExt: 0 0 ...
//! ```
//!
//! Fields are looked up by name because their order and number change between kernels. A
//! wanted field the kernel does not have is `None` (a degraded metric, see
//! [`TcpCounters::missing_count`]); a file whose structure is broken is an [`Error`].

use std::io;
use std::num::ParseIntError;
use std::path::{Path, PathBuf};

/// Where [`read`] looks by default: the procfs net directory of the calling thread.
pub const DEFAULT_ROOT: &str = "/proc/thread-self/net";

/// Kernel names of the [`NetstatCounters`] fields, in `netstat` section `TcpExt`.
const NETSTAT_SECTION: &str = "TcpExt";
const NETSTAT_FIELDS: [&str; 5] = [
    "ListenOverflows",
    "ListenDrops",
    "TCPAbortOnTimeout",
    "TCPAbortOnClose",
    "TCPTimeWaitOverflow",
];

/// Kernel names of the [`SnmpCounters`] fields, in `snmp` section `Tcp`.
const SNMP_SECTION: &str = "Tcp";
const SNMP_FIELDS: [&str; 2] = ["ActiveOpens", "PassiveOpens"];

/// The wanted counters of `netstat` section `TcpExt`; `None` when the kernel lacks the field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetstatCounters {
    /// `ListenOverflows`: SYNs or final ACKs dropped because the accept queue was full.
    pub listen_overflows: Option<u64>,
    /// `ListenDrops`: every drop on a listener, overflows included.
    pub listen_drops: Option<u64>,
    /// `TCPAbortOnTimeout`: connections killed after exhausting retransmissions.
    pub abort_on_timeout: Option<u64>,
    /// `TCPAbortOnClose`: RSTs sent because a socket was closed with unread data.
    pub abort_on_close: Option<u64>,
    /// `TCPTimeWaitOverflow`: TIME_WAIT sockets not created because of `tcp_max_tw_buckets`.
    pub time_wait_overflow: Option<u64>,
}

/// The wanted counters of `snmp` section `Tcp`; `None` when the kernel lacks the field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnmpCounters {
    /// `ActiveOpens`: transitions CLOSED -> SYN_SENT (outgoing connects).
    pub active_opens: Option<u64>,
    /// `PassiveOpens`: transitions LISTEN -> SYN_RECV (incoming connections).
    pub passive_opens: Option<u64>,
}

/// All wanted TCP counters of one network namespace; `None` when the kernel lacks the field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// `TcpExt: ListenOverflows`.
    pub listen_overflows: Option<u64>,
    /// `TcpExt: ListenDrops`.
    pub listen_drops: Option<u64>,
    /// `TcpExt: TCPAbortOnTimeout`.
    pub abort_on_timeout: Option<u64>,
    /// `TcpExt: TCPAbortOnClose`.
    pub abort_on_close: Option<u64>,
    /// `TcpExt: TCPTimeWaitOverflow`.
    pub time_wait_overflow: Option<u64>,
    /// `Tcp: ActiveOpens`.
    pub active_opens: Option<u64>,
    /// `Tcp: PassiveOpens`.
    pub passive_opens: Option<u64>,
}

impl TcpCounters {
    /// Combines the counters of both files.
    pub fn from_parts(netstat: NetstatCounters, snmp: SnmpCounters) -> Self {
        Self {
            listen_overflows: netstat.listen_overflows,
            listen_drops: netstat.listen_drops,
            abort_on_timeout: netstat.abort_on_timeout,
            abort_on_close: netstat.abort_on_close,
            time_wait_overflow: netstat.time_wait_overflow,
            active_opens: snmp.active_opens,
            passive_opens: snmp.passive_opens,
        }
    }

    /// Number of wanted fields this kernel does not provide (0 to 7).
    pub fn missing_count(&self) -> usize {
        self.fields().iter().filter(|(_, v)| v.is_none()).count()
    }

    /// `Section.Field` kernel names of the missing fields, e.g. `TcpExt.TCPTimeWaitOverflow`,
    /// so the caller can log which metrics are degraded.
    pub fn missing_fields(&self) -> Vec<&'static str> {
        self.fields()
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(name, _)| *name)
            .collect()
    }

    fn fields(&self) -> [(&'static str, Option<u64>); 7] {
        [
            ("TcpExt.ListenOverflows", self.listen_overflows),
            ("TcpExt.ListenDrops", self.listen_drops),
            ("TcpExt.TCPAbortOnTimeout", self.abort_on_timeout),
            ("TcpExt.TCPAbortOnClose", self.abort_on_close),
            ("TcpExt.TCPTimeWaitOverflow", self.time_wait_overflow),
            ("Tcp.ActiveOpens", self.active_opens),
            ("Tcp.PassiveOpens", self.passive_opens),
        ]
    }
}

/// What is wrong with the text of a `netstat` or `snmp` file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// A section header line is not followed by the value line of the same section.
    #[error("{section} header line is not followed by a {section} value line (found {})", found_text(.found))]
    ValueLineMissing {
        section: &'static str,
        /// The line found instead, `None` at end of file.
        found: Option<String>,
    },
    /// Header and value lines of a section have different numbers of fields, so no value
    /// can be attributed to a name.
    #[error("{section} header line has {header_fields} fields but value line has {value_fields}: {line:?}")]
    FieldCountMismatch {
        section: &'static str,
        header_fields: usize,
        value_fields: usize,
        /// The value line.
        line: String,
    },
    /// A wanted field's value is not an unsigned integer.
    #[error("{section} {field}: value {value:?} is not an unsigned integer: {error}")]
    InvalidValue {
        section: &'static str,
        field: &'static str,
        value: String,
        error: ParseIntError,
    },
}

fn found_text(found: &Option<String>) -> String {
    match found {
        Some(line) => format!("{line:?}"),
        None => "end of file".to_owned(),
    }
}

/// Failure to read one of the files, by stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file does not exist (no procfs, or a kernel without it); callers degrade.
    #[error("{}: no such file", .path.display())]
    NotFound { path: PathBuf },
    /// The file exists but could not be read.
    #[error("reading {}: {error}", .path.display())]
    Read { path: PathBuf, error: io::Error },
    /// The file was read but its text is malformed.
    #[error("parsing {}: {error}", .path.display())]
    Parse { path: PathBuf, error: ParseError },
}

/// Reads `netstat` and `snmp` under `root` (normally [`DEFAULT_ROOT`]).
pub fn read(root: &Path) -> Result<TcpCounters, Error> {
    Ok(TcpCounters::from_parts(
        read_netstat(root)?,
        read_snmp(root)?,
    ))
}

/// Reads `root/netstat` alone, for callers that degrade each file separately.
pub fn read_netstat(root: &Path) -> Result<NetstatCounters, Error> {
    let path = root.join("netstat");
    let text = read_file(&path)?;
    parse_netstat(&text).map_err(|error| Error::Parse { path, error })
}

/// Reads `root/snmp` alone, for callers that degrade each file separately.
pub fn read_snmp(root: &Path) -> Result<SnmpCounters, Error> {
    let path = root.join("snmp");
    let text = read_file(&path)?;
    parse_snmp(&text).map_err(|error| Error::Parse { path, error })
}

fn read_file(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => Error::NotFound {
            path: path.to_path_buf(),
        },
        _ => Error::Read {
            path: path.to_path_buf(),
            error,
        },
    })
}

/// Parses the text of `/proc/thread-self/net/netstat`.
pub fn parse_netstat(text: &str) -> Result<NetstatCounters, ParseError> {
    let [listen_overflows, listen_drops, abort_on_timeout, abort_on_close, time_wait_overflow] =
        parse_section(text, NETSTAT_SECTION, NETSTAT_FIELDS)?;
    Ok(NetstatCounters {
        listen_overflows,
        listen_drops,
        abort_on_timeout,
        abort_on_close,
        time_wait_overflow,
    })
}

/// Parses the text of `/proc/thread-self/net/snmp`.
pub fn parse_snmp(text: &str) -> Result<SnmpCounters, ParseError> {
    let [active_opens, passive_opens] = parse_section(text, SNMP_SECTION, SNMP_FIELDS)?;
    Ok(SnmpCounters {
        active_opens,
        passive_opens,
    })
}

/// Values of `wanted` in the first `section` header/value line pair of `text`.
///
/// Only wanted values are parsed: other fields may be signed (`Tcp: MaxConn` is -1) and are
/// none of our business. A section absent altogether leaves every wanted field `None`, like a
/// kernel that lacks the fields.
fn parse_section<const N: usize>(
    text: &str,
    section: &'static str,
    wanted: [&'static str; N],
) -> Result<[Option<u64>; N], ParseError> {
    let mut lines = text.lines();
    let Some(names) = lines
        .by_ref()
        .find_map(|line| section_fields(line, section))
    else {
        return Ok([None; N]);
    };
    let value_line = lines.next();
    let Some((line, values)) =
        value_line.and_then(|line| section_fields(line, section).map(|values| (line, values)))
    else {
        return Err(ParseError::ValueLineMissing {
            section,
            found: value_line.map(str::to_owned),
        });
    };
    let names: Vec<&str> = names.split_ascii_whitespace().collect();
    let values: Vec<&str> = values.split_ascii_whitespace().collect();
    if names.len() != values.len() {
        return Err(ParseError::FieldCountMismatch {
            section,
            header_fields: names.len(),
            value_fields: values.len(),
            line: line.to_owned(),
        });
    }

    let mut out = [None; N];
    for (slot, field) in out.iter_mut().zip(wanted) {
        let Some((_, value)) = names.iter().zip(&values).find(|(name, _)| **name == field) else {
            continue;
        };
        let parsed = value
            .parse::<u64>()
            .map_err(|error| ParseError::InvalidValue {
                section,
                field,
                value: (*value).to_owned(),
                error,
            })?;
        *slot = Some(parsed);
    }
    Ok(out)
}

/// The text after `section:` if `line` belongs to `section` (exactly: `Tcp` must not match
/// `TcpExt:` lines).
fn section_fields<'a>(line: &'a str, section: &str) -> Option<&'a str> {
    line.strip_prefix(section)?.strip_prefix(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/proc")
    }

    fn fixture(name: &str) -> String {
        let path = fixtures().join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
    }

    /// Values of the capture in tests/fixtures/proc/netstat (see the README there).
    const CAPTURED_NETSTAT: NetstatCounters = NetstatCounters {
        listen_overflows: Some(15),
        listen_drops: Some(15),
        abort_on_timeout: Some(5),
        abort_on_close: Some(3),
        time_wait_overflow: Some(5),
    };

    /// Values of the capture in tests/fixtures/proc/snmp.
    const CAPTURED_SNMP: SnmpCounters = SnmpCounters {
        active_opens: Some(16),
        passive_opens: Some(11),
    };

    #[test]
    fn parses_captured_netstat() {
        assert_eq!(parse_netstat(&fixture("netstat")), Ok(CAPTURED_NETSTAT));
    }

    #[test]
    fn parses_captured_snmp_despite_negative_maxconn() {
        assert_eq!(parse_snmp(&fixture("snmp")), Ok(CAPTURED_SNMP));
    }

    #[test]
    fn reads_fixture_root() {
        let counters = read(&fixtures()).unwrap();
        assert_eq!(
            counters,
            TcpCounters {
                listen_overflows: Some(15),
                listen_drops: Some(15),
                abort_on_timeout: Some(5),
                abort_on_close: Some(3),
                time_wait_overflow: Some(5),
                active_opens: Some(16),
                passive_opens: Some(11),
            }
        );
        assert_eq!(counters.missing_count(), 0);
        assert_eq!(counters.missing_fields(), Vec::<&str>::new());
    }

    #[test]
    fn field_missing_from_kernel_is_none_and_counted() {
        let netstat = read_netstat(&fixtures().join("netstat-no-tcptimewaitoverflow")).unwrap();
        let counters = TcpCounters::from_parts(netstat, CAPTURED_SNMP);
        assert_eq!(
            counters,
            TcpCounters {
                time_wait_overflow: None,
                ..read(&fixtures()).unwrap()
            }
        );
        assert_eq!(counters.missing_count(), 1);
        assert_eq!(counters.missing_fields(), ["TcpExt.TCPTimeWaitOverflow"]);
    }

    #[test]
    fn absent_section_leaves_every_field_missing() {
        let counters = TcpCounters::from_parts(parse_netstat("").unwrap(), parse_snmp("").unwrap());
        assert_eq!(counters, TcpCounters::default());
        assert_eq!(counters.missing_count(), 7);
    }

    #[test]
    fn tcp_section_does_not_match_tcpext_lines() {
        let text = "TcpExt: ActiveOpens PassiveOpens\nTcpExt: 1 2\n\
                    Tcp: PassiveOpens ActiveOpens\nTcp: 4 3\n";
        assert_eq!(
            parse_snmp(text),
            Ok(SnmpCounters {
                active_opens: Some(3),
                passive_opens: Some(4),
            })
        );
    }

    #[test]
    fn invalid_wanted_value_is_an_error_with_path_and_text() {
        let dir = fixtures().join("netstat-malformed-listendrops");
        let err = read(&dir).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Parse {
                    error: ParseError::InvalidValue { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "parsing {}/netstat: TcpExt ListenDrops: value \"-1\" is not an unsigned \
                 integer: invalid digit found in string",
                dir.display()
            )
        );
    }

    #[test]
    fn missing_value_line_is_an_error_with_path() {
        let dir = fixtures().join("snmp-truncated-tcp");
        assert_eq!(
            read_snmp(&dir).unwrap_err().to_string(),
            format!(
                "parsing {}/snmp: Tcp header line is not followed by a Tcp value line \
                 (found end of file)",
                dir.display()
            )
        );
        assert_eq!(
            parse_netstat("TcpExt: ListenDrops\nIpExt: InNoRoutes\nIpExt: 0\n")
                .unwrap_err()
                .to_string(),
            "TcpExt header line is not followed by a TcpExt value line \
             (found \"IpExt: InNoRoutes\")"
        );
    }

    #[test]
    fn field_count_mismatch_is_an_error() {
        let err = parse_netstat("TcpExt: ListenOverflows ListenDrops TW\nTcpExt: 1 2\n");
        assert_eq!(
            err,
            Err(ParseError::FieldCountMismatch {
                section: "TcpExt",
                header_fields: 3,
                value_fields: 2,
                line: "TcpExt: 1 2".to_owned(),
            })
        );
        assert_eq!(
            err.unwrap_err().to_string(),
            "TcpExt header line has 3 fields but value line has 2: \"TcpExt: 1 2\""
        );
    }

    #[test]
    fn missing_file_is_its_own_error() {
        // The variant directory has netstat but no snmp.
        let dir = fixtures().join("netstat-no-tcptimewaitoverflow");
        let err = read(&dir).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("{}/snmp: no such file", dir.display())
        );
    }

    #[test]
    fn unreadable_file_is_a_read_error() {
        // A regular file used as the root: opening root/snmp fails with ENOTDIR, not ENOENT.
        let root = fixtures().join("snmp");
        let err = read_snmp(&root).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "reading {}/snmp: Not a directory (os error 20)",
                root.display()
            )
        );
    }

    /// Guards the field names against kernel renames: on the kernel running the tests every
    /// wanted counter must be found in the calling thread's namespace.
    #[test]
    fn live_thread_self_has_every_wanted_field() {
        let counters = read(Path::new(DEFAULT_ROOT)).unwrap();
        assert_eq!(counters.missing_fields(), Vec::<&str>::new());
    }

    /// The two lines of `section` with `fields` (name, value) in the order of `keys`
    /// (a random sort key per field).
    fn render_section(section: &str, fields: &[(String, String)], keys: &[u32]) -> String {
        let mut order: Vec<usize> = (0..fields.len()).collect();
        order.sort_by_key(|&i| (keys.get(i).copied().unwrap_or(0), i));
        let names: Vec<&str> = order.iter().map(|&i| fields[i].0.as_str()).collect();
        let values: Vec<&str> = order.iter().map(|&i| fields[i].1.as_str()).collect();
        format!(
            "{section}: {}\n{section}: {}\n",
            names.join(" "),
            values.join(" ")
        )
    }

    /// A whole file: unrelated sections around `section`, whose wanted fields are
    /// present when `Some`, among other fields (some negative, as `Tcp: MaxConn -1`).
    fn render(
        section: &str,
        wanted: &[&str],
        values: &[Option<u64>],
        others: &[i64],
        keys: &[u32],
    ) -> String {
        const OTHER_NAMES: [&str; 4] = ["SyncookiesSent", "MaxConn", "TCPFastRetrans", "RtoMin"];
        let mut fields: Vec<(String, String)> = wanted
            .iter()
            .zip(values)
            .filter_map(|(name, value)| Some((name.to_string(), (*value)?.to_string())))
            .collect();
        fields.extend(
            OTHER_NAMES
                .iter()
                .zip(others)
                .map(|(name, value)| (name.to_string(), value.to_string())),
        );
        // A section whose name starts like this one's comes first: it must not match.
        let lookalike = format!("{section}Ext");
        format!(
            "Ip: Forwarding InReceives\nIp: 1 42\n{}{}IpExt: InNoRoutes\nIpExt: 0\n",
            render_section(&lookalike, &[("ListenDrops".into(), "9".into())], &[]),
            render_section(section, &fields, keys)
        )
    }

    fn arb_layout() -> impl proptest::strategy::Strategy<Value = (Vec<i64>, Vec<u32>)> {
        use proptest::prelude::*;
        (
            proptest::collection::vec(any::<i64>(), 0..4),
            proptest::collection::vec(any::<u32>(), 9),
        )
    }

    proptest::proptest! {
        /// parse_netstat(render(x)) == x: any values, any field order, wanted fields
        /// missing or not, among other fields and sections.
        #[test]
        fn netstat_parse_of_render_is_the_counters(
            values in proptest::prelude::any::<[Option<u64>; 5]>(),
            (others, keys) in arb_layout(),
        ) {
            let counters = NetstatCounters {
                listen_overflows: values[0],
                listen_drops: values[1],
                abort_on_timeout: values[2],
                abort_on_close: values[3],
                time_wait_overflow: values[4],
            };
            // A "TcpExtExt" lookalike comes first; "TcpExt" still matches exactly.
            let text = render(NETSTAT_SECTION, &NETSTAT_FIELDS, &values, &others, &keys);
            proptest::prop_assert_eq!(parse_netstat(&text), Ok(counters), "{}", text);
        }

        /// parse_snmp(render(x)) == x, with a `TcpExt` section before `Tcp`.
        #[test]
        fn snmp_parse_of_render_is_the_counters(
            values in proptest::prelude::any::<[Option<u64>; 2]>(),
            (others, keys) in arb_layout(),
        ) {
            let counters = SnmpCounters {
                active_opens: values[0],
                passive_opens: values[1],
            };
            let text = render(SNMP_SECTION, &SNMP_FIELDS, &values, &others, &keys);
            proptest::prop_assert_eq!(parse_snmp(&text), Ok(counters), "{}", text);
        }
    }
}
