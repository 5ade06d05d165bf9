//! The first poll's full scan (the warm-up before its dumps), on several threads.
//!
//! Kernel interface: as the scan's, `/proc/PID/{stat,comm}` and a readlink of every
//! `/proc/PID/fd/N`. On a cold index nothing is cached, so every fd slot of every process
//! is read: 288k readlinks at 1.1M sockets, 39% of a first poll that ran on one thread.
//! Readlinks of different processes do not contend in the kernel (each takes its own
//! task's file table), so worker threads take processes one at a time and read them
//! without touching the index; each hands what one process held to the index under a
//! lock, so at most one process's slots per thread are held aside.
//!
//! The owner of a socket several processes hold is the lowest pid whatever order the
//! processes join in ([`ProcIndex::claim`] keeps the lower one).

use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

use super::slots::Slot;
use super::*;

/// Threads of the warm-up at most (one when the host has one CPU). The poll runs once a
/// first poll; more threads than this mostly wait on each other's /proc locks.
const WARM_THREADS: usize = 4;

/// One process as a warm-up thread read it, before it joins the index.
struct Read {
    pid: u32,
    start_time: u64,
    comm: Option<String>,
    /// Every fd listed, with what it held when read; `None` slot for anything else
    /// than a socket. An fd closed between readdir and readlink is absent.
    slots: Vec<(u32, Slot)>,
    readlinks: u64,
    /// A readlink was refused: the rest of its fds were not tried.
    denied: bool,
}

/// What reading one process gave.
enum Outcome {
    Read(Read),
    /// Its fd directory is not ours to read.
    Denied,
    /// Exited (or never a process: a pid directory that vanished).
    Gone,
}

/// The test seam, shared by the workers (called under a lock, in the order they read).
#[cfg(any(test, feature = "test-support"))]
type Hook = Mutex<Option<BeforeReadlink>>;
#[cfg(not(any(test, feature = "test-support")))]
type Hook = ();

impl ProcIndex {
    /// A full scan without a dump (the first poll's warm-up), on up to [`WARM_THREADS`]
    /// threads: one when a test hook is set, whose tests make processes change at exact
    /// points of the scan's order. On an index that already holds processes this is a
    /// scan round on the calling thread.
    pub fn warm(&mut self) -> Result<ScanReport, ProcIndexError> {
        let mut report = ScanReport::default();
        self.cursor = None;
        if self.processes.is_empty() {
            self.warm_cold(&mut report)?;
        } else {
            self.scan_all(None, &mut report)?;
        }
        self.warmed = self.poll;
        report.full_passes += 1;
        Ok(report)
    }

    fn warm_cold(&mut self, report: &mut ScanReport) -> Result<(), ProcIndexError> {
        let (proc, pids) = self.list_pids()?;
        self.scan = self.scan.wrapping_add(1).max(1);
        report.scans += 1;
        #[cfg(any(test, feature = "test-support"))]
        let (hook, threads): (Hook, usize) = {
            let hook = self.before_readlink.take();
            let threads = if hook.is_some() { 1 } else { warm_threads() };
            (Mutex::new(hook), threads)
        };
        #[cfg(not(any(test, feature = "test-support")))]
        let (hook, threads): (Hook, usize) = ((), warm_threads());
        let next = AtomicUsize::new(0);
        let shared = Mutex::new((&mut *self, &mut *report));
        let work = || {
            let mut link = vec![0u8; 64];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&pid) = pids.get(i) else { break };
                let outcome = read_process(&proc, pid, &mut link, &hook);
                let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
                let (index, report) = &mut *guard;
                match outcome {
                    Outcome::Read(read) => index.join(read, report),
                    Outcome::Denied => report.permission_denied += 1,
                    Outcome::Gone => {}
                }
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..threads.min(pids.len()) {
                scope.spawn(work);
            }
            work();
        });
        #[cfg(any(test, feature = "test-support"))]
        {
            self.before_readlink = hook.into_inner().unwrap_or_else(|p| p.into_inner());
        }
        self.owners.merge();
        Ok(())
    }

    /// Adds a process read by a warm-up thread: its slots, and the sockets it holds.
    fn join(&mut self, read: Read, report: &mut ScanReport) {
        report.readlinks += read.readlinks;
        report.permission_denied += u32::from(read.denied);
        report.new_processes += 1;
        let name = self.intern(read.comm.as_deref().unwrap_or("unknown"));
        let mut fds = FdSlots::default();
        for &(fd, slot) in &read.slots {
            fds.set(fd, slot);
        }
        self.processes.insert(
            read.pid,
            Process {
                start_time: read.start_time,
                name,
                fds,
            },
        );
        for (fd, slot) in read.slots {
            if let Some(inode) = slot {
                self.claim(inode, read.pid, fd);
            }
        }
    }
}

fn warm_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(WARM_THREADS)
}

/// Reads one process without the index: its start time, comm and every fd slot. Every
/// error is a normal event (the process exited, closed an fd mid-read, or is not ours to
/// read), as in the scan.
fn read_process(proc: &OwnedFd, pid: u32, link: &mut [u8], hook: &Hook) -> Outcome {
    let _ = hook;
    let Ok(dir) = rustix::fs::openat(
        proc,
        pid.to_string(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return Outcome::Gone;
    };
    let Some(start_time) = read_start_time(&dir) else {
        return Outcome::Gone;
    };
    let fd_dir = match rustix::fs::openat(
        &dir,
        "fd",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd_dir) => fd_dir,
        Err(Errno::ACCESS) | Err(Errno::PERM) => return Outcome::Denied,
        Err(_) => return Outcome::Gone,
    };
    let comm = read_comm(&dir);
    let mut read = Read {
        pid,
        start_time,
        comm,
        slots: Vec::new(),
        readlinks: 0,
        denied: false,
    };
    let Ok(entries) = Dir::read_from(&fd_dir) else {
        return Outcome::Read(read);
    };
    for entry in entries {
        let Ok(entry) = entry else { break };
        let Some(fd) = parse_u32(entry.file_name()) else {
            continue;
        };
        read.readlinks += 1;
        #[cfg(any(test, feature = "test-support"))]
        if let Some(hook) = &mut *hook.lock().unwrap_or_else(|p| p.into_inner()) {
            (hook.0)(pid, fd);
        }
        let len = match rustix::fs::readlinkat_raw(&fd_dir, entry.file_name(), &mut *link) {
            Ok(len) => len,
            // Listable but not readable: every fd would fail alike (see the scan).
            Err(Errno::ACCESS) | Err(Errno::PERM) => {
                read.denied = true;
                break;
            }
            Err(_) => continue, // closed between readdir and readlink
        };
        read.slots.push((fd, parse_socket_link(&link[..len])));
    }
    Outcome::Read(read)
}
