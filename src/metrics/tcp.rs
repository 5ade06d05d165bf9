//! The TCP families, one series set per network namespace: states, ports and processes,
//! listeners, CLOSE_WAIT ages, ephemeral ports and peers.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::gauge;
use super::labels::*;
use crate::snapshot::{ListenerSeries, NetnsFigures, PortSeries, Snapshot};
use crate::source::inet_diag::{Family, TcpState};

/// `(netns, labels)` for every item of every namespace.
pub(super) fn per_netns<'a, L, N, I>(
    namespaces: &'a [NetnsFigures],
    series: impl Fn(&'a NetnsFigures) -> I + 'a,
) -> impl Iterator<Item = ((Netns, L), N)> + 'a
where
    I: IntoIterator<Item = (L, N)> + 'a,
{
    namespaces.iter().flat_map(move |ns| {
        let netns = Netns::of(&ns.netns);
        series(ns)
            .into_iter()
            .map(move |(labels, value)| ((netns.clone(), labels), value))
    })
}

/// The series of a count family in one namespace: all of them in a full namespace, the
/// non-zero ones elsewhere (see [`NetnsFigures::full`]).
pub(super) fn nonzero<L, const N: usize>(
    ns: &NetnsFigures,
    series: [(L, u64); N],
) -> impl Iterator<Item = (L, u64)> {
    let full = ns.full;
    series.into_iter().filter(move |(_, n)| full || *n > 0)
}

pub(super) fn encode_states(snapshot: &Snapshot, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let states = |netns: &str, full: bool, counts: &crate::snapshot::StateCounts| {
        let netns = Netns::of(netns);
        let counts = counts.clone();
        Family::ALL.into_iter().flat_map(move |family| {
            let (netns, counts) = (netns.clone(), counts.clone());
            TcpState::ALL.into_iter().filter_map(move |state| {
                let n = counts.get(family, state);
                (full || n > 0).then(|| {
                    (
                        (
                            netns.clone(),
                            FamilyState {
                                family: family.label(),
                                state: state.label(),
                            },
                        ),
                        n,
                    )
                })
            })
        })
    };
    let folded = states("other", false, &snapshot.folded.tcp_sockets);
    gauge(
        encoder,
        "sockdiag_tcp_sockets",
        "TCP sockets by network namespace, address family and state: every state in the host's (and the exporter's own) namespace, zero included; only non-zero states elsewhere. syn_recv includes request sockets; unknown counts states this exporter does not know. netns=\"other\" sums the namespaces beyond netns.max_namespaces.",
        snapshot
            .namespaces
            .iter()
            .flat_map(|ns| states(&ns.netns, ns.full, &ns.tcp.tcp_sockets))
            .chain(folded),
    )
}

/// The CLOSE_WAIT series of a namespace, with their owner labels.
fn close_wait(ns: &NetnsFigures) -> impl Iterator<Item = (OwnerLabels, &PortSeries)> {
    ns.tcp
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
}

pub(super) fn encode_close_wait(
    namespaces: &[NetnsFigures],
    encoder: &mut DescriptorEncoder,
) -> fmt::Result {
    gauge(
        encoder,
        "sockdiag_tcp_close_wait_oldest_seconds",
        "Age of the oldest CLOSE_WAIT socket, measured from the first poll that saw it (by socket cookie): \
         at least this old, with the poll interval as resolution; restarts at 0 with the exporter. \
         A healthy close lasts milliseconds, a leaked socket grows for ever.",
        per_netns(namespaces, |ns| {
            close_wait(ns).map(|(labels, s)| (labels, s.close_wait_oldest.as_secs_f64()))
        }),
    )?;
    gauge(
        encoder,
        "sockdiag_tcp_close_wait_stale_sockets",
        "CLOSE_WAIT sockets older than close_wait_stale_after: the application never closed them after the peer did.",
        per_netns(namespaces, |ns| {
            close_wait(ns).map(|(labels, s)| (labels, s.close_wait_stale))
        }),
    )?;
    gauge(
        encoder,
        "sockdiag_tcp_close_wait_untracked_sockets",
        "CLOSE_WAIT sockets whose age is not tracked because close_wait_capacity was reached; they are missing from the age and stale families.",
        per_netns(namespaces, |ns| {
            nonzero(ns, [(NoLabels {}, ns.tcp.exhaustion.close_wait_untracked)])
        }),
    )
}

