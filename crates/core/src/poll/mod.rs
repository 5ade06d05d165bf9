//! The synchronous poll: one [`Collector`] runs discovery, the recipe of [`namespace`] in
//! every namespace, and the owners' /proc index, and returns a [`Snapshot`]
//! (crate::snapshot::Snapshot); [`listen`] samples LISTEN queues between polls. No async
//! runtime here: the daemon's loops (in the `sockdiag_exporter` crate) run these on a
//! blocking thread and publish what they return.
//!
//! A failed dump drops its netlink socket ([`Reopening`]) and the next one reopens it, so
//! the leftovers of an aborted dump can never be read as the next one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::collectors::{CollectorKind, Collectors};
use crate::fold::listen::ListenSample;
use crate::fold::Settings;
use crate::snapshot::Stage;
use crate::source::sock_diag::{Opener, SockDiag, SockDiagError};
use discover::Sources;

pub mod collector;
pub mod discover;
pub mod listen;
pub mod namespace;
mod owners;
pub mod sysctls;
pub mod timings;

pub use collector::{Collector, PollNotes, Scope};
pub use listen::ListenSampler;
pub use timings::PollTimings;

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Open(SockDiagError),
    #[error(transparent)]
    Dump(SockDiagError),
    #[error("listener sample failed: {0}")]
    ListenDump(SockDiagError),
    #[error("listener sample failed: {0}")]
    Namespace(crate::source::netns::EnterError),
    #[error("listener sample failed: the thread sampling other namespaces panicked")]
    SamplerPanicked,
}

impl PollError {
    pub fn stage(&self) -> Stage {
        match self {
            PollError::Open(_) => Stage::Open,
            PollError::Dump(_) => Stage::Dump,
            PollError::ListenDump(_) | PollError::Namespace(_) | PollError::SamplerPanicked => {
                Stage::ListenDump
            }
        }
    }
}

/// What the poll loops need to know.
#[derive(Debug, Clone)]
pub struct PollerConfig {
    pub poll_interval: Duration,
    /// `None` disables the listener sampler (peak = length at the poll).
    pub listen_poll_interval: Option<Duration>,
    /// The optional collectors that run. The sampler's toggle is not read: the sampler
    /// runs when `listen_poll_interval` is set ([`PollerConfig::collectors`]).
    pub collectors: Collectors,
    pub settings: Settings,
    /// CLOSE_WAIT sockets whose age is tracked at most, every namespace together.
    pub close_wait_capacity: usize,
    /// Every network namespace, or only ours.
    pub scope: Scope,
    /// Where discovery and the /proc index read.
    pub sources: Sources,
    /// Namespaces dumped at once, besides ours.
    pub netns_concurrency: usize,
    /// Namespaces that keep their label; the rest fold into `other`.
    pub max_namespaces: usize,
    /// How the main poll opens its sock_diag sockets: the kernel's, or a scripted
    /// transport in tests.
    pub open: Opener,
}

impl PollerConfig {
    /// Defaults for everything but the intervals. They are the configuration's defaults
    /// too: `Config::default` takes the poller's settings from here.
    pub fn new(poll_interval: Duration, listen_poll_interval: Option<Duration>) -> PollerConfig {
        PollerConfig {
            poll_interval,
            listen_poll_interval,
            collectors: Collectors::default(),
            settings: Settings::default(),
            close_wait_capacity: 100_000,
            scope: Scope::All,
            sources: Sources::default(),
            netns_concurrency: 2,
            max_namespaces: 128,
            open: Opener::netlink(),
        }
    }

    /// The collectors that run, as `sockdiag_collector_enabled` reports them: the
    /// listener sampler is on exactly when it has an interval.
    pub fn collectors(&self) -> Collectors {
        self.collectors.with(
            CollectorKind::ListenSampler,
            self.listen_poll_interval.is_some(),
        )
    }
}

/// Largest accept-queue lengths sampled since the last main poll, per namespace inode.
pub type Peaks = Arc<Mutex<FxHashMap<u64, ListenSample>>>;

/// A namespace other than ours that the last main poll sampled: the listener sampler
/// visits the same ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: u64,
    pub enter: PathBuf,
}

/// The other namespaces of the last main poll, for the listener sampler.
pub type Targets = Arc<Mutex<Vec<Target>>>;

/// A sock_diag socket opened on first use and dropped after any failure, so that the rest
/// of an aborted dump is never read as the next dump's reply. A dump interrupted by
/// NLM_F_DUMP_INTR (the socket tables changed under it) is run once more, whole, from a
/// fresh socket: the interrupted attempt's figures are dropped with it. Today's kernels
/// do not set the flag on sock_diag dumps (only rtnetlink, genetlink and nf_tables check
/// their dumps' consistency), so this guards later ones.
#[derive(Debug, Default)]
pub struct Reopening(Option<SockDiag>);

impl Reopening {
    pub fn with<T>(
        &mut self,
        opener: &Opener,
        dump_error: fn(SockDiagError) -> PollError,
        mut work: impl FnMut(&mut SockDiag) -> Result<T, SockDiagError>,
    ) -> Result<T, PollError> {
        let mut retried = false;
        loop {
            let mut open = match self.0.take() {
                Some(open) => open,
                None => opener.open().map_err(PollError::Open)?,
            };
            match work(&mut open) {
                Ok(value) => {
                    self.0 = Some(open);
                    return Ok(value);
                }
                Err(error) if error.is_interrupted() && !retried => retried = true,
                Err(error) => return Err(dump_error(error)),
            }
        }
    }
}

/// The nice value polls run at: below the HTTP workers (nice 0), so that a scrape
/// preempts a long poll on a busy CPU instead of queueing behind it.
pub const POLL_NICE: i32 = 10;

/// The poll thread's priority could not be lowered (a seccomp filter without
/// setpriority, such as systemd's `SystemCallFilter=~@resources`): polls then compete
/// with scrapes for the CPU at the same priority.
#[derive(Debug, thiserror::Error)]
#[error("cannot lower the poll thread's priority to nice {nice}: {source}")]
pub struct PriorityError {
    pub nice: i32,
    #[source]
    pub source: rustix::io::Errno,
}

/// Sets the calling thread's nice value to [`POLL_NICE`] (on Linux, `setpriority` with
/// `PRIO_PROCESS` and pid 0 names the calling thread only). Threads it spawns afterwards
/// inherit the value, so the namespace workers of a poll need no call of their own. The
/// daemon calls this once, first thing in each of its poll threads, and reports a failure.
/// A thread already at [`POLL_NICE`] or lower priority (the exporter started under `nice`)
/// is left as it is: raising it would need a privilege and is not the point.
pub fn lower_priority() -> Result<(), PriorityError> {
    let failed = |source| PriorityError {
        nice: POLL_NICE,
        source,
    };
    if rustix::process::getpriority_process(None).map_err(failed)? >= POLL_NICE {
        return Ok(());
    }
    rustix::process::setpriority_process(None, POLL_NICE).map_err(failed)
}
