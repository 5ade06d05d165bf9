//! Leak and exhaustion signals: CLOSE_WAIT age, ephemeral ports per destination, peers,
//! kernel counters and sysctls of the namespace.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use sockdiag_exporter::poll::{Collector, PollerConfig, Scope};

use crate::actor::Actor;
use crate::exporter::Exporter;
use crate::load::{self, Load};
use crate::netns::{in_netns, output};

const OLDEST: &str = "sockdiag_tcp_close_wait_oldest_seconds{direction=\"inbound\",port=\"8080\",process=\"leaky-server\"}";
const STALE: &str = "sockdiag_tcp_close_wait_stale_sockets{direction=\"inbound\",port=\"8080\",process=\"leaky-server\"}";

fn leak(n: usize) -> Actor {
    let server = Actor::start(
        "leaky-server",
        "accept-and-hold",
        &["127.0.0.1:8080", &n.to_string()],
    );
    for _ in 0..n {
        drop(TcpStream::connect("127.0.0.1:8080").expect("connect"));
    }
    server
}

fn close_wait_age_grows_turns_stale_and_is_not_inherited() {
    in_netns(|| {
        let mut exporter = Exporter::start_with(10120, &["--poll.interval=500ms"], |c| {
            c.env("SOCKDIAG_CLOSE_WAIT_STALE_AFTER", "2s");
        });
        exporter.wait_for_poll();
        let server = leak(3);
        load::wait_for(|| load::ss_counts().get(&("ipv4", "close_wait")) == Some(&3));
        exporter.wait_for_fresh_poll();
        let first = exporter.scrape();
        assert_eq!(first.value(STALE), 0.0);
        let young = first.value(OLDEST);
        assert!(young < 2.0, "a new CLOSE_WAIT socket is young, got {young}");

        std::thread::sleep(Duration::from_millis(2600));
        exporter.wait_for_fresh_poll();
        let later = exporter.scrape();
        assert_eq!(later.value(STALE), 3.0, "all three are older than 2s now");
        assert!(later.value(OLDEST) >= 2.0 && later.value(OLDEST) > young);

        // Closing the leak removes the series.
        drop(server);
        load::wait_for(|| !load::ss_counts().contains_key(&("ipv4", "close_wait")));
        exporter.wait_for_fresh_poll();
        let closed = exporter.scrape();
        assert!(
            closed
                .family("sockdiag_tcp_close_wait_oldest_seconds")
                .is_empty(),
            "{}",
            closed.text
        );

        // A new leak on the same port starts from zero.
        let _again = leak(1);
        load::wait_for(|| load::ss_counts().get(&("ipv4", "close_wait")) == Some(&1));
        exporter.wait_for_fresh_poll();
        let fresh = exporter.scrape();
        assert_eq!(fresh.value(STALE), 0.0);
        assert!(
            fresh.value(OLDEST) < 2.0,
            "no inherited age: {}",
            fresh.value(OLDEST)
        );
    });
}

/// Connects from `local` to `remote`: `established` connections kept open, `time_wait`
/// closed by the client first so that it keeps the port in TIME_WAIT.
fn connect_from(
    load: &mut Load,
    listener: &TcpListener,
    local: &str,
    remote: SocketAddr,
    established: usize,
    time_wait: usize,
) {
    for i in 0..established + time_wait {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        socket
            .bind(&format!("{local}:0").parse::<SocketAddr>().unwrap().into())
            .expect("bind local address");
        socket.connect(&remote.into()).expect("connect");
        let client: TcpStream = socket.into();
        let (mut server, _) = listener.accept().expect("accept");
        if i < established {
            load.keep_stream(client);
            load.keep_stream(server);
        } else {
            drop(client);
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).expect("read to EOF");
        }
    }
}

fn ephemeral_ports_per_destination_and_top_peers() {
    in_netns(|| {
        output(
            "sysctl",
            &["-q", "-w", "net.ipv4.ip_local_port_range=40000 40099"],
        );
        let a: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:9002".parse().unwrap();
        let (la, lb) = (load::listen(a, 64), load::listen(b, 64));
        let mut sockets = Load::default();
        connect_from(&mut sockets, &la, "127.0.0.10", a, 5, 3);
        connect_from(&mut sockets, &la, "127.0.0.11", a, 2, 0);
        connect_from(&mut sockets, &lb, "127.0.0.10", b, 4, 0);
        connect_from(&mut sockets, &lb, "127.0.0.11", b, 4, 2);
        load::wait_for(|| {
            let ss = load::ss_counts();
            ss.get(&("ipv4", "time_wait")) == Some(&5) && !ss.contains_key(&("ipv4", "last_ack"))
        });
        let mut exporter = Exporter::start_with(10120, &["--poll.interval=1h"], |c| {
            c.env("SOCKDIAG_MAX_DESTINATIONS", "1")
                .env("SOCKDIAG_MAX_PEERS", "2");
        });
        exporter.wait_for_poll();
        let scrape = exporter.scrape();
        assert_eq!(
            scrape.value("sockdiag_tcp_ephemeral_port_range_size"),
            100.0
        );
        // Toward A: 8 ports from .10 (5 open, 3 TIME_WAIT), 2 from .11: the max is 8.
        // Toward B: 4 from .10, 6 from .11: the max, 6, is reported as the largest "other".
        assert_eq!(
            scrape.lines("sockdiag_tcp_ephemeral_ports_used"),
            vec![
                "{remote_address=\"127.0.0.1\",remote_port=\"9001\"} 8",
                "{remote_address=\"other\",remote_port=\"other\"} 6",
            ]
        );
        // Peers: 127.0.0.1 and 127.0.0.2 have 10 sockets each (client sides); the server
        // sides' peers 127.0.0.10 (9) and 127.0.0.11 (6) fold into other.
        assert_eq!(
            scrape.lines("sockdiag_tcp_peer_sockets"),
            vec![
                "{remote_address=\"127.0.0.1\",state=\"established\"} 7",
                "{remote_address=\"127.0.0.1\",state=\"time_wait\"} 3",
                "{remote_address=\"127.0.0.2\",state=\"established\"} 8",
                "{remote_address=\"127.0.0.2\",state=\"time_wait\"} 2",
                "{remote_address=\"other\",state=\"established\"} 15",
            ]
        );
        assert_eq!(
            scrape.value("sockdiag_folded_label_values{label=\"destination\"}"),
            1.0
        );
        assert_eq!(
            scrape.value("sockdiag_folded_label_values{label=\"remote_address\"}"),
            2.0
        );
        drop((la, lb, sockets));
    });
}

