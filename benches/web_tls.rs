//! Scrape cost of web security: p50/p99 latency of 32 concurrent keep-alive scrapers over
//! plain HTTP and over TLS, and the exporter's CPU per 1,000 scrapes with basic auth, the
//! credential cached against checked for the first time (bcrypt cost 10).
//!
//! `sudo benches/web_tls.sh` (or `cargo bench --bench web_tls`): runs in a private network
//! namespace, on loopback, with certificates made by openssl in a temp dir. Prints a
//! Markdown table for docs/benchmarks.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use base64::Engine;

#[allow(dead_code)]
#[path = "../tests/integration/pki.rs"]
mod pki;

const BIN: &str = env!("CARGO_BIN_EXE_sockdiag_exporter");
const ADDRESS: &str = "127.0.0.1:10120";
const SCRAPERS: usize = 32;
const ROUNDS: usize = 200;
const PERIOD: Duration = Duration::from_millis(20);
const CACHED_SCRAPES: usize = 5000;
const FIRST_TIME_SCRAPES: usize = 50;

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

struct Exporter(Child);

impl Exporter {
    fn start(web_config: Option<&Path>) -> Exporter {
        let mut command = Command::new(BIN);
        command
            .args([
                &format!("--web.listen-address={ADDRESS}"),
                "--poll.interval=1h",
                "--log.level=warn",
            ])
            .env_clear()
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(file) = web_config {
            command.arg(format!("--web.config.file={}", file.display()));
        }
        let child = command.spawn().expect("start exporter");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(ADDRESS).is_err() {
            assert!(Instant::now() < deadline, "exporter not listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(1500)); // the first (and only) poll
        Exporter(child)
    }

    /// User plus system CPU time of the process so far.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn clock_ticks() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn connect(tls: Option<&Arc<rustls::ClientConfig>>) -> Box<dyn Stream> {
    let tcp = TcpStream::connect(ADDRESS).expect("connect");
    tcp.set_nodelay(true).unwrap();
    match tls {
        None => Box::new(tcp),
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let conn = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
    }
}

/// One keep-alive GET; returns the status.
fn get(stream: &mut Box<dyn Stream>, authorization: Option<&str>) -> u16 {
    let auth = authorization
        .map(|a| format!("Authorization: Basic {a}\r\n"))
        .unwrap_or_default();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\n{auth}\r\n").unwrap();
    stream.flush().unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = 0;
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if status == 0 {
            status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        } else if line == "\r\n" {
            break;
        } else if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    assert!(reader.buffer().is_empty());
    status
}

/// p50, p99, and the exporter's CPU per 1,000 scrapes.
fn percentiles(
    exporter: &Exporter,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> (Duration, Duration, Duration) {
    let before = exporter.cpu();
    let barrier = Arc::new(Barrier::new(SCRAPERS));
    let handles: Vec<_> = (0..SCRAPERS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let tls = tls.clone();
            std::thread::spawn(move || {
                let mut stream = connect(tls.as_ref());
                assert_eq!(get(&mut stream, None), 200); // handshake out of the figures
                let mut latencies = Vec::with_capacity(ROUNDS);
                for _ in 0..ROUNDS {
                    barrier.wait();
                    let began = Instant::now();
                    assert_eq!(get(&mut stream, None), 200);
                    latencies.push(began.elapsed());
                    std::thread::sleep(PERIOD);
                }
                latencies
            })
        })
        .collect();
    let mut all: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    let cpu = (exporter.cpu() - before) * 1000 / all.len() as u32;
    let pick = |q: f64| all[((all.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    (pick(0.50), pick(0.99), cpu)
}

fn basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// Exporter CPU per 1,000 scrapes of `scrapes` sequential keep-alive scrapes.
fn cpu_per_1000(
    exporter: &Exporter,
    scrapes: usize,
    credential: impl Fn(usize) -> Option<String>,
    expect: u16,
) -> Duration {
    let mut stream = connect(None);
    let before = exporter.cpu();
    for i in 0..scrapes {
        assert_eq!(get(&mut stream, credential(i).as_deref()), expect);
    }
    (exporter.cpu() - before) * 1000 / scrapes as u32
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench` asks harness-less benches for a list.
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare(CLONE_NEWNET): run as root");
    assert!(Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap()
        .success());
    let pki = pki::Pki::new("web-bench");
    let dir = pki.dir.clone();
    let tls_yml = dir.join("tls.yml");
    std::fs::write(
        &tls_yml,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .unwrap();
    let auth_yml = dir.join("auth.yml");
    let hash = bcrypt::hash("s3cret", 10).unwrap();
    std::fs::write(
        &auth_yml,
        format!("basic_auth_users:\n  prometheus: {hash}\n"),
    )
    .unwrap();

    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(dir.join("ca.crt")).unwrap();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );

    let (plain, unauthenticated) = {
        let exporter = Exporter::start(None);
        let plain = percentiles(&exporter, None);
        (
            plain,
            cpu_per_1000(&exporter, CACHED_SCRAPES, |_| None, 200),
        )
    };
    let tls = {
        let exporter = Exporter::start(Some(&tls_yml));
        percentiles(&exporter, Some(client))
    };
    let (cached, first) = {
        let exporter = Exporter::start(Some(&auth_yml));
        let right = basic("prometheus", "s3cret");
        let cached = cpu_per_1000(&exporter, CACHED_SCRAPES, |_| Some(right.clone()), 200);
        let first = cpu_per_1000(
            &exporter,
            FIRST_TIME_SCRAPES,
            |i| Some(basic("prometheus", &format!("guess-{i}"))),
            401,
        );
        (cached, first)
    };
    drop(pki);
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| Scrape, {SCRAPERS} concurrent keep-alive scrapers, {ROUNDS} rounds | p50 | p99 | exporter CPU per 1,000 scrapes |"
    );
    println!("|---|---|---|---|");
    for (name, (p50, p99, cpu)) in [
        ("plain HTTP", plain),
        ("TLS 1.3 (rustls, ECDSA P-256)", tls),
    ] {
        println!("| {name} | {} | {} | {} |", ms(p50), ms(p99), ms(cpu));
    }
    println!();
    println!("| Basic auth, exporter CPU per 1,000 scrapes | CPU |");
    println!("|---|---|");
    println!(
        "| no auth configured, same loop ({CACHED_SCRAPES} scrapes) | {} |",
        ms(unauthenticated)
    );
    println!(
        "| cached credential ({CACHED_SCRAPES} scrapes) | {} |",
        ms(cached)
    );
    println!(
        "| first-time credential, bcrypt cost 10 ({FIRST_TIME_SCRAPES} scrapes, scaled) | {} |",
        ms(first)
    );
}
