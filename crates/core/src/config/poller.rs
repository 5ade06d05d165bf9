//! The poller's settings from the configuration: the one conversion the daemon, `report`
//! and the benches use.

use super::types::Config;
use crate::collectors::CollectorKind;
use crate::poll::PollerConfig;

impl From<&Config> for PollerConfig {
    fn from(config: &Config) -> PollerConfig {
        let mut poller = PollerConfig {
            settings: config.settings.clone(),
            close_wait_capacity: config.close_wait_capacity,
            scope: config.namespaces,
            netns_concurrency: config.netns.concurrency,
            max_namespaces: config.netns.max_namespaces,
            ..PollerConfig::new(
                config.poll_interval,
                // The sampler runs when its toggle is on and `listen_poll_interval` is not
                // 0s: `0s` is the toggle's older spelling. A sampler no faster than the
                // main poll would see nothing the poll does not: it is off too.
                config
                    .listen_poll_interval
                    .filter(|interval| *interval < config.poll_interval)
                    .filter(|_| config.collectors.enabled(CollectorKind::ListenSampler)),
            )
        };
        poller.collectors = config.collectors;
        poller.sources.docker_root = config.netns.docker_root.clone();
        poller.sources.bind_roots = config.netns.bind_roots.clone();
        poller
    }
}
