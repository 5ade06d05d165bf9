//! The OS threads polls run on: one per loop (the main poll, the listener sampler), each
//! at nice [`POLL_NICE`], and never a thread of the async runtime or of its blocking pool.
//!
//! The runtime's two workers answer scrapes. With polls in tokio's blocking pool, a poll
//! could land on the same pool the runtime grows for other blocking work, and nothing
//! but that one `setpriority` call kept it below the workers. A dedicated thread is
//! lowered once, when it starts, and every thread a poll spawns (the namespace workers)
//! inherits its nice value. A failure to lower it (a seccomp filter without setpriority)
//! is reported to the caller once: the daemon logs it and exports it
//! (`sockdiag_poll_priority_lowered`), since it is what makes scrapes wait.
//!
//! Kernel interface: `setpriority(PRIO_PROCESS, 0, nice)` on the new thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;

use super::{lower_priority, LoopError, PollError, PriorityError, POLL_NICE};

/// Work for a poll thread: it runs the closure, which sends its own result back.
type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ThreadLabel {
    thread: &'static str,
}

/// Whether each poll thread runs at lowered priority: live, in the server's registry.
#[derive(Debug, Clone, Default)]
pub struct PollThreadMetrics {
    lowered: Family<ThreadLabel, Gauge>,
}

impl PollThreadMetrics {
    pub fn register(registry: &mut Registry) -> PollThreadMetrics {
        let metrics = PollThreadMetrics::default();
        registry.register(
            "sockdiag_poll_priority_lowered",
            "1 when the poll thread (thread=\"poll\", \"listen_sampler\") runs at nice 10, below the HTTP workers; 0 when setpriority was refused (a seccomp filter such as systemd's SystemCallFilter=~@resources), so polls compete with scrapes for the CPU",
            // prometheus-client ends the help with a period of its own.
            metrics.lowered.clone(),
        );
        metrics
    }

    /// Records how lowering `thread`'s priority went.
    pub fn record(&self, thread: &'static str, outcome: Option<&PriorityError>) {
        self.lowered
            .get_or_create(&ThreadLabel { thread })
            .set(i64::from(outcome.is_none()));
    }
}

/// Why a poll thread could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PollThreadError {
    #[error("cannot start the poll thread {name}: {source}")]
    Spawn {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// A dedicated thread at nice [`POLL_NICE`] that runs one loop's polls one at a time.
/// It ends when this handle is dropped (its job queue closes).
#[derive(Debug)]
pub struct PollThread {
    name: &'static str,
    jobs: mpsc::Sender<Job>,
}

impl PollThread {
    /// Starts the thread `name` and lowers its priority; returns the handle and the
    /// failure to lower it, if any (the thread runs polls either way).
    pub fn spawn(
        name: &'static str,
    ) -> Result<(PollThread, Option<PriorityError>), PollThreadError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (niced, lowered) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // The receiver may be gone if the spawner gave up; nothing to report then.
                let _ = niced.send(lower_priority().err());
                run_jobs(&queue);
            })
            .map_err(|source| PollThreadError::Spawn { name, source })?;
        // The thread sends before anything else; a thread that died before sending
        // (it cannot, short of an abort) is reported as not lowered.
        let priority = match lowered.recv() {
            Ok(priority) => priority,
            Err(mpsc::RecvError) => Some(PriorityError {
                nice: POLL_NICE,
                source: rustix::io::Errno::SRCH,
            }),
        };
        Ok((PollThread { name, jobs }, priority))
    }

    /// Runs `work` on `state` on this thread. The state goes to the thread and comes
    /// back with the result; if `work` panics, `state` is left empty and the next call
    /// starts from `fresh()`, and the thread goes on serving.
    pub async fn run<S: Send + 'static, T: Send + 'static>(
        &self,
        state: &mut Option<S>,
        fresh: impl FnOnce() -> S,
        work: fn(&mut S) -> Result<T, PollError>,
    ) -> Result<T, LoopError> {
        let mut owned = state.take().unwrap_or_else(fresh);
        let (reply, outcome) = oneshot::channel();
        let job: Job = Box::new(move || {
            let ran = catch_unwind(AssertUnwindSafe(|| work(&mut owned)));
            // A dropped receiver means the loop stopped waiting (shutdown).
            let _ = reply.send(ran.map(|result| (owned, result)).map_err(panic_text));
        });
        // The send fails only when the thread's receiver is gone (the thread ended); the
        // error holds nothing but the job handed back.
        if let Err(mpsc::SendError(_job)) = self.jobs.send(job) {
            return Err(LoopError::Task {
                thread: self.name,
                reason: "the thread has exited".into(),
            });
        }
        match outcome.await {
            Ok(Ok((owned, result))) => {
                *state = Some(owned);
                Ok(result?)
            }
            Ok(Err(reason)) => Err(LoopError::Task {
                thread: self.name,
                reason,
            }),
            Err(oneshot::error::RecvError { .. }) => Err(LoopError::Task {
                thread: self.name,
                reason: "the thread dropped the poll".into(),
            }),
        }
    }
}

