//! Folds UDP socket records into one namespace's figures: socket counts by family, the
//! receive queues and buffers of each (direction, port, process), and, through
//! [`drops::DropTracker`], the datagrams each of them dropped.
//!
//! Pure: no I/O, no clock (the poll passes it in). The direction is TCP's: a socket bound
//! to a port outside the ephemeral range, or unconnected, is `inbound` and labelled by its
//! local port; a connect()ed socket on an ephemeral port (a DNS client, a statsd client)
//! is `outbound` and labelled by its remote port. So a local :53 server and the clients
//! of :53 never share a series, and a connected client's ephemeral port never becomes a
//! label. An unconnected socket on an ephemeral port (a sendto() sender) is a receiver by
//! that rule, labelled by its ephemeral port; the cap below bounds such series.
//!
//! Cardinality is bounded in [`UdpAggregator::finish`], per direction: the `max_ports`
//! series that dropped the most since the previous poll, then with the fullest receive
//! queue, then the most sockets, keep their labels; a series that is dropping is an
//! anomaly and is kept beyond the cap too, up to a ceiling of another `max_ports`; the
//! rest are summed into `port="other", process="other"` and counted.

pub mod drops;

use std::cmp::{Ordering, Reverse};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use self::drops::{DropTracker, SeriesKey};
use super::anomaly;
use super::owners::{Owner, Owners, PENDING};
use super::settings::Settings;
use crate::snapshot::{Direction, PortLabel, UdpFigures, UdpSeries};
use crate::source::proc_sys_net::PortRange;
use crate::source::udp_diag::Record;

/// The kernel's default net.ipv4.ip_local_port_range, for a namespace whose sysctl could
/// not be read.
const DEFAULT_EPHEMERAL: (u16, u16) = (32768, 60999);

/// What the fold keeps of a socket until the owners are settled: 32 bytes.
#[derive(Debug, Clone, Copy)]
struct Socket {
    cookie: u64,
    inode: u32,
    owner: Option<Owner>,
    direction: Direction,
    port: u16,
    queue: u32,
    buffer: u32,
    drops: u32,
}

/// Accumulates one poll's UDP dumps of one namespace.
#[derive(Debug)]
pub struct UdpAggregator {
    sockets: Vec<Socket>,
    families: [u64; 2],
    ephemeral: (u16, u16),
}

impl UdpAggregator {
    /// A new poll. `port_range` is net.ipv4.ip_local_port_range.
    pub fn new(port_range: Option<PortRange>) -> UdpAggregator {
        UdpAggregator {
            sockets: Vec::new(),
            families: [0; 2],
            ephemeral: port_range.map_or(DEFAULT_EPHEMERAL, |r| (r.start(), r.end())),
        }
    }

    /// Folds a record of the UDP dump.
    pub fn add(&mut self, record: &Record, owners: &impl Owners) {
        self.families[record.family.index()] += 1;
        let local = record.local.port();
        let ephemeral = (self.ephemeral.0..=self.ephemeral.1).contains(&local);
        let (direction, port) = if record.connected && ephemeral {
            (Direction::Outbound, record.remote.port())
        } else {
            (Direction::Inbound, local)
        };
        let owner = if record.inode == 0 {
            Some(Owner::Nobody)
        } else {
            owners.owner(record.inode)
        };
        self.sockets.push(Socket {
            cookie: record.cookie,
            inode: record.inode,
            owner,
            direction,
            port,
            queue: record.queue_bytes,
            buffer: record.buffer_bytes,
            drops: record.drops,
        });
    }

    /// Socket inodes waiting for an owner.
    pub fn missing_inodes(&self) -> Vec<u32> {
        self.sockets
            .iter()
            .filter(|s| s.owner.is_none())
            .map(|s| s.inode)
            .collect()
    }

