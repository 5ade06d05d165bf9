//! The poller's settings from the configuration ([`PollerConfig::from`]).

use std::path::PathBuf;
use std::time::Duration;

use super::super::*;
use crate::poll::{PollerConfig, Scope};

fn load(text: &str) -> Config {
    let flags = Flags {
        config_file: Some("poller.toml".into()),
        ..Flags::default()
    };
    Config::load_text(&flags, Some(text), Vec::new()).expect("valid config")
}

/// benches/poll/measure.rs built its poller settings with a copy of this conversion that
/// dropped `netns.docker_root` and `netns.bind_roots` (and took the other netns fields
/// from the defaults): every setting the poller has must come from the configuration.
#[test]
fn every_poller_setting_comes_from_the_config_the_bench_copy_dropped_the_netns_roots() {
    let config = load(
        "poll_interval = \"5s\"\nlisten_poll_interval = \"2s\"\nclose_wait_capacity = 7\n\
         namespaces = \"own\"\nmax_ports = 3\n[netns]\nmax_namespaces = 4\nconcurrency = 6\n\
         docker_root = \"/srv/docker\"\nbind_roots = [\"/run/a\", \"/run/b\"]\nmax_peers = 9\n",
    );
    let poller = PollerConfig::from(&config);
    assert_eq!(poller.poll_interval, Duration::from_secs(5));
    assert_eq!(poller.listen_poll_interval, Some(Duration::from_secs(2)));
    assert_eq!(poller.settings, config.settings);
    assert_eq!(poller.settings.max_ports, 3);
    assert_eq!(poller.settings.netns.max_peers, 9);
    assert_eq!(poller.close_wait_capacity, 7);
    assert_eq!(poller.scope, Scope::Own);
    assert_eq!(poller.max_namespaces, 4);
    assert_eq!(poller.netns_concurrency, 6);
    assert_eq!(poller.sources.docker_root, PathBuf::from("/srv/docker"));
    assert_eq!(
        poller.sources.bind_roots,
        vec![PathBuf::from("/run/a"), PathBuf::from("/run/b")]
    );
    assert_eq!(poller.sources.proc_root, PathBuf::from("/proc"));
}

#[test]
fn listen_sampler_no_faster_than_the_poll_is_off() {
    for (listen, expected) in [
        ("4s", Some(Duration::from_secs(4))),
        ("5s", None),
        ("6s", None),
        ("0s", None),
    ] {
        let config = load(&format!(
            "poll_interval = \"5s\"\nlisten_poll_interval = \"{listen}\"\n"
        ));
        assert_eq!(
            PollerConfig::from(&config).listen_poll_interval,
            expected,
            "listen_poll_interval = {listen}"
        );
    }
}

/// The configuration's defaults are the poller's (one definition, in
/// `PollerConfig::new`), and convert back to them.
#[test]
fn default_config_converts_to_the_default_poller() {
    let config = Config::default();
    let poller = PollerConfig::from(&config);
    let new = PollerConfig::new(Duration::from_secs(15), Some(Duration::from_secs(1)));
    assert_eq!(
        (
            poller.poll_interval,
            poller.listen_poll_interval,
            &poller.settings,
            poller.close_wait_capacity,
            poller.scope,
            &poller.sources,
            poller.netns_concurrency,
            poller.max_namespaces,
        ),
        (
            new.poll_interval,
            new.listen_poll_interval,
            &new.settings,
            new.close_wait_capacity,
            new.scope,
            &new.sources,
            new.netns_concurrency,
            new.max_namespaces,
        )
    );
}

/// `listen_poll_interval = "0s"` and `[collectors] listen_sampler = false` are one switch:
/// either turns the sampler off, and the collectors reported say so.
#[test]
fn listen_poll_interval_0s_and_the_sampler_toggle_are_one_switch() {
    use crate::collectors::CollectorKind::ListenSampler;
    for text in [
        "listen_poll_interval = \"0s\"\n",
        "listen_poll_interval = \"1s\"\n[collectors]\nlisten_sampler = false\n",
        "listen_poll_interval = \"0s\"\n[collectors]\nlisten_sampler = true\n",
    ] {
        let poller = PollerConfig::from(&load(text));
        assert_eq!(poller.listen_poll_interval, None, "{text}");
        assert!(!poller.collectors().enabled(ListenSampler), "{text}");
    }
    let poller = PollerConfig::from(&load("listen_poll_interval = \"1s\"\n"));
    assert_eq!(poller.listen_poll_interval, Some(Duration::from_secs(1)));
    assert!(poller.collectors().enabled(ListenSampler));
}

#[test]
fn collector_toggles_reach_the_poller() {
    use crate::collectors::CollectorKind::{Netstat, Unix};
    let poller = PollerConfig::from(&load("[collectors]\nunix = false\n"));
    assert!(!poller.collectors().enabled(Unix));
    assert!(poller.collectors().enabled(Netstat));
}
