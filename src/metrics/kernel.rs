//! The kernel counters and sysctls, one series per network namespace.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use super::gauge;
use super::labels::{Netns, SourceLabel};
use super::tcp::nonzero;
use crate::collectors::{CollectorKind, Collectors};
use crate::snapshot::{KernelStats, NetnsFigures};

/// Reads one value of a namespace's kernel stats.
type Value = fn(&KernelStats) -> Option<u64>;

/// A counter family with a series for each namespace where the kernel had the value.
fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    namespaces: &[NetnsFigures],
    value: Value,
) -> fmt::Result {
    let mut series = namespaces
        .iter()
        .filter_map(|ns| Some((Netns::of(&ns.netns), value(&ns.kernel)?)))
        .peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The counters and sysctls of the collectors that ran. Their values are `None` when a
/// collector is off, so its families are absent already; only the shared
/// `sockdiag_kernel_values_missing` asks which collectors ran.
pub(super) fn encode_kernel(
    namespaces: &[NetnsFigures],
    collectors: Collectors,
    encoder: &mut DescriptorEncoder,
) -> fmt::Result {
    counter(
        encoder,
        "sockdiag_tcp_listen_overflows",
        "TcpExt ListenOverflows: connections dropped because an accept queue was full (SYN retries count again; alert on rate).",
        namespaces,
        |k| k.counters.listen_overflows,
    )?;
    counter(
        encoder,
        "sockdiag_tcp_listen_drops",
        "TcpExt ListenDrops: SYNs dropped on a listening socket for any reason (overflows included).",
        namespaces,
        |k| k.counters.listen_drops,
    )?;
    counter(
        encoder,
        "sockdiag_tcp_abort_on_timeout",
        "TcpExt TCPAbortOnTimeout: connections aborted after retransmission or keepalive timeouts.",
        namespaces,
        |k| k.counters.abort_on_timeout,
    )?;
    counter(
        encoder,
        "sockdiag_tcp_abort_on_close",
        "TcpExt TCPAbortOnClose: connections reset because the application closed with unread data.",
        namespaces,
        |k| k.counters.abort_on_close,
    )?;
    counter(
        encoder,
        "sockdiag_tcp_time_wait_overflow",
        "TcpExt TCPTimeWaitOverflow: TIME_WAIT sockets not created because tcp_max_tw_buckets was reached.",
        namespaces,
        |k| k.counters.time_wait_overflow,
    )?;
    counter(
        encoder,
        "sockdiag_tcp_active_opens",
        "Tcp ActiveOpens: outgoing connections started (connect()).",
        namespaces,
        |k| k.counters.active_opens,
    )?;
    counter(
        encoder,
        "sockdiag_tcp_passive_opens",
        "Tcp PassiveOpens: incoming connections accepted into SYN_RECV.",
        namespaces,
        |k| k.counters.passive_opens,
    )?;
    let sysctls: [(&str, &str, Value); 8] = [
        (
            "sockdiag_sysctl_tcp_fin_timeout_seconds",
            "net.ipv4.tcp_fin_timeout: how long an orphaned socket stays in FIN_WAIT2.",
            |k| k.sysctls.tcp_fin_timeout,
        ),
        (
            "sockdiag_sysctl_tcp_keepalive_time_seconds",
            "net.ipv4.tcp_keepalive_time: idle time before the first keepalive probe.",
            |k| k.sysctls.tcp_keepalive_time,
        ),
        (
            "sockdiag_sysctl_tcp_keepalive_intvl_seconds",
            "net.ipv4.tcp_keepalive_intvl: interval between keepalive probes.",
            |k| k.sysctls.tcp_keepalive_intvl,
        ),
        (
            "sockdiag_sysctl_tcp_keepalive_probes",
            "net.ipv4.tcp_keepalive_probes: unanswered probes before a connection is dropped.",
            |k| k.sysctls.tcp_keepalive_probes,
        ),
        (
            "sockdiag_sysctl_tcp_tw_reuse",
            "net.ipv4.tcp_tw_reuse: 0 off, 1 on, 2 loopback only; lets connect() reuse TIME_WAIT ports.",
            |k| k.sysctls.tcp_tw_reuse,
        ),
        (
            "sockdiag_sysctl_tcp_max_tw_buckets",
            "net.ipv4.tcp_max_tw_buckets: TIME_WAIT sockets the namespace holds at most.",
            |k| k.sysctls.tcp_max_tw_buckets,
        ),
        (
            "sockdiag_sysctl_somaxconn",
            "net.core.somaxconn: the largest accept-queue backlog listen() may get.",
            |k| k.sysctls.somaxconn,
        ),
        (
            "sockdiag_sysctl_tcp_max_syn_backlog",
            "net.ipv4.tcp_max_syn_backlog: half-open connections remembered per listener.",
            |k| k.sysctls.tcp_max_syn_backlog,
        ),
    ];
    for (name, help, value) in sysctls {
        gauge(
            encoder,
            name,
            help,
            namespaces
                .iter()
                .filter_map(|ns| value(&ns.kernel).map(|value| (Netns::of(&ns.netns), value))),
        )?;
    }
    let netstat = collectors.enabled(CollectorKind::Netstat);
    gauge(
        encoder,
        "sockdiag_kernel_values_missing",
        "Kernel counters (netstat, snmp) or sysctls that could not be read in the last poll; their series are absent.",
        namespaces.iter().flat_map(|ns| {
            let k = &ns.kernel;
            nonzero(
                ns,
                [
                    ("netstat", k.missing_netstat),
                    ("snmp", k.missing_snmp),
                    ("sysctl", k.missing_sysctl),
                ]
                .map(|(source, n)| ((Netns::of(&ns.netns), SourceLabel { source }), n)),
            )
            // With the netstat collector off no counter is read, so none is missing. The
            // sysctl source stays: ip_local_port_range is read for TCP either way.
            .filter(move |((_, label), _)| netstat || label.source == "sysctl")
        }),
    )
}
