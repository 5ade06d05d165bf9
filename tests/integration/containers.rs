//! The exporter across network namespaces: the incidents reproduced inside three
//! namespaces of different kinds (an `ip netns` one, one in a cgroup named like a Docker
//! container, one in a kubepods cgroup), each asserted as exact labelled values under its
//! own `netns` label, with `sockdiag_netns_info`; the namespace cap folding them into
//! `other`; a namespace deleted between polls and namespaces churning during polls; the
//! degraded mode without the privileges to enter namespaces.
//!
//! Every socket lives in a namespace the test made, on loopback; the exporter runs in a
//! private namespace of its own; every process is stopped by pid and every cgroup,
//! namespace and file removed on drop, assertion failures included.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::actor::Actor;
use crate::cgroups::{random_container_id, unique_tag, write_docker_config, Cgroups};
use crate::exporter::{own_netns_inode, Exporter, Scrape};
use crate::load;
use crate::netns::{in_netns, in_netns_file, output};

const POD_UID: &str = "0c9d8e7f-6a5b-4c3d-8e1f-2a3b4c5d6e7f";
const DOCKER_NAME: &str = "sockdiag-it-api";

/// Three namespaces, each with an incident, torn down on drop.
struct Incidents {
    named: String,
    named_inode: u64,
    docker_id: String,
    docker_inode: u64,
    kube_id: String,
    kube_inode: u64,
    /// Every actor, in every namespace; dropped (killed by pid) before the cgroups.
    actors: Vec<Actor>,
    cgroups: Cgroups,
    temp: PathBuf,
    named_deleted: bool,
}

impl Incidents {
    fn build() -> Incidents {
        let tag = unique_tag();
        let mut scene = Incidents {
            named: format!("sockdiag-it-inc-{tag}"),
            named_inode: 0,
            docker_id: random_container_id(),
            docker_inode: 0,
            kube_id: random_container_id(),
            kube_inode: 0,
            actors: Vec::new(),
            cgroups: Cgroups::default(),
            temp: std::env::temp_dir().join(format!("sockdiag-it-containers-{tag}")),
            named_deleted: false,
        };
        // Incident 1 in an `ip netns`: a server that never closes after the peer's FIN.
        output("ip", &["netns", "add", &scene.named]);
        output("ip", &["-n", &scene.named, "link", "set", "lo", "up"]);
        let path = Path::new("/run/netns").join(&scene.named);
        let (inode, actors) = in_netns_file(&path, || {
            let server = Actor::start("leaky-server", "accept-and-hold", &["127.0.0.1:8080", "5"]);
            for _ in 0..5 {
                drop(TcpStream::connect("127.0.0.1:8080").expect("connect"));
            }
            load::wait_for(|| ss_count("close-wait") == 5);
            vec![server]
        });
        scene.named_inode = inode;
        scene.actors.extend(actors);

        // Incident 3 in a Docker-like container: a client leaks what the MySQL LB closed.
        let (inode, actors) = in_netns(|| {
            let mysql = Actor::start("mysql-lb", "accept-and-close", &["127.0.0.1:3306", "4"]);
            let client = Actor::start("go-service", "connect-and-hold", &["127.0.0.1:3306", "4"]);
            load::wait_for(|| ss_count("close-wait") == 4);
            (own_netns_inode(), vec![mysql, client])
        });
        scene.docker_inode = inode;
        let docker_cgroup =
            Path::new("system.slice").join(format!("docker-{}.scope", scene.docker_id));
        for actor in &actors {
            scene.cgroups.move_into(&docker_cgroup, actor.pid());
        }
        scene.actors.extend(actors);
        write_docker_config(&scene.docker_root(), &scene.docker_id, DOCKER_NAME);

        // Incident 5 in a pod: a listener that never accepts, its clients gone.
        let (inode, actors) = in_netns(|| {
            let server = Actor::start("cpp-server", "listen-no-accept", &["127.0.0.1:8081", "8"]);
            for _ in 0..5 {
                drop(TcpStream::connect("127.0.0.1:8081").expect("connect"));
            }
            load::wait_for(|| ss_count("close-wait") == 5);
            (own_netns_inode(), vec![server])
        });
        scene.kube_inode = inode;
        let kube_cgroup = Path::new("kubepods.slice/kubepods-besteffort.slice")
            .join(format!(
                "kubepods-besteffort-pod{}.slice",
                POD_UID.replace('-', "_")
            ))
            .join(format!("cri-containerd-{}.scope", scene.kube_id));
        for actor in &actors {
            scene.cgroups.move_into(&kube_cgroup, actor.pid());
        }
        scene.actors.extend(actors);
        scene
    }

