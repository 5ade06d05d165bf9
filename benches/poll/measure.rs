//! What is measured, each in a process of its own so that its CPU time and peak RSS are
//! its own:
//!
//! - role `poller`: the exporter's poll, exactly `Collector::poll()` (listener dump, main
//!   dump, /proc attribution, aggregation); the first poll is cold (full /proc scan);
//! - role `floor`: the floor (a `SockDiag` dump of both families that only counts), the
//!   raw kernel floor (a netlink-sys dump that walks message headers and nothing else),
//!   and the LISTEN-only sample of the listener sampler;
//! - role `attrib`: the attribution work of a steady-state poll alone, through the
//!   `ProcIndex` the poller uses (lookups of every dumped inode, sweep, resolve);
//! - `ss`, `ss -p` and node_exporter as the programs they are (see [`run_program`],
//!   [`NodeExporter`]).
//!
//! Children answer `done WALL_NS CPU_NS EXTRA...` to each command.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sockdiag_exporter::config::Config;
use sockdiag_exporter::fold::listen::{self, ListenSample};
use sockdiag_exporter::metrics;
use sockdiag_exporter::poll::{Collector, Peaks, PollerConfig, Scope, Targets};
use sockdiag_exporter::source::inet_diag::{Family, StateFilter};
use sockdiag_exporter::source::proc_fd::ProcIndex;
use sockdiag_exporter::source::sock_diag::SockDiag;

use crate::http;
use crate::load::child_setup;

/// CPU time (user + system) of the calling process so far.
pub fn cpu_self() -> Duration {
    rusage_cpu(libc::RUSAGE_SELF)
}

fn rusage_cpu(who: libc::c_int) -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(who, &mut usage), 0, "getrusage");
        usage
    };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000)
}

/// `VmHWM` (peak RSS) and `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU time of a process (all threads) from /proc/PID/stat, at clock-tick resolution.
pub fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// The poller configuration the binary would run with by default.
pub fn poller_config(proc_root: &str) -> PollerConfig {
    let mut poller = PollerConfig::from(&Config::default());
    poller.sources.proc_root = proc_root.into();
    // The load lives in the bench's own namespace; the many-namespace bench sets All.
    poller.scope = Scope::Own;
    poller
}

/// Times `f` in wall and process CPU time; prints `done WALL_NS CPU_NS EXTRA...`.
pub fn timed(f: impl FnOnce() -> String) {
    let cpu = cpu_self();
    let started = Instant::now();
    let extra = f();
    let wall = started.elapsed();
    let cpu = cpu_self().saturating_sub(cpu);
    println!("done {} {} {extra}", wall.as_nanos(), cpu.as_nanos());
}

pub fn commands(mut handle: impl FnMut(&str)) {
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        match line.trim() {
            "rss" => {
                let (hwm, rss) = rss_kib("self");
                println!("done {hwm} {rss}");
            }
            command => handle(command),
        }
    }
}

/// Role `poller [all]`: `poll` runs one `Collector::poll()` (every namespace with `all`,
/// with the binary's defaults for concurrency and the namespace cap); `series` encodes
/// the last snapshot as a scrape would and counts its series.
pub fn poller_role(args: &[String]) {
    child_setup("bench-poller");
    let mut config = poller_config("/proc");
    if args.first().map(String::as_str) == Some("all") {
        config.scope = Scope::All;
    }
    let mut collector = Collector::new(&config, Peaks::default(), Targets::default());
    let mut last = None;
    commands(|command| match command {
        "poll" => timed(|| {
            let (snapshot, notes) = collector.poll().expect("poll");
            let figures = format!(
                "{} {} {} {} {}",
                snapshot.sockets_scanned,
                notes.scan.scans,
                notes.scan.readlinks,
                snapshot
                    .namespaces
                    .iter()
                    .map(|ns| ns.tcp.breakdown.unattributed)
                    .sum::<u64>(),
                notes.namespaces
            );
            last = Some(snapshot);
            figures
        }),
        "series" => {
            let snapshot = last.take().expect("series before any poll");
            println!("done {}", series_words(snapshot));
        }
        other => panic!("poller: unknown command {other:?}"),
    });
}

