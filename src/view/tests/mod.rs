//! The summary, its findings and its terminal text from fixed snapshots.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::findings::{FindingKind, Thresholds};
use super::summary::{Filter, Summary, NOTHING_WRONG};
use super::terminal::{self, Overflow, Style};
use crate::snapshot::*;
use crate::source::inet_diag::{Family, TcpState};
use crate::source::proc_sys_net::PortRange;

mod hostile;
mod udp;

fn port(
    direction: Direction,
    port: u16,
    process: &str,
    state: TcpState,
    sockets: u64,
) -> PortSeries {
    PortSeries {
        direction,
        port: PortLabel::Port(port),
        process: Arc::from(process),
        state,
        sockets,
        receive_bytes: 0,
        send_bytes: 0,
        close_wait_oldest: if state == TcpState::CloseWait {
            Duration::from_secs(340)
        } else {
            Duration::ZERO
        },
        close_wait_stale: 0,
    }
}

fn unix_listener(
    path: &str,
    process: &str,
    length: u64,
    limit: u64,
    peak: u64,
) -> UnixListenerSeries {
    UnixListenerSeries {
        path: Arc::from(path),
        process: Arc::from(process),
        length,
        limit,
        peak,
    }
}

/// One namespace `host` at `at` seconds: php-fpm holding `leak` inbound CLOSE_WAIT on
/// 9000, a full listener on 8081 with 5 never-accepted CLOSE_WAIT, `tw` TIME_WAIT on
/// inbound 6601, 22,000 ephemeral ports toward 10.0.0.5:3306; UNIX listeners: a calm
/// app.sock, php-fpm's socket full (65 of 64) and an unnamed one owned by nobody found.
pub(super) fn snapshot(at: u64, leak: u64, tw: u64) -> Snapshot {
    let mut states = StateCounts::default();
    for _ in 0..leak + 5 {
        states.add(Family::Ipv4, TcpState::CloseWait);
    }
    for _ in 0..tw {
        states.add(Family::Ipv6, TcpState::TimeWait);
    }
    for _ in 0..2 {
        states.add(Family::Ipv4, TcpState::Listen);
    }
    let address: IpAddr = "127.0.0.1".parse().unwrap();
    let peer: IpAddr = "10.0.0.5".parse().unwrap();
    Snapshot {
        namespaces: vec![NetnsFigures {
            netns: Arc::from("host"),
            full: true,
            provenance: Provenance::Known,
            udp: UdpFigures::default(),
            unix: UnixFigures {
                listeners: vec![
                    unix_listener("", "unknown", 0, 16, 0),
                    unix_listener("/run/app.sock", "gunicorn", 3, 128, 10),
                    unix_listener("/run/php/fpm.sock", "php-fpm", 65, 64, 65),
                ],
                ..Default::default()
            },
            tcp: TcpFigures {
                tcp_sockets: states,
                breakdown: Breakdown {
                    ports: vec![
                        port(Direction::Inbound, 6601, "", TcpState::TimeWait, tw),
                        port(Direction::Inbound, 8081, "", TcpState::CloseWait, 5),
                        port(
                            Direction::Inbound,
                            9000,
                            "php-fpm",
                            TcpState::CloseWait,
                            leak,
                        ),
                    ],
                    listeners: vec![
                        ListenerSeries {
                            address,
                            port: 8081,
                            process: Arc::from("cpp-server"),
                            length: 5,
                            limit: 4,
                            peak: 5,
                        },
                        ListenerSeries {
                            address,
                            port: 9000,
                            process: Arc::from("php-fpm"),
                            length: 0,
                            limit: 511,
                            peak: 3,
                        },
                    ],
                    unaccepted: vec![(PortLabel::Port(8081), TcpState::CloseWait, 5)],
                    ..Default::default()
                },
                exhaustion: Exhaustion {
                    port_range: PortRange::new(32768, 60999),
                    destinations: vec![(Some((peer, 3306)), 22_000)],
                    peers: vec![
                        (Some(address), TcpState::CloseWait, leak + 5),
                        (Some(address), TcpState::TimeWait, tw),
                    ],
                    ..Default::default()
                },
                sockets_scanned: leak + tw + 7,
            },
            kernel: KernelStats::default(),
        }],
        netns_info: vec![NetnsInfo {
            netns: Arc::from("host"),
            ..Default::default()
        }],
        sockets_scanned: leak + tw + 7,
        poll_duration: Duration::from_millis(12),
        completed_at: SystemTime::UNIX_EPOCH + Duration::from_secs(at),
        ..Default::default()
    }
}

