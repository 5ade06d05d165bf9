//! The caps keep the signal: each family ranked by what its alert watches, anomalies kept
//! up to their ceiling, and what the ceiling folds counted.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::fold::owners::testing::Table;
use crate::source::inet_diag::Record;

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

fn listener(port: u16, inode: u32, length: u32, limit: u32) -> Record {
    Record {
        recv_queue: length,
        send_queue: limit,
        ..rec(
            TcpState::Listen,
            &format!("127.0.0.1:{port}"),
            "0.0.0.0:0",
            inode,
        )
    }
}

/// A world under construction: owners and records, the LISTEN dump first.
#[derive(Default)]
struct World {
    owners: Table,
    listeners: Vec<Record>,
    others: Vec<(Record, Option<Duration>)>,
    inode: u32,
    client_port: u16,
}

impl World {
    fn next_inode(&mut self, owner: &str) -> u32 {
        self.inode += 1;
        self.owners.own(self.inode, owner);
        self.inode
    }

    fn listen(&mut self, owner: &str, port: u16, length: u32, limit: u32) {
        let inode = self.next_inode(owner);
        self.listeners.push(listener(port, inode, length, limit));
    }

    /// `n` connections from `owner`'s clients to `owner`'s listener on `port`: both ends.
    fn connections(&mut self, owner: &str, port: u16, n: usize) {
        for _ in 0..n {
            self.client_port += 1;
            let client = format!("127.0.0.1:{}", 30000 + self.client_port);
            let server = format!("127.0.0.1:{port}");
            let inode = self.next_inode(owner);
            self.others
                .push((rec(TcpState::Established, &server, &client, inode), None));
            let inode = self.next_inode(owner);
            self.others
                .push((rec(TcpState::Established, &client, &server, inode), None));
        }
    }

    /// `n` inbound sockets on `port` in `state`, of `owner` (`None`: no owner, inode 0).
    fn inbound(&mut self, owner: Option<&str>, port: u16, state: TcpState, n: usize, age: u64) {
        for _ in 0..n {
            self.client_port += 1;
            let client = format!("127.0.0.1:{}", 30000 + self.client_port);
            let inode = owner.map_or(0, |owner| self.next_inode(owner));
            let age = (state == TcpState::CloseWait).then(|| Duration::from_secs(age));
            self.others.push((
                rec(state, &format!("127.0.0.1:{port}"), &client, inode),
                age,
            ));
        }
    }

    fn finish(self, settings: &Settings) -> TcpFigures {
        let mut a = Aggregator::new(settings, None);
        for l in &self.listeners {
            a.add_listener(l, &self.owners);
        }
        for (r, age) in &self.others {
            a.add(r, *age, &self.owners);
        }
        a.finish(&self.owners, settings, &ListenSample::default())
    }
}

/// 60 services with 30 connections each: more ports and processes than the caps hold.
fn busy_host() -> World {
    let mut world = World::default();
    for i in 0..60 {
        let name = format!("svc-{i:02}");
        world.listen(&name, 9000 + i, 0, 128);
        world.connections(&name, 9000 + i, 30);
    }
    world
}

fn port_series(figures: &TcpFigures, port: PortLabel, process: &str, state: TcpState) -> u64 {
    figures
        .breakdown
        .ports
        .iter()
        .find(|s| s.port == port && &*s.process == process && s.state == state)
        .map_or(0, |s| s.sockets)
}

#[test]
fn busy_services_folded_a_close_wait_leak_into_other() {
    let mut world = busy_host();
    world.listen("leaky-app", 8081, 0, 128);
    world.inbound(Some("leaky-app"), 8081, TcpState::CloseWait, 20, 5);
    let figures = world.finish(&Settings::default());
    let port = PortLabel::Port(8081);
    assert_eq!(
        port_series(&figures, port, "leaky-app", TcpState::CloseWait),
        20
    );
    assert_eq!(
        port_series(&figures, PortLabel::Other, "other", TcpState::CloseWait),
        0
    );
    // The volume caps still bind the other states: of 60 services' ports, 10 inbound and
    // 10 outbound fold, and 30 of their processes; the leak's port and process are
    // folded for no state.
    let b = &figures.breakdown;
    assert_eq!((b.folded_ports, b.folded_processes), (10 + 10, 30));
    assert_eq!(b.folded_anomalies, FoldedAnomalies::default());
}

