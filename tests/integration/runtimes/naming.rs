//! A container of each runtime named from the runtime's own state: Docker's
//! `config.v2.json`, the CRI annotations of a containerd bundle, Podman's conmon; a
//! `docker rename` followed within one poll; a stopped container's series gone with no
//! fd of its namespace kept.

use super::containers::{Container, Pod, Program, LEAKER};
use super::{exporter, info, rig, tag};
use crate::netns::in_netns;

/// The leak's series under the container's `netns` label, exactly: the actor's accepted
/// sockets in CLOSE_WAIT, the clients it closed in FIN_WAIT2.
fn assert_leak(scrape: crate::exporter::Scrape, inode: u64, n: usize) {
    let ns = scrape.only_netns(inode);
    assert_eq!(
        ns.lines("sockdiag_tcp_port_sockets"),
        vec![
            format!("{{direction=\"inbound\",port=\"8080\",process=\"{LEAKER}\",state=\"close_wait\"}} {n}"),
            format!("{{direction=\"outbound\",port=\"8080\",process=\"\",state=\"fin_wait2\"}} {n}"),
        ]
    );
}

pub fn docker_close_wait_leak_is_named_with_exact_series() {
    rig::ensure();
    let name = format!("sockdiag-it-leak-{}", tag());
    let container = Container::docker(&name, Program::Leak(3), &[]);
    in_netns(move || {
        let exporter = exporter(&[]);
        let inode = container.netns_inode();
        let all = exporter.scrape_all();
        let info = info(&all, inode).expect("info of the Docker container's namespace");
        assert_eq!(info["netns"], container.id[..12]);
        assert_eq!(info["container_id"], container.id);
        assert_eq!(info["container_name"], name);
        assert_eq!(info["runtime"], "docker");
        assert_eq!(info["pod_uid"], "");
        assert_leak(all, inode, 3);
    });
}

