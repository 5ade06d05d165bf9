//! Faults in the sources with real network namespaces (issue 17): a namespace that
//! vanishes between discovery and its dump, namespaces whose dump fails after they were
//! entered, and processes whose cgroup file has a format we do not know.
//!
//! The poll is the real `Collector::poll`, over a fake /proc root that shows only this
//! test's processes (each `PID` a directory whose `ns`, `stat`, `comm` and `fd` link to
//! the real ones, beside a `cgroup` file the test writes), so the namespaces of other
//! tests on the host never enter the figures. Faults come through the poll's sock_diag
//! [`Opener`]. Each test runs in a private namespace of its own (`in_netns`), and its
//! sockets listen on 127.0.0.1 inside namespaces the test created.

use std::io;
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockdiag_exporter::poll::discover::Sources;
use sockdiag_exporter::poll::{Collector, PollerConfig, Scope};
use sockdiag_exporter::snapshot::{NetnsSkipped, Snapshot};
use sockdiag_exporter::source::inet_diag::{Family, TcpState};
use sockdiag_exporter::source::netns::HomeNetns;
use sockdiag_exporter::source::sock_diag::{Netlink, Opener, SockDiag, Transport};

use crate::cgroups::{random_container_id, unique_tag, write_docker_config};
use crate::namespaces::{inode_of, sleeper_in_new_netns, stop, wait_for_own_netns};
use crate::netns::in_netns;

/// Sleepers in namespaces of their own, seen through a fake /proc; removed on drop.
struct Scene {
    temp: PathBuf,
    /// Shared with openers that stop one of them mid-poll.
    sleepers: Arc<Mutex<Vec<Child>>>,
    /// The namespace inode of each sleeper.
    inodes: Vec<u64>,
    /// A listener on 127.0.0.1 inside each sleeper's namespace.
    listeners: Vec<TcpListener>,
}

impl Scene {
    /// One sleeper per entry of `cgroups`, whose fake `/proc/PID/cgroup` holds it.
    fn build(cgroups: &[&[u8]]) -> Scene {
        let temp = std::env::temp_dir().join(format!("sockdiag-it-faults-{}", unique_tag()));
        let mut scene = Scene {
            temp,
            sleepers: Arc::new(Mutex::new(
                cgroups.iter().map(|_| sleeper_in_new_netns()).collect(),
            )),
            inodes: Vec::new(),
            listeners: Vec::new(),
        };
        let proc = scene.proc_root();
        std::fs::create_dir_all(&proc).unwrap();
        std::fs::create_dir_all(scene.temp.join("docker")).unwrap();
        symlink("/proc/thread-self", proc.join("thread-self")).unwrap();
        let pids = scene.pids();
        for (i, pid) in pids.into_iter().enumerate() {
            scene
                .inodes
                .push(wait_for_own_netns(&scene.sleepers.lock().unwrap()[i]));
            let dir = proc.join(pid.to_string());
            std::fs::create_dir(&dir).unwrap();
            for name in ["ns", "stat", "comm", "fd"] {
                symlink(format!("/proc/{pid}/{name}"), dir.join(name)).unwrap();
            }
            std::fs::write(dir.join("cgroup"), cgroups[i]).unwrap();
            let home = HomeNetns::open(Path::new("/proc")).unwrap();
            let enter = PathBuf::from(format!("/proc/{pid}/ns/net"));
            let listener = home
                .run_in(&enter, scene.inodes[i], || TcpListener::bind("127.0.0.1:0"))
                .unwrap()
                .unwrap();
            scene.listeners.push(listener);
        }
        scene
    }

    fn pids(&self) -> Vec<u32> {
        let sleepers = self.sleepers.lock().unwrap_or_else(|p| p.into_inner());
        sleepers.iter().map(Child::id).collect()
    }

    fn proc_root(&self) -> PathBuf {
        self.temp.join("proc")
    }