/// Role `floor`: `floor`, `raw` and `listen`.
pub fn floor_role(_args: &[String]) {
    child_setup("bench-floor");
    let mut sd = SockDiag::open().expect("open sock_diag");
    let mut raw = RawDump::open();
    commands(|command| match command {
        // The request the poll itself makes: one dump of both families (the kernel walks
        // its tables once, where a dump per family walks them twice).
        "floor" => timed(|| {
            let mut count = 0u64;
            sd.dump_both_families(StateFilter::All, &mut |_| count += 1)
                .expect("dump");
            count.to_string()
        }),
        "raw" => timed(|| {
            let count: u64 = [libc::AF_INET, libc::AF_INET6]
                .into_iter()
                .map(|af| raw.dump(af as u8, all_states()))
                .sum();
            count.to_string()
        }),
        // What a dump costs when the kernel skips TIME_WAIT (still walking past them).
        "raw-no-tw" => timed(|| {
            let states = all_states() & !(1 << 6); // TCP_TIME_WAIT
            let count: u64 = [libc::AF_INET, libc::AF_INET6]
                .into_iter()
                .map(|af| raw.dump(af as u8, states))
                .sum();
            count.to_string()
        }),
        "listen" => timed(|| {
            // What the listener sampler does every listen_poll_interval.
            let mut sample = ListenSample::default();
            sd.dump_both_families(StateFilter::Listen, &mut |r| {
                listen::add_to_sample(&mut sample, r)
            })
            .expect("listen dump");
            sample.tcp.len().to_string()
        }),
        other => panic!("floor: unknown command {other:?}"),
    });
}

/// Role `attrib`: `warm` (the cold start's full scan), `steady` (one steady-state poll's
/// attribution: lookup of every dumped inode, sweep, resolve of the missing ones).
pub fn attrib_role(_args: &[String]) {
    child_setup("bench-attrib");
    let mut sd = SockDiag::open().expect("open sock_diag");
    let mut index = ProcIndex::new("/proc");
    let mut inodes = Vec::new();
    commands(|command| {
        // The inodes of the current dump, collected outside the timed part.
        inodes.clear();
        for family in Family::ALL {
            sd.dump(family, StateFilter::All, &mut |r| {
                if r.inode != 0 {
                    inodes.push(r.inode)
                }
            })
            .expect("dump");
        }
        match command {
            "warm" => timed(|| {
                index.begin_poll();
                let report = index.warm().expect("warm");
                format!("{} {}", report.scans, report.readlinks)
            }),
            "steady" => timed(|| {
                index.begin_poll();
                let mut missing = Vec::new();
                for &inode in &inodes {
                    if index.lookup(inode).is_none() && !index.is_unresolvable(inode) {
                        missing.push(inode);
                    }
                }
                index.sweep();
                let report = index.resolve(&missing).expect("resolve");
                for &inode in &missing {
                    index.lookup(inode);
                }
                format!(
                    "{} {} {} {}",
                    report.scans,
                    report.readlinks,
                    missing.len(),
                    inodes.len()
                )
            }),
            other => panic!("attrib: unknown command {other:?}"),
        }
    });
}

/// The states SockDiag asks for: every TCP state, not the bound-inactive bit (which
/// would walk the bind hash).
fn all_states() -> u32 {
    netlink_packet_sock_diag::inet::StateFlags::all().bits()
}

/// A bare netlink sock_diag dump: headers walked, records counted, nothing decoded.
struct RawDump {
    socket: netlink_sys::Socket,
    buffer: Vec<u8>,
    sequence: u32,
}

impl RawDump {
    fn open() -> RawDump {
        let mut socket =
            netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_SOCK_DIAG).expect("socket");
        socket.bind_auto().expect("bind");
        socket
            .connect(&netlink_sys::SocketAddr::new(0, 0))
            .expect("connect");
        RawDump {
            socket,
            buffer: Vec::with_capacity(64 * 1024),
            sequence: 0,
        }
    }

    fn dump(&mut self, family: u8, states: u32) -> u64 {
        self.sequence += 1;
        // struct nlmsghdr + struct inet_diag_req_v2 (include/uapi/linux/inet_diag.h).
        let mut request = [0u8; 72];
        request[0..4].copy_from_slice(&72u32.to_ne_bytes());
        request[4..6].copy_from_slice(&20u16.to_ne_bytes()); // SOCK_DIAG_BY_FAMILY
        request[6..8].copy_from_slice(&(0x01u16 | 0x300).to_ne_bytes()); // REQUEST | DUMP
        request[8..12].copy_from_slice(&self.sequence.to_ne_bytes());
        request[16] = family;
        request[17] = libc::IPPROTO_TCP as u8;
        request[20..24].copy_from_slice(&states.to_ne_bytes());
        self.socket.send(&request, 0).expect("send");
        let mut count = 0;
        loop {
            self.buffer.clear();
            self.socket.recv(&mut self.buffer, 0).expect("recv");
            let mut offset = 0;
            while offset + 16 <= self.buffer.len() {
                let word = |at: usize| {
                    u32::from_ne_bytes(self.buffer[at..at + 4].try_into().expect("4 bytes"))
                };
                let length = word(offset) as usize;
                let kind = u16::from_ne_bytes([self.buffer[offset + 4], self.buffer[offset + 5]]);
                match kind {
                    3 => return count,                    // NLMSG_DONE
                    2 => panic!("raw dump: NLMSG_ERROR"), // NLMSG_ERROR
                    _ => count += 1,
                }
                offset += (length + 3) & !3;
            }
        }
    }
}

