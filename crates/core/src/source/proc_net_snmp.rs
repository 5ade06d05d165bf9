//! Kernel MIB counters of the reading thread's network namespace: the [`NetCounters`] table
//! (a row per counter: file, section, kernel name, metric), the pure parsers of the files'
//! two layouts, and the reader.
//!
//! Reads files under `/proc/thread-self/net`, each only if the table has a row in it:
//! - `netstat` and `snmp`: a header line and a value line per section,
//!
//!   ```text
//!   TcpExt: SyncookiesSent SyncookiesRecv ...
//!   TcpExt: 0 0 ...
//!   ```
//! - `snmp6`: a line per value, the section glued to the name (`Udp6InErrors   0`).
//!
//! `/proc/thread-self/net`, not `/proc/net`: `/proc/net` is a symlink to `/proc/self/net`,
//! which shows the namespace of the thread-group leader. The poller enters other namespaces
//! per thread with `setns(2)`, and only `thread-self` follows the calling thread. The kernel
//! binds the namespace when the file is opened, so [`read`] opens every file afresh on every
//! call and must run on the thread that is in the wanted namespace.
//!
//! Fields are looked up by name because their order and number change between kernels. A
//! wanted field the kernel does not have is `None` (a degraded metric, see
//! [`NetCounters::missing_count`]); a file whose structure is broken is an [`Error`], and so
//! is one that is not a regular file or is longer than 64 KiB ([`super::proc_file`]).

use std::num::ParseIntError;
use std::path::{Path, PathBuf};

use super::kernel_value::{kernel_values, KernelSource, KernelValue};
use super::proc_file::{self, ReadError};

#[cfg(test)]
mod tests;

/// Where [`read`] looks by default: the procfs net directory of the calling thread.
pub const DEFAULT_ROOT: &str = "/proc/thread-self/net";

kernel_values! {
    /// The wanted MIB counters of one network namespace, a field per row of the table;
    /// `None` when the kernel lacks the field or its file could not be read.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct NetCounters {
        /// SYNs or final ACKs dropped because the accept queue was full.
        listen_overflows: Netstat "TcpExt" "ListenOverflows",
            Counter "sockdiag_tcp_listen_overflows",
            "TcpExt ListenOverflows: connections dropped because an accept queue was full (SYN retries count again; alert on rate).";
        /// Every drop on a listener, overflows included.
        listen_drops: Netstat "TcpExt" "ListenDrops",
            Counter "sockdiag_tcp_listen_drops",
            "TcpExt ListenDrops: SYNs dropped on a listening socket for any reason (overflows included).";
        /// Connections killed after exhausting retransmissions.
        abort_on_timeout: Netstat "TcpExt" "TCPAbortOnTimeout",
            Counter "sockdiag_tcp_abort_on_timeout",
            "TcpExt TCPAbortOnTimeout: connections aborted after retransmission or keepalive timeouts.";
        /// RSTs sent because a socket was closed with unread data.
        abort_on_close: Netstat "TcpExt" "TCPAbortOnClose",
            Counter "sockdiag_tcp_abort_on_close",
            "TcpExt TCPAbortOnClose: connections reset because the application closed with unread data.";
        /// TIME_WAIT sockets not created because of `tcp_max_tw_buckets`.
        time_wait_overflow: Netstat "TcpExt" "TCPTimeWaitOverflow",
            Counter "sockdiag_tcp_time_wait_overflow",
            "TcpExt TCPTimeWaitOverflow: TIME_WAIT sockets not created because tcp_max_tw_buckets was reached.";
        /// Transitions CLOSED -> SYN_SENT (outgoing connects).
        active_opens: Snmp "Tcp" "ActiveOpens",
            Counter "sockdiag_tcp_active_opens",
            "Tcp ActiveOpens: outgoing connections started (connect()).";
        /// Transitions LISTEN -> SYN_RECV (incoming connections).
        passive_opens: Snmp "Tcp" "PassiveOpens",
            Counter "sockdiag_tcp_passive_opens",
            "Tcp PassiveOpens: incoming connections accepted into SYN_RECV.";
        /// Udp RcvbufErrors, IPv4.
        udp_rcvbuf_errors: Snmp "Udp" "RcvbufErrors",
            Counter "sockdiag_udp_rcvbuf_errors",
            "Udp RcvbufErrors (/proc/net/snmp, IPv4): datagrams dropped because a socket's receive buffer was full (sockdiag_udp_drops_total says which socket).";
        /// Udp InErrors, IPv4.
        udp_in_errors: Snmp "Udp" "InErrors",
            Counter "sockdiag_udp_in_errors",
            "Udp InErrors (/proc/net/snmp, IPv4): datagrams that could not be delivered: receive buffer full, checksum errors and others (RcvbufErrors and InCsumErrors included).";
        /// Udp NoPorts, IPv4.
        udp_no_ports: Snmp "Udp" "NoPorts",
            Counter "sockdiag_udp_no_ports",
            "Udp NoPorts (/proc/net/snmp, IPv4): datagrams to a port no socket is bound to (answered with ICMP port unreachable).";
        /// Udp SndbufErrors, IPv4.
        udp_sndbuf_errors: Snmp "Udp" "SndbufErrors",
            Counter "sockdiag_udp_sndbuf_errors",
            "Udp SndbufErrors (/proc/net/snmp, IPv4): datagrams not sent because a socket's send buffer was full.";
        /// Udp InCsumErrors, IPv4.
        udp_in_csum_errors: Snmp "Udp" "InCsumErrors",
            Counter "sockdiag_udp_in_csum_errors",
            "Udp InCsumErrors (/proc/net/snmp, IPv4): datagrams dropped for a bad UDP checksum.";
        /// Udp6 RcvbufErrors, IPv6.
        udp6_rcvbuf_errors: Snmp6 "Udp6" "RcvbufErrors",
            Counter "sockdiag_udp6_rcvbuf_errors",
            "Udp6 RcvbufErrors (/proc/net/snmp6, IPv6): datagrams dropped because a socket's receive buffer was full (sockdiag_udp_drops_total says which socket).";
        /// Udp6 InErrors, IPv6.
        udp6_in_errors: Snmp6 "Udp6" "InErrors",
            Counter "sockdiag_udp6_in_errors",
            "Udp6 InErrors (/proc/net/snmp6, IPv6): datagrams that could not be delivered: receive buffer full, checksum errors and others (RcvbufErrors and InCsumErrors included).";
        /// Udp6 NoPorts, IPv6.
        udp6_no_ports: Snmp6 "Udp6" "NoPorts",
            Counter "sockdiag_udp6_no_ports",
            "Udp6 NoPorts (/proc/net/snmp6, IPv6): datagrams to a port no socket is bound to (answered with ICMP port unreachable).";
        /// Udp6 SndbufErrors, IPv6.
        udp6_sndbuf_errors: Snmp6 "Udp6" "SndbufErrors",
            Counter "sockdiag_udp6_sndbuf_errors",
            "Udp6 SndbufErrors (/proc/net/snmp6, IPv6): datagrams not sent because a socket's send buffer was full.";
        /// Udp6 InCsumErrors, IPv6.
        udp6_in_csum_errors: Snmp6 "Udp6" "InCsumErrors",
            Counter "sockdiag_udp6_in_csum_errors",
            "Udp6 InCsumErrors (/proc/net/snmp6, IPv6): datagrams dropped for a bad UDP checksum.";
    }
}

