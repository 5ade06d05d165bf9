//! Issue 17: the exporter stopped and continued (SIGSTOP, SIGCONT), and started under a low
//! open-file limit. Each test is named after the defect it guards against.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::exporter::{Exporter, Scrape, BIN};
use crate::netns::in_netns;

const LAST_SUCCESS: &str = "sockdiag_last_poll_success_timestamp_seconds";

/// Starts the exporter as the first process of a new PID namespace with its own /proc
/// (`unshare --pid --fork --mount-proc`, under `prlimit` with `nofile`): its polls read
/// only its own /proc, however many descriptors the host's other processes hold. Returns
/// it with the exporter's own pid, the one to signal.
fn start_alone(nofile: Option<u64>, args: &[&str], env: &[(&str, &str)]) -> (Exporter, Pid) {
    let mut wrapper: Vec<String> = Vec::new();
    if let Some(nofile) = nofile {
        wrapper.extend(["prlimit".into(), format!("--nofile={nofile}:{nofile}")]);
    }
    wrapper.extend(
        [
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            BIN,
        ]
        .map(String::from),
    );
    let exporter = Exporter::start_with(10120, args, |c| {
        let mut wrapped = Command::new(&wrapper[0]);
        wrapped
            .env_clear()
            .args(&wrapper[1..])
            .envs(env.iter().copied());
        *c = wrapped;
    });
    let unshare = exporter.pid();
    let children = format!("/proc/{unshare}/task/{unshare}/children");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&children).unwrap_or_default();
        if let Some(child) = text.split_whitespace().next() {
            return (exporter, Pid::from_raw(child.parse().unwrap()));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "unshare forked no exporter"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Sends a whole scrape request on `stream`.
fn send_scrape(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
}

/// Reads the response to [`send_scrape`]: the status and the samples.
fn read_scrape(stream: &mut TcpStream) -> (u16, Scrape) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, Scrape::parse(body))
}

/// Stops longer than the header timeout: a request sent during a stop is answered after
/// SIGCONT (the header deadline, due meanwhile, fired before the I/O driver had seen the
/// request and closed 13 of 20 such connections), staleness shows in the timestamp of the
/// last successful poll, polls resume, and nothing is counted as an error.
fn request_sent_during_sigstop_was_closed_as_a_header_timeout() {
    in_netns(|| {
        // The next poll is due 5 s after the first: the 3 s stop ends before it.
        let (mut exporter, pid) = start_alone(
            None,
            &["--poll.interval=5s"],
            &[("SOCKDIAG_WEB__HEADER_READ_TIMEOUT", "1s")],
        );
        exporter.wait_for_poll();
        let before = exporter.scrape().value(LAST_SUCCESS);
        // Accepted before the stop, their requests sent during it. Each raced its header
        // deadline (13 of 20 lost): five make the race all but certain to show.
        let mut early: Vec<TcpStream> = (0..5)
            .map(|_| TcpStream::connect(exporter.address).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        kill(pid, Signal::SIGSTOP).unwrap();
        let stopped_at = now();
        for stream in &mut early {
            send_scrape(stream);
        }
        let mut during = TcpStream::connect(exporter.address).unwrap();
        send_scrape(&mut during);
        std::thread::sleep(Duration::from_secs(3));
        kill(pid, Signal::SIGCONT).unwrap();
        let continued_at = now();

        let streams = early.iter_mut().map(|s| ("early", s));
        for (which, stream) in streams.chain([("during", &mut during)]) {
            let (status, scrape) = read_scrape(stream);
            assert_eq!(status, 200, "{which}: {}", scrape.text);
            let stale = scrape.value(LAST_SUCCESS);
            assert_eq!(stale, before, "{which}: no poll ran during the stop");
            assert!(
                continued_at - stale >= 3.0,
                "{which}: the last success is {:.1} s before SIGCONT",
                continued_at - stale
            );
        }
        assert!(before <= stopped_at);

        // Short stops, one connection each, as a frozen VM would make them: each raced.
        for round in 0..8 {
            let mut early = TcpStream::connect(exporter.address).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            kill(pid, Signal::SIGSTOP).unwrap();
            send_scrape(&mut early);
            std::thread::sleep(Duration::from_millis(1300));
            kill(pid, Signal::SIGCONT).unwrap();
            let (status, _) = read_scrape(&mut early);
            assert_eq!(status, 200, "round {round}");
        }

        exporter.wait_for_fresh_poll();
        let after = exporter.scrape();
        assert!(
            after.value(LAST_SUCCESS) > continued_at,
            "polls resumed: last success {} <= SIGCONT at {continued_at}",
            after.value(LAST_SUCCESS)
        );
        let errors = after.family("sockdiag_poll_errors_total");
        assert!(errors.values().all(|v| *v == 0.0), "{errors:?}");
        let closed = after.family("sockdiag_http_connections_closed_total");
        assert!(closed.values().all(|v| *v == 0.0), "{closed:?}");
        assert_eq!(after.value("sockdiag_http_accept_errors_total"), 0.0);
    });
}

/// Below 9 open files the async runtime failed to start with "Too many open files"; from
/// 9 to about 20 the exporter started, then its polls and accepts failed with EMFILE and
/// /metrics was unreachable, with nothing but warnings.
fn low_open_file_limit_failed_with_emfile_or_unreachable() {
    for nofile in [8, 16, 31] {
        // Refused before binding; in a namespace of its own all the same.
        let out = in_netns(move || {
            Command::new("prlimit")
                .arg(format!("--nofile={nofile}:{nofile}"))
                .arg(BIN)
                .args(["--web.listen-address=127.0.0.1:1", "--namespaces=own"])
                .env_clear()
                .stdin(Stdio::null())
                .output()
                .expect("run prlimit (util-linux)")
        });
        assert_eq!(out.status.code(), Some(78), "nofile {nofile}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "sockdiag_exporter: the open-file limit (RLIMIT_NOFILE) is {nofile}; the exporter \
                 needs at least 32 (the async runtime, the listeners, netlink sockets, /proc \
                 reads and a few HTTP connections): raise it (LimitNOFILE= in the systemd unit, \
                 ulimit -n, prlimit --nofile)\n"
            )
        );
    }
    // At the floor: serving, polls without error, the lowered cap exposed.
    in_netns(|| {
        let (mut exporter, _) = start_alone(Some(32), &["--poll.interval=200ms"], &[]);
        exporter.wait_for_poll();
        exporter.wait_for_fresh_poll();
        let scrape = exporter.scrape();
        assert_eq!(scrape.value("sockdiag_http_connections_max"), 8.0);
        let errors = scrape.family("sockdiag_poll_errors_total");
        assert!(errors.values().all(|v| *v == 0.0), "{errors:?}");
        exporter.drain_log();
        assert!(
            exporter.log_lines.iter().any(|l| l
                .contains("connection limit lowered to keep file descriptors for polls nofile=32")),
            "{:#?}",
            exporter.log_lines
        );
    });
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        request_sent_during_sigstop_was_closed_as_a_header_timeout,
        low_open_file_limit_failed_with_emfile_or_unreachable,
    ]
}
