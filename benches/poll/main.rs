//! Benchmark harness: the exporter's poll against the kernel floor, `ss` and
//! node_exporter, on loads of 10k, 100k and 1.1M TCP sockets, each in a private network
//! namespace with its own socket hash table. Needs root. Run it through `benches/run.sh`
//! (see docs/benchmarks.md), or `cargo bench --bench poll -- [--smoke] [--scales ...]`.
//!
//! The binary also plays the child processes it starts (holders, TIME_WAIT generators,
//! the measured poller, ...): `SOCKDIAG_BENCH_ROLE` selects the role.

mod children;
mod http;
mod load;
mod many;
mod many_report;
mod measure;
mod netns;
mod owned;
mod report;
mod targets;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sockdiag_exporter::source::sock_diag::SockDiag;

use load::{Census, Load, Mix, Proc, ROLE_ENV};
use measure::{NodeExporter, Run};
use report::{Sample, Scale, Scrape};

/// Command-line options (after cargo's own `--bench`).
#[derive(Debug, Clone)]
pub struct Options {
    pub smoke: bool,
    pub scales: Vec<u64>,
    /// Scales of the all-owned ESTABLISHED load (every socket held by a process).
    pub owned: Vec<u64>,
    /// Size of the all-owned attribution load; 0 skips it.
    pub attribution: u64,
    pub reps: usize,
    pub scrape_seconds: u64,
    pub report: Option<String>,
    /// Seconds to keep each load up (TIME_WAIT refreshed) before measuring it, for
    /// profiling from outside: `nsenter --net=/proc/PID/ns/net ...`.
    pub hold: u64,
    /// Many-namespace layouts: (namespaces, sockets in each).
    pub namespaces: Vec<(usize, u64)>,
    /// Namespaces of the "node with N pods" series count; 0 skips it.
    pub pods: usize,
    /// Only the polls, floors and the namespace scenarios (no ss, node_exporter,
    /// attribution alone or scrape test): for A/B runs.
    pub quick: bool,
}

impl Options {
    fn parse() -> Options {
        let mut options = Options {
            smoke: false,
            scales: vec![10_000, 100_000, 1_100_000],
            owned: Vec::new(),
            attribution: 100_000,
            reps: 5,
            scrape_seconds: 10,
            report: None,
            hold: 0,
            namespaces: vec![(200, 2_000), (20, 50_000)],
            pods: 200,
            quick: false,
        };
        let mut explicit_namespaces = None;
        let mut explicit_pods = None;
        let mut explicit_scales = None;
        let mut explicit_attribution = None;
        let mut explicit_owned = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .unwrap_or_else(|| usage(&format!("{name} needs a value")))
            };
            match name.as_str() {
                "--smoke" => options.smoke = true,
                "--quick" => options.quick = true,
                "--scales" => {
                    explicit_scales = Some(
                        value()
                            .split(',')
                            .map(parse_count)
                            .filter(|&n| n > 0)
                            .collect(),
                    )
                }
                "--owned" => {
                    explicit_owned = Some(
                        value()
                            .split(',')
                            .map(parse_count)
                            .filter(|&n| n > 0)
                            .collect::<Vec<u64>>(),
                    )
                }
                "--attribution" => explicit_attribution = Some(parse_count(&value())),
                "--reps" => options.reps = value().parse().unwrap_or_else(|_| usage("--reps")),
                "--scrape-seconds" => {
                    options.scrape_seconds = value()
                        .parse()
                        .unwrap_or_else(|_| usage("--scrape-seconds"))
                }
                "--report" => options.report = Some(value()),
                "--namespaces" => {
                    explicit_namespaces = Some(many::parse_layouts(&value(), parse_count))
                }
                "--pods" => explicit_pods = Some(parse_count(&value()) as usize),
                "--hold" => options.hold = value().parse().unwrap_or_else(|_| usage("--hold")),
                // cargo bench passes --bench; libtest-style filters are ignored.
                "--bench" => {}
                "-h" | "--help" => usage(""),
                other if other.starts_with('-') => usage(&format!("unknown option {other}")),
                _ => {}
            }
        }
        if options.smoke {
            options.scales = vec![10_000];
            options.attribution = 10_000;
            options.reps = options.reps.min(3);
            options.scrape_seconds = 2;
            options.namespaces = vec![(4, 500)];
            options.pods = 10;
        }
        if let Some(namespaces) = explicit_namespaces {
            options.namespaces = namespaces;
        }
        if let Some(pods) = explicit_pods {
            options.pods = pods;
        }
        if let Some(scales) = explicit_scales {
            options.scales = scales;
        }
        // The all-owned load runs beside the mixed one at the scales its targets name
        // (100k and up), at 10k in the smoke variant.
        let floor = if options.smoke { 0 } else { 100_000 };
        options.owned = explicit_owned.unwrap_or_else(|| {
            options
                .scales
                .iter()
                .copied()
                .filter(|&n| n >= floor)
                .collect()
        });
        if let Some(attribution) = explicit_attribution {
            options.attribution = attribution;
        }
        options.reps = options.reps.max(1);
        options
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("poll bench: {problem}");
    }
    eprintln!(
        "usage: poll [--smoke] [--scales 10k,100k,1.1M] [--owned 100k,1.1M|0] [--attribution 100k|0] \
         [--reps N] \
         [--scrape-seconds N] [--report docs/benchmarks.md] [--hold SECONDS] \
         [--namespaces 200x2k,20x50k|0] [--pods 200|0] [--quick]"
    );
    std::process::exit(2);
}

