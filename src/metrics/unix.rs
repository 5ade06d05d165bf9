//! The UNIX families, one series set per network namespace: socket counts by type and
//! state, and the accept queues of UNIX listeners (php-fpm, gunicorn, uwsgi...).

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::gauge;
use super::labels::{Netns, UnixListenerLabels, UnixTypeState};
use super::tcp::per_netns;
use crate::snapshot::{NetnsFigures, Snapshot, UnixCounts, UnixListenerSeries};
use crate::source::unix_diag::{UnixState, UnixType};

/// The `(socket_type, state)` series of one namespace: every possible stream, seqpacket
/// and dgram pair in a full namespace, zero included; only non-zero ones elsewhere, and
/// for the `other` type.
fn counts(
    netns: &str,
    full: bool,
    counts: &UnixCounts,
) -> impl Iterator<Item = ((Netns, UnixTypeState), u64)> {
    let netns = Netns::of(netns);
    let counts = counts.clone();
    UnixType::ALL.into_iter().flat_map(move |kind| {
        let (netns, counts) = (netns.clone(), counts.clone());
        UnixState::ALL.into_iter().filter_map(move |state| {
            let n = counts.get(kind, state);
            // listen() on a datagram socket fails: that pair would always be zero.
            let impossible = kind == UnixType::Dgram && state == UnixState::Listen;
            let always = full && kind != UnixType::Other && !impossible;
            (always || n > 0).then(|| {
                (
                    (
                        netns.clone(),
                        UnixTypeState {
                            socket_type: kind.label(),
                            state: state.label(),
                        },
                    ),
                    n,
                )
            })
        })
    })
}

fn listener(l: &UnixListenerSeries) -> UnixListenerLabels {
    UnixListenerLabels {
        path: l.path.to_string(),
        process: l.process.to_string(),
    }
}

pub(super) fn encode_unix(snapshot: &Snapshot, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let folded = counts("other", false, &snapshot.folded.unix_sockets);
    gauge(
        encoder,
        "sockdiag_unix_sockets",
        "UNIX domain sockets by network namespace, socket_type (stream, seqpacket, dgram) and state (listen, established, other: unconnected or not yet listening): \
         every pair in the host's (and the exporter's own) namespace, zero included; only non-zero pairs elsewhere. \
         netns=\"other\" sums the namespaces beyond netns.max_namespaces.",
        snapshot
            .namespaces
            .iter()
            .flat_map(|ns| counts(&ns.netns, ns.full, &ns.unix.sockets))
            .chain(folded),
    )?;
    gauge(
        encoder,
        "sockdiag_unix_listen_queue_length",
        "Connections waiting to be accepted on a UNIX listener (ss -xl Recv-Q): a count, not bytes. \
         A full queue shows limit + 1; connect() then blocks or fails with EAGAIN. \
         path is the bound path, @name an abstract name; path=\"other\" sums the listeners beyond max_unix_paths.",
        per_netns(&snapshot.namespaces, |ns: &NetnsFigures| {
            ns.unix.listeners.iter().map(|l| (listener(l), l.length))
        }),
    )?;
    gauge(
        encoder,
        "sockdiag_unix_listen_queue_limit",
        "Backlog of a UNIX listener (ss -xl Send-Q): min(listen() backlog, net.core.somaxconn). A count, not bytes.",
        per_netns(&snapshot.namespaces, |ns: &NetnsFigures| {
            ns.unix.listeners.iter().map(|l| (listener(l), l.limit))
        }),
    )?;
    gauge(
        encoder,
        "sockdiag_unix_listen_queue_peak",
        "Largest UNIX accept queue length sampled (every listen_poll_interval) since the previous poll, at least the current length.",
        per_netns(&snapshot.namespaces, |ns: &NetnsFigures| {
            ns.unix.listeners.iter().map(|l| (listener(l), l.peak))
        }),
    )
}
