//! The poll loops, and what they publish.
//!
//! The main poll, every `poll_interval`, in a blocking task, runs the recipe of
//! [`namespace`]: counters and sysctls, the LISTEN dump (which makes the set of listening
//! ports known), every other socket folded as it is decoded, owners from the /proc index
//! (scanning only for inodes it has not seen), then the [`Snapshot`], published here.
//! The listener sampler ([`listen`]) runs beside it every `listen_poll_interval`.
//!
//! Missed ticks are delayed (`MissedTickBehavior::Delay`): a poll that overruns its
//! interval is followed by the next one a full interval after it ends, never by a burst
//! of catch-up polls that would hammer the kernel exactly when it is slowest.
//!
//! A failed poll keeps the previous snapshot, counts the failure by stage and logs a
//! warning only when the failure differs from the previous poll's. The netlink socket is
//! dropped after any failure and reopened at the next poll, so the leftovers of an
//! aborted dump can never be read as the next one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use rustc_hash::FxHashMap;

use crate::fold::listen::ListenSample;
use crate::fold::Settings;
use crate::snapshot::{Published, Snapshot, Stage};
use crate::source::sock_diag::{Opener, SockDiag, SockDiagError};
use discover::Sources;

pub mod collector;
pub mod discover;
pub mod listen;
pub mod namespace;
mod owners;
#[cfg(test)]
mod tests;

pub use collector::{Collector, PollNotes, Scope};
pub use listen::run_listen_sampler;

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
    #[error("poll task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl PollError {
    pub fn stage(&self) -> Stage {
        match self {
            PollError::Open(_) => Stage::Open,
            PollError::Dump(_) => Stage::Dump,
            PollError::ListenDump(_) | PollError::Namespace(_) | PollError::SamplerPanicked => {
                Stage::ListenDump
            }
            PollError::Task(_) => Stage::Task,
        }
    }
}

/// What the poll loops need to know.
#[derive(Debug, Clone)]
pub struct PollerConfig {
    pub poll_interval: Duration,
    /// `None` disables the listener sampler (peak = length at the poll).
    pub listen_poll_interval: Option<Duration>,
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
    /// Defaults for everything but the intervals.
    pub fn new(poll_interval: Duration, listen_poll_interval: Option<Duration>) -> PollerConfig {
        PollerConfig {
            poll_interval,
            listen_poll_interval,
            settings: Settings::default(),
            close_wait_capacity: 100_000,
            scope: Scope::All,
            sources: Sources::default(),
            netns_concurrency: 2,
            max_namespaces: 100,
            open: Opener::netlink(),
        }
    }
}