    /// A collector over every namespace the fake /proc shows, one at a time.
    fn collector(&self, open: Opener) -> Collector {
        let mut config = PollerConfig::new(Duration::from_secs(1), None);
        config.scope = Scope::All;
        config.sources = Sources {
            proc_root: self.proc_root(),
            bind_roots: Vec::new(),
            docker_root: self.temp.join("docker"),
            containerd_state: self.temp.join("containerd"),
            containers_run_root: self.temp.join("storage"),
        };
        config.netns_concurrency = 1;
        config.open = open;
        Collector::new(&config, Default::default(), Default::default())
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|p| p.into_inner());
        for child in sleepers.iter_mut() {
            stop(child);
        }
        let _ = std::fs::remove_dir_all(&self.temp);
    }
}

/// The calling thread's network namespace.
fn here() -> u64 {
    inode_of(Path::new("/proc/thread-self/ns/net"))
}

fn labels(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .namespaces
        .iter()
        .map(|ns| ns.netns.to_string())
        .collect()
}

fn sorted(mut labels: Vec<String>) -> Vec<String> {
    labels.sort();
    labels
}

/// TCP sockets of the namespace labelled `label`: (IPv4 LISTEN, total).
fn listeners(snapshot: &Snapshot, label: &str) -> (u64, u64) {
    let ns = snapshot
        .namespaces
        .iter()
        .find(|ns| &*ns.netns == label)
        .unwrap_or_else(|| panic!("no namespace {label}"));
    let tcp = &ns.tcp.tcp_sockets;
    (tcp.get(Family::Ipv4, TcpState::Listen), tcp.total())
}

fn namespace_vanishing_between_discovery_and_enter_is_dropped_and_counted() {
    in_netns(|| {
        let scene = Scene::build(&[b"0::/\n", b"0::/\n"]);
        let own = here();
        // The first namespace entered stops the other one's only process: its path is gone
        // by the time the poll gets to it (the listener keeps the namespace itself alive,
        // as a container's leftover socket would).
        let first: Arc<Mutex<Option<u64>>> = Arc::default();
        let open = {
            let (sleepers, inodes, first) = (
                Arc::clone(&scene.sleepers),
                scene.inodes.clone(),
                Arc::clone(&first),
            );
            Opener::new(move || {
                let here = here();
                if here != own && first.lock().unwrap().replace(here).is_none() {
                    let mut sleepers = sleepers.lock().unwrap();
                    for (child, inode) in sleepers.iter_mut().zip(&inodes) {
                        if *inode != here {
                            stop(child);
                        }
                    }
                }
                SockDiag::open()
            })
        };
        let mut collector = scene.collector(open);
        let (snapshot, notes) = collector.poll().expect("the poll does not fail");
        let survivor = first.lock().unwrap().expect("a namespace was entered");
        assert_eq!(
            snapshot.skipped,
            NetnsSkipped {
                permission: 0,
                vanished: 1,
                error: 0
            }
        );
        assert!(notes.netns_errors.is_empty(), "{:?}", notes.netns_errors);
        assert_eq!(
            labels(&snapshot),
            sorted(vec![format!("ns-{own}"), format!("ns-{survivor}")])
        );
        assert_eq!(listeners(&snapshot, &format!("ns-{survivor}")), (1, 1));
        assert_eq!(listeners(&snapshot, &format!("ns-{own}")), (0, 0));
        let infos: Vec<u64> = snapshot.netns_info.iter().map(|i| i.inode).collect();
        assert_eq!(infos.len(), 2);
        assert!(infos.contains(&own) && infos.contains(&survivor));
    });
}

/// The kernel's socket, failing with ENOBUFS at the first receive after `requests`
/// requests (1: in the TCP dump of both families, the first of the recipe).
struct FailAfter {
    inner: Netlink,
    requests: usize,
}

impl Transport for FailAfter {
    fn send(&mut self, request: &[u8]) -> io::Result<()> {
        self.requests = self.requests.saturating_sub(1);
        self.inner.send(request)
    }

    fn recv(&mut self, buffer: &mut Vec<u8>) -> io::Result<usize> {
        if self.requests == 0 {
            return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
        }
        self.inner.recv(buffer)
    }
}

