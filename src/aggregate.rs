//! Folds socket records into a [`Snapshot`], one record at a time.
//!
//! Pure: no I/O, no clock. The poller feeds it the LISTEN dump first (so it knows which
//! local ports are listening ports), then every other socket, as the decoder produces
//! them. Owners come from an [`Owners`] lookup; a socket whose owner is not known yet is
//! held as a small pending entry until the poller has scanned /proc, then folded. Only
//! those pending entries grow with the number of sockets, and only with new ones.
//!
//! Cardinality is bounded in [`Aggregator::finish`]: per direction the top `max_ports`
//! ports by socket count keep their label, the top `max_processes` processes theirs, and
//! the rest fold into `other`; the number of folded values is exported.

use std::cmp::Reverse;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustc_hash::FxHashMap;

use crate::proc_index::NameId;
use crate::snapshot::{
    Breakdown, Direction, Exhaustion, ListenerSeries, PortLabel, PortSeries, Snapshot, StateCounts,
};
use crate::sock_diag::{Record, TcpState};

/// Entries held for owner resolution before the rest are counted as unattributed.
pub const MAX_PENDING: usize = 262_144;

/// Who owns a socket, as far as the aggregation is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// inode 0: TIME_WAIT, orphaned, or still in an accept queue. Label `""`.
    Nobody,
    /// Has an owner that was not found. Label `unknown`.
    Unknown,
    /// A process, by interned comm.
    Process(NameId),
}

/// Owner lookup during a dump.
pub trait Owners {
    /// `Some(owner)` when settled now, `None` when the inode must wait for a /proc scan.
    fn owner(&mut self, inode: u32) -> Option<Owner>;
    /// After the scan: the owner, or `Unknown`.
    fn settle(&mut self, inode: u32) -> Owner;
    /// The label of a process.
    fn name(&self, id: NameId) -> Arc<str>;
}

/// Which ports may keep a label of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortFilter {
    /// When non-empty, only these ports may keep a label; others fold into `other`.
    pub include: Vec<(u16, u16)>,
    /// These ports always fold into `other`.
    pub exclude: Vec<(u16, u16)>,
}

impl PortFilter {
    pub fn allows(&self, port: u16) -> bool {
        let within =
            |ranges: &[(u16, u16)]| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port));
        (self.include.is_empty() || within(&self.include)) && !within(&self.exclude)
    }
}

/// Cardinality limits and thresholds of the aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Ports per direction that keep their own label.
    pub max_ports: usize,
    pub max_processes: usize,
    pub ports: PortFilter,
    /// Destinations (remote address, port) of `sockdiag_tcp_ephemeral_ports_used`.
    pub max_destinations: usize,
    /// Remote addresses of `sockdiag_tcp_peer_sockets`.
    pub max_peers: usize,
    /// CLOSE_WAIT older than this is stale (a leak, not a slow close).
    pub close_wait_stale_after: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_ports: 50,
            max_processes: 30,
            ports: PortFilter::default(),
            max_destinations: 20,
            max_peers: 20,
            close_wait_stale_after: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PortKey {
    direction: Direction,
    port: u16,
    owner: Owner,
    state: TcpState,
}

