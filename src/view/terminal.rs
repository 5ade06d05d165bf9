//! A [`Summary`] as terminal text: the findings first (the first line says what looks
//! wrong, or that nothing does), then a line saying what was sampled, then one table per
//! question, each sorted by what matters. Labels are /metrics' label values, except `-`
//! for the empty process (no owner), and every one goes through [`super::table`], which
//! escapes control characters and fits the width.

use std::ffi::OsStr;

use crossterm::style::Stylize;

use super::findings::{age_text, rate_text};
use super::summary::{path_text, process_text, Growth, Summary};
use super::table::{fit, number, path, text, word, wrap, Column, Table};
use crate::snapshot::Snapshot;
use crate::source::inet_diag::TcpState;

/// Width of every line when stdout is not a terminal, or one that does not say its width.
pub const DEFAULT_WIDTH: usize = 100;

/// How to draw.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub width: usize,
    /// Rows per table before "… N more rows".
    pub max_rows: usize,
    pub colour: bool,
}

/// What a sentence longer than the width becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Cut with `…`: a screen redrawn in place has no room for more.
    Cut,
    /// Continued on indented lines: printed once, it must be read whole.
    Wrap,
}

/// Whether `term`, the TERM variable, names a terminal that takes no escape sequence:
/// `dumb` (Emacs' shell, some CI logs), or none at all.
pub fn dumb(term: Option<&OsStr>) -> bool {
    term.is_none_or(|term| term.is_empty() || term == "dumb")
}

/// Colour on a terminal that takes escape sequences, unless NO_COLOR is set and not empty
/// (no-color.org). `term` is the TERM variable.
pub fn colour_wanted(stdout_is_terminal: bool, term: Option<&OsStr>) -> bool {
    stdout_is_terminal && !dumb(term) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The state columns of the states table without a `--state` filter: the ones incidents
/// are about, FIN_WAIT1 and 2 together, and the rest as `other`.
const STATE_COLUMNS: [(&str, &[TcpState]); 8] = [
    ("estab", &[TcpState::Established]),
    ("listen", &[TcpState::Listen]),
    ("syn_sent", &[TcpState::SynSent]),
    ("syn_recv", &[TcpState::SynRecv]),
    ("fin_wait", &[TcpState::FinWait1, TcpState::FinWait2]),
    ("close_wait", &[TcpState::CloseWait]),
    ("time_wait", &[TcpState::TimeWait]),
    (
        "other",
        &[
            TcpState::Close,
            TcpState::LastAck,
            TcpState::Closing,
            TcpState::Unknown,
        ],
    ),
];

fn growth_cells(growth: Option<Growth>) -> [String; 2] {
    match growth {
        Some(g) => [format!("{:+}", g.sockets), rate_text(g.per_second)],
        None => [String::new(), String::new()],
    }
}

fn percent(fill: f64) -> String {
    format!("{:.0}%", fill * 100.0)
}

/// `line` made to fit `width` as `overflow` says.
fn sentence(line: &str, width: usize, overflow: Overflow) -> Vec<String> {
    match overflow {
        Overflow::Cut => vec![fit(line, width)],
        Overflow::Wrap => wrap(line, width),
    }
}

/// The findings and notes, made to fit `width`: the first line is the headline.
pub fn findings(summary: &Summary, colour: bool, width: usize, overflow: Overflow) -> Vec<String> {
    type Paint = fn(String) -> String;
    let mut said: Vec<(String, Paint)> = Vec::new();
    match summary.findings.split_first() {
        None => said.push((summary.headline.clone(), |l| l.green().bold().to_string())),
        Some((first, rest)) => {
            said.push((first.text.clone(), |l| l.red().bold().to_string()));
            for finding in rest {
                said.push((format!("also: {}", finding.text), |l| l.red().to_string()));
            }
        }
    }
    for note in &summary.notes {
        said.push((format!("note: {note}"), |l| l.yellow().to_string()));
    }
    said.into_iter()
        .flat_map(|(line, paint)| {
            sentence(&line, width, overflow)
                .into_iter()
                .map(move |l| if colour { paint(l) } else { l })
        })
        .collect()
}

/// The line under the findings: what was sampled and when. Under 100 columns whatever the
/// counts (8-digit sockets, 5-digit namespaces).
pub fn header(latest: &Snapshot, summary: &Summary) -> String {
    let window = summary
        .window_seconds
        .map_or_else(String::new, |w| format!(", growth over {w:.1} s"));
    format!(
        "sockdiag_exporter report: {} sockets in {} netns{window}, {}",
        latest.sockets_scanned,
        summary.namespaces.sampled,
        humantime::format_rfc3339_seconds(latest.completed_at),
    )
}

/// The findings, the header and the tables: all `report` prints as text.
pub fn page(
    summary: &Summary,
    latest: &Snapshot,
    style: Style,
    overflow: Overflow,
    status: Option<&str>,
) -> Vec<String> {
    let mut lines = findings(summary, style.colour, style.width, overflow);
    let dim = |line: String| {
        if style.colour {
            line.dim().to_string()
        } else {
            line
        }
    };
    if let Some(status) = status {
        lines.extend(sentence(status, style.width, overflow).into_iter().map(dim));
    }
    let header = header(latest, summary);
    lines.extend(
        sentence(&header, style.width, overflow)
            .into_iter()
            .map(dim),
    );
    lines.push(String::new());
    lines.extend(tables(summary, style));
    lines
}

/// The `netns` column, shown only when the summary has more than one namespace.
#[derive(Clone, Copy)]
struct Netns(bool);

impl Netns {
    fn columns(self, mut columns: Vec<Column>) -> Vec<Column> {
        if self.0 {
            columns.insert(0, text("netns"));
        }
        columns
    }

    fn cells(self, netns: &str, mut cells: Vec<String>) -> Vec<String> {
        if self.0 {
            cells.insert(0, netns.to_string());
        }
        cells
    }
}

/// The tables, with an empty line between two.
pub fn tables(summary: &Summary, style: Style) -> Vec<String> {
    let netns = Netns(summary.states.len() > 1);
    let tables = [
        states(summary),
        close_wait(summary, netns),
        listeners(summary, netns),
        unix_listeners(summary, netns),
        udp_drops(summary, netns),
        time_wait(summary, netns),
        ephemeral(summary, netns),
        peers(summary, netns),
    ];
    let mut out = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        if i > 0 {
            out.push(String::new());
        }
        out.extend(table.render(style.width, style.max_rows, style.colour));
    }
    out
}