#[test]
fn two_hundred_processes_and_two_thousand_ports_keep_a_leak_within_the_defaults() {
    let mut world = World::default();
    for i in 0..200u16 {
        let name = format!("proc-{i:03}");
        for j in 0..10 {
            let port = 10000 + i * 10 + j;
            world.listen(&name, port, 0, 128);
            world.connections(&name, port, 1);
        }
    }
    world.listen("leaky-app", 8081, 0, 128);
    world.inbound(Some("leaky-app"), 8081, TcpState::CloseWait, 20, 5);
    let figures = world.finish(&Settings::default());
    assert_eq!(
        port_series(
            &figures,
            PortLabel::Port(8081),
            "leaky-app",
            TcpState::CloseWait
        ),
        20
    );
    // 2,001 listeners, 100 kept. Port series: per direction the 50 ports kept by volume
    // (inbound: 8081 and 49 others), one `port="other"` series per kept process with
    // folded ports (25 inbound, 24 outbound), `other` for the rest, and the leak.
    let b = &figures.breakdown;
    assert_eq!((b.listeners.len(), b.folded_listeners), (100, 1901));
    assert_eq!(b.ports.len(), 49 + 25 + 1 + 1 + 50 + 24 + 1);
}

#[test]
fn a_time_wait_storm_on_a_quiet_port_keeps_its_label() {
    let mut world = busy_host();
    world.listen("token-api", 6601, 0, 128);
    // Fewer sockets than any service: the volume caps alone would fold it.
    world.inbound(None, 6601, TcpState::TimeWait, 20, 0);
    let figures = world.finish(&Settings::default());
    assert_eq!(
        port_series(&figures, PortLabel::Port(6601), "", TcpState::TimeWait),
        20
    );
}

#[test]
fn never_accepted_close_wait_keeps_its_port_on_a_busy_host() {
    let mut world = busy_host();
    world.listen("cpp-server", 7000, 5, 4);
    world.inbound(None, 7000, TcpState::CloseWait, 2, 1);
    let figures = world.finish(&Settings::default());
    assert_eq!(
        figures.breakdown.unaccepted,
        vec![(PortLabel::Port(7000), TcpState::CloseWait, 2)]
    );
    assert_eq!(
        port_series(&figures, PortLabel::Port(7000), "", TcpState::CloseWait),
        2
    );
    // Its listener (not full: 2 of 128) outranks a fuller one (50 of 128) for a cap of
    // one: SockdiagListenerNotAccepting names it.
    let mut world = busy_host();
    world.listen("busy", 7001, 50, 128);
    world.listen("cpp-server", 7000, 2, 128);
    world.inbound(None, 7000, TcpState::CloseWait, 2, 1);
    let settings = Settings {
        max_listeners: 1,
        ..Settings::default()
    };
    let figures = world.finish(&settings);
    let kept: Vec<u16> = figures.breakdown.listeners.iter().map(|l| l.port).collect();
    assert_eq!(kept, vec![7000]);
}

#[test]
fn listeners_beyond_the_cap_fold_the_emptiest_and_keep_their_process() {
    let mut world = World::default();
    // Ten listeners; 8003 and 8007 full, 8005 half full.
    for i in 0..10u16 {
        let (length, limit) = match i {
            3 => (5, 4),
            7 => (129, 128),
            5 => (64, 128),
            _ => (0, 128),
        };
        world.listen(&format!("srv-{i}"), 8000 + i, length, limit);
    }
    let settings = Settings {
        max_listeners: 3,
        max_processes: 1,
        ..Settings::default()
    };
    let figures = world.finish(&settings);
    let kept: Vec<(u16, &str, u64, u64)> = figures
        .breakdown
        .listeners
        .iter()
        .map(|l| (l.port, &*l.process, l.length, l.limit))
        .collect();
    assert_eq!(
        kept,
        vec![
            (8003, "srv-3", 5, 4),
            (8005, "srv-5", 64, 128),
            (8007, "srv-7", 129, 128),
        ]
    );
    assert_eq!(figures.breakdown.folded_listeners, 7);
    assert_eq!(figures.breakdown.folded_anomalies.listeners, 0);
}

#[test]
fn anomalies_beyond_the_ceiling_are_folded_most_severe_kept_and_counted() {
    let mut world = World::default();
    // Six stale CLOSE_WAIT holders on six ports, 1 to 6 stale sockets each; the cap of
    // two gives a ceiling of four.
    for i in 1..=6u16 {
        let name = format!("leak-{i}");
        world.listen(&name, 8000 + i, 0, 128);
        world.inbound(
            Some(&name),
            8000 + i,
            TcpState::CloseWait,
            usize::from(i),
            120,
        );
    }
    // Five full listeners with a cap of two: four kept.
    for i in 1..=5u16 {
        world.listen("full", 9000 + i, u32::from(i) + 1, 1);
    }
    let settings = Settings {
        max_ports: 2,
        max_listeners: 2,
        ..Settings::default()
    };
    let figures = world.finish(&settings);
    for i in 1..=6u16 {
        let want = if i >= 3 { u64::from(i) } else { 0 };
        assert_eq!(
            port_series(
                &figures,
                PortLabel::Port(8000 + i),
                &format!("leak-{i}"),
                TcpState::CloseWait
            ),
            want,
            "holder {i}"
        );
    }
    let ports: Vec<u16> = figures.breakdown.listeners.iter().map(|l| l.port).collect();
    assert_eq!(ports, vec![9002, 9003, 9004, 9005]);
    assert_eq!(
        figures.breakdown.folded_anomalies,
        FoldedAnomalies {
            close_wait: 2,
            time_wait: 0,
            listeners: 1,
        }
    );
    // The 6 idle listeners of the leaks and one full one.
    assert_eq!(figures.breakdown.folded_listeners, 7);
}

