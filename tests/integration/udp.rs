//! UDP receivers (issue 26): a receiver with SO_RCVBUF 4096 that never reads, flooded on
//! loopback, beside one that reads; the exporter's queue, buffer and drop figures checked
//! against `ss -uam` after each flood and across a restart of the receiver; IPv6 in a
//! second namespace. Every socket lives in a private network namespace.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Socket, Type};

use crate::actor::Actor;
use crate::exporter::{own_netns_inode, Exporter, Scrape};
use crate::load::wait_for;
use crate::netns::{in_netns, output};

/// A UDP socket bound to `address`, with SO_RCVBUF `rcvbuf` unless 0.
pub fn bind(address: SocketAddr, rcvbuf: usize) -> Socket {
    let socket = Socket::new(Domain::for_address(address), Type::DGRAM, None).expect("UDP socket");
    if rcvbuf > 0 {
        socket.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
    }
    socket.bind(&address.into()).expect("bind UDP socket");
    socket
}

/// `skmem` figures of one socket in `ss -uam`: r, rb, d.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skmem {
    pub r: u64,
    pub rb: u64,
    pub d: u64,
}

/// `ss -uamnOH` of the calling thread's namespace, by local address.
fn ss_udp() -> BTreeMap<String, Skmem> {
    output("ss", &["-uamnOH"])
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let skmem = fields
                .iter()
                .find_map(|f| f.strip_prefix("skmem:("))
                .unwrap_or_else(|| panic!("no skmem in {line:?}"))
                .trim_end_matches(')');
            let value = |key: &str| -> u64 {
                skmem
                    .split(',')
                    .find_map(|kv| {
                        let digits = kv.strip_prefix(key)?;
                        digits.parse().ok()
                    })
                    .unwrap_or_else(|| panic!("no {key} in {skmem}"))
            };
            let figures = Skmem {
                r: value("r"),
                rb: value("rb"),
                d: value("d"),
            };
            (fields[3].to_string(), figures)
        })
        .collect()
}

/// The `skmem` figures of the socket bound to `local` in the calling thread's namespace.
pub fn ss_of(local: &str) -> Skmem {
    *ss_udp()
        .get(local)
        .unwrap_or_else(|| panic!("{local} not in ss -uam: {:?}", ss_udp()))
}

/// Sends `n` datagrams of 64 bytes to `to` from a socket closed afterwards. With
/// `paced`, waits for the receiver's queue to empty every 50 (a reader keeps up).
pub fn flood(to: SocketAddr, n: usize, paced: Option<&str>) {
    let any: SocketAddr = if to.is_ipv4() {
        "127.0.0.1:0".parse().unwrap()
    } else {
        "[::1]:0".parse().unwrap()
    };
    let sender = UdpSocket::bind(any).expect("bind sender");
    for i in 0..n {
        sender.send_to(&[b'm'; 64], to).expect("send");
        if let Some(local) = paced {
            if i % 50 == 49 {
                wait_for(|| ss_of(local).r == 0);
            }
        }
    }
}

fn series(port: u16, process: &str) -> String {
    format!("{{direction=\"inbound\",port=\"{port}\",process=\"{process}\"}}")
}

/// The exporter's (queue, buffer, drops) of an inbound series, in a scrape of one
/// namespace (its `netns` label taken out).
pub fn figures(scrape: &Scrape, port: u16, process: &str) -> Skmem {
    let s = series(port, process);
    Skmem {
        r: scrape.value(&format!("sockdiag_udp_receive_queue_bytes{s}")) as u64,
        rb: scrape.value(&format!("sockdiag_udp_receive_buffer_bytes{s}")) as u64,
        d: scrape.value(&format!("sockdiag_udp_drops_total{s}")) as u64,
    }
}

fn udp_drops_queue_and_buffer_equal_ss_across_floods_and_a_restart() {
    in_netns(|| {
        let (sink_at, reader_at) = ("127.0.0.1:8125", "127.0.0.1:8126");
        let sink = Actor::start("udp-sink", "udp-recv", &[sink_at, "4096", "hold"]);
        let _reader = Actor::start("udp-reader", "udp-recv", &[reader_at, "0", "read"]);
        flood(sink_at.parse().unwrap(), 1000, None);
        flood(reader_at.parse().unwrap(), 1000, Some(reader_at));
        let first = ss_of(sink_at);
        assert!(first.d > 900, "the sink drops most of the flood: {first:?}");
        assert_eq!(ss_of(reader_at).d, 0, "the reader keeps up");

        let mut exporter = Exporter::start(10130, &["--poll.interval=2s"]);
        exporter.wait_for_fresh_poll();
        let scrape = exporter.scrape();
        assert_eq!(figures(&scrape, 8125, "udp-sink"), first);
        assert_eq!(figures(&scrape, 8126, "udp-reader").d, 0);
        assert_eq!(
            scrape.lines("sockdiag_udp_sockets"),
            vec!["{family=\"ipv4\"} 2", "{family=\"ipv6\"} 0"]
        );

        // 1,000 more while the exporter runs.
        flood(sink_at.parse().unwrap(), 1000, None);
        flood(reader_at.parse().unwrap(), 1000, Some(reader_at));
        let second = ss_of(sink_at);
        assert!(second.d >= first.d + 900, "{second:?} after {first:?}");
        exporter.wait_for_fresh_poll();
        let scrape = exporter.scrape();
        assert_eq!(figures(&scrape, 8125, "udp-sink"), second);
        assert_eq!(figures(&scrape, 8126, "udp-reader").d, 0);
        assert_eq!(ss_of(reader_at).d, 0);

        // The receiver restarts: a new socket on the same port, which drops a little.
        drop(sink);
        wait_for(|| !ss_udp().contains_key(sink_at));
        let _sink = Actor::start("udp-sink", "udp-recv", &[sink_at, "4096", "hold"]);
        flood(sink_at.parse().unwrap(), 100, None);
        let third = ss_of(sink_at);
        assert!(
            third.d < second.d,
            "a new socket counts from zero: {third:?}"
        );
        exporter.wait_for_fresh_poll();
        let scrape = exporter.scrape();
        let after = figures(&scrape, 8125, "udp-sink");
        assert_eq!(
            after.d,
            second.d + third.d,
            "the counter continues from the old socket's drops"
        );
        assert_eq!((after.r, after.rb), (third.r, third.rb));
    });
}

fn udp_ipv6_receiver_in_a_second_namespace() {
    in_netns(|| {
        let (sink, inode, expected) = in_netns(|| {
            let at = "[::1]:5140";
            let sink = Actor::start("syslog-sink", "udp-recv", &[at, "4096", "hold"]);
            flood(at.parse().unwrap(), 1000, None);
            (sink, own_netns_inode(), ss_of(at))
        });
        assert!(expected.d > 0, "{expected:?}");
        let mut exporter = Exporter::start(10131, &["--poll.interval=1h", "--namespaces=all"]);
        exporter.wait_for_poll();
        let scrape = exporter.scrape_all().only_netns(inode);
        assert_eq!(figures(&scrape, 5140, "syslog-sink"), expected);
        assert_eq!(
            scrape.lines("sockdiag_udp_sockets"),
            vec!["{family=\"ipv6\"} 1"],
            "only non-zero families outside the host's and our own namespace"
        );
        drop(sink);
    });
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        udp_drops_queue_and_buffer_equal_ss_across_floods_and_a_restart,
        udp_ipv6_receiver_in_a_second_namespace,
    ]
}
