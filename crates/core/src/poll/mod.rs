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

pub use collector::{Collector, PollNotes, Scope};
pub use listen::ListenSampler;

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

/// Runs the calling (blocking pool) thread at nice 10, so that scrapes preempt a long poll
/// on a busy CPU instead of queueing behind it (scrape p99 at 100k sockets and 32
/// concurrent scrapers: 26 ms -> 5 ms, docs/benchmarks.md). Only polls run on the blocking
/// pool. Best effort: a seccomp filter without setpriority (systemd's @resources) makes
/// it fail, and the poll runs at normal priority.
pub fn lower_priority() {
    if let Err(error) = rustix::process::setpriority_process(None, 10) {
        tracing::debug!(%error, "cannot lower the poll thread's priority");
    }
}
