use std::net::SocketAddr;
use std::sync::Arc;

use super::*;
use crate::fold::listen::{add_to_sample, ListenSample};
use crate::fold::owners::testing::Table;
use crate::fold::owners::NameId;
use crate::fold::PortFilter;
use crate::snapshot::PortLabel;
use crate::snapshot::TcpFigures;
use crate::source::inet_diag::Family;

fn rec(state: TcpState, local: &str, remote: &str, inode: u32) -> Record {
    let local: SocketAddr = local.parse().unwrap();
    Record {
        family: if local.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        },
        state,
        local,
        remote: remote.parse().unwrap(),
        recv_queue: 0,
        send_queue: 0,
        uid: 0,
        inode,
        cookie: 0,
    }
}

impl Aggregator {
    fn add_(&mut self, record: &Record, owners: &Table) {
        self.add(record, None, owners)
    }
}

fn finish(aggregator: Aggregator, owners: &Table, limits: &Settings) -> TcpFigures {
    aggregator.finish(owners, limits, &ListenSample::default())
}

fn series(snapshot: &TcpFigures) -> Vec<String> {
    snapshot
        .breakdown
        .ports
        .iter()
        .map(|s| {
            format!(
                "{} {} {:?} {} = {} r{} s{}",
                s.direction.label(),
                s.port,
                &*s.process,
                s.state.label(),
                s.sockets,
                s.receive_bytes,
                s.send_bytes
            )
        })
        .collect()
}

#[test]
fn direction_port_and_owner() {
    let mut owners = Table::default();
    owners.own(10, "nginx");
    owners.own(11, "nginx");
    owners.own(20, "app");
    owners.own_later(21, "app");
    let mut a = Aggregator::default();
    a.add_listener(
        &rec(TcpState::Listen, "0.0.0.0:80", "0.0.0.0:0", 10),
        &owners,
    );
    // inbound close_wait owned by nginx, with 46 unread bytes
    let mut cw = rec(TcpState::CloseWait, "10.0.0.1:80", "10.0.0.9:50000", 11);
    cw.recv_queue = 46;
    a.add(&cw, None, &owners);
    // outbound to mysql, one known now, one found by the scan
    a.add_(
        &rec(TcpState::CloseWait, "10.0.0.1:40000", "10.0.0.7:3306", 20),
        &owners,
    );
    a.add_(
        &rec(TcpState::CloseWait, "10.0.0.1:40001", "10.0.0.7:3306", 21),
        &owners,
    );
    // never accepted, and a TIME_WAIT with no owner
    a.add_(
        &rec(TcpState::CloseWait, "10.0.0.1:80", "10.0.0.9:50001", 0),
        &owners,
    );
    a.add_(
        &rec(TcpState::TimeWait, "10.0.0.1:40002", "10.0.0.7:3306", 0),
        &owners,
    );
    // an owner that cannot be found
    a.add_(
        &rec(TcpState::Established, "10.0.0.1:40003", "10.0.0.8:443", 99),
        &owners,
    );
    assert_eq!(a.missing_inodes(), vec![21, 99]);
    let snapshot = finish(a, &owners, &Settings::default());
    assert_eq!(
        series(&snapshot),
        vec![
            "inbound 80 \"\" close_wait = 1 r0 s0",
            "inbound 80 \"nginx\" close_wait = 1 r46 s0",
            "outbound 443 \"unknown\" established = 1 r0 s0",
            "outbound 3306 \"\" time_wait = 1 r0 s0",
            "outbound 3306 \"app\" close_wait = 2 r0 s0",
        ]
    );
    assert_eq!(
        snapshot.breakdown.unaccepted,
        vec![(PortLabel::Port(80), TcpState::CloseWait, 1)]
    );
    assert_eq!(snapshot.breakdown.unattributed, 1);
    assert_eq!(snapshot.sockets_scanned, 7);
    let listener = &snapshot.breakdown.listeners[0];
    assert_eq!((listener.port, &*listener.process), (80, "nginx"));
}

/// Owners from `Table`, except that every inode is already known to be unreachable.
struct Unreachable(Table);