pub fn containerd_pod_run_as_a_kubelet_does_is_named_by_pod() {
    rig::ensure();
    let pod_name = format!("web-{}", tag());
    let pod = Pod::run("shop", &pod_name, Program::Leak(2));
    in_netns(move || {
        let exporter = exporter(&[]);
        let inode = pod.sandbox.netns_inode();
        let all = exporter.scrape_all();
        let info = info(&all, inode).expect("info of the pod's namespace");
        // The sandbox starts first: its id names the namespace.
        assert_eq!(info["netns"], pod.sandbox.id[..12]);
        assert_eq!(info["container_id"], pod.sandbox.id);
        assert_eq!(info["pod_uid"], pod.uid);
        assert_eq!(info["runtime"], "containerd");
        assert_eq!(info.get("pod_name"), Some(&pod_name));
        assert_eq!(info.get("pod_namespace").map(String::as_str), Some("shop"));
        assert_eq!(info["container_name"], "");
        assert_leak(all, inode, 2);
        // `report` names it as a person would, and keeps the id in its JSON.
        let shown = format!("shop/{pod_name}");
        let text = report(&[]);
        assert!(
            text.lines()
                .any(|line| line.split_whitespace().next() == Some(shown.as_str())),
            "no line for {shown}:\n{text}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&report(&["--json"])).expect("report --json");
        let row = json["states"]
            .as_array()
            .expect("states")
            .iter()
            .find(|row| row["netns"] == pod.sandbox.id[..12])
            .expect("a row of the pod's namespace");
        assert_eq!(row["netns_name"], shown.as_str());
    });
}

/// A pod whose bundle holds malformed JSON and one whose bundle is a symlink out of
/// containerd's state (to a spec naming another pod): each namespace keeps its id label
/// and what the cgroup path says, the failures are counted once and logged once.
pub fn broken_runtime_state_is_named_by_id_counted_and_logged_once() {
    rig::ensure();
    let _exclusive = rig::errors_exclusive();
    let tag = tag();
    let malformed = Pod::run("shop", &format!("bad-json-{tag}"), Program::Sleep);
    let escaping = Pod::run("shop", &format!("bad-link-{tag}"), Program::Sleep);
    let bundle = |pod: &Pod| {
        format!(
            "/run/containerd/io.containerd.runtime.v2.task/k8s.io/{}/config.json",
            pod.sandbox.id
        )
    };
    // containerd read the bundle when it started the task; it never reads it again.
    std::fs::write(bundle(&malformed), "{\"annotations\":").expect("break the bundle");
    // The original, moved out of the state directory, then named otherwise.
    let outside = std::env::temp_dir().join(format!("sockdiag-it-outside-{tag}.json"));
    let spec = std::fs::read_to_string(bundle(&escaping)).expect("read the bundle");
    std::fs::write(&outside, spec.replace(&format!("bad-link-{tag}"), "evil")).unwrap();
    std::fs::remove_file(bundle(&escaping)).expect("remove the bundle");
    std::os::unix::fs::symlink(&outside, bundle(&escaping)).expect("link the bundle out");
    let _outside = Removed(outside);
    in_netns(move || {
        let mut exporter = exporter(&[]);
        for _ in 0..3 {
            exporter.wait_for_fresh_poll();
        }
        let all = exporter.scrape_all();
        for pod in [&malformed, &escaping] {
            let info = info(&all, pod.sandbox.netns_inode()).expect("info of the pod");
            assert_eq!(info["netns"], pod.sandbox.id[..12]);
            assert_eq!(info["container_id"], pod.sandbox.id);
            assert_eq!(info["pod_uid"], pod.uid);
            // The cgroupfs path does not say the runtime; the state that would is broken.
            assert_eq!(info["runtime"], "");
            assert_eq!(info["pod_name"], "");
        }
        assert_eq!(
            all.value("sockdiag_poll_errors_total{stage=\"attribution\"}"),
            1.0
        );
        exporter.drain_log();
        for (pod, why) in [
            (&malformed, "EOF while parsing a value at line 1 column 15"),
            (
                &escaping,
                "leads out of /run/containerd/io.containerd.runtime.v2.task",
            ),
        ] {
            let path = bundle(pod);
            let logged: Vec<&String> = exporter
                .log_lines
                .iter()
                .filter(|line| line.contains(&path))
                .collect();
            assert_eq!(logged.len(), 1, "{path} logged {logged:?}");
            assert!(logged[0].contains(why), "{}", logged[0]);
        }
    });
}

/// A file removed when dropped.
struct Removed(std::path::PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `sockdiag_exporter report --namespaces=all ARGS`, run in the calling thread's namespace:
/// its standard output.
fn report(args: &[&str]) -> String {
    let out = std::process::Command::new(crate::exporter::BIN)
        .args(["report", "--namespaces=all"])
        .args(args)
        .env_clear()
        .output()
        .expect("run sockdiag_exporter report");
    String::from_utf8(out.stdout).expect("utf-8 report")
}

pub fn podman_container_is_named() {
    rig::ensure();
    let name = format!("sockdiag-it-podman-{}", tag());
    let container = Container::podman(&name, Program::Leak(2));
    in_netns(move || {
        let exporter = exporter(&[]);
        let inode = container.netns_inode();
        let all = exporter.scrape_all();
        let info = info(&all, inode).expect("info of the Podman container's namespace");
        assert_eq!(info["netns"], container.id[..12]);
        assert_eq!(info["container_name"], name);
        assert_eq!(info["runtime"], "podman");
        assert_leak(all, inode, 2);
    });
}

pub fn docker_rename_is_followed_within_one_poll() {
    rig::ensure();
    let tag = tag();
    let (before, after) = (
        format!("sockdiag-it-before-{tag}"),
        format!("sockdiag-it-after-{tag}"),
    );
    let container = Container::docker(&before, Program::Sleep, &[]);
    in_netns(move || {
        let mut exporter = exporter(&[]);
        let inode = container.netns_inode();
        let named = |exporter: &crate::exporter::Exporter| {
            info(&exporter.scrape_all(), inode).expect("info")["container_name"].clone()
        };
        assert_eq!(named(&exporter), before);
        rig::run("docker", &["rename", &before, &after]);
        exporter.wait_for_fresh_poll();
        assert_eq!(named(&exporter), after);
        // The label is the id: a rename moves no series.
        assert_eq!(
            info(&exporter.scrape_all(), inode).expect("info")["netns"],
            container.id[..12]
        );
    });
}

pub fn a_stopped_containers_series_go_and_no_fd_of_its_namespace_stays() {
    rig::ensure();
    let name = format!("sockdiag-it-stop-{}", tag());
    let mut container = Container::docker(&name, Program::Leak(2), &[]);
    in_netns(move || {
        let mut exporter = exporter(&[]);
        let inode = container.netns_inode();
        let label = container.id[..12].to_string();
        assert_leak(exporter.scrape_all(), inode, 2);
        container.remove();
        exporter.wait_for_fresh_poll();
        let all = exporter.scrape_all();
        let ours = format!("netns=\"{label}\"");
        let left: Vec<&String> = all.samples.keys().filter(|s| s.contains(&ours)).collect();
        assert!(left.is_empty(), "series of the stopped container: {left:?}");
        // No fd of the exporter (nor of any of its threads) still holds the namespace.
        let target = format!("net:[{inode}]");
        let held: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", exporter.pid()))
            .expect("list the exporter's fds")
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .map(|link| link.display().to_string())
            .filter(|link| *link == target)
            .collect();
        assert_eq!(held, Vec::<String>::new());
        // Nor is any thread still inside it.
        let inside = std::fs::read_dir(format!("/proc/{}/task", exporter.pid()))
            .expect("list the exporter's threads")
            .flatten()
            .filter(|task| {
                std::fs::read_link(task.path().join("ns/net"))
                    .is_ok_and(|link| link.display().to_string() == target)
            })
            .count();
        assert_eq!(inside, 0);
    });
}
