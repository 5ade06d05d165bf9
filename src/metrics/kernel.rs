//! The kernel counters and sysctls of a namespace.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use super::labels::SourceLabel;
use super::{gauge, gauge_value};
use crate::snapshot::KernelStats;

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

pub(super) fn encode_kernel(kernel: &KernelStats, encoder: &mut DescriptorEncoder) -> fmt::Result {
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