impl Owners for Unreachable {
    fn owner(&self, _inode: u32) -> Option<Owner> {
        Some(Owner::Unknown)
    }
    fn settle(&self, _inode: u32) -> Owner {
        Owner::Unknown
    }
    fn name(&self, id: NameId) -> Arc<str> {
        self.0.name(id)
    }
}

#[test]
fn unattributed_counts_listeners_known_unreachable_at_the_dump() {
    let owners = Unreachable(Table::default());
    let mut a = Aggregator::default();
    a.add_listener(
        &rec(TcpState::Listen, "0.0.0.0:80", "0.0.0.0:0", 7),
        &owners,
    );
    a.add(
        &rec(TcpState::Established, "10.0.0.1:80", "10.0.0.2:4000", 8),
        None,
        &owners,
    );
    a.add(
        &rec(TcpState::Established, "10.0.0.1:80", "10.0.0.2:4001", 9),
        None,
        &owners,
    );
    let snapshot = a.finish(&owners, &Settings::default(), &ListenSample::default());
    assert_eq!(snapshot.breakdown.unattributed, 3);
    assert_eq!(&*snapshot.breakdown.listeners[0].process, "unknown");
}

#[test]
fn top_n_ports_and_processes_fold_into_other() {
    let mut owners = Table::default();
    let mut a = Aggregator::default();
    let mut inode = 1;
    // outbound ports 1000..1004 with 5,4,3,2,1 sockets; process pN owns port 100N
    for (i, n) in [5u32, 4, 3, 2, 1].iter().enumerate() {
        for _ in 0..*n {
            owners.own(inode, &format!("p{i}"));
            a.add_(
                &rec(
                    TcpState::Established,
                    &format!("10.0.0.1:{}", 30000 + inode),
                    &format!("10.0.0.2:{}", 1000 + i),
                    inode,
                ),
                &owners,
            );
            inode += 1;
        }
    }
    let limits = Settings {
        max_ports: 2,
        max_processes: 3,
        ..Settings::default()
    };
    let snapshot = finish(a, &owners, &limits);
    assert_eq!(
        series(&snapshot),
        vec![
            "outbound 1000 \"p0\" established = 5 r0 s0",
            "outbound 1001 \"p1\" established = 4 r0 s0",
            "outbound other \"other\" established = 3 r0 s0",
            "outbound other \"p2\" established = 3 r0 s0",
        ]
    );
    assert_eq!(snapshot.breakdown.folded_ports, 3);
    assert_eq!(snapshot.breakdown.folded_processes, 2);
}

#[test]
fn include_and_exclude_filters() {
    let filter = PortFilter {
        include: vec![(3306, 3306), (8000, 8100)],
        exclude: vec![(8080, 8080)],
    };
    assert!(filter.allows(3306));
    assert!(filter.allows(8000));
    assert!(!filter.allows(8080));
    assert!(!filter.allows(443));
    let owners = Table::default();
    let mut a = Aggregator::default();
    for (port, inode) in [(3306u16, 0u32), (443, 0), (8080, 0)] {
        a.add_(
            &rec(
                TcpState::TimeWait,
                "10.0.0.1:40000",
                &format!("10.0.0.2:{port}"),
                inode,
            ),
            &owners,
        );
    }
    let limits = Settings {
        ports: filter,
        ..Settings::default()
    };
    let snapshot = finish(a, &owners, &limits);
    assert_eq!(
        series(&snapshot),
        vec![
            "outbound 3306 \"\" time_wait = 1 r0 s0",
            "outbound other \"\" time_wait = 2 r0 s0"
        ]
    );
    assert_eq!(snapshot.breakdown.folded_ports, 2);
}

#[test]
fn reuseport_listeners_are_summed_and_peak_is_at_least_the_length() {
    let mut owners = Table::default();
    owners.own(1, "nginx");
    owners.own(2, "nginx");
    let mut a = Aggregator::default();
    for inode in [1, 2] {
        let mut l = rec(TcpState::Listen, "0.0.0.0:443", "0.0.0.0:0", inode);
        l.recv_queue = 3;
        l.send_queue = 511;
        a.add_listener(&l, &owners);
    }
    let mut peaks = ListenSample::default();
    peaks.tcp.insert(("0.0.0.0".parse().unwrap(), 443), 40);
    let snapshot = a.finish(&owners, &Settings::default(), &peaks);
    let l = &snapshot.breakdown.listeners[0];
    assert_eq!((l.length, l.limit, l.peak), (6, 1022, 40));
}

