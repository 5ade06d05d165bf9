//! The poll loop: on a tokio interval, dump every TCP socket in a blocking task, fold the
//! records into a [`Snapshot`] and publish it on a watch channel.
//!
//! Missed ticks are delayed (`MissedTickBehavior::Delay`): a poll that overruns its
//! interval is followed by the next one a full interval after it ends, never by a burst of
//! catch-up polls that would hammer the kernel exactly when it is slowest.
//!
//! A failed poll keeps the previous snapshot, counts the failure by stage and logs a
//! warning only when the failure differs from the previous poll's (state changes, not
//! every poll). The netlink socket is dropped after any failure and reopened at the next
//! poll, so the leftovers of an aborted dump can never be read as the next one.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::aggregate::Aggregator;
use crate::snapshot::{Published, Snapshot, Stage};
use crate::sock_diag::{Family, SockDiag, SockDiagError, StateFilter};

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Open(SockDiagError),
    #[error(transparent)]
    Dump(SockDiagError),
    #[error("poll task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl PollError {
    pub fn stage(&self) -> Stage {
        match self {
            PollError::Open(_) => Stage::Open,
            PollError::Dump(_) => Stage::Dump,
            PollError::Task(_) => Stage::Task,
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

/// One complete poll on an open socket: both families, every state.
pub fn poll_once(sock_diag: &mut SockDiag) -> Result<Snapshot, SockDiagError> {
    let started = Instant::now();
    let mut aggregator = Aggregator::new();
    for family in Family::ALL {
        sock_diag.dump(family, StateFilter::All, &mut |record| {
            aggregator.add(record)
        })?;
    }
    Ok(aggregator.finish(started.elapsed(), SystemTime::now()))
}

/// Runs polls every `interval` until `shutdown` turns true.
pub async fn run(
    interval: Duration,
    publish: watch::Sender<Arc<Published>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut socket: Option<SockDiag> = None;
    let mut last_failure: Option<String> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let outcome = tokio::task::spawn_blocking(move || {
            let mut open = match socket {
                Some(open) => open,
                None => match SockDiag::open() {
                    Ok(open) => open,
                    Err(error) => return (None, Err(PollError::Open(error))),
                },
            };
            match poll_once(&mut open) {
                Ok(snapshot) => (Some(open), Ok(snapshot)),
                Err(error) => (None, Err(PollError::Dump(error))),
            }
        })
        .await;
        let result = match outcome {
            Ok((kept, result)) => {
                socket = kept;
                result
            }
            Err(join) => {
                socket = None;
                Err(PollError::Task(join))
            }
        };
        match result {
            Ok(snapshot) => {
                if last_failure.take().is_some() {
                    tracing::info!("poll recovered");
                }
                tracing::debug!(
                    sockets = snapshot.sockets_scanned,
                    duration_ms = snapshot.poll_duration.as_secs_f64() * 1e3,
                    "poll done"
                );
                let snapshot = Arc::new(snapshot);
                publish.send_modify(|published| {
                    let mut next = (**published).clone();
                    next.latest = Some(snapshot);
                    *published = Arc::new(next);
                });
            }
            Err(error) => {
                let message = error.to_string();
                if last_failure.as_deref() != Some(message.as_str()) {
                    tracing::warn!(stage = error.stage().label(), error = %message, "poll failed");
                    last_failure = Some(message);
                }
                publish.send_modify(|published| {
                    let mut next = (**published).clone();
                    next.errors_total[error.stage().index()] += 1;
                    *published = Arc::new(next);
                });
            }
        }
    }
}
