//! Faults in the sources, through the real poll and publication: netlink replies from a
//! scripted transport ([`Script`]: a real capture, replayed, with one fault armed), /proc
//! from a fake tree ([`FakeProc`]). Each test checks what a scrape would see, the
//! [`Published`] value: the previous snapshot with the error counted by stage, or a
//! correct new one; never a mix.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::collectors::{CollectorKind, Collectors};
use crate::snapshot::{NetnsFigures, StateCounts};
use crate::source::inet_diag::decode::decode_inet_diag_msg;
use crate::source::inet_diag::{Family, TcpState};
use crate::source::proc_fd::fake::FakeProc;
use crate::source::sock_diag::script::{Fault, Script};

/// Messages per replayed datagram: small, so that every dump spans several datagrams.
const PER_DATAGRAM: usize = 2;

/// The datagram a mid-dump fault hits: the 3rd of the IPv4 non-LISTEN dump, after the two
/// LISTEN dumps (a data datagram and DONE each) and two datagrams (4 sockets) of it.
const MID_DUMP: usize = 6;

/// A collector over a scripted netlink and a fake /proc, and its publication channel.
struct Rig {
    proc: FakeProc,
    script: Script,
    collector: Collector,
    publish: watch::Sender<Arc<Published>>,
    failure: Edge,
    conditions: Conditions,
    /// The inodes of the captured IPv4 and IPv6 CLOSE_WAIT sockets.
    close_wait: [u32; 2],
}

impl Rig {
    fn new(tag: &str) -> Rig {
        Rig::with_collectors(tag, Collectors::default())
    }

    fn with_collectors(tag: &str, collectors: Collectors) -> Rig {
        let proc = FakeProc::new(tag).with_thread_self();
        let script = Script::new(PER_DATAGRAM);
        let mut config = PollerConfig::new(Duration::from_secs(1), None);
        config.scope = Scope::Own;
        config.sources.proc_root = proc.0.clone();
        config.sources.bind_roots = Vec::new();
        config.open = script.opener();
        config.collectors = collectors;
        let collector = Collector::new(&config, Peaks::default(), Targets::default());
        let inode = |family: Family| {
            script
                .payloads()
                .iter()
                .map(|payload| decode_inet_diag_msg(payload, 0).unwrap())
                .find(|r| r.family == family && r.state == TcpState::CloseWait)
                .map(|r| r.inode)
                .unwrap()
        };
        let close_wait = [inode(Family::Ipv4), inode(Family::Ipv6)];
        assert!(close_wait.iter().all(|inode| *inode != 0));
        Rig {
            proc,
            script,
            collector,
            publish: channel().0,
            failure: Edge::default(),
            conditions: Conditions::default(),
            close_wait,
        }
    }

    /// pid 100 `app` holds the IPv4 CLOSE_WAIT socket, pid 200 `db` the IPv6 one.
    fn with_owners(self) -> Rig {
        self.proc.process(100, "app", 1);
        self.proc
            .fd(100, 3, &format!("socket:[{}]", self.close_wait[0]));
        self.proc.process(200, "db", 1);
        self.proc
            .fd(200, 3, &format!("socket:[{}]", self.close_wait[1]));
        self
    }

    /// One poll, published as `run` publishes it; what a scrape would now see.
    fn poll(&mut self) -> Arc<Published> {
        let result = self.collector.poll().map_err(LoopError::from);
        land(
            result,
            &self.publish,
            &mut self.failure,
            &mut self.conditions,
        );
        Arc::clone(&self.publish.borrow())
    }

    /// The error of one poll, published the same way.
    fn failing_poll(&mut self) -> (String, Arc<Published>) {
        let result = self.collector.poll().map_err(LoopError::from);
        let error = result.as_ref().err().map(ToString::to_string);
        land(
            result,
            &self.publish,
            &mut self.failure,
            &mut self.conditions,
        );
        let error = error.expect("the poll failed");
        (error, Arc::clone(&self.publish.borrow()))
    }
}

/// The counts of the capture (testdata/capture.py), per family.
fn captured_counts() -> StateCounts {
    let mut counts = StateCounts::default();
    for family in Family::ALL {
        for (state, n) in [
            (TcpState::Listen, 1),
            (TcpState::Established, 4),
            (TcpState::CloseWait, 1),
            (TcpState::FinWait2, 1),
            (TcpState::TimeWait, 3),
        ] {
            for _ in 0..n {
                counts.add(family, state);
            }
        }
    }
    counts
}

/// The one namespace of a snapshot (ours).
fn ours(published: &Published) -> &NetnsFigures {
    let snapshot = published.latest.as_ref().expect("a snapshot");
    assert_eq!(snapshot.namespaces.len(), 1);
    &snapshot.namespaces[0]
}

