//! Issue 16: the exporter probed as a hostile client and as an SRE would probe it. Each
//! test is named after the defect it guards against.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::exporter::{Exporter, BIN};
use crate::netns::in_netns;

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect to exporter");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
}

/// Reads until the peer closes (EOF or reset); returns how long that took.
fn closed_after(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return start.elapsed(),
            Ok(_) => {}
        }
    }
}

/// One keep-alive request on `stream`; returns the status.
fn keep_alive_get(stream: &mut TcpStream, path: &str) -> u16 {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("content-length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A connection with half a request header sent, and a keep-alive one after a response.
fn partial_and_idle(address: SocketAddr) -> (TcpStream, TcpStream) {
    let mut partial = connect(address);
    partial
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut idle = connect(address);
    assert_eq!(keep_alive_get(&mut idle, "/-/healthy"), 200);
    (partial, idle)
}

fn stalled_connections_were_never_closed() {
    in_netns(|| {
        let mut exporter = Exporter::start_with(10120, &["--poll.interval=1h"], |c| {
            c.env("SOCKDIAG_WEB__HEADER_READ_TIMEOUT", "1s")
                .env("SOCKDIAG_WEB__IDLE_TIMEOUT", "3s");
        });
        exporter.wait_for_poll();
        let mut silent = connect(exporter.address);
        let (mut partial, mut idle) = partial_and_idle(exporter.address);
        let silent_after = closed_after(&mut silent);
        let partial_after = closed_after(&mut partial);
        assert!(
            silent_after < Duration::from_secs(5),
            "silent connection open {silent_after:?}"
        );
        assert!(
            partial_after < Duration::from_secs(5),
            "partial header open {partial_after:?}"
        );
        // The keep-alive connection outlives the header timeout, then closes when idle.
        // Timed from before the request: its idle time starts after the request was sent,
        // so however late this thread is scheduled to read the response, the close cannot
        // come before the 3 s idle timeout (timing from the response read failed on a
        // loaded CI machine at 1.7 s).
        let asked = Instant::now();
        assert_eq!(keep_alive_get(&mut idle, "/-/healthy"), 200);
        closed_after(&mut idle);
        let idle_after = asked.elapsed();
        assert!(
            idle_after >= Duration::from_millis(2_990) && idle_after < Duration::from_secs(8),
            "idle keep-alive closed {idle_after:?} after its last request"
        );
        let scrape = exporter.scrape();
        assert_eq!(
            scrape.value("sockdiag_http_connections_closed_total{reason=\"header_timeout\"}"),
            2.0
        );
        assert_eq!(
            scrape.value("sockdiag_http_connections_closed_total{reason=\"idle_timeout\"}"),
            1.0
        );
    });
}

/// 1,100 idle connections under a 1,024 file limit made /metrics unreachable and every
/// poll fail its /proc stage. Here: 300 idle connections under a limit of 256.
fn idle_connections_under_a_low_file_limit_locked_out_scrapes_and_polls() {
    in_netns(|| {
        let mut exporter = Exporter::start_with_nofile(10120, 256, &["--poll.interval=300ms"]);
        exporter.wait_for_poll();
        let idle: Vec<TcpStream> = (0..300).map(|_| connect(exporter.address)).collect();
        std::thread::sleep(Duration::from_millis(500));
        exporter.wait_for_fresh_poll();
        let scrape = exporter.scrape();
        // 256 - 128 descriptors kept for polls and the runtime.
        assert_eq!(scrape.value("sockdiag_http_connections_max"), 128.0);
        assert!(scrape.value("sockdiag_http_connections_open") <= 128.0);
        assert!(
            scrape.value("sockdiag_http_connections_closed_total{reason=\"evicted\"}") >= 172.0,
            "{}",
            scrape.text
        );
        assert_eq!(scrape.value("sockdiag_http_accept_errors_total"), 0.0);
        let errors = scrape.family("sockdiag_poll_errors_total");
        assert!(errors.contains_key("{stage=\"proc_index\"}"), "{errors:?}");
        assert!(
            errors.values().all(|v| *v == 0.0),
            "polls failed: {errors:?}"
        );
        drop(idle);
    });
}

/// At the cap, the oldest connection without a request in flight makes room: idle or
/// silent clients cannot lock a scraper out.
fn idle_clients_at_the_cap_locked_out_the_scraper() {
    in_netns(|| {
        let mut exporter = Exporter::start_with(10120, &["--poll.interval=1h"], |c| {
            c.env("SOCKDIAG_WEB__MAX_CONNECTIONS", "2");
        });
        exporter.wait_for_poll();
        let mut oldest = connect(exporter.address);
        std::thread::sleep(Duration::from_millis(50));
        let _newer = connect(exporter.address);
        std::thread::sleep(Duration::from_millis(200));
        let scrape = exporter.scrape();
        assert_eq!(scrape.value("sockdiag_http_connections_max"), 2.0);
        assert_eq!(
            scrape.value("sockdiag_http_connections_closed_total{reason=\"evicted\"}"),
            1.0
        );
        assert_eq!(scrape.value("sockdiag_http_connections_refused_total"), 0.0);
        assert!(closed_after(&mut oldest) < Duration::from_secs(1));
    });
}

fn oversized_request_header_grew_the_read_buffer() {
    in_netns(|| {
        let mut exporter = Exporter::start(10120, &["--poll.interval=1h"]);
        exporter.wait_for_poll();
        let mut stream = connect(exporter.address);
        let big = "a".repeat(20 * 1024);
        let _ = write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"
        );
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
    });
}

fn non_utf8_environment_variable_panicked_at_start() {
    let bad = OsString::from_vec(vec![b'x', 0xff]);
    in_netns(move || {
        let mut exporter = Exporter::start_with(10120, &["--poll.interval=1h"], |c| {
            c.env("UNRELATED", &bad);
        });
        exporter.wait_for_poll();
        assert_eq!(exporter.get("/-/healthy", None).status, 200);
    });
    let out = Command::new(BIN)
        .env_clear()
        .env("SOCKDIAG_LOG__LEVEL", OsString::from_vec(vec![b'x', 0xff]))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sockdiag_exporter: invalid configuration (1 problem):\n  \
         environment variable SOCKDIAG_LOG__LEVEL: not valid UTF-8: \"x\u{fffd}\"\n"
    );
}

