//! The immutable result of one poll, and what the poller publishes for scrapes.
//!
//! A [`Snapshot`] is built once per successful poll and never changed; scrapes encode
//! whichever snapshot is current ([`Published`]), so a scrape never waits for netlink
//! and never sees a half-folded poll.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::sock_diag::{Family, TcpState};

/// Per family, per state socket counts: `counts[family.index()][state.index()]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub counts: [[u64; TcpState::COUNT]; 2],
}

impl StateCounts {
    pub fn get(&self, family: Family, state: TcpState) -> u64 {
        self.counts[family.index()][state.index()]
    }

    pub fn add(&mut self, family: Family, state: TcpState) {
        self.counts[family.index()][state.index()] += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }
}

/// Everything one successful poll measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub tcp_sockets: StateCounts,
    /// Records read from the kernel in this poll (all dumps together).
    pub sockets_scanned: u64,
    /// Wall time of the poll, dumps and aggregation included.
    pub poll_duration: Duration,
    /// When the poll finished.
    pub completed_at: SystemTime,
}

/// Stage of a poll that can fail; the `stage` label of `sockdiag_poll_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Opening the netlink socket.
    Open,
    /// The sock_diag dump itself (send, receive, decode).
    Dump,
    /// The blocking task died (a bug: it panicked or was cancelled).
    Task,
}

impl Stage {
    pub const COUNT: usize = 3;
    pub const ALL: [Stage; Stage::COUNT] = [Stage::Open, Stage::Dump, Stage::Task];

    pub fn label(self) -> &'static str {
        match self {
            Stage::Open => "open",
            Stage::Dump => "dump",
            Stage::Task => "task",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the poller publishes after every poll, successful or not.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// The last successful poll's snapshot; `None` until the first one lands.
    pub latest: Option<Arc<Snapshot>>,
    /// Failed polls since start, by stage.
    pub errors_total: [u64; Stage::COUNT],
}

impl Published {
    /// True once a poll has succeeded: what `/-/ready` reports.
    pub fn ready(&self) -> bool {
        self.latest.is_some()
    }
}