/// Wall time, CPU time and peak RSS of one run of a program.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    pub wall: Duration,
    pub cpu: Duration,
    pub max_rss_kib: u64,
}

/// Runs `program args` with stdout to /dev/null; its own rusage from wait4.
// The child is reaped by wait4 (std's wait does not return the rusage).
#[allow(clippy::zombie_processes)]
pub fn run_program(program: &str, args: &[&str]) -> Run {
    let started = Instant::now();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let pid = child.id() as libc::pid_t;
    // SAFETY: wait4 writes only the status and the rusage it is given; the child is
    // ours and is not waited for anywhere else.
    let (status, usage) = unsafe {
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        let waited = libc::wait4(pid, &mut status, 0, &mut usage);
        assert_eq!(waited, pid, "wait4 {program}");
        (status, usage)
    };
    let wall = started.elapsed();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{program} {args:?} failed: status {status}"
    );
    Run {
        wall,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss as u64,
    }
}

/// Debian's prometheus-node-exporter with only the tcpstat collector.
pub struct NodeExporter {
    child: std::process::Child,
    address: SocketAddr,
}

impl NodeExporter {
    pub const PROGRAM: &'static str = "prometheus-node-exporter";

    pub fn start(port: u16) -> NodeExporter {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(Self::PROGRAM)
            .args([
                "--collector.disable-defaults",
                "--collector.tcpstat",
                &format!("--web.listen-address={address}"),
                "--log.level=warn",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", Self::PROGRAM));
        http::wait_listening(address, Duration::from_secs(20));
        NodeExporter { child, address }
    }

    pub fn version() -> String {
        let out = Command::new(Self::PROGRAM)
            .arg("--version")
            .output()
            .map(|o| {
                let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&o.stderr));
                text
            })
            .unwrap_or_default();
        out.lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("?")
            .to_string()
    }

    /// One scrape: (wall, the process's CPU time during it).
    pub fn scrape(&self) -> (Duration, Duration) {
        let cpu = cpu_of(self.child.id());
        let started = Instant::now();
        let mut conn = http::Conn::open(self.address).expect("connect node_exporter");
        let (status, _) = conn
            .get("/metrics", http::ACCEPT_PROMETHEUS)
            .expect("scrape");
        assert_eq!(status, 200, "node_exporter scrape");
        let wall = started.elapsed();
        (wall, cpu_of(self.child.id()).saturating_sub(cpu))
    }

    pub fn peak_rss_kib(&self) -> u64 {
        rss_kib(&self.child.id().to_string()).0
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scrape of `snapshot` (OpenMetrics, as Prometheus asks): `TOTAL BYTES`, then
/// `f:FAMILY:N` per metric family and `n:NETNS:N` per `netns` label value (empty for
/// series without one).
fn series_words(snapshot: sockdiag_exporter::snapshot::Snapshot) -> String {
    use std::collections::BTreeMap;
    let (publish, receiver) = sockdiag_exporter::poll::channel();
    publish.send_replace(std::sync::Arc::new(
        sockdiag_exporter::snapshot::Published {
            latest: Some(std::sync::Arc::new(snapshot)),
            ..Default::default()
        },
    ));
    let mut registry = prometheus_client::registry::Registry::default();
    metrics::SnapshotCollector::register(&mut registry, receiver);
    let body = metrics::encode(&registry, metrics::Format::OpenMetrics).expect("encode");
    let mut families: BTreeMap<&str, u64> = BTreeMap::new();
    let mut netns: BTreeMap<&str, u64> = BTreeMap::new();
    let mut total = 0;
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        total += 1;
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        *families.entry(&line[..name_end]).or_default() += 1;
        let label = line
            .split_once("netns=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map_or("", |(value, _)| value);
        *netns.entry(label).or_default() += 1;
    }
    let mut words = format!("{total} {}", body.len());
    for (name, n) in families {
        words.push_str(&format!(" f:{name}:{n}"));
    }
    for (label, n) in netns {
        words.push_str(&format!(" n:{label}:{n}"));
    }
    words
}
