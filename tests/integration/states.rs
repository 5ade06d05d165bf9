//! `sockdiag_tcp_sockets` against a known population and against `ss -tan`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::exporter::Exporter;
use crate::load::{self, Counts, Load};
use crate::netns::in_netns;

const STATES: [&str; 12] = [
    "established",
    "syn_sent",
    "syn_recv",
    "fin_wait1",
    "fin_wait2",
    "time_wait",
    "close",
    "close_wait",
    "last_ack",
    "listen",
    "closing",
    "unknown",
];

fn every_state_count_is_exact_and_matches_ss() {
    in_netns(|| {
        let mut sockets = Load::default();
        let mut expected = Counts::new();
        load::mixed(
            &mut sockets,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            8000,
            &mut expected,
        );
        load::mixed(
            &mut sockets,
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            8000,
            &mut expected,
        );
        // The exporter's own listener.
        *expected.entry(("ipv4", "listen")).or_default() += 1;
        // Let the TIME_WAIT handshakes finish (LAST_ACK gone) before anything is counted.
        let mut without_exporter = expected.clone();
        *without_exporter.get_mut(&("ipv4", "listen")).unwrap() -= 1;
        load::wait_for(|| load::ss_counts() == without_exporter);

        // A long interval: the poll at start is the only one, and no scrape connection can
        // be open while it runs.
        let mut exporter = Exporter::start(10120, &["--poll.interval=1h"]);
        exporter.wait_for_poll();
        let scrape = exporter.scrape();
        let ss = load::ss_counts();
        for family in ["ipv4", "ipv6"] {
            for state in STATES {
                let series =
                    format!("sockdiag_tcp_sockets{{family=\"{family}\",state=\"{state}\"}}");
                let want = expected.get(&(family, state)).copied().unwrap_or(0);
                assert_eq!(scrape.value(&series), want as f64, "{series}");
                assert_eq!(
                    ss.get(&(family, state)).copied().unwrap_or(0),
                    want,
                    "ss -tan for {family} {state}"
                );
            }
        }
        assert_eq!(
            scrape.family("sockdiag_tcp_sockets").len(),
            24,
            "exactly 2 families x 12 states"
        );
        // Records read: these TCP sockets, and every UNIX socket of the namespace.
        let unix: f64 = scrape.family("sockdiag_unix_sockets").values().sum();
        let total: u64 = expected.values().sum();
        assert_eq!(
            scrape.value("sockdiag_sockets_scanned"),
            total as f64 + unix
        );
        drop(sockets);
    });
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![every_state_count_is_exact_and_matches_ss]
}
