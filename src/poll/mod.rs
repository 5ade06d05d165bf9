//! The poll loops, and what they publish.
//!
//! The main poll, every `poll_interval`, runs a [`Collector`] (the synchronous recipe of
//! `sockdiag_core::poll`) on a [`PollThread`] of its own at nice 10, never on the async
//! runtime's workers, which answer scrapes; then publishes its [`Snapshot`] here.
//! The listener sampler ([`sampler`]) runs beside it every `listen_poll_interval`.
//!
//! Missed ticks are delayed (`MissedTickBehavior::Delay`): a poll that overruns its
//! interval is followed by the next one a full interval after it ends, never by a burst
//! of catch-up polls that would hammer the kernel exactly when it is slowest.
//!
//! A failed poll keeps the previous snapshot, counts the failure by stage and logs a
//! warning only when the failure differs from the previous poll's.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

pub use sockdiag_core::poll::*;

use crate::snapshot::{Published, Snapshot, Stage};

mod overrun;
mod sampler;
#[cfg(test)]
mod tests;
mod thread;

pub use sampler::run_listen_sampler;
pub use thread::{PollThread, PollThreadError, PollThreadMetrics};

/// A poll loop's failure: the poll's own, or the thread that ran it lost it (a panic).
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error(transparent)]
    Poll(#[from] PollError),
    #[error("poll thread {thread} failed: {reason}")]
    Task {
        thread: &'static str,
        reason: String,
    },
}

impl LoopError {
    pub fn stage(&self) -> Stage {
        match self {
            LoopError::Poll(error) => error.stage(),
            LoopError::Task { .. } => Stage::Task,
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
    thread: PollThread,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(config.poll_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let fresh = || Collector::new(&config, Arc::clone(&peaks), Arc::clone(&targets));
    let mut collector = Some(fresh());
    let mut failure = Edge::default();
    let mut conditions = Conditions::default();
    let mut overrun = overrun::Overrun::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let result = thread.run(&mut collector, fresh, Collector::poll).await;
        if let Ok((snapshot, notes)) = &result {
            overrun.observe(snapshot.poll_duration, config.poll_interval, &notes.timings);
        }
        land(result, &publish, &mut failure, &mut conditions);
    }
}

/// Publishes a poll's result: a new snapshot (the previous one kept beside it for growth),
/// or, when the poll failed, the same snapshot as before with the failure counted by stage.
/// Never anything in between: a snapshot is only built from a poll that completed.
fn land(
    result: Result<(Snapshot, PollNotes), LoopError>,
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
        full_passes = notes.scan.full_passes,
        pending = notes.scan.pending,
        new_sockets = notes.scan.new_sockets,
        new_processes = notes.scan.new_processes,
        forgotten = notes.forgotten,
        names = notes.names_interned,
        spent = %notes.timings,
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
        if notes.attribution_failures > 0 {
            count_error(publish, Stage::Attribution);
        }
        self.attribution.report(
            &notes.attribution_errors,
            "containers of network namespaces not named; they keep their id (or ns-<inode>) label",
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
