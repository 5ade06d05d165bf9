//! The many-namespace scenario: N network namespaces, each created by a child process of
//! the bench (role `nsload`) that unshares its own namespace and holds a socket load in
//! it, as the containers of a node do. Measured against them:
//!
//! - the floor of each namespace (role `nsfloor`: a plain `SockDiag` dump of both
//!   families that only counts, on a socket opened inside that namespace), and their sum
//!   over every namespace the poll samples (on a shared machine that includes the host's
//!   and any other namespace that exists at the time: they are listed);
//! - our poll: `Collector::poll()` with `Scope::All` and the binary's defaults (role
//!   `poller all`), its peak RSS and the series count of a scrape of its snapshot.
//!
//! Every namespace goes away with its process; every process is killed by pid when its
//! [`Proc`] drops (and has PR_SET_PDEATHSIG).

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sockdiag_exporter::poll::discover::{self, Sources};
use sockdiag_exporter::source::inet_diag::StateFilter;
use sockdiag_exporter::source::netns::HomeNetns;
use sockdiag_exporter::source::sock_diag::SockDiag;

use crate::load::{self, child_setup, Proc};
use crate::measure;
use crate::netns::{self, EhashGuard};
use crate::report::Sample;
use crate::Options;

/// Service port of every namespace (IPv4 and IPv6), its idle metrics port, and the
/// listener its TIME_WAIT connects to.
const SERVICE_PORT: u16 = 8080;
const METRICS_PORT: u16 = 9090;
const TW_PORT: u16 = 8081;
/// Listening sockets of one namespace load.
pub const NS_LISTENERS: u64 = 4;
/// Explicit source ports of TIME_WAIT 4-tuples: 127.1.x.y:[5000, 40000).
const TW_SPORT_BASE: u64 = 5000;
const TW_SPORTS: u64 = 35_000;

/// What one namespace holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NsMix {
    pub established_pairs: u64,
    pub close_wait_pairs: u64,
    pub time_wait: u64,
}

impl NsMix {
    /// `total` sockets: 30% TIME_WAIT, 50% ESTABLISHED, 10% CLOSE_WAIT, 10% FIN_WAIT2,
    /// the listeners. Less TIME_WAIT than the single-namespace loads (74%): one process
    /// per namespace re-makes its TIME_WAIT before each measurement, and at 20 × 50k the
    /// 74% share took longer to re-make (52 s) than TIME_WAIT lives.
    pub fn in_namespace(total: u64) -> NsMix {
        let established_pairs = total / 4;
        let close_wait_pairs = total / 10;
        let owned = 2 * (established_pairs + close_wait_pairs) + NS_LISTENERS;
        NsMix {
            established_pairs,
            close_wait_pairs,
            time_wait: total.saturating_sub(owned),
        }
    }

    /// A pod: its listeners, a few established connections, some TIME_WAIT.
    pub fn pod() -> NsMix {
        NsMix {
            established_pairs: 4,
            close_wait_pairs: 0,
            time_wait: 20,
        }
    }

    pub fn total(&self) -> u64 {
        NS_LISTENERS + 2 * (self.established_pairs + self.close_wait_pairs) + self.time_wait
    }
}

/// One many-namespace run.
#[derive(Debug, Clone, Default)]
pub struct NsScenario {
    pub name: String,
    pub namespaces: usize,
    pub mix: NsMix,
    pub build_seconds: f64,
    pub refresh_seconds: f64,
    pub failed_connects: u64,
    /// Sockets of the bench's namespaces (first and last floor of the run).
    pub sockets_before: u64,
    pub sockets_after: u64,
    /// Median floor of each bench namespace over the repetitions.
    pub ns_floors: Vec<Duration>,
    /// Summed floors over every namespace the floor process sampled, per repetition.
    pub floor_sum: Vec<Sample>,
    /// Namespaces the floor sampled that are not the bench's (host and others), and
    /// their sockets.
    pub foreign_namespaces: u64,
    pub foreign_sockets: u64,
    pub poll: Vec<Sample>,
    pub poll_cold: Sample,
    pub cold_readlinks: u64,
    /// Namespaces the poll sampled, and its sockets.
    pub poll_namespaces: u64,
    pub poll_sockets: u64,
    pub poll_rss_kib: u64,
    pub series: Series,
}

/// The series of one scrape of the poll's snapshot.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub total: u64,
    pub bytes: u64,
    /// Series with a `netns` label of one of the bench's namespaces, or `other`.
    pub bench: u64,
    /// Series with a `netns` label of another namespace (the host's included).
    pub foreign: u64,
    /// Series of the host's namespace alone (the bench's own when PID 1 is elsewhere).
    pub host: u64,
    /// Series without a `netns` label.
    pub global: u64,
    /// Series per family, largest first.
    pub families: Vec<(String, u64)>,
}

