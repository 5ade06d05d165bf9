//! Attribution under churn (issue 27), through the glue the collector runs: a fake /proc,
//! the dump's lookups through [`Owners`], and every readlink counted by the index's hook.

use std::sync::{Arc, Mutex};

use super::*;
use crate::source::proc_fd::fake::FakeProc;
use crate::source::proc_fd::{readlink_budget, ScanReport, READLINK_BUDGET_FLOOR};

/// A /proc index over a fake tree, with every readlink it makes recorded as (pid, fd).
struct Rig {
    proc: FakeProc,
    index: ProcIndex,
    read: Arc<Mutex<Vec<(u32, u32)>>>,
}

impl Rig {
    fn new(tag: &str) -> Rig {
        let proc = FakeProc::new(tag);
        let mut index = ProcIndex::new(&proc.0);
        let read = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&read);
        index.before_readlink(move |pid, fd| log.lock().unwrap().push((pid, fd)));
        Rig { proc, index, read }
    }

    /// One poll as the collector runs it: begin (the warm-up on the first), the dump
    /// asking for the owner of every inode in `dumped`, the scan for those it could not
    /// settle, and then the owners the folds settle. Checks that the report counted
    /// every readlink the hook saw.
    fn poll(&mut self, dumped: &[u32]) -> (ScanReport, Vec<Owner>) {
        self.read.lock().unwrap().clear();
        let mut notes = PollNotes::default();
        begin(&mut self.index, &mut notes);
        let missing: Vec<u32> = dumped
            .iter()
            .copied()
            .filter(|&inode| self.index.owner(inode).is_none())
            .collect();
        resolve(&mut self.index, &missing, &mut notes);
        assert!(notes.proc_index_error.is_none(), "{notes:?}");
        assert_eq!(
            notes.scan.readlinks,
            self.read.lock().unwrap().len() as u64,
            "every readlink counted"
        );
        let owners = dumped
            .iter()
            .map(|&inode| {
                self.index
                    .owner(inode)
                    .unwrap_or_else(|| self.index.settle(inode))
            })
            .collect();
        (notes.scan, owners)
    }

    fn named(&self, owners: &[Owner]) -> Vec<String> {
        owners
            .iter()
            .map(|owner| match owner {
                Owner::Process(id) => self.index.name(id.0).to_string(),
                Owner::Pending => "pending".into(),
                Owner::Unknown => "unknown".into(),
                Owner::Nobody => String::new(),
            })
            .collect()
    }

    fn readlinks_of(&self, pid: u32) -> usize {
        self.read
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| *p == pid)
            .count()
    }
}

/// (scans, readlinks, full passes, pending, unresolved, budget stopped) of a poll.
fn figures(report: &ScanReport) -> (u32, u64, u32, u32, u32, bool) {
    (
        report.scans,
        report.readlinks,
        report.full_passes,
        report.pending,
        report.unresolved,
        report.budget_stopped,
    )
}

