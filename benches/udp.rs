//! Cost of the UDP dump (with INET_DIAG_SKMEMINFO) and fold next to `ss -uam`, and the A/B
//! of the TCP part of a poll with and without the UDP dump after it:
//! `sudo cargo bench --bench udp -- [SCALES] [--reps N]` (default 10k,100k).
//! Needs root: each scale gets a private network namespace, so only the bench's sockets
//! are walked. Results: docs/benchmarks.md.
//!
//! The load of one scale, held by child processes of at most 18,000 sockets each (killed
//! by pid at the end): UDP sockets bound to port 0 of 127.0.K.1 (a new address every
//! 20,000, the ephemeral range being 28,232 ports), one receiver in five connected to
//! another (outbound series); one receiver with a 4 KiB buffer flooded until it drops; and
//! 1,000 established TCP pairs on loopback in the bench itself, for the TCP part.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sockdiag_exporter::fold::owners::{NameId, Owner, Owners};
use sockdiag_exporter::fold::tcp::Aggregator;
use sockdiag_exporter::fold::udp::drops::DropTracker;
use sockdiag_exporter::fold::udp::UdpAggregator;
use sockdiag_exporter::fold::Settings;
use sockdiag_exporter::source::inet_diag::{Family, StateFilter};
use sockdiag_exporter::source::sock_diag::SockDiag;

/// Every owner unknown: the fold's owner lookups cost a call, no /proc.
struct NoOwners;

impl Owners for NoOwners {
    fn owner(&self, _: u32) -> Option<Owner> {
        Some(Owner::Unknown)
    }
    fn settle(&self, _: u32) -> Owner {
        Owner::Unknown
    }
    fn name(&self, _: NameId) -> Arc<str> {
        Arc::from("unknown")
    }
}

const ROLE_ENV: &str = "SOCKDIAG_BENCH_UDP_ROLE";
/// Sockets per holder: below the 20,000 descriptors a process may have where the bench
/// cannot raise RLIMIT_NOFILE.
const PER_HOLDER: usize = 18_000;

/// A holder: `first count` binds sockets first..first+count, each to 127.0.K.1:0.
fn hold(first: usize, count: usize) {
    let mut sockets: Vec<UdpSocket> = Vec::with_capacity(count);
    for n in first..first + count {
        let address = format!("127.0.{}.1:0", n / 20_000 + 1);
        let socket = UdpSocket::bind(&address).expect("bind UDP socket");
        if n % 5 == 4 {
            let peer = sockets
                .last()
                .expect("a receiver before")
                .local_addr()
                .unwrap();
            socket.connect(peer).expect("connect UDP socket");
        }
        sockets.push(socket);
    }
    println!("ready");
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
}

struct Load {
    holders: Vec<Child>,
    _tcp: Vec<TcpStream>,
    _listener: TcpListener,
    _sink: UdpSocket,
}

