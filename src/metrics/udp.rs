//! The UDP families, one series set per network namespace: socket counts by family, the
//! receive queues and buffers of each (direction, port, process), and the datagrams each
//! dropped (`sk_drops`, kept as a counter by the fold's drop tracker).

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use super::gauge;
use super::labels::{FamilyLabel, Netns, OwnerLabels};
use super::tcp::per_netns;
use crate::snapshot::{NetnsFigures, Snapshot, UdpDropSeries, UdpSeries};
use crate::source::inet_diag::Family;

fn owner(s: &UdpSeries) -> OwnerLabels {
    OwnerLabels {
        direction: s.direction.label(),
        port: s.port.to_string(),
        process: s.process.to_string(),
    }
}

fn drop_owner(s: &UdpDropSeries) -> OwnerLabels {
    OwnerLabels {
        direction: s.direction.label(),
        port: s.port.to_string(),
        process: s.process.to_string(),
    }
}

/// The `family` series of one namespace: both in a full namespace, zero included; only
/// non-zero ones elsewhere.
fn sockets(
    netns: &str,
    full: bool,
    counts: [u64; 2],
) -> impl Iterator<Item = ((Netns, FamilyLabel), u64)> {
    let netns = Netns::of(netns);
    Family::ALL.into_iter().filter_map(move |family| {
        let n = counts[family.index()];
        (full || n > 0).then(|| {
            (
                (
                    netns.clone(),
                    FamilyLabel {
                        family: family.label(),
                    },
                ),
                n,
            )
        })
    })
}

pub(super) fn encode_udp(snapshot: &Snapshot, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let folded = sockets("other", false, snapshot.folded.udp_sockets);
    gauge(
        encoder,
        "sockdiag_udp_sockets",
        "UDP sockets by network namespace and family (ipv4, ipv6), bound or connected: \
         both families in the host's (and the exporter's own) namespace, zero included; only non-zero ones elsewhere. \
         netns=\"other\" sums the namespaces beyond netns.max_namespaces.",
        snapshot
            .namespaces
            .iter()
            .flat_map(|ns| sockets(&ns.netns, ns.full, ns.udp.sockets))
            .chain(folded),
    )?;
    gauge(
        encoder,
        "sockdiag_udp_receive_queue_bytes",
        "Bytes held by the receive queues of UDP sockets (ss -uam skmem r, summed), per direction, port and process. \
         Counts the kernel's buffer overhead, not payload; datagrams are dropped when it would pass the buffer. \
         direction=\"inbound\": a receiver (bound outside the ephemeral range, or unconnected), port is its local port; \
         \"outbound\": a connected client on an ephemeral port, port is the remote port. \
         port=\"other\" sums the series beyond max_ports per direction (a dropping one is kept first).",
        per_netns(&snapshot.namespaces, |ns: &NetnsFigures| {
            ns.udp.series.iter().map(|s| (owner(s), s.queue_bytes))
        }),
    )?;
    gauge(
        encoder,
        "sockdiag_udp_receive_buffer_bytes",
        "Receive buffers of UDP sockets (ss -uam skmem rb, summed): SO_RCVBUF as the kernel doubled it, \
         net.core.rmem_default unless set. Same labels as sockdiag_udp_receive_queue_bytes.",
        per_netns(&snapshot.namespaces, |ns: &NetnsFigures| {
            ns.udp.series.iter().map(|s| (owner(s), s.buffer_bytes))
        }),
    )?;
    let drops = per_netns(&snapshot.namespaces, |ns: &NetnsFigures| {
        ns.udp.drops.iter().map(|s| (drop_owner(s), s.drops))
    });
    let mut drops = drops.peekable();
    if drops.peek().is_none() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(
        "sockdiag_udp_drops",
        "Datagrams dropped by UDP sockets (ss -uam skmem d: a full receive buffer, a socket filter, a checksum), \
         per direction, port and process. Never goes down while the series exists: a socket adds its drops to the series it \
         was first counted in (when first seen dropping, with all its drops so far), even if the cap later moves it; \
         every series of sockdiag_udp_receive_queue_bytes has one, 0 until a socket drops; a series goes 10 minutes after the last poll that saw a socket with its labels or counted in it.",
        None,
        MetricType::Counter,
    )?;
    for (labels, value) in drops {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}