    fn docker_root(&self) -> PathBuf {
        self.temp.join("docker")
    }

    /// The exporter in a private namespace of its own, sampling every namespace, polled
    /// once (`extra` env on top).
    fn exporter(&self, port: u16, env: &[(&str, &str)]) -> Exporter {
        let docker_root = self.docker_root();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args = ["--namespaces=all", "--poll.interval=1h"];
        let mut exporter = Exporter::start_with(port, &args, |command| {
            command
                .env("SOCKDIAG_NETNS__DOCKER_ROOT", &docker_root)
                .env("SOCKDIAG_LISTEN_POLL_INTERVAL", "0s")
                .envs(env);
        });
        exporter.wait_for_poll();
        exporter
    }

    fn delete_named(&mut self) {
        // Its processes first: the namespace then has nothing but the bind mount.
        self.actors.remove(0);
        output("ip", &["netns", "delete", &self.named]);
        self.named_deleted = true;
    }
}

impl Drop for Incidents {
    fn drop(&mut self) {
        self.actors.clear();
        if !self.named_deleted {
            let _ = Command::new("ip")
                .args(["netns", "delete", &self.named])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.temp);
    }
}

/// Sockets of the calling thread's namespace in `state` (ss's name).
fn ss_count(state: &str) -> usize {
    output("ss", &["-H", "-tan", "state", state])
        .lines()
        .count()
}

fn port_lines(scrape: &Scrape) -> Vec<String> {
    scrape.lines("sockdiag_tcp_port_sockets")
}

/// Incidents 1, 3 and 5, each in a namespace of another kind, named by its own label.
fn incidents_inside_containers_are_named_by_their_namespace() {
    let scene = Incidents::build();
    in_netns(move || {
        let exporter = scene.exporter(10120, &[]);
        let all = exporter.scrape_all();
        let docker_label = &scene.docker_id[..12];
        let kube_label = &scene.kube_id[..12];
        assert_eq!(
            all.netns_label(scene.named_inode).as_deref(),
            Some(&*scene.named)
        );
        assert_eq!(
            all.netns_label(scene.docker_inode).as_deref(),
            Some(docker_label)
        );
        assert_eq!(
            all.netns_label(scene.kube_inode).as_deref(),
            Some(kube_label)
        );
        assert_eq!(
            all.value(&format!(
                "sockdiag_netns_info{{netns=\"{docker_label}\",inode=\"{}\",container_id=\"{}\",container_name=\"{DOCKER_NAME}\",pod_name=\"\",pod_namespace=\"\",pod_uid=\"\",runtime=\"docker\",compose_project=\"\",compose_service=\"\"}}",
                scene.docker_inode, scene.docker_id
            )),
            1.0
        );
        assert_eq!(
            all.value(&format!(
                "sockdiag_netns_info{{netns=\"{kube_label}\",inode=\"{}\",container_id=\"{}\",container_name=\"\",pod_name=\"\",pod_namespace=\"\",pod_uid=\"{POD_UID}\",runtime=\"containerd\",compose_project=\"\",compose_service=\"\"}}",
                scene.kube_inode, scene.kube_id
            )),
            1.0
        );
        assert_eq!(
            all.value(&format!(
                "sockdiag_netns_info{{netns=\"{}\",inode=\"{}\",container_id=\"\",container_name=\"\",pod_name=\"\",pod_namespace=\"\",pod_uid=\"\",runtime=\"\",compose_project=\"\",compose_service=\"\"}}",
                scene.named, scene.named_inode
            )),
            1.0
        );

        let named = exporter.scrape_all().only_netns(scene.named_inode);
        assert_eq!(
            port_lines(&named),
            vec![
                "{direction=\"inbound\",port=\"8080\",process=\"leaky-server\",state=\"close_wait\"} 5",
                "{direction=\"outbound\",port=\"8080\",process=\"\",state=\"fin_wait2\"} 5",
            ]
        );
        let docker = exporter.scrape_all().only_netns(scene.docker_inode);
        assert_eq!(
            port_lines(&docker),
            vec![
                "{direction=\"inbound\",port=\"3306\",process=\"\",state=\"fin_wait2\"} 4",
                "{direction=\"outbound\",port=\"3306\",process=\"go-service\",state=\"close_wait\"} 4",
            ]
        );
        let kube = exporter.scrape_all().only_netns(scene.kube_inode);
        let listener = "{address=\"127.0.0.1\",port=\"8081\",process=\"cpp-server\"}";
        assert_eq!(
            kube.value(&format!("sockdiag_tcp_listen_queue_length{listener}")),
            5.0
        );
        assert_eq!(
            kube.value(&format!("sockdiag_tcp_listen_queue_limit{listener}")),
            8.0
        );
        assert_eq!(
            kube.lines("sockdiag_tcp_unaccepted_sockets"),
            vec!["{port=\"8081\",state=\"close_wait\"} 5"]
        );
        // Outside the host's and our own namespace only non-zero states are exported.
        assert_eq!(
            kube.lines("sockdiag_tcp_sockets"),
            vec![
                "{family=\"ipv4\",state=\"close_wait\"} 5",
                "{family=\"ipv4\",state=\"fin_wait2\"} 5",
                "{family=\"ipv4\",state=\"listen\"} 1",
            ]
        );
        // Our own namespace: every state, zero included, and nothing of the others.
        let own = exporter.scrape();
        assert_eq!(own.family("sockdiag_tcp_sockets").len(), 24);
        assert_eq!(own.family("sockdiag_tcp_port_sockets").len(), 0);
        assert_eq!(
            all.value("sockdiag_poll_errors_total{stage=\"discovery\"}"),
            0.0
        );
        drop(scene);
    });
}

