//! `sockdiag_exporter report` against the incidents, in a private network namespace: a
//! CLOSE_WAIT leak growing at a known rate (incident 1), a full backlog holding
//! never-accepted CLOSE_WAIT (incident 5), a TIME_WAIT loop (incident 4) and a php-fpm
//! UNIX socket whose backlog is full. The report
//! runs with `--namespaces=own`, so other tests' namespaces never show; its counts are
//! compared with `ss` in the same namespace. `--watch` runs under tmux, ended by q,
//! Ctrl-C and SIGTERM.

use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::actor::Actor;
use crate::exporter::BIN;
use crate::netns::{in_netns, output};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        report_names_a_growing_leak_a_full_backlog_and_a_time_wait_loop,
        watch_under_tmux_updates_in_place_and_restores_the_terminal,
    ]
}

/// Runs `report` with `args` from the calling thread (so in its namespace).
pub fn report(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("report")
        .arg("--namespaces=own")
        .args(args)
        .env_clear()
        .output()
        .expect("run sockdiag_exporter report")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 report")
}

/// A thread calling `step` every `period` until the returned flag is set.
fn every(period: Duration, step: impl Fn() + Send + 'static) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // The thread is spawned from the test's thread, but a new thread starts in the
    // process's namespace: enter the caller's first.
    let netns = std::fs::File::open("/proc/thread-self/ns/net").expect("open own netns");
    let handle = std::thread::spawn(move || {
        nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        while !flag.load(Ordering::Relaxed) {
            step();
            std::thread::sleep(period);
        }
    });
    (stop, handle)
}

/// Connects to 127.0.0.1:`port` and closes at once: the server's end, if it holds it,
/// waits in CLOSE_WAIT.
fn connect_and_close(port: u16) {
    drop(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
}

/// Sockets `ss` shows in `state` whose local port is `sport` (or remote `dport`).
fn ss_count(state: &str, filter: &str) -> u64 {
    output("ss", &["-H", "-tan", "state", state, filter])
        .lines()
        .count() as u64
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "report --json is not JSON ({e}):\n{}\n{}",
            stdout(out),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn row<'a>(rows: &'a Value, field: &str, value: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r[field] == value || r[field].as_u64().is_some_and(|n| n.to_string() == value))
        .unwrap_or_else(|| panic!("no row with {field} = {value} in {rows:#}"))
}

/// php-fpm's listener: abstract, so private to the test's namespace.
const FPM: &str = "@sockdiag-report-fpm";

/// The block of the text report that starts with `title`.
pub fn block<'a>(text: &'a str, title: &str) -> &'a str {
    text.split("\n\n")
        .find(|b| b.starts_with(title))
        .unwrap_or_else(|| panic!("no table {title:?} in:\n{text}"))
}

