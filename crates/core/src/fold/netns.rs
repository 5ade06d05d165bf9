//! The namespace cap: which network namespaces keep their `netns` label, and which are
//! summed into `netns="other"`. Pure: the poll's per-namespace figures in, the kept ones
//! and the folded sums out.
//!
//! A socket count alone never outranks an anomaly, and anyone can make namespaces
//! (`unshare -Urn`), so the rank is, in order:
//! 1. the host's and our own (`full`): always kept, outside the cap;
//! 2. [`Provenance::Known`] (a runtime's container, an `ip netns` namespace) before
//!    [`Provenance::Unknown`] (anything anyone could have made);
//! 3. the anomalies it holds ([`anomaly::holds_anomaly`]: the alerts' thresholds), most
//!    severe first;
//! 4. its CLOSE_WAIT sockets, the leak's own quantity, even below an alert's threshold;
//! 5. sockets, TCP, UNIX and UDP, most first; then the label, so the kept set does not flap.
//!
//! The first `max` of that order keep their label. Then every namespace still left that
//! holds an anomaly is kept too, in the same order, up to another `max` (the anomaly
//! ceiling, [`anomaly::CEILING_FACTOR`] times the cap in all), so a leak is never folded by
//! healthy neighbours, and a user who plants anomalies in a hundred namespaces of their own
//! cannot grow the series without bound. Anomalous namespaces folded past the ceiling are
//! counted in [`FoldedNetns::anomalous`].

use std::cmp::Reverse;

use super::anomaly::{self, Severity};
use crate::snapshot::{FoldedNetns, NetnsFigures, NetnsInfo, Provenance};
use crate::source::inet_diag::{Family, TcpState};

/// What a namespace is ranked by, lower first.
type RankKey = (
    Provenance,
    Reverse<Option<Severity>>,
    Reverse<u64>,
    Reverse<u64>,
);

fn rank_key(ns: &NetnsFigures, severity: Option<Severity>) -> RankKey {
    let close_wait = Family::ALL
        .iter()
        .map(|&family| ns.tcp.tcp_sockets.get(family, TcpState::CloseWait))
        .sum();
    let sockets = ns.tcp.tcp_sockets.total() + ns.unix.sockets.total() + ns.udp.total();
    (
        ns.provenance,
        Reverse(severity),
        Reverse(close_wait),
        Reverse(sockets),
    )
}

