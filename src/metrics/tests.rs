use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::*;
use crate::collectors::{CollectorKind, Collectors};

fn udp_series(
    direction: crate::snapshot::Direction,
    port: u16,
    process: &str,
    queue_bytes: u64,
    buffer_bytes: u64,
) -> crate::snapshot::UdpSeries {
    crate::snapshot::UdpSeries {
        direction,
        port: crate::snapshot::PortLabel::Port(port),
        process: Arc::from(process),
        sockets: 1,
        queue_bytes,
        buffer_bytes,
        drops_growth: 0,
    }
}

/// A fixed snapshot touching every family, for the golden exposition file.
fn fixed() -> Published {
    use crate::snapshot::*;
    use crate::source::inet_diag::{Family, TcpState};
    use crate::source::kernel_value::KernelSource;
    use crate::source::proc_net_snmp::NetCounters;
    use crate::source::proc_sys_net::{NetSysctls, PortRange};
    use crate::source::unix_diag::{UnixState, UnixType};
    use std::time::{Duration, UNIX_EPOCH};
    let unix_listener = |path: &str, process: &str, length, limit, peak| UnixListenerSeries {
        path: Arc::from(path),
        process: Arc::from(process),
        length,
        limit,
        peak,
    };
    let unix_counts = |counts: &[(UnixType, UnixState, u64)]| {
        let mut sockets = UnixCounts::default();
        for (kind, state, n) in counts {
            for _ in 0..*n {
                sockets.add(*kind, *state);
            }
        }
        sockets
    };
    let mut tcp_sockets = StateCounts::default();
    for _ in 0..3 {
        tcp_sockets.add(Family::Ipv4, TcpState::CloseWait);
    }
    tcp_sockets.add(Family::Ipv4, TcpState::Listen);
    tcp_sockets.add(Family::Ipv6, TcpState::TimeWait);
    let series = |direction, port, process: &str, state, sockets, receive_bytes| PortSeries {
        direction,
        port,
        process: Arc::from(process),
        state,
        sockets,
        receive_bytes,
        send_bytes: 0,
        close_wait_oldest: Duration::from_millis(93_500),
        close_wait_stale: if state == TcpState::CloseWait { 2 } else { 0 },
    };
    // A pod's namespace: one inbound CLOSE_WAIT leak, nothing else.
    let mut container_states = StateCounts::default();
    container_states.add(Family::Ipv4, TcpState::Listen);
    container_states.add(Family::Ipv4, TcpState::CloseWait);
    container_states.add(Family::Ipv4, TcpState::CloseWait);
    let container = NetnsFigures {
        netns: Arc::from("3f2a9c1d0e4b"),
        full: false,
        provenance: Provenance::Known,
        tcp: TcpFigures {
            tcp_sockets: container_states,
            breakdown: Breakdown {
                ports: vec![series(
                    Direction::Inbound,
                    PortLabel::Port(9000),
                    "php-fpm",
                    TcpState::CloseWait,
                    2,
                    2,
                )],
                // Listeners beyond netns.max_listeners, and a pile beyond the ceiling.
                folded_listeners: 2,
                folded_anomalies: FoldedAnomalies {
                    close_wait: 1,
                    ..Default::default()
                },
                ..Default::default()
            },
            exhaustion: Exhaustion::default(),
            sockets_scanned: 3,
        },
        // php-fpm's queue is full: limit + 1 waiting.
        unix: UnixFigures {
            sockets: unix_counts(&[
                (UnixType::Stream, UnixState::Listen, 1),
                (UnixType::Stream, UnixState::Established, 4),
            ]),
            listeners: vec![unix_listener(
                "/run/php/php-fpm.sock",
                "php-fpm8.2",
                65,
                64,
                65,
            )],
            folded_paths: 0,
            folded_anomalies: 0,
            unattributed: 0,
            sockets_scanned: 5,
        },
        // A statsd sink in the pod that drops, and a DNS client.
        udp: UdpFigures {
            sockets: [2, 0],
            series: vec![
                udp_series(Direction::Inbound, 8125, "udp-sink", 7680, 8192),
                udp_series(Direction::Outbound, 53, "php-fpm", 0, 212_992),
            ],
            drops: vec![UdpDropSeries {
                direction: Direction::Inbound,
                port: PortLabel::Port(8125),
                process: Arc::from("udp-sink"),
                drops: 994,
            }],
            sockets_scanned: 2,
            ..Default::default()
        },
        kernel: KernelStats {
            counters: NetCounters {
                listen_overflows: Some(0),
                ..Default::default()
            },
            ..Default::default()
        },
    };
    let mut folded_states = StateCounts::default();
    folded_states.add(Family::Ipv6, TcpState::Established);
    Published {
        latest: Some(Arc::new(Snapshot {
            namespaces: vec![
                NetnsFigures {
                    netns: Arc::from("host"),
                    full: true,
                    provenance: Provenance::Known,
                    tcp: TcpFigures {
                        tcp_sockets,
                        breakdown: Breakdown {
                            ports: vec![
                                series(
                                    Direction::Inbound,
                                    PortLabel::Port(8080),
                                    "leaky-server",
                                    TcpState::CloseWait,
                                    3,
                                    3,
                                ),
                                series(
                                    Direction::Outbound,
                                    PortLabel::Port(3306),
                                    "",
                                    TcpState::TimeWait,
                                    1,
                                    0,
                                ),
                                series(
                                    Direction::Outbound,
                                    PortLabel::Other,
                                    "other",
                                    TcpState::Established,
                                    4,
                                    120,
                                ),
                            ],
                            listeners: vec![ListenerSeries {
                                address: "0.0.0.0".parse().unwrap(),
                                port: 8080,
                                process: Arc::from("leaky-server"),
                                length: 5,
                                limit: 4,
                                peak: 5,
                            }],
                            unaccepted: vec![(PortLabel::Port(8080), TcpState::CloseWait, 5)],
                            unattributed: 1,
                            folded_ports: 7,
                            folded_processes: 2,
                            folded_listeners: 0,
                            folded_anomalies: FoldedAnomalies::default(),
                        },
                        exhaustion: Exhaustion {
                            port_range: PortRange::new(32768, 60999),
                            destinations: vec![
                                (Some(("10.0.0.7".parse().unwrap(), 3306)), 812),
                                (None, 40),
                            ],
                            folded_destinations: 3,
                            peers: vec![
                                (Some("10.0.0.7".parse().unwrap()), TcpState::TimeWait, 800),
                                (None, TcpState::Established, 4),
                            ],
                            folded_peers: 9,
                            close_wait_untracked: 0,
                        },
                        sockets_scanned: 5,
                    },
                    unix: UnixFigures {
                        sockets: unix_counts(&[
                            (UnixType::Stream, UnixState::Listen, 7),
                            (UnixType::Stream, UnixState::Established, 12),
                            (UnixType::Dgram, UnixState::Other, 2),
                            (UnixType::Seqpacket, UnixState::Established, 2),
                        ]),
                        listeners: vec![
                            unix_listener("/run/php/php-fpm.sock", "php-fpm8.2", 3, 64, 9),
                            unix_listener("@gunicorn", "gunicorn", 0, 2048, 1),
                            unix_listener("other", "other", 1, 256, 1),
                        ],
                        folded_paths: 4,
                        folded_anomalies: 0,
                        unattributed: 1,
                        sockets_scanned: 23,
                    },
                    udp: UdpFigures {
                        sockets: [1, 0],
                        series: vec![udp_series(Direction::Inbound, 123, "chronyd", 0, 212_992)],
                        sockets_scanned: 1,
                        ..Default::default()
                    },
                    kernel: KernelStats {
                        counters: NetCounters {
                            listen_overflows: Some(15),
                            listen_drops: Some(15),
                            abort_on_timeout: Some(5),
                            abort_on_close: Some(3),
                            time_wait_overflow: None,
                            active_opens: Some(16),
                            passive_opens: Some(11),
                            // The statsd flushes of incident 7, in the host's counters.
                            udp_rcvbuf_errors: Some(994),
                            udp_in_errors: Some(996),
                            udp_no_ports: Some(12),
                            udp_sndbuf_errors: Some(0),
                            udp_in_csum_errors: Some(2),
                            udp6_rcvbuf_errors: Some(0),
                            udp6_in_errors: Some(0),
                            udp6_no_ports: Some(3),
                            udp6_sndbuf_errors: Some(0),
                            udp6_in_csum_errors: None,
                        },
                        sysctls: NetSysctls {
                            tcp_fin_timeout: Some(60),
                            tcp_keepalive_time: Some(7200),
                            tcp_keepalive_intvl: Some(75),
                            tcp_keepalive_probes: Some(9),
                            tcp_tw_reuse: Some(2),
                            tcp_max_tw_buckets: Some(262_144),
                            somaxconn: Some(4096),
                            tcp_max_syn_backlog: Some(512),
                            ip_local_port_range: PortRange::new(32768, 60999),
                        },
                        missing: {
                            let mut missing = [0; KernelSource::COUNT];
                            missing[KernelSource::Netstat.index()] = 1;
                            missing
                        },
                    },
                },
                container,
            ],
            folded: FoldedNetns {
                namespaces: 1,
                anomalous: 0,
                tcp_sockets: folded_states,
                unix_sockets: unix_counts(&[(UnixType::Dgram, UnixState::Established, 3)]),
                udp_sockets: [0, 2],
            },
            netns_info: vec![
                NetnsInfo {
                    netns: Arc::from("3f2a9c1d0e4b"),
                    inode: 4026532801,
                    container_id:
                        "3f2a9c1d0e4b5a6978695a4b3c2d1e0f3f2a9c1d0e4b5a6978695a4b3c2d1e0f".into(),
                    pod_name: "api-7c9d8".into(),
                    pod_namespace: "shop".into(),
                    pod_uid: "6f1c2b9e-0d4a-4c3e-9b7a-2e5d8c1f0a3b".into(),
                    runtime: "containerd".into(),
                    ..Default::default()
                },
                NetnsInfo {
                    netns: Arc::from("host"),
                    inode: 4026531840,
                    ..Default::default()
                },
            ],
            skipped: NetnsSkipped {
                permission: 0,
                vanished: 1,
                error: 0,
            },
            sockets_scanned: 9,
            owners: OwnerFigures {
                pending: 2,
                readlinks: 40,
                full_passes_total: 1,
                budget_stops_total: 3,
            },
            poll_duration: Duration::from_micros(1250),
            completed_at: UNIX_EPOCH + Duration::from_secs(1_795_000_000),
            // One collector off, to show both values of sockdiag_collector_enabled; the
            // sampler's families stay (a peak is then the length at the poll).
            collectors: Collectors::default().with(CollectorKind::ListenSampler, false),
        })),
        previous: None,
        errors_total: [0, 2, 0, 1, 0, 0, 0],
    }
}

