//! The poll loops.
//!
//! The main poll, every `poll_interval`, in a blocking task: dump the LISTEN sockets
//! (which makes the set of listening ports known), then every other socket, folding each
//! record into an [`Aggregator`] as it is decoded; look up owners in the [`ProcIndex`],
//! scanning /proc only for inodes it has not seen; publish the [`Snapshot`].
//!
//! The listener sampler, every `listen_poll_interval`: a LISTEN-only dump (the kernel
//! walks only the listening hash, so it costs the same at 1M sockets as at 10) that keeps
//! the largest accept-queue length per listener until the next main poll reports it as
//! `sockdiag_tcp_listen_queue_peak`. Bursts shorter than a poll interval stay visible.
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
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::aggregate::{self, Aggregator, ListenSample, Settings};
use crate::close_wait::CloseWaitTracker;
use crate::proc_index::{ProcIndex, ProcIndexError, ScanReport};
use crate::snapshot::{KernelStats, Published, Snapshot, Stage};
use crate::sock_diag::{Family, SockDiag, SockDiagError, StateFilter, TcpState};
use crate::{proc_net_snmp, proc_sys_net};

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

/// Side results of a poll that do not fail it.
#[derive(Debug, Default)]
pub struct PollNotes {
    pub scan: ScanReport,
    pub proc_index_error: Option<ProcIndexError>,
    /// Kernel counter or sysctl files that could not be read (the values are missing).
    pub kernel_errors: Vec<String>,
}

/// The state a main poll carries from one poll to the next.
#[derive(Debug)]
pub struct Collector {
    sock_diag: Reopening,
    index: ProcIndex,
    close_wait: CloseWaitTracker,
    settings: Settings,
    peaks: Peaks,
}

impl Collector {
    pub fn new(config: &PollerConfig, peaks: Peaks) -> Collector {
        Collector {
            sock_diag: Reopening::default(),
            index: ProcIndex::new(&config.proc_root),
            close_wait: CloseWaitTracker::new(config.close_wait_capacity),
            settings: config.settings.clone(),
            peaks,
        }
    }

    /// One complete poll. Blocking.
    pub fn poll(&mut self) -> Result<(Snapshot, PollNotes), PollError> {
        let Collector {
            sock_diag,
            index,
            close_wait,
            settings,
            peaks,
        } = self;
        sock_diag.with(PollError::Dump, |open| {
            poll_once(open, index, close_wait, settings, peaks)
        })
    }
}

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
                    aggregate::add_to_sample(&mut sample, record)
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

/// One complete poll on an open socket: listeners, then every other socket, then owners.
pub fn poll_once(
    sock_diag: &mut SockDiag,
    index: &mut ProcIndex,
    close_wait: &mut CloseWaitTracker,
    settings: &Settings,
    peaks: &Mutex<ListenSample>,
) -> Result<(Snapshot, PollNotes), SockDiagError> {
    let started = Instant::now();
    let mut notes = PollNotes::default();
    let kernel = read_kernel(&mut notes.kernel_errors);
    let port_range = kernel
        .sysctls
        .ip_local_port_range
        .map(|range| (range.start(), range.end()));
    index.begin_poll();
    if index.is_cold() {
        // Scan before the first dump, so that the first poll finds owners in the cache
        // instead of holding every socket as pending.
        match index.warm() {
            Ok(report) => notes.scan = report,
            Err(error) => notes.proc_index_error = Some(error),
        }
    }
    let mut aggregator = Aggregator::new(settings, port_range);
    for family in Family::ALL {
        sock_diag.dump(family, StateFilter::Listen, &mut |record| {
            aggregator.add_listener(record, index)
        })?;
    }
    close_wait.begin_poll(started);
    for family in Family::ALL {
        sock_diag.dump(family, StateFilter::NotListen, &mut |record| {
            let age = if record.state == TcpState::CloseWait {
                close_wait.observe(record.cookie)
            } else {
                None
            };
            aggregator.add(record, age, index)
        })?;
    }
    close_wait.end_poll();
    index.sweep();
    let missing = aggregator.missing_inodes();
    if notes.proc_index_error.is_none() {
        match index.resolve(&missing) {
            Ok(report) => {
                notes.scan.scans += report.scans;
                notes.scan.readlinks += report.readlinks;
                notes.scan.permission_denied =
                    notes.scan.permission_denied.max(report.permission_denied);
                notes.scan.unresolved = report.unresolved;
                notes.scan.other_netns = report.other_netns;
            }
            Err(error) => notes.proc_index_error = Some(error),
        }
    }
    let peaks = std::mem::take(
        &mut *peaks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    );
    let mut snapshot = aggregator.finish(
        index,
        settings,
        &peaks,
        started.elapsed(),
        SystemTime::now(),
    );
    snapshot.exhaustion.close_wait_untracked = close_wait.untracked();
    snapshot.kernel = kernel;
    Ok((snapshot, notes))
}

/// Reads the namespace's TCP counters and sysctls. These files are read from the calling
/// thread, which is what binds them to its network namespace. A file that cannot be read
/// leaves its values missing (and counted) instead of failing the poll.
fn read_kernel(errors: &mut Vec<String>) -> KernelStats {
    let net = std::path::Path::new(proc_net_snmp::DEFAULT_ROOT);
    let netstat = proc_net_snmp::read_netstat(net).unwrap_or_else(|error| {
        errors.push(error.to_string());
        Default::default()
    });
    let snmp = proc_net_snmp::read_snmp(net).unwrap_or_else(|error| {
        errors.push(error.to_string());
        Default::default()
    });
    let sysctls = proc_sys_net::read(std::path::Path::new(proc_sys_net::DEFAULT_ROOT))
        .unwrap_or_else(|error| {
            errors.push(error.to_string());
            Default::default()
        });
    let counters = proc_net_snmp::TcpCounters::from_parts(netstat, snmp);
    let missing = counters.missing_fields();
    KernelStats {
        missing_netstat: missing.iter().filter(|f| f.starts_with("TcpExt.")).count() as u64,
        missing_snmp: missing.iter().filter(|f| f.starts_with("Tcp.")).count() as u64,
        missing_sysctl: sysctls.missing_count() as u64,
        counters,
        sysctls,
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
            snapshot.sockets_scanned,
            snapshot.poll_duration,
            snapshot.breakdown.unattributed,
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
