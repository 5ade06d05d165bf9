//! Listeners: the entry the TCP and UNIX folds keep per listening socket, and the fast
//! listener sampler's fold: accept-queue lengths per TCP listening address and per UNIX
//! listening socket, kept between main polls so that the largest one is reported as the
//! peak.

use std::net::IpAddr;

use rustc_hash::FxHashMap;

use super::owners::Owner;
use crate::source::inet_diag::{self, TcpState};
use crate::source::unix_diag::{self, UnixState};

/// A listening socket as the TCP and UNIX folds hold it until the poll ends.
#[derive(Debug, Clone, Copy)]
pub struct Listener {
    /// `None` while waiting for the /proc scan.
    pub owner: Option<Owner>,
    pub inode: u32,
    /// Connections in the accept queue.
    pub length: u64,
    /// The backlog.
    pub limit: u64,
}

/// One sample of the fast listener sampler, or the peaks of several: accept-queue
/// lengths per TCP listening (address, port), summed over SO_REUSEPORT groups (the kernel
/// lets only one user share a port), and per UNIX listening socket, keyed by its inode:
/// two sockets bound at one name (from other mount namespaces, or other processes) keep
/// apart, so that one cannot lend its queue to the other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenSample {
    pub tcp: FxHashMap<(IpAddr, u16), u64>,
    pub unix: FxHashMap<u32, u64>,
}

impl ListenSample {
    /// Keeps, per listener, the larger of the two.
    pub fn merge_max(&mut self, other: ListenSample) {
        for (key, length) in other.tcp {
            let peak = self.tcp.entry(key).or_default();
            *peak = (*peak).max(length);
        }
        for (key, length) in other.unix {
            let peak = self.unix.entry(key).or_default();
            *peak = (*peak).max(length);
        }
    }
}

/// Adds a TCP LISTEN-dump record to a sample.
pub fn add_to_sample(sample: &mut ListenSample, record: &inet_diag::Record) {
    if record.state == TcpState::Listen {
        *sample
            .tcp
            .entry((record.local.ip(), record.local.port()))
            .or_default() += u64::from(record.recv_queue);
    }
}

/// Adds a UNIX LISTEN-dump record to a sample.
pub fn add_unix_to_sample(sample: &mut ListenSample, record: &unix_diag::Record<'_>) {
    if record.state == UnixState::Listen {
        let length = sample.unix.entry(record.inode).or_default();
        *length = (*length).max(u64::from(record.recv_queue));
    }
}