/// `10k`, `1.1M`, `100000`.
fn parse_count(text: &str) -> u64 {
    let text = text.trim();
    let (number, unit) = match text.chars().last() {
        Some('k' | 'K') => (&text[..text.len() - 1], 1e3),
        Some('m' | 'M') => (&text[..text.len() - 1], 1e6),
        _ => (text, 1.0),
    };
    let value: f64 = number
        .parse()
        .unwrap_or_else(|_| usage(&format!("bad count {text:?}")));
    (value * unit).round() as u64
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match role.as_str() {
            "holder" => load::holder(&args),
            "twgen" => load::twgen(&args),
            "poller" => measure::poller_role(&args),
            "floor" => measure::floor_role(&args),
            "attrib" => measure::attrib_role(&args),
            "nsload" => many::nsload_role(&args),
            "nsclient" => many::nsclient_role(&args),
            "nsfloor" => many::nsfloor_role(&args),
            other => panic!("unknown role {other}"),
        }
        return;
    }
    let options = Options::parse();
    assert!(
        nix::unistd::geteuid().is_root(),
        "the benchmark needs root (network namespaces, sysctls, /proc of other processes)"
    );
    let node_exporter = which(NodeExporter::PROGRAM);
    if node_exporter.is_none() {
        eprintln!(
            "note: {} not found; its column is skipped (benches/run.sh installs it)",
            NodeExporter::PROGRAM
        );
    }
    let started = Instant::now();
    let mut scales = Vec::new();
    for &total in &options.scales {
        eprintln!("== {} sockets", report::count_label(total));
        let opts = options.clone();
        let with_node = node_exporter.is_some();
        let scale = netns::in_netns(netns::ehash_entries(total as usize), move || {
            run_scale(total, &opts, with_node)
        });
        eprintln!("{}", report::scale_summary(&scale));
        scales.push(scale);
    }
    let mut owned = Vec::new();
    for &total in &options.owned {
        eprintln!(
            "== {} sockets, all ESTABLISHED and owned",
            report::count_label(total)
        );
        let opts = options.clone();
        owned.push(netns::in_netns(
            netns::ehash_entries(total as usize),
            move || owned::run(total, &opts),
        ));
    }
    let attribution = (options.attribution > 0).then(|| {
        let total = options.attribution;
        eprintln!(
            "== attribution: {} sockets, all owned",
            report::count_label(total)
        );
        let opts = options.clone();
        netns::in_netns(netns::ehash_entries(total as usize), move || {
            owned::run_attribution(total, &opts)
        })
    });
    let mut namespaces = Vec::new();
    for &(count, sockets) in &options.namespaces {
        let name = format!("{count} × {}", report::count_label(sockets));
        eprintln!("== {name} sockets in namespaces");
        namespaces.push(many::run(
            &name,
            count,
            many::NsMix::in_namespace(sockets),
            &options,
        ));
    }
    let pods = (options.pods > 0).then(|| {
        eprintln!("== a node with {} pods", options.pods);
        many::run(
            &format!("{} pods", options.pods),
            options.pods,
            many::NsMix::pod(),
            &Options {
                reps: 1,
                ..options.clone()
            },
        )
    });
    let text = report::render(
        &options,
        &scales,
        &owned,
        attribution.as_ref(),
        &namespaces,
        pods.as_ref(),
        started.elapsed(),
    );
    println!("{text}");
    if let Some(path) = &options.report {
        report::write(path, &text);
        eprintln!("wrote {path}");
    }
}