fn sysctls_of_the_namespace_and_overflow_counters() {
    in_netns(|| {
        for setting in [
            "net.ipv4.tcp_fin_timeout=17",
            "net.ipv4.tcp_keepalive_time=1800",
            "net.ipv4.tcp_keepalive_intvl=30",
            "net.ipv4.tcp_keepalive_probes=2",
            "net.ipv4.tcp_tw_reuse=1",
            "net.ipv4.tcp_max_tw_buckets=5000",
            "net.core.somaxconn=1024",
            "net.ipv4.tcp_max_syn_backlog=256",
        ] {
            output("sysctl", &["-q", "-w", setting]);
        }
        let mut exporter = Exporter::start(10120, &["--poll.interval=300ms"]);
        exporter.wait_for_poll();
        let before = exporter.scrape();
        for (series, want) in [
            ("sockdiag_sysctl_tcp_fin_timeout_seconds", 17.0),
            ("sockdiag_sysctl_tcp_keepalive_time_seconds", 1800.0),
            ("sockdiag_sysctl_tcp_keepalive_intvl_seconds", 30.0),
            ("sockdiag_sysctl_tcp_keepalive_probes", 2.0),
            ("sockdiag_sysctl_tcp_tw_reuse", 1.0),
            ("sockdiag_sysctl_tcp_max_tw_buckets", 5000.0),
            ("sockdiag_sysctl_somaxconn", 1024.0),
            ("sockdiag_sysctl_tcp_max_syn_backlog", 256.0),
            ("sockdiag_tcp_listen_overflows_total", 0.0),
            ("sockdiag_kernel_values_missing{source=\"netstat\"}", 0.0),
            ("sockdiag_kernel_values_missing{source=\"sysctl\"}", 0.0),
        ] {
            assert_eq!(before.value(series), want, "{series}");
        }
        // Overflow a backlog-0 listener that never accepts: the second and third SYNs are
        // dropped and counted.
        let full = load::listen("127.0.0.1:9100".parse().unwrap(), 0);
        let _queued = TcpStream::connect("127.0.0.1:9100").expect("connect");
        let _dropped: Vec<Socket> = (0..2)
            .map(|_| load::connect_in_flight("127.0.0.1:9100".parse().unwrap()))
            .collect();
        exporter.wait_for_fresh_poll();
        let after = exporter.scrape();
        assert!(
            after.value("sockdiag_tcp_listen_overflows_total") >= 2.0,
            "{}",
            after.text
        );
        assert!(after.value("sockdiag_tcp_listen_drops_total") >= 2.0);
        assert!(after.value("sockdiag_tcp_active_opens_total") >= 3.0);
        drop(full);
    });
}

/// Issue 27: sysctls are settings, kept between polls (read again once
/// `poll::sysctls::REFRESH` old, 60 s); the counters are read every poll. The second poll
/// below follows the first at once, far inside that minute.
fn sysctls_are_kept_between_polls_and_counters_are_not() {
    in_netns(|| {
        output("sysctl", &["-q", "-w", "net.core.somaxconn=1024"]);
        let mut config = PollerConfig::new(Duration::from_secs(1), None);
        config.scope = Scope::Own;
        let mut collector = Collector::new(&config, Default::default(), Default::default());
        // somaxconn and ActiveOpens of our (only) namespace, one poll.
        let poll = |collector: &mut Collector| {
            let (snapshot, _) = collector.poll().expect("poll");
            let [ns] = &snapshot.namespaces[..] else {
                panic!("one namespace, got {}", snapshot.namespaces.len())
            };
            (ns.kernel.sysctls.somaxconn, ns.kernel.counters.active_opens)
        };
        assert_eq!(poll(&mut collector), (Some(1024), Some(0)));
        output("sysctl", &["-q", "-w", "net.core.somaxconn=2048"]);
        let listener = TcpListener::bind("127.0.0.1:9200").unwrap();
        let _client = TcpStream::connect("127.0.0.1:9200").unwrap();
        assert_eq!(
            poll(&mut collector),
            (Some(1024), Some(1)),
            "the sysctl kept from the last poll, the counter read now"
        );
        collector.forget_sysctls();
        assert_eq!(poll(&mut collector), (Some(2048), Some(1)), "read again");
        drop(listener);
    });
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        close_wait_age_grows_turns_stale_and_is_not_inherited,
        ephemeral_ports_per_destination_and_top_peers,
        sysctls_of_the_namespace_and_overflow_counters,
        sysctls_are_kept_between_polls_and_counters_are_not,
    ]
}
