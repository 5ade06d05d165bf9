//! Cost of network namespace discovery and of entering a namespace, at N extra namespaces
//! (default 200) each holding one sleeping process in a cgroup named like a Docker
//! container, with a config.v2.json of realistic size in a temporary data root:
//! `cargo bench --bench netns -- [N] [--reps R]`. Needs root. Everything it creates
//! (processes, cgroups, files) is removed on exit, also on a panic.
//!
//! With `--existing` it makes nothing and times discovery over the namespaces that exist,
//! naming them from the runtimes' real state at the default paths (Docker, containerd,
//! CRI-O, Podman): for containers started beforehand on real runtimes.
//!
//! Prints, as medians of R runs (default 21):
//! - `netns::discover`: /proc/*/ns/net and the bind roots only;
//! - `poll::discover::discover`: the same plus each namespace's cgroup, without and with
//!   a Docker data root (the difference is reading the names), each run with a new cache
//!   (every name read), and with the cache kept from run to run as the poller keeps it
//!   (an unchanged state file costs a stat);
//! - one setns round trip (`HomeNetns::run_in` with an empty body: open, fstat, setns,
//!   close, setns home), per namespace.
//!
//! The results are written down in docs/benchmarks.md.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sockdiag_exporter::poll::discover::{self, Sources};

#[path = "../tests/integration/cgroups.rs"]
// The bench uses the cgroups and ids of the tests' fixtures, not their other helpers.
#[allow(dead_code)]
mod cgroups;
use cgroups::{random_container_id, Cgroups};
use sockdiag_exporter::source::netns::{self, HomeNetns};

/// What the bench made, removed on drop.
struct Load {
    sleepers: Vec<Child>,
    /// Dropped after `Drop::drop` has stopped the processes in them.
    cgroups: Cgroups,
    temp: PathBuf,
}

impl Drop for Load {
    fn drop(&mut self) {
        for child in &mut self.sleepers {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.temp);
    }
}