/// The churn that made 77% of polls re-read every fd slot: a socket dumped, then closed
/// (its process exited) before the scan. Its inode is pending for that poll, the next
/// dump no longer shows it, and no full pass is made for it.
#[test]
fn a_vanished_inode_triggers_no_full_pass() {
    let mut rig = Rig::new("vanished");
    rig.proc.process(100, "nginx", 1);
    rig.proc.fd(100, 3, "socket:[1000]");
    rig.proc.fd(100, 4, "/var/log/access.log");
    let (report, owners) = rig.poll(&[1000]);
    assert_eq!(figures(&report), (1, 2, 1, 0, 0, false), "the warm-up");
    assert_eq!(rig.named(&owners), ["nginx"]);

    // Dumped, then gone with its process before the scan (here: before the poll's scan;
    // the dump still lists it).
    rig.proc.process(200, "curl", 2);
    rig.proc.fd(200, 3, "socket:[2000]");
    rig.index.before_readlink({
        let root = rig.proc.0.clone();
        let log = Arc::clone(&rig.read);
        move |pid, fd| {
            log.lock().unwrap().push((pid, fd));
            if pid == 200 {
                // Exits between listing its fds and reading them.
                let _ = std::fs::remove_dir_all(root.join("200"));
            }
        }
    });
    let (report, owners) = rig.poll(&[1000, 2000]);
    assert_eq!(
        figures(&report),
        (1, 1, 0, 1, 0, false),
        "one readlink (curl's fd 3, failed), no full pass"
    );
    assert_eq!(
        (report.new_sockets, report.new_processes),
        (1, 1),
        "what the budget and the soak measure readlinks against: socket 2000 and curl"
    );
    assert_eq!(rig.named(&owners), ["nginx", "pending"]);

    // The next dump does not show it: nothing pending, nothing read.
    let (report, owners) = rig.poll(&[1000]);
    assert_eq!(figures(&report), (0, 0, 0, 0, 0, false));
    assert_eq!(rig.named(&owners), ["nginx"]);
    assert!(!rig.index.is_pending(2000));
    assert!(!rig.index.is_unresolvable(2000));
}

/// A socket in an fd slot the cache holds as something else (a file closed, a socket
/// opened on its number): phase 1 cannot see it. It is pending for one poll, and named by
/// the full pass of the next, which reads every slot once.
#[test]
fn a_socket_in_a_reused_fd_slot_is_pending_one_poll_then_named() {
    let mut rig = Rig::new("reused-slot");
    rig.proc.process(100, "app", 1);
    rig.proc.fd(100, 3, "/etc/hosts");
    rig.proc.fd(100, 4, "socket:[1000]");
    rig.proc.process(200, "db", 2);
    rig.proc.fd(200, 3, "socket:[2000]");
    let (report, _) = rig.poll(&[1000, 2000]);
    assert_eq!(report.readlinks, 3);

    rig.proc.fd(100, 3, "socket:[1001]");
    let (report, owners) = rig.poll(&[1000, 2000, 1001]);
    assert_eq!(figures(&report), (1, 0, 0, 1, 0, false));
    assert_eq!(rig.named(&owners), ["app", "db", "pending"]);

    let (report, owners) = rig.poll(&[1000, 2000, 1001]);
    assert_eq!(
        figures(&report),
        (2, 3, 1, 0, 0, false),
        "phase 1 reads nothing, the full pass every slot once"
    );
    assert_eq!(rig.named(&owners), ["app", "db", "app"]);

    // Settled: the next poll reads nothing.
    let (report, owners) = rig.poll(&[1000, 2000, 1001]);
    assert_eq!(figures(&report), (0, 0, 0, 0, 0, false));
    assert_eq!(rig.named(&owners), ["app", "db", "app"]);
}

/// The stale slot of a socket no dump showed (created after the dump, or in a namespace
/// not sampled): its owner entry outlives its close, and its slot hides the socket that
/// reuses the fd number. Pending one poll, then named by reading again only the slots of
/// the sockets no dump showed, without a full pass (the churn soak's most common case:
/// sockets that live between two dumps on reused fd numbers).
#[test]
fn a_socket_reusing_the_slot_of_one_never_dumped_is_named_at_the_next_poll_without_a_full_pass() {
    let mut rig = Rig::new("never-dumped");
    rig.proc.process(100, "app", 1);
    rig.proc.fd(100, 3, "socket:[1000]");
    rig.proc.fd(100, 4, "socket:[1500]");
    let (_, owners) = rig.poll(&[1000]);
    assert_eq!(rig.named(&owners), ["app"]);

    // 1500 closes, unseen by any dump; fd 4 now holds 1501.
    rig.proc.fd(100, 4, "socket:[1501]");
    let (report, owners) = rig.poll(&[1000, 1501]);
    assert_eq!(figures(&report), (1, 0, 0, 1, 0, false));
    assert_eq!(rig.named(&owners), ["app", "pending"]);

    let (report, owners) = rig.poll(&[1000, 1501]);
    assert_eq!(
        figures(&report),
        (1, 1, 0, 0, 0, false),
        "fd 4 read again, not fd 3 (socket 1000 was dumped)"
    );
    assert_eq!(*rig.read.lock().unwrap(), [(100, 4)]);
    assert_eq!(rig.named(&owners), ["app", "app"]);
}

