//! The exporter against containers of real runtimes (see [`rig`]): Docker, containerd run
//! the way a kubelet runs it, and Podman, each container with a network namespace of its
//! own holding loopback only (a CLOSE_WAIT leak; in Docker, also a UDP receiver that
//! drops). The exporter runs in a private namespace, sampling every namespace, and names
//! each container from the runtime's own state on disk. Every container is removed by id
//! when its guard drops, assertion failures included.

mod churn;
mod compose;
mod containers;
mod naming;
pub mod rig;
mod udp;

use std::collections::BTreeMap;

use crate::exporter::{Exporter, Scrape};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        naming::docker_close_wait_leak_is_named_with_exact_series,
        naming::containerd_pod_run_as_a_kubelet_does_is_named_by_pod,
        naming::podman_container_is_named,
        naming::docker_rename_is_followed_within_one_poll,
        naming::a_stopped_containers_series_go_and_no_fd_of_its_namespace_stays,
        naming::broken_runtime_state_is_named_by_id_counted_and_logged_once,
        compose::compose_exporter_service_with_exactly_its_settings_names_the_other_containers,
        churn::fifty_containers_churning_for_60_s_leave_no_poll_error_and_no_stale_name,
        udp::docker_udp_receiver_drops_equal_ss_in_the_container,
    ]
}

/// Removes what the rig made; once, after every test ran.
pub fn teardown() {
    rig::teardown();
}

/// A tag unique to this test process and call, for container names.
pub fn tag() -> String {
    crate::cgroups::unique_tag()
}

/// The exporter, sampling every namespace, polling every second, first poll done.
pub fn exporter(env: &[(&str, &str)]) -> Exporter {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let args = ["--namespaces=all", "--poll.interval=1s"];
    let mut exporter = Exporter::start_with(10120, &args, |command| {
        command.env("SOCKDIAG_LISTEN_POLL_INTERVAL", "0s").envs(env);
    });
    exporter.wait_for_poll();
    exporter
}

/// The labels of `sockdiag_netns_info` for the namespace with this inode (`netns`
/// included); `None` when it has no info.
pub fn info(scrape: &Scrape, inode: u64) -> Option<BTreeMap<String, String>> {
    let needle = format!("inode=\"{inode}\"");
    scrape.samples.keys().find_map(|series| {
        let labels = series
            .strip_prefix("sockdiag_netns_info{")?
            .strip_suffix('}')?;
        labels.contains(&needle).then(|| parse_labels(labels))
    })
}

/// `a="1",b="x,y"` as a map (values without escaped quotes, as the tests' names are).
pub fn parse_labels(labels: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut rest = labels;
    while let Some((key, tail)) = rest.split_once("=\"") {
        let (value, tail) = tail.split_once('"').expect("closing quote");
        map.insert(key.to_string(), value.to_string());
        rest = tail.strip_prefix(',').unwrap_or(tail);
    }
    map
}
