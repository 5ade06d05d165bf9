//! Prometheus metric families, encoded from the current [`Published`] snapshot at scrape
//! time through a prometheus-client [`Collector`].
//!
//! A custom collector, not long-lived `Family` metrics: a family that is `clear()`ed and
//! refilled each poll races with scrapes (a scrape between the two sees nothing) and keeps
//! series that vanished. Here every scrape reads one immutable snapshot.
//!
//! prometheus-client writes OpenMetrics text; [`to_text_004`] turns that into the
//! Prometheus text format 0.0.4 for clients that do not ask for OpenMetrics (curl,
//! promtool). HELP strings state the semantics traps; names carry their unit.

use std::fmt::{self, Write};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::snapshot::{
    Breakdown, Exhaustion, KernelStats, ListenerSeries, Published, Snapshot, Stage,
};
use crate::sock_diag::{Family, TcpState};

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Exposition formats served on the telemetry path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text004,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text004 => TEXT_CONTENT_TYPE,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FamilyState {
    family: &'static str,
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PortLabels {
    direction: &'static str,
    port: String,
    process: String,
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct QueueLabels {
    direction: &'static str,
    port: String,
    process: String,
    queue: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabels {
    address: String,
    port: String,
    process: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PortStateLabels {
    port: String,
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OwnerLabels {
    direction: &'static str,
    port: String,
    process: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DestinationLabels {
    remote_address: String,
    remote_port: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PeerLabels {
    remote_address: String,
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FoldedLabel {
    label: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    revision: &'static str,
}

/// Encodes the snapshot currently published by the poller.
#[derive(Debug)]
pub struct SnapshotCollector {
    published: watch::Receiver<Arc<Published>>,
}

impl SnapshotCollector {
    /// Registers the collector of every `sockdiag_*` family.
    pub fn register(registry: &mut Registry, published: watch::Receiver<Arc<Published>>) {
        registry.register_collector(Box::new(SnapshotCollector { published }));
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        // Clone the Arc and release the watch lock at once: encoding must not block the
        // poller's next publication.
        let published = Arc::clone(&self.published.borrow());
        encode_published(&published, &mut encoder)
    }
}

fn gauge<L: EncodeLabelSet, N: prometheus_client::encoding::EncodeGaugeValue + fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, N)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge_value<N: prometheus_client::encoding::EncodeGaugeValue + fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> fmt::Result {
    let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(family)
}

fn encode_published(published: &Published, encoder: &mut DescriptorEncoder) -> fmt::Result {
    gauge(
        encoder,
        "sockdiag_build_info",
        "Build of this exporter; value is always 1.",
        [(
            BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                revision: env!("BUILD_GIT_REVISION"),
            },
            1u64,
        )],
    )?;
    {
        let mut family = encoder.encode_descriptor(
            "sockdiag_poll_errors",
            "Polls that failed since start, by the stage that failed. A failed poll keeps the previous snapshot; see sockdiag_last_poll_success_timestamp_seconds for staleness.",
            None,
            MetricType::Counter,
        )?;
        for stage in Stage::ALL {
            let labels = StageLabel {
                stage: stage.label(),
            };
            ConstCounter::new(published.errors_total[stage.index()])
                .encode(family.encode_family(&labels)?)?;
        }
    }
    let Some(snapshot) = &published.latest else {
        return Ok(());
    };
    gauge_value(
        encoder,
        "sockdiag_last_poll_success_timestamp_seconds",
        "Unix time when the last successful poll finished; every other family describes that poll.",
        snapshot
            .completed_at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    )?;
    gauge_value(
        encoder,
        "sockdiag_poll_duration_seconds",
        "Wall time of the last successful poll: netlink dumps and aggregation.",
        snapshot.poll_duration.as_secs_f64(),
    )?;
    gauge_value(
        encoder,
        "sockdiag_sockets_scanned",
        "Socket records read from the kernel in the last successful poll.",
        snapshot.sockets_scanned,
    )?;
    gauge(
        encoder,
        "sockdiag_tcp_sockets",
        "TCP sockets of the network namespace by address family and state (every state always present). syn_recv includes request sockets; unknown counts states this exporter does not know.",
        Family::ALL.into_iter().flat_map(|family| {
            TcpState::ALL.into_iter().map(move |state| {
                (
                    FamilyState {
                        family: family.label(),
                        state: state.label(),
                    },
                    snapshot.tcp_sockets.get(family, state),
                )
            })
        }),
    )?;
    encode_breakdown(
        &snapshot.breakdown,
        (
            snapshot.exhaustion.folded_destinations,
            snapshot.exhaustion.folded_peers,
        ),
        encoder,
    )?;
    encode_close_wait(snapshot, encoder)?;
    encode_exhaustion(&snapshot.exhaustion, encoder)?;
    encode_kernel(&snapshot.kernel, encoder)
}

fn encode_close_wait(snapshot: &Snapshot, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let close_wait = || {
        snapshot
            .breakdown
            .ports
            .iter()
            .filter(|s| s.state == TcpState::CloseWait)
            .map(|s| {
                (
                    OwnerLabels {
                        direction: s.direction.label(),
                        port: s.port.to_string(),
                        process: s.process.to_string(),
                    },
                    s,
                )
            })
    };
    gauge(
        encoder,
        "sockdiag_tcp_close_wait_oldest_seconds",
        "Age of the oldest CLOSE_WAIT socket, measured from the first poll that saw it (by socket cookie): \
         at least this old, with the poll interval as resolution; restarts at 0 with the exporter. \
         A healthy close lasts milliseconds, a leaked socket grows for ever.",
        close_wait().map(|(labels, s)| (labels, s.close_wait_oldest.as_secs_f64())),
    )?;
    gauge(
        encoder,
        "sockdiag_tcp_close_wait_stale_sockets",
        "CLOSE_WAIT sockets older than close_wait_stale_after: the application never closed them after the peer did.",
        close_wait().map(|(labels, s)| (labels, s.close_wait_stale)),
    )?;
    gauge_value(
        encoder,
        "sockdiag_tcp_close_wait_untracked_sockets",
        "CLOSE_WAIT sockets whose age is not tracked because close_wait_capacity was reached; they are missing from the age and stale families.",
        snapshot.exhaustion.close_wait_untracked,
    )
}

fn encode_exhaustion(exhaustion: &Exhaustion, encoder: &mut DescriptorEncoder) -> fmt::Result {
    if let Some((low, high)) = exhaustion.port_range {
        gauge_value(
            encoder,
            "sockdiag_tcp_ephemeral_port_range_size",
            "Ports in net.ipv4.ip_local_port_range: how many connections one local address can hold toward one destination.",
            u64::from(high - low) + 1,
        )?;
        gauge(
            encoder,
            "sockdiag_tcp_ephemeral_ports_used",
            "Local ports of the ephemeral range in use toward a destination, in any state (TIME_WAIT included), \
             the maximum over local addresses; top destinations by that count, remote_address=\"other\" is the largest of the rest. \
             Divide by sockdiag_tcp_ephemeral_port_range_size for the exhaustion ratio.",
            exhaustion.destinations.iter().map(|(destination, used)| {
                let (remote_address, remote_port) = match destination {
                    Some((address, port)) => (address.to_string(), port.to_string()),
                    None => ("other".to_string(), "other".to_string()),
                };
                (
                    DestinationLabels {
                        remote_address,
                        remote_port,
                    },
                    *used,
                )
            }),
        )?;
    }
    gauge(
        encoder,
        "sockdiag_tcp_peer_sockets",
        "Non-LISTEN TCP sockets by remote address and state: the top remote addresses by socket count, the rest as remote_address=\"other\".",
        exhaustion.peers.iter().map(|(address, state, n)| {
            (
                PeerLabels {
                    remote_address: address.map_or_else(|| "other".to_string(), |a| a.to_string()),
                    state: state.label(),
                },
                *n,
            )
        }),
    )
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: Option<u64>,
) -> fmt::Result {
    let Some(value) = value else {
        return Ok(());
    };
    let family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(family)
}

fn encode_kernel(kernel: &KernelStats, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let c = &kernel.counters;
    counter(
        encoder,
        "sockdiag_tcp_listen_overflows",
        "TcpExt ListenOverflows: connections dropped because an accept queue was full (SYN retries count again; alert on rate).",
        c.listen_overflows,
    )?;
    counter(
        encoder,
        "sockdiag_tcp_listen_drops",
        "TcpExt ListenDrops: SYNs dropped on a listening socket for any reason (overflows included).",
        c.listen_drops,
    )?;
    counter(
        encoder,
        "sockdiag_tcp_abort_on_timeout",
        "TcpExt TCPAbortOnTimeout: connections aborted after retransmission or keepalive timeouts.",
        c.abort_on_timeout,
    )?;
    counter(
        encoder,
        "sockdiag_tcp_abort_on_close",
        "TcpExt TCPAbortOnClose: connections reset because the application closed with unread data.",
        c.abort_on_close,
    )?;
    counter(
        encoder,
        "sockdiag_tcp_time_wait_overflow",
        "TcpExt TCPTimeWaitOverflow: TIME_WAIT sockets not created because tcp_max_tw_buckets was reached.",
        c.time_wait_overflow,
    )?;
    counter(
        encoder,
        "sockdiag_tcp_active_opens",
        "Tcp ActiveOpens: outgoing connections started (connect()).",
        c.active_opens,
    )?;
    counter(
        encoder,
        "sockdiag_tcp_passive_opens",
        "Tcp PassiveOpens: incoming connections accepted into SYN_RECV.",
        c.passive_opens,
    )?;
    let sysctls = &kernel.sysctls;
    for (name, help, value) in [
        (
            "sockdiag_sysctl_tcp_fin_timeout_seconds",
            "net.ipv4.tcp_fin_timeout: how long an orphaned socket stays in FIN_WAIT2.",
            sysctls.tcp_fin_timeout,
        ),
        (
            "sockdiag_sysctl_tcp_keepalive_time_seconds",
            "net.ipv4.tcp_keepalive_time: idle time before the first keepalive probe.",
            sysctls.tcp_keepalive_time,
        ),
        (
            "sockdiag_sysctl_tcp_keepalive_intvl_seconds",
            "net.ipv4.tcp_keepalive_intvl: interval between keepalive probes.",
            sysctls.tcp_keepalive_intvl,
        ),
        (
            "sockdiag_sysctl_tcp_keepalive_probes",
            "net.ipv4.tcp_keepalive_probes: unanswered probes before a connection is dropped.",
            sysctls.tcp_keepalive_probes,
        ),
        (
            "sockdiag_sysctl_tcp_tw_reuse",
            "net.ipv4.tcp_tw_reuse: 0 off, 1 on, 2 loopback only; lets connect() reuse TIME_WAIT ports.",
            sysctls.tcp_tw_reuse,
        ),
        (
            "sockdiag_sysctl_tcp_max_tw_buckets",
            "net.ipv4.tcp_max_tw_buckets: TIME_WAIT sockets the namespace holds at most.",
            sysctls.tcp_max_tw_buckets,
        ),
        (
            "sockdiag_sysctl_somaxconn",
            "net.core.somaxconn: the largest accept-queue backlog listen() may get.",
            sysctls.somaxconn,
        ),
        (
            "sockdiag_sysctl_tcp_max_syn_backlog",
            "net.ipv4.tcp_max_syn_backlog: half-open connections remembered per listener.",
            sysctls.tcp_max_syn_backlog,
        ),
    ] {
        if let Some(value) = value {
            gauge_value(encoder, name, help, value)?;
        }
    }
    gauge(
        encoder,
        "sockdiag_kernel_values_missing",
        "Kernel counters (netstat, snmp) or sysctls that could not be read in the last poll; their series are absent.",
        [
            (SourceLabel { source: "netstat" }, kernel.missing_netstat),
            (SourceLabel { source: "snmp" }, kernel.missing_snmp),
            (SourceLabel { source: "sysctl" }, kernel.missing_sysctl),
        ],
    )
}

fn encode_breakdown(
    breakdown: &Breakdown,
    folded: (u64, u64),
    encoder: &mut DescriptorEncoder,
) -> fmt::Result {
    gauge(
        encoder,
        "sockdiag_tcp_port_sockets",
        "Non-LISTEN TCP sockets by direction, port, owning process and state; only non-zero series. \
         direction=inbound: the local port is a listening port and port is that local port; outbound: port is the remote port. \
         process=\"\" has no owner (TIME_WAIT, orphaned, or still in an accept queue), \"unknown\" has an owner that was not found, \"other\" is folded.",
        breakdown.ports.iter().map(|s| {
            (
                PortLabels {
                    direction: s.direction.label(),
                    port: s.port.to_string(),
                    process: s.process.to_string(),
                    state: s.state.label(),
                },
                s.sockets,
            )
        }),
    )?;
    // Series are sorted by (direction, port, process, state): each run of one
    // (direction, port, process) is one pair of queue series.
    let mut queued: Vec<(QueueLabels, u64)> = Vec::new();
    for run in breakdown
        .ports
        .chunk_by(|a, b| (a.direction, a.port, &a.process) == (b.direction, b.port, &b.process))
    {
        let first = &run[0];
        for (queue, bytes) in [
            ("receive", run.iter().map(|s| s.receive_bytes).sum()),
            ("send", run.iter().map(|s| s.send_bytes).sum()),
        ] {
            let labels = QueueLabels {
                direction: first.direction.label(),
                port: first.port.to_string(),
                process: first.process.to_string(),
                queue,
            };
            queued.push((labels, bytes));
        }
    }
    gauge(
        encoder,
        "sockdiag_tcp_queued_bytes",
        "Bytes queued in non-LISTEN sockets: receive = received but not read by the application (a CLOSE_WAIT socket counts 1 for the FIN), \
         send = written but not yet acknowledged by the peer. LISTEN accept-queue counts are never included.",
        queued,
    )?;
    let listener = |l: &ListenerSeries| ListenerLabels {
        address: l.address.to_string(),
        port: l.port.to_string(),
        process: l.process.to_string(),
    };
    gauge(
        encoder,
        "sockdiag_tcp_listen_queue_length",
        "Connections waiting in a listening socket's accept queue (LISTEN Recv-Q): a count, not bytes. \
         A full queue shows limit + 1. SO_REUSEPORT sockets sharing address and port are summed.",
        breakdown.listeners.iter().map(|l| (listener(l), l.length)),
    )?;
    gauge(
        encoder,
        "sockdiag_tcp_listen_queue_limit",
        "Backlog of a listening socket (LISTEN Send-Q): min(listen() backlog, net.core.somaxconn). A count, not bytes.",
        breakdown.listeners.iter().map(|l| (listener(l), l.limit)),
    )?;
    gauge(
        encoder,
        "sockdiag_tcp_listen_queue_peak",
        "Largest accept queue length sampled (every listen_poll_interval) since the previous poll, at least the current length.",
        breakdown.listeners.iter().map(|l| (listener(l), l.peak)),
    )?;
    gauge(
        encoder,
        "sockdiag_tcp_unaccepted_sockets",
        "Inbound sockets without an owner (inode 0) in established or close_wait: connections in an accept queue that the server never accepted. lsof does not show them.",
        breakdown.unaccepted.iter().map(|(port, state, n)| {
            (
                PortStateLabels {
                    port: port.to_string(),
                    state: state.label(),
                },
                *n,
            )
        }),
    )?;
    gauge_value(
        encoder,
        "sockdiag_unattributed_sockets",
        "Sockets with an owner (inode not 0) whose process was not found: no privilege to read its fds \
         (CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE), the process exited, or the socket is in flight between processes.",
        breakdown.unattributed,
    )?;
    gauge(
        encoder,
        "sockdiag_folded_label_values",
        "Distinct label values folded into \"other\" in the last poll: port (max_ports, ports.include/exclude), process (max_processes), destination (max_destinations), remote_address (max_peers).",
        [
            (FoldedLabel { label: "port" }, breakdown.folded_ports),
            (FoldedLabel { label: "process" }, breakdown.folded_processes),
            (FoldedLabel { label: "destination" }, folded.0),
            (FoldedLabel { label: "remote_address" }, folded.1),
        ],
    )?;
    Ok(())
}

/// Encodes the registry in `format`.
pub fn encode(registry: &Registry, format: Format) -> Result<String, fmt::Error> {
    let mut out = String::with_capacity(16 * 1024);
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry)?,
        Format::Text004 => {
            prometheus_client::encoding::text::encode_registry(&mut out, registry)?;
            out = to_text_004(&out);
        }
    }
    Ok(out)
}

/// Rewrites OpenMetrics text (as prometheus-client writes it, without `# EOF`) into text
/// format 0.0.4: a counter family's HELP and TYPE name its `_total` sample, and `# UNIT`
/// and `# EOF` lines, unknown to 0.0.4 parsers, are dropped.
pub fn to_text_004(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len() + 256);
    let mut pending_help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line.starts_with("# HELP ") {
            if let Some(help) = pending_help.replace(line) {
                let _ = writeln!(out, "{help}");
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, ""));
            let help = pending_help.take();
            if kind == "counter" {
                if let Some(help) = help {
                    let text = help
                        .strip_prefix("# HELP ")
                        .and_then(|h| h.strip_prefix(name))
                        .unwrap_or("");
                    let _ = writeln!(out, "# HELP {name}_total{text}");
                }
                let _ = writeln!(out, "# TYPE {name}_total counter");
            } else {
                if let Some(help) = help {
                    let _ = writeln!(out, "{help}");
                }
                let _ = writeln!(out, "{line}");
            }
            continue;
        }
        if let Some(help) = pending_help.take() {
            let _ = writeln!(out, "{help}");
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let _ = writeln!(out, "{line}");
    }
    if let Some(help) = pending_help {
        let _ = writeln!(out, "{help}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_families_are_renamed_for_text_004() {
        let om = "# HELP sockdiag_poll_errors Polls that failed.\n# TYPE sockdiag_poll_errors counter\nsockdiag_poll_errors_total{stage=\"dump\"} 2\n# HELP g A gauge.\n# TYPE g gauge\n# UNIT g seconds\ng 1.5\n# EOF\n";
        assert_eq!(
            to_text_004(om),
            "# HELP sockdiag_poll_errors_total Polls that failed.\n# TYPE sockdiag_poll_errors_total counter\nsockdiag_poll_errors_total{stage=\"dump\"} 2\n# HELP g A gauge.\n# TYPE g gauge\ng 1.5\n"
        );
    }

    /// A fixed snapshot touching every family, for the golden exposition file.
    fn fixed() -> Published {
        use crate::proc_net_snmp::TcpCounters;
        use crate::proc_sys_net::{NetSysctls, PortRange};
        use crate::snapshot::*;
        use std::time::{Duration, UNIX_EPOCH};
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
        Published {
            latest: Some(Arc::new(Snapshot {
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
                },
                exhaustion: Exhaustion {
                    port_range: Some((32768, 60999)),
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
                kernel: KernelStats {
                    counters: TcpCounters {
                        listen_overflows: Some(15),
                        listen_drops: Some(15),
                        abort_on_timeout: Some(5),
                        abort_on_close: Some(3),
                        time_wait_overflow: None,
                        active_opens: Some(16),
                        passive_opens: Some(11),
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
                    missing_netstat: 1,
                    missing_snmp: 0,
                    missing_sysctl: 0,
                },
                sockets_scanned: 5,
                poll_duration: Duration::from_micros(1250),
                completed_at: UNIX_EPOCH + Duration::from_secs(1_795_000_000),
            })),
            errors_total: [0, 2, 0, 1, 0],
        }
    }

    /// The exposition of a fixed snapshot equals tests/golden/metrics.prom (the build
    /// revision aside). tests/checks/10-golden.sh runs promtool over the file.
    /// UPDATE_GOLDEN=1 rewrites it.
    #[test]
    fn golden_exposition() {
        let (tx, rx) = watch::channel(Arc::new(fixed()));
        let mut registry = Registry::default();
        SnapshotCollector::register(&mut registry, rx);
        let text = encode(&registry, Format::Text004)
            .unwrap()
            .replace(env!("BUILD_GIT_REVISION"), "REVISION");
        drop(tx);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/metrics.prom");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let golden = std::fs::read_to_string(path)
            .expect("tests/golden/metrics.prom (UPDATE_GOLDEN=1 writes it)");
        assert_eq!(text, golden);
    }
}
