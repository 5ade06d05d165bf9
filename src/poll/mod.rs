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

use crate::fold::listen::ListenSample;
use crate::fold::Settings;
use crate::snapshot::{Published, Stage};
use crate::source::inet_diag::{SockDiag, SockDiagError};

pub mod discover;
pub mod listen;
pub mod namespace;
mod owners;

pub use listen::run_listen_sampler;
pub use namespace::{poll_once, Collector, PollNotes};

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Open(SockDiagError),
    #[error(transparent)]
    Dump(SockDiagError),
    #[error("listener sample failed: {0}")]
    ListenDump(SockDiagError),
    #[error("poll task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl PollError {
    pub fn stage(&self) -> Stage {
        match self {
            PollError::Open(_) => Stage::Open,
            PollError::Dump(_) => Stage::Dump,
            PollError::ListenDump(_) => Stage::ListenDump,
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
    /// CLOSE_WAIT sockets whose age is tracked at most.
    pub close_wait_capacity: usize,
    pub proc_root: PathBuf,
}

/// A new publication channel, empty (not ready) until the first poll lands.
pub fn channel() -> (
    watch::Sender<Arc<Published>>,
    watch::Receiver<Arc<Published>>,
) {
    watch::channel(Arc::new(Published::default()))
}

/// Largest accept-queue lengths sampled since the last main poll.
pub type Peaks = Arc<Mutex<ListenSample>>;

/// A sock_diag socket opened on first use and dropped after any failure, so that the rest
/// of an aborted dump is never read as the next dump's reply.
#[derive(Debug, Default)]
struct Reopening(Option<SockDiag>);

impl Reopening {
    fn with<T>(
        &mut self,
        dump_error: fn(SockDiagError) -> PollError,
        work: impl FnOnce(&mut SockDiag) -> Result<T, SockDiagError>,
    ) -> Result<T, PollError> {
        let mut open = match self.0.take() {
            Some(open) => open,
            None => SockDiag::open().map_err(PollError::Open)?,
        };
        let result = work(&mut open).map_err(dump_error);
        if result.is_ok() {
            self.0 = Some(open);
        }
        result
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
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(config.poll_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut collector = Some(Collector::new(&config, Arc::clone(&peaks)));
    let mut failure = Edge::default();
    let mut index_failure = Edge::default();
    let mut kernel_failure = Edge::default();
    let mut denied = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let result = in_blocking_pool(
            &mut collector,
            || Collector::new(&config, Arc::clone(&peaks)),
            Collector::poll,
        )
        .await;
        let (snapshot, notes) = match result {
            Ok(ok) => ok,
            Err(error) => {
                if failure.changed(Some(error.to_string())) {
                    tracing::warn!(stage = error.stage().label(), %error, "poll failed");
                }
                count_error(&publish, error.stage());
                continue;
            }
        };
        if failure.changed(None) {
            tracing::info!("poll recovered");
        }
        if let Some(error) = &notes.proc_index_error {
            count_error(&publish, Stage::ProcIndex);
            if index_failure.changed(Some(error.to_string())) {
                tracing::warn!(%error, "process attribution failed; sockets are labelled process=\"unknown\"");
            }
        } else if index_failure.changed(None) {
            tracing::info!("process attribution recovered");
        }
        let kernel_errors =
            (!notes.kernel_errors.is_empty()).then(|| notes.kernel_errors.join("; "));
        if kernel_failure.changed(kernel_errors.clone()) {
            match kernel_errors {
                Some(errors) => {
                    tracing::warn!(%errors, "kernel counters or sysctls unreadable; their series are missing")
                }
                None => tracing::info!("kernel counters and sysctls readable again"),
            }
        }
        if notes.scan.permission_denied > 0 && !denied {
            denied = true;
            tracing::warn!(
                processes = notes.scan.permission_denied,
                "cannot read the fds of some processes; their sockets are labelled process=\"unknown\" \
                 (reading them needs CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE)"
            );
        }
        let (sockets, duration, unattributed) = (
            snapshot.tcp.sockets_scanned,
            snapshot.poll_duration,
            snapshot.tcp.breakdown.unattributed,
        );
        let snapshot = Arc::new(snapshot);
        publish.send_modify(|published| {
            let mut next = (**published).clone();
            next.latest = Some(snapshot);
            *published = Arc::new(next);
        });
        // Logged after publishing: "poll done" means scrapes now see this poll.
        tracing::debug!(
            sockets,
            duration_ms = duration.as_secs_f64() * 1e3,
            scans = notes.scan.scans,
            readlinks = notes.scan.readlinks,
            other_netns = notes.scan.other_netns,
            unattributed,
            "poll done"
        );
    }
}