impl Drop for Load {
    fn drop(&mut self) {
        for child in &mut self.holders {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn build(sockets: usize) -> Load {
    let mut holders = Vec::new();
    let mut first = 0;
    while first < sockets {
        let count = (sockets - first).min(PER_HOLDER);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(ROLE_ENV, format!("{first} {count}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a holder");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .expect("holder ready");
        assert_eq!(line.trim(), "ready");
        holders.push(child);
        first += count;
    }
    let sink = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sink.set_recv_buffer_size(4096).unwrap();
    sink.bind(
        &"127.0.0.1:8125"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let sink: UdpSocket = sink.into();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..1000 {
        sender.send_to(&[0u8; 64], "127.0.0.1:8125").unwrap();
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut tcp = Vec::new();
    for _ in 0..1000 {
        tcp.push(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
        tcp.push(listener.accept().unwrap().0);
    }
    Load {
        holders,
        _tcp: tcp,
        _listener: listener,
        _sink: sink,
    }
}

/// Median and minimum of `reps` runs of `f`, in milliseconds.
fn time(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut runs: Vec<Duration> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    runs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(runs[reps / 2]), ms(runs[0]))
}

/// The TCP part of a poll: both LISTEN dumps, then both other-state dumps, folded.
fn tcp_part(sd: &mut SockDiag, settings: &Settings) -> u64 {
    let mut aggregator = Aggregator::new(settings, None);
    for family in Family::ALL {
        sd.dump(family, StateFilter::Listen, &mut |r| {
            aggregator.add_listener(r, &NoOwners)
        })
        .expect("TCP LISTEN dump");
    }
    for family in Family::ALL {
        sd.dump(family, StateFilter::NotListen, &mut |r| {
            aggregator.add(r, None, &NoOwners)
        })
        .expect("TCP dump");
    }
    aggregator
        .finish(&NoOwners, settings, &Default::default())
        .sockets_scanned
}

/// The UDP part: both dumps, folded, the drops counted.
fn udp_part(sd: &mut SockDiag, settings: &Settings, tracker: &mut DropTracker) -> u64 {
    let mut fold = UdpAggregator::new(None);
    for family in Family::ALL {
        sd.dump_udp(family, &mut |r| fold.add(r, &NoOwners))
            .expect("UDP dump");
    }
    tracker.begin_poll(Instant::now());
    let figures = fold.finish(1, &NoOwners, settings, tracker);
    tracker.end_poll(&[]);
    assert!(
        figures.drops.iter().any(|d| d.drops > 0),
        "the sink dropped"
    );
    figures.sockets_scanned
}

fn measure(sockets: usize, reps: usize) -> Vec<String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    let status = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip link set lo up");
    assert!(status.success());
    let load = build(sockets);
    let mut sd = SockDiag::open().expect("open sock_diag");
    let settings = Settings::default();
    let mut tracker = DropTracker::new(drops_capacity());
    // The holders' sockets, the sink, and the sender the flood used (closed: gone).
    let expected = sockets as u64 + 1;
    assert_eq!(udp_part(&mut sd, &settings, &mut tracker), expected);
    let floor = time(reps, || {
        let mut n = 0u64;
        for family in Family::ALL {
            sd.dump_udp(family, &mut |_| n += 1).expect("UDP dump");
        }
        assert_eq!(n, expected);
    });
    let folded = time(reps, || {
        assert_eq!(udp_part(&mut sd, &settings, &mut tracker), expected);
    });
    let ss = time(reps, || {
        let status = Command::new("ss")
            .arg("-uam")
            .stdout(Stdio::null())
            .status()
            .expect("run ss -uam");
        assert!(status.success());
    });
    // A/B, interleaved so that load changes on the machine hit both alike.
    let (mut tcp_alone, mut tcp_with_udp) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let start = Instant::now();
        tcp_part(&mut sd, &settings);
        tcp_alone.push(start.elapsed());
        let start = Instant::now();
        tcp_part(&mut sd, &settings);
        tcp_with_udp.push(start.elapsed());
        udp_part(&mut sd, &settings, &mut tracker);
    }
    drop(load);
    let stats = |mut runs: Vec<Duration>| {
        runs.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        (ms(runs[runs.len() / 2]), ms(runs[0]))
    };
    let f = |(median, min): (f64, f64)| format!("{median:.2} ms (min {min:.2})");
    vec![
        format!("{expected}"),
        f(floor),
        f(folded),
        f(ss),
        format!("{:.1}x", ss.0 / folded.0),
        f(stats(tcp_alone)),
        f(stats(tcp_with_udp)),
    ]
}

fn drops_capacity() -> usize {
    sockdiag_exporter::fold::udp::drops::DEFAULT_CAPACITY
}

fn parse_count(text: &str) -> usize {
    let text = text.to_ascii_lowercase();
    let (digits, factor) = match text.strip_suffix('k') {
        Some(digits) => (digits, 1_000.0),
        None => (text.as_str(), 1.0),
    };
    (digits.parse::<f64>().expect("a count such as 10k") * factor) as usize
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        let (first, count) = role.split_once(' ').expect("FIRST COUNT");
        hold(first.parse().expect("first"), count.parse().expect("count"));
        return;
    }
    let mut scales = vec![10_000, 100_000];
    let mut reps = 7;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => {}
            "--reps" => reps = args.next().and_then(|r| r.parse().ok()).expect("--reps N"),
            other => scales = other.split(',').map(parse_count).collect(),
        }
    }
    println!(
        "| UDP sockets | UDP dump (counting) | UDP dump + fold + drops | `ss -uam` | `ss -uam` / dump + fold | \
         TCP part, alone (2,000 sockets) | TCP part, then the UDP part |"
    );
    println!("|---|---|---|---|---|---|---|");
    for sockets in scales {
        let row = std::thread::spawn(move || measure(sockets, reps))
            .join()
            .expect("measure");
        println!("| {} |", row.join(" | "));
    }
}
