//! Cost of the UNIX socket dump next to `ss -xa`, and of the listener sampler with both
//! families: `sudo cargo bench --bench unix -- [SCALES] [--reps N]` (default 10k,100k).
//! Needs root: each scale gets a private network namespace (the UNIX socket table is per
//! namespace), so only the bench's own sockets are walked. Results: docs/benchmarks.md.
//!
//! The load of one scale, held by child processes of at most 18,000 sockets each (killed
//! by pid at the end): 20 abstract-named stream listeners with connections accepted and
//! kept (a tenth of the sockets, at most 18,000: the accepted ends are named like their
//! listener, the client ends unnamed), a tenth unbound datagram sockets, the rest
//! connected stream pairs; and 10 TCP listeners on loopback in the bench itself, for the
//! sampler's TCP half.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sockdiag_exporter::fold::listen::{add_to_sample, add_unix_to_sample, ListenSample};
use sockdiag_exporter::fold::owners::{NameId, Owner, Owners};
use sockdiag_exporter::fold::unix::UnixAggregator;
use sockdiag_exporter::fold::Settings;
use sockdiag_exporter::source::inet_diag::{Family, StateFilter};
use sockdiag_exporter::source::sock_diag::SockDiag;
use sockdiag_exporter::source::unix_diag::UnixFilter;

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

/// Selects the role of a child process that holds a share of the sockets.
const ROLE_ENV: &str = "SOCKDIAG_BENCH_UNIX_ROLE";
/// Sockets per holder: below the 20,000 descriptors a process may have on machines where
/// the bench cannot raise RLIMIT_NOFILE (no CAP_SYS_RESOURCE in a container).
const PER_HOLDER: usize = 18_000;

/// A holder's role: `named N` (20 listeners, N sockets of accepted connections and their
/// clients), `dgram N` (unbound datagram sockets), `pairs N` (connected stream pairs).
fn hold(role: &str, count: usize) {
    let mut listeners = Vec::new();
    let mut streams = Vec::new();
    let mut dgrams = Vec::new();
    match role {
        "named" => {
            for i in 0..20 {
                let name = format!("sockdiag-bench-{i}");
                let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
                listeners.push(UnixListener::bind_addr(&address).expect("bind abstract listener"));
            }
            for i in 0..count / 2 {
                let listener: &UnixListener = &listeners[i % 20];
                let address = listener.local_addr().unwrap();
                streams.push(UnixStream::connect_addr(&address).expect("connect"));
                streams.push(listener.accept().expect("accept").0);
            }
        }
        "dgram" => {
            for _ in 0..count {
                dgrams.push(UnixDatagram::unbound().expect("datagram socket"));
            }
        }
        "pairs" => {
            for _ in 0..count / 2 {
                let (a, b) = UnixStream::pair().expect("socketpair");
                streams.push(a);
                streams.push(b);
            }
        }
        other => panic!("unknown role {other}"),
    }
    println!("ready");
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
}

/// The holders of one scale, killed by pid when dropped, and the TCP listeners.
struct Load {
    holders: Vec<Child>,
    _tcp: Vec<TcpListener>,
}

impl Drop for Load {
    fn drop(&mut self) {
        for child in &mut self.holders {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the holders of `sockets` UNIX sockets (a tenth named, a tenth datagram, the
/// rest pairs) from the calling thread, so in its namespace; returns the exact count.
fn build(sockets: usize) -> (Load, u64) {
    let named = (sockets / 10 / 2 * 2).min(PER_HOLDER);
    let dgram = sockets / 10;
    let mut shares = vec![("named", named)];
    let mut left = dgram;
    while left > 0 {
        shares.push(("dgram", left.min(PER_HOLDER)));
        left -= left.min(PER_HOLDER);
    }
    let mut left = (sockets - 20 - named - dgram) / 2 * 2;
    while left > 0 {
        let share = left.min(PER_HOLDER);
        shares.push(("pairs", share));
        left -= share;
    }
    let total = 20 + shares.iter().map(|(_, n)| *n as u64).sum::<u64>();
    let holders = shares
        .iter()
        .map(|(role, count)| {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .env(ROLE_ENV, format!("{role} {count}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a holder");
            let mut line = String::new();
            BufReader::new(child.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .expect("holder ready");
            assert_eq!(line.trim(), "ready");
            child
        })
        .collect();
    let tcp = (0..10)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("TCP listener"))
        .collect();
    (Load { holders, _tcp: tcp }, total)
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

fn measure(sockets: usize, reps: usize) -> Vec<String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    let status = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip link set lo up");
    assert!(status.success());
    let (load, total) = build(sockets);
    let mut sd = SockDiag::open().expect("open sock_diag");
    let mut dumped = 0u64;
    sd.dump_unix(UnixFilter::All, &mut |_| dumped += 1)
        .expect("unix dump");
    assert_eq!(dumped, total, "the namespace holds the load's sockets only");
    let settings = Settings::default();
    let floor = time(reps, || {
        let mut n = 0u64;
        sd.dump_unix(UnixFilter::All, &mut |_| n += 1)
            .expect("unix dump");
        assert_eq!(n, dumped);
    });
    let folded = time(reps, || {
        let mut fold = UnixAggregator::new();
        sd.dump_unix(UnixFilter::All, &mut |r| fold.add(r, &NoOwners))
            .expect("unix dump");
        let figures = fold.finish(&NoOwners, &settings, &ListenSample::default());
        assert_eq!(figures.sockets_scanned, dumped);
    });
    let ss = time(reps, || {
        let status = Command::new("ss")
            .arg("-xa")
            .stdout(Stdio::null())
            .status()
            .expect("run ss -xa");
        assert!(status.success());
    });
    let tcp_listen = time(reps, || {
        let mut sample = ListenSample::default();
        for family in Family::ALL {
            sd.dump(family, StateFilter::Listen, &mut |r| {
                add_to_sample(&mut sample, r)
            })
            .expect("TCP LISTEN dump");
        }
        assert_eq!(sample.tcp.len(), 10);
    });
    let unix_listen = time(reps, || {
        let mut sample = ListenSample::default();
        sd.dump_unix(UnixFilter::Listen, &mut |r| {
            add_unix_to_sample(&mut sample, r)
        })
        .expect("UNIX LISTEN dump");
        assert_eq!(sample.unix.len(), 20);
    });
    drop(load);
    let f = |(median, min): (f64, f64)| format!("{median:.2} ms (min {min:.2})");
    vec![
        format!("{dumped}"),
        f(floor),
        f(folded),
        f(ss),
        format!("{:.1}x", ss.0 / folded.0),
        f(tcp_listen),
        f(unix_listen),
        format!("{:.2} ms", tcp_listen.0 + unix_listen.0),
    ]
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
        let (role, count) = role.split_once(' ').expect("ROLE COUNT");
        hold(role, count.parse().expect("count"));
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
        "| UNIX sockets | dump (counting) | dump + fold | `ss -xa` | `ss -xa` / dump + fold | \
         sampler: TCP LISTEN (IPv4 + IPv6) | sampler: UNIX LISTEN | sampler total |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for sockets in scales {
        // A thread per scale: it enters a namespace of its own, which ends with it.
        let row = std::thread::spawn(move || measure(sockets, reps))
            .join()
            .expect("measure");
        println!("| {} |", row.join(" | "));
    }
}
