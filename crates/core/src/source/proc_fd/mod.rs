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
//! - if phase 1 leaves a dumped inode unresolved (an fd slot reused between polls by a
//!   different kind of object), one full pass re-reads every slot (phase 2); inodes even
//!   that cannot find (other users' processes without privileges, sockets in flight over
//!   a unix socket) are remembered and not chased again until a later full pass.
//!
//! So the steady-state cost follows the number of new sockets, not the number of fds.
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
    /// Dumped inodes still without an owner after the scans.
    pub unresolved: u32,
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

    /// Finds the owners of `missing` (dumped inodes without one): phase 1 reads the fd
    /// slots not cached; if some stay unresolved, phase 2 re-reads every slot.
    pub fn resolve(&mut self, missing: &[u32]) -> Result<ScanReport, ProcIndexError> {
        let mut report = ScanReport::default();
        if missing.is_empty() {
            return Ok(report);
        }
        self.scan_all(false, &mut report)?;
        let unresolved = self.unresolved(missing);
        if !unresolved.is_empty() {
            self.scan_all(true, &mut report)?;
        }
        let poll = self.poll;
        for inode in missing {
            if let Some(owner) = self.owners.get_mut(*inode) {
                *owner.seen.get_mut() = poll;
            }
        }
        for inode in self.unresolved(missing) {
            self.unresolvable.insert(inode, AtomicU32::new(poll));
            report.unresolved += 1;
        }
        Ok(report)
    }

    /// A full scan without a dump (the first poll's warm-up).
    pub fn warm(&mut self) -> Result<ScanReport, ProcIndexError> {
        let mut report = ScanReport::default();
        self.scan_all(false, &mut report)?;
        Ok(report)
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

use names::Names;
use owners::{Owner, OwnerMap};
pub use read::{parse_socket_link, parse_start_time, parse_stat_comm};
use read::{parse_u32, read_comm, read_start_time, read_stat};
use slots::{Bitset, FdSlots};

#[cfg(any(test, feature = "test-support"))]
pub mod fake;
#[cfg(test)]
mod tests;