#[derive(Debug, Clone, Copy, Default)]
struct PortStats {
    sockets: u64,
    receive: u64,
    send: u64,
    /// CLOSE_WAIT only: the oldest age seen, and how many are stale.
    oldest: Duration,
    stale: u64,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    inode: u32,
    key: PortKey,
    receive: u32,
    send: u32,
    age: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct Listener {
    owner: Option<Owner>,
    inode: u32,
    length: u64,
    limit: u64,
}

/// Accumulates one poll.
#[derive(Debug)]
pub struct Aggregator {
    tcp_sockets: StateCounts,
    scanned: u64,
    listening: Box<[u64; 1024]>,
    listeners: FxHashMap<(IpAddr, u16), Vec<Listener>>,
    ports: FxHashMap<PortKey, PortStats>,
    unaccepted: FxHashMap<(u16, TcpState), u64>,
    pending: Vec<Pending>,
    unattributed: u64,
    stale_after: Duration,
    /// net.ipv4.ip_local_port_range, when it could be read.
    port_range: Option<(u16, u16)>,
    /// Ephemeral ports in use per (local address, destination).
    ephemeral: FxHashMap<(IpAddr, IpAddr, u16), u64>,
    peers: FxHashMap<(IpAddr, TcpState), u64>,
}

impl Default for Aggregator {
    fn default() -> Aggregator {
        Aggregator::new(&Settings::default(), None)
    }
}

impl Aggregator {
    /// A new poll. `port_range` is net.ipv4.ip_local_port_range (start, end).
    pub fn new(settings: &Settings, port_range: Option<(u16, u16)>) -> Aggregator {
        Aggregator {
            stale_after: settings.close_wait_stale_after,
            port_range,
            ephemeral: FxHashMap::default(),
            peers: FxHashMap::default(),
            tcp_sockets: StateCounts::default(),
            scanned: 0,
            listening: Box::new([0; 1024]),
            listeners: FxHashMap::default(),
            ports: FxHashMap::default(),
            unaccepted: FxHashMap::default(),
            pending: Vec::new(),
            unattributed: 0,
        }
    }

    fn is_listening(&self, port: u16) -> bool {
        self.listening[usize::from(port) / 64] & (1 << (port % 64)) != 0
    }

    /// Folds a socket from the LISTEN dump. Must come before any [`Aggregator::add`].
    pub fn add_listener(&mut self, record: &Record, owners: &mut impl Owners) {
        self.scanned += 1;
        self.tcp_sockets.add(record.family, record.state);
        if record.state != TcpState::Listen {
            return;
        }
        let port = record.local.port();
        self.listening[usize::from(port) / 64] |= 1 << (port % 64);
        let owner = if record.inode == 0 {
            Some(Owner::Nobody)
        } else {
            owners.owner(record.inode)
        };
        self.listeners
            .entry((record.local.ip(), port))
            .or_default()
            .push(Listener {
                owner,
                inode: record.inode,
                length: u64::from(record.recv_queue),
                limit: u64::from(record.send_queue),
            });
    }

    /// Folds any other socket. `close_wait_age` is the age of a CLOSE_WAIT socket from
    /// the tracker (`None` for other states, or when the tracker is full).
    pub fn add(
        &mut self,
        record: &Record,
        close_wait_age: Option<Duration>,
        owners: &mut impl Owners,
    ) {
        self.scanned += 1;
        self.tcp_sockets.add(record.family, record.state);
        if record.state == TcpState::Listen {
            // A listener that appeared between the two dumps: counted, not broken down.
            return;
        }
        let local = record.local.port();
        let (direction, port) = if self.is_listening(local) {
            (Direction::Inbound, local)
        } else {
            (Direction::Outbound, record.remote.port())
        };
        let remote = record.remote.ip().to_canonical();
        *self.peers.entry((remote, record.state)).or_default() += 1;
        if direction == Direction::Outbound {
            if let Some((low, high)) = self.port_range {
                if (low..=high).contains(&local) {
                    let key = (
                        record.local.ip().to_canonical(),
                        remote,
                        record.remote.port(),
                    );
                    *self.ephemeral.entry(key).or_default() += 1;
                }
            }
        }
        if record.inode == 0
            && direction == Direction::Inbound
            && matches!(record.state, TcpState::Established | TcpState::CloseWait)
        {
            *self.unaccepted.entry((port, record.state)).or_default() += 1;
        }
        let owner = if record.inode == 0 {
            Some(Owner::Nobody)
        } else {
            owners.owner(record.inode)
        };
        let mut key = PortKey {
            direction,
            port,
            owner: Owner::Unknown,
            state: record.state,
        };
        match owner {
            Some(owner) => {
                key.owner = owner;
                self.fold(key, record.recv_queue, record.send_queue, close_wait_age);
            }
            None if self.pending.len() < MAX_PENDING => self.pending.push(Pending {
                inode: record.inode,
                key,
                receive: record.recv_queue,
                send: record.send_queue,
                age: close_wait_age,
            }),
            None => self.fold(key, record.recv_queue, record.send_queue, close_wait_age),
        }
    }

