//! The namespace cap against crowds, with the default config: a node of 110 healthy pods
//! beside one that leaks, and a user without privileges who makes a hundred network
//! namespaces of their own (`unshare -Urn`, as uid 65534), each fuller and leakier than a
//! real container's. Neither may fold the leak into `netns="other"`.
//!
//! Every socket lives in a namespace the test made, on loopback; the exporter runs in a
//! private namespace of its own. Actors are stopped by pid and the cgroups removed when the
//! [`Crowd`] drops, assertion failures included.

use std::net::TcpStream;
use std::path::{Path, PathBuf};

use crate::actor::Actor;
use crate::cgroups::{random_container_id, unique_tag, write_docker_config, Cgroups};
use crate::exporter::{Exporter, Scrape};
use crate::load;
use crate::netns::{in_netns, output};

/// Kubernetes' default `maxPods`.
const PODS: usize = 110;
/// Connections each healthy pod holds.
const POD_CONNECTIONS: &str = "40";
/// CLOSE_WAIT sockets the leak holds.
const LEAK: usize = 20;

/// Processes in namespaces of their own, and the cgroups they sit in.
struct Crowd {
    /// Dropped (killed by pid) before the cgroups are removed.
    actors: Vec<Actor>,
    cgroups: Cgroups,
    temp: PathBuf,
}

impl Crowd {
    fn new() -> Crowd {
        let temp = std::env::temp_dir().join(format!("sockdiag-it-crowd-{}", unique_tag()));
        std::fs::create_dir_all(&temp).expect("create temp dir");
        Crowd {
            actors: Vec::new(),
            cgroups: Cgroups::default(),
            temp,
        }
    }

    /// A pod's container in a kubepods cgroup, in a namespace of its own; returns the
    /// container id.
    fn pod(&mut self, actor: impl FnOnce() -> Actor + Send + 'static) -> String {
        let id = random_container_id();
        let pod_uid = random_container_id()[..32].to_string();
        let actor = in_netns(actor);
        let cgroup = Path::new("kubepods.slice/kubepods-besteffort.slice")
            .join(format!("kubepods-besteffort-pod{pod_uid}.slice"))
            .join(format!("cri-containerd-{id}.scope"));
        self.cgroups.move_into(&cgroup, actor.pid());
        self.actors.push(actor);
        id
    }

    /// A Docker container named `name` in a namespace of its own; returns its id.
    fn docker(&mut self, name: &str, actor: impl FnOnce() -> Actor + Send + 'static) -> String {
        let id = random_container_id();
        let actor = in_netns(actor);
        let cgroup = Path::new("system.slice").join(format!("docker-{id}.scope"));
        self.cgroups.move_into(&cgroup, actor.pid());
        self.actors.push(actor);
        write_docker_config(&self.temp.join("docker"), &id, name);
        id
    }

    /// A copy of the test binary that uid 65534 may execute.
    fn binary_for_nobody(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.temp.join("bin");
        std::fs::create_dir_all(&dir).expect("create bin dir");
        for path in [&self.temp, &dir] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let bin = dir.join("integration");
        std::fs::copy(std::env::current_exe().expect("own path"), &bin).expect("copy");
        bin
    }

    /// The exporter with the default config but `env`, in a namespace of its own, after
    /// its first poll.
    fn scrape(&self, env: &[(&str, &str)]) -> Scrape {
        let docker_root = self.temp.join("docker");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        in_netns(move || {
            let mut exporter = Exporter::start_with(
                10120,
                &["--namespaces=all", "--poll.interval=1h"],
                |command| {
                    command
                        .env("SOCKDIAG_NETNS__DOCKER_ROOT", &docker_root)
                        .envs(env);
                },
            );
            exporter.wait_for_poll();
            exporter.scrape_all()
        })
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.actors.clear();
        if let Err(e) = std::fs::remove_dir_all(&self.temp) {
            eprintln!("cleanup: {}: {e}", self.temp.display());
        }
    }
}

