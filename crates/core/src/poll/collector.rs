//! One main poll over every network namespace, in order:
//! 1. discovery: which namespaces, their labels and infos ([`super::discover`]);
//! 2. owners: a new generation of the host-wide /proc index ([`super::owners::begin`]);
//! 3. the recipe of [`super::namespace`] in each namespace: ours on the calling thread,
//!    the others on at most `netns_concurrency` threads that enter them one after the
//!    other and end with the poll (so a thread that entered a namespace never serves
//!    anything else, and no namespace fd outlives the poll); each recipe reads the
//!    namespace's sysctls only when [`super::sysctls::SysctlCache`] has none fresh;
//! 4. owners: one /proc scan for every namespace's unknown inodes;
//! 5. the caps of each namespace, then the namespace cap: the largest keep their label,
//!    the rest fold into `netns="other"`; the snapshot is built once.
//!
//! Every namespace's recipe runs through [`Reopening`], which runs it once more from a
//! fresh socket when the kernel interrupted the dump (NLM_F_DUMP_INTR; seeing a
//! CLOSE_WAIT cookie or an owner twice in one poll changes nothing).
//!
//! A failure in our own namespace fails the poll (the previous snapshot stays). A
//! namespace that vanished before or during its dump is dropped and counted; any other
//! failure in another namespace drops that namespace, is counted and reported in the
//! notes, and never fails the poll.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use super::discover::{self, DiscoverError, Namespace, Sources};
use super::namespace::{self, NetnsDump};
use super::sysctls::SysctlCache;
use super::{owners, Peaks, PollError, PollTimings, PollerConfig, Reopening, Target, Targets};
use crate::collectors::Collectors;
use crate::fold::anomaly;
use crate::fold::close_wait::CloseWaitTracker;
use crate::fold::netns::cap_namespaces;
use crate::fold::udp::drops::{self, DropTracker};
use crate::fold::Settings;
use crate::snapshot::{NetnsFigures, NetnsInfo, NetnsSkipped, OwnerFigures, Snapshot};
use crate::source::netns::{self, EnterError, HomeNetns, MissingPrivileges};
use crate::source::proc_fd::{ProcIndex, ProcIndexError, ScanReport};
use crate::source::proc_sys_net::NetSysctls;
use crate::source::sock_diag::Opener;

/// Which namespaces a poll samples: `namespaces` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Every namespace on the host (needs CAP_SYS_ADMIN and CAP_SYS_PTRACE).
    #[default]
    All,
    /// Only the exporter's own.
    Own,
}

/// Side results of a poll that do not fail it.
#[derive(Debug, Default)]
pub struct PollNotes {
    pub scan: ScanReport,
    pub proc_index_error: Option<ProcIndexError>,
    /// Cached owners found exited, reused or renamed away by the revalidation.
    pub forgotten: u32,
    /// Process names the /proc index holds after this poll's pruning.
    pub names_interned: usize,
    /// Kernel counter or sysctl files that could not be read, with their namespace.
    pub kernel_errors: Vec<String>,
    /// Why other namespaces were not entered, when the privileges are missing.
    pub missing_privileges: Option<MissingPrivileges>,
    /// Discovery failed: only our own namespace was sampled.
    pub discovery_error: Option<DiscoverError>,
    /// Namespaces dropped for a failure other than vanishing, with the failure.
    pub netns_errors: Vec<String>,
    /// Namespaces sampled without their container, because a member's cgroup file or
    /// the container's Docker config could not be read: they keep their `ns-<inode>`
    /// label (or their `ip netns` name).
    pub attribution_errors: Vec<String>,
    /// Of `attribution_errors`, the failures met in this poll: a Docker config that failed
    /// before and is unchanged is listed, not read again, and not counted again.
    pub attribution_failures: u64,
    /// Namespaces sampled.
    pub namespaces: usize,
    /// Where the poll's wall time went, by stage (the daemon logs it when a poll overruns).
    pub timings: PollTimings,
}