pub(super) fn encode_exhaustion(
    namespaces: &[NetnsFigures],
    encoder: &mut DescriptorEncoder,
) -> fmt::Result {
    gauge(
        encoder,
        "sockdiag_tcp_ephemeral_port_range_size",
        "Ports in net.ipv4.ip_local_port_range: how many connections one local address can hold toward one destination.",
        per_netns(namespaces, |ns| {
            ns.tcp
                .exhaustion
                .port_range
                .map(|range| (NoLabels {}, u64::from(range.size())))
        }),
    )?;
    gauge(
        encoder,
        "sockdiag_tcp_ephemeral_ports_used",
        "Local ports of the ephemeral range in use toward a destination, in any state (TIME_WAIT included), \
         the maximum over local addresses; top destinations by that count, remote_address=\"other\" is the largest of the rest. \
         Divide by sockdiag_tcp_ephemeral_port_range_size for the exhaustion ratio.",
        per_netns(namespaces, |ns| {
            ns.tcp
                .exhaustion
                .destinations
                .iter()
                .map(|(destination, used)| {
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
                })
        }),
    )?;
    gauge(
        encoder,
        "sockdiag_tcp_peer_sockets",
        "Non-LISTEN TCP sockets by remote address and state: the top remote addresses by socket count, the rest as remote_address=\"other\".",
        per_netns(namespaces, |ns| {
            ns.tcp.exhaustion.peers.iter().map(|(address, state, n)| {
                (
                    PeerLabels {
                        remote_address: address
                            .map_or_else(|| "other".to_string(), |a| a.to_string()),
                        state: state.label(),
                    },
                    *n,
                )
            })
        }),
    )
}

/// Per (direction, port, process): the receive and send byte sums. Series are sorted by
/// (direction, port, process, state), so each run of one (direction, port, process) is
/// one pair of queue series.
fn queued(ns: &NetnsFigures) -> Vec<(QueueLabels, u64)> {
    let mut queued = Vec::new();
    for run in ns
        .tcp
        .breakdown
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
    queued
}

fn listener(l: &ListenerSeries) -> ListenerLabels {
    ListenerLabels {
        address: l.address.to_string(),
        port: l.port.to_string(),
        process: l.process.to_string(),
    }
}

pub(super) fn encode_breakdown(
    namespaces: &[NetnsFigures],
    encoder: &mut DescriptorEncoder,
) -> fmt::Result {
    gauge(
        encoder,
        "sockdiag_tcp_port_sockets",
        "Non-LISTEN TCP sockets by direction, port, owning process and state; only non-zero series. \
         direction=inbound: the local port is a listening port (or, with none, is outside the ephemeral port range while the remote port is inside it) and port is that local port; outbound: port is the remote port. \
         process=\"\" has no owner (TIME_WAIT, orphaned, or still in an accept queue), \"unknown\" has an owner that was not found, \"other\" is folded.",
        per_netns(namespaces, |ns| {
            ns.tcp.breakdown.ports.iter().map(|s| {
                (
                    PortLabels {
                        direction: s.direction.label(),
                        port: s.port.to_string(),
                        process: s.process.to_string(),
                        state: s.state.label(),
                    },
                    s.sockets,
                )
            })
        }),
    )?;
    gauge(
        encoder,
        "sockdiag_tcp_queued_bytes",
        "Bytes queued in non-LISTEN sockets: receive = received but not read by the application (a CLOSE_WAIT socket counts 1 for the FIN), \
         send = written but not yet acknowledged by the peer. LISTEN accept-queue counts are never included.",
        per_netns(namespaces, queued),
    )?;
    gauge(
        encoder,
        "sockdiag_tcp_listen_queue_length",
        "Connections waiting in a listening socket's accept queue (LISTEN Recv-Q): a count, not bytes. \
         A full queue shows limit + 1. SO_REUSEPORT sockets sharing address and port are summed.",
        per_netns(namespaces, |ns| {
            ns.tcp.breakdown.listeners.iter().map(|l| (listener(l), l.length))
        }),
    )?;
    gauge(
        encoder,
        "sockdiag_tcp_listen_queue_limit",
        "Backlog of a listening socket (LISTEN Send-Q): min(listen() backlog, net.core.somaxconn). A count, not bytes.",
        per_netns(namespaces, |ns| {
            ns.tcp.breakdown.listeners.iter().map(|l| (listener(l), l.limit))
        }),
    )?;
    gauge(
        encoder,
        "sockdiag_tcp_listen_queue_peak",
        "Largest accept queue length sampled (every listen_poll_interval) since the previous poll, at least the current length.",
        per_netns(namespaces, |ns| {
            ns.tcp.breakdown.listeners.iter().map(|l| (listener(l), l.peak))
        }),
    )?;
    gauge(
        encoder,
        "sockdiag_tcp_unaccepted_sockets",
        "Inbound sockets without an owner (inode 0) in established or close_wait: connections in an accept queue that the server never accepted. lsof does not show them.",
        per_netns(namespaces, |ns| {
            ns.tcp.breakdown.unaccepted.iter().map(|(port, state, n)| {
                (
                    PortStateLabels {
                        port: port.to_string(),
                        state: state.label(),
                    },
                    *n,
                )
            })
        }),
    )?;
    gauge(
        encoder,
        "sockdiag_unattributed_sockets",
        "Sockets with an owner (inode not 0) whose process was not found, TCP sockets and UNIX listeners: no privilege to read its fds \
         (CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE), the process exited, or the socket is in flight between processes.",
        per_netns(namespaces, |ns| {
            nonzero(
                ns,
                [(
                    NoLabels {},
                    ns.tcp.breakdown.unattributed + ns.unix.unattributed,
                )],
            )
        }),
    )
}

