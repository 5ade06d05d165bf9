//! The /proc walk that fills the index: which pids exist, which fd slots are new, and
//! what they point at.

use super::*;

impl ProcIndex {
    /// Before a poll's dumps: re-reads `/proc/PID/stat` of every process that holds a
    /// cached socket (one small read each, not one per socket). A process that exited, or
    /// whose pid now belongs to another process (its start time changed), is forgotten
    /// with what it owned: the dump then finds those sockets missing, and the scan after
    /// it names their current holder (a child that inherited them). A process that
    /// changed its comm (exec, prctl PR_SET_NAME) is renamed. Returns the processes
    /// forgotten.
    ///
    /// When /proc itself cannot be opened nothing can be checked, so every cached owner is
    /// forgotten: the poll labels its sockets `unknown` rather than with names that may
    /// belong to processes long gone (or to another process under a reused pid).
    pub fn revalidate(&mut self) -> Result<u32, ProcIndexError> {
        // Per process, not per owned socket: a walk over the cached processes instead of
        // collecting and sorting one pid per socket (a million of them on a large host).
        let holders: Vec<u32> = self
            .processes
            .iter()
            .filter(|(_, process)| process.fds.holds_socket())
            .map(|(pid, _)| *pid)
            .collect();
        if holders.is_empty() {
            return Ok(0);
        }
        let proc = rustix::fs::open(
            &self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|source| ProcIndexError::Root {
            path: self.root.clone(),
            source: source.into(),
        });
        let proc = match proc {
            Ok(proc) => proc,
            Err(error) => {
                self.processes.clear();
                self.owners = OwnerMap::default();
                return Err(error);
            }
        };
        let mut forgotten = 0;
        for pid in holders {
            let Some(cached) = self.processes.get(&pid) else {
                continue;
            };
            let stat = read_stat(&proc, pid);
            let now = stat
                .as_deref()
                .and_then(|stat| Some((parse_start_time(stat)?, parse_stat_comm(stat)?)));
            match now {
                Some((start_time, comm)) if start_time == cached.start_time => {
                    if **self.name(cached.name) != *comm {
                        let name = self.intern(comm);
                        if let Some(process) = self.processes.get_mut(&pid) {
                            process.name = name;
                        }
                    }
                }
                _ => {
                    self.forget_process(pid);
                    forgotten += 1;
                }
            }
        }
        self.owners.merge();
        Ok(forgotten)
    }

    /// One round over every process, reading the fd slots not cached, from the process
    /// the last round stopped at. `limit` caps `report.readlinks`: past it the round
    /// stops at a process, which the next round starts with. Returns whether the round
    /// reached every process.
    pub(super) fn scan_all(
        &mut self,
        limit: Option<u64>,
        report: &mut ScanReport,
    ) -> Result<bool, ProcIndexError> {
        let (proc, pids) = self.list_pids()?;
        // Counted once /proc could be listed: an index whose scans all failed is still
        // cold, and its next poll warms it up.
        self.scan = self.scan.wrapping_add(1).max(1);
        report.scans += 1;
        // Processes gone since the last scan take their cached slots with them; their
        // sockets, if still alive elsewhere, are found again below.
        let live: FxHashSet<u32> = pids.iter().copied().collect();
        let gone: Vec<u32> = self
            .processes
            .keys()
            .copied()
            .filter(|pid| !live.contains(pid))
            .collect();
        for pid in gone {
            self.forget_process(pid);
        }
        // Round robin: from where the budget stopped the last round, then the pids below.
        let start = self
            .cursor
            .map_or(0, |cursor| pids.partition_point(|&pid| pid < cursor));
        let (below, from) = pids.split_at(start);
        let mut complete = true;
        for &pid in from.iter().chain(below) {
            if !self.scan_process(&proc, pid, limit, report) {
                self.cursor = Some(pid);
                complete = false;
                break;
            }
        }
        self.owners.merge();
        if complete {
            self.cursor = None;
            self.full_round = false;
            self.shrink();
        }
        Ok(complete)
    }

