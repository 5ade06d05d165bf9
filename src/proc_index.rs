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
//! holder with the lowest pid among those seen when it was first found; when that
//! process exits the socket goes to the lowest-pid remaining holder at the next scan.

use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
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
    /// Processes skipped by phase 1 because they live in another network namespace.
    pub other_netns: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Socket(u32),
    Other,
}

#[derive(Debug)]
struct FdEntry {
    slot: Slot,
    /// Scan generation that last saw this fd number in the directory.
    listed: u32,
}

#[derive(Debug)]
struct Process {
    start_time: u64,
    name: NameId,
    fds: FxHashMap<u32, FdEntry>,
}

#[derive(Debug, Clone, Copy)]
struct Owner {
    pid: u32,
    fd: u32,
    /// Poll generation that last saw the inode in a dump; 0 = never (a socket of another
    /// namespace, or one created after the dump).
    seen: u32,
}

/// The inode -> owner cache. Not thread-safe by design: the poller owns it and uses it
/// from one blocking task at a time.
#[derive(Debug)]
pub struct ProcIndex {
    root: PathBuf,
    processes: FxHashMap<u32, Process>,
    owners: FxHashMap<u32, Owner>,
    names: Vec<Arc<str>>,
    name_ids: FxHashMap<Arc<str>, NameId>,
    /// Dumped inodes a full pass could not find, by the poll generation that last saw them.
    unresolvable: FxHashMap<u32, u32>,
    poll: u32,
    scan: u32,
    link: Vec<u8>,
}