/// The state a main poll carries from one poll to the next.
#[derive(Debug)]
pub struct Collector {
    sock_diag: Reopening,
    /// Opens every sock_diag socket of the poll, ours and the other namespaces'.
    open: Opener,
    index: ProcIndex,
    close_wait: Mutex<CloseWaitTracker>,
    /// UDP drops by socket cookie and the drop series, from poll to poll.
    udp_drops: DropTracker,
    /// The caps of the host's and our own namespace.
    settings: Settings,
    /// The caps of every other namespace, derived once from `settings`.
    netns_settings: Settings,
    /// The optional collectors that run (`PollerConfig::collectors`).
    collectors: Collectors,
    scope: Scope,
    sources: Sources,
    /// The runtime state files that failed to read, kept from poll to poll.
    caches: discover::StateCaches,
    /// Each sampled namespace's sysctls, read again once `sysctls::REFRESH` old.
    sysctls: SysctlCache,
    concurrency: usize,
    max_namespaces: usize,
    peaks: Peaks,
    targets: Targets,
    /// Totals since start of `sockdiag_owner_*`: (full passes, budget stops).
    owner_totals: (u64, u64),
    /// Our own namespace as the last successful discovery named it (and whether it was
    /// the host's), so that a poll whose discovery fails keeps its label and info instead
    /// of jumping to `ns-<inode>` (or `ns-0`) for one poll.
    own: Option<(Namespace, bool)>,
}

/// A namespace to dump this poll: `enter` is `None` for our own.
struct Job {
    namespace: Namespace,
    enter: Option<PathBuf>,
    host: bool,
}

impl Job {
    /// The host's and our own namespace get the full caps and every zero-valued series.
    fn full(&self) -> bool {
        self.host || self.enter.is_none()
    }

    /// The caps of this namespace: `full`'s for the host's and our own, else `netns`'.
    fn settings<'a>(&self, full: &'a Settings, netns: &'a Settings) -> &'a Settings {
        if self.full() {
            full
        } else {
            netns
        }
    }
}

enum Outcome {
    Dumped(Box<NetnsDump>),
    Vanished,
    Failed(String),
}

impl Collector {
    pub fn new(config: &PollerConfig, peaks: Peaks, targets: Targets) -> Collector {
        Collector {
            sock_diag: Reopening::default(),
            open: config.open.clone(),
            index: ProcIndex::new(&config.sources.proc_root),
            close_wait: Mutex::new(CloseWaitTracker::new(config.close_wait_capacity)),
            udp_drops: DropTracker::new(drops::DEFAULT_CAPACITY),
            settings: config.settings.clone(),
            netns_settings: config.settings.for_namespace(false),
            collectors: config.collectors(),
            scope: config.scope,
            sources: config.sources.clone(),
            caches: discover::StateCaches::default(),
            sysctls: SysctlCache::default(),
            concurrency: config.netns_concurrency.max(1),
            max_namespaces: config.max_namespaces.max(1),
            peaks,
            targets,
            owner_totals: (0, 0),
            own: None,
        }
    }

    /// The /proc index, for tests that inject faults into its scans.
    #[cfg(any(test, feature = "test-support"))]
    pub fn index_mut(&mut self) -> &mut ProcIndex {
        &mut self.index
    }

    /// Forgets every namespace's sysctls, as if they were `sysctls::REFRESH` old: the next
    /// poll reads them.
    #[cfg(any(test, feature = "test-support"))]
    pub fn forget_sysctls(&mut self) {
        self.sysctls = SysctlCache::default();
    }