/// The build the golden exposition reports: fixed, so that the file does not change with
/// the commit, the day or the compiler.
const GOLDEN_BUILD: BuildInfo = BuildInfo {
    version: "0.1.0",
    revision: "0123456789ab",
    branch: "main",
    build_date: "2026-11-18T11:06:40Z",
    rustc_version: "1.85.0",
    target: "x86_64-unknown-linux-gnu",
};

/// The exposition of a fixed snapshot and build equals tests/golden/metrics.prom.
/// tests/checks/10-golden.sh runs promtool over the file. UPDATE_GOLDEN=1 rewrites it.
#[test]
fn golden_exposition() {
    let (tx, rx) = watch::channel(Arc::new(fixed()));
    let mut registry = Registry::default();
    SnapshotCollector::register_with_build(&mut registry, rx, GOLDEN_BUILD);
    let text = encode(&registry, Format::Text004).unwrap();
    drop(tx);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/metrics.prom");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(path)
        .expect("tests/golden/metrics.prom (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(text, golden);
}

/// The fixed snapshot encoded with `collectors`.
fn exposition_with(collectors: Collectors) -> String {
    let mut published = fixed();
    if let Some(latest) = &mut published.latest {
        Arc::make_mut(latest).collectors = collectors;
    }
    let (_tx, rx) = watch::channel(Arc::new(published));
    let mut registry = Registry::default();
    SnapshotCollector::register(&mut registry, rx);
    encode(&registry, Format::Text004).unwrap()
}

/// The names of the families in an exposition (from its `# TYPE` lines).
fn families(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .collect()
}

#[test]
fn a_collector_turned_off_has_no_families_and_reports_0() {
    let all = exposition_with(Collectors::default());
    assert!(families(&all).contains(&"sockdiag_unix_sockets"));
    assert!(all.contains("sockdiag_collector_enabled{collector=\"unix\"} 1\n"));

    let text = exposition_with(Collectors::default().with(CollectorKind::Unix, false));
    let unix: Vec<&str> = families(&text)
        .into_iter()
        .filter(|name| name.starts_with("sockdiag_unix_"))
        .collect();
    assert_eq!(unix, Vec::<&str>::new());
    assert!(text.contains("sockdiag_collector_enabled{collector=\"unix\"} 0\n"));
    assert!(text.contains("sockdiag_collector_enabled{collector=\"netstat\"} 1\n"));
}

#[test]
fn udp_collector_off_has_no_udp_socket_families() {
    let all = exposition_with(Collectors::default());
    assert!(families(&all).contains(&"sockdiag_udp_sockets"));
    let text = exposition_with(Collectors::default().with(CollectorKind::Udp, false));
    let udp: Vec<&str> = families(&text)
        .into_iter()
        .filter(|name| {
            name.starts_with("sockdiag_udp_")
                && !name.ends_with("_errors_total")
                && *name != "sockdiag_udp_no_ports_total"
        })
        .collect();
    assert_eq!(
        udp,
        Vec::<&str>::new(),
        "the kernel's Udp counters are the netstat collector's"
    );
    assert!(text.contains("sockdiag_collector_enabled{collector=\"udp\"} 0\n"));
}

#[test]
fn netstat_off_drops_the_counters_missing_series_and_keeps_the_sysctl_one() {
    let mut published = fixed();
    if let Some(latest) = &mut published.latest {
        let latest = Arc::make_mut(latest);
        latest.collectors = Collectors::default().with(CollectorKind::Netstat, false);
        for ns in &mut latest.namespaces {
            ns.kernel.missing = Default::default();
        }
    }
    let (_tx, rx) = watch::channel(Arc::new(published));
    let mut registry = Registry::default();
    SnapshotCollector::register(&mut registry, rx);
    let text = encode(&registry, Format::Text004).unwrap();
    let missing: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("sockdiag_kernel_values_missing{"))
        .collect();
    assert_eq!(
        missing,
        ["sockdiag_kernel_values_missing{netns=\"host\",source=\"sysctl\"} 0"]
    );
}