fn states(summary: &Summary) -> Table {
    let filtered = summary
        .states
        .first()
        .is_some_and(|row| row.states.len() < TcpState::COUNT);
    let state_columns: Vec<(&'static str, Vec<&'static str>)> = if filtered {
        summary.states[0]
            .states
            .keys()
            .map(|label| (*label, vec![*label]))
            .collect()
    } else {
        STATE_COLUMNS
            .iter()
            .map(|(name, states)| (*name, states.iter().map(|s| s.label()).collect()))
            .collect()
    };
    let mut columns = vec![text("netns"), number("total")];
    columns.extend(state_columns.iter().map(|(name, _)| number(name)));
    let mut table = Table::new("TCP sockets by state", columns, "no namespace sampled");
    // Ten columns of state names, `estab` as ss writes it: one space apart, they fit 80
    // columns with the namespace label cut to 6 characters, 100 with 27.
    table.gap = 1;
    for row in &summary.states {
        let mut cells = vec![row.netns_name.clone(), row.total.to_string()];
        cells.extend(state_columns.iter().map(|(_, labels)| {
            labels
                .iter()
                .map(|l| row.states.get(l).copied().unwrap_or(0))
                .sum::<u64>()
                .to_string()
        }));
        table.row(cells, false);
    }
    table
}

fn close_wait(summary: &Summary, netns: Netns) -> Table {
    let mut table = Table::new(
        "CLOSE_WAIT: who holds them (fastest growing first)",
        netns.columns(vec![
            text("process"),
            word("direction"),
            word("port"),
            number("sockets"),
            number("growth"),
            number("per s"),
            number("oldest"),
            number("stale"),
        ]),
        "no CLOSE_WAIT socket",
    );
    for row in &summary.close_wait {
        let [growth, per_second] = growth_cells(row.growth);
        let hot = row.growth.is_some_and(|g| g.sockets > 0) || row.stale > 0;
        let cells = vec![
            process_text(&row.process).to_string(),
            row.direction.to_string(),
            row.port.clone(),
            row.sockets.to_string(),
            growth,
            per_second,
            age_text(row.oldest_seconds),
            row.stale.to_string(),
        ];
        table.row(netns.cells(&row.netns_name, cells), hot);
    }
    table
}

fn listeners(summary: &Summary, netns: Netns) -> Table {
    let mut table = Table::new(
        "Listeners by accept queue fill (queue: waiting to be accepted, of limit)",
        netns.columns(vec![
            text("process"),
            text("address"),
            word("port"),
            number("queue"),
            number("limit"),
            number("fill"),
            number("peak"),
            number("unaccepted close_wait"),
        ]),
        "no listener",
    );
    for row in &summary.listeners {
        let cells = vec![
            process_text(&row.process).to_string(),
            row.address.clone(),
            row.port.to_string(),
            row.length.to_string(),
            row.limit.to_string(),
            percent(row.fill),
            row.peak.to_string(),
            row.unaccepted_close_wait.to_string(),
        ];
        let hot = row.length > row.limit || row.unaccepted_close_wait > 0;
        table.row(netns.cells(&row.netns_name, cells), hot);
    }
    table
}

