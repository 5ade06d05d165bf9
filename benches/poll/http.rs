//! A minimal HTTP/1.1 client (keep-alive, Content-Length or chunked bodies) and the
//! concurrent-scrape latency test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// What Prometheus sends.
pub const ACCEPT_PROMETHEUS: &str = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(address: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Conn {
            reader: BufReader::with_capacity(256 * 1024, stream),
        })
    }

    /// GET `path`; returns (status, body).
    pub fn get(&mut self, path: &str, accept: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\n\r\n");
        self.reader.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(&format!("bad status line {line:?}")))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| invalid(&format!("bad chunk size {line:?}")))?;
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..])?;
                line.clear();
                self.reader.read_line(&mut line)?;
                if size == 0 {
                    break;
                }
            }
        } else if let Some(length) = length {
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
        } else {
            return Err(invalid("response without a length"));
        }
        Ok((status, body))
    }
}

fn invalid(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string())
}

/// Waits until `address` accepts connections.
pub fn wait_listening(address: SocketAddr, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "{address} not listening");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when GET `path` answers 200.
pub fn is_ok(address: SocketAddr, path: &str) -> bool {
    Conn::open(address)
        .and_then(|mut conn| conn.get(path, "*/*"))
        .is_ok_and(|(status, _)| status == 200)
}

/// Number of samples in an exposition (lines that are not comments).
pub fn series(body: &[u8]) -> usize {
    String::from_utf8_lossy(body)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// Result of the concurrent-scrape test.
#[derive(Debug, Clone, Default)]
pub struct ScrapeLatency {
    pub scrapers: usize,
    pub samples: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub failed: usize,
}

/// `scrapers` keep-alive clients fire at the same instant every `period` for `duration`
/// (32 truly concurrent scrapes per round); returns the latency distribution.
pub fn concurrent_scrapes(
    address: SocketAddr,
    path: &str,
    scrapers: usize,
    period: Duration,
    duration: Duration,
) -> ScrapeLatency {
    let rounds = (duration.as_nanos() / period.as_nanos()).max(1) as u32;
    let barrier = Arc::new(Barrier::new(scrapers));
    let start = Instant::now() + Duration::from_millis(200);
    let handles: Vec<_> = (0..scrapers)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let path = path.to_string();
            std::thread::spawn(move || {
                let mut conn = Conn::open(address).expect("connect exporter");
                barrier.wait();
                let mut latencies = Vec::with_capacity(rounds as usize);
                let mut failed = 0;
                for round in 0..rounds {
                    let at = start + period * round;
                    if let Some(wait) = at.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let began = Instant::now();
                    match conn.get(&path, ACCEPT_PROMETHEUS) {
                        Ok((200, _)) => latencies.push(began.elapsed()),
                        _ => {
                            failed += 1;
                            conn = Conn::open(address).expect("reconnect exporter");
                        }
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut failed = 0;
    for handle in handles {
        let (latencies, f) = handle.join().expect("scraper");
        all.extend(latencies);
        failed += f;
    }
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    ScrapeLatency {
        scrapers,
        samples: all.len(),
        p50: pick(0.50),
        p99: pick(0.99),
        max: all.last().copied().unwrap_or_default(),
        failed,
    }
}