/// `leaky-app` on 127.0.0.1:8081 with [`LEAK`] connections whose clients closed: the
/// server never closes its end (CLOSE_WAIT).
fn leaky_app() -> Actor {
    let leak = LEAK.to_string();
    let server = Actor::start("leaky-app", "accept-and-hold", &["127.0.0.1:8081", &leak]);
    for _ in 0..LEAK {
        drop(TcpStream::connect("127.0.0.1:8081").expect("connect"));
    }
    load::wait_for(|| close_wait_here() == LEAK);
    server
}

/// CLOSE_WAIT sockets in the calling thread's namespace.
fn close_wait_here() -> usize {
    output("ss", &["-Htn", "state", "close-wait"])
        .lines()
        .count()
}

/// The leak's series under `netns`.
fn leak_series(netns: &str) -> String {
    format!(
        "sockdiag_tcp_port_sockets{{netns=\"{netns}\",direction=\"inbound\",port=\"8081\",\
         process=\"leaky-app\",state=\"close_wait\"}}"
    )
}

/// 110 pods, each holding 40 connections, and one more pod whose `leaky-app` holds 20
/// CLOSE_WAIT on :8081: the leaking pod keeps its namespace label, port, process and 20.
fn a_leaking_pod_among_110_keeps_its_port_process_and_count() {
    let mut crowd = Crowd::new();
    for _ in 0..PODS {
        crowd.pod(|| Actor::start("pod-app", "pile", &["127.0.0.1:80", POD_CONNECTIONS, "0"]));
    }
    let leaky = crowd.pod(leaky_app);
    let scrape = crowd.scrape(&[]);
    let netns = &leaky[..12];
    assert_eq!(scrape.value(&leak_series(netns)), LEAK as f64);
    assert!(
        scrape
            .text
            .contains(&format!("sockdiag_netns_info{{netns=\"{netns}\"")),
        "the leaking pod's info stays with its label"
    );
    // Every healthy pod keeps its label too at the default cap.
    let kept = scrape
        .lines("sockdiag_tcp_sockets")
        .iter()
        .filter(|line| line.contains("state=\"established\"") && line.ends_with(" 80"))
        .count();
    assert!(kept >= PODS, "{kept} pods of {PODS} kept their label");
}

/// A hundred network namespaces made by uid 65534 through user namespaces, each holding
/// more sockets than a real container and a CLOSE_WAIT pile of 60 (an anomaly by the
/// alert's threshold, where the container's 20 is not): the container's leak keeps its
/// label at the default cap, and at a cap of 10, where the crowd must fold.
fn a_hundred_user_made_namespaces_do_not_fold_a_containers_leak() {
    let mut crowd = Crowd::new();
    let bin = crowd.binary_for_nobody();
    for _ in 0..100 {
        let actor = Actor::start_in_user_netns(&bin, "a", "pile", &["127.0.0.1:9000", "25", "60"]);
        crowd.actors.push(actor);
    }
    let id = crowd.docker("real-looper", leaky_app);
    let netns = &id[..12];
    for cap in [None, Some("10")] {
        let env: Vec<(&str, &str)> = cap
            .map(|cap| ("SOCKDIAG_NETNS__MAX_NAMESPACES", cap))
            .into_iter()
            .collect();
        let scrape = crowd.scrape(&env);
        assert_eq!(
            scrape.value(&leak_series(netns)),
            LEAK as f64,
            "cap {cap:?}"
        );
        assert!(
            scrape
                .text
                .contains(&format!("sockdiag_netns_info{{netns=\"{netns}\",inode=\"")),
            "cap {cap:?}: the container's info stays"
        );
        if cap.is_some() {
            // 10 by the cap, 10 more by the anomaly ceiling; the rest of the crowd folds,
            // counted as anomalous.
            let folded = scrape.value("sockdiag_folded_anomalies{netns=\"\",kind=\"netns\"}");
            assert!(folded >= 80.0, "{folded} anomalous namespaces folded");
        }
    }
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        a_leaking_pod_among_110_keeps_its_port_process_and_count,
        a_hundred_user_made_namespaces_do_not_fold_a_containers_leak,
    ]
}
