//! Who holds the sockets: the incidents of docs/incidents.md reproduced with named
//! processes, asserted as exact labelled values; cardinality caps; degraded mode.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use crate::actor::Actor;
use crate::exporter::Exporter;
use crate::load;
use crate::netns::in_netns;

fn ss_state(family_state: (&'static str, &'static str)) -> u64 {
    load::ss_counts().get(&family_state).copied().unwrap_or(0)
}

fn port_series(direction: &str, port: &str, process: &str, state: &str) -> String {
    format!("sockdiag_tcp_port_sockets{{direction=\"{direction}\",port=\"{port}\",process=\"{process}\",state=\"{state}\"}}")
}

/// Incidents 1 and 6: a server accepts and never closes after the peer's FIN.
fn incident_1_close_wait_inbound_is_named_by_server_and_port() {
    in_netns(|| {
        let _server = Actor::start("leaky-server", "accept-and-hold", &["127.0.0.1:8080", "5"]);
        for _ in 0..5 {
            drop(TcpStream::connect("127.0.0.1:8080").expect("connect"));
        }
        load::wait_for(|| {
            ss_state(("ipv4", "close_wait")) == 5 && ss_state(("ipv4", "fin_wait2")) == 5
        });
        let mut exporter = Exporter::start(10120, &["--poll.interval=1h"]);
        exporter.wait_for_poll();
        let scrape = exporter.scrape();
        assert_eq!(
            scrape.lines("sockdiag_tcp_port_sockets"),
            vec![
                "{direction=\"inbound\",port=\"8080\",process=\"leaky-server\",state=\"close_wait\"} 5",
                // The clients closed their end: orphans waiting in FIN_WAIT2, no owner.
                "{direction=\"outbound\",port=\"8080\",process=\"\",state=\"fin_wait2\"} 5",
            ]
        );
        // Each CLOSE_WAIT socket holds the peer's FIN, unread.
        assert_eq!(
            scrape.value("sockdiag_tcp_queued_bytes{direction=\"inbound\",port=\"8080\",process=\"leaky-server\",queue=\"receive\"}"),
            5.0
        );
        assert_eq!(
            scrape.family("sockdiag_tcp_unaccepted_sockets").len(),
            0,
            "all were accepted"
        );
        assert_eq!(scrape.value("sockdiag_unattributed_sockets"), 0.0);
    });
}

/// Incident 3: a client pool leaks connections the MySQL load balancer closed.
fn incident_3_outbound_close_wait_is_named_by_client_and_remote_port() {
    in_netns(|| {
        let _mysql = Actor::start("mysql-lb", "accept-and-close", &["127.0.0.1:3306", "4"]);
        let _client = Actor::start("go-service", "connect-and-hold", &["127.0.0.1:3306", "4"]);
        load::wait_for(|| {
            ss_state(("ipv4", "close_wait")) == 4 && ss_state(("ipv4", "fin_wait2")) == 4
        });
        let mut exporter = Exporter::start(10120, &["--poll.interval=1h"]);
        exporter.wait_for_poll();
        let scrape = exporter.scrape();
        assert_eq!(
            scrape.lines("sockdiag_tcp_port_sockets"),
            vec![
                // The server side closed first: nothing of it is in close_wait.
                "{direction=\"inbound\",port=\"3306\",process=\"\",state=\"fin_wait2\"} 4",
                "{direction=\"outbound\",port=\"3306\",process=\"go-service\",state=\"close_wait\"} 4",
            ]
        );
        assert_eq!(
            scrape.value("sockdiag_tcp_listen_queue_limit{address=\"127.0.0.1\",port=\"3306\",process=\"mysql-lb\"}"),
            128.0
        );
    });
}

