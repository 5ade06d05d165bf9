//! What counts as an anomaly: the socket pile-ups the shipped alerts page or ticket on
//! (grafana/rules/sockdiag-alerts.yml), with their thresholds in one place.
//!
//! The caps use it twice. They rank every capped family by the quantity its alert
//! watches (CLOSE_WAIT count and age, accept-queue fill, TIME_WAIT count), so a socket
//! count alone never outranks a pile-up; and series that hold an anomaly are kept beyond
//! the cap, up to a ceiling of their own ([`kept`]: [`CEILING_FACTOR`] times the cap),
//! most severe first, so that piles planted everywhere cannot grow the series without
//! bound. What even the ceiling folds is counted (`sockdiag_folded_anomalies`). The
//! namespace ranking asks [`holds_anomaly`] of each namespace's figures.
//!
//! Pure: figures in, verdicts out.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::snapshot::{Direction, PortLabel, TcpFigures, UdpFigures, UnixFigures};
use crate::source::inet_diag::{Family, TcpState};

/// Series kept for anomalies at most, in all, as a multiple of the cap they exceed.
pub const CEILING_FACTOR: usize = 2;

/// When a figure is an anomaly. The defaults are the shipped alerts' thresholds
/// (grafana/mixin/config.libsonnet), where a single poll can tell; docs/metrics.md
/// ("Caps") lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// CLOSE_WAIT sockets of one (direction, port, process) from which they are a pile:
    /// `closeWaitGrowingMinSockets`, below which SockdiagCloseWaitGrowing never fires.
    /// One stale CLOSE_WAIT socket is an anomaly too: SockdiagCloseWaitStale fires on it.
    pub close_wait_sockets: u64,
    /// Accept queue (its peak since the previous poll) over the backlog, in percent, from
    /// which a TCP or UNIX listener is full: `listenQueueFullRatio` and
    /// `unixListenQueueFullRatio`.
    pub listen_fill_percent: u64,
    /// TIME_WAIT sockets on one (direction, port) from which they are a storm, together
    /// with [`Thresholds::time_wait_share_percent`]: 10 new per second held for the 60 s
    /// of TIME_WAIT (`report --time-wait-growth`'s default).
    pub time_wait_sockets: u64,
    /// The port's share of its namespace's TIME_WAIT, in percent: `timeWaitPortShare`,
    /// from which SockdiagTimeWaitNearMaxBuckets names a port.
    pub time_wait_share_percent: u64,
    /// Ephemeral ports in use toward one destination over the range size, in percent:
    /// `ephemeralPortsRatio`.
    pub ephemeral_fill_percent: u64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            close_wait_sockets: 50,
            listen_fill_percent: 90,
            time_wait_sockets: 600,
            time_wait_share_percent: 25,
            ephemeral_fill_percent: 75,
        }
    }
}

/// `a / b >= percent / 100`, exactly, with a divisor of 0 read as 1 (`listen(fd, 0)`).
fn at_least_percent(a: u64, b: u64, percent: u64) -> bool {
    u128::from(a) * 100 >= u128::from(percent) * u128::from(b.max(1))
}

/// Compares two fills `a.0 / a.1` and `b.0 / b.1` exactly (divisors of 0 read as 1).
pub fn cmp_fill(a: (u64, u64), b: (u64, u64)) -> Ordering {
    (u128::from(a.0) * u128::from(b.1.max(1))).cmp(&(u128::from(b.0) * u128::from(a.1.max(1))))
}

impl Thresholds {
    /// A CLOSE_WAIT holder (one direction, port and process) with `sockets` CLOSE_WAIT
    /// sockets, `stale` of them older than `close_wait_stale_after`.
    pub fn close_wait_pile(&self, sockets: u64, stale: u64) -> bool {
        stale > 0 || sockets >= self.close_wait_sockets
    }

    /// A listener whose queue reached `peak` (at least its current length) of `limit`.
    pub fn listen_full(&self, peak: u64, limit: u64) -> bool {
        at_least_percent(peak, limit, self.listen_fill_percent)
    }

    /// `sockets` TIME_WAIT on one (direction, port) of `namespace` in its namespace.
    pub fn time_wait_storm(&self, sockets: u64, namespace: u64) -> bool {
        sockets >= self.time_wait_sockets
            && at_least_percent(sockets, namespace, self.time_wait_share_percent)
    }

    /// `used` ephemeral ports toward one destination of a range of `range` ports.
    pub fn ephemeral_squeeze(&self, used: u64, range: u64) -> bool {
        at_least_percent(used, range, self.ephemeral_fill_percent)
    }
}