/// CLOSE_WAIT sockets per owner name.
fn close_wait_owners(published: &Published) -> BTreeMap<String, u64> {
    let mut owners = BTreeMap::new();
    for series in &ours(published).tcp.breakdown.ports {
        if series.state == TcpState::CloseWait {
            *owners.entry(series.process.to_string()).or_default() += series.sockets;
        }
    }
    owners
}

/// Every process name anywhere in the snapshot.
fn every_name(published: &Published) -> Vec<String> {
    let breakdown = &ours(published).tcp.breakdown;
    let ports = breakdown.ports.iter().map(|s| s.process.to_string());
    let listeners = breakdown.listeners.iter().map(|s| s.process.to_string());
    ports.chain(listeners).collect()
}

/// A complete, exact snapshot of the capture.
fn assert_exact(published: &Published) {
    let ns = ours(published);
    assert_eq!(ns.tcp.tcp_sockets, captured_counts());
    assert_eq!(ns.tcp.sockets_scanned, 20);
    assert_eq!(ns.unix.sockets.total(), 0);
}

fn errors(published: &Published) -> Vec<(&'static str, u64)> {
    Stage::ALL
        .iter()
        .map(|stage| (stage.label(), published.errors_total[stage.index()]))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn owners(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// A good poll, a poll with `fault` mid-dump, a good poll. The failed poll publishes the
/// first snapshot again (the same Arc) with one dump error; the next is exact and new.
/// Returns the failed poll's error.
fn fault_mid_dump(tag: &str, fault: Fault) -> String {
    let mut rig = Rig::new(tag).with_owners();
    let first = rig.poll();
    assert_exact(&first);
    let before = Arc::clone(first.latest.as_ref().unwrap());

    rig.script.arm(MID_DUMP, fault);
    let (error, published) = rig.failing_poll();
    assert!(!rig.script.armed(), "the fault fired");
    assert!(Arc::ptr_eq(published.latest.as_ref().unwrap(), &before));
    assert!(published.previous.is_none());
    assert_eq!(errors(&published), [("dump", 1)]);

    let published = rig.poll();
    assert_exact(&published);
    assert!(!Arc::ptr_eq(published.latest.as_ref().unwrap(), &before));
    assert!(Arc::ptr_eq(published.previous.as_ref().unwrap(), &before));
    assert_eq!(
        close_wait_owners(&published),
        owners(&[("app", 1), ("db", 1)])
    );
    assert_eq!(errors(&published), [("dump", 1)]);
    assert_eq!(
        rig.script.opens(),
        2,
        "the failed socket was dropped and reopened"
    );
    error
}

#[test]
fn enobufs_mid_dump_keeps_the_previous_snapshot() {
    assert_eq!(
        fault_mid_dump("enobufs", Fault::Errno(libc::ENOBUFS)),
        "receive failed during the tcp dump: No buffer space available (os error 105)"
    );
}

#[test]
fn dump_interrupted_failed_the_poll_instead_of_a_retry() {
    let mut rig = Rig::new("dump-intr").with_owners();
    let first = rig.poll();
    rig.script.arm(MID_DUMP, Fault::DumpInterrupted);
    let published = rig.poll();
    assert!(!rig.script.armed(), "the fault fired");
    assert_exact(&published);
    assert!(Arc::ptr_eq(
        published.previous.as_ref().unwrap(),
        first.latest.as_ref().unwrap()
    ));
    assert_eq!(
        close_wait_owners(&published),
        owners(&[("app", 1), ("db", 1)])
    );
    assert_eq!(errors(&published), []);
    assert_eq!(
        rig.script.opens(),
        2,
        "the retry starts from a fresh socket"
    );
}

#[test]
fn dump_interrupted_twice_keeps_the_previous_snapshot() {
    let mut rig = Rig::new("dump-intr-twice").with_owners();
    let first = rig.poll();
    rig.script.always(Fault::DumpInterrupted);
    let (error, published) = rig.failing_poll();
    assert_eq!(
        error,
        "bad reply in the tcp dump: the dump was interrupted (NLM_F_DUMP_INTR): the socket \
         tables changed under it"
    );
    assert!(Arc::ptr_eq(
        published.latest.as_ref().unwrap(),
        first.latest.as_ref().unwrap()
    ));
    assert_eq!(errors(&published), [("dump", 1)]);
    assert_eq!(rig.script.opens(), 2, "the retry opened a fresh socket");
}

#[test]
fn truncated_message_keeps_the_previous_snapshot() {
    let error = fault_mid_dump("cut", Fault::Cut);
    assert!(
        error.starts_with("bad reply in the tcp dump: truncated netlink message at offset "),
        "{error}"
    );
}

#[test]
fn oversized_datagram_keeps_the_previous_snapshot() {
    assert_eq!(
        fault_mid_dump("oversized", Fault::Oversized),
        "tcp dump datagram of 69632 bytes does not fit the 65536 byte receive buffer"
    );
}

#[test]
fn nlmsg_error_mid_dump_keeps_the_previous_snapshot() {
    assert_eq!(
        fault_mid_dump("nlmsgerr", Fault::KernelError(libc::ENOMEM)),
        "bad reply in the tcp dump: kernel answered the dump with error 12 (Cannot allocate \
         memory (os error 12))"
    );
}

#[test]
fn nlmsg_error_in_the_unix_dump_keeps_the_previous_snapshot() {
    // The last datagram of the poll: every TCP socket is folded by then.
    const UNIX_DONE: usize = 11;
    let mut rig = Rig::new("unix-error").with_owners();
    let first = rig.poll();
    rig.script.arm(UNIX_DONE, Fault::KernelError(libc::EBUSY));
    let (error, published) = rig.failing_poll();
    assert!(!rig.script.armed(), "the fault fired");
    assert_eq!(
        error,
        "bad reply in the unix dump: kernel answered the dump with error 16 (Device or \
         resource busy (os error 16))"
    );
    assert!(Arc::ptr_eq(
        published.latest.as_ref().unwrap(),
        first.latest.as_ref().unwrap()
    ));
    assert_eq!(errors(&published), [("dump", 1)]);
}

/// The unix collector turned off: the poll sends no UNIX dump request, and the snapshot
/// says the collector did not run.
#[test]
fn unix_collector_off_sends_no_unix_dump() {
    const AF_UNIX: u8 = 1;
    for on in [true, false] {
        let tag = format!("unix-collector-{on}");
        let collectors = Collectors::default().with(CollectorKind::Unix, on);
        let mut rig = Rig::with_collectors(&tag, collectors);
        let (snapshot, _) = rig.collector.poll().expect("scripted poll");
        let unix_dumps = rig
            .script
            .requests()
            .iter()
            .filter(|&&family| family == AF_UNIX)
            .count();
        assert_eq!(unix_dumps, usize::from(on), "unix collector on: {on}");
        assert_eq!(snapshot.collectors.enabled(CollectorKind::Unix), on);
        assert!(
            !snapshot.collectors.enabled(CollectorKind::ListenSampler),
            "no listen_poll_interval: the sampler is off"
        );
    }
}

#[test]
fn a_fault_in_the_first_poll_publishes_nothing() {
    let mut rig = Rig::new("first").with_owners();
    rig.script.arm(MID_DUMP, Fault::Errno(libc::ENOBUFS));
    let (_, published) = rig.failing_poll();
    assert!(!published.ready(), "no partial snapshot is ever published");
    assert_eq!(errors(&published), [("dump", 1)]);
    let published = rig.poll();
    assert_exact(&published);
    assert!(published.previous.is_none());
}

#[test]
fn eintr_mid_dump_is_retried_and_the_poll_is_exact() {
    let mut rig = Rig::new("eintr").with_owners();
    rig.poll();
    rig.script.arm(MID_DUMP, Fault::Errno(libc::EINTR));
    let published = rig.poll();
    assert!(!rig.script.armed(), "the fault fired");
    assert_exact(&published);
    assert!(published.previous.is_some());
    assert_eq!(
        close_wait_owners(&published),
        owners(&[("app", 1), ("db", 1)])
    );
    assert_eq!(errors(&published), []);
    assert_eq!(rig.script.opens(), 1, "the socket was kept");
}

#[test]
fn reused_pid_never_publishes_the_old_process_name() {
    let mut rig = Rig::new("reused").with_owners();
    rig.proc.process(100, "old", 1);
    let published = rig.poll();
    assert_eq!(
        close_wait_owners(&published),
        owners(&[("db", 1), ("old", 1)])
    );
    // Pid 100 exits; a new process gets pid 100 (a new start time) and holds the socket.
    rig.proc.exit(100);
    rig.proc.process(100, "new", 2);
    rig.proc
        .fd(100, 3, &format!("socket:[{}]", rig.close_wait[0]));
    let published = rig.poll();
    assert_exact(&published);
    assert_eq!(
        close_wait_owners(&published),
        owners(&[("db", 1), ("new", 1)])
    );
    assert!(!every_name(&published).contains(&"old".to_string()));
    assert_eq!(errors(&published), []);
}

#[test]
fn process_exiting_between_readdir_and_readlink_is_not_the_owner() {
    let mut rig = Rig::new("readdir").with_owners();
    // pid 50 `parent` shares the IPv4 CLOSE_WAIT socket with pid 100 `app` (its child),
    // and exits after its fd directory was listed, before the link is read.
    rig.proc.process(50, "parent", 1);
    rig.proc
        .fd(50, 3, &format!("socket:[{}]", rig.close_wait[0]));
    let root = rig.proc.0.clone();
    rig.collector.index_mut().before_readlink(move |pid, _fd| {
        if pid == 50 {
            std::fs::remove_dir_all(root.join("50")).unwrap();
        }
    });
    let published = rig.poll();
    assert!(!rig.proc.0.join("50").exists(), "the hook ran");
    assert_exact(&published);
    assert_eq!(
        close_wait_owners(&published),
        owners(&[("app", 1), ("db", 1)])
    );
    assert_eq!(errors(&published), []);
}

#[test]
fn unreadable_proc_published_cached_owner_names() {
    let mut rig = Rig::new("unreadable").with_owners();
    let published = rig.poll();
    assert_eq!(
        close_wait_owners(&published),
        owners(&[("app", 1), ("db", 1)])
    );
    let label = ours(&published).netns.clone();
    assert!(label.starts_with("ns-") && &*label != "ns-0", "{label}");

    // /proc becomes unreadable: attribution and discovery fail, the counts do not.
    let moved = rig.proc.0.with_extension("moved");
    std::fs::rename(&rig.proc.0, &moved).unwrap();
    let published = rig.poll();
    std::fs::rename(&moved, &rig.proc.0).unwrap();
    assert_exact(&published);
    assert_eq!(close_wait_owners(&published), owners(&[("unknown", 2)]));
    assert!(!every_name(&published).contains(&"app".to_string()));
    assert_eq!(errors(&published), [("proc_index", 1), ("discovery", 1)]);
    // Without /proc our own namespace's inode is unknown; it keeps the label and info of
    // the last discovery (it jumped to "ns-0" for one poll before).
    assert_eq!(ours(&published).netns, label);
    assert_eq!(published.latest.as_ref().unwrap().netns_info.len(), 1);
    assert_eq!(
        published.latest.as_ref().unwrap().netns_info[0].netns,
        label
    );

    let published = rig.poll();
    assert_exact(&published);
    assert_eq!(
        close_wait_owners(&published),
        owners(&[("app", 1), ("db", 1)])
    );
    assert_eq!(ours(&published).netns, label);
    assert_eq!(errors(&published), [("proc_index", 1), ("discovery", 1)]);
}

/// Issue 23 item 5 through the real poll: both owners rename themselves (prctl) before
/// every poll. Every poll names them by their current names, and the /proc index holds
/// just those two names, not every name ever seen (60 after 30 polls before the fix).
#[test]
fn interner_kept_names_of_processes_that_renamed_between_polls() {
    let mut rig = Rig::new("renaming").with_owners();
    for poll in 0..30 {
        let (app, db) = (format!("app-{poll}"), format!("db-{poll}"));
        rig.proc.process(100, &app, 1);
        rig.proc.process(200, &db, 1);
        let published = rig.poll();
        assert_exact(&published);
        assert_eq!(
            close_wait_owners(&published),
            owners(&[(app.as_str(), 1), (db.as_str(), 1)]),
            "poll {poll}"
        );
        assert_eq!(rig.collector.index_mut().names_interned(), 2, "poll {poll}");
        assert_eq!(errors(&published), []);
    }
}

/// A container that keeps failing to be named, unchanged, is counted once in
/// `stage="attribution"`, when the failure is met, not at every poll that still lists it.
#[test]
fn attribution_failure_is_counted_when_met_not_every_poll_it_lasts() {
    let publish = channel().0;
    let mut conditions = Conditions::default();
    let failing = |fresh: u64| PollNotes {
        attribution_errors: vec!["naming a container: x leads out of /var/lib/docker".into()],
        attribution_failures: fresh,
        ..PollNotes::default()
    };
    let attribution = |publish: &watch::Sender<Arc<Published>>| {
        publish.borrow().errors_total[Stage::Attribution.index()]
    };
    conditions.report(&failing(1), &publish);
    assert_eq!(attribution(&publish), 1);
    for _ in 0..3 {
        conditions.report(&failing(0), &publish);
    }
    assert_eq!(attribution(&publish), 1, "remembered, not counted again");
    conditions.report(&failing(2), &publish);
    assert_eq!(attribution(&publish), 2, "one poll that met new failures");
}