    /// Gives back the memory of peaks past, once per round that reached every process:
    /// each process's fd slots, and the owner map (see their `shrink`).
    fn shrink(&mut self) {
        for process in self.processes.values_mut() {
            process.fds.shrink();
        }
        self.owners.shrink();
        if shrinkable(self.processes.capacity(), self.processes.len()) {
            self.processes.shrink_to(2 * self.processes.len());
        }
        if shrinkable(self.unresolvable.capacity(), self.unresolvable.len()) {
            self.unresolvable.shrink_to(2 * self.unresolvable.len());
        }
    }

    /// The open /proc directory and the pids it lists, sorted.
    pub(super) fn list_pids(&self) -> Result<(OwnedFd, Vec<u32>), ProcIndexError> {
        let root_error = |source: Errno| ProcIndexError::Root {
            path: self.root.clone(),
            source: source.into(),
        };
        let proc = rustix::fs::open(
            &self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(root_error)?;
        let mut pids = Vec::new();
        for entry in Dir::read_from(&proc).map_err(root_error)? {
            let entry = entry.map_err(root_error)?;
            if let Some(pid) = parse_u32(entry.file_name()) {
                pids.push(pid);
            }
        }
        pids.sort_unstable();
        Ok((proc, pids))
    }

    pub(super) fn forget_process(&mut self, pid: u32) {
        if let Some(process) = self.processes.remove(&pid) {
            for (_, inode) in process.fds.sockets() {
                if self.owners.get(inode).is_some_and(|o| o.pid == pid) {
                    self.owners.remove(inode);
                }
            }
        }
    }

    /// Scans one process: readlinks its fd slots not cached while `report.readlinks`
    /// stays under `limit`. Returns false when the limit left some unread (the process
    /// is still listed whole, so that its closed fds are dropped). Every error here is a
    /// normal event (the process exited, closed an fd mid-read, or is not ours to read)
    /// and only ends this process's scan.
    fn scan_process(
        &mut self,
        proc: &OwnedFd,
        pid: u32,
        limit: Option<u64>,
        report: &mut ScanReport,
    ) -> bool {
        let Some((dir, fd_dir)) = self.open_process(proc, pid, report) else {
            return true;
        };
        let Ok(entries) = Dir::read_from(&fd_dir) else {
            return true;
        };
        let Some(read) = self.read_slots(entries, &fd_dir, pid, limit, report) else {
            return true;
        };
        self.drop_closed_slots(pid);
        if read.found_socket {
            // comm changes on exec (same pid, same start time): refresh it whenever the
            // process shows a new socket, which is when its name starts to matter.
            if let Some(comm) = read_comm(&dir) {
                let name = self.intern(&comm);
                if let Some(process) = self.processes.get_mut(&pid) {
                    process.name = name;
                }
            }
        }
        read.finished
    }

    /// Opens `/proc/PID` and its fd directory, and makes sure the index holds the process
    /// as it is now (a reused pid is forgotten first). `None` when there is nothing to read:
    /// the process exited, or its fds are not ours to read (counted).
    fn open_process(
        &mut self,
        proc: &OwnedFd,
        pid: u32,
        report: &mut ScanReport,
    ) -> Option<(OwnedFd, OwnedFd)> {
        let dir = rustix::fs::openat(
            proc,
            pid.to_string(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let start_time = read_start_time(&dir)?;
        if self
            .processes
            .get(&pid)
            .is_some_and(|p| p.start_time != start_time)
        {
            // The pid was reused: nothing cached for it describes the new process.
            self.forget_process(pid);
        }
        let fd_dir = match rustix::fs::openat(
            &dir,
            "fd",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd_dir) => fd_dir,
            Err(Errno::ACCESS) | Err(Errno::PERM) => {
                report.permission_denied += 1;
                return None;
            }
            Err(_) => return None,
        };
        if !self.processes.contains_key(&pid) {
            report.new_processes += 1;
            let name = self.intern(read_comm(&dir).as_deref().unwrap_or("unknown"));
            self.processes.insert(
                pid,
                Process {
                    start_time,
                    name,
                    fds: FdSlots::default(),
                },
            );
        }
        Some((dir, fd_dir))
    }

    /// Reads the listed fd slots of `pid` the cache does not hold, within `limit`
    /// readlinks, and marks every listed fd in `self.listed`. `None` when the links refuse
    /// to be read (counted): the process's scan ends there.
    fn read_slots(
        &mut self,
        entries: Dir,
        fd_dir: &OwnedFd,
        pid: u32,
        limit: Option<u64>,
        report: &mut ScanReport,
    ) -> Option<SlotsRead> {
        let mut read = SlotsRead {
            found_socket: false,
            finished: true,
        };
        self.listed.clear();
        for entry in entries {
            let Ok(entry) = entry else { break };
            let Some(fd) = parse_u32(entry.file_name()) else {
                continue;
            };
            self.listed.insert(fd);
            let process = self
                .processes
                .get_mut(&pid)
                .expect("open_process inserted it");
            if let Some(cached) = process.fds.get(fd) {
                // A cached socket whose owner was dropped (the lower-pid holder exited) is
                // claimed again from the cache, without a readlink.
                if let Some(inode) = cached {
                    if !self.owners.contains(inode) {
                        self.claim(inode, pid, fd);
                    }
                }
                continue;
            }
            if limit.is_some_and(|limit| report.readlinks >= limit) {
                // Listed, not read: the next round reads it.
                read.finished = false;
                continue;
            }
            report.readlinks += 1;
            #[cfg(any(test, feature = "test-support"))]
            if let Some(hook) = &mut self.before_readlink {
                (hook.0)(pid, fd);
            }
            let len =
                match rustix::fs::readlinkat_raw(fd_dir, entry.file_name(), &mut self.link[..]) {
                    Ok(len) => len,
                    Err(Errno::ACCESS) | Err(Errno::PERM) => {
                        // Listable but not readable (a process that is not dumpable, or a
                        // security module's rule): every fd would fail alike, and none is
                        // cached, so each scan would pay them all again.
                        report.permission_denied += 1;
                        return None;
                    }
                    Err(_) => continue, // closed between readdir and readlink
                };
            let slot = parse_socket_link(&self.link[..len]);
            if let Some(old) = process.fds.set(fd, slot) {
                if Some(old) != slot
                    && self
                        .owners
                        .get(old)
                        .is_some_and(|o| o.pid == pid && o.fd == fd)
                {
                    self.owners.remove(old);
                }
            }
            if let Some(inode) = slot {
                read.found_socket = true;
                self.claim(inode, pid, fd);
            }
        }
        Some(read)
    }

    /// Closed fds (cached, no longer listed): drops their slots and the owners they gave.
    fn drop_closed_slots(&mut self, pid: u32) {
        let Some(process) = self.processes.get_mut(&pid) else {
            return;
        };
        for (fd, inode) in process.fds.keep_listed(&self.listed) {
            if self
                .owners
                .get(inode)
                .is_some_and(|o| o.pid == pid && o.fd == fd)
            {
                self.owners.remove(inode);
            }
        }
    }
}

/// Below this capacity a table is never shrunk: not worth a reallocation.
pub(super) const SHRINK_FLOOR: usize = 4096;

/// Low water: a table holding under a quarter of what it has room for, and room for
/// more than [`SHRINK_FLOOR`]. A hash table or vector only grows otherwise, so a burst
/// (a million sockets for a minute) would be held for the exporter's lifetime.
pub(super) fn shrinkable(capacity: usize, len: usize) -> bool {
    capacity > SHRINK_FLOOR.max(4 * len)
}

/// What reading one process's fd slots found.
struct SlotsRead {
    /// A socket was read (the process's name is refreshed).
    found_socket: bool,
    /// Every listed slot not cached was read: the budget did not stop in this process.
    finished: bool,
}
