//! Collector toggles against a real exporter: a collector turned off by flag, by the
//! config file or by the environment has no family in /metrics, and
//! `sockdiag_collector_enabled` says so; the others are untouched.

use std::collections::BTreeMap;

use crate::exporter::Exporter;
use crate::netns::in_netns;

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        no_collector_unix_drops_every_unix_family,
        collectors_off_in_the_file_and_the_environment_drop_their_families,
    ]
}

/// `sockdiag_collector_enabled`, collector -> value.
fn enabled(exporter: &Exporter) -> BTreeMap<String, f64> {
    exporter.scrape().family("sockdiag_collector_enabled")
}

/// The names of the families of a scrape that start with `prefix`.
fn families(exporter: &Exporter, prefix: &str) -> Vec<String> {
    exporter
        .scrape()
        .text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

fn switched(unix: u8, netstat: u8, sysctl: u8, sampler: u8, udp: u8) -> BTreeMap<String, f64> {
    [
        ("unix", unix),
        ("netstat", netstat),
        ("sysctl", sysctl),
        ("listen_sampler", sampler),
        ("udp", udp),
    ]
    .into_iter()
    .map(|(name, on)| (format!("{{collector=\"{name}\"}}"), f64::from(on)))
    .collect()
}

fn no_collector_unix_drops_every_unix_family() {
    in_netns(|| {
        // Our own namespace is a full one: with the collector on, every UNIX pair is
        // exported, zeros included.
        let mut on = Exporter::start(10120, &["--poll.interval=1h"]);
        on.wait_for_poll();
        assert!(families(&on, "sockdiag_unix_").contains(&"sockdiag_unix_sockets".to_string()));
        assert_eq!(enabled(&on), switched(1, 1, 1, 1, 1));
        drop(on);

        let mut off = Exporter::start(10121, &["--poll.interval=1h", "--no-collector.unix"]);
        off.wait_for_poll();
        assert_eq!(families(&off, "sockdiag_unix_"), Vec::<String>::new());
        assert_eq!(enabled(&off), switched(0, 1, 1, 1, 1));
        assert!(
            !families(&off, "sockdiag_tcp_sockets").is_empty(),
            "TCP stays"
        );
    });
}

fn collectors_off_in_the_file_and_the_environment_drop_their_families() {
    in_netns(|| {
        let config =
            std::env::temp_dir().join(format!("sockdiag-collectors-{}.toml", std::process::id()));
        std::fs::write(&config, "[collectors]\nsysctl = false\n").expect("write config");
        let file = format!("--config.file={}", config.display());
        let mut exporter = Exporter::start_with(10120, &["--poll.interval=1h", &file], |c| {
            c.env("SOCKDIAG_COLLECTORS__NETSTAT", "false");
        });
        exporter.wait_for_poll();
        let _ = std::fs::remove_file(&config);
        assert_eq!(
            families(&exporter, "sockdiag_sysctl_"),
            Vec::<String>::new()
        );
        let counters = [
            "sockdiag_tcp_listen_overflows",
            "sockdiag_tcp_active_opens",
            "sockdiag_tcp_passive_opens",
        ];
        for family in counters {
            assert_eq!(
                families(&exporter, family),
                Vec::<String>::new(),
                "{family}"
            );
        }
        assert_eq!(enabled(&exporter), switched(1, 0, 0, 1, 1));
        let scrape = exporter.scrape();
        // Only the port range is read with the sysctls off: TCP's ephemeral figures stay.
        assert!(scrape.value("sockdiag_tcp_ephemeral_port_range_size") > 0.0);
        assert_eq!(
            scrape.lines("sockdiag_kernel_values_missing"),
            ["{source=\"sysctl\"} 0"]
        );
    });
}
