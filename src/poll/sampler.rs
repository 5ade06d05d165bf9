//! The listener sampler's loop: every `listen_poll_interval`, one
//! [`ListenSampler::sample`] on its own [`PollThread`] (nice 10); a failure is counted by
//! stage and logged when it changes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::{count_error, Edge, ListenSampler, PollThread};
use crate::snapshot::{Published, Stage};

/// Samples LISTEN queues every `interval` until `shutdown` turns true, with the sampler
/// `fresh` makes (again after a sample panicked).
pub async fn run_listen_sampler(
    interval: Duration,
    publish: watch::Sender<Arc<Published>>,
    fresh: impl Fn() -> ListenSampler,
    thread: PollThread,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sampler = None;
    let mut failure = Edge::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}

            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let result = thread
            .run(&mut sampler, &fresh, ListenSampler::sample)
            .await;
        match result {
            Ok(()) => {
                if failure.changed(None) {
                    tracing::info!("listener sampling recovered");
                }
            }
            Err(error) => {
                if failure.changed(Some(error.to_string())) {
                    tracing::warn!(stage = Stage::ListenDump.label(), %error, "listener sample failed");
                }
                count_error(&publish, Stage::ListenDump);
            }
        }
    }
}