pub(super) fn build(base: Option<&Snapshot>, latest: &Snapshot, filter: &Filter) -> Summary {
    Summary::build(base, latest, None, filter, &Thresholds::default())
}

#[test]
fn growth_per_second_between_two_polls_and_findings_in_order() {
    let summary = build(
        Some(&snapshot(1000, 10, 100)),
        &snapshot(1002, 34, 160),
        &Filter::default(),
    );
    assert_eq!(summary.window_seconds, Some(2.0));
    let texts: Vec<(FindingKind, &str)> = summary
        .findings
        .iter()
        .map(|f| (f.kind, f.text.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            (
                FindingKind::CloseWaitGrowing,
                "CLOSE_WAIT growing: php-fpm :9000 inbound, +12/s, 34 sockets, oldest 340 s"
            ),
            (
                FindingKind::ListenQueueFull,
                "accept queue full: cpp-server 127.0.0.1:8081, 5 waiting of 4, 5 never accepted in CLOSE_WAIT"
            ),
            (
                FindingKind::UnixListenQueueFull,
                "UNIX accept queue full: php-fpm /run/php/fpm.sock, 65 waiting of 64"
            ),
            (
                FindingKind::EphemeralPorts,
                "ephemeral ports running out: 10.0.0.5:3306 holds 22000 of 28232 (78%)"
            ),
            (
                FindingKind::TimeWaitGrowing,
                "TIME_WAIT growing: :6601 inbound, +30/s, 160 sockets"
            ),
        ]
    );
    assert_eq!(summary.headline, summary.findings[0].text);
    let rows: Vec<(&str, &str, u64, Option<i64>)> = summary
        .close_wait
        .iter()
        .map(|r| {
            (
                r.process.as_str(),
                r.port.as_str(),
                r.sockets,
                r.growth.map(|g| g.sockets),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("php-fpm", "9000", 34, Some(24)), ("", "8081", 5, Some(0))],
        "the growing leak first"
    );
    assert_eq!(
        summary.listeners[0].port, 8081,
        "the fullest listener first"
    );
    assert_eq!(summary.listeners[0].unaccepted_close_wait, 5);
    assert_eq!(summary.listeners[0].fill, 1.25);
}

#[test]
fn one_poll_has_no_growth_and_a_calm_one_nothing_wrong() {
    let one = build(None, &snapshot(1000, 10, 0), &Filter::default());
    assert_eq!(one.window_seconds, None);
    assert!(one.close_wait.iter().all(|r| r.growth.is_none()));
    let calm = Summary::build(
        Some(&snapshot(1000, 10, 0)),
        &snapshot(1002, 10, 0),
        None,
        &Filter {
            ports: vec![9000],
            ..Filter::default()
        },
        &Thresholds::default(),
    );
    assert_eq!(calm.headline, NOTHING_WRONG);
    assert!(calm.findings.is_empty());
    assert_eq!(calm.close_wait.len(), 1);
    assert_eq!(calm.listeners.len(), 1);
    assert!(
        calm.ephemeral.is_empty(),
        "the destination's port is 3306, not 9000"
    );
    assert!(
        calm.unix_listeners.is_empty(),
        "a UNIX listener has no port, so --port leaves it out"
    );
}

#[test]
fn filters_keep_the_rows_that_carry_the_field() {
    let filter = Filter {
        states: vec![TcpState::TimeWait],
        ..Filter::default()
    };
    let summary = build(
        Some(&snapshot(1000, 10, 0)),
        &snapshot(1001, 11, 20),
        &filter,
    );
    assert!(summary.close_wait.is_empty() && summary.listeners.is_empty());
    assert!(summary.unix_listeners.is_empty(), "listen is not kept");
    assert_eq!(summary.time_wait.len(), 1);
    assert_eq!(
        summary.states[0].states.keys().copied().collect::<Vec<_>>(),
        ["time_wait"]
    );
    assert_eq!(summary.states[0].total, 20);
    assert_eq!(summary.peers[0].sockets, 20, "only TIME_WAIT is counted");

    let by_process = build(
        None,
        &snapshot(1000, 10, 0),
        &Filter {
            processes: vec!["cpp-server".into()],
            ..Filter::default()
        },
    );
    assert!(by_process.close_wait.is_empty());
    assert_eq!(by_process.listeners.len(), 1);
    assert!(by_process.unix_listeners.is_empty());
    let other_netns = build(
        None,
        &snapshot(1000, 10, 0),
        &Filter {
            netns: vec!["nope".into()],
            ..Filter::default()
        },
    );
    assert!(other_netns.states.is_empty() && other_netns.listeners.is_empty());
    assert!(other_netns.unix_listeners.is_empty());
}

#[test]
fn json_fields_are_the_documented_schema() {
    let summary = build(
        Some(&snapshot(1000, 10, 100)),
        &snapshot(1002, 34, 160),
        &Filter::default(),
    );
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["findings"][0]["kind"], "close_wait_growing");
    assert_eq!(json["close_wait"][0]["growth"]["sockets"], 24);
    assert_eq!(json["close_wait"][0]["growth"]["per_second"], 12.0);
    assert_eq!(json["close_wait"][0]["oldest_seconds"], 340.0);
    assert_eq!(json["listeners"][0]["unaccepted_close_wait"], 5);
    assert_eq!(json["ephemeral"][0]["range"], 28232);
    assert_eq!(
        json["unix_listeners"][0],
        serde_json::json!({
            "netns": "host",
            "netns_name": "host",
            "path": "/run/php/fpm.sock",
            "process": "php-fpm",
            "length": 65,
            "limit": 64,
            "fill": 65.0 / 64.0,
            "peak": 65,
        })
    );
    assert_eq!(
        json["findings"][2],
        serde_json::json!({
            "kind": "unix_listen_queue_full",
            "netns": "host",
            "netns_name": "host",
            "text": "UNIX accept queue full: php-fpm /run/php/fpm.sock, 65 waiting of 64",
        })
    );
    assert_eq!(json["states"][0]["states"]["close_wait"], 39);
    assert_eq!(json["poll"]["errors_total"], serde_json::Value::Null);
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "close_wait",
            "collectors",
            "completed_at",
            "ephemeral",
            "findings",
            "headline",
            "listeners",
            "namespaces",
            "notes",
            "peers",
            "poll",
            "schema_version",
            "states",
            "time_wait",
            "udp_drops",
            "unix_listeners",
            "window_seconds"
        ]
    );
}