impl ProcIndex {
    /// An empty index over the proc filesystem at `root` (normally `/proc`).
    pub fn new(root: impl Into<PathBuf>) -> ProcIndex {
        ProcIndex {
            root: root.into(),
            processes: FxHashMap::default(),
            owners: FxHashMap::default(),
            names: Vec::new(),
            name_ids: FxHashMap::default(),
            unresolvable: FxHashMap::default(),
            poll: 0,
            scan: 0,
            link: vec![0; 64],
        }
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
    pub fn lookup(&mut self, inode: u32) -> Option<NameId> {
        let poll = self.poll;
        let owner = self.owners.get_mut(&inode)?;
        owner.seen = poll;
        let process = self.processes.get(&owner.pid)?;
        Some(process.name)
    }

    /// True when `inode` is known to be beyond reach; marks it as still alive.
    pub fn is_unresolvable(&mut self, inode: u32) -> bool {
        match self.unresolvable.get_mut(&inode) {
            Some(seen) => {
                *seen = self.poll;
                true
            }
            None => false,
        }
    }

    pub fn name(&self, id: NameId) -> &Arc<str> {
        &self.names[id as usize]
    }

    /// Ends the dump part of a poll: forgets inodes the dump no longer showed, and frees
    /// their fd slots so that a reused fd number is read again.
    pub fn sweep(&mut self) {
        let poll = self.poll;
        let processes = &mut self.processes;
        self.owners.retain(|_, owner| {
            let alive = owner.seen == 0 || owner.seen == poll;
            if !alive {
                if let Some(process) = processes.get_mut(&owner.pid) {
                    process.fds.remove(&owner.fd);
                }
            }
            alive
        });
        self.unresolvable.retain(|_, seen| *seen == poll);
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
            if let Some(owner) = self.owners.get_mut(inode) {
                owner.seen = poll;
            }
        }
        for inode in self.unresolved(missing) {
            self.unresolvable.insert(inode, poll);
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
            .filter(|inode| !self.owners.contains_key(inode))
            .collect::<FxHashSet<u32>>()
            .into_iter()
            .collect()
    }

    fn scan_all(&mut self, full: bool, report: &mut ScanReport) -> Result<(), ProcIndexError> {
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

    fn forget_process(&mut self, pid: u32) {
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

    fn claim(&mut self, inode: u32, pid: u32, fd: u32) {
        self.unresolvable.remove(&inode);
        match self.owners.get_mut(&inode) {
            Some(owner) if owner.pid < pid && self.processes.contains_key(&owner.pid) => {}
            Some(owner) => {
                owner.pid = pid;
                owner.fd = fd;
            }
            None => {
                self.owners.insert(inode, Owner { pid, fd, seen: 0 });
            }
        }
    }

    fn intern(&mut self, name: &str) -> NameId {
        if let Some(id) = self.name_ids.get(name) {
            return *id;
        }
        let id = self.names.len() as NameId;
        let name: Arc<str> = Arc::from(name);
        self.names.push(Arc::clone(&name));
        self.name_ids.insert(name, id);
        id
    }
}

impl crate::aggregate::Owners for ProcIndex {
    fn owner(&mut self, inode: u32) -> Option<crate::aggregate::Owner> {
        use crate::aggregate::Owner;
        match self.lookup(inode) {
            Some(id) => Some(Owner::Process(id)),
            None if self.is_unresolvable(inode) => Some(Owner::Unknown),
            None => None,
        }
    }

    fn settle(&mut self, inode: u32) -> crate::aggregate::Owner {
        use crate::aggregate::Owner;
        match self.lookup(inode) {
            Some(id) => Owner::Process(id),
            None => Owner::Unknown,
        }
    }

    fn name(&self, id: NameId) -> Arc<str> {
        Arc::clone(ProcIndex::name(self, id))
    }
}

/// Default proc root.
pub fn default_root() -> &'static Path {
    Path::new("/proc")
}

fn parse_u32(name: &CStr) -> Option<u32> {
    let bytes = name.to_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Parses an fd symlink target `socket:[12345]`.
pub fn parse_socket_link(link: &[u8]) -> Option<u32> {
    let inner = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(inner).ok()?.parse().ok()
}

/// Field 22 (starttime) of /proc/PID/stat. The comm field may hold spaces and ')', so
/// fields are counted from the last ')'.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The network namespace inode of a `.../ns/net` link (`net:[4026531840]`).
fn read_netns(dir: &OwnedFd, link: &str) -> Option<u64> {
    let mut buf = [0u8; 64];
    let len = rustix::fs::readlinkat_raw(dir, link, &mut buf[..]).ok()?;
    let inner = buf[..len].strip_prefix(b"net:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(inner).ok()?.parse().ok()
}

fn read_small(dir: &OwnedFd, name: &str) -> Option<String> {
    let file = rustix::fs::openat(
        dir.as_fd(),
        name,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = [0u8; 1024];
    let n = rustix::io::read(&file, &mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn read_start_time(dir: &OwnedFd) -> Option<u64> {
    parse_start_time(&read_small(dir, "stat")?)
}

fn read_comm(dir: &OwnedFd) -> Option<String> {
    let comm = read_small(dir, "comm")?;
    Some(comm.trim_end_matches('\n').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link(b"socket:[12345]"), Some(12345));
        assert_eq!(parse_socket_link(b"socket:[4294967295]"), Some(u32::MAX));
        assert_eq!(parse_socket_link(b"pipe:[12345]"), None);
        assert_eq!(parse_socket_link(b"/dev/null"), None);
        assert_eq!(parse_socket_link(b"socket:[]"), None);
        assert_eq!(parse_socket_link(b"socket:[12"), None);
    }

    #[test]
    fn start_time_skips_comm_with_spaces_and_parens() {
        let stat = "4242 (we) ird) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        assert_eq!(parse_start_time(stat), Some(987_654));
        assert_eq!(parse_start_time("garbage"), None);
    }

    /// A fake /proc: PID/{comm,stat,fd/N -> target}.
    struct FakeProc(PathBuf);

    impl FakeProc {
        fn new(tag: &str) -> FakeProc {
            let root =
                std::env::temp_dir().join(format!("sockdiag-proc-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            FakeProc(root)
        }
        fn process(&self, pid: u32, comm: &str, start: u64) {
            let dir = self.0.join(pid.to_string());
            std::fs::create_dir_all(dir.join("fd")).unwrap();
            std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(
                dir.join("stat"),
                format!("{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0"),
            )
            .unwrap();
        }
        fn fd(&self, pid: u32, fd: u32, target: &str) {
            let path = self.0.join(pid.to_string()).join("fd").join(fd.to_string());
            let _ = std::fs::remove_file(&path);
            symlink(target, path).unwrap();
        }
        fn close(&self, pid: u32, fd: u32) {
            std::fs::remove_file(self.0.join(pid.to_string()).join("fd").join(fd.to_string()))
                .unwrap();
        }
        fn exit(&self, pid: u32) {
            std::fs::remove_dir_all(self.0.join(pid.to_string())).unwrap();
        }
    }

    impl Drop for FakeProc {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn owner_name(index: &mut ProcIndex, inode: u32) -> Option<String> {
        index.lookup(inode).map(|id| index.name(id).to_string())
    }

    #[test]
    fn resolves_and_then_only_reads_new_slots() {
        let proc = FakeProc::new("incremental");
        proc.process(100, "nginx", 1);
        proc.process(200, "php-fpm", 2);
        proc.fd(100, 3, "socket:[1000]");
        proc.fd(100, 4, "/var/log/access.log");
        proc.fd(200, 5, "socket:[2000]");
        let mut index = ProcIndex::new(&proc.0);
        index.begin_poll();
        assert_eq!(owner_name(&mut index, 1000), None);
        let report = index.resolve(&[1000, 2000]).unwrap();
        assert_eq!(report.readlinks, 3);
        assert_eq!(report.unresolved, 0);
        assert_eq!(owner_name(&mut index, 1000).as_deref(), Some("nginx"));
        assert_eq!(owner_name(&mut index, 2000).as_deref(), Some("php-fpm"));
        index.sweep();

        // A new socket: only its slot (and the uncached-but-listed others: none) is read.
        proc.fd(200, 6, "socket:[2001]");
        index.begin_poll();
        assert!(index.lookup(1000).is_some());
        assert!(index.lookup(2000).is_some());
        assert_eq!(index.lookup(2001), None);
        index.sweep();
        let report = index.resolve(&[2001]).unwrap();
        assert_eq!(report.readlinks, 1, "only the new fd slot is read");
        assert_eq!(owner_name(&mut index, 2001).as_deref(), Some("php-fpm"));
    }

    #[test]
    fn reused_fd_number_is_read_again_after_the_old_socket_dies() {
        let proc = FakeProc::new("reuse");
        proc.process(100, "app", 1);
        proc.fd(100, 3, "socket:[1000]");
        let mut index = ProcIndex::new(&proc.0);
        index.begin_poll();
        index.resolve(&[1000]).unwrap();
        index.sweep();
        // Socket 1000 closed; fd 3 now holds socket 1001. The dump shows only 1001.
        proc.fd(100, 3, "socket:[1001]");
        index.begin_poll();
        assert_eq!(index.lookup(1001), None);
        index.sweep();
        let report = index.resolve(&[1001]).unwrap();
        assert_eq!(
            report.scans, 1,
            "phase 1 suffices once the dead slot is swept"
        );
        assert_eq!(owner_name(&mut index, 1001).as_deref(), Some("app"));
    }

    #[test]
    fn slot_reused_by_another_kind_needs_the_full_pass() {
        let proc = FakeProc::new("kind");
        proc.process(100, "app", 1);
        proc.fd(100, 3, "/etc/hosts");
        let mut index = ProcIndex::new(&proc.0);
        index.begin_poll();
        index.warm().unwrap();
        proc.fd(100, 3, "socket:[7]");
        index.sweep();
        let report = index.resolve(&[7]).unwrap();
        assert_eq!(report.scans, 2);
        assert_eq!(owner_name(&mut index, 7).as_deref(), Some("app"));
    }

    #[test]
    fn shared_socket_goes_to_the_lowest_pid_then_to_the_survivor() {
        let proc = FakeProc::new("shared");
        proc.process(300, "worker", 3);
        proc.process(100, "master", 1);
        proc.fd(300, 3, "socket:[9]");
        proc.fd(100, 3, "socket:[9]");
        let mut index = ProcIndex::new(&proc.0);
        index.begin_poll();
        index.resolve(&[9]).unwrap();
        assert_eq!(owner_name(&mut index, 9).as_deref(), Some("master"));
        index.sweep();
        proc.exit(100);
        index.begin_poll();
        index.lookup(9);
        index.sweep();
        // The next scan (any new socket triggers one) drops the dead master.
        proc.fd(300, 4, "socket:[10]");
        index.resolve(&[10]).unwrap();
        assert_eq!(owner_name(&mut index, 9).as_deref(), Some("worker"));
    }

    #[test]
    fn unreachable_inode_is_reported_once_not_chased() {
        let proc = FakeProc::new("unreachable");
        proc.process(100, "app", 1);
        let mut index = ProcIndex::new(&proc.0);
        index.begin_poll();
        let report = index.resolve(&[55]).unwrap();
        assert_eq!(report.unresolved, 1);
        index.sweep();
        index.begin_poll();
        assert_eq!(index.lookup(55), None);
        assert!(index.is_unresolvable(55));
        index.sweep();
        assert!(index.is_unresolvable(55), "still dumped, still remembered");
        index.begin_poll();
        index.sweep();
        assert!(!index.is_unresolvable(55), "gone from the dump, forgotten");
    }

    #[test]
    fn closed_fd_and_reused_pid_drop_their_owners() {
        let proc = FakeProc::new("pidreuse");
        proc.process(100, "old", 1);
        proc.fd(100, 3, "socket:[1]");
        let mut index = ProcIndex::new(&proc.0);
        index.begin_poll();
        index.resolve(&[1]).unwrap();
        proc.exit(100);
        proc.process(100, "new", 2);
        proc.fd(100, 3, "socket:[2]");
        index.resolve(&[2]).unwrap();
        assert_eq!(owner_name(&mut index, 2).as_deref(), Some("new"));
        assert_eq!(owner_name(&mut index, 1), None);
        proc.close(100, 3);
        proc.fd(100, 4, "socket:[3]");
        index.resolve(&[3]).unwrap();
        assert_eq!(
            owner_name(&mut index, 2),
            None,
            "closed fd's socket is no longer owned"
        );
    }

    #[test]
    fn phase_1_skips_other_network_namespaces_and_phase_2_does_not() {
        let proc = FakeProc::new("netns");
        std::fs::create_dir_all(proc.0.join("thread-self/ns")).unwrap();
        symlink("net:[100]", proc.0.join("thread-self/ns/net")).unwrap();
        proc.process(10, "ours", 1);
        proc.process(20, "container", 2);
        std::fs::create_dir_all(proc.0.join("10/ns")).unwrap();
        std::fs::create_dir_all(proc.0.join("20/ns")).unwrap();
        symlink("net:[100]", proc.0.join("10/ns/net")).unwrap();
        symlink("net:[200]", proc.0.join("20/ns/net")).unwrap();
        for fd in 0..50 {
            proc.fd(20, fd, &format!("socket:[{}]", 5000 + fd));
        }
        proc.fd(10, 3, "socket:[1]");
        let mut index = ProcIndex::new(&proc.0);
        index.begin_poll();
        let report = index.resolve(&[1]).unwrap();
        assert_eq!(
            (report.scans, report.readlinks, report.other_netns),
            (1, 1, 1)
        );
        assert_eq!(owner_name(&mut index, 1).as_deref(), Some("ours"));
        // A socket of our namespace held by a process of another one: only phase 2 finds it.
        proc.fd(20, 60, "socket:[2]");
        let report = index.resolve(&[2]).unwrap();
        assert_eq!(report.scans, 2);
        assert_eq!(owner_name(&mut index, 2).as_deref(), Some("container"));
    }

    #[test]
    fn missing_root_is_an_error_naming_it() {
        let mut index = ProcIndex::new("/nonexistent-proc");
        index.begin_poll();
        let error = index.resolve(&[1]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot read /nonexistent-proc: No such file or directory (os error 2)"
        );
    }
}