fn run_expecting_78(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(78), "{args:?}: {stderr}");
    stderr
}

fn config_values_panicked_instead_of_exiting_78() {
    assert_eq!(
        run_expecting_78(&["--web.max-requests=2305843009213693952"]),
        "sockdiag_exporter: invalid configuration (1 problem):\n  \
         flag --web.max-requests: `web.max_requests` = \"2305843009213693952\": must be at most 100000\n"
    );
    for (path, bad) in [("/{x}", "'{'"), ("/a:b", "':'"), ("/*x", "'*'")] {
        assert_eq!(
            run_expecting_78(&[&format!("--web.telemetry-path={path}")]),
            format!(
                "sockdiag_exporter: invalid configuration (1 problem):\n  \
                 flag --web.telemetry-path: `web.telemetry_path` = {path:?}: {bad} is not allowed: \
                 a path is literal, made of letters, digits and / - . _ ~\n"
            )
        );
    }
    assert_eq!(
        run_expecting_78(&["--poll.interval=500000000y"]),
        "sockdiag_exporter: invalid configuration (1 problem):\n  \
         flag --poll.interval: `poll_interval` = \"500000000y\": must be at most 1day\n"
    );
}

fn flag_errors_exited_2() {
    let unknown = run_expecting_78(&["--web.listen-adress=:1"]);
    assert!(
        unknown.starts_with("error: unexpected argument '--web.listen-adress' found"),
        "{unknown}"
    );
    let twice = run_expecting_78(&["--poll.interval=1s", "--poll.interval=2s"]);
    assert!(twice.contains("cannot be used multiple times"), "{twice}");
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
}

fn config_file_errors_named_no_path_or_the_wrong_cause() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("sockdiag-perm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("secret.toml");
    std::fs::write(&file, "poll_interval = \"5s\"\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bin = dir.join("sockdiag_exporter");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = {
        use std::os::unix::process::CommandExt;
        Command::new(&bin)
            .arg(format!("--config.file={}", file.display()))
            .env_clear()
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let for_dir = run_expecting_78(&[&format!("--config.file={}", dir.display())]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "sockdiag_exporter: invalid configuration (1 problem):\n  \
             {}: cannot read the config file: Permission denied (os error 13)\n",
            file.display()
        )
    );
    assert_eq!(
        for_dir,
        format!(
            "sockdiag_exporter: invalid configuration (1 problem):\n  \
             {}: not a regular file (a directory)\n",
            dir.display()
        )
    );
}

fn sighup_terminated_the_exporter() {
    in_netns(|| {
        let mut exporter = Exporter::start(10120, &["--poll.interval=1h"]);
        exporter.wait_for_poll();
        assert_eq!(
            exporter.signal_and_wait(Signal::SIGHUP, Duration::from_millis(500)),
            None
        );
        exporter.wait_for_log("ignored: no web config to reload", Duration::from_secs(2));
        assert_eq!(exporter.get("/-/healthy", None).status, 200);
    });
}

fn half_sent_request_held_shutdown_for_the_drain_deadline() {
    in_netns(|| {
        let mut exporter = Exporter::start(10120, &["--poll.interval=1h"]);
        exporter.wait_for_poll();
        // Held open until the exporter has exited.
        let _stalled = partial_and_idle(exporter.address);
        std::thread::sleep(Duration::from_millis(100));
        let start = Instant::now();
        let status = exporter
            .signal_and_wait(Signal::SIGTERM, Duration::from_secs(6))
            .expect("exporter still running after SIGTERM");
        let took = start.elapsed();
        assert_eq!(status.code(), Some(0));
        // The drain deadline is 5 s; idle and half-sent connections must not wait for it.
        assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
        exporter.wait_for_log("stopped", Duration::from_secs(1));
    });
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        stalled_connections_were_never_closed,
        idle_connections_under_a_low_file_limit_locked_out_scrapes_and_polls,
        idle_clients_at_the_cap_locked_out_the_scraper,
        oversized_request_header_grew_the_read_buffer,
        non_utf8_environment_variable_panicked_at_start,
        config_values_panicked_instead_of_exiting_78,
        flag_errors_exited_2,
        config_file_errors_named_no_path_or_the_wrong_cause,
        sighup_terminated_the_exporter,
        half_sent_request_held_shutdown_for_the_drain_deadline,
    ]
}