/// Parses `--namespaces 200x2k,20x50k`.
pub fn parse_layouts(text: &str, count: impl Fn(&str) -> u64) -> Vec<(usize, u64)> {
    text.split(',')
        .filter(|part| !part.is_empty() && *part != "0")
        .map(|part| {
            let (n, sockets) = part
                .split_once('x')
                .unwrap_or_else(|| crate::usage(&format!("bad layout {part:?}: NxSOCKETS")));
            (count(n) as usize, count(sockets))
        })
        .collect()
}

/// The namespace loads of one scenario.
struct NsLoads {
    procs: Vec<Proc>,
    /// Pids of the `nsclient` processes the loads started (they also die with them).
    clients: Vec<i32>,
    inodes: Vec<u64>,
    failed: u64,
}

impl NsLoads {
    /// Starts `count` namespaces holding `mix` each, all building at once; each gets a
    /// socket hash of its own size (the host's setting is restored once all exist).
    fn start(count: usize, mix: NsMix) -> NsLoads {
        let guard = EhashGuard::set(netns::ehash_entries(mix.total() as usize));
        let mut procs: Vec<Proc> = (0..count)
            .map(|i| {
                Proc::spawn(
                    "nsload",
                    &[
                        format!("ns-{i:03}"),
                        mix.established_pairs.to_string(),
                        mix.close_wait_pairs.to_string(),
                        mix.time_wait.to_string(),
                    ],
                )
            })
            .collect();
        for proc in &mut procs {
            let line = proc.read_line();
            assert_eq!(line, "unshared", "nsload said {line:?}");
        }
        drop(guard);
        let inodes = procs
            .iter()
            .map(|p| netns_inode(&p.pid().to_string()))
            .collect();
        let mut failed = 0;
        let mut clients = Vec::with_capacity(procs.len());
        for proc in &mut procs {
            let words = proc.expect_done("build");
            failed += words.get(1).and_then(|w| w.parse().ok()).unwrap_or(0u64);
            clients.extend(words.get(2).and_then(|w| w.parse::<i32>().ok()));
        }
        NsLoads {
            procs,
            clients,
            inodes,
            failed,
        }
    }

    /// Re-makes every TIME_WAIT 4-tuple, all namespaces at once: the count then holds
    /// for the next 57 s.
    fn refresh(&mut self) {
        for proc in &mut self.procs {
            proc.send("tw");
        }
        for proc in &mut self.procs {
            let words = proc.expect_done("tw");
            self.failed += words.get(1).and_then(|w| w.parse().ok()).unwrap_or(0u64);
        }
    }
}

