//! The process as an operator meets it: exit codes, config errors, signals, readiness,
//! and the exposition checked by promtool.

use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::exporter::{Exporter, BIN};
use crate::netns::in_netns;

fn config_errors_exit_78_with_every_problem_named() {
    let out = Command::new(BIN)
        .args(["--poll.interval=soon", "--web.telemetry-path=metrics"])
        .env_clear()
        .env("SOCKDIAG_LOG__LEVEL", "loud")
        .stdin(Stdio::null())
        .output()
        .expect("run exporter");
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sockdiag_exporter: invalid configuration (3 problems):\n  \
         flag --poll.interval: `poll_interval` = \"soon\": not a duration (expected number at 0); write e.g. \"15s\", \"500ms\" or \"1m\"\n  \
         flag --web.telemetry-path: `web.telemetry_path` = \"metrics\": must start with / and name a path, e.g. \"/metrics\"\n  \
         environment variable SOCKDIAG_LOG__LEVEL: `log.level` = \"loud\": expected one of error, warn, info, debug, trace\n"
    );
}

/// `cargo run` and `cargo test` hand the program the build script's `rustc-env`
/// variables: the exporter must start with exactly that environment (the README's run
/// command), not only with the cleared one the other tests use.
fn starts_with_the_environment_cargo_gives_it() {
    in_netns(|| {
        let mut child = Command::new(BIN)
            .args(["--web.listen-address=127.0.0.1:10120", "--poll.interval=1h"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn exporter");
        std::thread::sleep(Duration::from_millis(300));
        let early_exit = child.try_wait().expect("try_wait");
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait");
        assert!(
            early_exit.is_none(),
            "exporter exited with {early_exit:?} under cargo's environment: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

fn sigterm_drains_and_exits_zero() {
    in_netns(|| {
        let mut exporter = Exporter::start(10120, &["--poll.interval=1s"]);
        exporter.wait_for_poll();
        // The deadline is web.shutdown_timeout (5s by default); an idle server drains at once.
        let status = exporter
            .signal_and_wait(Signal::SIGTERM, Duration::from_secs(5))
            .expect("exporter still running 5 s after SIGTERM");
        assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
        exporter.wait_for_log("stopped", Duration::from_secs(1));
    });
}

fn ready_and_content_types_over_real_http() {
    in_netns(|| {
        let mut exporter = Exporter::start(10120, &["--poll.interval=1h"]);
        exporter.wait_for_poll();
        assert_eq!(exporter.get("/-/ready", None).status, 200);
        let om = exporter.get(
            "/metrics",
            Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
        );
        assert_eq!(
            om.headers["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert!(om.body.ends_with("# EOF\n"));
        let text = exporter.get("/metrics", None);
        assert_eq!(
            text.headers["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(exporter.get("/no/such/page", None).status, 404);
    });
}

fn promtool_check_metrics_reports_nothing_on_a_live_scrape() {
    in_netns(|| {
        let mut exporter = Exporter::start(10120, &["--poll.interval=1h"]);
        exporter.wait_for_poll();
        let body = exporter.get("/metrics", None).body;
        let mut promtool = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool not found: tests/run.sh installs Debian's prometheus package");
        std::io::Write::write_all(promtool.stdin.as_mut().unwrap(), body.as_bytes()).unwrap();
        let out = promtool.wait_with_output().unwrap();
        let findings = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(findings, "", "promtool check metrics findings");
        assert!(out.status.success());
    });
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        config_errors_exit_78_with_every_problem_named,
        starts_with_the_environment_cargo_gives_it,
        sigterm_drains_and_exits_zero,
        ready_and_content_types_over_real_http,
        promtool_check_metrics_reports_nothing_on_a_live_scrape
    ]
}