/// Each kernel counter and sysctl is defined once, as a table row: the docs that list them
/// by hand must follow. A row added without its docs/metrics.md row (family, then the
/// kernel's name) or its line in the dashboards' metric contract fails here.
#[test]
fn every_kernel_table_row_is_documented() {
    use crate::source::kernel_value::{KernelSource, MetricKind};
    use crate::source::proc_net_snmp::NetCounters;
    use crate::source::proc_sys_net::NetSysctls;
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |path: &str| {
        std::fs::read_to_string(format!("{root}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let metrics_md = read("docs/metrics.md");
    let contract = read("grafana/tools/sockdiag-metrics.txt");
    for row in NetCounters::TABLE.iter().chain(&NetSysctls::TABLE) {
        let family = match row.kind {
            MetricKind::Counter => format!("{}_total", row.metric),
            MetricKind::Gauge => row.metric.to_owned(),
        };
        let kernel = match row.source {
            KernelSource::Sysctl => format!("net.{}.{}", row.section, row.name),
            _ => format!("{} {}", row.section, row.name),
        };
        let doc_row = format!("| `{family}` | {kernel} |");
        assert!(
            metrics_md.contains(&doc_row),
            "docs/metrics.md lacks {doc_row:?}"
        );
        assert!(
            contract.lines().any(|line| line == family),
            "grafana/tools/sockdiag-metrics.txt lacks {family}"
        );
    }
}

/// `register` reports this binary's build: every label of `sockdiag_build_info`, in order.
#[test]
fn build_info_reports_this_build() {
    let (tx, rx) = watch::channel(Arc::new(fixed()));
    let mut registry = Registry::default();
    SnapshotCollector::register(&mut registry, rx);
    let text = encode(&registry, Format::Text004).unwrap();
    drop(tx);
    let build = BuildInfo::CURRENT;
    let expected = format!(
        "sockdiag_build_info{{version=\"{}\",revision=\"{}\",branch=\"{}\",build_date=\"{}\",rustc_version=\"{}\",target=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION"),
        build.revision,
        build.branch,
        build.build_date,
        build.rustc_version,
        build.target
    );
    assert!(text.contains(&expected), "{expected} not in:\n{text}");
}