fn report_names_a_growing_leak_a_full_backlog_and_a_time_wait_loop() {
    in_netns(|| {
        output(
            "sysctl",
            &["-q", "-w", "net.ipv4.ip_local_port_range=40000 40999"],
        );
        let _leaky = Actor::start("leaky-app", "accept-and-hold", &["127.0.0.1:8080", "200"]);
        let _cpp = Actor::start("cpp-server", "listen-no-accept", &["127.0.0.1:8081", "4"]);
        let _api = Actor::start("token-api", "accept-and-close", &["127.0.0.1:6601", "5000"]);
        // A UNIX backlog of 4 admits 5 too; a sixth connect would block.
        let _fpm = Actor::start("php-fpm", "unix-listen", &[&format!("{FPM}=4")]);
        let _fpm_clients: Vec<socket2::Socket> =
            (0..5).map(|_| crate::unix::connect(FPM)).collect();
        for _ in 0..4 {
            connect_and_close(8080);
        }
        // A backlog of 4 admits 5; those clients give up and close.
        for _ in 0..5 {
            connect_and_close(8081);
        }
        crate::load::wait_for(|| {
            ss_count("close-wait", "( sport = :8080 )") == 4
                && ss_count("close-wait", "( sport = :8081 )") == 5
                && crate::unix::ss_queue(FPM) == Some(5)
        });

        // The leak: one more CLOSE_WAIT every 200 ms, 5/s. The loop: a token request
        // every 40 ms that the server closes first, so its end stays in TIME_WAIT.
        let leak = every(Duration::from_millis(200), || connect_and_close(8080));
        let churn = every(Duration::from_millis(40), || {
            let mut stream = TcpStream::connect("127.0.0.1:6601").expect("connect");
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).expect("read to EOF");
        });
        std::thread::sleep(Duration::from_millis(500));
        let out = report(&["--json", "--check", "--time-wait-growth=5"]);
        // The same as people read it (README shows this output).
        let tables = stdout(&report(&["--time-wait-growth=5"]));
        println!("{tables}");
        for (stop, handle) in [leak, churn] {
            stop.store(true, Ordering::Relaxed);
            handle.join().expect("load thread");
        }
        // The last closes settle (LAST_ACK to closed) before ss and the report count.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            out.status.code(),
            Some(1),
            "--check with findings exits 1; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let growing = json(&out);
        assert_eq!(growing["schema_version"], 1);
        let window = growing["window_seconds"].as_f64().unwrap();
        // 2 s between the polls, plus the second poll's own time: the test's client
        // sockets, held by a process of another namespace, send it scanning all of /proc,
        // seconds on a loaded machine. Rates are measured over this window, whatever it is.
        assert!(
            (2.0..15.0).contains(&window),
            "two polls 2 s apart: {window}"
        );
        let leak_row = row(&growing["close_wait"], "process", "leaky-app");
        assert_eq!(
            (&leak_row["direction"], &leak_row["port"]),
            (&Value::from("inbound"), &Value::from("8080"))
        );
        let rate = leak_row["growth"]["per_second"].as_f64().unwrap();
        assert!(
            (2.0..=5.5).contains(&rate),
            "the leak grows by 5/s at most, less by the connects' own time: {rate}"
        );
        assert!(leak_row["growth"]["sockets"].as_i64().unwrap() > 0);
        assert_eq!(
            growing["close_wait"][0]["process"], "leaky-app",
            "the fastest growing first"
        );
        let headline = growing["headline"].as_str().unwrap();
        assert!(
            headline.starts_with("CLOSE_WAIT growing: leaky-app :8080 inbound, +"),
            "{headline}"
        );
        assert_eq!(growing["findings"][0]["kind"], "close_wait_growing");
        assert_eq!(growing["findings"][0]["text"], headline);
        assert_eq!(growing["findings"][1]["kind"], "listen_queue_full");
        assert_eq!(
            growing["findings"][1]["text"],
            "accept queue full: cpp-server 127.0.0.1:8081, 5 waiting of 4, 5 never accepted in CLOSE_WAIT"
        );
        assert_eq!(growing["findings"][2]["kind"], "unix_listen_queue_full");
        assert_eq!(
            growing["findings"][2]["text"],
            "UNIX accept queue full: php-fpm @sockdiag-report-fpm, 5 waiting of 4"
        );
        let fpm = row(&growing["unix_listeners"], "path", FPM);
        assert_eq!(
            [
                &fpm["process"],
                &fpm["length"],
                &fpm["limit"],
                &fpm["fill"],
                &fpm["peak"]
            ],
            [
                &Value::from("php-fpm"),
                &Value::from(5),
                &Value::from(4),
                &Value::from(1.25),
                &Value::from(5)
            ]
        );
        let full = row(&growing["listeners"], "port", "8081");
        assert_eq!(
            [
                &full["length"],
                &full["limit"],
                &full["unaccepted_close_wait"]
            ],
            [&Value::from(5), &Value::from(4), &Value::from(5)]
        );
        assert_eq!(growing["listeners"][0]["port"], 8081, "the fullest first");
        let churn_row = row(&growing["time_wait"], "port", "6601");
        assert_eq!(churn_row["direction"], "inbound");
        let churn_rate = churn_row["growth"]["per_second"].as_f64().unwrap();
        assert!(churn_rate > 5.0, "a request every 40 ms: {churn_rate}/s");
        let last = growing["findings"].as_array().unwrap().last().unwrap();
        assert_eq!(last["kind"], "time_wait_growing");
        assert!(
            last["text"]
                .as_str()
                .unwrap()
                .starts_with("TIME_WAIT growing: :6601 inbound, +"),
            "{last}"
        );

        let mut findings = tables.lines();
        assert!(
            findings
                .next()
                .is_some_and(|l| l.starts_with("CLOSE_WAIT growing: leaky-app :8080 inbound, +")),
            "the growing leak is the first line:\n{tables}"
        );
        assert_eq!(
            findings.next(),
            Some("also: accept queue full: cpp-server 127.0.0.1:8081, 5 waiting of 4, 5 never accepted in CLOSE_WAIT")
        );
        assert_eq!(
            findings.next(),
            Some("also: UNIX accept queue full: php-fpm @sockdiag-report-fpm, 5 waiting of 4")
        );
        assert!(
            findings
                .next()
                .is_some_and(|l| l.starts_with("also: TIME_WAIT growing: :6601 inbound, +")),
            "{tables}"
        );

        // Everything still: the tables' rows are exact, and equal to what ss counts.
        let leaked = ss_count("close-wait", "( sport = :8080 )");
        let orphans = ss_count("fin-wait-2", "( dport = :8080 )");
        assert_eq!(
            leaked, orphans,
            "each leaked socket's client waits in FIN_WAIT2"
        );
        let time_wait = ss_count("time-wait", "( sport = :6601 )");
        assert!(time_wait > 0);
        let out = report(&[]);
        assert_eq!(out.status.code(), Some(0), "without --check: 0");
        let text = stdout(&out);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "accept queue full: cpp-server 127.0.0.1:8081, 5 waiting of 4, 5 never accepted in CLOSE_WAIT"
            ),
            "the leak stopped growing: the full queue is the first finding"
        );
        assert_eq!(
            lines.next(),
            Some("also: UNIX accept queue full: php-fpm @sockdiag-report-fpm, 5 waiting of 4")
        );
        assert!(
            lines
                .next()
                .is_some_and(|l| l.starts_with("sockdiag_exporter report: ")),
            "then what was sampled, and no other finding:\n{text}"
        );
        let ss = crate::load::ss_counts();
        let state = |label: &str| -> u64 {
            ["ipv4", "ipv6"]
                .iter()
                .map(|family| ss.get(&(*family, label)).copied().unwrap_or(0))
                .sum()
        };
        let total: u64 = ss.values().sum();
        let states = block(&text, "TCP sockets by state");
        let mut rows = states.lines().skip(2);
        let ours: Vec<String> = rows
            .next()
            .unwrap()
            .split_whitespace()
            .skip(1)
            .map(String::from)
            .collect();
        let want: Vec<String> = [
            total,
            state("established"),
            state("listen"),
            state("syn_sent"),
            state("syn_recv"),
            state("fin_wait1") + state("fin_wait2"),
            state("close_wait"),
            state("time_wait"),
            state("close") + state("last_ack") + state("closing"),
        ]
        .iter()
        .map(u64::to_string)
        .collect();
        assert_eq!(ours, want, "states equal ss -tan:\n{states}");
        assert_eq!(rows.next(), None, "one namespace");
        // Ages count from the first poll that saw a socket: the gap between the polls'
        // starts, the first poll's own time included (its full /proc scan varies).
        let close_wait = block(&text, "CLOSE_WAIT: who holds them");
        let age = close_wait
            .lines()
            .nth(2)
            .and_then(|l| l.split_whitespace().nth(6))
            .unwrap_or_default();
        assert!(
            age.parse::<u64>().is_ok_and(|age| age >= 2),
            "oldest is at least the 2 s between the polls:\n{close_wait}"
        );
        assert_eq!(
            close_wait,
            format!(
                "CLOSE_WAIT: who holds them (fastest growing first)\n\
                 process    direction  port  sockets  growth  per s  oldest  stale\n\
                 leaky-app  inbound    8080  {leaked:>7}      +0   +0/s  {age:>4} s      0\n\
                 -          inbound    8081        5      +0   +0/s  {age:>4} s      0"
            )
        );
        assert_eq!(
            block(&text, "Listeners by accept queue fill"),
            "Listeners by accept queue fill (queue: waiting to be accepted, of limit)\n\
             process     address    port  queue  limit  fill  peak  unaccepted close_wait\n\
             cpp-server  127.0.0.1  8081      5      4  125%     5                      5\n\
             token-api   127.0.0.1  6601      0    128    0%     0                      0\n\
             leaky-app   127.0.0.1  8080      0    128    0%     0                      0"
        );
        assert_eq!(
            block(&text, "UNIX listeners by accept queue fill"),
            "UNIX listeners by accept queue fill (queue: waiting to be accepted, of limit)\n\
             process  path                  queue  limit  fill  peak\n\
             php-fpm  @sockdiag-report-fpm      5      4  125%     5"
        );
        assert_eq!(
            block(&text, "TIME_WAIT by port"),
            format!(
                "TIME_WAIT by port (inbound: our listening port; outbound: the remote port)\n\
                 direction  port  sockets  growth  per s\n\
                 inbound    6601  {time_wait:>7}      +0   +0/s"
            )
        );
        // Computed as the report does: used / range, in percent.
        let fill = format!("{:.0}%", leaked as f64 / 1000.0 * 100.0);
        assert_eq!(
            block(&text, "Ephemeral ports by destination"),
            format!(
                "Ephemeral ports by destination (any state, TIME_WAIT included; of ip_local_port_range)\n\
                 destination     used  range  fill\n\
                 127.0.0.1:8080  {leaked:>4}   1000  {fill:>4}\n\
                 127.0.0.1:8081     5   1000    0%"
            )
        );

        // A filter that matches nothing wrong, and a configuration error.
        let calm = report(&["--check", "--process=token-api", "--interval=200ms"]);
        assert_eq!(calm.status.code(), Some(0));
        assert_eq!(stdout(&calm).lines().next(), Some("nothing looks wrong"));
        let bad = report(&["--config.file=/nonexistent/sockdiag.toml"]);
        assert_eq!(bad.status.code(), Some(78));
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("/nonexistent/sockdiag.toml"),
            "the error names the file"
        );
    });
}

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    fn new() -> Tmux {
        let socket = std::env::temp_dir().join(format!("sockdiag-it-tmux-{}", std::process::id()));
        Tmux { socket }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .expect("run tmux: install it (apt-get install tmux); tests/run.sh does");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn screen(&self, pane: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", pane])
    }

    fn format(&self, pane: &str, format: &str) -> String {
        self.run(&["display-message", "-p", "-t", pane, format])
            .trim()
            .to_string()
    }

    fn wait_for(&self, pane: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen(pane);
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "pane {pane}: {what} not seen within 15 s; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The number in "N polls" of the watch status line.
fn polls(screen: &str) -> u64 {
    screen
        .split(" polls")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no poll count on screen:\n{screen}"))
}

/// The sockets of the leaky-app row of the CLOSE_WAIT table.
fn leaked_on_screen(screen: &str) -> u64 {
    screen
        .lines()
        .find(|l| l.starts_with("leaky-app ") && l.contains(" inbound "))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no leaky-app CLOSE_WAIT row on screen:\n{screen}"))
}

fn watch_under_tmux_updates_in_place_and_restores_the_terminal() {
    in_netns(|| {
        let _leaky = Actor::start("leaky-app", "accept-and-hold", &["127.0.0.1:8080", "200"]);
        connect_and_close(8080);
        let (stop, handle) = every(Duration::from_millis(250), || connect_and_close(8080));
        let tmux = Tmux::new();
        // After the report the shell prints its exit code and the terminal's line
        // discipline flags, then stays so the pane can be read.
        let script = |env: &str| {
            format!(
                "{env} {BIN} report --watch --interval=1s --namespaces=own; rc=$?; \
                 flags=$(stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '); \
                 echo \"exit=$rc tty: ${{flags}}tty-done\"; exec sleep 600"
            )
        };
        // The second run also checks that NO_COLOR turns colour off on a terminal.
        // "SIGTERM" is not a key: the report gets that signal instead.
        for (pane, key, env, code) in [
            ("q", "q", "env", 0),
            ("ctrl-c", "C-c", "env NO_COLOR=1", 0),
            ("term", "SIGTERM", "env", 143),
        ] {
            tmux.run(&[
                "new-session",
                "-d",
                "-s",
                pane,
                "-x",
                "100",
                "-y",
                "50",
                "sh",
                "-c",
                &script(env),
            ]);
            let first = tmux.wait_for(pane, "the first screen", |s| s.contains(" polls "));
            assert_eq!(
                tmux.format(pane, "#{alternate_on}"),
                "1",
                "alternate screen"
            );
            let later = tmux.wait_for(pane, "two more polls", |s| {
                s.contains(" polls ") && polls(s) >= polls(&first) + 2
            });
            assert!(
                leaked_on_screen(&later) > leaked_on_screen(&first),
                "the leak grows on screen:\n{first}\n---\n{later}"
            );
            assert!(
                later.contains("CLOSE_WAIT growing: leaky-app :8080 inbound, +"),
                "{later}"
            );
            // With -e, capture-pane keeps the colours as SGR sequences (red: 31, 91 or
            // palette colour 9, as tmux re-encodes it).
            let coloured = tmux.run(&["capture-pane", "-p", "-e", "-t", pane]);
            assert_eq!(
                ["\u{1b}[31m", "\u{1b}[91m", "\u{1b}[38;5;9m"]
                    .iter()
                    .any(|red| coloured.contains(red)),
                env == "env",
                "{env}: the finding in red only without NO_COLOR:\n{coloured:?}"
            );
            if key == "SIGTERM" {
                let shell = tmux.format(pane, "#{pane_pid}");
                let children =
                    std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
                        .expect("children of the pane's shell");
                let report: i32 = children.trim().parse().expect("one child: the report");
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(report),
                    nix::sys::signal::Signal::SIGTERM,
                )
                .expect("kill");
            } else {
                tmux.run(&["send-keys", "-t", pane, key]);
            }
            let after = tmux.wait_for(pane, "the shell after the report", |s| {
                s.contains("tty-done")
            });
            assert!(
                after.contains(&format!("exit={code} ")),
                "{key} exits {code}:\n{after}"
            );
            assert!(
                after.contains("tty: icanon echo tty-done"),
                "{key}: raw mode is off again (stty shows icanon echo):\n{after}"
            );
            assert_eq!(tmux.format(pane, "#{alternate_on}"), "0", "normal screen");
            assert_eq!(tmux.format(pane, "#{cursor_flag}"), "1", "cursor shown");
        }
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap();
    });
}
