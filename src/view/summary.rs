//! The summary of one or two snapshots: the rows every view shows, and the JSON schema of
//! `report --json` and `/api/summary` (docs/report.md; bump [`SCHEMA_VERSION`] on any
//! change that is not a new optional field).
//!
//! Pure: snapshots in, rows out, no clock. With a base snapshot, counts carry their growth
//! since it and the growth per second over the time between the two polls.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::findings::{self, Thresholds};
pub use super::rows::*;
use crate::collectors::CollectorKind;
use crate::snapshot::{Direction, NetnsFigures, PortLabel, PortSeries, Snapshot, Stage, UdpSeries};
use crate::source::inet_diag::{Family, TcpState};

/// Version of the JSON schema. Adding a field keeps it; renaming, removing or changing the
/// meaning of one bumps it.
pub const SCHEMA_VERSION: u32 = 1;

/// The headline when there is no finding.
pub const NOTHING_WRONG: &str = "nothing looks wrong";

/// Which rows to keep. Empty lists keep everything. A table whose rows do not carry a
/// field is not filtered by it (docs/report.md says which).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `netns` label values.
    pub netns: Vec<String>,
    pub states: Vec<TcpState>,
    /// Port numbers: the port label of ports, listeners, and destinations' remote port.
    /// UNIX listeners have none: any port drops them.
    pub ports: Vec<u16>,
    /// `process` label values.
    pub processes: Vec<String>,
}

impl Filter {
    fn netns(&self, netns: &str) -> bool {
        self.netns.is_empty() || self.netns.iter().any(|n| n == netns)
    }

    fn state(&self, state: TcpState) -> bool {
        self.states.is_empty() || self.states.contains(&state)
    }

    fn port(&self, port: PortLabel) -> bool {
        self.ports.is_empty() || matches!(port, PortLabel::Port(p) if self.ports.contains(&p))
    }