#[test]
fn a_collector_turned_off_is_listed_and_the_unix_one_noted() {
    use crate::collectors::{CollectorKind, Collectors};
    let mut latest = snapshot(1002, 34, 160);
    let on = build(None, &latest, &Filter::default());
    assert_eq!(
        serde_json::to_value(&on).unwrap()["collectors"],
        serde_json::json!({"unix": true, "udp": true, "netstat": true, "sysctl": true, "listen_sampler": true})
    );
    assert!(!on.notes.iter().any(|note| note.contains("unix collector")));

    latest.collectors = Collectors::default().with(CollectorKind::Unix, false);
    let off = build(None, &latest, &Filter::default());
    assert_eq!(off.collectors.get("unix"), Some(&false));
    assert!(
        off.notes.contains(
            &"UNIX listeners not shown: the unix collector is off (--no-collector.unix or \
              [collectors] unix = false)"
                .to_string()
        ),
        "{:?}",
        off.notes
    );
}

#[test]
fn terminal_text_fits_100_columns_without_colour() {
    let summary = build(
        Some(&snapshot(1000, 10, 100)),
        &snapshot(1002, 34, 160),
        &Filter::default(),
    );
    let mut lines = terminal::findings(&summary, false, 100, Overflow::Wrap);
    lines.extend(terminal::tables(
        &summary,
        Style {
            width: 100,
            max_rows: 15,
            colour: false,
        },
    ));
    let text = lines.join("\n");
    assert!(!text.contains('\u{1b}'), "no escape codes:\n{text}");
    for line in &lines {
        assert!(line.chars().count() <= 100, "{line:?}");
    }
    assert_eq!(
        lines[0],
        "CLOSE_WAIT growing: php-fpm :9000 inbound, +12/s, 34 sockets, oldest 340 s"
    );
    let close_wait = text
        .split("\n\n")
        .find(|t| t.starts_with("CLOSE_WAIT: who holds them"))
        .unwrap();
    assert_eq!(
        text.split("\n\n")
            .find(|t| t.starts_with("UNIX listeners"))
            .unwrap(),
        "UNIX listeners by accept queue fill (queue: waiting to be accepted, of limit)\n\
         process   path               queue  limit  fill  peak\n\
         php-fpm   /run/php/fpm.sock     65     64  102%    65\n\
         gunicorn  /run/app.sock          3    128    2%    10\n\
         unknown   -                      0     16    0%     0"
    );
    assert_eq!(
        close_wait,
        "CLOSE_WAIT: who holds them (fastest growing first)\n\
         process  direction  port  sockets  growth  per s  oldest  stale\n\
         php-fpm  inbound    9000       34     +24  +12/s   340 s      0\n\
         -        inbound    8081        5      +0   +0/s   340 s      0"
    );
}