/// How much of a namespace is caught in anomalies, to rank namespaces: sockets first
/// (connections piled up, waiting, or ports used), then the number of anomalies.
/// `Severity::default()` is none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Severity {
    pub sockets: u64,
    pub anomalies: u64,
}

impl Severity {
    fn add(&mut self, sockets: u64) {
        self.sockets += sockets;
        self.anomalies += 1;
    }
}

/// The anomalies a namespace's figures (after its caps) hold, as one [`Severity`];
/// `None` when there is none. Counted per series as exported, so a pile summed under
/// `other` counts as the alerts would see it: CLOSE_WAIT piles (per direction, port,
/// process), never-accepted CLOSE_WAIT (per port), full TCP and UNIX accept queues (by
/// their peak), TIME_WAIT storms (per direction and port) and ephemeral-port squeezes
/// (per destination).
pub fn holds_anomaly(
    tcp: &TcpFigures,
    unix: &UnixFigures,
    thresholds: &Thresholds,
) -> Option<Severity> {
    let mut severity = Severity::default();
    let time_wait: u64 = Family::ALL
        .iter()
        .map(|family| tcp.tcp_sockets.get(*family, TcpState::TimeWait))
        .sum();
    let mut time_wait_ports: BTreeMap<(Direction, PortLabel), u64> = BTreeMap::new();
    for s in &tcp.breakdown.ports {
        match s.state {
            TcpState::CloseWait if thresholds.close_wait_pile(s.sockets, s.close_wait_stale) => {
                severity.add(s.sockets);
            }
            TcpState::TimeWait => {
                *time_wait_ports.entry((s.direction, s.port)).or_default() += s.sockets
            }
            _ => {}
        }
    }
    for n in time_wait_ports.into_values() {
        if thresholds.time_wait_storm(n, time_wait) {
            severity.add(n);
        }
    }
    for (_, state, n) in &tcp.breakdown.unaccepted {
        if *state == TcpState::CloseWait && *n > 0 {
            severity.add(*n);
        }
    }
    for l in &tcp.breakdown.listeners {
        if thresholds.listen_full(l.peak, l.limit) {
            severity.add(l.peak);
        }
    }
    for l in &unix.listeners {
        if thresholds.listen_full(l.peak, l.limit) {
            severity.add(l.peak);
        }
    }
    if let Some(range) = tcp.exhaustion.port_range {
        for (_, used) in &tcp.exhaustion.destinations {
            if thresholds.ephemeral_squeeze(*used, u64::from(range.size())) {
                severity.add(*used);
            }
        }
    }
    (severity != Severity::default()).then_some(severity)
}

/// A UDP (direction, port, process) that dropped `drops_growth` datagrams since the
/// previous poll: SockdiagUdpReceiveDrops pages on any drop rate held for 5 minutes, and a
/// single poll cannot tell more than "it dropped".
pub fn udp_dropping(drops_growth: u64) -> bool {
    drops_growth > 0
}

/// The UDP anomalies of a namespace's figures (after its cap): every series that dropped
/// since the previous poll, its datagrams dropped as the sockets of the severity.
pub fn holds_udp_anomaly(udp: &UdpFigures) -> Option<Severity> {
    let mut severity = Severity::default();
    for s in &udp.series {
        if udp_dropping(s.drops_growth) {
            severity.add(s.drops_growth);
        }
    }
    (severity != Severity::default()).then_some(severity)
}

/// Two verdicts on one namespace as one: sockets and anomalies summed.
pub fn combine(a: Option<Severity>, b: Option<Severity>) -> Option<Severity> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Severity {
            sockets: a.sockets + b.sockets,
            anomalies: a.anomalies + b.anomalies,
        }),
        (a, b) => a.or(b),
    }
}