#[test]
fn listen_sample_sums_per_address() {
    let mut a = rec(TcpState::Listen, "0.0.0.0:80", "0.0.0.0:0", 1);
    a.recv_queue = 2;
    let mut b = a;
    b.recv_queue = 5;
    let mut sample = ListenSample::default();
    add_to_sample(&mut sample, &a);
    add_to_sample(&mut sample, &b);
    assert_eq!(sample.tcp.get(&("0.0.0.0".parse().unwrap(), 80)), Some(&7));
}

#[test]
fn close_wait_ages_fold_to_oldest_and_stale_per_owner() {
    let mut owners = Table::default();
    owners.own(1, "app");
    owners.own(2, "app");
    owners.own_later(3, "app");
    let settings = Settings {
        close_wait_stale_after: Duration::from_secs(60),
        ..Settings::default()
    };
    let mut a = Aggregator::new(&settings, None);
    let cw = |port: u16, inode: u32| {
        rec(
            TcpState::CloseWait,
            &format!("10.0.0.1:{port}"),
            "10.0.0.2:3306",
            inode,
        )
    };
    a.add(&cw(40000, 1), Some(Duration::from_secs(5)), &owners);
    a.add(&cw(40001, 2), Some(Duration::from_secs(90)), &owners);
    // Found only by the scan: its age travels with the pending entry.
    a.add(&cw(40002, 3), Some(Duration::from_secs(200)), &owners);
    // Untracked (tracker full): counted, but no age.
    a.add(&cw(40003, 1), None, &owners);
    let snapshot = finish(a, &owners, &settings);
    let s = &snapshot.breakdown.ports[0];
    assert_eq!(
        (s.sockets, s.close_wait_oldest, s.close_wait_stale),
        (4, Duration::from_secs(200), 2)
    );
}

#[test]
fn ephemeral_ports_take_the_max_over_local_addresses_and_fold_the_rest() {
    let owners = Table::default();
    let settings = Settings {
        max_destinations: 1,
        ..Settings::default()
    };
    let mut a = Aggregator::new(&settings, PortRange::new(40000, 40099));
    let mut add = |local: &str, remote: &str, state: TcpState, n: u16| {
        for i in 0..n {
            let (ip, _) = local.split_once(':').unwrap();
            a.add_(
                &rec(state, &format!("{ip}:{}", 40000 + i), remote, 0),
                &owners,
            );
        }
    };
    add("10.0.0.10:0", "10.0.0.1:9001", TcpState::TimeWait, 8);
    add("10.0.0.11:0", "10.0.0.1:9001", TcpState::Established, 2);
    add("10.0.0.10:0", "10.0.0.2:9002", TcpState::Established, 4);
    add("10.0.0.11:0", "10.0.0.2:9002", TcpState::SynSent, 6);
    // Outside the range: not an ephemeral port.
    a.add_(
        &rec(TcpState::Established, "10.0.0.10:50000", "10.0.0.2:9002", 0),
        &owners,
    );
    let snapshot = finish(a, &owners, &settings);
    assert_eq!(
        snapshot.exhaustion.destinations,
        vec![(Some(("10.0.0.1".parse().unwrap(), 9001)), 8), (None, 6)]
    );
    assert_eq!(snapshot.exhaustion.folded_destinations, 1);
    assert_eq!(snapshot.exhaustion.port_range, PortRange::new(40000, 40099));
}