/// A socket a full pass cannot find (another user's process without privileges, a
/// socket in flight over a unix socket) is pending one poll, unknown from the full pass
/// of the next, and not chased again while it lives.
#[test]
fn an_inode_a_full_pass_cannot_find_is_unknown_and_not_chased() {
    let mut rig = Rig::new("beyond");
    rig.proc.process(100, "app", 1);
    rig.proc.fd(100, 3, "socket:[1000]");
    rig.poll(&[1000]);
    let (report, owners) = rig.poll(&[1000, 77]);
    assert_eq!(figures(&report), (1, 0, 0, 1, 0, false));
    assert_eq!(rig.named(&owners), ["app", "pending"]);
    let (report, owners) = rig.poll(&[1000, 77]);
    assert_eq!(figures(&report), (2, 1, 1, 0, 1, false));
    assert_eq!(rig.named(&owners), ["app", "unknown"]);
    let (report, owners) = rig.poll(&[1000, 77]);
    assert_eq!(figures(&report), (0, 0, 0, 0, 0, false));
    assert_eq!(rig.named(&owners), ["app", "unknown"]);
}

/// The first poll is exact and makes one full pass only, its warm-up: what phase 1 then
/// does not find is unknown at once ("no second full pass on a host with 200
/// namespaces"), never pending.
#[test]
fn the_first_poll_runs_one_full_pass_only() {
    let mut rig = Rig::new("first");
    for pid in [100, 200, 300] {
        rig.proc.process(pid, "app", u64::from(pid));
        rig.proc.fd(pid, 3, &format!("socket:[{}]", pid * 10));
        rig.proc.fd(pid, 4, "/dev/null");
    }
    // Sockets opened after the warm-up read their process: one on a new fd (phase 1
    // reads it), one on the number of a file the warm-up read (phase 1 cannot see it),
    // and one dumped then closed (4242).
    let root = rig.proc.0.clone();
    let mut opened = false;
    let log = Arc::clone(&rig.read);
    rig.index.before_readlink(move |pid, fd| {
        log.lock().unwrap().push((pid, fd));
        if pid == 300 && !opened {
            opened = true;
            std::os::unix::fs::symlink("socket:[1005]", root.join("100/fd/5")).unwrap();
        }
    });
    rig.index.begin_poll();
    let warm = rig.index.warm().unwrap();
    assert_eq!((warm.scans, warm.readlinks, warm.full_passes), (1, 6, 1));
    rig.proc.fd(200, 4, "socket:[2001]");
    let dumped = [1000, 2000, 3000, 1005, 2001, 4242];
    let missing: Vec<u32> = dumped
        .iter()
        .copied()
        .filter(|&inode| rig.index.owner(inode).is_none())
        .collect();
    assert_eq!(missing, [1005, 2001, 4242]);
    rig.read.lock().unwrap().clear();
    let mut notes = PollNotes::default();
    resolve(&mut rig.index, &missing, &mut notes);
    assert_eq!(
        figures(&notes.scan),
        (1, 1, 0, 0, 2, false),
        "phase 1 reads fd 5 of pid 100, and no second pass"
    );
    assert_eq!(*rig.read.lock().unwrap(), [(100, 5)]);
    let owners: Vec<Owner> = dumped.iter().map(|&i| rig.index.settle(i)).collect();
    assert_eq!(
        rig.named(&owners),
        ["app", "app", "app", "app", "unknown", "unknown"]
    );
}

