//! Starts the real `sockdiag_exporter` binary as a child process of the calling thread
//! (so inside its network namespace), reads its log, scrapes it over loopback, and stops
//! it by pid when dropped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sockdiag_exporter");

pub struct Exporter {
    child: Child,
    /// The inode of the network namespace the exporter runs in: its series are the ones
    /// [`Exporter::scrape`] returns.
    netns_inode: u64,
    pub address: SocketAddr,
    log: mpsc::Receiver<String>,
    pub log_lines: Vec<String>,
    /// A directory to remove once the process is gone.
    cleanup: Option<std::path::PathBuf>,
}

impl Exporter {
    /// Starts the exporter listening on 127.0.0.1:`port` with debug logs and `args`.
    pub fn start(port: u16, args: &[&str]) -> Exporter {
        Exporter::start_with(port, args, |_| {})
    }

    /// As `start`, letting `customize` set environment variables and so on.
    pub fn start_with(port: u16, args: &[&str], customize: impl FnOnce(&mut Command)) -> Exporter {
        Exporter::spawn(BIN, port, args, customize)
    }

    /// Starts the exporter as an unprivileged user (uid and gid 65534, no capabilities).
    /// The binary is copied to a world-readable directory first: the checkout may sit
    /// below a directory that user cannot enter.
    pub fn start_unprivileged(port: u16, args: &[&str]) -> Exporter {
        Exporter::start_unprivileged_with(port, args, &[])
    }

    /// As `start_unprivileged`, with environment variables `env`.
    pub fn start_unprivileged_with(port: u16, args: &[&str], env: &[(&str, &str)]) -> Exporter {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        // A directory per call: two tests copying into one would make the other's exec
        // fail with ETXTBSY.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "sockdiag-unprivileged-{}-{call}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.join("sockdiag_exporter");
        std::fs::copy(BIN, &bin).expect("copy exporter binary");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut exporter = Exporter::spawn(bin.to_str().unwrap(), port, args, |c| {
            // std drops supplementary groups when root sets a uid.
            c.uid(65534).gid(65534).envs(env.iter().copied());
        });
        exporter.cleanup = Some(dir);
        exporter
    }

    /// Starts the exporter under `prlimit --nofile=SOFT:HARD`.
    pub fn start_with_nofile(port: u16, nofile: u64, args: &[&str]) -> Exporter {
        let limit = format!("--nofile={nofile}:{nofile}");
        Exporter::spawn("prlimit", port, args, |c| {
            let mut wrapped = Command::new("prlimit");
            wrapped.env_clear().args([limit.as_str(), BIN]);
            *c = wrapped;
        })
    }