/// Issue 27: a server that closes first leaves its side in TIME_WAIT; once the server has
/// exited (a restart, a deploy) no listener names the port, and those sockets were
/// counted outbound with the client's ephemeral port as `port`. The ephemeral range
/// settles it: the local 8080 is outside it, the client's port inside.
fn server_time_wait_after_the_server_exited_is_inbound_on_its_port() {
    in_netns(|| {
        let server = Actor::start("web-server", "accept-and-close", &["127.0.0.1:8080", "3"]);
        let mut client_ports = Vec::new();
        for _ in 0..3 {
            let mut stream = TcpStream::connect("127.0.0.1:8080").expect("connect");
            client_ports.push(stream.local_addr().unwrap().port());
            // The server's FIN: read to the end, then close our side.
            let mut rest = Vec::new();
            stream
                .read_to_end(&mut rest)
                .expect("read to the server's close");
        }
        // The server exits: its listener goes, its closed connections stay in TIME_WAIT.
        drop(server);
        load::wait_for(|| {
            ss_state(("ipv4", "time_wait")) == 3 && ss_state(("ipv4", "listen")) == 0
        });
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let range: Vec<u16> = range
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert!(
            client_ports
                .iter()
                .all(|p| (range[0]..=range[1]).contains(p))
                && 8080 < range[0],
            "the clients' ports {client_ports:?} are ephemeral ({range:?}), 8080 is not"
        );
        let mut exporter = Exporter::start(10120, &["--poll.interval=1h"]);
        exporter.wait_for_poll();
        let scrape = exporter.scrape();
        assert_eq!(
            scrape.lines("sockdiag_tcp_port_sockets"),
            vec!["{direction=\"inbound\",port=\"8080\",process=\"\",state=\"time_wait\"} 3"]
        );
        assert_eq!(scrape.family("sockdiag_tcp_unaccepted_sockets").len(), 0);
    });
}

/// Incident 5: a listener that never accepts; clients gave up and closed.
fn incident_5_never_accepted_sockets_and_the_listener_queue() {
    in_netns(|| {
        let _server = Actor::start("cpp-server", "listen-no-accept", &["127.0.0.1:8081", "8"]);
        for _ in 0..5 {
            drop(TcpStream::connect("127.0.0.1:8081").expect("connect"));
        }
        load::wait_for(|| ss_state(("ipv4", "close_wait")) == 5);
        let mut exporter = Exporter::start(10120, &["--poll.interval=1h"]);
        exporter.wait_for_poll();
        let scrape = exporter.scrape();
        let listener = "{address=\"127.0.0.1\",port=\"8081\",process=\"cpp-server\"}";
        assert_eq!(
            scrape.value(&format!("sockdiag_tcp_listen_queue_length{listener}")),
            5.0
        );
        assert_eq!(
            scrape.value(&format!("sockdiag_tcp_listen_queue_limit{listener}")),
            8.0
        );
        assert_eq!(
            scrape.lines("sockdiag_tcp_unaccepted_sockets"),
            vec!["{port=\"8081\",state=\"close_wait\"} 5"]
        );
        assert_eq!(
            scrape.value(&port_series("inbound", "8081", "", "close_wait")),
            5.0
        );
        assert_eq!(scrape.value("sockdiag_unattributed_sockets"), 0.0);
    });
}

/// A burst that fills a queue and is drained between two polls shows in the peak.
fn queue_peak_keeps_a_burst_drained_between_polls() {
    in_netns(|| {
        let mut server = Actor::start(
            "burst-server",
            "listen-no-accept",
            &["127.0.0.1:8082", "16"],
        );
        let mut exporter = Exporter::start_with(10120, &["--poll.interval=3s"], |c| {
            c.env("SOCKDIAG_LISTEN_POLL_INTERVAL", "100ms");
        });
        exporter.wait_for_poll();
        // Align with a poll so the burst and the drain both fall inside one interval.
        exporter.wait_for_poll();
        let clients: Vec<TcpStream> = (0..6)
            .map(|_| TcpStream::connect("127.0.0.1:8082").expect("connect"))
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        server.command("accept-all");
        exporter.wait_for_poll();
        let scrape = exporter.scrape();
        let listener = "{address=\"127.0.0.1\",port=\"8082\",process=\"burst-server\"}";
        assert_eq!(
            scrape.value(&format!("sockdiag_tcp_listen_queue_length{listener}")),
            0.0
        );
        assert_eq!(
            scrape.value(&format!("sockdiag_tcp_listen_queue_peak{listener}")),
            6.0
        );
        drop(clients);
    });
}

/// The exporter on `port` with a config file holding `toml`, after its first poll (the
/// only one: the interval is an hour).
fn polled_with_config(port: u16, toml: &str) -> Exporter {
    let config = std::env::temp_dir().join(format!(
        "sockdiag-config-{}-{port}.toml",
        std::process::id()
    ));
    std::fs::write(&config, toml).expect("write config");
    let mut exporter = Exporter::start(
        port,
        &[
            "--poll.interval=1h",
            &format!("--config.file={}", config.display()),
        ],
    );
    exporter.wait_for_poll();
    let _ = std::fs::remove_file(&config);
    exporter
}