    /// One complete poll. Blocking.
    pub fn poll(&mut self) -> Result<(Snapshot, PollNotes), PollError> {
        let started = Instant::now();
        let mut notes = PollNotes::default();
        let (jobs, mut skipped) = self.discover(&mut notes);
        notes.timings.discovery = started.elapsed();
        notes.namespaces = jobs.len();
        *self.targets.lock().unwrap_or_else(|p| p.into_inner()) = jobs
            .iter()
            .filter_map(|job| {
                Some(Target {
                    id: job.namespace.id,
                    enter: job.enter.clone()?,
                })
            })
            .collect();
        let stage = Instant::now();
        owners::begin(&mut self.index, &mut notes);
        notes.timings.proc_scan = stage.elapsed();
        self.close_wait
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .begin_poll(started);
        let stage = Instant::now();
        let outcomes = self.dump_all(&jobs, started)?;
        notes.timings.dumps = stage.elapsed();

        let (dumped, unsampled) =
            self.sort_outcomes(jobs, outcomes, started, &mut skipped, &mut notes);
        self.close_wait
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .end_poll(&unsampled);
        self.sysctls
            .retain(dumped.iter().map(|(job, _)| job.namespace.id));
        let missing: Vec<u32> = dumped
            .iter()
            .flat_map(|(_, dump)| {
                let mut missing = dump.aggregator.missing_inodes();
                missing.extend(dump.unix.missing_inodes());
                missing.extend(dump.udp.missing_inodes());
                missing
            })
            .collect();
        let stage = Instant::now();
        owners::resolve(&mut self.index, &missing, &mut notes);
        notes.timings.proc_scan += stage.elapsed();
        let stage = Instant::now();

        self.udp_drops.begin_poll(started);
        let (figures, infos, sockets_scanned) = self.finish_all(dumped, &mut notes);
        self.udp_drops.end_poll(&unsampled);
        let (namespaces, infos, folded) =
            cap_namespaces(figures, infos, self.max_namespaces, |ns| {
                anomaly::combine(
                    anomaly::holds_anomaly(&ns.tcp, &ns.unix, &self.settings.anomaly),
                    anomaly::holds_udp_anomaly(&ns.udp),
                )
            });
        self.owner_totals.0 += u64::from(notes.scan.full_passes);
        self.owner_totals.1 += u64::from(notes.scan.budget_stopped);
        notes.timings.fold = stage.elapsed();
        let snapshot = Snapshot {
            namespaces,
            folded,
            netns_info: infos,
            skipped,
            sockets_scanned,
            owners: OwnerFigures {
                pending: u64::from(notes.scan.pending),
                readlinks: notes.scan.readlinks,
                full_passes_total: self.owner_totals.0,
                budget_stops_total: self.owner_totals.1,
            },
            poll_duration: started.elapsed(),
            completed_at: SystemTime::now(),
            collectors: self.collectors,
        };
        Ok((snapshot, notes))
    }

