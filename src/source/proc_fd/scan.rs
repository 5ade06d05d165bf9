//! The /proc walk that fills the index: which pids exist, which fd slots are new, and
//! what they point at.

use super::*;

impl ProcIndex {
    pub(super) fn scan_all(
        &mut self,
        full: bool,
        report: &mut ScanReport,
    ) -> Result<(), ProcIndexError> {
        self.scan = self.scan.wrapping_add(1).max(1);
        report.scans += 1;
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
        // Phase 1 reads only processes of our own network namespace: a socket belongs to
        // the namespace it was created in, which is nearly always its holder's. Phase 2
        // (`full`) reads every process, for the rare socket held across namespaces.
        let own_netns = if full {
            None
        } else {
            read_netns(&proc, "thread-self/ns/net")
        };
        for pid in pids {
            self.scan_process(&proc, pid, own_netns, full, report);
        }
        Ok(())
    }

    pub(super) fn forget_process(&mut self, pid: u32) {
        if let Some(process) = self.processes.remove(&pid) {
            for entry in process.fds.values() {
                if let Slot::Socket(inode) = entry.slot {
                    if self.owners.get(&inode).is_some_and(|o| o.pid == pid) {
                        self.owners.remove(&inode);
                    }
                }
            }
        }
    }

    /// Scans one process. Every error here is a normal event (the process exited, closed
    /// an fd mid-read, or is not ours to read) and only ends this process's scan.
    fn scan_process(
        &mut self,
        proc: &OwnedFd,
        pid: u32,
        own_netns: Option<u64>,
        full: bool,
        report: &mut ScanReport,
    ) {
        let Ok(dir) = rustix::fs::openat(
            proc,
            pid.to_string(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        if let Some(own) = own_netns {
            // A process whose namespace cannot be read is scanned, not skipped.
            if read_netns(&dir, "ns/net").is_some_and(|theirs| theirs != own) {
                report.other_netns += 1;
                return;
            }
        }
        let Some(start_time) = read_start_time(&dir) else {
            return;
        };
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
                return;
            }
            Err(_) => return,
        };
        if !self.processes.contains_key(&pid) {
            let name = self.intern(read_comm(&dir).as_deref().unwrap_or("unknown"));
            self.processes.insert(
                pid,
                Process {
                    start_time,
                    name,
                    fds: FxHashMap::default(),
                },
            );
        }
        let Ok(entries) = Dir::read_from(&fd_dir) else {
            return;
        };
        let scan = self.scan;
        let mut found_socket = false;
        for entry in entries {
            let Ok(entry) = entry else { break };
            let Some(fd) = parse_u32(entry.file_name()) else {
                continue;
            };
            let process = self.processes.get_mut(&pid).expect("inserted above");
            if let Some(cached) = process.fds.get_mut(&fd) {
                cached.listed = scan;
                if !full {
                    // A cached socket whose owner was dropped (the lower-pid holder
                    // exited) is claimed again from the cache, without a readlink.
                    if let Slot::Socket(inode) = cached.slot {
                        if !self.owners.contains_key(&inode) {
                            self.claim(inode, pid, fd);
                        }
                    }
                    continue;
                }
            }
            report.readlinks += 1;
            let Ok(len) =
                rustix::fs::readlinkat_raw(&fd_dir, entry.file_name(), &mut self.link[..])
            else {
                continue; // closed between readdir and readlink
            };
            let slot = match parse_socket_link(&self.link[..len]) {
                Some(inode) => Slot::Socket(inode),
                None => Slot::Other,
            };
            let previous = process.fds.insert(fd, FdEntry { slot, listed: scan });
            if let Some(FdEntry {
                slot: Slot::Socket(old),
                ..
            }) = previous
            {
                if Slot::Socket(old) != slot
                    && self
                        .owners
                        .get(&old)
                        .is_some_and(|o| o.pid == pid && o.fd == fd)
                {
                    self.owners.remove(&old);
                }
            }
            if let Slot::Socket(inode) = slot {
                found_socket = true;
                self.claim(inode, pid, fd);
            }
        }
        let process = self.processes.get_mut(&pid).expect("inserted above");
        // Closed fds: drop their slots (and the owners they gave).
        let mut closed = Vec::new();
        process.fds.retain(|fd, entry| {
            let open = entry.listed == scan;
            if !open {
                if let Slot::Socket(inode) = entry.slot {
                    closed.push((inode, *fd));
                }
            }
            open
        });
        for (inode, fd) in closed {
            if self
                .owners
                .get(&inode)
                .is_some_and(|o| o.pid == pid && o.fd == fd)
            {
                self.owners.remove(&inode);
            }
        }
        if found_socket {
            // comm changes on exec (same pid, same start time): refresh it whenever the
            // process shows a new socket, which is when its name starts to matter.
            if let Some(comm) = read_comm(&dir) {
                let name = self.intern(&comm);
                if let Some(process) = self.processes.get_mut(&pid) {
                    process.name = name;
                }
            }
        }
    }
}