/// Past its budget a steady poll's scan stops; the sockets it did not reach are pending;
/// the next poll resumes at the process where it stopped (not at the lowest pid, which
/// would starve the others) and names them. While the round is unfinished, a socket
/// pending for more than a poll makes no full pass.
#[test]
fn the_budget_stops_the_scan_and_the_next_poll_resumes_it() {
    let mut rig = Rig::new("budget");
    rig.proc.process(100, "first", 1);
    rig.proc.fd(100, 3, "socket:[1000]");
    rig.proc.process(200, "opener", 2);
    rig.proc.process(300, "last", 3);
    rig.proc.fd(300, 3, "socket:[3000]");
    rig.poll(&[1000, 3000]);
    // After the warm-up: pid 100 gets a new socket, pid 200 opens 2.5 budgets of files,
    // pid 300 a new socket.
    let files = 5 * READLINK_BUDGET_FLOOR / 2;
    for fd in 0..files as u32 {
        rig.proc.fd(200, 10 + fd, "/dev/null");
    }
    rig.proc.fd(100, 4, "socket:[1001]");
    rig.proc.fd(300, 4, "socket:[3001]");
    let dumped = [1000, 3000, 1001, 3001];
    assert_eq!(readlink_budget(2), READLINK_BUDGET_FLOOR);

    let (report, owners) = rig.poll(&dumped);
    assert_eq!(
        figures(&report),
        (1, READLINK_BUDGET_FLOOR, 0, 1, 0, true),
        "stopped in pid 200"
    );
    assert_eq!(rig.readlinks_of(100), 1);
    assert_eq!(rig.readlinks_of(200), READLINK_BUDGET_FLOOR as usize - 1);
    assert_eq!(rig.named(&owners), ["first", "last", "first", "pending"]);

    // Pid 300's socket stays pending: the round resumes at pid 200 and stops there
    // again; no full pass while it is unfinished.
    let (report, owners) = rig.poll(&dumped);
    assert_eq!(figures(&report), (1, READLINK_BUDGET_FLOOR, 0, 1, 0, true));
    assert_eq!(
        rig.read.lock().unwrap()[0].0,
        200,
        "resumed where it stopped"
    );
    assert_eq!(rig.readlinks_of(100), 0);
    assert_eq!(rig.named(&owners), ["first", "last", "first", "pending"]);

    // The round ends: pid 200's last files, pid 300's new socket, then pid 100 (nothing
    // new). Named within the polls the budget allows: ceil(2.5e4 + 3 / 1e4) = 3.
    let (report, owners) = rig.poll(&dumped);
    let rest = files + 2 - 2 * READLINK_BUDGET_FLOOR;
    assert_eq!(figures(&report), (1, rest, 0, 0, 0, false));
    assert_eq!(rig.readlinks_of(300), 1);
    assert_eq!(rig.named(&owners), ["first", "last", "first", "last"]);

    let (report, _) = rig.poll(&dumped);
    assert_eq!(figures(&report), (0, 0, 0, 0, 0, false));
}

/// A full pass cut short by the budget goes on in the next polls (its slots stay marked
/// for reading), and the cached owners keep their names meanwhile.
#[test]
fn a_full_pass_cut_short_by_the_budget_resumes_and_settles() {
    let mut rig = Rig::new("budget-full");
    rig.proc.process(100, "app", 1);
    rig.proc.fd(100, 3, "/etc/hosts");
    rig.proc.fd(100, 4, "socket:[1000]");
    rig.proc.process(200, "files", 2);
    let files = 3 * READLINK_BUDGET_FLOOR / 2;
    for fd in 0..files as u32 {
        rig.proc.fd(200, 10 + fd, "/dev/null");
    }
    rig.poll(&[1000]);
    rig.proc.fd(100, 3, "socket:[1001]");
    let (report, owners) = rig.poll(&[1000, 1001]);
    assert_eq!(figures(&report), (1, 0, 0, 1, 0, false));
    assert_eq!(rig.named(&owners), ["app", "pending"]);

    // The full pass: pid 100's 2 slots (naming 1001), then the budget stops it in pid 200.
    let (report, owners) = rig.poll(&[1000, 1001]);
    assert_eq!(figures(&report), (2, READLINK_BUDGET_FLOOR, 1, 0, 0, true));
    assert_eq!(rig.named(&owners), ["app", "app"]);

    // No inode asks for a scan; the next one that does resumes the pass in pid 200.
    rig.proc.fd(100, 5, "socket:[1002]");
    let (report, owners) = rig.poll(&[1000, 1001, 1002]);
    assert_eq!(
        figures(&report),
        (1, files + 2 - READLINK_BUDGET_FLOOR + 1, 0, 0, 0, false),
        "the rest of pid 200, then pid 100's new fd: the full pass done, counted once"
    );
    assert_eq!(rig.named(&owners), ["app", "app", "app"]);
}

