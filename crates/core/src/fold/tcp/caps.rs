//! Ends a poll: the cardinality limits that turn the poll's tables into labelled series.
//!
//! Signal first. Each capped family is ranked by the quantity its alert watches, with
//! a budget of its own, so busy healthy sockets never push a pile-up into `other`:
//! - CLOSE_WAIT series: the `max_ports` holders (direction, port, process) with the
//!   most severe CLOSE_WAIT (anomalies first, then stale count, count, oldest age) keep
//!   both labels;
//! - TIME_WAIT series: the `max_ports` (direction, port) with the most TIME_WAIT keep
//!   their port;
//! - every other state: the top `max_ports` ports per direction and `max_processes`
//!   processes by socket count; a CLOSE_WAIT or TIME_WAIT series outside its
//!   own budget falls back to this rule;
//! - listeners: the `max_listeners` fullest (peak over backlog) keep their series, the
//!   rest are counted.
//!
//! Anomalies ([`crate::fold::anomaly`]) beyond a budget are kept up to its ceiling, most
//! severe first; what even the ceiling folds is counted.

use std::cmp::{Ordering, Reverse};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::{Aggregator, PortKey, PortStats};
use crate::fold::anomaly::{self, cmp_fill};
use crate::fold::listen::ListenSample;
use crate::fold::owners::{NameId, Owner, Owners, PENDING};
use crate::fold::settings::Settings;
use crate::fold::top::{top_destinations, top_peers};
use crate::snapshot::{
    Breakdown, Direction, Exhaustion, FoldedAnomalies, ListenerSeries, PortLabel, PortSeries,
    TcpFigures,
};
use crate::source::inet_diag::{Family, TcpState};

/// A CLOSE_WAIT holder: who holds CLOSE_WAIT sockets on which port.
type Holder = (Direction, u16, Owner);

/// Never-accepted sockets of a port in a state.
type Unaccepted = (PortLabel, TcpState, u64);

/// Ports by direction.
type PortSet = FxHashSet<(Direction, u16)>;

/// What keeps its labels, as the rankings decided.
struct Kept {
    /// By socket count, every state.
    ports: PortSet,
    processes: FxHashSet<NameId>,
    /// CLOSE_WAIT series of these holders keep port and process.
    close_wait: FxHashSet<Holder>,
    /// TIME_WAIT series of these keep their port.
    time_wait: PortSet,
}

impl Kept {
    /// The (port, process) labels of a series, `None` where folded.
    fn labels(&self, key: &PortKey) -> (Option<u16>, Option<Owner>) {
        let holder = match key.state {
            TcpState::CloseWait => self
                .close_wait
                .contains(&(key.direction, key.port, key.owner)),
            _ => false,
        };
        let port = holder
            || self.ports.contains(&(key.direction, key.port))
            || (key.state == TcpState::TimeWait
                && self.time_wait.contains(&(key.direction, key.port)));
        let process = match key.owner {
            Owner::Process(id) => holder || self.processes.contains(&id),
            Owner::Nobody | Owner::Unknown | Owner::Pending => true,
        };
        (port.then_some(key.port), process.then_some(key.owner))
    }
}

/// Labels as strings, interned once per poll.
struct Names<'a, O: Owners> {
    owners: &'a O,
    other: Arc<str>,
    nobody: Arc<str>,
    unknown: Arc<str>,
    pending: Arc<str>,
}

impl<O: Owners> Names<'_, O> {
    fn of(&self, owner: Option<Owner>) -> Arc<str> {
        match owner {
            None => Arc::clone(&self.other),
            Some(Owner::Nobody) => Arc::clone(&self.nobody),
            Some(Owner::Unknown) => Arc::clone(&self.unknown),
            Some(Owner::Pending) => Arc::clone(&self.pending),
            Some(Owner::Process(id)) => self.owners.name(id),
        }
    }
}