impl NetCounters {
    /// Number of wanted fields this kernel does not provide.
    pub fn missing_count(&self) -> usize {
        self.missing_rows().count()
    }

    /// `Section.Field` kernel names of the missing fields, e.g. `TcpExt.TCPTimeWaitOverflow`,
    /// so the caller can log which metrics are degraded.
    pub fn missing_fields(&self) -> Vec<String> {
        self.missing_rows().map(ToString::to_string).collect()
    }

    /// Keeps `other`'s values where `self` has none: joins the counters of two files.
    pub fn or(self, other: NetCounters) -> NetCounters {
        let mut joined = self;
        for (slot, value) in joined.slots_mut().into_iter().zip(other.values()) {
            *slot = slot.or(value);
        }
        joined
    }
}

/// What is wrong with the text of a `netstat`, `snmp` or `snmp6` file.
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
    /// The `snmp6` line of a wanted field does not hold exactly one value after its name.
    #[error("{section}{field} line does not hold one value: {line:?}")]
    ValueCount {
        section: &'static str,
        field: &'static str,
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
    /// The file exists but could not be read, is not a regular file, or is too long.
    #[error(transparent)]
    Read(ReadError),
    /// The file was read but its text is malformed.
    #[error("parsing {}: {error}", .path.display())]
    Parse { path: PathBuf, error: ParseError },
}

/// Reads every file the table has a row in under `root` (normally [`DEFAULT_ROOT`]), each on
/// its own: a file that cannot be read or parsed leaves its values `None` and adds its error.
pub fn read(root: &Path) -> (NetCounters, Vec<Error>) {
    let mut counters = NetCounters::default();
    let mut errors = Vec::new();
    for source in KernelSource::ALL
        .into_iter()
        .filter(|s| NetCounters::reads(*s))
    {
        match read_file(root, source) {
            Ok(values) => counters = counters.or(values),
            Err(error) => errors.push(error),
        }
    }
    (counters, errors)
}

