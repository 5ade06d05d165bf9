use std::net::SocketAddr;
use std::time::Instant;

use super::*;
use crate::fold::owners::testing::Table;
use crate::snapshot::UdpDropSeries;
use crate::source::inet_diag::Family;

fn record(cookie: u64, local: &str, remote: &str, inode: u32, drops: u32) -> Record {
    let local: SocketAddr = local.parse().unwrap();
    let remote: SocketAddr = remote.parse().unwrap();
    Record {
        family: if local.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        },
        connected: remote.port() != 0,
        local,
        remote,
        uid: 0,
        inode,
        cookie,
        queue_bytes: 100,
        buffer_bytes: 8192,
        drops,
    }
}

fn owners() -> Table {
    let mut table = Table::default();
    table.own(1, "udp-sink");
    table.own(2, "resolver");
    table.own(3, "dnsmasq");
    table.own_later(4, "late");
    table
}

fn settings(max_ports: usize) -> Settings {
    Settings {
        max_ports,
        ..Settings::default()
    }
}

fn fold(records: &[Record], max_ports: usize, tracker: &mut DropTracker) -> UdpFigures {
    let owners = owners();
    let mut aggregator = UdpAggregator::new(PortRange::new(32768, 60999));
    for r in records {
        aggregator.add(r, &owners);
    }
    tracker.begin_poll(Instant::now());
    let figures = aggregator.finish(1, &owners, &settings(max_ports), tracker);
    tracker.end_poll(&[]);
    figures
}

fn labels(figures: &UdpFigures) -> Vec<(&'static str, String, String, u64)> {
    figures
        .series
        .iter()
        .map(|s| {
            (
                s.direction.label(),
                s.port.to_string(),
                s.process.to_string(),
                s.sockets,
            )
        })
        .collect()
}

#[test]
fn a_local_server_and_clients_of_the_same_port_never_share_a_series() {
    let mut tracker = DropTracker::new(100);
    let figures = fold(
        &[
            record(1, "0.0.0.0:53", "0.0.0.0:0", 3, 0),
            record(2, "10.0.0.1:40000", "10.0.0.2:53", 2, 0),
            record(3, "10.0.0.1:40001", "10.0.0.3:53", 2, 0),
            // Connected, but on a port outside the ephemeral range: a server's socket.
            record(4, "10.0.0.1:5353", "10.0.0.3:53", 3, 0),
            // Unconnected on an ephemeral port: it receives from anyone.
            record(5, "0.0.0.0:45000", "0.0.0.0:0", 2, 0),
        ],
        10,
        &mut tracker,
    );
    assert_eq!(
        labels(&figures),
        vec![
            ("inbound", "53".into(), "dnsmasq".into(), 1),
            ("inbound", "5353".into(), "dnsmasq".into(), 1),
            ("inbound", "45000".into(), "resolver".into(), 1),
            ("outbound", "53".into(), "resolver".into(), 2),
        ]
    );
    assert_eq!(figures.sockets, [5, 0]);
    let drops: Vec<u64> = figures.drops.iter().map(|s| s.drops).collect();
    assert_eq!(drops, vec![0; 4], "every series has a drop counter, at 0");
}

#[test]
fn queues_and_buffers_are_summed_and_unknown_owners_counted() {
    let mut tracker = DropTracker::new(100);
    let figures = fold(
        &[
            record(1, "[::]:8125", "[::]:0", 1, 0),
            record(2, "0.0.0.0:8125", "0.0.0.0:0", 1, 0),
            record(3, "0.0.0.0:9000", "0.0.0.0:0", 4, 0),
            record(4, "0.0.0.0:9001", "0.0.0.0:0", 99, 0),
        ],
        10,
        &mut tracker,
    );
    let sink = &figures.series[0];
    assert_eq!(
        (
            sink.port,
            &*sink.process,
            sink.sockets,
            sink.queue_bytes,
            sink.buffer_bytes
        ),
        (PortLabel::Port(8125), "udp-sink", 2, 200, 16384)
    );
    assert_eq!(
        &*figures.series[1].process, "late",
        "settled after the scan"
    );
    assert_eq!(&*figures.series[2].process, "unknown");
    assert_eq!(figures.unattributed, 1);
    assert_eq!(figures.sockets, [3, 1]);
}

#[test]
fn a_dropping_port_keeps_its_label_whatever_the_cap() {
    let mut tracker = DropTracker::new(100);
    let mut records: Vec<Record> = (0..20u16)
        .flat_map(|i| {
            // Busy quiet ports: three sockets each.
            (0..3u64).map(move |j| {
                record(
                    u64::from(i) * 10 + j + 100,
                    &format!("0.0.0.0:{}", 1000 + i),
                    "0.0.0.0:0",
                    3,
                    0,
                )
            })
        })
        .collect();
    records.push(record(1, "0.0.0.0:8125", "0.0.0.0:0", 1, 994));
    let figures = fold(&records, 2, &mut tracker);
    let kept: Vec<String> = figures.series.iter().map(|s| s.port.to_string()).collect();
    // The dropping port ranks first and takes a place of the cap.
    assert_eq!(kept, vec!["1000", "8125", "other"]);
    assert_eq!(figures.folded_series, 19);
    assert_eq!(figures.folded_dropping, 0);
    let sink = UdpDropSeries {
        direction: Direction::Inbound,
        port: PortLabel::Port(8125),
        process: Arc::from("udp-sink"),
        drops: 994,
    };
    assert_eq!(
        figures.drops.iter().find(|s| s.port == sink.port),
        Some(&sink)
    );
    assert_eq!(figures.drops.iter().map(|s| s.drops).sum::<u64>(), 994);
}