    /// Sorts the dump outcomes: the namespaces dumped (whose sysctls, when read in this
    /// poll, go to the cache), and those that vanished or failed (counted in `skipped`;
    /// the failed ones also returned, as not sampled, and noted).
    fn sort_outcomes(
        &mut self,
        jobs: Vec<Job>,
        outcomes: Vec<Outcome>,
        started: Instant,
        skipped: &mut NetnsSkipped,
        notes: &mut PollNotes,
    ) -> (Vec<(Job, Box<NetnsDump>)>, Vec<u64>) {
        let mut dumped = Vec::with_capacity(jobs.len());
        let mut unsampled = Vec::new();
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Dumped(dump) => {
                    if dump.sysctls_read {
                        // Read during this poll: `started` makes them, if anything, older.
                        let sysctls = dump.kernel.sysctls;
                        self.sysctls.store(job.namespace.id, sysctls, started);
                    }
                    dumped.push((job, dump));
                }
                Outcome::Vanished => skipped.vanished += 1,
                Outcome::Failed(error) => {
                    skipped.error += 1;
                    unsampled.push(job.namespace.id);
                    notes.netns_errors.push(error);
                }
            }
        }
        (dumped, unsampled)
    }

    /// Finishes every dumped namespace's folds with the owners the scan found: their
    /// figures, infos and the sockets scanned.
    fn finish_all(
        &mut self,
        dumped: Vec<(Job, Box<NetnsDump>)>,
        notes: &mut PollNotes,
    ) -> (Vec<NetnsFigures>, Vec<NetnsInfo>, u64) {
        let mut peaks = std::mem::take(&mut *self.peaks.lock().unwrap_or_else(|p| p.into_inner()));
        let mut sockets_scanned = 0;
        let mut figures = Vec::with_capacity(dumped.len());
        let mut infos = Vec::with_capacity(dumped.len());
        for (job, dump) in dumped {
            let label: Arc<str> = Arc::from(job.namespace.label.as_str());
            notes.timings.kernel_files += dump.kernel_time;
            for error in &dump.kernel_errors {
                notes.kernel_errors.push(format!("netns {label}: {error}"));
            }
            let settings = job.settings(&self.settings, &self.netns_settings);
            let peaks = peaks.remove(&job.namespace.id).unwrap_or_default();
            let tcp = dump.aggregator.finish(&self.index, settings, &peaks);
            let unix = dump.unix.finish(&self.index, settings, &peaks);
            let udp = dump
                .udp
                .finish(job.namespace.id, &self.index, settings, &mut self.udp_drops);
            sockets_scanned += tcp.sockets_scanned + unix.sockets_scanned + udp.sockets_scanned;
            infos.push(info(&label, &job.namespace));
            figures.push(NetnsFigures {
                netns: label,
                full: job.full(),
                provenance: job.namespace.provenance,
                tcp,
                unix,
                udp,
                kernel: dump.kernel,
            });
        }
        (figures, infos, sockets_scanned)
    }

    /// The namespaces to dump: every one discovered, ours only with `Scope::Own`, without
    /// the privileges to enter others, or when discovery fails.
    fn discover(&mut self, notes: &mut PollNotes) -> (Vec<Job>, NetnsSkipped) {
        let mut skipped = NetnsSkipped::default();
        let found = match discover::discover(&self.sources, &mut self.caches) {
            Ok(found) => found,
            Err(error) => {
                notes.discovery_error = Some(error);
                return (vec![self.own_fallback()], skipped);
            }
        };
        if self.scope == Scope::All {
            match netns::missing_privileges() {
                Ok(None) => {}
                Ok(Some(missing)) => notes.missing_privileges = Some(missing),
                Err(error) => {
                    notes.discovery_error = Some(DiscoverError::Privileges(error));
                }
            }
        }
        let enter_others = self.scope == Scope::All
            && notes.missing_privileges.is_none()
            && notes.discovery_error.is_none();
        notes.attribution_failures = found.attribution_failures;
        notes.attribution_errors = found
            .attribution_errors
            .iter()
            .map(ToString::to_string)
            .collect();
        let host = found.by_label(discover::HOST_LABEL).map(|ns| ns.id);
        let mut jobs = Vec::new();
        for namespace in found.namespaces {
            let own = namespace.id == found.own;
            if !own && !enter_others {
                if self.scope == Scope::All {
                    skipped.permission += 1;
                }
                continue;
            }
            jobs.push(Job {
                enter: (!own).then(|| namespace.enter.clone()),
                host: host == Some(namespace.id),
                namespace,
            });
        }
        if !jobs.iter().any(|job| job.enter.is_none()) {
            // Our own namespace is always sampled, even if discovery missed it (a /proc
            // that is not ours): it is the one every privilege-less user gets.
            jobs.push(self.own_fallback());
        }
        if let Some(own) = jobs.iter().find(|job| job.enter.is_none()) {
            self.own = Some((own.namespace.clone(), own.host));
        }
        (jobs, skipped)
    }

    /// Our own namespace when discovery could not name it: as the last discovery named
    /// it, if our inode is still that one's (or cannot be read: the exporter never changes
    /// namespace), else `ns-<inode>` (inode 0 when neither is known).
    fn own_fallback(&self) -> Job {
        let inode = HomeNetns::open(&self.sources.proc_root).map(|home| home.inode());
        if let Some((namespace, host)) = &self.own {
            if inode.as_ref().map_or(true, |&inode| inode == namespace.id) {
                return Job {
                    namespace: namespace.clone(),
                    enter: None,
                    host: *host,
                };
            }
        }
        let id = inode.unwrap_or(0);
        Job {
            namespace: Namespace {
                id,
                label: format!("ns-{id}"),
                info: NetnsInfo {
                    inode: id,
                    ..Default::default()
                },
                // Ours, and outside the cap whatever its provenance.
                provenance: crate::snapshot::Provenance::Known,
                enter: PathBuf::new(),
            },
            enter: None,
            host: false,
        }
    }

    /// Runs the recipe in every namespace of `jobs`; outcomes in the order of `jobs`.
    /// `now` decides which namespaces' cached sysctls are still fresh.
    fn dump_all(&mut self, jobs: &[Job], now: Instant) -> Result<Vec<Outcome>, PollError> {
        let others: Vec<usize> = (0..jobs.len())
            .filter(|&i| jobs[i].enter.is_some())
            .collect();
        let own = jobs.iter().position(|job| job.enter.is_none());
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::with_capacity(others.len()));
        let workers = self.concurrency.min(others.len());
        let Collector {
            sock_diag,
            open,
            index,
            close_wait,
            settings,
            netns_settings,
            sources,
            collectors,
            sysctls,
            ..
        } = self;
        let sysctls = &*sysctls;
        let collectors = *collectors;
        let (settings, netns_settings) = (&*settings, &*netns_settings);
        let (index, close_wait, proc_root) = (&*index, &*close_wait, &sources.proc_root);
        let own_result = std::thread::scope(|scope| {
            for _ in 0..workers {
                // Each worker inherits the poll thread's nice value (`lower_priority`).
                scope.spawn(|| {
                    let home = HomeNetns::open(proc_root);
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = others.get(n) else { break };
                        let job = &jobs[i];
                        let settings = job.settings(settings, netns_settings);
                        let cached = sysctls.get(job.namespace.id, now);
                        let outcome = match &home {
                            Ok(home) => enter_and_dump(
                                home, job, open, index, close_wait, settings, collectors, cached,
                            ),
                            Err(error) => Outcome::Failed(format!(
                                "netns {}: cannot hold our own namespace: {error}",
                                job.namespace.label
                            )),
                        };
                        results
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((i, outcome));
                    }
                });
            }
            own.map(|i| {
                let job = &jobs[i];
                let settings = job.settings(settings, netns_settings);
                let cached = sysctls.get(job.namespace.id, now);
                sock_diag
                    .with(open, PollError::Dump, |socket| {
                        namespace::dump(
                            socket,
                            job.namespace.id,
                            index,
                            close_wait,
                            settings,
                            collectors,
                            cached,
                        )
                    })
                    .map(|dump| (i, Outcome::Dumped(Box::new(dump))))
            })
            .transpose()
        })?;
        let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        results.extend(own_result);
        results.sort_by_key(|(i, _)| *i);
        Ok(results.into_iter().map(|(_, outcome)| outcome).collect())
    }
}

