//! The TCP families of a namespace: states, ports and processes, listeners, CLOSE_WAIT
//! ages, ephemeral ports and peers.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::labels::*;
use super::{gauge, gauge_value};
use crate::snapshot::{Breakdown, Exhaustion, ListenerSeries, TcpFigures};
use crate::source::inet_diag::TcpState;

pub(super) fn encode_close_wait(
    snapshot: &TcpFigures,
    encoder: &mut DescriptorEncoder,
) -> fmt::Result {
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

pub(super) fn encode_exhaustion(
    exhaustion: &Exhaustion,
    encoder: &mut DescriptorEncoder,
) -> fmt::Result {
    if let Some(range) = exhaustion.port_range {
        gauge_value(
            encoder,
            "sockdiag_tcp_ephemeral_port_range_size",
            "Ports in net.ipv4.ip_local_port_range: how many connections one local address can hold toward one destination.",
            u64::from(range.size()),
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

pub(super) fn encode_breakdown(
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