fn unix_listeners(summary: &Summary, netns: Netns) -> Table {
    let mut table = Table::new(
        "UNIX listeners by accept queue fill (queue: waiting to be accepted, of limit)",
        netns.columns(vec![
            text("process"),
            path("path"),
            number("queue"),
            number("limit"),
            number("fill"),
            number("peak"),
        ]),
        "no UNIX stream listener",
    );
    for row in &summary.unix_listeners {
        let cells = vec![
            process_text(&row.process).to_string(),
            path_text(&row.path).to_string(),
            row.length.to_string(),
            row.limit.to_string(),
            percent(row.fill),
            row.peak.to_string(),
        ];
        table.row(netns.cells(&row.netns_name, cells), row.length > row.limit);
    }
    table
}

fn udp_drops(summary: &Summary, netns: Netns) -> Table {
    let mut table = Table::new(
        "UDP receivers dropping (datagrams dropped; queue of buffer, bytes)",
        netns.columns(vec![
            text("process"),
            word("direction"),
            word("port"),
            number("dropped"),
            number("growth"),
            number("queue"),
            number("buffer"),
        ]),
        "no UDP socket dropped a datagram",
    );
    for row in &summary.udp_drops {
        let cells = vec![
            process_text(&row.process).to_string(),
            row.direction.to_string(),
            row.port.clone(),
            row.drops.to_string(),
            row.growth.map_or_else(String::new, |g| format!("{g:+}")),
            row.queue_bytes.to_string(),
            row.buffer_bytes.to_string(),
        ];
        table.row(
            netns.cells(&row.netns_name, cells),
            row.growth.is_some_and(|g| g > 0),
        );
    }
    table
}

fn time_wait(summary: &Summary, netns: Netns) -> Table {
    let mut table = Table::new(
        "TIME_WAIT by port (inbound: our listening port; outbound: the remote port)",
        netns.columns(vec![
            word("direction"),
            word("port"),
            number("sockets"),
            number("growth"),
            number("per s"),
        ]),
        "no TIME_WAIT socket",
    );
    for row in &summary.time_wait {
        let [growth, per_second] = growth_cells(row.growth);
        let cells = vec![
            row.direction.to_string(),
            row.port.clone(),
            row.sockets.to_string(),
            growth,
            per_second,
        ];
        table.row(netns.cells(&row.netns_name, cells), false);
    }
    table
}

fn ephemeral(summary: &Summary, netns: Netns) -> Table {
    let mut table = Table::new(
        "Ephemeral ports by destination (any state, TIME_WAIT included; of ip_local_port_range)",
        netns.columns(vec![
            text("destination"),
            number("used"),
            number("range"),
            number("fill"),
        ]),
        "no outbound connection from the ephemeral range",
    );
    for row in &summary.ephemeral {
        let destination = if row.remote_address == "other" {
            "other".to_string()
        } else if row.remote_address.contains(':') {
            format!("[{}]:{}", row.remote_address, row.remote_port)
        } else {
            format!("{}:{}", row.remote_address, row.remote_port)
        };
        let cells = vec![
            destination,
            row.used.to_string(),
            row.range.map_or_else(|| "?".to_string(), |r| r.to_string()),
            row.fill.map_or_else(|| "?".to_string(), percent),
        ];
        table.row(netns.cells(&row.netns_name, cells), false);
    }
    table
}

fn peers(summary: &Summary, netns: Netns) -> Table {
    let mut table = Table::new(
        "Top peers (remote addresses) by sockets",
        netns.columns(vec![
            text("remote_address"),
            number("sockets"),
            number("established"),
            number("close_wait"),
            number("time_wait"),
            number("other"),
        ]),
        "no peer",
    );
    for row in &summary.peers {
        let get = |label: &str| row.states.get(label).copied().unwrap_or(0);
        let named = get("established") + get("close_wait") + get("time_wait");
        let cells = vec![
            row.remote_address.clone(),
            row.sockets.to_string(),
            get("established").to_string(),
            get("close_wait").to_string(),
            get("time_wait").to_string(),
            row.sockets.saturating_sub(named).to_string(),
        ];
        table.row(netns.cells(&row.netns_name, cells), false);
    }
    table
}