fn which(program: &str) -> Option<String> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Parses `done WALL_NS CPU_NS EXTRA...` into a sample and the extra words.
fn sample(words: &[String]) -> (Sample, Vec<u64>) {
    let number = |i: usize| words.get(i).and_then(|w| w.parse().ok()).unwrap_or(0u64);
    let extra = (2..words.len()).map(number).collect();
    (
        Sample {
            wall: Duration::from_nanos(number(0)),
            cpu: Duration::from_nanos(number(1)),
        },
        extra,
    )
}

/// VmHWM of a measuring child, in KiB.
fn peak_rss(proc: &mut Proc) -> u64 {
    proc.call("rss")
        .first()
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
}

fn run_sample(run: Run) -> Sample {
    Sample {
        wall: run.wall,
        cpu: run.cpu,
    }
}

/// Tracks the socket count around each measurement, and refreshes TIME_WAIT before it.
struct Stepper<'a> {
    load: &'a mut Load,
    sd: SockDiag,
    /// One full dump's wall time: the unit of measurement budgets.
    unit: Duration,
    low: u64,
    high: u64,
    refreshed: u64,
    drifts: Vec<String>,
}

/// The longest step before which TIME_WAIT can be refreshed so that none expires in it.
const MAX_STABLE: Duration = Duration::from_secs(30);

impl Stepper<'_> {
    /// Runs `body`, first re-making TIME_WAIT that could expire within `units` dumps.
    ///
    /// TIME_WAIT lives 60 s, so a step longer than [`MAX_STABLE`] cannot keep the count;
    /// its drift is reported (see [`Scale::drifts`]).
    fn step<T>(&mut self, name: &str, units: u32, body: impl FnOnce(&mut Load) -> T) -> T {
        let budget = self.unit * units + Duration::from_secs(3);
        self.refreshed += self.load.ensure(budget.min(MAX_STABLE));
        let before = Census::take(&mut self.sd).total();
        let started = Instant::now();
        let value = body(self.load);
        let after = Census::take(&mut self.sd).total();
        self.low = self.low.min(before).min(after);
        self.high = self.high.max(before).max(after);
        if before.abs_diff(after) * 100 > before {
            self.drifts.push(format!("{name}: {before} → {after}"));
        }
        eprintln!(
            "   {name}: {:.1} s, {before} -> {after} sockets",
            started.elapsed().as_secs_f64()
        );
        value
    }
}

