//! The listener sampler's loop: every `listen_poll_interval`, one
//! [`ListenSampler::sample`] on the blocking pool; a failure is counted by stage and
//! logged when it changes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::{count_error, in_blocking_pool, Edge, ListenSampler, Peaks, Targets};
use crate::snapshot::{Published, Stage};

/// Samples LISTEN queues every `interval` into `peaks` until `shutdown` turns true; UNIX
/// listeners too when `unix` (the unix collector is on).
pub async fn run_listen_sampler(
    interval: Duration,
    unix: bool,
    publish: watch::Sender<Arc<Published>>,
    peaks: Peaks,
    targets: Targets,
    proc_root: PathBuf,
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
        let result = in_blocking_pool(
            &mut sampler,
            || {
                ListenSampler::new(Arc::clone(&peaks), Arc::clone(&targets), proc_root.clone())
                    .with_unix(unix)
            },
            ListenSampler::sample,
        )
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