/// A record of a small world for the property: (kind, port, owner, count, age or
/// backlog). Kinds: 0 CLOSE_WAIT, 1 established, 2 a listener.
fn arb_item() -> impl proptest::strategy::Strategy<Value = (u8, u16, u32, u32, u32)> {
    (0u8..3, 1u16..12, 0u32..6, 1u32..40, 0u32..200)
}

proptest::proptest! {
    /// For any mix of CLOSE_WAIT holders, busy established sockets and listeners, and any
    /// caps: the top K CLOSE_WAIT holders by severity (K the cap) keep port, process and
    /// count, and the top K listeners by fill keep their figures.
    #[test]
    fn the_top_k_by_the_watched_quantity_keep_their_labels(
        items in proptest::collection::vec(arb_item(), 0..40),
        max_ports in 1usize..4,
        max_processes in 1usize..4,
        max_listeners in 1usize..4,
    ) {
        let mut world = World::default();
        // Listeners first, one per port: those of the items, then an idle one on every
        // other port the items use, so that every socket there is inbound.
        let mut listening: Vec<(u16, u64, u64)> = Vec::new();
        for &(kind, port, owner, count, extra) in &items {
            let port = 8000 + port;
            if kind == 2 && !listening.iter().any(|l| l.0 == port) {
                let (length, limit) = (count, extra % 50);
                world.listen(&format!("p{owner}"), port, length, limit);
                listening.push((port, u64::from(length), u64::from(limit)));
            }
        }
        for &(_, port, _, _, _) in &items {
            let port = 8000 + port;
            if !listening.iter().any(|l| l.0 == port) {
                world.listen("idle", port, 0, 128);
                listening.push((port, 0, 128));
            }
        }
        let mut holders: FxHashMap<(u16, String), (u64, u64, u64)> = FxHashMap::default();
        for &(kind, port, owner, count, extra) in &items {
            let port = 8000 + port;
            let name = format!("p{owner}");
            match kind {
                0 => {
                    world.inbound(Some(&name), port, TcpState::CloseWait, count as usize, u64::from(extra));
                    let h = holders.entry((port, name)).or_default();
                    h.0 += u64::from(extra >= 60) * u64::from(count);
                    h.1 += u64::from(count);
                    h.2 = h.2.max(u64::from(extra));
                }
                1 => world.connections(&name, port, count as usize),
                _ => {}
            }
        }
        let settings = Settings { max_ports, max_processes, max_listeners, ..Settings::default() };
        let figures = world.finish(&settings);
        let mut ranked: Vec<_> = holders.into_iter().collect();
        let key = |h: &(u64, u64, u64)| (h.0 > 0 || h.1 >= 50, h.0, h.1, h.2);
        ranked.sort_by_key(|(_, h)| Reverse(key(h)));
        if ranked.len() > max_ports {
            let boundary = key(&ranked[max_ports].1);
            for ((port, name), h) in &ranked[..max_ports] {
                if key(h) > boundary {
                    let kept = figures.breakdown.ports.iter().any(|s| {
                        s.state == TcpState::CloseWait
                            && s.port == PortLabel::Port(*port)
                            && &*s.process == name
                            && s.sockets == h.1
                    });
                    proptest::prop_assert!(kept, "holder {port} {name} {h:?} folded");
                }
            }
        } else {
            for ((port, name), h) in &ranked {
                proptest::prop_assert_eq!(
                    port_series(&figures, PortLabel::Port(*port), name, TcpState::CloseWait),
                    h.1
                );
            }
        }
        listening.sort_by(|a, b| cmp_fill((b.1, b.2), (a.1, a.2)));
        let kept = figures.breakdown.listeners.len();
        proptest::prop_assert_eq!(kept, listening.len().min(max_listeners).max(
            listening.iter().filter(|l| settings.anomaly.listen_full(l.1, l.2)).count().min(2 * max_listeners)
        ));
        for (port, length, limit) in &listening[..listening.len().min(max_listeners)] {
            let boundary = listening.get(max_listeners).map(|l| (l.1, l.2));
            if boundary.is_some_and(|b| cmp_fill((*length, *limit), b) != Ordering::Greater) {
                continue;
            }
            let found = figures.breakdown.listeners.iter().any(|l| {
                l.port == *port && l.length == *length && l.limit == *limit
            });
            proptest::prop_assert!(found, "listener {port} {length}/{limit} folded");
        }
    }
}