#[test]
fn peers_keep_the_top_k_addresses_and_fold_the_rest_per_state() {
    let owners = Table::default();
    let settings = Settings {
        max_peers: 1,
        ..Settings::default()
    };
    let mut a = Aggregator::new(&settings, None);
    for (remote, state) in [
        ("10.0.0.5:1", TcpState::Established),
        ("10.0.0.5:2", TcpState::TimeWait),
        ("[::ffff:10.0.0.5]:3", TcpState::Established),
        ("10.0.0.6:1", TcpState::Established),
        ("10.0.0.7:1", TcpState::Established),
    ] {
        let local = if remote.starts_with('[') {
            "[::ffff:10.0.0.1]:5000"
        } else {
            "10.0.0.1:5000"
        };
        a.add_(&rec(state, local, remote, 0), &owners);
    }
    let snapshot = finish(a, &owners, &settings);
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    assert_eq!(
        snapshot.exhaustion.peers,
        vec![
            (ip("10.0.0.5"), TcpState::Established, 2),
            (ip("10.0.0.5"), TcpState::TimeWait, 1),
            (None, TcpState::Established, 2),
        ],
        "a v4-mapped v6 peer is the same peer"
    );
    assert_eq!(snapshot.exhaustion.folded_peers, 2);
}

/// (direction, port, process, state) -> (sockets, receive bytes, send bytes).
type Series = FxHashMap<(Direction, PortLabel, String, TcpState), (u64, u64, u64)>;

/// A socket of a small world: few ports and owners, so that sockets share series.
fn arb_socket() -> impl proptest::strategy::Strategy<Value = (TcpState, u16, u16, u32)> {
    use proptest::prelude::*;
    (
        0..TcpState::COUNT,
        prop::sample::select(vec![80u16, 443, 3306, 40000, 40001]),
        prop::sample::select(vec![80u16, 5432, 50000, 50001]),
        0u32..4,
    )
        .prop_map(|(state, local, remote, owner)| (TcpState::ALL[state], local, remote, owner))
}

/// Issue 27: the TIME_WAIT of a server that closed first after its listener exited was
/// outbound, with the client's ephemeral port as its port.
#[test]
fn without_a_listener_the_ephemeral_range_decides_the_direction() {
    let range = PortRange::new(32768, 60999);
    let cases = [
        // A listener on the local port: inbound, whatever the range says.
        (true, 8080, 39392, range, (Direction::Inbound, 8080)),
        (true, 40000, 39392, range, (Direction::Inbound, 40000)),
        // No listener, local outside and remote inside: the server's side, inbound.
        (false, 8080, 39392, range, (Direction::Inbound, 8080)),
        (false, 32767, 32768, range, (Direction::Inbound, 32767)),
        (false, 61000, 60999, range, (Direction::Inbound, 61000)),
        // Local inside, remote outside: a client, outbound to the remote port.
        (false, 39392, 8080, range, (Direction::Outbound, 8080)),
        // Both inside, both outside: today's rule, outbound.
        (false, 40000, 50000, range, (Direction::Outbound, 50000)),
        (false, 8080, 5432, range, (Direction::Outbound, 5432)),
        // The range could not be read: today's rule.
        (false, 8080, 39392, None, (Direction::Outbound, 39392)),
    ];
    for (listening, local, remote, range, want) in cases {
        assert_eq!(
            direction(listening, local, remote, range),
            want,
            "listening {listening}, local {local}, remote {remote}, range {range:?}"
        );
    }
}

/// The same through the fold: a server's TIME_WAIT without its listener is an inbound
/// series on the server's port, ownerless, and not a never-accepted socket; a client's
/// TIME_WAIT is still outbound and uses an ephemeral port.
#[test]
fn a_server_time_wait_after_its_listener_exited_is_inbound() {
    let owners = Table::default();
    let mut a = Aggregator::new(&Settings::default(), PortRange::new(32768, 60999));
    a.add_(
        &rec(TcpState::TimeWait, "127.0.0.1:8080", "127.0.0.1:39392", 0),
        &owners,
    );
    a.add_(
        &rec(
            TcpState::Established,
            "127.0.0.1:8080",
            "127.0.0.1:39394",
            0,
        ),
        &owners,
    );
    a.add_(
        &rec(TcpState::TimeWait, "127.0.0.1:39393", "127.0.0.1:5432", 0),
        &owners,
    );
    let figures = finish(a, &owners, &Settings::default());
    assert_eq!(
        series(&figures),
        [
            "inbound 8080 \"\" established = 1 r0 s0",
            "inbound 8080 \"\" time_wait = 1 r0 s0",
            "outbound 5432 \"\" time_wait = 1 r0 s0",
        ]
    );
    assert!(
        figures.breakdown.unaccepted.is_empty(),
        "{:?}",
        figures.breakdown.unaccepted
    );
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(
        figures.exhaustion.destinations,
        [(Some((loopback, 5432)), 1)]
    );
}