/// `sockdiag_folded_label_values`: per namespace the labels its caps folded, and once,
/// without a namespace, the namespaces folded into `other`; and
/// `sockdiag_folded_anomalies`: what even the anomaly ceilings folded.
pub(super) fn encode_folded(snapshot: &Snapshot, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let netns = [(
        (Netns::of(""), FoldedLabel { label: "netns" }),
        snapshot.folded.namespaces,
    )];
    gauge(
        encoder,
        "sockdiag_folded_label_values",
        "Distinct label values folded into \"other\" in the last poll: per namespace port (max_ports, ports.include/exclude), process (max_processes), destination (max_destinations), remote_address (max_peers), path (UNIX listeners: max_unix_paths, or a less full listener of the same path and process), listener (TCP listening addresses beyond max_listeners: their series are not exported), udp_series (UDP direction, port and process series beyond max_ports); and, with netns empty, label=\"netns\": namespaces beyond netns.max_namespaces.",
        per_netns(&snapshot.namespaces, |ns| {
            let b = &ns.tcp.breakdown;
            let e = &ns.tcp.exhaustion;
            nonzero(
                ns,
                [
                    (FoldedLabel { label: "port" }, b.folded_ports),
                    (FoldedLabel { label: "process" }, b.folded_processes),
                    (FoldedLabel { label: "destination" }, e.folded_destinations),
                    (FoldedLabel { label: "remote_address" }, e.folded_peers),
                    (FoldedLabel { label: "path" }, ns.unix.folded_paths),
                    (FoldedLabel { label: "listener" }, b.folded_listeners),
                    (FoldedLabel { label: "udp_series" }, ns.udp.folded_series),
                ],
            )
        })
        .chain(netns),
    )?;
    gauge(
        encoder,
        "sockdiag_folded_anomalies",
        "Anomalies folded in the last poll because even the ceiling of their cap (twice the cap) was full of more severe ones: close_wait (CLOSE_WAIT piles of 50 or more, stale or never-accepted CLOSE_WAIT, per direction, port and process), time_wait (TIME_WAIT storms per direction and port), listener (TCP listeners with a queue peak at 90% of the backlog or more, or never-accepted CLOSE_WAIT on their port), unix_listener (UNIX listeners at 90% or more), udp_series (UDP direction, port and process series that dropped since the previous poll); and, with netns empty, kind=\"netns\": namespaces holding any of these beyond twice netns.max_namespaces. Above 0, some pile-ups lost their labels: raise the caps.",
        per_netns(&snapshot.namespaces, |ns| {
            let a = &ns.tcp.breakdown.folded_anomalies;
            nonzero(
                ns,
                [
                    (AnomalyKind { kind: "close_wait" }, a.close_wait),
                    (AnomalyKind { kind: "time_wait" }, a.time_wait),
                    (AnomalyKind { kind: "listener" }, a.listeners),
                    (AnomalyKind { kind: "unix_listener" }, ns.unix.folded_anomalies),
                    (AnomalyKind { kind: "udp_series" }, ns.udp.folded_dropping),
                ],
            )
        })
        .chain([(
            (Netns::of(""), AnomalyKind { kind: "netns" }),
            snapshot.folded.anomalous,
        )]),
    )
}