fn namespace_dump_failing_after_enter_is_dropped_and_counted() {
    in_netns(|| {
        let scene = Scene::build(&[b"0::/\n", b"0::/\n"]);
        let own = here();
        let open = Opener::new(move || {
            if here() == own {
                return SockDiag::open();
            }
            let inner = Netlink::open().expect("netlink socket");
            Ok(SockDiag::over(Box::new(FailAfter { inner, requests: 1 })))
        });
        let mut collector = scene.collector(open);
        let (snapshot, notes) = collector.poll().expect("the poll does not fail");
        assert_eq!(
            snapshot.skipped,
            NetnsSkipped {
                permission: 0,
                vanished: 0,
                error: 2
            }
        );
        // Nothing of what their TCP dump had begun is published.
        assert_eq!(labels(&snapshot), vec![format!("ns-{own}")]);
        let mut expected: Vec<String> = scene
            .inodes
            .iter()
            .map(|inode| {
                format!(
                    "netns ns-{inode}: receive failed during the tcp dump: No buffer space \
                     available (os error 105)"
                )
            })
            .collect();
        expected.sort();
        assert_eq!(sorted(notes.netns_errors.clone()), expected);
        assert_eq!(snapshot.netns_info.len(), 1);
    });
}

fn own_namespace_failing_mid_dump_fails_the_whole_poll() {
    in_netns(|| {
        let scene = Scene::build(&[b"0::/\n"]);
        let own = here();
        // Our own first socket fails; the one opened again after the failure does not.
        let failed = Arc::new(AtomicBool::new(false));
        let open = Opener::new(move || {
            if here() != own || failed.swap(true, Ordering::Relaxed) {
                return SockDiag::open();
            }
            let inner = Netlink::open().expect("netlink socket");
            Ok(SockDiag::over(Box::new(FailAfter { inner, requests: 1 })))
        });
        let mut collector = scene.collector(open);
        // The other namespace was dumped whole meanwhile: the poll still fails as one, so
        // nothing of it is published (`run` publishes only what `poll` returns).
        let error = collector.poll().expect_err("our own namespace failed");
        assert_eq!(error.stage().label(), "dump");
        assert_eq!(
            error.to_string(),
            "receive failed during the tcp dump: No buffer space available (os error 105)"
        );
        let (snapshot, _) = collector.poll().expect("the next poll succeeds");
        let label = format!("ns-{}", scene.inodes[0]);
        assert_eq!(
            labels(&snapshot),
            sorted(vec![format!("ns-{own}"), label.clone()])
        );
        assert_eq!(listeners(&snapshot, &label), (1, 1));
    });
}

fn cgroup_file_of_unknown_format_falls_back_to_the_inode_label_and_unreadable_ones_were_dropped_silently(
) {
    in_netns(|| {
        let id = random_container_id();
        let other_id = random_container_id();
        // Neither line names a container: an unknown unit, a bare id outside any pod.
        let unknown = format!(
            "12:cpu,cpuacct:/custom.slice/sandbox-{other_id}.unit\n0::/apps/{other_id}\n\
             not a cgroup line\n"
        );
        let docker = format!("0::/system.slice/docker-{id}.scope\n");
        let scene = Scene::build(&[
            unknown.as_bytes(),
            b"\xff\xfe binary\x00 junk\n",
            docker.as_bytes(),
        ]);
        let own = here();
        let mut collector = scene.collector(Opener::netlink());
        let (snapshot, notes) = collector.poll().expect("the poll does not fail");
        // An unknown format is no error (most namespaces are no container's); a file that
        // cannot be read as text is one, reported (and logged once) instead of dropped.
        let pids = scene.pids();
        assert_eq!(
            notes.attribution_errors,
            vec![format!(
                "finding the container of a network namespace: {} is not UTF-8: invalid utf-8 \
                 sequence of 1 bytes from index 0",
                scene
                    .proc_root()
                    .join(pids[1].to_string())
                    .join("cgroup")
                    .display()
            )]
        );
        let [unknown, junk, docker] = [scene.inodes[0], scene.inodes[1], scene.inodes[2]];
        assert_eq!(
            labels(&snapshot),
            sorted(vec![
                id[..12].to_string(),
                format!("ns-{own}"),
                format!("ns-{unknown}"),
                format!("ns-{junk}"),
            ])
        );
        for inode in [unknown, junk] {
            let label = format!("ns-{inode}");
            assert_eq!(listeners(&snapshot, &label), (1, 1));
            let info = snapshot
                .netns_info
                .iter()
                .find(|i| i.inode == inode)
                .unwrap();
            assert_eq!(&*info.netns, label);
            assert_eq!(
                (
                    info.container_id.as_str(),
                    info.container_name.as_str(),
                    info.pod_uid.as_str(),
                    info.runtime.as_str()
                ),
                ("", "", "", "")
            );
        }
        assert_eq!(listeners(&snapshot, &id[..12]), (1, 1));
        let info = snapshot
            .netns_info
            .iter()
            .find(|i| i.inode == docker)
            .unwrap();
        assert_eq!(
            (info.container_id.as_str(), info.runtime.as_str()),
            (id.as_str(), "docker")
        );
        assert_eq!(snapshot.skipped, NetnsSkipped::default());
    });
}

