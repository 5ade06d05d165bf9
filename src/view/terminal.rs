//! A [`Summary`] as terminal text: the findings first (the first line says what looks
//! wrong, or that nothing does), then one table per question, each sorted by what
//! matters. Labels are /metrics' label values, except `-` for the empty process (no
//! owner).

use crossterm::style::Stylize;

use super::findings::{age_text, rate_text};
use super::summary::{path_text, process_text, Growth, Summary};
use super::table::{fit, number, text, word, Column, Table};
use crate::source::inet_diag::TcpState;

/// How to draw.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub width: usize,
    /// Rows per table before "… N more rows".
    pub max_rows: usize,
    pub colour: bool,
}

/// The state columns of the states table without a `--state` filter: the ones incidents
/// are about, FIN_WAIT1 and 2 together, and the rest as `other`.
const STATE_COLUMNS: [(&str, &[TcpState]); 8] = [
    ("established", &[TcpState::Established]),
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

/// The findings and notes, each cut to `width`: the first line is the headline.
pub fn findings(summary: &Summary, colour: bool, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    match summary.findings.split_first() {
        None => {
            let line = fit(&summary.headline, width);
            lines.push(if colour {
                line.green().bold().to_string()
            } else {
                line
            });
        }
        Some((first, rest)) => {
            let line = fit(&first.text, width);
            lines.push(if colour {
                line.red().bold().to_string()
            } else {
                line
            });
            for finding in rest {
                let line = fit(&format!("also: {}", finding.text), width);
                lines.push(if colour { line.red().to_string() } else { line });
            }
        }
    }
    for note in &summary.notes {
        let line = fit(&format!("note: {note}"), width);
        lines.push(if colour {
            line.yellow().to_string()
        } else {
            line
        });
    }
    lines
}

/// The tables, each followed by an empty line.
pub fn tables(summary: &Summary, style: Style) -> Vec<String> {
    let several = summary.states.len() > 1;
    let netns = |mut columns: Vec<Column>| {
        if several {
            columns.insert(0, text("netns"));
        }
        columns
    };
    let with_netns = |netns: &str, mut cells: Vec<String>| {
        if several {
            cells.insert(0, netns.to_string());
        }
        cells
    };
    let mut out = Vec::new();

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
    let mut states = Table::new("TCP sockets by state", columns, "no namespace sampled");
    // Ten columns of state names: one space apart, they fit 100 columns with a 16-character
    // namespace label.
    states.gap = 1;
    for row in &summary.states {
        let mut cells = vec![row.netns.clone(), row.total.to_string()];
        cells.extend(state_columns.iter().map(|(_, labels)| {
            labels
                .iter()
                .map(|l| row.states.get(l).copied().unwrap_or(0))
                .sum::<u64>()
                .to_string()
        }));
        states.row(cells, false);
    }
    out.extend(states.render(style.width, style.max_rows, style.colour));
    out.push(String::new());

    let mut close_wait = Table::new(
        "CLOSE_WAIT: who holds them (fastest growing first)",
        netns(vec![
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
        close_wait.row(
            with_netns(
                &row.netns,
                vec![
                    process_text(&row.process).to_string(),
                    row.direction.to_string(),
                    row.port.clone(),
                    row.sockets.to_string(),
                    growth,
                    per_second,
                    age_text(row.oldest_seconds),
                    row.stale.to_string(),
                ],
            ),
            hot,
        );
    }
    out.extend(close_wait.render(style.width, style.max_rows, style.colour));
    out.push(String::new());

    let mut listeners = Table::new(
        "Listeners by accept queue fill (queue: waiting to be accepted, of limit)",
        netns(vec![
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
        listeners.row(
            with_netns(
                &row.netns,
                vec![
                    process_text(&row.process).to_string(),
                    row.address.clone(),
                    row.port.to_string(),
                    row.length.to_string(),
                    row.limit.to_string(),
                    percent(row.fill),
                    row.peak.to_string(),
                    row.unaccepted_close_wait.to_string(),
                ],
            ),
            row.length > row.limit || row.unaccepted_close_wait > 0,
        );
    }
    out.extend(listeners.render(style.width, style.max_rows, style.colour));
    out.push(String::new());

    let mut unix_listeners = Table::new(
        "UNIX listeners by accept queue fill (queue: waiting to be accepted, of limit)",
        netns(vec![
            text("process"),
            text("path"),
            number("queue"),
            number("limit"),
            number("fill"),
            number("peak"),
        ]),
        "no UNIX stream listener",
    );
    for row in &summary.unix_listeners {
        unix_listeners.row(
            with_netns(
                &row.netns,
                vec![
                    process_text(&row.process).to_string(),
                    path_text(&row.path).to_string(),
                    row.length.to_string(),
                    row.limit.to_string(),
                    percent(row.fill),
                    row.peak.to_string(),
                ],
            ),
            row.length > row.limit,
        );
    }
    out.extend(unix_listeners.render(style.width, style.max_rows, style.colour));
    out.push(String::new());

    let mut time_wait = Table::new(
        "TIME_WAIT by port (inbound: our listening port; outbound: the remote port)",
        netns(vec![
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
        time_wait.row(
            with_netns(
                &row.netns,
                vec![
                    row.direction.to_string(),
                    row.port.clone(),
                    row.sockets.to_string(),
                    growth,
                    per_second,
                ],
            ),
            false,
        );
    }
    out.extend(time_wait.render(style.width, style.max_rows, style.colour));
    out.push(String::new());

    let mut ephemeral = Table::new(
        "Ephemeral ports by destination (any state, TIME_WAIT included; of ip_local_port_range)",
        netns(vec![
            text("destination"),
            number("used"),
            number("range"),
            number("fill"),
        ]),
        "no outbound connection from the ephemeral range",
    );
    for row in &summary.ephemeral {
        ephemeral.row(
            with_netns(
                &row.netns,
                vec![
                    if row.remote_address == "other" {
                        "other".to_string()
                    } else if row.remote_address.contains(':') {
                        format!("[{}]:{}", row.remote_address, row.remote_port)
                    } else {
                        format!("{}:{}", row.remote_address, row.remote_port)
                    },
                    row.used.to_string(),
                    row.range.map_or_else(|| "?".to_string(), |r| r.to_string()),
                    row.fill.map_or_else(|| "?".to_string(), percent),
                ],
            ),
            false,
        );
    }
    out.extend(ephemeral.render(style.width, style.max_rows, style.colour));
    out.push(String::new());

    let mut peers = Table::new(
        "Top peers (remote addresses) by sockets",
        netns(vec![
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
        peers.row(
            with_netns(
                &row.netns,
                vec![
                    row.remote_address.clone(),
                    row.sockets.to_string(),
                    get("established").to_string(),
                    get("close_wait").to_string(),
                    get("time_wait").to_string(),
                    (row.sockets - named).to_string(),
                ],
            ),
            false,
        );
    }
    out.extend(peers.render(style.width, style.max_rows, style.colour));
    out
}