impl Aggregator {
    /// Ends the poll: settles the pending owners, applies the cardinality limits and
    /// returns the namespace's TCP figures. `peaks` holds the largest accept queue sampled
    /// per listening address since the last poll.
    pub fn finish(
        mut self,
        owners: &impl Owners,
        settings: &Settings,
        peaks: &ListenSample,
    ) -> TcpFigures {
        self.settle(owners);
        // Listeners are counted here, once settled, whether their owner was already known
        // to be unreachable at the dump or found missing by the scan.
        self.unattributed += self
            .listeners
            .values()
            .flatten()
            .filter(|l| l.owner == Some(Owner::Unknown))
            .count() as u64;
        let names = Names {
            owners,
            other: Arc::from("other"),
            nobody: Arc::from(""),
            unknown: Arc::from("unknown"),
            pending: Arc::from(PENDING),
        };
        let mut folded_anomalies = FoldedAnomalies::default();
        let (close_wait, folded) = self.close_wait_holders(owners, settings);
        folded_anomalies.close_wait = folded;
        let (time_wait, folded) = self.time_wait_ports(settings);
        folded_anomalies.time_wait = folded;
        let kept = Kept {
            ports: self.ports_by_volume(settings),
            processes: self.processes_by_volume(owners, settings),
            close_wait,
            time_wait,
        };
        let (ports, folded_ports, folded_processes) = self.port_series(&kept, &names);
        let (unaccepted, folded_ports) = self.unaccepted_series(&kept, folded_ports);
        let (listeners, folded_listeners, folded) = self.listener_series(&names, settings, peaks);
        folded_anomalies.listeners = folded;

        let (destinations, folded_destinations) =
            top_destinations(&self.ephemeral, settings.max_destinations);
        let (peers, folded_peers) = top_peers(&self.peers, settings.max_peers);
        TcpFigures {
            exhaustion: Exhaustion {
                port_range: self.port_range,
                destinations,
                folded_destinations,
                peers,
                folded_peers,
                close_wait_untracked: self.close_wait_untracked,
            },
            tcp_sockets: self.tcp_sockets,
            sockets_scanned: self.scanned,
            breakdown: Breakdown {
                ports,
                listeners,
                unaccepted,
                unattributed: self.unattributed,
                folded_ports: folded_ports.len() as u64,
                folded_processes,
                folded_listeners,
                folded_anomalies,
            },
        }
    }

    /// Ports per direction by socket count, the top `max_ports` among those the filter
    /// allows.
    fn ports_by_volume(&self, settings: &Settings) -> PortSet {
        let mut totals: FxHashMap<(Direction, u16), u64> = FxHashMap::default();
        for (key, stats) in &self.ports {
            *totals.entry((key.direction, key.port)).or_default() += stats.sockets;
        }
        let mut kept = FxHashSet::default();
        for direction in [Direction::Inbound, Direction::Outbound] {
            let mut ranked: Vec<(u16, u64)> = totals
                .iter()
                .filter(|((d, port), _)| *d == direction && settings.ports.allows(*port))
                .map(|((_, port), n)| (*port, *n))
                .collect();
            ranked.sort_by_key(|(port, n)| (Reverse(*n), *port));
            kept.extend(
                ranked
                    .into_iter()
                    .take(settings.max_ports)
                    .map(|(port, _)| (direction, port)),
            );
        }
        kept
    }