    fn spawn(
        bin: &str,
        port: u16,
        args: &[&str],
        customize: impl FnOnce(&mut Command),
    ) -> Exporter {
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut command = Command::new(bin);
        command.env_clear();
        // `customize` may replace the command (a wrapper): it runs first.
        customize(&mut command);
        command
            .arg(format!("--web.listen-address={address}"))
            .arg("--log.level=debug");
        // Only the test's own namespace, unless the test asks for every one: the other
        // tests' namespaces (and the host's) are not this test's to count.
        if !args.iter().any(|a| a.starts_with("--namespaces")) {
            command.arg("--namespaces=own");
        }
        command.args(args);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sockdiag_exporter");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Exporter {
            child,
            netns_inode: own_netns_inode(),
            address,
            log,
            log_lines: Vec::new(),
            cleanup: None,
        }
    }

    /// Waits for a log line containing `needle`, failing the test after `timeout`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.log_lines.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line containing {needle:?} within {timeout:?}; log so far:\n{}",
                    self.log_lines.join("\n")
                ),
            }
        }
    }

    /// Waits until the first poll has been published (the poller logs it at debug).
    pub fn wait_for_poll(&mut self) {
        self.wait_for_log("poll done", Duration::from_secs(20));
    }

    /// Waits for a poll that started after this call: drops the log read so far, then
    /// waits for two "poll done" lines (the first may belong to a poll already running).
    /// A poll that left sockets `pending` (owners its budgeted /proc scan did not reach
    /// yet: other tests' processes churn beside this one) is followed by up to
    /// `SETTLE_POLLS` more, so that tests asserting owners see the settled names.
    pub fn wait_for_fresh_poll(&mut self) {
        const SETTLE_POLLS: usize = 5;
        while let Ok(line) = self.log.try_recv() {
            self.log_lines.push(line);
        }
        self.wait_for_poll();
        let mut done = self.wait_for_log("poll done", Duration::from_secs(20));
        for _ in 0..SETTLE_POLLS {
            if !done.contains(" pending=") || done.contains(" pending=0 ") {
                break;
            }
            done = self.wait_for_log("poll done", Duration::from_secs(20));
        }
    }

    /// Moves every line logged so far into `log_lines`.
    pub fn drain_log(&mut self) {
        while let Ok(line) = self.log.try_recv() {
            self.log_lines.push(line);
        }
    }

    pub fn get(&self, path: &str, accept: Option<&str>) -> Response {
        http_get(self.address, path, accept)
    }

    /// Scrapes the telemetry path in text format 0.0.4: the series of the exporter's own
    /// network namespace with their `netns` label taken out, and the series that have
    /// none. Which label is ours comes from `sockdiag_netns_info`'s inode.
    pub fn scrape(&self) -> Scrape {
        self.scrape_all().only_netns(self.netns_inode)
    }

    /// Scrapes every series, every namespace's.
    pub fn scrape_all(&self) -> Scrape {
        let response = self.get("/metrics", None);
        assert_eq!(response.status, 200, "scrape failed: {}", response.body);
        Scrape::parse(&response.body)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` and waits up to `timeout` for the process to exit.
    pub fn signal_and_wait(
        &mut self,
        signal: nix::sys::signal::Signal,
        timeout: Duration,
    ) -> Option<ExitStatus> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).expect("kill");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.cleanup {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// A minimal HTTP/1.0 GET. The socket closes with SO_LINGER 0 (RST), so a scrape leaves
/// no TIME_WAIT or FIN_WAIT socket behind to disturb the counts a test asserts.
pub fn http_get(address: SocketAddr, path: &str, accept: Option<&str>) -> Response {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
    socket
        .connect_timeout(&address.into(), Duration::from_secs(5))
        .expect("connect to exporter");
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {address}\r\n{accept}Connection: close\r\n\r\n"
    )
    .expect("send request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Samples of a text-format scrape, keyed by `name{labels}` exactly as exposed.
pub struct Scrape {
    pub samples: BTreeMap<String, f64>,
    pub text: String,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("sample line");
                (
                    series.to_string(),
                    value.parse::<f64>().expect("sample value"),
                )
            })
            .collect();
        Scrape {
            samples,
            text: text.to_string(),
        }
    }

    /// The `netns` label of the namespace with this inode, from `sockdiag_netns_info`.
    pub fn netns_label(&self, inode: u64) -> Option<String> {
        let needle = format!(",inode=\"{inode}\",");
        self.samples.keys().find_map(|series| {
            let rest = series.strip_prefix("sockdiag_netns_info{netns=\"")?;
            let (label, tail) = rest.split_once('"')?;
            tail.starts_with(&needle).then(|| label.to_string())
        })
    }

    /// The series of the namespace with this inode, without their `netns` label, and
    /// those without one.
    pub fn only_netns(self, inode: u64) -> Scrape {
        let label = self.netns_label(inode).unwrap_or_else(|| {
            panic!(
                "no sockdiag_netns_info for namespace {inode}:\n{}",
                self.text
            )
        });
        let ours = format!("netns=\"{label}\"");
        let samples = self
            .samples
            .into_iter()
            .filter_map(|(series, value)| {
                let Some((name, labels)) = series.split_once('{') else {
                    return Some((series, value));
                };
                if !labels.starts_with("netns=") {
                    return Some((series, value));
                }
                let rest = labels.strip_prefix(ours.as_str())?;
                let series = match rest.strip_prefix(',') {
                    Some(rest) => format!("{name}{{{rest}"),
                    None => name.to_string(),
                };
                Some((series, value))
            })
            .collect();
        Scrape {
            samples,
            text: self.text,
        }
    }

    /// The value of `series` (e.g. `sockdiag_tcp_sockets{family="ipv4",state="listen"}`);
    /// fails the test when the series is absent.
    pub fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("series {series} not in scrape:\n{}", self.text))
    }

    /// Every series of family `name` as `{labels} value` lines, sorted: for exact
    /// comparisons of a whole family.
    pub fn lines(&self, name: &str) -> Vec<String> {
        self.family(name)
            .into_iter()
            .map(|(labels, value)| format!("{labels} {value}"))
            .collect()
    }

    /// Every series of family `name`, label text -> value.
    pub fn family(&self, name: &str) -> BTreeMap<String, f64> {
        self.samples
            .iter()
            .filter_map(|(series, value)| {
                let rest = series.strip_prefix(name)?;
                if rest.is_empty() || rest.starts_with('{') {
                    Some((rest.to_string(), *value))
                } else {
                    None
                }
            })
            .collect()
    }
}

/// The inode of the calling thread's network namespace.
pub fn own_netns_inode() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .expect("stat /proc/thread-self/ns/net")
        .ino()
}
