//! The fast listener sampler: a LISTEN-only dump of both families in one request (the
//! kernel walks only the listening hash, once, so it costs the same at 1M sockets as at 10)
//! whose accept-queue lengths are kept, the largest per listener, until the next main poll
//! reports them as `sockdiag_tcp_listen_queue_peak`. Bursts shorter than a poll interval stay visible. UNIX
//! listeners are sampled in the same pass (unless the unix collector is off), for
//! `sockdiag_unix_listen_queue_peak` (that dump walks the whole UNIX socket table: its cost
//! grows with the number of UNIX sockets, docs/benchmarks.md). The daemon runs
//! [`ListenSampler::sample`] every `listen_poll_interval`.

use std::path::{Path, PathBuf};

use super::{Peaks, PollError, Reopening, Target, Targets};
use crate::fold::listen::{self, ListenSample};
use crate::source::inet_diag::StateFilter;
use crate::source::netns::{EnterError, HomeNetns};
use crate::source::sock_diag::{Opener, SockDiag, SockDiagError};
use crate::source::unix_diag::UnixFilter;

/// The fast listener sampler's state.
#[derive(Debug)]
pub struct ListenSampler {
    sock_diag: Reopening,
    open: Opener,
    peaks: Peaks,
    targets: Targets,
    proc_root: PathBuf,
    /// Our own namespace's inode, read once: the pool thread never leaves it.
    own: Option<u64>,
    /// UNIX listeners are sampled too (the unix collector is on).
    unix: bool,
}

impl ListenSampler {
    /// A sampler of our own namespace and of the `targets` the last main poll sampled,
    /// folding into `peaks`.
    pub fn new(peaks: Peaks, targets: Targets, proc_root: PathBuf) -> ListenSampler {
        ListenSampler {
            sock_diag: Reopening::default(),
            open: Opener::netlink(),
            peaks,
            targets,
            proc_root,
            own: None,
            unix: true,
        }
    }

    /// Samples UNIX listeners too, or not (the unix collector off: no UNIX dump).
    pub fn with_unix(mut self, unix: bool) -> ListenSampler {
        self.unix = unix;
        self
    }

    /// One LISTEN-only sample of our own namespace and of every other one the last main
    /// poll sampled, folded into the peaks. Blocking. A namespace that vanished is skipped;
    /// another one's failure is reported after the rest were sampled.
    pub fn sample(&mut self) -> Result<(), PollError> {
        let own = match self.own {
            Some(own) => own,
            None => {
                let home = HomeNetns::open(&self.proc_root).map_err(PollError::Namespace)?;
                *self.own.insert(home.inode())
            }
        };
        let mut samples = vec![(own, ListenSample::default())];
        self.sock_diag
            .with(&self.open, PollError::ListenDump, |open| {
                listen_dump(open, &mut samples[0].1, self.unix)
            })?;
        let targets = self
            .targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut failure = None;
        if !targets.is_empty() {
            // A thread of its own, which ends with the sample: the pool thread never
            // enters another namespace.
            let others = std::thread::scope(|scope| {
                scope
                    .spawn(|| sample_others(&self.proc_root, &targets, self.unix))
                    .join()
            });
            match others {
                Ok((others, error)) => {
                    samples.extend(others);
                    failure = error;
                }
                Err(_) => failure = Some(PollError::SamplerPanicked),
            }
        }
        let mut peaks = self.peaks.lock().unwrap_or_else(|p| p.into_inner());
        for (netns, sample) in samples {
            peaks.entry(netns).or_default().merge_max(sample);
        }
        failure.map_or(Ok(()), Err)
    }
}

fn listen_dump(
    open: &mut SockDiag,
    sample: &mut ListenSample,
    unix: bool,
) -> Result<(), SockDiagError> {
    // Both families in one walk of the kernel's listening table.
    open.dump_both_families(StateFilter::Listen, &mut |record| {
        listen::add_to_sample(sample, record)
    })?;
    if !unix {
        return Ok(());
    }
    open.dump_unix(UnixFilter::Listen, &mut |record| {
        listen::add_unix_to_sample(sample, record)
    })
}

/// Samples each target from this thread, entering it; the first failure other than a
/// vanished namespace is returned beside the samples.
fn sample_others(
    proc_root: &Path,
    targets: &[Target],
    unix: bool,
) -> (Vec<(u64, ListenSample)>, Option<PollError>) {
    // This thread inherits the sampler thread's nice value (`super::lower_priority`).
    let home = match HomeNetns::open(proc_root) {
        Ok(home) => home,
        Err(error) => return (Vec::new(), Some(PollError::Namespace(error))),
    };
    let mut samples = Vec::with_capacity(targets.len());
    let mut failure = None;
    for target in targets {
        let mut sample = ListenSample::default();
        let ran = home.run_in(&target.enter, target.id, || {
            let mut open = SockDiag::open()?;
            listen_dump(&mut open, &mut sample, unix)
        });
        match ran {
            Ok(Ok(())) => samples.push((target.id, sample)),
            Err(EnterError::Vanished { .. }) => {}
            Err(error) => {
                failure.get_or_insert(PollError::Namespace(error));
            }
            Ok(Err(error)) => {
                failure.get_or_insert(PollError::ListenDump(error));
            }
        }
    }
    (samples, failure)
}
