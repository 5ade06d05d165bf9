//! The kernel counters and sysctls, one series per network namespace: a family per row of
//! the core's tables (`NetCounters::TABLE`, `NetSysctls::TABLE`), in table order, then how
//! many values each source could not read.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use super::gauge;
use super::labels::{Netns, SourceLabel};
use crate::collectors::{CollectorKind, Collectors};
use crate::snapshot::{KernelStats, NetnsFigures};
use crate::source::kernel_value::{KernelValue, MetricKind};
use crate::source::proc_net_snmp::NetCounters;
use crate::source::proc_sys_net::NetSysctls;

/// The family of `row`, with a series for each namespace where the kernel had the value;
/// none at all when no namespace had it.
fn family(
    encoder: &mut DescriptorEncoder,
    row: &KernelValue,
    namespaces: &[NetnsFigures],
    value: impl Fn(&KernelStats) -> Option<u64>,
) -> fmt::Result {
    let series = namespaces
        .iter()
        .filter_map(|ns| Some((Netns::of(&ns.netns), value(&ns.kernel)?)));
    match row.kind {
        MetricKind::Counter => counter(encoder, row.metric, row.help, series),
        MetricKind::Gauge => gauge(encoder, row.metric, row.help, series),
    }
}

/// A counter family, not written at all without series (as [`gauge`]).
fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (Netns, u64)>,
) -> fmt::Result {
    let mut series = series.peekable();
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
    for (i, row) in NetCounters::TABLE.iter().enumerate() {
        family(encoder, row, namespaces, |k| k.counters.values()[i])?;
    }
    for (i, row) in NetSysctls::TABLE.iter().enumerate() {
        family(encoder, row, namespaces, |k| k.sysctls.values()[i])?;
    }
    let netstat = collectors.enabled(CollectorKind::Netstat);
    gauge(
        encoder,
        "sockdiag_kernel_values_missing",
        "Kernel counters (netstat, snmp, snmp6) or sysctls that could not be read in the last poll, by source; their series are absent.",
        namespaces.iter().flat_map(|ns| {
            let netns = Netns::of(&ns.netns);
            ns.kernel
                .missing_by_source()
                .filter(|(_, n)| ns.full || *n > 0)
                // With the netstat collector off no counter is read, so none is missing.
                // The sysctl source stays: ip_local_port_range is read for TCP either way.
                .filter(move |(source, _)| netstat || !NetCounters::reads(*source))
                .map(move |(source, n)| {
                    let source = source.label();
                    ((netns.clone(), SourceLabel { source }), n)
                })
        }),
    )
}