/// Keeps `load` up for `seconds` (TIME_WAIT refreshed), for measuring from outside.
fn hold(load: &mut Load, seconds: u64) {
    if seconds == 0 {
        return;
    }
    eprintln!(
        "   holding {seconds} s: nsenter --net=/proc/{}/ns/net",
        load.pids()[0]
    );
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        load.ensure(Duration::from_secs(15));
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn run_scale(total: u64, options: &Options, with_node: bool) -> Scale {
    let reps = options.reps;
    let mut sd = SockDiag::open().expect("open sock_diag");
    let mut load = Load::start();
    let census = load.build(Mix::mostly_time_wait(total), &mut sd);
    eprintln!(
        "   built {} sockets in {:.1} s",
        census.total(),
        load.build_seconds
    );
    let unit_started = Instant::now();
    Census::take(&mut sd);
    let unit = unit_started.elapsed().max(Duration::from_millis(5));
    let build_seconds = load.build_seconds;
    hold(&mut load, options.hold);
    let mut floor = Proc::start("floor", &[]);
    let mut poller = Proc::start("poller", &[]);
    let mut attrib = Proc::start("attrib", &[]);
    let mut other_poller = other_build_poller();
    let mut stepper = Stepper {
        load: &mut load,
        sd,
        unit,
        low: u64::MAX,
        high: 0,
        refreshed: 0,
        drifts: Vec::new(),
    };
    let mut scale = Scale {
        total,
        census,
        build_seconds,
        ..Scale::default()
    };

    // The poll and the floors, interleaved so that drifts hit them alike.
    let units = 8 * reps as u32 + 20;
    stepper.step("poll, floor, raw floor", units, |_| {
        let (cold, extra) = sample(&poller.call("poll"));
        scale.poll_cold = cold;
        scale.cold_readlinks = extra.get(2).copied().unwrap_or(0);
        scale.cold_unattributed = extra.get(3).copied().unwrap_or(0);
        for _ in 0..reps {
            scale.floor.push(sample(&floor.call("floor")).0);
            scale.raw.push(sample(&floor.call("raw")).0);
            scale.raw_no_tw.push(sample(&floor.call("raw-no-tw")).0);
            let (poll, extra) = sample(&poller.call("poll"));
            scale.poll.push(poll);
            scale.steady_readlinks = scale
                .steady_readlinks
                .max(extra.get(2).copied().unwrap_or(0));
            scale.unattributed = extra.get(3).copied().unwrap_or(0);
            if let Some(other) = &mut other_poller {
                scale.poll_other.push(sample(&other.call("poll")).0);
            }
        }
        scale.poll_rss_kib = peak_rss(&mut poller);
        if let Some(other) = &mut other_poller {
            scale.poll_other_rss_kib = peak_rss(other);
        }
        scale.floor_rss_kib = peak_rss(&mut floor);
    });
    if options.quick {
        scale.low = stepper.low;
        scale.high = stepper.high;
        scale.refreshed = stepper.refreshed;
        scale.drifts = stepper.drifts;
        return scale;
    }
    stepper.step("listen-only sample", 2, |_| {
        for _ in 0..20 {
            scale.listen.push(sample(&floor.call("listen")).0);
        }
    });
    stepper.step("attribution", 4 * reps as u32 + 10, |_| {
        scale.attrib_warm = sample(&attrib.call("warm")).0;
        for _ in 0..reps {
            scale.attrib.push(sample(&attrib.call("steady")).0);
        }
        scale.attrib_rss_kib = peak_rss(&mut attrib);
    });
    stepper.step("ss -tan -H", 6 * reps as u32, |_| {
        for _ in 0..reps {
            let run = measure::run_program("ss", &["-tan", "-H"]);
            scale.ss_rss_kib = scale.ss_rss_kib.max(run.max_rss_kib);
            scale.ss.push(run_sample(run));
        }
    });
    // ss -p looks every socket up in a 256-bucket inode hash: minutes at 1M sockets.
    let ssp_reps = if total >= 500_000 { 1 } else { reps };
    stepper.step("ss -tanp -H", 10 * ssp_reps as u32, |_| {
        for _ in 0..ssp_reps {
            let run = measure::run_program("ss", &["-tanp", "-H"]);
            scale.ssp_rss_kib = scale.ssp_rss_kib.max(run.max_rss_kib);
            scale.ssp.push(run_sample(run));
        }
    });
    if with_node {
        stepper.step("node_exporter tcpstat", 12 * reps as u32 + 10, |_| {
            let node = NodeExporter::start(9100);
            // The first scrape also warms the Go runtime; it is kept apart.
            scale.node_first = sample_pair(node.scrape());
            for _ in 0..reps {
                scale.node.push(sample_pair(node.scrape()));
            }
            scale.node_rss_kib = node.peak_rss_kib();
            scale.node_version = NodeExporter::version();
        });
    }
    let seconds = options.scrape_seconds;
    // Start, first poll (cold) and the test itself, in dump units.
    let units = 10 + (seconds * 1000 / unit.as_millis().max(1) as u64) as u32;
    stepper.step("exporter under 32 concurrent scrapers", units, |_| {
        scale.scrape = Some(scrape_test(seconds));
    });
    scale.low = stepper.low;
    scale.high = stepper.high;
    scale.refreshed = stepper.refreshed;
    scale.drifts = stepper.drifts;
    scale.failed_connects = load.failed_connects();
    drop((floor, poller, attrib, other_poller));
    scale
}

/// `SOCKDIAG_BENCH_OTHER_POLLER=PATH`: the bench binary of another build, whose poller
/// runs beside ours on the same load, poll for poll (an A/B within one run). Its cold
/// poll is taken at once, so that its steady polls interleave with ours.
fn other_build_poller() -> Option<Proc> {
    let path = std::env::var_os("SOCKDIAG_BENCH_OTHER_POLLER")?;
    let mut other = Proc::spawn_program(std::path::Path::new(&path), "poller", &[]);
    let line = other.read_line();
    assert_eq!(line, "ready", "other build's poller said {line:?}");
    other.call("poll");
    Some(other)
}

fn sample_pair((wall, cpu): (Duration, Duration)) -> Sample {
    Sample { wall, cpu }
}

/// The real binary, polling every 100 ms (back to back at 1M sockets), under 32 scrapers
/// firing together every 100 ms.
fn scrape_test(seconds: u64) -> Scrape {
    let address = SocketAddr::from(([127, 0, 0, 1], 10120));
    // SOCKDIAG_BENCH_EXPORTER runs another build of the binary (A/B comparisons).
    let program = std::env::var("SOCKDIAG_BENCH_EXPORTER")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_sockdiag_exporter").to_string());
    let mut command = Command::new(program);
    // cargo passes the build script's SOCKDIAG_REVISION on; the exporter would read it as
    // configuration.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SOCKDIAG_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .args([
            &format!("--web.listen-address={address}"),
            "--poll.interval=100ms",
            "--log.level=warn",
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("start sockdiag_exporter");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !http::is_ok(address, "/-/ready") {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("sockdiag_exporter exited before its first poll: {status}");
        }
        assert!(Instant::now() < deadline, "sockdiag_exporter not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut conn = http::Conn::open(address).expect("connect exporter");
    let (_, body) = conn
        .get("/metrics", http::ACCEPT_PROMETHEUS)
        .expect("scrape");
    let series = http::series(&body);
    // Kept for a look at what the series are (not part of the report).
    let _ = std::fs::write(
        std::env::temp_dir().join("sockdiag-bench-scrape.txt"),
        &body,
    );
    let bytes = body.len();
    let text = String::from_utf8_lossy(&body);
    let poll_seconds = text
        .lines()
        .find_map(|l| l.strip_prefix("sockdiag_poll_duration_seconds "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    let cpu = measure::cpu_of(pid);
    let started = Instant::now();
    let latency = http::concurrent_scrapes(
        address,
        "/metrics",
        32,
        Duration::from_millis(100),
        Duration::from_secs(seconds),
    );
    let wall = started.elapsed();
    let cpu = measure::cpu_of(pid).saturating_sub(cpu);
    let rss = measure::rss_kib(&pid.to_string()).0;
    let _ = child.kill();
    let _ = child.wait();
    Scrape {
        latency,
        series,
        bytes,
        poll_seconds,
        cpu_share: cpu.as_secs_f64() / wall.as_secs_f64(),
        exporter_rss_kib: rss,
    }
}