fn main() {
    let mut namespaces = 200usize;
    let mut reps = 21usize;
    let mut existing = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reps" => reps = args.next().and_then(|r| r.parse().ok()).expect("--reps N"),
            // cargo bench passes --bench.
            "--bench" => {}
            "--existing" => existing = true,
            other => namespaces = other.parse().expect("usage: netns [N] [--reps R]"),
        }
    }
    let reps = reps.max(1);
    if existing {
        namespaces = 0;
    }
    let temp = std::env::temp_dir().join(format!("sockdiag-bench-netns-{}", std::process::id()));
    let mut load = Load {
        sleepers: Vec::new(),
        cgroups: Cgroups::default(),
        temp,
    };
    let own = inode(Path::new("/proc/thread-self/ns/net"));
    let mut made = Vec::new();
    for _ in 0..namespaces {
        let child = Command::new("unshare")
            .args(["--net", "--", "sleep", "3600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn `unshare --net sleep`");
        let pid = child.id();
        load.sleepers.push(child);
        let id = random_container_id();
        load.cgroups.move_into(
            &Path::new("system.slice").join(format!("docker-{id}.scope")),
            pid,
        );
        let config = load
            .temp
            .join("containers")
            .join(&id)
            .join("config.v2.json");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(&config, config_v2(&id)).unwrap();
        made.push(pid);
    }
    // Wait until every sleeper has left our namespace.
    let link = |pid: u32| PathBuf::from(format!("/proc/{pid}/ns/net"));
    let deadline = Instant::now() + Duration::from_secs(30);
    for &pid in &made {
        while inode(&link(pid)) == own {
            assert!(
                Instant::now() < deadline,
                "pid {pid} never left our namespace"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    let sources = if existing {
        Sources::default()
    } else {
        Sources {
            docker_root: load.temp.clone(),
            ..Sources::default()
        }
    };
    let processes = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        })
        .count();
    let raw = median(reps, || {
        std::hint::black_box(netns::discover(Path::new("/proc"), &sources.bind_roots).unwrap());
    });
    let unnamed = Sources {
        docker_root: load.temp.join("absent"),
        containerd_state: load.temp.join("absent"),
        containers_run_root: load.temp.join("absent"),
        ..sources.clone()
    };
    let without_names = median(reps, || {
        std::hint::black_box(discover::discover(&unnamed, &mut Default::default()).unwrap());
    });
    let mut found = None;
    let full = median(reps, || {
        found = Some(discover::discover(&sources, &mut Default::default()).unwrap());
    });
    // As the poller runs it: one cache kept from poll to poll, names read in the first.
    let mut caches = discover::StateCaches::default();
    discover::discover(&sources, &mut caches).unwrap();
    let kept = median(reps, || {
        std::hint::black_box(discover::discover(&sources, &mut caches).unwrap());
    });
    let found = found.unwrap();
    let named = found
        .namespaces
        .iter()
        .filter(|ns| !ns.info.container_name.is_empty() || !ns.info.pod_name.is_empty())
        .count();
    assert!(
        named >= namespaces,
        "{named} of {namespaces} containers named"
    );

    let home = HomeNetns::open(Path::new("/proc")).unwrap();
    let targets: Vec<_> = found
        .namespaces
        .iter()
        .filter(|ns| ns.id != home.inode())
        .collect();
    let round_trip = median(reps, || {
        for ns in &targets {
            home.run_in(&ns.enter, ns.id, || ()).unwrap();
        }
    }) / targets.len() as u32;
    // The setns pair alone, the namespace fd already open: what reopening and checking
    // the inode adds on top.
    let open: Vec<std::fs::File> = targets
        .iter()
        .map(|ns| std::fs::File::open(&ns.enter).unwrap())
        .collect();
    let home_fd = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
    let bare = median(reps, || {
        for fd in &open {
            setns(fd);
            setns(&home_fd);
        }
    }) / open.len() as u32;
    drop(open);

    println!(
        "netns bench: {namespaces} extra namespaces, {} discovered ({named} named), \
         {processes} processes, median of {reps}",
        found.namespaces.len()
    );
    println!(
        "  netns::discover (links, bind roots)         {:>9.2} ms",
        ms(raw)
    );
    println!(
        "  poll::discover, no runtime state (+ cgroups)   {:>6.2} ms",
        ms(without_names)
    );
    println!(
        "  poll::discover (+ cgroups, runtime names)   {:>9.2} ms",
        ms(full)
    );
    println!(
        "  per namespace                               {:>9.2} us",
        full.as_secs_f64() * 1e6 / found.namespaces.len() as f64
    );
    println!(
        "  poll::discover, names kept from the last poll {:>7.2} ms",
        ms(kept)
    );
    println!(
        "  per namespace                               {:>9.2} us",
        kept.as_secs_f64() * 1e6 / found.namespaces.len() as f64
    );
    println!(
        "  setns round trip (run_in, empty body)       {:>9.2} us per namespace",
        round_trip.as_secs_f64() * 1e6
    );
    println!(
        "  of which the two setns calls                {:>9.2} us per namespace",
        bare.as_secs_f64() * 1e6
    );
    drop(load);
}

fn setns(fd: &std::fs::File) {
    use std::os::fd::AsFd;
    rustix::thread::move_into_link_name_space(
        fd.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .expect("setns");
}

fn median(reps: usize, mut run: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .ino()
}

/// A config.v2.json shaped and sized like dockerd's (about 5 KB: state, config, env,
/// labels, mounts), so that parsing costs what it does on a real host.
fn config_v2(id: &str) -> String {
    let env: Vec<String> = (0..20)
        .map(|i| format!("\"VAR_{i}=value-{i}-{}\"", "x".repeat(40)))
        .collect();
    let labels: Vec<String> = (0..30)
        .map(|i| format!("\"com.example.label.{i}\":\"{}\"", "v".repeat(40)))
        .collect();
    format!(
        r#"{{"StreamConfig":{{}},"State":{{"Running":true,"Paused":false,"Pid":4242,"ExitCode":0,"StartedAt":"2026-11-29T10:00:00.000000000Z"}},"ID":"{id}","Created":"2026-11-29T10:00:00.000000000Z","Managed":false,"Path":"nginx","Args":["-g","daemon off;"],"Config":{{"Hostname":"{short}","Env":[{env}],"Image":"nginx:1.27","Labels":{{{labels}}}}},"Image":"sha256:{id}","Name":"/bench-{short}","RestartCount":0,"Driver":"overlay2","MountPoints":{{}},"HostnamePath":"/var/lib/docker/containers/{id}/hostname"}}"#,
        short = &id[..12],
        env = env.join(","),
        labels = labels.join(","),
    )
}