impl Drop for NsLoads {
    /// Stops every client process by its pid, then (dropping `procs`) every load.
    fn drop(&mut self) {
        for &pid in &self.clients {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn netns_inode(pid: &str) -> u64 {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/ns/net: {e}"));
    sockdiag_exporter::source::netns::parse_link(&link.to_string_lossy())
        .unwrap_or_else(|| panic!("netns link of {pid}: {link:?}"))
}

/// Runs one scenario: `count` namespaces of `mix`.
pub fn run(name: &str, count: usize, mix: NsMix, options: &Options) -> NsScenario {
    let started = Instant::now();
    let mut loads = NsLoads::start(count, mix);
    let mut scenario = NsScenario {
        name: name.to_string(),
        namespaces: count,
        mix,
        build_seconds: started.elapsed().as_secs_f64(),
        ..NsScenario::default()
    };
    eprintln!(
        "   built {count} namespaces in {:.1} s",
        scenario.build_seconds
    );
    let refreshed = Instant::now();
    loads.refresh();
    scenario.refresh_seconds = refreshed.elapsed().as_secs_f64();
    let mut floor = Proc::start("nsfloor", &[]);
    let mut poller = Proc::start("poller", &["all".to_string()]);
    let started = Instant::now();
    let mut per_ns: Vec<Vec<Duration>> = vec![Vec::new(); count];
    let mut floor_run = |scenario: &mut NsScenario| {
        let words = floor.call("floor");
        let (sample, _) = crate::sample(&words[..2.min(words.len())]);
        scenario.floor_sum.push(sample);
        let (mut bench_sockets, mut foreign, mut foreign_sockets) = (0, 0, 0);
        for word in words.iter().skip(2) {
            let mut parts = word.split(':').map(|p| p.parse::<u64>().unwrap_or(0));
            let (inode, nanos, sockets) = (
                parts.next().unwrap_or(0),
                parts.next().unwrap_or(0),
                parts.next().unwrap_or(0),
            );
            match loads.inodes.iter().position(|&i| i == inode) {
                Some(k) => {
                    per_ns[k].push(Duration::from_nanos(nanos));
                    bench_sockets += sockets;
                }
                None => {
                    foreign += 1;
                    foreign_sockets += sockets;
                }
            }
        }
        scenario.foreign_namespaces = foreign;
        scenario.foreign_sockets = foreign_sockets;
        bench_sockets
    };
    scenario.sockets_before = floor_run(&mut scenario);
    let (cold, extra) = crate::sample(&poller.call("poll"));
    scenario.poll_cold = cold;
    scenario.cold_readlinks = extra.get(2).copied().unwrap_or(0);
    for _ in 0..options.reps {
        scenario.sockets_after = floor_run(&mut scenario);
        let (poll, extra) = crate::sample(&poller.call("poll"));
        scenario.poll.push(poll);
        scenario.poll_sockets = extra.first().copied().unwrap_or(0);
        scenario.poll_namespaces = extra.get(4).copied().unwrap_or(0);
    }
    // The first floor warmed the floor process's sockets; the repetitions are the figure.
    scenario.floor_sum.remove(0);
    scenario.ns_floors = per_ns
        .into_iter()
        .map(|mut v| {
            v.sort();
            v.get(v.len().saturating_sub(1) / 2)
                .copied()
                .unwrap_or_default()
        })
        .collect();
    scenario.poll_rss_kib = crate::peak_rss(&mut poller);
    scenario.series = series(&poller.call("series"), &loads.inodes);
    scenario.failed_connects = loads.failed;
    eprintln!(
        "   measured in {:.1} s, {} -> {} sockets in the bench's namespaces",
        started.elapsed().as_secs_f64(),
        scenario.sockets_before,
        scenario.sockets_after
    );
    drop((floor, poller, loads));
    scenario
}

/// Sorts the poller's `series` answer: `TOTAL BYTES` then `f:FAMILY:N` and `n:NETNS:N`.
fn series(words: &[String], inodes: &[u64]) -> Series {
    let number = |w: Option<&String>| w.and_then(|w| w.parse().ok()).unwrap_or(0u64);
    let mut series = Series {
        total: number(words.first()),
        bytes: number(words.get(1)),
        ..Series::default()
    };
    for word in words.iter().skip(2) {
        let Some((kind, rest)) = word.split_once(':') else {
            continue;
        };
        let Some((name, n)) = rest.rsplit_once(':') else {
            continue;
        };
        let n: u64 = n.parse().unwrap_or(0);
        match kind {
            "f" => series.families.push((name.to_string(), n)),
            "n" if name.is_empty() => series.global += n,
            "n" => {
                let ours = name == discover::OTHER_LABEL
                    || name
                        .strip_prefix("ns-")
                        .and_then(|i| i.parse::<u64>().ok())
                        .is_some_and(|i| inodes.contains(&i));
                if ours {
                    series.bench += n;
                } else {
                    series.foreign += n;
                }
                // The host's, or ours when PID 1 is in another (a container's) namespace.
                if name == discover::HOST_LABEL || name == format!("ns-{}", netns_inode("self")) {
                    series.host += n;
                }
            }
            _ => {}
        }
    }
    series
        .families
        .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    series
}

/// Role `nsload NAME EST_PAIRS CW_PAIRS TIME_WAIT`: unshares a network namespace, says
/// `unshared`, builds the load in it (listeners on 127.0.0.1 and ::1; a quarter of the
/// pairs over IPv6; TIME_WAIT from explicit 127.1.x.y:port sources), says `done MADE
/// FAILED CLIENT_PID`; then `tw` re-makes every TIME_WAIT 4-tuple.
pub fn nsload_role(args: &[String]) {
    child_setup(&args[0]);
    let count = |i: usize| -> u64 { args[i].parse().expect("count") };
    let (established, close_wait, time_wait) = (count(1), count(2), count(3));
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare(CLONE_NEWNET): the benchmark must run as root");
    println!("unshared");
    let status = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("run `ip link set lo up` (iproute2)");
    assert!(status.success(), "ip link set lo up failed: {status}");
    netns::sysctl("net.ipv4.tcp_max_tw_buckets", "8388608");
    netns::sysctl("net.ipv4.tcp_tw_reuse", "0");
    netns::sysctl("net.ipv4.ip_local_port_range", "40000 65535");
    let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let service = [
        load::listen(SocketAddr::new(v4, SERVICE_PORT), false),
        load::listen(SocketAddr::new(v6, SERVICE_PORT), false),
    ];
    let _metrics = load::listen(SocketAddr::new(v4, METRICS_PORT), false);
    let tw_listener = [load::listen(SocketAddr::new(v4, TW_PORT), false)];
    // The client ends live in a second process in this namespace (role `nsclient`,
    // started by this one, dying with it): 50k sockets in a namespace are more fds than
    // the hard limit of one process here (20,000), which we may not raise.
    let pairs = established + close_wait;
    let mut client = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env(load::ROLE_ENV, "nsclient")
        .args([
            format!("{}-client", args[0]),
            established.to_string(),
            close_wait.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start nsclient");
    // Connection i goes over IPv6 when i % 4 == 3.
    let v6 = pairs / 4;
    let held: Vec<TcpStream> = std::thread::scope(|scope| {
        let accepting: Vec<_> = [(&service[0], pairs - v6), (&service[1], v6)]
            .into_iter()
            .map(|(listener, n)| {
                scope.spawn(move || {
                    (0..n)
                        .map(|_| listener.accept().expect("accept").0)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        accepting
            .into_iter()
            .flat_map(|h| h.join().expect("accept thread"))
            .collect()
    });
    let mut answer = String::new();
    std::io::BufReader::new(client.stdout.as_mut().expect("client stdout"))
        .read_line(&mut answer)
        .expect("read nsclient");
    assert_eq!(answer.trim(), "done", "nsclient said {answer:?}");
    let tuple = |c: u64| -> (SocketAddr, usize) {
        let host = c / TW_SPORTS + 1;
        let source = Ipv4Addr::new(127, 1, (host >> 8) as u8, host as u8);
        let port = (TW_SPORT_BASE + c % TW_SPORTS) as u16;
        (SocketAddr::new(IpAddr::V4(source), port), 0)
    };
    let (made, failed) = load::make_time_wait(&tw_listener, &tuple, 0, time_wait);
    println!("done {made} {failed} {}", client.id());
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        match line.trim() {
            "tw" => {
                let (made, failed) = load::make_time_wait(&tw_listener, &tuple, 0, time_wait);
                println!("done {made} {failed}");
            }
            other => panic!("nsload: unknown command {other:?}"),
        }
    }
    drop(held);
    let _ = client.kill();
    let _ = client.wait();
}

/// Role `nsclient NAME EST_PAIRS CW_PAIRS`, started by `nsload` in its namespace:
/// connects to the service ports (a quarter over IPv6), half-closes the last CW_PAIRS
/// (FIN_WAIT2 here, CLOSE_WAIT at the acceptor), says `done` and holds them.
pub fn nsclient_role(args: &[String]) {
    child_setup(&args[0]);
    let count = |i: usize| -> u64 { args[i].parse().expect("count") };
    let (established, close_wait) = (count(1), count(2));
    let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), SERVICE_PORT);
    let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), SERVICE_PORT);
    let mut held = Vec::new();
    for i in 0..established + close_wait {
        let address = if i % 4 == 3 { v6 } else { v4 };
        let stream = TcpStream::connect(address).expect("connect");
        if i >= established {
            stream.shutdown(Shutdown::Write).expect("shutdown");
        }
        held.push(stream);
    }
    println!("done");
    // Until nsload ends (stdin closes) or kills us.
    for _ in std::io::stdin().lock().lines() {}
    drop(held);
}

/// Role `nsfloor`: opens a sock_diag socket inside every namespace discovery finds (a
/// socket belongs to the namespace it was opened in); `floor` dumps each, both families,
/// counting, and answers `done WALL CPU INODE:NANOS:SOCKETS...`.
pub fn nsfloor_role(_args: &[String]) {
    child_setup("bench-nsfloor");
    let sources = Sources::default();
    let found = discover::discover(&sources, &mut Default::default()).expect("discover namespaces");
    let home = HomeNetns::open(&sources.proc_root).expect("hold our namespace");
    let mut sockets: Vec<(u64, SockDiag)> = Vec::new();
    for ns in &found.namespaces {
        let opened = if ns.id == found.own {
            Ok(SockDiag::open())
        } else {
            home.run_in(&ns.enter, ns.id, SockDiag::open)
        };
        // A namespace gone since discovery is not part of the floor.
        if let Ok(Ok(sd)) = opened {
            sockets.push((ns.id, sd));
        }
    }
    measure::commands(|command| match command {
        "floor" => measure::timed(|| {
            let mut parts = Vec::with_capacity(sockets.len());
            for (inode, sd) in &mut sockets {
                let started = Instant::now();
                let mut count = 0u64;
                // The poll's own request: both families in one dump.
                sd.dump_both_families(StateFilter::All, &mut |_| count += 1)
                    .expect("dump");
                parts.push(format!("{inode}:{}:{count}", started.elapsed().as_nanos()));
            }
            parts.join(" ")
        }),
        other => panic!("nsfloor: unknown command {other:?}"),
    });
}