#[test]
fn unix_listeners_fullest_first_with_the_filters_that_apply() {
    let summary = build(None, &snapshot(1000, 10, 0), &Filter::default());
    let rows: Vec<(&str, &str, &str, u64, u64, f64, u64)> = summary
        .unix_listeners
        .iter()
        .map(|r| {
            (
                r.netns.as_str(),
                r.path.as_str(),
                r.process.as_str(),
                r.length,
                r.limit,
                r.fill,
                r.peak,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "host",
                "/run/php/fpm.sock",
                "php-fpm",
                65,
                64,
                65.0 / 64.0,
                65
            ),
            ("host", "/run/app.sock", "gunicorn", 3, 128, 3.0 / 128.0, 10),
            ("host", "", "unknown", 0, 16, 0.0, 0),
        ],
        "the fullest first, whatever the snapshot's path order"
    );

    let only = |filter: Filter| -> Vec<String> {
        build(None, &snapshot(1000, 10, 0), &filter)
            .unix_listeners
            .into_iter()
            .map(|r| r.path)
            .collect()
    };
    assert_eq!(
        only(Filter {
            processes: vec!["gunicorn".into()],
            ..Filter::default()
        }),
        ["/run/app.sock"]
    );
    assert_eq!(
        only(Filter {
            states: vec![TcpState::Listen],
            netns: vec!["host".into()],
            ..Filter::default()
        })
        .len(),
        3,
        "listen and the namespace kept"
    );
    assert!(only(Filter {
        ports: vec![8081],
        ..Filter::default()
    })
    .is_empty());
}

#[test]
fn unix_finding_follows_the_listen_fill_threshold() {
    let texts = |listen_fill: f64| -> Vec<String> {
        Summary::build(
            None,
            &snapshot(1000, 10, 0),
            None,
            &Filter::default(),
            &Thresholds {
                listen_fill,
                ..Thresholds::default()
            },
        )
        .findings
        .into_iter()
        .filter(|f| f.kind == FindingKind::UnixListenQueueFull)
        .map(|f| f.text)
        .collect()
    };
    assert_eq!(
        texts(0.9),
        ["UNIX accept queue full: php-fpm /run/php/fpm.sock, 65 waiting of 64"]
    );
    assert!(texts(1.1).is_empty(), "65 of 64 is a fill of 1.016");
    assert_eq!(
        texts(0.0),
        [
            "UNIX accept queue full: php-fpm /run/php/fpm.sock, 65 waiting of 64",
            "UNIX accept queue filling: gunicorn /run/app.sock, 3 waiting of 128",
            "UNIX accept queue filling: unknown -, 0 waiting of 16",
        ]
    );
}

#[test]
fn anomalies_and_listeners_the_caps_folded_are_noted() {
    let mut ns = NetnsFigures {
        netns: Arc::from("host"),
        full: true,
        ..Default::default()
    };
    ns.tcp.breakdown.folded_listeners = 3;
    ns.tcp.breakdown.folded_anomalies.close_wait = 2;
    ns.unix.folded_anomalies = 1;
    let snapshot = Snapshot {
        namespaces: vec![ns],
        ..Default::default()
    };
    let summary = Summary::build(
        None,
        &snapshot,
        None,
        &Filter::default(),
        &Thresholds::default(),
    );
    assert_eq!(
        summary.notes,
        vec![
            "3 TCP listeners beyond max_listeners not shown (the fullest are)",
            "3 anomalies (CLOSE_WAIT piles, full accept queues, TIME_WAIT storms) folded into \
             \"other\" beyond twice the caps: raise max_ports, max_listeners or max_unix_paths \
             to name them",
        ]
    );
}