/// With room for one namespace, the ones always kept stay (our own, and the host's where
/// PID 1's namespace can be read), and of the incidents' three namespaces at most two keep
/// their label (the cap, and the anomaly ceiling for the pod's never-accepted CLOSE_WAIT).
/// One at least folds into `other`, its state counts summed and counted, its info gone with
/// its label; a kept one keeps its info.
fn namespaces_beyond_the_cap_fold_into_other() {
    let scene = Incidents::build();
    in_netns(move || {
        let exporter = scene.exporter(10120, &[("SOCKDIAG_NETNS__MAX_NAMESPACES", "1")]);
        let all = exporter.scrape_all();
        let mut folded = 0;
        for label in [
            &scene.named[..],
            &scene.docker_id[..12],
            &scene.kube_id[..12],
        ] {
            let kept = all
                .text
                .contains(&format!("sockdiag_tcp_sockets{{netns=\"{label}\""));
            let info = all
                .text
                .contains(&format!("sockdiag_netns_info{{netns=\"{label}\""));
            assert_eq!(kept, info, "{label}: the info goes with the label");
            folded += usize::from(!kept);
        }
        // Other tests' namespaces may take a place too: at least one of ours folds.
        assert!(folded >= 1, "{folded} of the incidents' namespaces folded");
        assert!(
            all.value("sockdiag_tcp_sockets{netns=\"other\",family=\"ipv4\",state=\"close_wait\"}")
                >= 4.0
        );
        assert!(all.value("sockdiag_folded_label_values{netns=\"\",label=\"netns\"}") >= 1.0);
        drop(scene);
    });
}

/// The exporter's open files that are network namespaces, by inode.
fn namespace_fds(pid: i32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|entry| {
                let target = std::fs::read_link(entry.ok()?.path()).ok()?;
                let target = target.to_str()?;
                target
                    .strip_prefix("net:[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()
            })
            .collect()
        })
        .unwrap_or_default()
}