/// The container name of the namespace with this inode in a snapshot's infos.
fn container_name(snapshot: &Snapshot, inode: u64) -> String {
    snapshot
        .netns_info
        .iter()
        .find(|i| i.inode == inode)
        .map(|i| i.container_name.clone())
        .unwrap_or_else(|| panic!("no info for {inode}"))
}

/// A Docker container whose config.v2.json is a symlink to /dev/zero was read without
/// bound at every poll (RSS past 2 GB); one with a 50 MB name gave a 50 MB label. Now the
/// first is refused at the open (it leads out of the data root), reported and counted
/// once, then not read again while unchanged; the second is cut to 253 bytes.
fn docker_config_symlink_to_dev_zero_was_read_again_every_poll() {
    in_netns(|| {
        let (zero_id, long_id) = (random_container_id(), random_container_id());
        let cgroup = |id: &str| format!("0::/system.slice/docker-{id}.scope\n");
        let (zero_cgroup, long_cgroup) = (cgroup(&zero_id), cgroup(&long_id));
        let scene = Scene::build(&[zero_cgroup.as_bytes(), long_cgroup.as_bytes()]);
        let root = scene.temp.join("docker");
        write_docker_config(&root, &long_id, &"é".repeat(400 << 10));
        write_docker_config(&root, &zero_id, "placeholder");
        let zero_config = root
            .join("containers")
            .join(&zero_id)
            .join("config.v2.json");
        std::fs::remove_file(&zero_config).unwrap();
        symlink("/dev/zero", &zero_config).unwrap();
        let mut collector = scene.collector(Opener::netlink());
        let refused = format!(
            "naming a container: {} leads out of {}",
            zero_config.display(),
            root.display()
        );
        for poll in 0..3 {
            let (snapshot, notes) = collector.poll().expect("the poll does not fail");
            assert_eq!(
                notes.attribution_errors,
                vec![refused.clone()],
                "poll {poll}"
            );
            assert_eq!(
                notes.attribution_failures,
                u64::from(poll == 0),
                "poll {poll}"
            );
            assert_eq!(container_name(&snapshot, scene.inodes[0]), "");
            assert_eq!(
                container_name(&snapshot, scene.inodes[1]),
                format!("{}…", "é".repeat(125))
            );
            assert_eq!(listeners(&snapshot, &zero_id[..12]), (1, 1));
        }
        // Replaced by a real config: read again, named.
        std::fs::remove_file(&zero_config).unwrap();
        write_docker_config(&root, &zero_id, "api");
        let (snapshot, notes) = collector.poll().expect("the poll does not fail");
        assert_eq!(notes.attribution_errors, Vec::<String>::new());
        assert_eq!(notes.attribution_failures, 0);
        assert_eq!(container_name(&snapshot, scene.inodes[0]), "api");
    });
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        namespace_vanishing_between_discovery_and_enter_is_dropped_and_counted,
        namespace_dump_failing_after_enter_is_dropped_and_counted,
        own_namespace_failing_mid_dump_fails_the_whole_poll,
        cgroup_file_of_unknown_format_falls_back_to_the_inode_label_and_unreadable_ones_were_dropped_silently,
        docker_config_symlink_to_dev_zero_was_read_again_every_poll,
    ]
}
