//! Folds TCP socket records into one namespace's figures, one record at a time.
//!
//! Pure: no I/O, no clock. The poll feeds it the LISTEN dump first (so it knows which
//! local ports are listening ports), then every other socket, as the decoder produces
//! them. Owners come from an [`Owners`] lookup; a socket whose owner is not known yet is
//! held as a small pending entry until the poll has scanned /proc, then folded. Only
//! those pending entries grow with the number of sockets, and only with new ones.
//!
//! Cardinality is bounded in [`Aggregator::finish`] (module `caps`): per direction the top
//! `max_ports` ports by socket count keep their label, the top `max_processes` processes
//! theirs, and the rest fold into `other`; the number of folded values is exported.

use std::net::IpAddr;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::listen::Listener;
use super::owners::{Owner, Owners};
use super::settings::Settings;
use crate::snapshot::{Direction, StateCounts};
use crate::source::inet_diag::{Record, TcpState};
use crate::source::proc_sys_net::PortRange;

mod caps;
#[cfg(test)]
mod tests;

/// Entries held for owner resolution before the rest are counted as unattributed.
pub const MAX_PENDING: usize = 262_144;

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
    /// CLOSE_WAIT sockets without an age: the tracker was full.
    close_wait_untracked: u64,
    stale_after: Duration,
    /// net.ipv4.ip_local_port_range, when it could be read.
    port_range: Option<PortRange>,
    /// Ephemeral ports in use per (local address, destination).
    ephemeral: FxHashMap<(IpAddr, IpAddr, u16), u64>,
    peers: FxHashMap<(IpAddr, TcpState), u64>,
}

impl Default for Aggregator {
    fn default() -> Aggregator {
        Aggregator::new(&Settings::default(), None)
    }
}

/// The direction of a non-LISTEN socket and the port it is counted under: inbound on its
/// local port when that port is a listening port (`listening`); else, by the ephemeral
/// `port_range`, inbound on its local port when the local port is outside the range and
/// the remote port inside it (a server's socket whose listener is gone, say the TIME_WAIT
/// of a server that closed first and then exited: its peer is a client on an ephemeral
/// port); else outbound on the remote port. Where both ports are inside the range, or both
/// outside, or the range is unknown, a socket without a listener stays outbound.
pub fn direction(
    listening: bool,
    local: u16,
    remote: u16,
    port_range: Option<PortRange>,
) -> (Direction, u16) {
    let server_side =
        port_range.is_some_and(|range| !range.contains(local) && range.contains(remote));
    if listening || server_side {
        (Direction::Inbound, local)
    } else {
        (Direction::Outbound, remote)
    }
}

impl Aggregator {
    /// A new poll. `port_range` is net.ipv4.ip_local_port_range.
    pub fn new(settings: &Settings, port_range: Option<PortRange>) -> Aggregator {
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
            close_wait_untracked: 0,
        }
    }

    fn is_listening(&self, port: u16) -> bool {
        self.listening[usize::from(port) / 64] & (1 << (port % 64)) != 0
    }

    /// Folds a socket from the LISTEN dump. Must come before any [`Aggregator::add`].
    pub fn add_listener(&mut self, record: &Record, owners: &impl Owners) {
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
    /// the tracker (`None` for other states; for a CLOSE_WAIT socket, the tracker was
    /// full, and the socket is counted as untracked).
    pub fn add(&mut self, record: &Record, close_wait_age: Option<Duration>, owners: &impl Owners) {
        self.scanned += 1;
        self.tcp_sockets.add(record.family, record.state);
        if record.state == TcpState::CloseWait && close_wait_age.is_none() {
            self.close_wait_untracked += 1;
        }
        if record.state == TcpState::Listen {
            // A listener that appeared between the two dumps: counted, not broken down.
            return;
        }
        let local = record.local.port();
        let listening = self.is_listening(local);
        let (direction, port) = direction(listening, local, record.remote.port(), self.port_range);
        let remote = record.remote.ip().to_canonical();
        *self.peers.entry((remote, record.state)).or_default() += 1;
        if direction == Direction::Outbound {
            if let Some(range) = self.port_range {
                if range.contains(local) {
                    let key = (
                        record.local.ip().to_canonical(),
                        remote,
                        record.remote.port(),
                    );
                    *self.ephemeral.entry(key).or_default() += 1;
                }
            }
        }
        // Only a listener has an accept queue: inbound by the port range alone is not in one.
        if record.inode == 0
            && listening
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
    pub fn settle(&mut self, owners: &impl Owners) {
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
}
