//! The fast listener sampler: every `listen_poll_interval`, a LISTEN-only dump (the kernel
//! walks only the listening hash, so it costs the same at 1M sockets as at 10) whose
//! accept-queue lengths are kept, the largest per listener, until the next main poll
//! reports them as `sockdiag_tcp_listen_queue_peak`. Bursts shorter than a poll interval
//! stay visible.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::{count_error, in_blocking_pool, Edge, Peaks, PollError, Reopening};
use crate::fold::listen::{self, ListenSample};
use crate::snapshot::{Published, Stage};
use crate::source::inet_diag::{Family, StateFilter};

/// The fast listener sampler's state.
#[derive(Debug)]
struct ListenSampler {
    sock_diag: Reopening,
    peaks: Peaks,
}

impl ListenSampler {
    /// One LISTEN-only sample, folded into the peaks. Blocking.
    fn sample(&mut self) -> Result<(), PollError> {
        let mut sample = ListenSample::default();
        self.sock_diag.with(PollError::ListenDump, |open| {
            for family in Family::ALL {
                open.dump(family, StateFilter::Listen, &mut |record| {
                    listen::add_to_sample(&mut sample, record)
                })?;
            }
            Ok(())
        })?;
        let mut peaks = self
            .peaks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (key, length) in sample {
            let peak = peaks.entry(key).or_default();
            *peak = (*peak).max(length);
        }
        Ok(())
    }
}

/// Samples LISTEN queues every `interval` into `peaks` until `shutdown` turns true.
pub async fn run_listen_sampler(
    interval: Duration,
    publish: watch::Sender<Arc<Published>>,
    peaks: Peaks,
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
            || ListenSampler {
                sock_diag: Reopening::default(),
                peaks: Arc::clone(&peaks),
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