/// The thread's loop: one job at a time, until every sender is gone.
fn run_jobs(queue: &mpsc::Receiver<Job>) {
    loop {
        match queue.recv() {
            Ok(job) => job(),
            // The handle was dropped: the loop that owned it has ended.
            Err(mpsc::RecvError) => return,
        }
    }
}

/// The message of a panic payload (`panic!` with a literal or a formatted string).
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => format!("panicked: {text}"),
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(text) => format!("panicked: {text}"),
            Err(_) => "panicked".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_nice() -> i32 {
        rustix::process::getpriority_process(None).expect("getpriority")
    }

    fn nice_of_this_thread(state: &mut i32) -> Result<i32, PollError> {
        *state += 1;
        Ok(read_nice())
    }

    fn boom(_: &mut i32) -> Result<i32, PollError> {
        panic!("poll exploded")
    }

    #[tokio::test]
    async fn polls_run_niced_on_their_own_thread_and_keep_their_state() {
        let ours = read_nice();
        // Under `nice -n 15 cargo test` the thread stays at 15: it is never raised.
        let expected = ours.max(POLL_NICE);
        let (thread, priority) = PollThread::spawn("test-poll").unwrap();
        // Lowering one's own priority needs no privilege: nothing here may refuse it, so
        // a failure is a real one.
        assert!(priority.is_none(), "{priority:?}");
        let mut state = None;
        let nice = thread.run(&mut state, || 0, nice_of_this_thread).await;
        assert_eq!(nice.unwrap(), expected);
        assert_eq!(state, Some(1));
        let again = thread.run(&mut state, || 0, nice_of_this_thread).await;
        assert_eq!(again.unwrap(), expected);
        assert_eq!(state, Some(2), "the state came back and went in again");
        assert_eq!(read_nice(), ours, "the test's own thread was not lowered");
    }

    #[test]
    fn a_refused_priority_is_exported_per_thread() {
        let mut registry = Registry::default();
        let metrics = PollThreadMetrics::register(&mut registry);
        metrics.record("poll", None);
        let refused = PriorityError {
            nice: POLL_NICE,
            source: rustix::io::Errno::PERM,
        };
        metrics.record("listen_sampler", Some(&refused));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        // A family's series come in hash order.
        let mut samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        samples.sort_unstable();
        assert_eq!(
            samples,
            [
                "sockdiag_poll_priority_lowered{thread=\"listen_sampler\"} 0",
                "sockdiag_poll_priority_lowered{thread=\"poll\"} 1",
            ]
        );
        assert_eq!(
            refused.to_string(),
            "cannot lower the poll thread's priority to nice 10: Operation not permitted (os error 1)"
        );
    }

    #[tokio::test]
    async fn a_panicking_poll_loses_its_state_and_the_thread_serves_the_next() {
        let (thread, _) = PollThread::spawn("test-poll").unwrap();
        let mut state = Some(41);
        let error = thread.run(&mut state, || 0, boom).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "poll thread test-poll failed: panicked: poll exploded"
        );
        assert_eq!(error.stage(), crate::snapshot::Stage::Task);
        assert_eq!(state, None);
        let next = thread.run(&mut state, || 100, nice_of_this_thread).await;
        assert_eq!(next.unwrap(), read_nice().max(POLL_NICE));
        assert_eq!(state, Some(101), "the next poll started from fresh()");
    }
}