/// A new publication channel, empty (not ready) until the first poll lands.
pub fn channel() -> (
    watch::Sender<Arc<Published>>,
    watch::Receiver<Arc<Published>>,
) {
    watch::channel(Arc::new(Published::default()))
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
struct Reopening(Option<SockDiag>);

impl Reopening {
    fn with<T>(
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

/// Runs `work` on `state` in the blocking pool, at lowered priority. The state goes into
/// the task and comes back with it; if the task dies, `state` is left empty and the next
/// call starts from `fresh()`.
async fn in_blocking_pool<S: Send + 'static, T: Send + 'static>(
    state: &mut Option<S>,
    fresh: impl FnOnce() -> S,
    work: fn(&mut S) -> Result<T, PollError>,
) -> Result<T, PollError> {
    let mut owned = state.take().unwrap_or_else(fresh);
    let outcome = tokio::task::spawn_blocking(move || {
        lower_priority();
        let result = work(&mut owned);
        (owned, result)
    })
    .await;
    match outcome {
        Ok((owned, result)) => {
            *state = Some(owned);
            result
        }
        Err(join) => Err(PollError::Task(join)),
    }
}

/// Runs the calling (blocking pool) thread at nice 10, so that scrapes preempt a long poll
/// on a busy CPU instead of queueing behind it (scrape p99 at 100k sockets and 32
/// concurrent scrapers: 26 ms -> 5 ms, docs/benchmarks.md). Only polls run on the blocking
/// pool. Best effort: a seccomp filter without setpriority (systemd's @resources) makes
/// it fail, and the poll runs at normal priority.
fn lower_priority() {
    if let Err(error) = rustix::process::setpriority_process(None, 10) {
        tracing::debug!(%error, "cannot lower the poll thread's priority");
    }
}

/// Logs changes of a condition once, not every poll.
#[derive(Debug, Default)]
struct Edge(Option<String>);

impl Edge {
    /// Returns true when `now` differs from the last state.
    fn changed(&mut self, now: Option<String>) -> bool {
        if self.0 == now {
            return false;
        }
        self.0 = now;
        true
    }

    /// Logs a list of failures when it changes: `failing` (warn) when it starts or
    /// changes, `recovered` (info) when it clears.
    fn report(&mut self, errors: &[String], failing: &str, recovered: &str) {
        let now = (!errors.is_empty()).then(|| errors.join("; "));
        if self.changed(now.clone()) {
            match now {
                Some(errors) => tracing::warn!(%errors, "{failing}"),
                None => tracing::info!("{recovered}"),
            }
        }
    }
}

fn count_error(publish: &watch::Sender<Arc<Published>>, stage: Stage) {
    publish.send_modify(|published| {
        let mut next = (**published).clone();
        next.errors_total[stage.index()] += 1;
        *published = Arc::new(next);
    });
}

/// Runs main polls every `config.poll_interval` until `shutdown` turns true.
pub async fn run(
    config: PollerConfig,
    publish: watch::Sender<Arc<Published>>,
    peaks: Peaks,
    targets: Targets,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(config.poll_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let fresh = || Collector::new(&config, Arc::clone(&peaks), Arc::clone(&targets));
    let mut collector = Some(fresh());
    let mut failure = Edge::default();
    let mut conditions = Conditions::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let result = in_blocking_pool(&mut collector, fresh, Collector::poll).await;
        land(result, &publish, &mut failure, &mut conditions);
    }
}

/// Publishes a poll's result: a new snapshot (the previous one kept beside it for growth),
/// or, when the poll failed, the same snapshot as before with the failure counted by stage.
/// Never anything in between: a snapshot is only built from a poll that completed.
fn land(
    result: Result<(Snapshot, PollNotes), PollError>,
    publish: &watch::Sender<Arc<Published>>,
    failure: &mut Edge,
    conditions: &mut Conditions,
) {
    let (snapshot, notes) = match result {
        Ok(ok) => ok,
        Err(error) => {
            if failure.changed(Some(error.to_string())) {
                tracing::warn!(stage = error.stage().label(), %error, "poll failed");
            }
            count_error(publish, error.stage());
            return;
        }
    };
    if failure.changed(None) {
        tracing::info!("poll recovered");
    }
    conditions.report(&notes, publish);
    let (sockets, duration) = (snapshot.sockets_scanned, snapshot.poll_duration);
    let snapshot = Arc::new(snapshot);
    publish.send_modify(|published| {
        let mut next = (**published).clone();
        next.previous = next.latest.replace(snapshot);
        *published = Arc::new(next);
    });
    // Logged after publishing: "poll done" means scrapes now see this poll.
    tracing::debug!(
        sockets,
        namespaces = notes.namespaces,
        duration_ms = duration.as_secs_f64() * 1e3,
        scans = notes.scan.scans,
        readlinks = notes.scan.readlinks,
        forgotten = notes.forgotten,
        "poll done"
    );
}

/// The conditions a poll can publish with, each logged when it changes, not every poll.
#[derive(Debug, Default)]
struct Conditions {
    index: Edge,
    kernel: Edge,
    privileges: Edge,
    discovery: Edge,
    netns: Edge,
    attribution: Edge,
    denied: bool,
}

impl Conditions {
    fn report(&mut self, notes: &PollNotes, publish: &watch::Sender<Arc<Published>>) {
        if let Some(error) = &notes.proc_index_error {
            count_error(publish, Stage::ProcIndex);
            if self.index.changed(Some(error.to_string())) {
                tracing::warn!(%error, "process attribution failed; sockets are labelled process=\"unknown\"");
            }
        } else if self.index.changed(None) {
            tracing::info!("process attribution recovered");
        }
        if let Some(error) = &notes.discovery_error {
            count_error(publish, Stage::Discovery);
            if self.discovery.changed(Some(error.to_string())) {
                tracing::warn!(%error, "network namespace discovery failed; only our own namespace is sampled");
            }
        } else if self.discovery.changed(None) {
            tracing::info!("network namespace discovery recovered");
        }
        let missing = notes.missing_privileges.map(|missing| missing.to_string());
        if self.privileges.changed(missing.clone()) {
            if let Some(missing) = missing {
                tracing::warn!(reason = %missing, "only our own network namespace is sampled; see sockdiag_netns_skipped");
            }
        }
        self.netns.report(
            &notes.netns_errors,
            "network namespaces dropped from the poll",
            "every network namespace sampled again",
        );
        self.attribution.report(
            &notes.attribution_errors,
            "containers of network namespaces unknown; they keep their ns-<inode> label",
            "containers of every network namespace known again",
        );
        self.kernel.report(
            &notes.kernel_errors,
            "kernel counters or sysctls unreadable; their series are missing",
            "kernel counters and sysctls readable again",
        );
        if notes.scan.permission_denied > 0 && !self.denied {
            self.denied = true;
            tracing::warn!(
                processes = notes.scan.permission_denied,
                "cannot read the fds of some processes; their sockets are labelled process=\"unknown\" \
                 (reading them needs CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE)"
            );
        }
    }
}