/// A namespace deleted between two polls leaves the output at the next one, without an
/// error, and the exporter never holds it open; namespaces created and deleted while the
/// exporter polls every 100 ms are never an error and leave no fd behind.
fn deleted_and_churning_namespaces_are_dropped_without_error_or_fd() {
    let mut scene = Incidents::build();
    in_netns(move || {
        let docker_root = scene.docker_root();
        let mut exporter =
            // Polls every 3 s, the listener sampler off (1 s, its default, is shorter, so
            // it is turned off by the toggle below): between two polls nothing of the
            // exporter is in or holds a namespace. 3 s leaves a gap after each poll even
            // when other tests' hundred namespaces make a poll take a second or more.
            Exporter::start_with(10120, &["--namespaces=all", "--poll.interval=3s", "--no-collector.listen_sampler"], |c| {
                c.env("SOCKDIAG_NETNS__DOCKER_ROOT", &docker_root);
            });
        exporter.wait_for_poll();
        assert!(exporter
            .scrape_all()
            .netns_label(scene.named_inode)
            .is_some());
        let (named, named_inode) = (scene.named.clone(), scene.named_inode);
        scene.delete_named();
        exporter.wait_for_fresh_poll();
        let all = exporter.scrape_all();
        // By name: the kernel reuses a freed namespace's inode number, and another test's
        // new namespace may already carry it.
        assert!(
            !all.text.contains(&format!("netns=\"{named}\"")),
            "{named} is gone"
        );
        assert_ne!(all.netns_label(named_inode).as_deref(), Some(&*named));

        // Churn: 20 namespaces made and deleted over about 2 s, within about one poll.
        let started = Instant::now();
        for i in 0..20 {
            let name = format!("sockdiag-it-churn-{}-{i}", std::process::id());
            output("ip", &["netns", "add", &name]);
            std::thread::sleep(Duration::from_millis(50));
            output("ip", &["netns", "delete", &name]);
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(started.elapsed() < Duration::from_secs(30));
        exporter.wait_for_fresh_poll();
        let all = exporter.scrape_all();
        for stage in ["open", "dump", "listen_dump", "discovery", "task"] {
            assert_eq!(
                all.value(&format!("sockdiag_poll_errors_total{{stage=\"{stage}\"}}")),
                0.0,
                "stage {stage}"
            );
        }
        assert_eq!(all.value("sockdiag_netns_skipped{reason=\"error\"}"), 0.0);
        // Right after a poll, and for a while: not one namespace fd is held (a held one
        // would keep a dead container's namespace alive).
        exporter.wait_for_fresh_poll();
        for _ in 0..3 {
            assert_eq!(
                namespace_fds(exporter.pid()),
                Vec::<u64>::new(),
                "the exporter holds namespaces between polls"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(scene);
    });
}

/// Without CAP_SYS_ADMIN and CAP_SYS_PTRACE only our own namespace is sampled; the
/// others are counted as skipped for permission, and one warning says why.
///
/// A bind root closed to the exporter's user (Docker's /run/docker/netns is 0700 on some
/// hosts) used to fail the whole discovery; it is skipped like an unreadable process link.
fn without_privileges_only_our_own_namespace_is_sampled() {
    use std::os::unix::fs::PermissionsExt;
    let scene = Incidents::build();
    let closed = scene.temp.join("closed-netns");
    std::fs::create_dir_all(&closed).expect("create a closed bind root");
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let roots = format!("/run/netns,{}", closed.display());
    in_netns(move || {
        let mut exporter = Exporter::start_unprivileged_with(
            10120,
            &["--namespaces=all", "--poll.interval=1h"],
            &[("SOCKDIAG_NETNS__BIND_ROOTS", roots.as_str())],
        );
        exporter.wait_for_poll();
        let all = exporter.scrape_all();
        let labels: std::collections::BTreeSet<&str> = all
            .samples
            .keys()
            .filter_map(|series| {
                let rest = series.strip_prefix("sockdiag_tcp_sockets{netns=\"")?;
                Some(rest.split_once('"')?.0)
            })
            .collect();
        assert_eq!(labels.len(), 1, "only our own namespace: {labels:?}");
        // The `ip netns` one is visible to anyone through its bind mount.
        assert!(all.value("sockdiag_netns_skipped{reason=\"permission\"}") >= 1.0);
        assert_eq!(
            all.value("sockdiag_poll_errors_total{stage=\"discovery\"}"),
            0.0,
            "a closed bind root is not a discovery failure"
        );
        let warnings: Vec<&String> = exporter
            .log_lines
            .iter()
            .filter(|l| l.contains("only our own network namespace is sampled"))
            .collect();
        assert_eq!(warnings.len(), 1, "{:#?}", exporter.log_lines);
        drop(scene);
    });
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        incidents_inside_containers_are_named_by_their_namespace,
        namespaces_beyond_the_cap_fold_into_other,
        deleted_and_churning_namespaces_are_dropped_without_error_or_fd,
        without_privileges_only_our_own_namespace_is_sampled,
    ]
}