fn cardinality_caps_keep_the_top_n_and_fold_the_rest() {
    in_netns(|| {
        let _sink = Actor::start(
            "sink",
            "sink",
            &["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"],
        );
        let _a = Actor::start("proc-a", "connect-and-hold", &["127.0.0.1:7001", "3"]);
        let _b = Actor::start("proc-b", "connect-and-hold", &["127.0.0.1:7002", "2"]);
        let _c = Actor::start("proc-c", "connect-and-hold", &["127.0.0.1:7003", "1"]);
        load::wait_for(|| ss_state(("ipv4", "established")) == 12);

        let exporter = polled_with_config(10120, "max_ports = 2\nmax_processes = 2\n");
        let scrape = exporter.scrape();
        // Ports ranked per direction: 7001 (3), 7002 (2), 7003 (1). Processes: sink (6),
        // proc-a (3), proc-b (2), proc-c (1); the exporter, with only its listener, is
        // named by its listener's series and folded nowhere.
        assert_eq!(
            scrape.lines("sockdiag_tcp_port_sockets"),
            vec![
                "{direction=\"inbound\",port=\"7001\",process=\"sink\",state=\"established\"} 3",
                "{direction=\"inbound\",port=\"7002\",process=\"sink\",state=\"established\"} 2",
                "{direction=\"inbound\",port=\"other\",process=\"sink\",state=\"established\"} 1",
                "{direction=\"outbound\",port=\"7001\",process=\"proc-a\",state=\"established\"} 3",
                "{direction=\"outbound\",port=\"7002\",process=\"other\",state=\"established\"} 2",
                "{direction=\"outbound\",port=\"other\",process=\"other\",state=\"established\"} 1",
            ]
        );
        assert_eq!(
            scrape.value("sockdiag_folded_label_values{label=\"port\"}"),
            2.0
        );
        assert_eq!(
            scrape.value("sockdiag_folded_label_values{label=\"process\"}"),
            2.0
        );
        drop(exporter);

        let exporter = polled_with_config(
            10121,
            "[ports]\ninclude = [7002, \"7003-7003\"]\nexclude = [7003]\n",
        );
        let scrape = exporter.scrape();
        assert_eq!(
            scrape.lines("sockdiag_tcp_port_sockets"),
            vec![
                "{direction=\"inbound\",port=\"7002\",process=\"sink\",state=\"established\"} 2",
                "{direction=\"inbound\",port=\"other\",process=\"sink\",state=\"established\"} 4",
                "{direction=\"outbound\",port=\"7002\",process=\"proc-b\",state=\"established\"} 2",
                "{direction=\"outbound\",port=\"other\",process=\"proc-a\",state=\"established\"} 3",
                "{direction=\"outbound\",port=\"other\",process=\"proc-c\",state=\"established\"} 1",
            ]
        );
        assert_eq!(
            scrape.value("sockdiag_folded_label_values{label=\"port\"}"),
            4.0
        );
        assert_eq!(
            scrape.value("sockdiag_folded_label_values{label=\"process\"}"),
            0.0
        );
    });
}

/// Without CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE (here: another uid), other users'
/// sockets are served as process="unknown" and counted as unattributed.
fn degraded_without_privileges_serves_unknown() {
    in_netns(|| {
        let _server = Actor::start("leaky-server", "accept-and-hold", &["127.0.0.1:8080", "3"]);
        for _ in 0..3 {
            drop(TcpStream::connect("127.0.0.1:8080").expect("connect"));
        }
        load::wait_for(|| ss_state(("ipv4", "close_wait")) == 3);
        let mut exporter = Exporter::start_unprivileged(10120, &["--poll.interval=1h"]);
        exporter.wait_for_log(
            "cannot read the fds of some processes",
            Duration::from_secs(20),
        );
        exporter.wait_for_poll();
        let scrape = exporter.scrape();
        assert_eq!(
            scrape.value(&port_series("inbound", "8080", "unknown", "close_wait")),
            3.0
        );
        // The three connections and the server's listener.
        assert_eq!(scrape.value("sockdiag_unattributed_sockets"), 4.0);
        assert_eq!(
            scrape.value("sockdiag_tcp_listen_queue_limit{address=\"127.0.0.1\",port=\"8080\",process=\"unknown\"}"),
            128.0
        );
    });
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        incident_1_close_wait_inbound_is_named_by_server_and_port,
        incident_3_outbound_close_wait_is_named_by_client_and_remote_port,
        incident_5_never_accepted_sockets_and_the_listener_queue,
        server_time_wait_after_the_server_exited_is_inbound_on_its_port,
        queue_peak_keeps_a_burst_drained_between_polls,
        cardinality_caps_keep_the_top_n_and_fold_the_rest,
        degraded_without_privileges_serves_unknown,
    ]
}