/// Enters `job`'s namespace on this thread, opens a sock_diag socket there (a socket
/// belongs to the namespace it was opened in), runs the recipe and comes back.
#[allow(clippy::too_many_arguments)]
fn enter_and_dump(
    home: &HomeNetns,
    job: &Job,
    open: &Opener,
    index: &ProcIndex,
    close_wait: &Mutex<CloseWaitTracker>,
    settings: &Settings,
    collectors: Collectors,
    sysctls: Option<NetSysctls>,
) -> Outcome {
    let Some(path) = &job.enter else {
        return Outcome::Failed("own namespace given to a worker".into());
    };
    let id = job.namespace.id;
    // A socket of its own, opened in the namespace and dropped before the thread leaves.
    let ran = home.run_in(path, id, || {
        Reopening::default().with(open, PollError::Dump, |socket| {
            namespace::dump(socket, id, index, close_wait, settings, collectors, sysctls)
        })
    });
    match ran {
        Ok(Ok(dump)) => Outcome::Dumped(Box::new(dump)),
        Err(EnterError::Vanished { .. }) => Outcome::Vanished,
        Err(error) => Outcome::Failed(format!("netns {}: {error}", job.namespace.label)),
        Ok(Err(error)) => Outcome::Failed(format!("netns {}: {error}", job.namespace.label)),
    }
}

/// The namespace's `sockdiag_netns_info` under the label this poll gave it.
fn info(label: &Arc<str>, namespace: &Namespace) -> NetnsInfo {
    NetnsInfo {
        netns: Arc::clone(label),
        ..namespace.info.clone()
    }
}