    fn process(&self, process: &str) -> bool {
        self.processes.is_empty() || self.processes.iter().any(|p| p == process)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Summary {
    /// The summary of `latest`, with growth since `base` when given (an older poll).
    /// `errors_total` is the poller's failed polls by stage (the landing page's).
    pub fn build(
        base: Option<&Snapshot>,
        latest: &Snapshot,
        errors_total: Option<&[u64; Stage::COUNT]>,
        filter: &Filter,
        thresholds: &Thresholds,
    ) -> Summary {
        let window = base.and_then(|base| {
            latest
                .completed_at
                .duration_since(base.completed_at)
                .ok()
                .filter(|w| !w.is_zero())
                .map(|w| (base, w))
        });
        let namespaces: Vec<&NetnsFigures> = latest
            .namespaces
            .iter()
            .filter(|ns| filter.netns(&ns.netns))
            .collect();
        let base_ns = |netns: &str| -> Option<(&NetnsFigures, Duration)> {
            let (base, window) = window?;
            let figures = base.namespaces.iter().find(|ns| &*ns.netns == netns);
            // A namespace new since the base poll: everything in it is growth.
            Some((figures.unwrap_or(&EMPTY_NETNS), window))
        };
        let mut summary = Summary {
            schema_version: SCHEMA_VERSION,
            completed_at: unix_seconds(latest.completed_at),
            window_seconds: window.map(|(_, w)| w.as_secs_f64()),
            headline: String::new(),
            findings: Vec::new(),
            notes: notes(latest),
            collectors: latest
                .collectors
                .iter()
                .map(|(kind, on)| (kind.label(), on))
                .collect(),
            poll: PollHealth {
                duration_seconds: latest.poll_duration.as_secs_f64(),
                sockets_scanned: latest.sockets_scanned,
                errors_total: errors_total.map(|errors| {
                    Stage::ALL
                        .iter()
                        .map(|stage| (stage.label(), errors[stage.index()]))
                        .collect()
                }),
            },
            namespaces: NamespaceCount {
                sampled: latest.netns_info.len(),
                folded: latest.folded.namespaces,
                skipped_permission: latest.skipped.permission,
                skipped_vanished: latest.skipped.vanished,
                skipped_error: latest.skipped.error,
            },
            states: states(latest, filter),
            close_wait: Vec::new(),
            listeners: Vec::new(),
            unix_listeners: Vec::new(),
            udp_drops: Vec::new(),
            time_wait: Vec::new(),
            ephemeral: Vec::new(),
            peers: Vec::new(),
        };
        for ns in namespaces {
            let base = base_ns(&ns.netns);
            if filter.state(TcpState::CloseWait) {
                summary.close_wait.extend(close_wait(ns, base, filter));
            }
            if filter.state(TcpState::Listen) {
                summary.listeners.extend(listeners(ns, filter));
                summary.unix_listeners.extend(unix_listeners(ns, filter));
            }
            summary.udp_drops.extend(udp_drops(ns, base, filter));
            if filter.state(TcpState::TimeWait) {
                summary.time_wait.extend(time_wait(ns, base, filter));
            }
            summary.ephemeral.extend(ephemeral(ns, filter));
            summary.peers.extend(peers(ns, filter));
        }
        name_rows(&mut summary, latest);
        sort(&mut summary);
        summary.findings = findings::find(&summary, thresholds);
        summary.headline = summary
            .findings
            .first()
            .map_or_else(|| NOTHING_WRONG.to_string(), |f| f.text.clone());
        summary
    }
}

static EMPTY_NETNS: std::sync::LazyLock<NetnsFigures> =
    std::sync::LazyLock::new(NetnsFigures::default);

fn growth(now: u64, then: u64, window: Duration) -> Growth {
    let sockets = i64::try_from(now).unwrap_or(i64::MAX) - i64::try_from(then).unwrap_or(i64::MAX);
    Growth {
        sockets,
        per_second: sockets as f64 / window.as_secs_f64(),
    }
}

/// Queue length over backlog; a backlog of 0 (possible with listen(fd, 0)) counts as 1.
fn fill(length: u64, limit: u64) -> f64 {
    length as f64 / limit.max(1) as f64
}

/// "1 socket", "2 sockets".
fn count(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

fn notes(latest: &Snapshot) -> Vec<String> {
    let mut notes = Vec::new();
    let skipped = &latest.skipped;
    if skipped.permission > 0 {
        notes.push(format!(
            "{} not sampled: entering them needs CAP_SYS_ADMIN and CAP_SYS_PTRACE (run as \
             root)",
            count(skipped.permission, "network namespace")
        ));
    }
    if skipped.error > 0 {
        notes.push(format!(
            "{} dropped: the dump failed (the log says why)",
            count(skipped.error, "network namespace")
        ));
    }
    let unattributed: u64 = latest
        .namespaces
        .iter()
        .map(|ns| ns.tcp.breakdown.unattributed)
        .sum();
    if unattributed > 0 {
        notes.push(format!(
            "{} with an owner that was not found (process \"unknown\"): no privilege to \
             read its fds (CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE), the process exited, or \
             the socket is in flight between processes",
            count(unattributed, "socket")
        ));
    }
    let (listeners, anomalies) = latest.namespaces.iter().fold((0, 0), |(l, a), ns| {
        let b = &ns.tcp.breakdown;
        let f = b.folded_anomalies;
        (
            l + b.folded_listeners,
            a + f.close_wait + f.time_wait + f.listeners + ns.unix.folded_anomalies,
        )
    });
    if listeners > 0 {
        notes.push(format!(
            "{} beyond max_listeners not shown (the fullest are)",
            count(listeners, "TCP listener")
        ));
    }
    if anomalies > 0 {
        let noun = if anomalies == 1 {
            "anomaly"
        } else {
            "anomalies"
        };
        notes.push(format!(
            "{anomalies} {noun} (CLOSE_WAIT piles, full accept queues, TIME_WAIT storms) \
             folded into \"other\" beyond twice the caps: raise max_ports, max_listeners \
             or max_unix_paths to name them"
        ));
    }
    if !latest.collectors.enabled(CollectorKind::Unix) {
        notes.push(
            "UNIX listeners not shown: the unix collector is off (--no-collector.unix or \
             [collectors] unix = false)"
                .to_string(),
        );
    }
    if latest.folded.namespaces > 0 {
        notes.push(format!(
            "{} beyond netns.max_namespaces summed under netns \"other\"",
            count(latest.folded.namespaces, "network namespace")
        ));
    }
    notes
}

fn state_map(
    counts: &crate::snapshot::StateCounts,
    filter: &Filter,
) -> (u64, BTreeMap<&'static str, u64>) {
    let mut total = 0;
    let mut map = BTreeMap::new();
    for state in TcpState::ALL.into_iter().filter(|s| filter.state(*s)) {
        let n: u64 = Family::ALL.iter().map(|f| counts.get(*f, state)).sum();
        total += n;
        map.insert(state.label(), n);
    }
    (total, map)
}

fn states(latest: &Snapshot, filter: &Filter) -> Vec<NetnsStates> {
    let mut rows: Vec<NetnsStates> = latest
        .namespaces
        .iter()
        .filter(|ns| filter.netns(&ns.netns))
        .map(|ns| {
            let (total, states) = state_map(&ns.tcp.tcp_sockets, filter);
            NetnsStates {
                netns: ns.netns.to_string(),
                netns_name: String::new(),
                total,
                states,
            }
        })
        .collect();
    if latest.folded.namespaces > 0 && filter.netns("other") {
        let (total, states) = state_map(&latest.folded.tcp_sockets, filter);
        rows.push(NetnsStates {
            netns: "other".to_string(),
            netns_name: "other".to_string(),
            total,
            states,
        });
    }
    rows
}

fn port_matches(s: &PortSeries, state: TcpState, filter: &Filter) -> bool {
    s.state == state && filter.port(s.port)
}

fn close_wait(
    ns: &NetnsFigures,
    base: Option<(&NetnsFigures, Duration)>,
    filter: &Filter,
) -> Vec<CloseWaitRow> {
    ns.tcp
        .breakdown
        .ports
        .iter()
        .filter(|s| port_matches(s, TcpState::CloseWait, filter) && filter.process(&s.process))
        .map(|s| CloseWaitRow {
            netns: ns.netns.to_string(),
            netns_name: String::new(),
            process: s.process.to_string(),
            direction: s.direction.label(),
            port: s.port.to_string(),
            sockets: s.sockets,
            growth: base.map(|(then, window)| {
                let before = then
                    .tcp
                    .breakdown
                    .ports
                    .iter()
                    .find(|b| {
                        (b.direction, b.port, &b.process, b.state)
                            == (s.direction, s.port, &s.process, s.state)
                    })
                    .map_or(0, |b| b.sockets);
                growth(s.sockets, before, window)
            }),
            oldest_seconds: s.close_wait_oldest.as_secs_f64(),
            stale: s.close_wait_stale,
        })
        .collect()
}

fn listeners(ns: &NetnsFigures, filter: &Filter) -> Vec<ListenerRow> {
    let b = &ns.tcp.breakdown;
    let unaccepted = |port: u16, state: TcpState| {
        b.unaccepted
            .iter()
            .filter(|(p, s, _)| *p == PortLabel::Port(port) && *s == state)
            .map(|(_, _, n)| n)
            .sum()
    };
    b.listeners
        .iter()
        .filter(|l| filter.port(PortLabel::Port(l.port)) && filter.process(&l.process))
        .map(|l| ListenerRow {
            netns: ns.netns.to_string(),
            netns_name: String::new(),
            address: l.address.to_string(),
            port: l.port,
            process: l.process.to_string(),
            length: l.length,
            limit: l.limit,
            fill: fill(l.length, l.limit),
            peak: l.peak,
            unaccepted_close_wait: unaccepted(l.port, TcpState::CloseWait),
            unaccepted_established: unaccepted(l.port, TcpState::Established),
        })
        .collect()
}

/// UNIX listeners have no port: a `--port` filter asks about ports, so it drops them all.
fn unix_listeners(ns: &NetnsFigures, filter: &Filter) -> Vec<UnixListenerRow> {
    if !filter.ports.is_empty() {
        return Vec::new();
    }
    ns.unix
        .listeners
        .iter()
        .filter(|l| filter.process(&l.process))
        .map(|l| UnixListenerRow {
            netns: ns.netns.to_string(),
            netns_name: String::new(),
            path: l.path.to_string(),
            process: l.process.to_string(),
            length: l.length,
            limit: l.limit,
            fill: fill(l.length, l.limit),
            peak: l.peak,
        })
        .collect()
}

/// UDP series that dropped, with their queues. Not filtered by state: UDP has none.
fn udp_drops(
    ns: &NetnsFigures,
    base: Option<(&NetnsFigures, Duration)>,
    filter: &Filter,
) -> Vec<UdpDropRow> {
    ns.udp
        .drops
        .iter()
        .filter(|d| d.drops > 0 && filter.port(d.port) && filter.process(&d.process))
        .map(|d| {
            let same = |s: &&UdpSeries| {
                s.direction == d.direction && s.port == d.port && s.process == d.process
            };
            let gauges = ns.udp.series.iter().find(same);
            let then = base.map(|(figures, _)| {
                figures
                    .udp
                    .drops
                    .iter()
                    .find(|t| {
                        t.direction == d.direction && t.port == d.port && t.process == d.process
                    })
                    .map_or(0, |t| t.drops)
            });
            UdpDropRow {
                netns: ns.netns.to_string(),
                netns_name: String::new(),
                direction: d.direction.label(),
                port: d.port.to_string(),
                process: d.process.to_string(),
                drops: d.drops,
                growth: then.map(|then| d.drops.saturating_sub(then)),
                queue_bytes: gauges.map_or(0, |s| s.queue_bytes),
                buffer_bytes: gauges.map_or(0, |s| s.buffer_bytes),
            }
        })
        .collect()
}

/// TIME_WAIT sockets per (direction, port): they have no owner, so no process.
fn time_wait(
    ns: &NetnsFigures,
    base: Option<(&NetnsFigures, Duration)>,
    filter: &Filter,
) -> Vec<TimeWaitRow> {
    let by_port = |figures: &NetnsFigures| {
        let mut sums: BTreeMap<(Direction, PortLabel), u64> = BTreeMap::new();
        for s in &figures.tcp.breakdown.ports {
            if port_matches(s, TcpState::TimeWait, filter) {
                *sums.entry((s.direction, s.port)).or_default() += s.sockets;
            }
        }
        sums
    };
    let then = base.map(|(figures, window)| (by_port(figures), window));
    by_port(ns)
        .into_iter()
        .map(|((direction, port), sockets)| TimeWaitRow {
            netns: ns.netns.to_string(),
            netns_name: String::new(),
            direction: direction.label(),
            port: port.to_string(),
            sockets,
            growth: then.as_ref().map(|(then, window)| {
                growth(
                    sockets,
                    then.get(&(direction, port)).copied().unwrap_or(0),
                    *window,
                )
            }),
        })
        .collect()
}

fn ephemeral(ns: &NetnsFigures, filter: &Filter) -> Vec<EphemeralRow> {
    let e = &ns.tcp.exhaustion;
    let range = e.port_range.map(|r| r.size());
    e.destinations
        .iter()
        .filter(|(destination, _)| {
            filter.port(destination.map_or(PortLabel::Other, |(_, p)| PortLabel::Port(p)))
        })
        .map(|(destination, used)| {
            let (remote_address, remote_port) = match destination {
                Some((address, port)) => (address.to_string(), port.to_string()),
                None => ("other".to_string(), "other".to_string()),
            };
            EphemeralRow {
                netns: ns.netns.to_string(),
                netns_name: String::new(),
                remote_address,
                remote_port,
                used: *used,
                range,
                fill: range.map(|size| *used as f64 / f64::from(size.max(1))),
            }
        })
        .collect()
}

fn peers(ns: &NetnsFigures, filter: &Filter) -> Vec<PeerRow> {
    let mut rows: Vec<PeerRow> = Vec::new();
    for (address, state, n) in &ns.tcp.exhaustion.peers {
        if !filter.state(*state) || *n == 0 {
            continue;
        }
        let address = address.map_or_else(|| "other".to_string(), |a| a.to_string());
        let row = match rows.iter_mut().position(|r| r.remote_address == address) {
            Some(i) => &mut rows[i],
            None => {
                rows.push(PeerRow {
                    netns: ns.netns.to_string(),
                    netns_name: String::new(),
                    remote_address: address,
                    sockets: 0,
                    states: BTreeMap::new(),
                });
                rows.last_mut().expect("just pushed")
            }
        };
        row.sockets += n;
        *row.states.entry(state.label()).or_default() += n;
    }
    rows
}

fn rate(growth: Option<Growth>) -> f64 {
    growth.map_or(0.0, |g| g.per_second)
}

/// Sorted by what matters: the fastest-growing leak first, then the largest; the fullest
/// listener; the UDP series dropping fastest; the most used destination; the busiest peer, `other` last.
fn sort(summary: &mut Summary) {
    summary.close_wait.sort_by(|a, b| {
        rate(b.growth)
            .total_cmp(&rate(a.growth))
            .then(b.sockets.cmp(&a.sockets))
            .then(b.oldest_seconds.total_cmp(&a.oldest_seconds))
            .then_with(|| (&a.netns, &a.process, &a.port).cmp(&(&b.netns, &b.process, &b.port)))
    });
    summary.listeners.sort_by(|a, b| {
        b.fill
            .total_cmp(&a.fill)
            .then(b.unaccepted_close_wait.cmp(&a.unaccepted_close_wait))
            .then(b.length.cmp(&a.length))
            .then_with(|| (&a.netns, a.port, &a.address).cmp(&(&b.netns, b.port, &b.address)))
    });
    summary.unix_listeners.sort_by(|a, b| {
        b.fill
            .total_cmp(&a.fill)
            .then(b.length.cmp(&a.length))
            .then_with(|| (&a.netns, &a.path, &a.process).cmp(&(&b.netns, &b.path, &b.process)))
    });
    summary.udp_drops.sort_by(|a, b| {
        b.growth
            .cmp(&a.growth)
            .then(b.drops.cmp(&a.drops))
            .then_with(|| (&a.netns, &a.port, &a.process).cmp(&(&b.netns, &b.port, &b.process)))
    });
    summary.time_wait.sort_by(|a, b| {
        rate(b.growth)
            .total_cmp(&rate(a.growth))
            .then(b.sockets.cmp(&a.sockets))
            .then_with(|| (&a.netns, &a.port).cmp(&(&b.netns, &b.port)))
    });
    summary.ephemeral.sort_by(|a, b| {
        (a.remote_address == "other")
            .cmp(&(b.remote_address == "other"))
            .then(b.used.cmp(&a.used))
            .then_with(|| (&a.netns, &a.remote_address).cmp(&(&b.netns, &b.remote_address)))
    });
    summary.peers.sort_by(|a, b| {
        (a.remote_address == "other")
            .cmp(&(b.remote_address == "other"))
            .then(b.sockets.cmp(&a.sockets))
            .then_with(|| (&a.netns, &a.remote_address).cmp(&(&b.netns, &b.remote_address)))
    });
}

/// Every row's `netns_name`: what the namespace's info names (see
/// [`NetnsInfo::display_name`](sockdiag_core::snapshot::NetnsInfo::display_name)), the
/// label where there is no info (`other`).
fn name_rows(summary: &mut Summary, latest: &Snapshot) {
    let names: std::collections::HashMap<&str, String> = latest
        .netns_info
        .iter()
        .map(|info| (&*info.netns, info.display_name()))
        .collect();
    let name = |netns: &str| {
        names
            .get(netns)
            .cloned()
            .unwrap_or_else(|| netns.to_string())
    };
    for row in &mut summary.states {
        row.netns_name = name(&row.netns);
    }
    for row in &mut summary.close_wait {
        row.netns_name = name(&row.netns);
    }
    for row in &mut summary.listeners {
        row.netns_name = name(&row.netns);
    }
    for row in &mut summary.unix_listeners {
        row.netns_name = name(&row.netns);
    }
    for row in &mut summary.time_wait {
        row.netns_name = name(&row.netns);
    }
    for row in &mut summary.ephemeral {
        row.netns_name = name(&row.netns);
    }
    for row in &mut summary.peers {
        row.netns_name = name(&row.netns);
    }
    for row in &mut summary.udp_drops {
        row.netns_name = name(&row.netns);
    }
}