    /// Processes by socket count, the top `max_processes`; `""` and `unknown` are never
    /// folded. Ties broken by name so the kept set does not depend on hash order.
    fn processes_by_volume(&self, owners: &impl Owners, settings: &Settings) -> FxHashSet<NameId> {
        let mut totals: FxHashMap<NameId, u64> = FxHashMap::default();
        for (key, stats) in &self.ports {
            if let Owner::Process(id) = key.owner {
                *totals.entry(id).or_default() += stats.sockets;
            }
        }
        let mut ranked: Vec<(NameId, u64)> = totals.into_iter().collect();
        ranked.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| owners.name(a.0).cmp(&owners.name(b.0)))
        });
        ranked
            .into_iter()
            .take(settings.max_processes)
            .map(|(id, _)| id)
            .collect()
    }

    /// CLOSE_WAIT holders by severity: anomalies first (a pile, a stale socket, or
    /// never-accepted ones), then stale count, count and oldest age; the top `max_ports`,
    /// and anomalies up to the ceiling. Returns them and the anomalies folded.
    fn close_wait_holders(
        &self,
        owners: &impl Owners,
        settings: &Settings,
    ) -> (FxHashSet<Holder>, u64) {
        let thresholds = &settings.anomaly;
        let mut ranked: Vec<(bool, &PortStats, Holder)> = self
            .ports
            .iter()
            .filter(|(key, _)| key.state == TcpState::CloseWait && settings.ports.allows(key.port))
            .map(|(key, stats)| {
                let never_accepted =
                    key.direction == Direction::Inbound && key.owner == Owner::Nobody;
                let anomaly =
                    never_accepted || thresholds.close_wait_pile(stats.sockets, stats.stale);
                (anomaly, stats, (key.direction, key.port, key.owner))
            })
            .collect();
        let severity = |s: &PortStats| (s.stale, s.sockets, s.oldest);
        ranked.sort_by(|a, b| {
            (b.0, severity(b.1))
                .cmp(&(a.0, severity(a.1)))
                .then_with(|| holder_order(owners, &a.2, &b.2))
        });
        let anomalies = ranked.iter().filter(|(anomaly, _, _)| *anomaly).count();
        let (kept, folded) = anomaly::kept(ranked.len(), anomalies, settings.max_ports);
        let holders = ranked.into_iter().take(kept).map(|(_, _, h)| h).collect();
        (holders, folded)
    }

    /// (direction, port) by TIME_WAIT count, storms first; the top `max_ports`, and storms
    /// up to the ceiling. Returns them and the storms folded.
    fn time_wait_ports(&self, settings: &Settings) -> (PortSet, u64) {
        let mut totals: FxHashMap<(Direction, u16), u64> = FxHashMap::default();
        for (key, stats) in &self.ports {
            if key.state == TcpState::TimeWait && settings.ports.allows(key.port) {
                *totals.entry((key.direction, key.port)).or_default() += stats.sockets;
            }
        }
        let namespace: u64 = Family::ALL
            .iter()
            .map(|family| self.tcp_sockets.get(*family, TcpState::TimeWait))
            .sum();
        let storm = |n: u64| settings.anomaly.time_wait_storm(n, namespace);
        let mut ranked: Vec<((Direction, u16), u64)> = totals.into_iter().collect();
        ranked.sort_by_key(|(key, n)| (Reverse(storm(*n)), Reverse(*n), *key));
        let anomalies = ranked.iter().filter(|(_, n)| storm(*n)).count();
        let (kept, folded) = anomaly::kept(ranked.len(), anomalies, settings.max_ports);
        let ports = ranked.into_iter().take(kept).map(|(key, _)| key).collect();
        (ports, folded)
    }

    /// The port series with their labels, sorted by (direction, port, process, state);
    /// the port values and the number of processes folded into `other`.
    fn port_series(
        &self,
        kept: &Kept,
        names: &Names<'_, impl Owners>,
    ) -> (Vec<PortSeries>, PortSet, u64) {
        let mut folded_ports = FxHashSet::default();
        let mut folded_processes = FxHashSet::default();
        let mut series: FxHashMap<(Direction, PortLabel, Arc<str>, TcpState), PortStats> =
            FxHashMap::default();
        for (key, stats) in &self.ports {
            let (port, owner) = kept.labels(key);
            if port.is_none() {
                folded_ports.insert((key.direction, key.port));
            }
            if let (None, Owner::Process(id)) = (owner, key.owner) {
                folded_processes.insert(id);
            }
            let port = port.map_or(PortLabel::Other, PortLabel::Port);
            let entry = series
                .entry((key.direction, port, names.of(owner), key.state))
                .or_default();
            entry.sockets += stats.sockets;
            entry.receive += stats.receive;
            entry.send += stats.send;
            entry.oldest = entry.oldest.max(stats.oldest);
            entry.stale += stats.stale;
        }
        let mut series: Vec<PortSeries> = series
            .into_iter()
            .map(|((direction, port, process, state), stats)| PortSeries {
                direction,
                port,
                process,
                state,
                sockets: stats.sockets,
                receive_bytes: stats.receive,
                send_bytes: stats.send,
                close_wait_oldest: stats.oldest,
                close_wait_stale: stats.stale,
            })
            .collect();
        series.sort_by(|a, b| {
            (a.direction, a.port, &a.process, a.state).cmp(&(
                b.direction,
                b.port,
                &b.process,
                b.state,
            ))
        });
        (series, folded_ports, folded_processes.len() as u64)
    }

    /// Never-accepted sockets by port: the port of never-accepted CLOSE_WAIT keeps its
    /// label where its holder (inbound, port, no owner) does.
    fn unaccepted_series(
        &self,
        kept: &Kept,
        mut folded_ports: PortSet,
    ) -> (Vec<Unaccepted>, PortSet) {
        let mut series: FxHashMap<(PortLabel, TcpState), u64> = FxHashMap::default();
        for ((port, state), n) in &self.unaccepted {
            let key = PortKey {
                direction: Direction::Inbound,
                port: *port,
                owner: Owner::Nobody,
                state: *state,
            };
            let label = match kept.labels(&key).0 {
                Some(port) => PortLabel::Port(port),
                None => {
                    folded_ports.insert((Direction::Inbound, *port));
                    PortLabel::Other
                }
            };
            *series.entry((label, *state)).or_default() += n;
        }
        let mut series: Vec<Unaccepted> = series
            .into_iter()
            .map(|((port, state), n)| (port, state, n))
            .collect();
        series.sort();
        (series, folded_ports)
    }

    /// Listening addresses, SO_REUSEPORT groups summed (the group's process is its
    /// lowest label, for a stable series), the `max_listeners` fullest by peak over
    /// backlog kept, and anomalies (full, or with never-accepted CLOSE_WAIT on the port)
    /// up to the ceiling. A kept listener names its process:
    /// the cap bounds its series. Returns them sorted by (port, address, process), the
    /// listeners folded, and the full ones among them.
    fn listener_series(
        &self,
        names: &Names<'_, impl Owners>,
        settings: &Settings,
        peaks: &ListenSample,
    ) -> (Vec<ListenerSeries>, u64, u64) {
        let mut ranked: Vec<ListenerSeries> = self
            .listeners
            .iter()
            .map(|((address, port), group)| {
                let length: u64 = group.iter().map(|l| l.length).sum();
                ListenerSeries {
                    address: *address,
                    port: *port,
                    process: group
                        .iter()
                        .map(|l| names.of(Some(l.owner.unwrap_or(Owner::Unknown))))
                        .min()
                        .unwrap_or_else(|| Arc::clone(&names.unknown)),
                    length,
                    limit: group.iter().map(|l| l.limit).sum(),
                    peak: peaks
                        .tcp
                        .get(&(*address, *port))
                        .copied()
                        .unwrap_or(0)
                        .max(length),
                }
            })
            .collect();
        // Full, or holding never-accepted CLOSE_WAIT: the two listener alerts.
        let full = |l: &ListenerSeries| {
            settings.anomaly.listen_full(l.peak, l.limit)
                || self.unaccepted.contains_key(&(l.port, TcpState::CloseWait))
        };
        ranked.sort_by(|a, b| fuller_listener(a, b, &full));
        let anomalies = ranked.iter().filter(|l| full(l)).count();
        let (kept, folded_anomalies) =
            anomaly::kept(ranked.len(), anomalies, settings.max_listeners);
        let folded = ranked.len().saturating_sub(kept) as u64;
        ranked.truncate(kept);
        ranked
            .sort_by(|a, b| (a.port, a.address, &a.process).cmp(&(b.port, b.address, &b.process)));
        (ranked, folded, folded_anomalies)
    }
}

/// Fullest first: anomalies, then peak over backlog, length, and (port, address).
fn fuller_listener(
    a: &ListenerSeries,
    b: &ListenerSeries,
    full: &impl Fn(&ListenerSeries) -> bool,
) -> Ordering {
    full(b)
        .cmp(&full(a))
        .then_with(|| cmp_fill((b.peak, b.limit), (a.peak, a.limit)))
        .then(b.length.cmp(&a.length))
        .then_with(|| (a.port, a.address).cmp(&(b.port, b.address)))
}

/// A total order of holders that does not depend on interning order: direction, port,
/// then the owner's label.
fn holder_order(owners: &impl Owners, a: &Holder, b: &Holder) -> Ordering {
    let label = |owner: Owner| match owner {
        Owner::Nobody => (0, None),
        Owner::Unknown => (1, None),
        Owner::Pending => (2, None),
        Owner::Process(id) => (3, Some(owners.name(id))),
    };
    (a.0, a.1)
        .cmp(&(b.0, b.1))
        .then_with(|| label(a.2).cmp(&label(b.2)))
}

#[cfg(test)]
mod tests;
