//! Which process owns each socket: socket inode -> (pid, comm).
//!
//! Kernel interface: `/proc/PID/fd/*` symlinks (`socket:[INODE]`), `/proc/PID/comm`, and
//! the start time in `/proc/PID/stat` (field 22) to tell a reused pid from the process it
//! replaces. Reading other users' fd directories needs CAP_DAC_READ_SEARCH and
//! CAP_SYS_PTRACE; without them those sockets stay unattributed (`process="unknown"`).
//!
//! The index is incremental, because a full scan costs one readlink per fd on the host:
//! - every fd slot read is cached per process (socket inode, or "not a socket");
//! - a poll looks up each dumped inode; only inodes not in the cache trigger a scan, and
//!   that scan readlinks only the fd slots it has not cached (phase 1);
//! - an inode the dump no longer shows is dead: its owner entry and fd slot are dropped
//!   before the scan, so a reused fd number is read again;
//! - a dumped inode phase 1 leaves unresolved is *pending* for this poll (label
//!   `process="pending"`): most are sockets that closed, or whose process exited, between
//!   the dump and the scan, and the next dump no longer shows them. One the next dump
//!   still shows is mostly in the cached slot of a socket no dump ever saw (it lived
//!   between two dumps, and its fd number was reused): that poll's phase 1 reads those
//!   slots again. If it still does not find it (an fd slot reused by a different kind
//!   of object), a full pass marks every slot for reading again and re-reads them
//!   (phase 2);
//!   inodes even that cannot find (other users' processes without privileges, sockets
//!   in flight over a unix socket) are remembered as unresolvable (`unknown`) and not
//!   chased again until a later full pass;
//! - the first poll is exact: its warm-up before the dumps was already a full pass, so
//!   an inode phase 1 does not find is unresolvable at once, with no second full pass;
//! - the readlinks of every later poll are bounded by [`readlink_budget`]: past it the
//!   scan stops, what it did not reach is pending, and the next poll resumes at the
//!   process where it stopped (round robin over pids, so no process starves). A full pass
//!   cut short goes on the same way, since its slots stay marked for reading.
//!
//! So the steady-state cost follows the number of new sockets, not the number of fds.
//! Each round that reaches every process also gives back the memory of peaks past (the
//! fd-slot vectors and the owner vector shrink on low water).
//!
//! A socket held by several processes (prefork servers, inherited fds) belongs to the
//! holder with the lowest pid among those seen when it was first found. Every poll
//! re-reads the stat file of each process that owns a cached socket
//! ([`ProcIndex::revalidate`]): when that process has exited (or its pid was reused) its
//! sockets go to the lowest-pid remaining holder in the same poll, and a renamed process
//! (exec, prctl) shows its new name.
//!
//! Process names are interned (module `names`) and the names no cached process holds any
//! more are dropped at the start of every poll ([`ProcIndex::prune_names`]): 500
//! processes renaming themselves every 200 ms leave the index holding their current names
//! only.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use rustix::fs::{Dir, Mode, OFlags};
use rustix::io::Errno;

/// Interned process name (comm); resolve with [`ProcIndex::name`].
pub type NameId = u32;

#[derive(Debug, thiserror::Error)]
pub enum ProcIndexError {
    #[error("cannot read {path}: {source}")]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the last scan met, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Scans run in this poll (0 when every inode was already known).
    pub scans: u32,
    /// fd symlinks read.
    pub readlinks: u64,
    /// Processes whose fd directory could not be read for lack of permission.
    pub permission_denied: u32,
    /// Dumped inodes that became unresolvable (`unknown`): a full pass did not find them.
    pub unresolved: u32,
    /// Dumped inodes left pending (`pending`): not found by this poll's scan, which was
    /// not a full pass (or was cut short by the budget).
    pub pending: u32,
    /// Full passes begun in this poll: the first poll's warm-up, or every slot marked for
    /// reading again because an inode stayed pending (one cut short by the budget goes on
    /// in the next polls, not counted again).
    pub full_passes: u32,
    /// The scan stopped at [`readlink_budget`]; the next poll resumes it.
    pub budget_stopped: bool,
    /// Dumped inodes without a cached owner when the scan began: the sockets new since the
    /// last poll, as far as attribution is concerned (what the budget is measured against).
    pub new_sockets: u32,
    /// Processes the scans met for the first time (their fd slots all had to be read).
    pub new_processes: u32,
}