    fn fold(&mut self, key: PortKey, receive: u32, send: u32, age: Option<Duration>) {
        if key.owner == Owner::Unknown {
            self.unattributed += 1;
        }
        let stats = self.ports.entry(key).or_default();
        stats.sockets += 1;
        stats.receive += u64::from(receive);
        stats.send += u64::from(send);
        if let Some(age) = age {
            stats.oldest = stats.oldest.max(age);
            if age >= self.stale_after {
                stats.stale += 1;
            }
        }
    }

    /// Inodes waiting for an owner (listeners included).
    pub fn missing_inodes(&self) -> Vec<u32> {
        let listeners = self
            .listeners
            .values()
            .flatten()
            .filter(|l| l.owner.is_none())
            .map(|l| l.inode);
        self.pending
            .iter()
            .map(|p| p.inode)
            .chain(listeners)
            .collect()
    }

    /// Folds the pending entries once owners have been looked for.
    pub fn settle(&mut self, owners: &mut impl Owners) {
        for pending in std::mem::take(&mut self.pending) {
            let key = PortKey {
                owner: owners.settle(pending.inode),
                ..pending.key
            };
            self.fold(key, pending.receive, pending.send, pending.age);
        }
        for listener in self.listeners.values_mut().flatten() {
            if listener.owner.is_none() {
                listener.owner = Some(owners.settle(listener.inode));
            }
        }
    }

