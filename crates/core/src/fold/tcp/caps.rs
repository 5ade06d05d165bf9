//! Ends a poll: the cardinality limits that turn the poll's tables into labelled series.

use std::cmp::Reverse;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::{Aggregator, PortStats};
use crate::fold::listen::ListenSample;
use crate::fold::owners::{NameId, Owner, Owners};
use crate::fold::settings::Settings;
use crate::fold::top::{top_destinations, top_peers};
use crate::snapshot::{
    Breakdown, Direction, Exhaustion, ListenerSeries, PortLabel, PortSeries, TcpFigures,
};
use crate::source::inet_diag::TcpState;

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

        // Ports: per direction, top max_ports by sockets among those the filter allows.
        let mut port_totals: FxHashMap<(Direction, u16), u64> = FxHashMap::default();
        for (key, stats) in &self.ports {
            *port_totals.entry((key.direction, key.port)).or_default() += stats.sockets;
        }
        for (port, _) in self.unaccepted.keys() {
            port_totals.entry((Direction::Inbound, *port)).or_default();
        }
        let mut kept_ports = FxHashSet::default();
        let mut folded_ports = 0u64;
        for direction in [Direction::Inbound, Direction::Outbound] {
            let mut ranked: Vec<(u16, u64)> = port_totals
                .iter()
                .filter(|((d, _), _)| *d == direction)
                .map(|((_, port), n)| (*port, *n))
                .collect();
            ranked.sort_by_key(|(port, n)| (Reverse(*n), *port));
            let mut kept = 0;
            for (port, _) in ranked {
                if kept < settings.max_ports && settings.ports.allows(port) {
                    kept_ports.insert((direction, port));
                    kept += 1;
                } else {
                    folded_ports += 1;
                }
            }
        }
        let port_label = |direction: Direction, port: u16| {
            if kept_ports.contains(&(direction, port)) {
                PortLabel::Port(port)
            } else {
                PortLabel::Other
            }
        };

        // Processes: top max_processes by sockets; "" and unknown are never folded.
        let mut process_totals: FxHashMap<NameId, u64> = FxHashMap::default();
        for (key, stats) in &self.ports {
            if let Owner::Process(id) = key.owner {
                *process_totals.entry(id).or_default() += stats.sockets;
            }
        }
        for listener in self.listeners.values().flatten() {
            if let Some(Owner::Process(id)) = listener.owner {
                process_totals.entry(id).or_default();
            }
        }
        let mut ranked: Vec<(NameId, u64)> = process_totals.into_iter().collect();
        // Ties broken by name so the kept set does not depend on hash order.
        ranked.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| owners.name(a.0).cmp(&owners.name(b.0)))
        });
        let folded_processes = ranked.len().saturating_sub(settings.max_processes) as u64;
        let kept_processes: FxHashSet<NameId> = ranked
            .iter()
            .take(settings.max_processes)
            .map(|(id, _)| *id)
            .collect();
        let other: Arc<str> = Arc::from("other");
        let nobody: Arc<str> = Arc::from("");
        let unknown: Arc<str> = Arc::from("unknown");
        let process_label = |owner: Owner| match owner {
            Owner::Nobody => Arc::clone(&nobody),
            Owner::Unknown => Arc::clone(&unknown),
            Owner::Process(id) if kept_processes.contains(&id) => owners.name(id),
            Owner::Process(_) => Arc::clone(&other),
        };

        let mut ports: FxHashMap<(Direction, PortLabel, Arc<str>, TcpState), PortStats> =
            FxHashMap::default();
        for (key, stats) in &self.ports {
            let entry = ports
                .entry((
                    key.direction,
                    port_label(key.direction, key.port),
                    process_label(key.owner),
                    key.state,
                ))
                .or_default();
            entry.sockets += stats.sockets;
            entry.receive += stats.receive;
            entry.send += stats.send;
            entry.oldest = entry.oldest.max(stats.oldest);
            entry.stale += stats.stale;
        }
        let mut ports: Vec<PortSeries> = ports
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
        ports.sort_by(|a, b| {
            (a.direction, a.port, &a.process, a.state).cmp(&(
                b.direction,
                b.port,
                &b.process,
                b.state,
            ))
        });

        let mut unaccepted: FxHashMap<(PortLabel, TcpState), u64> = FxHashMap::default();
        for ((port, state), n) in &self.unaccepted {
            *unaccepted
                .entry((port_label(Direction::Inbound, *port), *state))
                .or_default() += n;
        }
        let mut unaccepted: Vec<(PortLabel, TcpState, u64)> = unaccepted
            .into_iter()
            .map(|((port, state), n)| (port, state, n))
            .collect();
        unaccepted.sort();

        // Listeners sharing an address and port (SO_REUSEPORT groups) are summed; the
        // group's process is its lowest-labelled owner, for a stable series.
        let mut listeners: Vec<ListenerSeries> = self
            .listeners
            .iter()
            .map(|((address, port), group)| {
                let length: u64 = group.iter().map(|l| l.length).sum();
                let process = group
                    .iter()
                    .map(|l| process_label(l.owner.unwrap_or(Owner::Unknown)))
                    .min()
                    .unwrap_or_else(|| Arc::clone(&unknown));
                ListenerSeries {
                    address: *address,
                    port: *port,
                    process,
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
        listeners
            .sort_by(|a, b| (a.port, a.address, &a.process).cmp(&(b.port, b.address, &b.process)));

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
                folded_ports,
                folded_processes,
            },
        }
    }
}