/// Applies the namespace cap. `severity` tells the anomalies a namespace holds (`None`:
/// none). Returns the kept namespaces sorted by label, the infos of the kept ones (a folded
/// namespace's info goes with its label), and the folded sums.
pub fn cap_namespaces(
    figures: Vec<NetnsFigures>,
    infos: Vec<NetnsInfo>,
    max: usize,
    severity: impl Fn(&NetnsFigures) -> Option<Severity>,
) -> (Vec<NetnsFigures>, Vec<NetnsInfo>, FoldedNetns) {
    let (mut kept, rest): (Vec<NetnsFigures>, Vec<NetnsFigures>) =
        figures.into_iter().partition(|ns| ns.full);
    let mut ranked: Vec<(Option<Severity>, NetnsFigures)> =
        rest.into_iter().map(|ns| (severity(&ns), ns)).collect();
    ranked.sort_by(|(sa, a), (sb, b)| {
        rank_key(a, *sa)
            .cmp(&rank_key(b, *sb))
            .then_with(|| a.netns.cmp(&b.netns))
    });
    let mut folded = FoldedNetns::default();
    let mut ceiling = max.saturating_mul(anomaly::CEILING_FACTOR - 1);
    for (position, (severity, ns)) in ranked.into_iter().enumerate() {
        if position < max {
            kept.push(ns);
            continue;
        }
        if severity.is_some() && ceiling > 0 {
            ceiling -= 1;
            kept.push(ns);
            continue;
        }
        folded.namespaces += 1;
        folded.anomalous += u64::from(severity.is_some());
        folded.tcp_sockets.merge(&ns.tcp.tcp_sockets);
        folded.unix_sockets.merge(&ns.unix.sockets);
        for (total, n) in folded.udp_sockets.iter_mut().zip(ns.udp.sockets) {
            *total += n;
        }
    }
    kept.sort_by(|a, b| a.netns.cmp(&b.netns));
    let mut infos: Vec<NetnsInfo> = infos
        .into_iter()
        .filter(|info| {
            kept.binary_search_by(|ns| ns.netns.cmp(&info.netns))
                .is_ok()
        })
        .collect();
    infos.sort_by(|a, b| a.netns.cmp(&b.netns));
    (kept, infos, folded)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A namespace with `sockets` ESTABLISHED and `close_wait` CLOSE_WAIT sockets.
    fn ns(label: &str, provenance: Provenance, sockets: u64, close_wait: u64) -> NetnsFigures {
        let mut figures = NetnsFigures {
            netns: Arc::from(label),
            full: label == "host",
            provenance,
            ..Default::default()
        };
        for _ in 0..sockets {
            figures
                .tcp
                .tcp_sockets
                .add(Family::Ipv4, TcpState::Established);
        }
        for _ in 0..close_wait {
            figures
                .tcp
                .tcp_sockets
                .add(Family::Ipv4, TcpState::CloseWait);
        }
        figures
    }

    fn info(label: &str) -> NetnsInfo {
        NetnsInfo {
            netns: Arc::from(label),
            ..Default::default()
        }
    }

    /// The test's anomaly: 3 CLOSE_WAIT or more, their count as the severity.
    fn close_wait(ns: &NetnsFigures) -> Option<Severity> {
        let sockets = ns.tcp.tcp_sockets.get(Family::Ipv4, TcpState::CloseWait);
        (sockets >= 3).then_some(Severity {
            sockets,
            anomalies: 1,
        })
    }

    fn labels(kept: &[NetnsFigures]) -> Vec<&str> {
        kept.iter().map(|ns| &*ns.netns).collect()
    }

    fn cap(
        figures: Vec<NetnsFigures>,
        max: usize,
    ) -> (Vec<NetnsFigures>, Vec<NetnsInfo>, FoldedNetns) {
        let infos = figures.iter().map(|ns| info(&ns.netns)).collect();
        cap_namespaces(figures, infos, max, close_wait)
    }

    #[test]
    fn namespaces_beyond_the_cap_fold_into_other_with_their_state_counts() {
        let known = Provenance::Known;
        let (kept, infos, folded) = cap(
            vec![
                ns("b", known, 5, 0),
                ns("host", known, 1, 0),
                ns("a", known, 5, 0),
                ns("c", known, 2, 0),
                ns("d", known, 7, 0),
            ],
            2,
        );
        // host is outside the cap; then d (7), then a and b tie at 5: a wins by label.
        assert_eq!(labels(&kept), ["a", "d", "host"]);
        let info_labels: Vec<&str> = infos.iter().map(|i| &*i.netns).collect();
        assert_eq!(
            info_labels,
            ["a", "d", "host"],
            "folded namespaces lose their info"
        );
        assert_eq!(folded.namespaces, 2);
        assert_eq!(folded.anomalous, 0);
        assert_eq!(
            folded.tcp_sockets.get(Family::Ipv4, TcpState::Established),
            7,
            "b (5) and c (2)"
        );
    }

    #[test]
    fn a_small_leak_is_never_folded_by_busy_healthy_neighbours() {
        let mut figures: Vec<NetnsFigures> = (0..110)
            .map(|i| ns(&format!("pod-{i:03}"), Provenance::Known, 40, 0))
            .collect();
        figures.push(ns("leaky", Provenance::Known, 1, 20));
        figures.push(ns("small-leak", Provenance::Known, 1, 2));
        let (kept, _, folded) = cap(figures, 100);
        assert!(labels(&kept).contains(&"leaky"));
        assert!(
            labels(&kept).contains(&"small-leak"),
            "CLOSE_WAIT below the anomaly's threshold still outranks healthy sockets"
        );
        assert_eq!(kept.len(), 100, "the leaks rank inside the cap");
        assert_eq!(folded.namespaces, 12);
    }

    #[test]
    fn unknown_namespaces_fold_before_a_runtimes_even_with_more_sockets() {
        let mut figures: Vec<NetnsFigures> = (0..100)
            .map(|i| ns(&format!("ns-{i}"), Provenance::Unknown, 500, 0))
            .collect();
        figures.push(ns("container", Provenance::Known, 1, 0));
        let (kept, _, _) = cap(figures, 10);
        assert!(labels(&kept).contains(&"container"));
    }

    #[test]
    fn anomalies_past_the_cap_keep_their_label_up_to_the_ceiling_and_the_rest_are_counted() {
        // 30 user-made namespaces, each with a CLOSE_WAIT pile; a cap of 10.
        let mut figures: Vec<NetnsFigures> = (0..30)
            .map(|i| ns(&format!("ns-{i:02}"), Provenance::Unknown, 5, 3))
            .collect();
        figures.push(ns("real", Provenance::Known, 1, 1));
        let (kept, _, folded) = cap(figures, 10);
        assert!(
            labels(&kept).contains(&"real"),
            "a runtime's leak ranks first"
        );
        assert_eq!(kept.len(), 20, "the cap, then the ceiling of another cap");
        assert_eq!(folded.namespaces, 11);
        assert_eq!(folded.anomalous, 11, "the ceiling bit: the metric says so");
    }
}