/// Readlinks a poll may spend on its /proc scan beyond the first poll, at least: the
/// budget is this or twice the poll's new sockets (dumped inodes without a cached owner),
/// whichever is larger. 10,000 readlinks cost about 15 ms of CPU.
pub const READLINK_BUDGET_FLOOR: u64 = 10_000;

/// The readlinks a poll with `new_sockets` dumped inodes without an owner may spend.
pub fn readlink_budget(new_sockets: usize) -> u64 {
    READLINK_BUDGET_FLOOR.max(2 * new_sockets as u64)
}

#[derive(Debug)]
struct Process {
    start_time: u64,
    name: NameId,
    fds: FdSlots,
}

/// The inode -> owner cache. Scans and sweeps take `&mut self` and run between the
/// dumps; lookups take `&self`, so the dumps of several network namespaces can ask at
/// once. A lookup marks the inode alive with a relaxed atomic store: the sweep that reads
/// those marks runs after the dump threads have been joined.
#[derive(Debug)]
pub struct ProcIndex {
    root: PathBuf,
    processes: FxHashMap<u32, Process>,
    owners: OwnerMap,
    names: Names,
    /// What [`ProcIndex::name`] answers for an id no name holds (never another's name).
    unknown: Arc<str>,
    /// Dumped inodes a full pass could not find, by the poll generation that last saw them.
    unresolvable: FxHashMap<u32, AtomicU32>,
    /// Dumped inodes the last resolve left pending: the next poll that still finds one
    /// missing after phase 1 makes a full pass for it.
    pending: FxHashSet<u32>,
    /// The pid the next scan starts at: where the budget stopped the last one.
    cursor: Option<u32>,
    /// A full pass is under way: every slot was marked for reading again and the round
    /// that re-reads them has not reached every process yet.
    full_round: bool,
    /// The poll generation whose warm-up made a full pass before the dumps.
    warmed: u32,
    poll: u32,
    scan: u32,
    link: Vec<u8>,
    /// The fd numbers one process's directory listed (scratch space of a scan).
    listed: Bitset,
    /// Test seam: runs after a process's fd directory was listed, before each readlink.
    #[cfg(any(test, feature = "test-support"))]
    before_readlink: Option<BeforeReadlink>,
}

/// Called with (pid, fd) between readdir and readlink: where a test makes a process exit
/// or close an fd at an exact point of the scan.
#[cfg(any(test, feature = "test-support"))]
pub struct BeforeReadlink(pub Box<dyn FnMut(u32, u32) + Send + Sync>);

#[cfg(any(test, feature = "test-support"))]
impl std::fmt::Debug for BeforeReadlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeforeReadlink")
    }
}

impl ProcIndex {
    /// An empty index over the proc filesystem at `root` (normally `/proc`).
    pub fn new(root: impl Into<PathBuf>) -> ProcIndex {
        ProcIndex {
            root: root.into(),
            processes: FxHashMap::default(),
            owners: OwnerMap::default(),
            names: Names::default(),
            unknown: Arc::from("unknown"),
            unresolvable: FxHashMap::default(),
            pending: FxHashSet::default(),
            cursor: None,
            full_round: false,
            warmed: 0,
            poll: 0,
            scan: 0,
            link: vec![0; 64],
            listed: Bitset::default(),
            #[cfg(any(test, feature = "test-support"))]
            before_readlink: None,
        }
    }

    /// Test seam: `hook` runs between readdir and each readlink of every later scan.
    #[cfg(any(test, feature = "test-support"))]
    pub fn before_readlink(&mut self, hook: impl FnMut(u32, u32) + Send + Sync + 'static) {
        self.before_readlink = Some(BeforeReadlink(Box::new(hook)));
    }