/// Reads the file of `source` under `root`: the values of its rows, every other `None`.
pub fn read_file(root: &Path, source: KernelSource) -> Result<NetCounters, Error> {
    let Some(name) = source.net_file() else {
        return Ok(NetCounters::default());
    };
    let path = root.join(name);
    let text = match proc_file::read(&path) {
        Ok(Some(text)) => text,
        Ok(None) => return Err(Error::NotFound { path }),
        Err(error) => return Err(Error::Read(error)),
    };
    parse(source, &text).map_err(|error| Error::Parse { path, error })
}

/// Parses the text of `source`'s file into the values of its rows, every other `None`.
pub fn parse(source: KernelSource, text: &str) -> Result<NetCounters, ParseError> {
    let values = parse_rows(source, text, &NetCounters::TABLE)?;
    let mut counters = NetCounters::default();
    for (slot, value) in counters.slots_mut().into_iter().zip(values) {
        *slot = value;
    }
    Ok(counters)
}

/// The values of the `rows` of `source` in `text`, that file's text, in the order of
/// `rows`; rows of other sources are `None`. Any table's rows: the counters' or a test's.
pub fn parse_rows(
    source: KernelSource,
    text: &str,
    rows: &[KernelValue],
) -> Result<Vec<Option<u64>>, ParseError> {
    let mut values = vec![None; rows.len()];
    let wanted = rows
        .iter()
        .zip(&mut values)
        .filter(|(row, _)| row.source == source);
    match source {
        KernelSource::Netstat | KernelSource::Snmp => {
            let mut sections = Sections::default();
            for (row, slot) in wanted {
                *slot = sections.value(text, row)?;
            }
        }
        KernelSource::Snmp6 => {
            for (row, slot) in wanted {
                *slot = line_value(text, row)?;
            }
        }
        // Each sysctl is a file of its own, read by `proc_sys_net`.
        KernelSource::Sysctl => {}
    }
    Ok(values)
}

/// The header and value lines of the sections looked up so far in one text.
#[derive(Default)]
struct Sections<'t> {
    found: Vec<(&'static str, Option<Section<'t>>)>,
}

/// One section's field names and values, of equal length.
struct Section<'t> {
    names: Vec<&'t str>,
    values: Vec<&'t str>,
}

impl<'t> Sections<'t> {
    /// `row`'s value; `None` when its section or its name is absent.
    fn value(&mut self, text: &'t str, row: &KernelValue) -> Result<Option<u64>, ParseError> {
        let position = match self.found.iter().position(|(name, _)| *name == row.section) {
            Some(position) => position,
            None => {
                self.found.push((row.section, section(text, row.section)?));
                self.found.len() - 1
            }
        };
        let Some(section) = &self.found[position].1 else {
            return Ok(None);
        };
        let Some(index) = section.names.iter().position(|name| *name == row.name) else {
            return Ok(None);
        };
        parse_value(row, section.values[index]).map(Some)
    }
}

/// The first `section` header/value line pair of `text`, `None` if there is none.
///
/// Values are not parsed here: only wanted ones are, since other fields may be signed
/// (`Tcp: MaxConn` is -1) and are none of our business.
fn section<'t>(text: &'t str, section: &'static str) -> Result<Option<Section<'t>>, ParseError> {
    let mut lines = text.lines();
    let Some(names) = lines
        .by_ref()
        .find_map(|line| section_fields(line, section))
    else {
        return Ok(None);
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
    Ok(Some(Section { names, values }))
}

/// The text after `section:` if `line` belongs to `section` (exactly: `Tcp` must not match
/// `TcpExt:` lines).
fn section_fields<'a>(line: &'a str, section: &str) -> Option<&'a str> {
    line.strip_prefix(section)?.strip_prefix(':')
}

/// `row`'s value in a file of `<section><name> <value>` lines (`snmp6`), `None` if no line
/// has its name. The first such line counts.
fn line_value(text: &str, row: &KernelValue) -> Result<Option<u64>, ParseError> {
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let named = fields
            .next()
            .and_then(|key| key.strip_prefix(row.section))
            .is_some_and(|name| name == row.name);
        if !named {
            continue;
        }
        return match (fields.next(), fields.next()) {
            (Some(value), None) => parse_value(row, value).map(Some),
            _ => Err(ParseError::ValueCount {
                section: row.section,
                field: row.name,
                line: line.to_owned(),
            }),
        };
    }
    Ok(None)
}

fn parse_value(row: &KernelValue, value: &str) -> Result<u64, ParseError> {
    value.parse().map_err(|error| ParseError::InvalidValue {
        section: row.section,
        field: row.name,
        value: value.to_owned(),
        error,
    })
}