/// How many of a ranking keep their labels, and how many anomalies it folds. `ranked`
/// is sorted most severe first with every anomaly before the rest, `anomalies` of them:
/// the first `cap` are kept, and anomalies beyond them up to
/// [`CEILING_FACTOR`] × `cap` in all.
pub fn kept(total: usize, anomalies: usize, cap: usize) -> (usize, u64) {
    let ceiling = cap.saturating_mul(CEILING_FACTOR);
    let kept = total.min(cap.max(anomalies.min(ceiling)));
    (kept, anomalies.saturating_sub(kept) as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_dropping_udp_series_is_an_anomaly_and_adds_to_the_namespace_verdict() {
        let series = |port: u16, drops_growth: u64| crate::snapshot::UdpSeries {
            direction: Direction::Inbound,
            port: PortLabel::Port(port),
            process: Arc::from("udp-sink"),
            sockets: 1,
            queue_bytes: 0,
            buffer_bytes: 0,
            drops_growth,
        };
        let mut udp = UdpFigures::default();
        udp.series.push(series(8126, 0));
        assert_eq!(holds_udp_anomaly(&udp), None, "a reader that never dropped");
        udp.series.push(series(8125, 994));
        let dropping = Some(Severity {
            sockets: 994,
            anomalies: 1,
        });
        assert_eq!(holds_udp_anomaly(&udp), dropping);
        let tcp = Some(Severity {
            sockets: 60,
            anomalies: 2,
        });
        assert_eq!(
            combine(tcp, dropping),
            Some(Severity {
                sockets: 1054,
                anomalies: 3
            })
        );
        assert_eq!(combine(None, dropping), dropping);
        assert_eq!(combine(None, None), None);
    }
    use crate::snapshot::{ListenerSeries, PortSeries, UnixListenerSeries};

    #[test]
    fn thresholds_are_inclusive_and_exact() {
        let t = Thresholds::default();
        assert!(!t.close_wait_pile(49, 0));
        assert!(t.close_wait_pile(50, 0));
        assert!(t.close_wait_pile(1, 1));
        // 9 of 10 is 90%; a full queue shows limit + 1.
        assert!(!t.listen_full(8, 10));
        assert!(t.listen_full(9, 10));
        assert!(t.listen_full(5, 4));
        // listen(fd, 0): one waiting connection fills it.
        assert!(t.listen_full(1, 0));
        assert!(!t.listen_full(0, 0));
        assert!(!t.time_wait_storm(599, 600));
        assert!(t.time_wait_storm(600, 2400));
        assert!(!t.time_wait_storm(600, 2401));
        assert!(t.ephemeral_squeeze(21_000, 28_000));
        assert!(!t.ephemeral_squeeze(20_999, 28_000));
    }

    #[test]
    fn the_ceiling_keeps_anomalies_up_to_twice_the_cap() {
        // Fewer than the cap: all kept.
        assert_eq!(kept(3, 0, 5), (3, 0));
        // No anomaly: the cap.
        assert_eq!(kept(100, 0, 5), (5, 0));
        // Anomalies beyond the cap, within the ceiling: kept.
        assert_eq!(kept(100, 8, 5), (8, 0));
        // Beyond the ceiling: folded and counted.
        assert_eq!(kept(100, 13, 5), (10, 3));
        assert_eq!(kept(12, 12, 5), (10, 2));
    }

    fn close_wait(port: u16, sockets: u64, stale: u64) -> PortSeries {
        PortSeries {
            direction: Direction::Inbound,
            port: PortLabel::Port(port),
            process: Arc::from("app"),
            state: TcpState::CloseWait,
            sockets,
            receive_bytes: 0,
            send_bytes: 0,
            close_wait_oldest: Duration::ZERO,
            close_wait_stale: stale,
        }
    }

    #[test]
    fn a_namespace_holds_anomalies_by_the_alerts_thresholds() {
        let t = Thresholds::default();
        let mut tcp = TcpFigures::default();
        let mut unix = UnixFigures::default();
        // 49 fresh CLOSE_WAIT and an idle listener: nothing.
        tcp.breakdown.ports.push(close_wait(8080, 49, 0));
        tcp.breakdown.listeners.push(ListenerSeries {
            address: "127.0.0.1".parse().unwrap(),
            port: 8080,
            process: Arc::from("app"),
            length: 0,
            limit: 128,
            peak: 100,
        });
        assert_eq!(holds_anomaly(&tcp, &unix, &t), None);
        // A stale socket, a full UNIX queue (5 of 4) and never-accepted CLOSE_WAIT.
        tcp.breakdown.ports.push(close_wait(8081, 1, 1));
        unix.listeners.push(UnixListenerSeries {
            path: Arc::from("/run/php/php-fpm.sock"),
            process: Arc::from("php-fpm8.2"),
            length: 5,
            limit: 4,
            peak: 5,
        });
        tcp.breakdown
            .unaccepted
            .push((PortLabel::Port(8082), TcpState::CloseWait, 3));
        assert_eq!(
            holds_anomaly(&tcp, &unix, &t),
            Some(Severity {
                sockets: 1 + 5 + 3,
                anomalies: 3
            })
        );
    }

    #[test]
    fn fills_compare_exactly() {
        assert_eq!(cmp_fill((5, 4), (4096, 4096)), Ordering::Greater);
        assert_eq!(cmp_fill((1, 3), (2, 6)), Ordering::Equal);
        assert_eq!(cmp_fill((0, 0), (1, 0)), Ordering::Less);
    }
}
