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

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::build_info::BuildInfo;
use crate::snapshot::{OwnerFigures, Published, Stage};

mod kernel;
mod labels;
mod tcp;
#[cfg(test)]
mod tests;
mod text;
mod udp;
mod unix;

use crate::collectors::CollectorKind;
use labels::{BuildLabels, CollectorLabel, Netns, NetnsInfoLabels, ReasonLabel, StageLabel};
pub use text::to_text_004;

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

/// Encodes the snapshot currently published by the poller.
#[derive(Debug)]
pub struct SnapshotCollector {
    published: watch::Receiver<Arc<Published>>,
    build: BuildInfo,
}

impl SnapshotCollector {
    /// Registers the collector of every `sockdiag_*` family, for this binary's build.
    pub fn register(registry: &mut Registry, published: watch::Receiver<Arc<Published>>) {
        Self::register_with_build(registry, published, BuildInfo::CURRENT);
    }

    /// As [`SnapshotCollector::register`], reporting `build` in `sockdiag_build_info`
    /// (the golden exposition fixes it).
    pub fn register_with_build(
        registry: &mut Registry,
        published: watch::Receiver<Arc<Published>>,
        build: BuildInfo,
    ) {
        registry.register_collector(Box::new(SnapshotCollector { published, build }));
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        // Clone the Arc and release the watch lock at once: encoding must not block the
        // poller's next publication.
        let published = Arc::clone(&self.published.borrow());
        encode_published(&published, self.build, &mut encoder)
    }
}

pub(crate) fn gauge<
    L: EncodeLabelSet,
    N: prometheus_client::encoding::EncodeGaugeValue + fmt::Debug,
>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, N)>,
) -> fmt::Result {
    // A family without series is not written at all (a sysctl no namespace has).
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

pub(crate) fn gauge_value<N: prometheus_client::encoding::EncodeGaugeValue + fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> fmt::Result {
    let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(family)
}

fn encode_published(
    published: &Published,
    build: BuildInfo,
    encoder: &mut DescriptorEncoder,
) -> fmt::Result {
    gauge(
        encoder,
        "sockdiag_build_info",
        "Build of this exporter (version, git revision and branch, build date, rustc version, target); value is always 1.",
        [(BuildLabels::from(build), 1u64)],
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
    encode_owners(&snapshot.owners, encoder)?;
    gauge(
        encoder,
        "sockdiag_netns_info",
        "One series per network namespace that keeps its label (folded ones have none), value 1: who it is. netns is the label every per-namespace family carries (host, the ip-netns name, the 12-hex container id, or ns-<inode>); join on it for the container name, the Kubernetes pod and namespace, or the Compose project and service, read from the container runtime's state.",
        snapshot.netns_info.iter().map(|info| {
            (
                (
                    Netns::of(&info.netns),
                    NetnsInfoLabels {
                        inode: info.inode.to_string(),
                        container_id: info.container_id.clone(),
                        container_name: info.container_name.clone(),
                        pod_name: info.pod_name.clone(),
                        pod_namespace: info.pod_namespace.clone(),
                        pod_uid: info.pod_uid.clone(),
                        runtime: info.runtime.clone(),
                        compose_project: info.compose_project.clone(),
                        compose_service: info.compose_service.clone(),
                    },
                ),
                1u64,
            )
        }),
    )?;
    gauge(
        encoder,
        "sockdiag_netns_skipped",
        "Network namespaces not sampled in the last poll, by reason: permission (entering them needs CAP_SYS_ADMIN and CAP_SYS_PTRACE), vanished (gone between discovery and dump), error (the dump failed; logged).",
        [
            ("permission", snapshot.skipped.permission),
            ("vanished", snapshot.skipped.vanished),
            ("error", snapshot.skipped.error),
        ]
        .map(|(reason, n)| (ReasonLabel { reason }, n)),
    )?;
    gauge(
        encoder,
        "sockdiag_collector_enabled",
        "Whether an optional collector ran in the last poll (1) or was turned off (0): --[no-]collector.NAME, [collectors] in the config. A collector turned off has no families, rather than zeros. TCP is always on and not listed.",
        snapshot
            .collectors
            .iter()
            .map(|(kind, on)| (CollectorLabel { collector: kind.label() }, u64::from(on))),
    )?;
    tcp::encode_states(snapshot, encoder)?;
    tcp::encode_breakdown(&snapshot.namespaces, encoder)?;
    tcp::encode_folded(snapshot, encoder)?;
    tcp::encode_close_wait(&snapshot.namespaces, encoder)?;
    tcp::encode_exhaustion(&snapshot.namespaces, encoder)?;
    if snapshot.collectors.enabled(CollectorKind::Unix) {
        unix::encode_unix(snapshot, encoder)?;
    }
    if snapshot.collectors.enabled(CollectorKind::Udp) {
        udp::encode_udp(snapshot, encoder)?;
    }
    kernel::encode_kernel(&snapshot.namespaces, snapshot.collectors, encoder)
}

/// The /proc owner lookup's own figures: `sockdiag_owner_*`.
fn encode_owners(owners: &OwnerFigures, encoder: &mut DescriptorEncoder) -> fmt::Result {
    gauge_value(
        encoder,
        "sockdiag_owner_pending_sockets",
        "Sockets labelled process=\"pending\" in the last poll: not found by its /proc scan, which was not a full pass or stopped at its readlink budget; the next poll names them (or labels them unknown).",
        owners.pending,
    )?;
    gauge_value(
        encoder,
        "sockdiag_owner_readlinks",
        "fd symlinks (/proc/PID/fd/N) read by the last poll's owner lookup; a poll after the first reads only fd slots not cached, within a budget (see docs/metrics.md).",
        owners.readlinks,
    )?;
    for (name, help, value) in [
        (
            "sockdiag_owner_full_passes",
            "Full passes over every process's fd slots since start: the first poll's, then one in each poll that still finds a socket the previous poll left pending.",
            owners.full_passes_total,
        ),
        (
            "sockdiag_owner_budget_stops",
            "Polls whose /proc scan stopped at its readlink budget since start; the next poll resumes it.",
            owners.budget_stops_total,
        ),
    ] {
        let family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        ConstCounter::new(value).encode(family)?;
    }
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
    // Grown by doubling: up to half of it is slack, which the body cache would keep for
    // the whole interval (once per format).
    out.shrink_to_fit();
    Ok(out)
}