#[test]
fn dropping_series_beyond_the_ceiling_fold_into_other_and_are_counted() {
    let mut tracker = DropTracker::new(100);
    let records: Vec<Record> = (0..7u16)
        .map(|i| {
            record(
                u64::from(i),
                &format!("0.0.0.0:{}", 2000 + i),
                "0.0.0.0:0",
                3,
                u32::from(i) + 1,
            )
        })
        .collect();
    let figures = fold(&records, 2, &mut tracker);
    let kept: Vec<String> = figures.series.iter().map(|s| s.port.to_string()).collect();
    // The four that dropped most (cap 2, ceiling 4), then other.
    assert_eq!(kept, vec!["2003", "2004", "2005", "2006", "other"]);
    assert_eq!((figures.folded_series, figures.folded_dropping), (3, 3));
    let other = figures
        .drops
        .iter()
        .find(|s| s.port == PortLabel::Other)
        .unwrap();
    assert_eq!(
        other.drops,
        1 + 2 + 3,
        "the folded drops are counted under other"
    );
    let total: u64 = figures.drops.iter().map(|s| s.drops).sum();
    assert_eq!(total, (1..=7).sum::<u64>());
}

#[test]
fn drops_follow_ss_d_across_polls_and_a_restart_never_lowers_the_counter() {
    let mut tracker = DropTracker::new(100);
    let sink = |cookie, drops| record(cookie, "127.0.0.1:8125", "0.0.0.0:0", 1, drops);
    let reader = record(9, "127.0.0.1:8126", "0.0.0.0:0", 3, 0);
    let drops = |f: &UdpFigures| -> Vec<(String, u64)> {
        f.drops
            .iter()
            .map(|s| (s.port.to_string(), s.drops))
            .collect()
    };
    let f = fold(&[sink(1, 991), reader], 10, &mut tracker);
    let expect = |sink: u64| vec![("8125".to_string(), sink), ("8126".to_string(), 0)];
    assert_eq!(drops(&f), expect(991));
    let f = fold(&[sink(1, 1982), reader], 10, &mut tracker);
    assert_eq!(drops(&f), expect(1982));
    assert_eq!(f.series[0].drops_growth, 991);
    // Restarted: a new socket on the same port.
    let f = fold(&[sink(2, 0), reader], 10, &mut tracker);
    assert_eq!(drops(&f), expect(1982));
    let f = fold(&[sink(2, 40), reader], 10, &mut tracker);
    assert_eq!(drops(&f), expect(2022));
}

#[test]
fn drops_of_a_folded_namespace_are_not_lost_for_the_next_poll() {
    // The tracker, not the figures, holds the counter: a poll whose figures are dropped
    // (the namespace folded by the namespace cap) still advances it.
    let mut tracker = DropTracker::new(100);
    let sink = |drops| record(1, "127.0.0.1:8125", "0.0.0.0:0", 1, drops);
    let _ = fold(&[sink(5)], 10, &mut tracker);
    let f = fold(&[sink(8)], 10, &mut tracker);
    assert_eq!(f.drops[0].drops, 8);
}

#[test]
fn a_socket_first_counted_in_other_keeps_counting_there_after_it_ranks_back() {
    // docs/metrics.md: a socket's drops go to the series it had in the first poll that saw
    // it drop, after the cap, for as long as it lives.
    let mut tracker = DropTracker::new(100);
    let ports = |first_grows: u32| -> Vec<Record> {
        (0..7u16)
            .map(|i| {
                let drops = u32::from(i) + 1 + if i == 0 { first_grows } else { 0 };
                record(
                    u64::from(i),
                    &format!("0.0.0.0:{}", 2000 + i),
                    "0.0.0.0:0",
                    3,
                    drops,
                )
            })
            .collect()
    };
    let drops_of =
        |f: &UdpFigures, port: PortLabel| f.drops.iter().find(|s| s.port == port).map(|s| s.drops);
    // Poll 1: 2000 dropped least and is folded (cap 2, ceiling 4).
    let first = fold(&ports(0), 2, &mut tracker);
    assert_eq!(drops_of(&first, PortLabel::Port(2000)), None);
    assert_eq!(drops_of(&first, PortLabel::Other), Some(1 + 2 + 3));
    // Poll 2: only 2000 drops, 100 more: it ranks first and has its own series again...
    let second = fold(&ports(100), 2, &mut tracker);
    assert_eq!(second.series[0].port, PortLabel::Port(2000));
    assert_eq!(second.series[0].drops_growth, 100);
    // ...whose counter starts at 0: the 100 went on in `other`, where it was first counted.
    assert_eq!(drops_of(&second, PortLabel::Port(2000)), Some(0));
    assert_eq!(drops_of(&second, PortLabel::Other), Some(1 + 2 + 3 + 100));
    let total: u64 = second.drops.iter().map(|s| s.drops).sum();
    assert_eq!(total, (1..=7).sum::<u64>() + 100);
}
