use super::fake::FakeProc;
use super::*;

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

/// The first poll is exact: its warm-up was the full pass, so a socket in a slot the
/// warm-up read as something else is unknown at once, without a second pass (the later
/// polls' way, pending then a full pass, is in `poll::owners::tests`).
#[test]
fn slot_reused_by_another_kind_on_the_first_poll_is_unresolvable_without_a_second_pass() {
    let proc = FakeProc::new("kind");
    proc.process(100, "app", 1);
    proc.fd(100, 3, "/etc/hosts");
    let mut index = ProcIndex::new(&proc.0);
    index.begin_poll();
    index.warm().unwrap();
    proc.fd(100, 3, "socket:[7]");
    index.sweep();
    let report = index.resolve(&[7]).unwrap();
    assert_eq!(
        (report.scans, report.readlinks, report.full_passes),
        (1, 0, 0)
    );
    assert_eq!((report.unresolved, report.pending), (1, 0));
    assert!(index.is_unresolvable(7));
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
fn one_scan_finds_owners_in_every_network_namespace() {
    // The index is host-wide: a container's process is read by the first (cheap) phase,
    // whatever namespace its sockets live in.
    let proc = FakeProc::new("netns");
    proc.process(10, "ours", 1);
    proc.process(20, "container", 2);
    proc.fd(10, 3, "socket:[1]");
    proc.fd(20, 3, "socket:[2]");
    let mut index = ProcIndex::new(&proc.0);
    index.begin_poll();
    let report = index.resolve(&[1, 2]).unwrap();
    assert_eq!((report.scans, report.readlinks), (1, 2));
    assert_eq!(owner_name(&mut index, 1).as_deref(), Some("ours"));
    assert_eq!(owner_name(&mut index, 2).as_deref(), Some("container"));
}

#[test]
fn owner_name_stale_after_parent_exit_is_replaced_by_the_child_at_the_next_poll() {
    // A parent passes its socket to a child and exits: the next poll names the child,
    // although no new socket asked for a scan.
    let proc = FakeProc::new("parent-exit");
    proc.process(10, "parent", 1);
    proc.process(11, "child", 2);
    proc.fd(10, 3, "socket:[7]");
    proc.fd(11, 3, "socket:[7]");
    let mut index = ProcIndex::new(&proc.0);
    index.begin_poll();
    index.warm().unwrap();
    assert_eq!(owner_name(&mut index, 7).as_deref(), Some("parent"));
    index.sweep();
    std::fs::remove_dir_all(proc.0.join("10")).unwrap();
    index.begin_poll();
    assert_eq!(index.revalidate().unwrap(), 1, "the parent is forgotten");
    assert_eq!(index.lookup(7), None, "the dump must ask for a scan");
    index.sweep();
    index.resolve(&[7]).unwrap();
    assert_eq!(owner_name(&mut index, 7).as_deref(), Some("child"));
}

#[test]
fn owner_name_stale_after_exec_or_prctl_rename_is_refreshed_at_the_next_poll() {
    let proc = FakeProc::new("rename");
    proc.process(10, "bash", 1);
    proc.fd(10, 3, "socket:[7]");
    let mut index = ProcIndex::new(&proc.0);
    index.begin_poll();
    index.warm().unwrap();
    assert_eq!(owner_name(&mut index, 7).as_deref(), Some("bash"));
    index.sweep();
    // exec or prctl(PR_SET_NAME): same pid, same start time, new comm.
    proc.process(10, "php-fpm: pool", 1);
    index.begin_poll();
    assert_eq!(index.revalidate().unwrap(), 0);
    assert_eq!(owner_name(&mut index, 7).as_deref(), Some("php-fpm: pool"));
}

#[test]
fn owner_name_of_a_reused_pid_is_never_the_old_process_name() {
    let proc = FakeProc::new("pid-reuse");
    proc.process(10, "old", 1);
    proc.fd(10, 3, "socket:[7]");
    let mut index = ProcIndex::new(&proc.0);
    index.begin_poll();
    index.warm().unwrap();
    index.sweep();
    // Pid 10 exits and is reused by another process that holds a new socket on fd 3.
    proc.process(10, "new", 99);
    proc.fd(10, 3, "socket:[8]");
    index.begin_poll();
    assert_eq!(index.revalidate().unwrap(), 1);
    assert_eq!(index.lookup(7), None);
    index.sweep();
    index.resolve(&[8]).unwrap();
    assert_eq!(owner_name(&mut index, 8).as_deref(), Some("new"));
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

#[test]
fn unreadable_root_at_revalidation_forgets_every_cached_owner() {
    let proc = FakeProc::new("revalidate-root");
    proc.process(10, "app", 1);
    proc.fd(10, 3, "socket:[7]");
    let mut index = ProcIndex::new(&proc.0);
    index.begin_poll();
    index.warm().unwrap();
    assert_eq!(owner_name(&mut index, 7).as_deref(), Some("app"));
    index.sweep();
    let moved = proc.0.with_extension("moved");
    std::fs::rename(&proc.0, &moved).unwrap();
    index.begin_poll();
    let error = index.revalidate().unwrap_err();
    std::fs::rename(&moved, &proc.0).unwrap();
    assert_eq!(
        error.to_string(),
        format!(
            "cannot read {}: No such file or directory (os error 2)",
            proc.0.display()
        )
    );
    assert_eq!(index.lookup(7), None, "no unverified name");
    index.sweep();
    index.resolve(&[7]).unwrap();
    assert_eq!(owner_name(&mut index, 7).as_deref(), Some("app"));
}

/// The churn soak's pattern (benches/soak.sh): a long-lived process whose fd numbers are
/// reused by new sockets every poll, sockets that live only between two dumps, and
/// short-lived processes on reused pids. The index must stay the size of what is alive.
#[test]
fn churn_keeps_the_index_the_size_of_what_is_alive() {
    let proc = FakeProc::new("churn");
    proc.process(100, "soak_load", 1);
    let mut index = ProcIndex::new(&proc.0);
    let mut next_inode = 1000u32;
    let mut load: Vec<Option<u32>> = vec![None; 64]; // fd 3.. of the long-lived process
    let mut child: Option<(u32, u32)> = None; // (pid, inode)
    for poll in 0..1000u32 {
        // The dump: what is alive now, looked up; misses go to the scan.
        index.begin_poll();
        let dumped: Vec<u32> = load
            .iter()
            .flatten()
            .copied()
            .chain(child.map(|c| c.1))
            .collect();
        let missing: Vec<u32> = dumped
            .iter()
            .copied()
            .filter(|&inode| index.lookup(inode).is_none() && !index.is_unresolvable(inode))
            .collect();
        index.sweep();
        // Between the dump and the scan: a third of the load's fds get a new socket (the
        // old one closed), one in seven is closed, and the child exits or is replaced on
        // the same pid with a new start time.
        for (i, slot) in load.iter_mut().enumerate() {
            let fd = i as u32 + 3;
            if (poll as usize + i) % 3 == 0 {
                next_inode += 1;
                *slot = Some(next_inode);
                proc.fd(100, fd, &format!("socket:[{next_inode}]"));
            } else if (poll as usize + i) % 7 == 0 && slot.is_some() {
                *slot = None;
                proc.close(100, fd);
            }
        }
        if let Some((pid, _)) = child.take() {
            proc.exit(pid);
        }
        if poll % 2 == 0 {
            let pid = 200 + poll % 5;
            next_inode += 1;
            proc.process(
                pid,
                if poll % 4 == 0 { "churn_a" } else { "churn_b" },
                u64::from(poll) + 2,
            );
            proc.fd(pid, 3, &format!("socket:[{next_inode}]"));
            child = Some((pid, next_inode));
        }
        index.resolve(&missing).unwrap();
    }
    let alive = load.iter().flatten().count() + usize::from(child.is_some());
    assert!(
        index.processes.len() <= 2,
        "processes: {}",
        index.processes.len()
    );
    let owners = index.owners.values().count();
    assert!(
        owners <= alive + 64,
        "owners: {owners} for {alive} sockets alive"
    );
    assert!(
        index.unresolvable.len() <= alive,
        "unresolvable: {}",
        index.unresolvable.len()
    );
    assert!(index.names.len() <= 4, "names: {}", index.names.len());
}

/// Issue 23 item 5: 500 processes renaming themselves every poll (prctl PR_SET_NAME), a
/// tenth of them exiting and replaced by new ones, over 10 polls. Every lookup names the
/// process's current name, and the interner holds only the live processes' names (before
/// the fix it held all 5,500 names ever seen).
#[test]
fn interner_kept_names_of_processes_that_renamed_or_exited() {
    const PROCESSES: u32 = 500;
    let proc = FakeProc::new("renames");
    let mut live: Vec<(u32, u64)> = (0..PROCESSES).map(|i| (1000 + i, 1)).collect();
    let inode = |pid: u32| pid * 10;
    let name_of = |pid: u32, start: u64, poll: u32| format!("w{pid}-{start}-{poll}");
    for &(pid, start) in &live {
        proc.process(pid, &name_of(pid, start, 0), start);
        proc.fd(pid, 3, &format!("socket:[{}]", inode(pid)));
    }
    let mut index = ProcIndex::new(&proc.0);
    index.begin_poll();
    index.warm().unwrap();
    index.prune_names();
    for poll in 1..=10u32 {
        for (i, (pid, start)) in live.iter_mut().enumerate() {
            if (i as u32 + poll) % 10 == 0 {
                // Exited; its pid reused by a new process with a new socket.
                proc.exit(*pid);
                *start += 1;
                proc.process(*pid, &name_of(*pid, *start, poll), *start);
                proc.fd(*pid, 3, &format!("socket:[{}]", inode(*pid)));
            } else {
                proc.process(*pid, &name_of(*pid, *start, poll), *start);
            }
        }
        index.begin_poll();
        index.revalidate().unwrap();
        index.prune_names();
        let mut missing = Vec::new();
        let mut held = Vec::new();
        for &(pid, start) in &live {
            match index.lookup(inode(pid)) {
                Some(id) => held.push((id, name_of(pid, start, poll))),
                None => missing.push(inode(pid)),
            }
        }
        index.sweep();
        index.resolve(&missing).unwrap();
        for inode in missing {
            let id = index.lookup(inode).expect("found by the scan");
            let pid = inode / 10;
            let start = live.iter().find(|p| p.0 == pid).unwrap().1;
            held.push((id, name_of(pid, start, poll)));
        }
        // Every id handed out this poll still names what it named, after the scan.
        for (id, expected) in &held {
            assert_eq!(**index.name(*id), **expected, "poll {poll}");
        }
        assert_eq!(held.len(), PROCESSES as usize);
        assert_eq!(index.names_interned(), PROCESSES as usize, "poll {poll}");
    }
}

/// /proc/PID/stat and comm are read through the bounded reader: a FIFO in their place (a
/// fake /proc, a hostile mount) blocked the scan forever, a huge file was read whole.
/// Now that process is skipped, the others are named.
#[test]
fn proc_stat_fifo_blocked_the_scan() {
    let proc = FakeProc::new("fifo-stat");
    proc.process(100, "blocker", 1);
    proc.fd(100, 3, "socket:[1]");
    proc.process(200, "app", 2);
    proc.fd(200, 3, "socket:[2]");
    proc.process(300, "huge", 3);
    proc.fd(300, 3, "socket:[3]");
    let stat = proc.0.join("100/stat");
    std::fs::remove_file(&stat).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&stat).status();
    assert!(made.unwrap().success());
    let comm = proc.0.join("300/comm");
    std::fs::write(&comm, "x".repeat(100 << 10)).unwrap();
    let mut index = ProcIndex::new(&proc.0);
    index.begin_poll();
    let report = index.resolve(&[1, 2, 3]).unwrap();
    assert_eq!(report.unresolved, 1);
    assert_eq!(owner_name(&mut index, 1), None);
    assert_eq!(owner_name(&mut index, 2).as_deref(), Some("app"));
    // A comm over 64 KiB is not read: the process is named `unknown`.
    assert_eq!(owner_name(&mut index, 3).as_deref(), Some("unknown"));
}

/// The warm-up reads processes on several threads: every slot once, each socket named
/// after its lowest-pid holder whatever order the processes joined the index in, and
/// nothing left for the next scan to read.
#[test]
fn warm_up_on_several_threads_reads_every_slot_once_and_names_the_lowest_pid() {
    let proc = FakeProc::new("warm-threads");
    for pid in (100..164).rev() {
        proc.process(pid, &format!("p{pid}"), u64::from(pid));
        proc.fd(pid, 3, &format!("socket:[{}]", pid * 10));
        proc.fd(pid, 4, "/dev/null");
        proc.fd(pid, 5, "socket:[7]");
    }
    let mut index = ProcIndex::new(&proc.0);
    index.begin_poll();
    let report = index.warm().unwrap();
    assert_eq!(
        (report.scans, report.readlinks, report.full_passes),
        (1, 64 * 3, 1)
    );
    assert_eq!(report.permission_denied, 0);
    for pid in 100..164 {
        let name = format!("p{pid}");
        assert_eq!(owner_name(&mut index, pid * 10).as_deref(), Some(&*name));
    }
    assert_eq!(owner_name(&mut index, 7).as_deref(), Some("p100"));
    assert_eq!(index.processes.len(), 64);
    index.sweep();
    proc.fd(163, 6, "socket:[8]");
    let report = index.resolve(&[8]).unwrap();
    assert_eq!(
        (report.readlinks, report.unresolved),
        (1, 0),
        "only the new slot"
    );
    assert_eq!(owner_name(&mut index, 8).as_deref(), Some("p163"));
}
