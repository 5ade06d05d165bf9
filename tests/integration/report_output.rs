//! What `report` hands to a terminal, a pipe or a file, and how it exits, in a private
//! network namespace: names holding terminal escapes are shown escaped (and kept whole in
//! JSON), usage errors exit 2 while the daemon's exit 78, a closed or full stdout exits 73
//! with one message, `--watch` under `TERM=dumb` sends no escape sequence (under tmux,
//! its raw output captured with pipe-pane), and `--watch` ends when its terminal goes away.

use std::fs::File;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::actor::Actor;
use crate::exporter::BIN;
use crate::netns::in_netns;
use crate::report::{block, report, stdout, Tmux};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        report_printed_control_bytes_from_a_comm_raw,
        report_usage_errors_exited_78_like_the_daemon_flag_errors,
        report_exited_silently_on_a_closed_or_full_stdout,
        watch_sent_alternate_screen_sequences_under_term_dumb,
        watch_spun_at_full_cpu_after_its_terminal_went_away,
    ]
}

/// The probe's comm: sets the terminal's title, rings, clears the screen (11 bytes, under
/// the 15 of PR_SET_NAME).
const COMM: &str = "\u{1b}]0;PWN\u{7}\u{1b}[2J";
const COMM_SHOWN: &str = "\\x1b]0;PWN\\x07\\x1b[2J";
/// An abstract UNIX name that turns the terminal red and forges a table row.
const NAME: &str = "@sockdiag-evil\u{1b}[31m\nphp-fpm";
const NAME_SHOWN: &str = "@sockdiag-evil\\x1b[31m\\x0aphp-fpm";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn report_printed_control_bytes_from_a_comm_raw() {
    in_netns(|| {
        let _evil = Actor::start(COMM, "unix-listen", &[&format!("{NAME}=4")]);
        // A backlog of 4 admits 5: the queue is full, a finding naming both.
        let _clients: Vec<socket2::Socket> = (0..5).map(|_| crate::unix::connect(NAME)).collect();
        let out = report(&["--interval=100ms"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let raw = &out.stdout;
        let bad: Vec<&u8> = raw
            .iter()
            .filter(|b| (**b < 0x20 && **b != b'\n') || **b == 0x7f)
            .collect();
        assert!(
            bad.is_empty(),
            "control bytes {bad:?} reached stdout:\n{}",
            String::from_utf8_lossy(raw)
        );
        let text = stdout(&out);
        assert_eq!(
            text.lines().next(),
            Some(
                format!("UNIX accept queue full: {COMM_SHOWN} {NAME_SHOWN}, 5 waiting of 4")
                    .as_str()
            ),
            "{text}"
        );
        assert_eq!(
            block(&text, "UNIX listeners by accept queue fill"),
            format!(
                "UNIX listeners by accept queue fill (queue: waiting to be accepted, of limit)\n\
                 {:<comm$}  {:<name$}  queue  limit  fill  peak\n\
                 {COMM_SHOWN}  {NAME_SHOWN}      5      4  125%     5",
                "process",
                "path",
                comm = COMM_SHOWN.len(),
                name = NAME_SHOWN.len(),
            )
        );

        let out = report(&["--interval=100ms", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            !out.stdout.iter().any(|b| *b < 0x20 && *b != b'\n'),
            "JSON escapes them"
        );
        assert!(stdout(&out).contains("\"process\": \"\\u001b]0;PWN\\u0007\\u001b[2J\""));
        let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let row = &json["unix_listeners"][0];
        assert_eq!(
            (&row["process"], &row["path"]),
            (&Value::from(COMM), &Value::from(NAME)),
            "JSON keeps the true values"
        );
    });
}

fn report_usage_errors_exited_78_like_the_daemon_flag_errors() {
    in_netns(|| {
        for (args, code, message) in [
            (
                &["report", "--bogus"][..],
                2,
                "unexpected argument '--bogus'",
            ),
            (
                &["report", "--interval=1y"],
                2,
                "invalid value '1y' for '--interval <DURATION>': must be at most 1h",
            ),
            (
                &["report", "--interval", "61m"],
                2,
                "invalid value '61m' for '--interval <DURATION>': must be at most 1h",
            ),
            (
                &["report", "--state=closewait"],
                2,
                "invalid value 'closewait' for '--state <STATE>'",
            ),
            (
                &["--namespaces=own", "report", "--listen-fill=-1"],
                2,
                "must be a number at least 0",
            ),
            // The daemon keeps 78: systemd's RestartPreventExitStatus=78 stops a loop.
            (&["--bogus"], 78, "unexpected argument '--bogus'"),
            (
                &["--web.listen-address"],
                78,
                "a value is required for '--web.listen-address <ADDR>'",
            ),
        ] {
            let out = Command::new(BIN).args(args).env_clear().output().unwrap();
            assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        }
        let out = report(&["--interval=1h", "--help"]);
        assert_eq!(out.status.code(), Some(0), "--help is not an error");
    });
}

/// `report` with `stdout` as its standard output.
fn report_into(stdout: Stdio, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["report", "--namespaces=own", "--interval=100ms"])
        .args(args)
        .env_clear()
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("run report")
}

fn report_exited_silently_on_a_closed_or_full_stdout() {
    in_netns(|| {
        for args in [&[][..], &["--json"]] {
            // A reader that is gone, as after `| head -c1`, deterministically.
            let (read, write) = nix::unistd::pipe().expect("pipe");
            drop(read);
            let out = report_into(Stdio::from(write), args);
            assert_eq!(out.status.code(), Some(73), "{args:?} to a closed pipe");
            assert_eq!(
                stderr(&out),
                "sockdiag_exporter report: cannot write to stdout: Broken pipe (os error 32)\n"
            );
            let full = File::options().write(true).open("/dev/full").unwrap();
            let out = report_into(Stdio::from(full), args);
            assert_eq!(out.status.code(), Some(73), "{args:?} to /dev/full");
            assert_eq!(
                stderr(&out),
                "sockdiag_exporter report: cannot write to stdout: No space left on device \
                 (os error 28)\n"
            );
        }
    });
}

fn watch_sent_alternate_screen_sequences_under_term_dumb() {
    in_netns(|| {
        let tmux = Tmux::new("dumb");
        let capture =
            std::env::temp_dir().join(format!("sockdiag-it-dumb-{}.out", std::process::id()));
        let _ = std::fs::remove_file(&capture);
        // The report starts once pipe-pane copies the pane's raw output to `capture`.
        let script = format!(
            "while [ ! -e {capture} ]; do sleep 0.05; done; \
             TERM=dumb {BIN} report --watch --interval=300ms --namespaces=own; \
             echo \"exit=$?\"; exec sleep 600",
            capture = capture.display()
        );
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "dumb",
            "-x",
            "100",
            "-y",
            "50",
            "sh",
            "-c",
            &script,
        ]);
        tmux.run(&[
            "pipe-pane",
            "-o",
            "-t",
            "dumb",
            &format!("cat >> {}", capture.display()),
        ]);
        tmux.wait_for("dumb", "three polls", |s| s.contains(" 3 polls "));
        assert_eq!(
            tmux.format("dumb", "#{alternate_on}"),
            "0",
            "no alternate screen"
        );
        tmux.run(&["send-keys", "-t", "dumb", "q", "Enter"]);
        let after = tmux.wait_for("dumb", "the report's end", |s| s.contains("exit="));
        assert!(after.contains("exit=0"), "q then Enter ends it:\n{after}");
        let raw = std::fs::read(&capture).expect("pipe-pane capture");
        let _ = std::fs::remove_file(&capture);
        let text = String::from_utf8_lossy(&raw);
        assert!(
            !raw.contains(&0x1b),
            "no escape sequence under TERM=dumb:\n{text:?}"
        );
        let separator = "-".repeat(100);
        let frames = text.lines().filter(|l| l.trim_end() == separator).count();
        assert!(frames >= 3, "a separator before each refresh:\n{text}");
        assert!(text.contains("q then Enter, or Ctrl-C, quits"), "{text}");
    });
}

/// Whether process `pid` still runs (a zombie has ended).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

fn watch_spun_at_full_cpu_after_its_terminal_went_away() {
    in_netns(|| {
        for (name, env) in [("gone", ""), ("gone-dumb", "TERM=dumb ")] {
            let tmux = Tmux::new(name);
            tmux.run(&[
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "100",
                "-y",
                "50",
                "sh",
                "-c",
                &format!("exec env {env}{BIN} report --watch --interval=300ms --namespaces=own"),
            ]);
            tmux.wait_for(name, "the first screen", |s| s.contains(" polls "));
            let pid: i32 = tmux.format(name, "#{pane_pid}").parse().expect("pane pid");
            // The terminal goes away, as when an SSH session drops.
            tmux.run(&["kill-server"]);
            let deadline = Instant::now() + Duration::from_secs(5);
            while running(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if running(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                panic!("{env}report --watch still ran 5 s after its terminal went away");
            }
        }
    });
}