proptest::proptest! {
    /// The fold of any records equals a naive count of them: states per family, sockets
    /// per (direction, port, process, state) with inbound meaning "the local port is a
    /// listening port, or, with none, not ephemeral while the remote port is", queued bytes, and never-accepted sockets. Caps high enough to fold
    /// nothing.
    #[test]
    fn the_fold_equals_a_naive_count(sockets in proptest::collection::vec(arb_socket(), 0..60)) {
        let mut owners = Table::default();
        for inode in 1..4 {
            owners.own(inode, &format!("proc-{inode}"));
        }
        let records: Vec<Record> = sockets
            .iter()
            .enumerate()
            .map(|(i, &(state, local, remote, owner))| Record {
                recv_queue: i as u32,
                send_queue: 2 * i as u32,
                ..rec(state, &format!("10.0.0.1:{local}"), &format!("10.0.0.2:{remote}"), owner)
            })
            .collect();
        let settings = Settings {
            max_ports: 1000,
            max_processes: 1000,
            ..Settings::default()
        };
        // Local 40001 and remote 50000 are ephemeral, 40000 and 50001 are not: every case
        // of the rule for sockets without a listener.
        let range = PortRange::new(40001, 50000);
        let mut a = Aggregator::new(&settings, range);
        // The LISTEN dump first, as the recipe does.
        for r in records.iter().filter(|r| r.state == TcpState::Listen) {
            a.add_listener(r, &owners);
        }
        for r in records.iter().filter(|r| r.state != TcpState::Listen) {
            a.add(r, None, &owners);
        }
        let figures = finish(a, &owners, &settings);

        let mut states = StateCounts::default();
        for r in &records {
            states.add(r.family, r.state);
        }
        proptest::prop_assert_eq!(&figures.tcp_sockets, &states);

        let listening: Vec<u16> = records
            .iter()
            .filter(|r| r.state == TcpState::Listen)
            .map(|r| r.local.port())
            .collect();
        let mut naive: Series = FxHashMap::default();
        let mut unaccepted: FxHashMap<(PortLabel, TcpState), u64> = FxHashMap::default();
        for r in records.iter().filter(|r| r.state != TcpState::Listen) {
            let (local, remote) = (r.local.port(), r.remote.port());
            let ephemeral = |port| (40001..=50000).contains(&port);
            let server_side = !ephemeral(local) && ephemeral(remote);
            let (direction, port) = if listening.contains(&local) || server_side {
                (Direction::Inbound, local)
            } else {
                (Direction::Outbound, remote)
            };
            let process = match r.inode {
                0 => String::new(),
                inode => format!("proc-{inode}"),
            };
            let entry = naive
                .entry((direction, PortLabel::Port(port), process, r.state))
                .or_default();
            entry.0 += 1;
            entry.1 += u64::from(r.recv_queue);
            entry.2 += u64::from(r.send_queue);
            if r.inode == 0
                && listening.contains(&local)
                && matches!(r.state, TcpState::Established | TcpState::CloseWait)
            {
                *unaccepted.entry((PortLabel::Port(port), r.state)).or_default() += 1;
            }
        }
        let folded: Series = figures
            .breakdown
            .ports
            .iter()
            .map(|s| {
                (
                    (s.direction, s.port, s.process.to_string(), s.state),
                    (s.sockets, s.receive_bytes, s.send_bytes),
                )
            })
            .collect();
        proptest::prop_assert_eq!(folded, naive);
        let folded_unaccepted: FxHashMap<(PortLabel, TcpState), u64> = figures
            .breakdown
            .unaccepted
            .iter()
            .map(|(port, state, n)| ((*port, *state), *n))
            .collect();
        proptest::prop_assert_eq!(folded_unaccepted, unaccepted);
        proptest::prop_assert_eq!(figures.breakdown.unattributed, 0);
    }
}