    /// Ends the poll: settles the owners, applies `max_ports`, counts every socket's drops
    /// in `tracker` (namespace `netns`, which the caller began a poll in) and returns the
    /// namespace's UDP figures.
    pub fn finish(
        self,
        netns: u64,
        owners: &impl Owners,
        settings: &Settings,
        tracker: &mut DropTracker,
    ) -> UdpFigures {
        let (unknown, nobody): (Arc<str>, Arc<str>) = (Arc::from("unknown"), Arc::from(""));
        let mut unattributed = 0;
        let mut natural: FxHashMap<NaturalKey, UdpSeries> = FxHashMap::default();
        let mut keys = Vec::with_capacity(self.sockets.len());
        for socket in &self.sockets {
            let owner = socket.owner.unwrap_or_else(|| owners.settle(socket.inode));
            unattributed += u64::from(owner == Owner::Unknown);
            let key = (socket.direction, socket.port, owner);
            let series = natural.entry(key).or_insert_with(|| UdpSeries {
                direction: socket.direction,
                port: PortLabel::Port(socket.port),
                process: match owner {
                    Owner::Process(id) => owners.name(id),
                    Owner::Nobody => Arc::clone(&nobody),
                    Owner::Unknown => Arc::clone(&unknown),
                    Owner::Pending => Arc::from(PENDING),
                },
                sockets: 0,
                queue_bytes: 0,
                buffer_bytes: 0,
                drops_growth: 0,
            });
            series.sockets += 1;
            series.queue_bytes += u64::from(socket.queue);
            series.buffer_bytes += u64::from(socket.buffer);
            series.drops_growth += tracker.growth(netns, socket.cookie, socket.drops);
            keys.push(key);
        }
        let labels: FxHashMap<NaturalKey, SeriesKey> = natural
            .iter()
            .map(|(key, s)| (*key, (s.direction, s.port, Arc::clone(&s.process))))
            .collect();
        let (series, kept, folded_dropping) = cap(natural, settings.max_ports);
        let other: Arc<str> = Arc::from("other");
        let mut drops_untracked = 0;
        for (socket, key) in self.sockets.iter().zip(keys) {
            if socket.drops == 0 && !tracker.holds(netns, socket.cookie) {
                // Never dropped and not held: nothing to count (the common case).
                continue;
            }
            if key.2 == Owner::Pending && !tracker.holds(netns, socket.cookie) {
                // Not pinned to a `pending` series for its life: the next poll, which names
                // its owner, counts it as seen for the first time, its whole count included.
                continue;
            }
            let series = if kept.contains(&key) {
                labels[&key].clone()
            } else {
                (key.0, PortLabel::Other, Arc::clone(&other))
            };
            if !tracker.observe(netns, socket.cookie, socket.drops, &series) {
                drops_untracked += 1;
            }
        }
        for s in &series {
            tracker.touch(netns, &(s.direction, s.port, Arc::clone(&s.process)));
        }
        UdpFigures {
            sockets: self.families,
            series,
            drops: tracker.series(netns),
            folded_series: (labels.len() - kept.len()) as u64,
            folded_dropping,
            unattributed,
            drops_untracked,
            sockets_scanned: self.families.iter().sum(),
        }
    }
}

/// A series before the cap: (direction, port, owner).
type NaturalKey = (Direction, u16, Owner);

/// A series that dropped since the previous poll: an anomaly, kept beyond the cap.
fn dropping(series: &UdpSeries) -> bool {
    anomaly::udp_dropping(series.drops_growth)
}

/// The rank of a series within its direction: dropping most, fullest queue, most
/// sockets, then labels so that the kept set does not flap.
fn rank(a: &UdpSeries, b: &UdpSeries) -> Ordering {
    let fill = |s: &UdpSeries| (u128::from(s.queue_bytes), u128::from(s.buffer_bytes.max(1)));
    let ((aq, ab), (bq, bb)) = (fill(a), fill(b));
    Reverse(a.drops_growth)
        .cmp(&Reverse(b.drops_growth))
        .then_with(|| (bq * ab).cmp(&(aq * bb)))
        .then_with(|| Reverse(a.sockets).cmp(&Reverse(b.sockets)))
        .then_with(|| (a.port, &a.process).cmp(&(b.port, &b.process)))
}

/// Applies `max_ports` per direction: the series (the kept ones and the `other` of each
/// direction, sorted by labels), the keys kept, and how many dropping series were folded.
fn cap(
    natural: FxHashMap<NaturalKey, UdpSeries>,
    max: usize,
) -> (Vec<UdpSeries>, FxHashSet<NaturalKey>, u64) {
    let mut out = Vec::new();
    let mut kept_keys = FxHashSet::default();
    let mut folded_dropping = 0;
    let mut all: Vec<(NaturalKey, UdpSeries)> = natural.into_iter().collect();
    all.sort_by(|(_, a), (_, b)| rank(a, b));
    for direction in [Direction::Inbound, Direction::Outbound] {
        let mut ranked: Vec<(NaturalKey, UdpSeries)> = all
            .iter()
            .filter(|(key, _)| key.0 == direction)
            .cloned()
            .collect();
        let anomalies = ranked.iter().filter(|(_, s)| dropping(s)).count();
        // PROVISIONAL until fold::anomaly lands: its `kept` replaces this line.
        let kept = ranked
            .len()
            .min(max.max(anomalies.min(max.saturating_mul(2))));
        let folded = ranked.split_off(kept);
        kept_keys.extend(ranked.iter().map(|(key, _)| *key));
        let mut series: Vec<UdpSeries> = ranked.into_iter().map(|(_, s)| s).collect();
        if !folded.is_empty() {
            folded_dropping += folded.iter().filter(|(_, s)| dropping(s)).count() as u64;
            let sum = |f: fn(&UdpSeries) -> u64| folded.iter().map(|(_, s)| f(s)).sum();
            series.push(UdpSeries {
                direction,
                port: PortLabel::Other,
                process: Arc::from("other"),
                sockets: sum(|s| s.sockets),
                queue_bytes: sum(|s| s.queue_bytes),
                buffer_bytes: sum(|s| s.buffer_bytes),
                drops_growth: sum(|s| s.drops_growth),
            });
        }
        series.sort_by(|a, b| (a.port, &a.process).cmp(&(b.port, &b.process)));
        out.extend(series);
    }
    (out, kept_keys, folded_dropping)
}

#[cfg(test)]
mod tests;