    /// True before the first scan: the poller scans before its first dump so that the
    /// first poll does not have to hold every socket as pending.
    pub fn is_cold(&self) -> bool {
        self.scan == 0
    }

    /// Starts a poll: lookups from now on mark inodes as alive.
    pub fn begin_poll(&mut self) {
        self.poll = self.poll.wrapping_add(1).max(1);
    }

    /// The owner's name of a socket inode seen in the current dump, if known. An inode
    /// that a full pass already failed to find returns `None` without asking for a scan
    /// (see [`ProcIndex::is_unresolvable`]).
    pub fn lookup(&self, inode: u32) -> Option<NameId> {
        let owner = self.owners.get(inode)?;
        owner.seen.store(self.poll, Ordering::Relaxed);
        let process = self.processes.get(&owner.pid)?;
        Some(process.name)
    }

    /// True when `inode` is known to be beyond reach; marks it as still alive.
    pub fn is_unresolvable(&self, inode: u32) -> bool {
        match self.unresolvable.get(&inode) {
            Some(seen) => {
                seen.store(self.poll, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// The name of `id`, valid from the lookup that returned it until the next
    /// [`ProcIndex::prune_names`]. Names are cut to
    /// [`crate::source::label_cap::PROCESS`].
    pub fn name(&self, id: NameId) -> &Arc<str> {
        self.names.get(id).unwrap_or(&self.unknown)
    }

    /// Drops the names no cached process holds (a process renamed by exec or prctl, or
    /// forgotten), so that the names kept are at most those of the live processes. Run at
    /// the start of a poll, before its lookups: it ends the validity of every id handed
    /// out before (a dropped id is handed out again only after one more prune).
    pub fn prune_names(&mut self) {
        self.names
            .retain(self.processes.values().map(|process| process.name));
    }

    /// Names interned now.
    pub fn names_interned(&self) -> usize {
        self.names.len()
    }

    /// Drops what the last resolve left pending: a poll that could not scan labels those
    /// sockets `unknown`, as every socket it cannot name.
    pub fn forget_pending(&mut self) {
        self.pending.clear();
    }

    /// True when `inode` was left pending by this poll's resolve.
    pub fn is_pending(&self, inode: u32) -> bool {
        self.pending.contains(&inode)
    }

    /// Ends the dump part of a poll: forgets inodes the dump no longer showed, and frees
    /// their fd slots so that a reused fd number is read again.
    pub fn sweep(&mut self) {
        let poll = self.poll;
        let processes = &mut self.processes;
        self.owners.retain(|_, owner| {
            let seen = *owner.seen.get_mut();
            let alive = seen == 0 || seen == poll;
            if !alive {
                if let Some(process) = processes.get_mut(&owner.pid) {
                    process.fds.clear(owner.fd);
                }
            }
            alive
        });
        self.owners.merge();
        self.unresolvable.retain(|_, seen| *seen.get_mut() == poll);
    }

    /// Finds the owners of `missing` (dumped inodes without one). Phase 1 reads the fd
    /// slots not cached, within [`readlink_budget`] unless the poll is exact (the first,
    /// or one on a cache that never scanned). An inode it leaves unresolved is pending,
    /// unless the last resolve left it pending too: then, once phase 1 has reached every
    /// process, a full pass marks every slot for reading again and re-reads them (phase
    /// 2). An inode a full pass does not find is unresolvable.
    pub fn resolve(&mut self, missing: &[u32]) -> Result<ScanReport, ProcIndexError> {
        let mut report = ScanReport::default();
        let before = std::mem::take(&mut self.pending);
        if missing.is_empty() {
            return Ok(report);
        }
        // Exact: every slot was read in this poll, by the warm-up or by this very scan.
        let exact = self.is_cold() || self.warmed == self.poll;
        let mut unresolved = self.unresolved(missing);
        report.new_sockets = unresolved.len() as u32;
        let limit = (!exact).then(|| readlink_budget(unresolved.len()));
        if !exact && self.cursor.is_none() && unresolved.iter().any(|i| before.contains(i)) {
            // Most sockets still missing a poll later hide behind the cached slot of a
            // socket no dump ever showed (it lived between two dumps, and its fd number
            // was reused): those few slots are read again before a full pass is tried.
            // Not while a round the budget stopped is under way: marking them again at
            // every poll would restart it (with `namespaces = "own"` every socket of the
            // other namespaces is never dumped) and it would never end.
            self.invalidate_never_dumped();
        }
        let resumed_full = self.full_round;
        let mut complete = self.scan_all(limit, &mut report)?;
        // A full pass cut short by an earlier poll's budget that phase 1 just finished.
        let mut full_done = complete && resumed_full;
        let mut fresh_full = exact;
        unresolved = self.unresolved(missing);
        if complete && !exact && !full_done && unresolved.iter().any(|inode| before.contains(inode))
        {
            self.invalidate();
            report.full_passes += 1;
            complete = self.scan_all(limit, &mut report)?;
            full_done = complete;
            fresh_full = complete;
            unresolved = self.unresolved(missing);
        }
        report.budget_stopped = !complete;
        let poll = self.poll;
        for inode in missing {
            if let Some(owner) = self.owners.get_mut(*inode) {
                *owner.seen.get_mut() = poll;
            }
        }
        for inode in unresolved {
            // A full pass finished in this poll after the dump read every slot: what it
            // did not find is beyond reach. One finished by this poll but begun before
            // read some slots before this dump: only the inodes already pending then
            // are settled by it, a new one gets its own poll of grace.
            if fresh_full || (full_done && before.contains(&inode)) {
                self.unresolvable.insert(inode, AtomicU32::new(poll));
                report.unresolved += 1;
            } else {
                self.pending.insert(inode);
                report.pending += 1;
            }
        }
        Ok(report)
    }

    /// Marks for reading again the slots of the sockets no dump has shown (owner `seen` 0).
    fn invalidate_never_dumped(&mut self) {
        let processes = &mut self.processes;
        self.owners.retain(|_, owner| {
            if *owner.seen.get_mut() == 0 {
                if let Some(process) = processes.get_mut(&owner.pid) {
                    process.fds.invalidate_one(owner.fd);
                }
            }
            true
        });
    }

    /// Marks every cached fd slot for reading again: the start of a full pass.
    fn invalidate(&mut self) {
        for process in self.processes.values_mut() {
            process.fds.invalidate();
        }
        self.full_round = true;
    }

    fn unresolved(&self, missing: &[u32]) -> Vec<u32> {
        missing
            .iter()
            .copied()
            .filter(|&inode| !self.owners.contains(inode))
            .collect::<FxHashSet<u32>>()
            .into_iter()
            .collect()
    }

    fn claim(&mut self, inode: u32, pid: u32, fd: u32) {
        self.unresolvable.remove(&inode);
        match self.owners.get_mut(inode) {
            Some(owner) if owner.pid < pid && self.processes.contains_key(&owner.pid) => {}
            Some(owner) => {
                owner.pid = pid;
                owner.fd = fd;
            }
            None => {
                self.owners.insert(
                    inode,
                    Owner {
                        pid,
                        fd,
                        seen: AtomicU32::new(0),
                    },
                );
            }
        }
    }

    fn intern(&mut self, name: &str) -> NameId {
        self.names.intern(name)
    }
}

/// Default proc root.
pub fn default_root() -> &'static Path {
    Path::new("/proc")
}

mod names;
mod owners;
mod read;
mod scan;
mod slots;
mod warm;

use names::Names;
use owners::{Owner, OwnerMap};
pub use read::{parse_socket_link, parse_start_time, parse_stat_comm};
use read::{parse_u32, read_comm, read_start_time, read_stat};
use slots::{Bitset, FdSlots};

#[cfg(any(test, feature = "test-support"))]
pub mod fake;
#[cfg(test)]
mod tests;