    /// Ends the poll: applies the cardinality limits and builds the snapshot. `peaks`
    /// holds the largest accept queue sampled per listening address since the last poll.
    pub fn finish(
        mut self,
        owners: &mut impl Owners,
        settings: &Settings,
        peaks: &FxHashMap<(IpAddr, u16), u64>,
        poll_duration: Duration,
        completed_at: SystemTime,
    ) -> Snapshot {
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
        let mut kept_ports = rustc_hash::FxHashSet::default();
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
        let kept_processes: rustc_hash::FxHashSet<NameId> = ranked
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
        Snapshot {
            exhaustion: Exhaustion {
                port_range: self.port_range,
                destinations,
                folded_destinations,
                peers,
                folded_peers,
                close_wait_untracked: 0,
            },
            kernel: Default::default(),
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
            poll_duration,
            completed_at,
        }
    }
}

/// A destination (remote address, port), `None` for `other`, and its ephemeral ports used.
type Destination = (Option<(IpAddr, u16)>, u64);

/// Destinations by ephemeral ports used toward them, the maximum over local addresses (a
/// connect() needs a free local port per local address and destination); the top `k`
/// plus `other`, the largest of the rest.
fn top_destinations(
    ephemeral: &FxHashMap<(IpAddr, IpAddr, u16), u64>,
    k: usize,
) -> (Vec<Destination>, u64) {
    let mut used: FxHashMap<(IpAddr, u16), u64> = FxHashMap::default();
    for ((_, remote, port), n) in ephemeral {
        let entry = used.entry((*remote, *port)).or_default();
        *entry = (*entry).max(*n);
    }
    let mut ranked: Vec<((IpAddr, u16), u64)> = used.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let folded = ranked.len().saturating_sub(k) as u64;
    let mut out: Vec<Destination> = ranked
        .iter()
        .take(k)
        .map(|(destination, n)| (Some(*destination), *n))
        .collect();
    if let Some(largest_rest) = ranked.iter().skip(k).map(|(_, n)| *n).max() {
        out.push((None, largest_rest));
    }
    (out, folded)
}

/// Remote addresses by socket count: the top `k` (all states together) and `other`.
fn top_peers(
    peers: &FxHashMap<(IpAddr, TcpState), u64>,
    k: usize,
) -> (Vec<(Option<IpAddr>, TcpState, u64)>, u64) {
    let mut totals: FxHashMap<IpAddr, u64> = FxHashMap::default();
    for ((address, _), n) in peers {
        *totals.entry(*address).or_default() += n;
    }
    let mut ranked: Vec<(IpAddr, u64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let folded = ranked.len().saturating_sub(k) as u64;
    let kept: rustc_hash::FxHashSet<IpAddr> =
        ranked.iter().take(k).map(|(address, _)| *address).collect();
    let mut out: FxHashMap<(Option<IpAddr>, TcpState), u64> = FxHashMap::default();
    for ((address, state), n) in peers {
        let label = kept.contains(address).then_some(*address);
        *out.entry((label, *state)).or_default() += n;
    }
    let mut out: Vec<(Option<IpAddr>, TcpState, u64)> =
        out.into_iter().map(|((a, s), n)| (a, s, n)).collect();
    // Kept addresses first, `other` last.
    out.sort_by_key(|(address, state, _)| (address.is_none(), *address, *state));
    (out, folded)
}

/// Accept-queue lengths per listening (address, port), summed over SO_REUSEPORT groups:
/// one sample of the fast listener sampler.
pub type ListenSample = FxHashMap<(IpAddr, u16), u64>;

/// Adds a LISTEN-dump record to a sample.
pub fn add_to_sample(sample: &mut ListenSample, record: &Record) {
    if record.state == TcpState::Listen {
        *sample
            .entry((record.local.ip(), record.local.port()))
            .or_default() += u64::from(record.recv_queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sock_diag::Family;
    use std::net::SocketAddr;

    /// Owners from a fixed table: inode -> name; inodes in `later` resolve only at settle.
    #[derive(Default)]
    struct Table {
        names: Vec<Arc<str>>,
        now: FxHashMap<u32, NameId>,
        later: FxHashMap<u32, NameId>,
    }

    impl Table {
        fn name_id(&mut self, name: &str) -> NameId {
            if let Some(i) = self.names.iter().position(|n| &**n == name) {
                return i as NameId;
            }
            self.names.push(Arc::from(name));
            (self.names.len() - 1) as NameId
        }
        fn own(&mut self, inode: u32, name: &str) {
            let id = self.name_id(name);
            self.now.insert(inode, id);
        }
        fn own_later(&mut self, inode: u32, name: &str) {
            let id = self.name_id(name);
            self.later.insert(inode, id);
        }
    }

    impl Owners for Table {
        fn owner(&mut self, inode: u32) -> Option<Owner> {
            self.now.get(&inode).map(|id| Owner::Process(*id))
        }
        fn settle(&mut self, inode: u32) -> Owner {
            self.now
                .get(&inode)
                .or_else(|| self.later.get(&inode))
                .map(|id| Owner::Process(*id))
                .unwrap_or(Owner::Unknown)
        }
        fn name(&self, id: NameId) -> Arc<str> {
            Arc::clone(&self.names[id as usize])
        }
    }

    fn rec(state: TcpState, local: &str, remote: &str, inode: u32) -> Record {
        let local: SocketAddr = local.parse().unwrap();
        Record {
            family: if local.is_ipv4() {
                Family::Ipv4
            } else {
                Family::Ipv6
            },
            state,
            local,
            remote: remote.parse().unwrap(),
            recv_queue: 0,
            send_queue: 0,
            uid: 0,
            inode,
            cookie: 0,
        }
    }

    impl Aggregator {
        fn add_(&mut self, record: &Record, owners: &mut Table) {
            self.add(record, None, owners)
        }
    }

    fn finish(aggregator: Aggregator, owners: &mut Table, limits: &Settings) -> Snapshot {
        aggregator.finish(
            owners,
            limits,
            &FxHashMap::default(),
            Duration::ZERO,
            SystemTime::UNIX_EPOCH,
        )
    }

    fn series(snapshot: &Snapshot) -> Vec<String> {
        snapshot
            .breakdown
            .ports
            .iter()
            .map(|s| {
                format!(
                    "{} {} {:?} {} = {} r{} s{}",
                    s.direction.label(),
                    s.port,
                    &*s.process,
                    s.state.label(),
                    s.sockets,
                    s.receive_bytes,
                    s.send_bytes
                )
            })
            .collect()
    }

    #[test]
    fn direction_port_and_owner() {
        let mut owners = Table::default();
        owners.own(10, "nginx");
        owners.own(11, "nginx");
        owners.own(20, "app");
        owners.own_later(21, "app");
        let mut a = Aggregator::default();
        a.add_listener(
            &rec(TcpState::Listen, "0.0.0.0:80", "0.0.0.0:0", 10),
            &mut owners,
        );
        // inbound close_wait owned by nginx, with 46 unread bytes
        let mut cw = rec(TcpState::CloseWait, "10.0.0.1:80", "10.0.0.9:50000", 11);
        cw.recv_queue = 46;
        a.add(&cw, None, &mut owners);
        // outbound to mysql, one known now, one found by the scan
        a.add_(
            &rec(TcpState::CloseWait, "10.0.0.1:40000", "10.0.0.7:3306", 20),
            &mut owners,
        );
        a.add_(
            &rec(TcpState::CloseWait, "10.0.0.1:40001", "10.0.0.7:3306", 21),
            &mut owners,
        );
        // never accepted, and a TIME_WAIT with no owner
        a.add_(
            &rec(TcpState::CloseWait, "10.0.0.1:80", "10.0.0.9:50001", 0),
            &mut owners,
        );
        a.add_(
            &rec(TcpState::TimeWait, "10.0.0.1:40002", "10.0.0.7:3306", 0),
            &mut owners,
        );
        // an owner that cannot be found
        a.add_(
            &rec(TcpState::Established, "10.0.0.1:40003", "10.0.0.8:443", 99),
            &mut owners,
        );
        assert_eq!(a.missing_inodes(), vec![21, 99]);
        let snapshot = finish(a, &mut owners, &Settings::default());
        assert_eq!(
            series(&snapshot),
            vec![
                "inbound 80 \"\" close_wait = 1 r0 s0",
                "inbound 80 \"nginx\" close_wait = 1 r46 s0",
                "outbound 443 \"unknown\" established = 1 r0 s0",
                "outbound 3306 \"\" time_wait = 1 r0 s0",
                "outbound 3306 \"app\" close_wait = 2 r0 s0",
            ]
        );
        assert_eq!(
            snapshot.breakdown.unaccepted,
            vec![(PortLabel::Port(80), TcpState::CloseWait, 1)]
        );
        assert_eq!(snapshot.breakdown.unattributed, 1);
        assert_eq!(snapshot.sockets_scanned, 7);
        let listener = &snapshot.breakdown.listeners[0];
        assert_eq!((listener.port, &*listener.process), (80, "nginx"));
    }

    /// Owners from `Table`, except that every inode is already known to be unreachable.
    struct Unreachable(Table);

    impl Owners for Unreachable {
        fn owner(&mut self, _inode: u32) -> Option<Owner> {
            Some(Owner::Unknown)
        }
        fn settle(&mut self, _inode: u32) -> Owner {
            Owner::Unknown
        }
        fn name(&self, id: NameId) -> Arc<str> {
            self.0.name(id)
        }
    }

    #[test]
    fn unattributed_counts_listeners_known_unreachable_at_the_dump() {
        let mut owners = Unreachable(Table::default());
        let mut a = Aggregator::default();
        a.add_listener(
            &rec(TcpState::Listen, "0.0.0.0:80", "0.0.0.0:0", 7),
            &mut owners,
        );
        a.add(
            &rec(TcpState::Established, "10.0.0.1:80", "10.0.0.2:4000", 8),
            None,
            &mut owners,
        );
        a.add(
            &rec(TcpState::Established, "10.0.0.1:80", "10.0.0.2:4001", 9),
            None,
            &mut owners,
        );
        let snapshot = a.finish(
            &mut owners,
            &Settings::default(),
            &FxHashMap::default(),
            Duration::ZERO,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(snapshot.breakdown.unattributed, 3);
        assert_eq!(&*snapshot.breakdown.listeners[0].process, "unknown");
    }

    #[test]
    fn top_n_ports_and_processes_fold_into_other() {
        let mut owners = Table::default();
        let mut a = Aggregator::default();
        let mut inode = 1;
        // outbound ports 1000..1004 with 5,4,3,2,1 sockets; process pN owns port 100N
        for (i, n) in [5u32, 4, 3, 2, 1].iter().enumerate() {
            for _ in 0..*n {
                owners.own(inode, &format!("p{i}"));
                a.add_(
                    &rec(
                        TcpState::Established,
                        &format!("10.0.0.1:{}", 30000 + inode),
                        &format!("10.0.0.2:{}", 1000 + i),
                        inode,
                    ),
                    &mut owners,
                );
                inode += 1;
            }
        }
        let limits = Settings {
            max_ports: 2,
            max_processes: 3,
            ..Settings::default()
        };
        let snapshot = finish(a, &mut owners, &limits);
        assert_eq!(
            series(&snapshot),
            vec![
                "outbound 1000 \"p0\" established = 5 r0 s0",
                "outbound 1001 \"p1\" established = 4 r0 s0",
                "outbound other \"other\" established = 3 r0 s0",
                "outbound other \"p2\" established = 3 r0 s0",
            ]
        );
        assert_eq!(snapshot.breakdown.folded_ports, 3);
        assert_eq!(snapshot.breakdown.folded_processes, 2);
    }

    #[test]
    fn include_and_exclude_filters() {
        let filter = PortFilter {
            include: vec![(3306, 3306), (8000, 8100)],
            exclude: vec![(8080, 8080)],
        };
        assert!(filter.allows(3306));
        assert!(filter.allows(8000));
        assert!(!filter.allows(8080));
        assert!(!filter.allows(443));
        let mut owners = Table::default();
        let mut a = Aggregator::default();
        for (port, inode) in [(3306u16, 0u32), (443, 0), (8080, 0)] {
            a.add_(
                &rec(
                    TcpState::TimeWait,
                    "10.0.0.1:40000",
                    &format!("10.0.0.2:{port}"),
                    inode,
                ),
                &mut owners,
            );
        }
        let limits = Settings {
            ports: filter,
            ..Settings::default()
        };
        let snapshot = finish(a, &mut owners, &limits);
        assert_eq!(
            series(&snapshot),
            vec![
                "outbound 3306 \"\" time_wait = 1 r0 s0",
                "outbound other \"\" time_wait = 2 r0 s0"
            ]
        );
        assert_eq!(snapshot.breakdown.folded_ports, 2);
    }

    #[test]
    fn reuseport_listeners_are_summed_and_peak_is_at_least_the_length() {
        let mut owners = Table::default();
        owners.own(1, "nginx");
        owners.own(2, "nginx");
        let mut a = Aggregator::default();
        for inode in [1, 2] {
            let mut l = rec(TcpState::Listen, "0.0.0.0:443", "0.0.0.0:0", inode);
            l.recv_queue = 3;
            l.send_queue = 511;
            a.add_listener(&l, &mut owners);
        }
        let mut peaks = FxHashMap::default();
        peaks.insert(("0.0.0.0".parse().unwrap(), 443), 40);
        let snapshot = a.finish(
            &mut owners,
            &Settings::default(),
            &peaks,
            Duration::ZERO,
            SystemTime::UNIX_EPOCH,
        );
        let l = &snapshot.breakdown.listeners[0];
        assert_eq!((l.length, l.limit, l.peak), (6, 1022, 40));
    }

    #[test]
    fn listen_sample_sums_per_address() {
        let mut a = rec(TcpState::Listen, "0.0.0.0:80", "0.0.0.0:0", 1);
        a.recv_queue = 2;
        let mut b = a;
        b.recv_queue = 5;
        let mut sample = ListenSample::default();
        add_to_sample(&mut sample, &a);
        add_to_sample(&mut sample, &b);
        assert_eq!(sample.get(&("0.0.0.0".parse().unwrap(), 80)), Some(&7));
    }

    #[test]
    fn close_wait_ages_fold_to_oldest_and_stale_per_owner() {
        let mut owners = Table::default();
        owners.own(1, "app");
        owners.own(2, "app");
        owners.own_later(3, "app");
        let settings = Settings {
            close_wait_stale_after: Duration::from_secs(60),
            ..Settings::default()
        };
        let mut a = Aggregator::new(&settings, None);
        let cw = |port: u16, inode: u32| {
            rec(
                TcpState::CloseWait,
                &format!("10.0.0.1:{port}"),
                "10.0.0.2:3306",
                inode,
            )
        };
        a.add(&cw(40000, 1), Some(Duration::from_secs(5)), &mut owners);
        a.add(&cw(40001, 2), Some(Duration::from_secs(90)), &mut owners);
        // Found only by the scan: its age travels with the pending entry.
        a.add(&cw(40002, 3), Some(Duration::from_secs(200)), &mut owners);
        // Untracked (tracker full): counted, but no age.
        a.add(&cw(40003, 1), None, &mut owners);
        let snapshot = finish(a, &mut owners, &settings);
        let s = &snapshot.breakdown.ports[0];
        assert_eq!(
            (s.sockets, s.close_wait_oldest, s.close_wait_stale),
            (4, Duration::from_secs(200), 2)
        );
    }

    #[test]
    fn ephemeral_ports_take_the_max_over_local_addresses_and_fold_the_rest() {
        let mut owners = Table::default();
        let settings = Settings {
            max_destinations: 1,
            ..Settings::default()
        };
        let mut a = Aggregator::new(&settings, Some((40000, 40099)));
        let mut add = |local: &str, remote: &str, state: TcpState, n: u16| {
            for i in 0..n {
                let (ip, _) = local.split_once(':').unwrap();
                a.add_(
                    &rec(state, &format!("{ip}:{}", 40000 + i), remote, 0),
                    &mut owners,
                );
            }
        };
        add("10.0.0.10:0", "10.0.0.1:9001", TcpState::TimeWait, 8);
        add("10.0.0.11:0", "10.0.0.1:9001", TcpState::Established, 2);
        add("10.0.0.10:0", "10.0.0.2:9002", TcpState::Established, 4);
        add("10.0.0.11:0", "10.0.0.2:9002", TcpState::SynSent, 6);
        // Outside the range: not an ephemeral port.
        a.add_(
            &rec(TcpState::Established, "10.0.0.10:50000", "10.0.0.2:9002", 0),
            &mut owners,
        );
        let snapshot = finish(a, &mut owners, &settings);
        assert_eq!(
            snapshot.exhaustion.destinations,
            vec![(Some(("10.0.0.1".parse().unwrap(), 9001)), 8), (None, 6)]
        );
        assert_eq!(snapshot.exhaustion.folded_destinations, 1);
        assert_eq!(snapshot.exhaustion.port_range, Some((40000, 40099)));
    }

    #[test]
    fn peers_keep_the_top_k_addresses_and_fold_the_rest_per_state() {
        let mut owners = Table::default();
        let settings = Settings {
            max_peers: 1,
            ..Settings::default()
        };
        let mut a = Aggregator::new(&settings, None);
        for (remote, state) in [
            ("10.0.0.5:1", TcpState::Established),
            ("10.0.0.5:2", TcpState::TimeWait),
            ("[::ffff:10.0.0.5]:3", TcpState::Established),
            ("10.0.0.6:1", TcpState::Established),
            ("10.0.0.7:1", TcpState::Established),
        ] {
            let local = if remote.starts_with('[') {
                "[::ffff:10.0.0.1]:5000"
            } else {
                "10.0.0.1:5000"
            };
            a.add_(&rec(state, local, remote, 0), &mut owners);
        }
        let snapshot = finish(a, &mut owners, &settings);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            snapshot.exhaustion.peers,
            vec![
                (ip("10.0.0.5"), TcpState::Established, 2),
                (ip("10.0.0.5"), TcpState::TimeWait, 1),
                (None, TcpState::Established, 2),
            ],
            "a v4-mapped v6 peer is the same peer"
        );
        assert_eq!(snapshot.exhaustion.folded_peers, 2);
    }
}