/// With `namespaces = "own"` the sockets of the other namespaces are never dumped: more
/// of them than the budget. Their slots are read again once for a socket pending a
/// second poll, over as many polls as the budget needs, not marked again at every poll
/// (which restarted the round forever, the pending socket never named).
#[test]
fn never_dumped_slots_beyond_the_budget_are_read_again_once_not_every_poll() {
    let mut rig = Rig::new("never-dumped-many");
    rig.proc.process(100, "other-ns", 1);
    let foreign = 3 * READLINK_BUDGET_FLOOR / 2;
    for fd in 0..foreign as u32 {
        rig.proc
            .fd(100, 10 + fd, &format!("socket:[{}]", 100_000 + fd));
    }
    rig.proc.process(200, "app", 2);
    rig.proc.fd(200, 3, "socket:[1000]");
    rig.proc.fd(200, 4, "socket:[5]");
    rig.poll(&[1000]);
    rig.proc.fd(200, 4, "socket:[6]");
    let (report, owners) = rig.poll(&[1000, 6]);
    assert_eq!(figures(&report), (1, 0, 0, 1, 0, false));
    assert_eq!(rig.named(&owners), ["app", "pending"]);

    let (report, owners) = rig.poll(&[1000, 6]);
    assert_eq!(
        figures(&report),
        (1, READLINK_BUDGET_FLOOR, 0, 1, 0, true),
        "the foreign slots first, stopped by the budget"
    );
    assert_eq!(rig.named(&owners), ["app", "pending"]);

    let (report, owners) = rig.poll(&[1000, 6]);
    assert_eq!(
        figures(&report),
        (1, foreign - READLINK_BUDGET_FLOOR + 1, 0, 0, 0, false),
        "the rest of them, then fd 4 of pid 200"
    );
    assert_eq!(rig.named(&owners), ["app", "app"]);
}

/// A poll whose /proc cannot be read labels every socket it cannot name `unknown`, those
/// the last poll left pending too (they are not being looked for).
#[test]
fn a_poll_without_proc_settles_the_pending_sockets_unknown() {
    let mut rig = Rig::new("pending-no-proc");
    rig.proc.process(100, "app", 1);
    rig.proc.fd(100, 3, "/etc/hosts");
    rig.proc.fd(100, 4, "socket:[9]");
    rig.poll(&[9]);
    rig.proc.fd(100, 3, "socket:[7]");
    let (_, owners) = rig.poll(&[9, 7]);
    assert_eq!(rig.named(&owners), ["app", "pending"]);
    let moved = rig.proc.0.with_extension("moved");
    std::fs::rename(&rig.proc.0, &moved).unwrap();
    let mut notes = PollNotes::default();
    begin(&mut rig.index, &mut notes);
    assert!(notes.proc_index_error.is_some(), "the revalidation failed");
    let missing: Vec<u32> = [9, 7]
        .into_iter()
        .filter(|&i| rig.index.owner(i).is_none())
        .collect();
    assert_eq!(missing, [9, 7], "no cached owner kept without /proc");
    resolve(&mut rig.index, &missing, &mut notes);
    std::fs::rename(&moved, &rig.proc.0).unwrap();
    assert_eq!(rig.index.settle(9), Owner::Unknown);
    assert_eq!(rig.index.settle(7), Owner::Unknown);
}
