//! Issue 11: `--web.config.file` against real clients (curl, openssl, Prometheus), with
//! certificates made in the test, all on loopback in a private network namespace.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::exporter::{Exporter, BIN};
use crate::netns::in_netns;
use crate::pki::Pki;

const URL: &str = "https://127.0.0.1:10120";

/// curl's exit code, HTTP status and output (headers with `-i`).
fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl: tests/run.sh installs it");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn status(args: &[&str]) -> String {
    let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    curl(&all).1
}

fn start(pki: &Pki, yaml: &str, env: &[(&str, &str)]) -> Exporter {
    let config = pki.dir.join("web.yml");
    std::fs::write(&config, yaml).unwrap();
    let flag = format!("--web.config.file={}", config.display());
    let mut exporter = Exporter::start_with(10120, &["--poll.interval=1h", &flag], |c| {
        for (k, v) in env {
            c.env(k, v);
        }
    });
    exporter.wait_for_log("listening", Duration::from_secs(10));
    exporter
}

fn bcrypt(password: &str) -> String {
    bcrypt::hash(password, 6).unwrap()
}

fn basic_auth_401_200_headers_and_healthy() {
    let pki = Pki::new("auth");
    let yaml = format!(
        "basic_auth_users:\n  prometheus: {}\nhttp_server_config:\n  headers:\n    \
         X-Content-Type-Options: nosniff\n    X-Frame-Options: deny\n",
        bcrypt("s3cret")
    );
    in_netns(move || {
        let http = "http://127.0.0.1:10120";
        let exporter = start(&pki, &yaml, &[]);
        let (_, head) = curl(&["-i", &format!("{http}/metrics")]);
        assert!(head.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{head}");
        assert!(head.contains("\r\nwww-authenticate: Basic\r\n"), "{head}");
        assert!(
            head.contains("\r\nx-content-type-options: nosniff\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nx-frame-options: deny\r\n"), "{head}");
        assert_eq!(
            status(&["-u", "prometheus:wrong", &format!("{http}/metrics")]),
            "401"
        );
        assert_eq!(
            status(&["-u", "nobody:s3cret", &format!("{http}/metrics")]),
            "401"
        );
        assert_eq!(status(&[&format!("{http}/-/healthy")]), "401");
        let (_, ok) = curl(&["-i", "-u", "prometheus:s3cret", &format!("{http}/metrics")]);
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("\r\nx-frame-options: deny\r\n"), "{ok}");
        assert!(
            ok.contains("sockdiag_http_auth_failures_total{reason=\"missing\"} 2\n"),
            "{ok}"
        );
        assert!(
            ok.contains("sockdiag_http_auth_failures_total{reason=\"wrong\"} 2\n"),
            "{ok}"
        );
        drop(exporter);
        let _open = start(
            &pki,
            &std::fs::read_to_string(pki.dir.join("web.yml")).unwrap(),
            &[("SOCKDIAG_WEB__PROBES_WITHOUT_AUTH", "true")],
        );
        assert_eq!(status(&[&format!("{http}/-/healthy")]), "200");
        assert_eq!(status(&[&format!("{http}/metrics")]), "401");
    });
}

fn tls_versions_and_plain_http_on_the_tls_port() {
    let pki = Pki::new("versions");
    let yaml = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n";
    in_netns(move || {
        let _exporter = start(&pki, yaml, &[]);
        let ca = pki.path("ca.crt");
        assert_eq!(status(&["--cacert", &ca, &format!("{URL}/metrics")]), "200");
        let (code, _) = curl(&[
            "--cacert",
            &ca,
            "--tls-max",
            "1.2",
            &format!("{URL}/metrics"),
        ]);
        assert_eq!(code, 35, "a TLS 1.2 client is refused by min_version TLS13");
        let (_, plain) = curl(&["-i", "http://127.0.0.1:10120/metrics"]);
        assert!(plain.starts_with("HTTP/1.0 400 Bad Request\r\n"), "{plain}");
        assert!(
            plain.ends_with("Client sent an HTTP request to an HTTPS server.\n"),
            "{plain}"
        );
    });
}

fn client_certificates_and_allowed_sans() {
    let pki = Pki::new("mtls");
    let yaml = |sans: &str| {
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
             client_allowed_sans: [{sans}]\n"
        )
    };
    in_netns(move || {
        let mut exporter = start(&pki, &yaml("scraper.example"), &[]);
        let ca = pki.path("ca.crt");
        let with = |name: &str| {
            status(&[
                "--cacert",
                &ca,
                "--cert",
                &pki.path(&format!("{name}.crt")),
                "--key",
                &pki.path(&format!("{name}.key")),
                &format!("{URL}/metrics"),
            ])
        };
        assert_eq!(
            with("client"),
            "200",
            "a certificate from the CA, SAN allowed"
        );
        assert_eq!(
            status(&["--cacert", &ca, &format!("{URL}/metrics")]),
            "000",
            "no certificate"
        );
        assert_eq!(with("stranger"), "000", "a certificate from another CA");
        // SAN no longer allowed: rewrite the file, the exporter reloads it.
        std::fs::write(pki.dir.join("web.yml"), yaml("other.example")).unwrap();
        exporter.wait_for_log("web config reloaded", Duration::from_secs(10));
        assert_eq!(with("client"), "000", "SAN not in client_allowed_sans");
        let metrics = with_client_scrape(&pki, &yaml("scraper.example"), &mut exporter);
        assert!(
            metrics.contains("sockdiag_http_auth_failures_total{reason=\"san\"} 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("sockdiag_http_tls_handshake_errors_total 2\n"),
            "{metrics}"
        );
    });
}

/// Restores `yaml`, waits for the reload, and scrapes with the client certificate.
fn with_client_scrape(pki: &Pki, yaml: &str, exporter: &mut Exporter) -> String {
    std::fs::write(pki.dir.join("web.yml"), yaml).unwrap();
    exporter.wait_for_log("web config reloaded", Duration::from_secs(10));
    curl(&[
        "--cacert",
        &pki.path("ca.crt"),
        "--cert",
        &pki.path("client.crt"),
        "--key",
        &pki.path("client.key"),
        &format!("{URL}/metrics"),
    ])
    .1
}

fn serial() -> String {
    let mut s_client = Command::new("openssl")
        .args(["s_client", "-connect", "127.0.0.1:10120"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pem = s_client.stdout.take().unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(pem)
        .output()
        .unwrap();
    let _ = s_client.wait();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn certificate_rotation_needs_no_restart_and_a_broken_reload_keeps_the_old_config() {
    let pki = Pki::new("rotate");
    let yaml = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    in_netns(move || {
        let mut exporter = start(&pki, yaml, &[]);
        let pid = exporter.pid();
        assert_eq!(serial(), "serial=03E9"); // 1001
        pki.issue("server", "ca", 1002, "subjectAltName=IP:127.0.0.1\n");
        exporter.wait_for_log("web config reloaded", Duration::from_secs(10));
        assert_eq!(
            serial(),
            "serial=03EA",
            "the next handshake shows the new certificate"
        );
        assert_eq!(exporter.pid(), pid);

        std::fs::write(
            pki.dir.join("web.yml"),
            "tls_server_config:\n  cert_file: server.crt\n  key_fil: server.key\n",
        )
        .unwrap();
        let line = exporter.wait_for_log("web config reload failed", Duration::from_secs(10));
        assert!(line.contains("unknown field `key_fil`"), "{line}");
        let (_, body) = curl(&["--cacert", &pki.path("ca.crt"), &format!("{URL}/metrics")]);
        assert!(
            body.contains("sockdiag_web_config_reloads_total{result=\"failure\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("sockdiag_web_config_last_reload_successful 0\n"),
            "{body}"
        );
        assert_eq!(serial(), "serial=03EA", "the previous good config stays");
        std::thread::sleep(Duration::from_secs(3));
        exporter.drain_log();
        let failures = exporter
            .log_lines
            .iter()
            .filter(|l| l.contains("web config reload failed"))
            .count();
        assert_eq!(failures, 1, "logged once");
    });
}

fn bad_web_config_exits_78_naming_file_key_and_value() {
    let pki = Pki::new("bad");
    let config = pki.dir.join("web.yml");
    std::fs::write(&config, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS11\n").unwrap();
    let out = Command::new(BIN)
        .arg(format!("--web.config.file={}", config.display()))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "sockdiag_exporter: invalid web config: {}: `tls_server_config.min_version` = \"TLS11\": \
             not supported by rustls: TLS12 is the oldest version\n",
            config.display()
        )
    );
}

fn sighup_reloads_the_web_config() {
    let pki = Pki::new("sighup");
    let yaml = format!("basic_auth_users:\n  prometheus: {}\n", bcrypt("old"));
    in_netns(move || {
        let mut exporter = start(&pki, &yaml, &[]);
        let http = "http://127.0.0.1:10120/metrics";
        assert_eq!(status(&["-u", "prometheus:old", http]), "200");
        // Same size and second: only SIGHUP makes it read now.
        std::fs::write(
            pki.dir.join("web.yml"),
            format!("basic_auth_users:\n  prometheus: {}\n", bcrypt("new")),
        )
        .unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(exporter.pid()),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
        exporter.wait_for_log("reloading the web config", Duration::from_secs(2));
        let line = exporter.wait_for_log("web config reloaded", Duration::from_secs(2));
        assert!(line.contains("forced=true"), "{line}");
        assert_eq!(status(&["-u", "prometheus:new", http]), "200");
        assert_eq!(status(&["-u", "prometheus:old", http]), "401");
    });
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn prometheus_scrapes_over_tls_with_basic_auth_and_a_client_certificate() {
    let pki = Pki::new("prometheus");
    let yaml = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n\
         basic_auth_users:\n  prometheus: {}\n",
        bcrypt("s3cret")
    );
    let prometheus_yml = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sockdiag\n    scheme: https\n    \
         basic_auth:\n      username: prometheus\n      password: s3cret\n    tls_config:\n      \
         ca_file: {ca}\n      cert_file: {cert}\n      key_file: {key}\n    static_configs:\n      \
         - targets: ['127.0.0.1:10120']\n",
        ca = pki.path("ca.crt"),
        cert = pki.path("client.crt"),
        key = pki.path("client.key"),
    );
    std::fs::write(pki.dir.join("prometheus.yml"), prometheus_yml).unwrap();
    in_netns(move || {
        let _exporter = start(&pki, &yaml, &[]);
        let _prometheus = Prometheus(
            Command::new("prometheus")
                .args([
                    &format!("--config.file={}", pki.path("prometheus.yml")),
                    "--web.listen-address=127.0.0.1:19090",
                    &format!("--storage.tsdb.path={}", pki.path("tsdb")),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("prometheus: tests/run.sh installs Debian's prometheus package"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            last =
                curl(&["http://127.0.0.1:19090/api/v1/query?query=up%7Bjob%3D%22sockdiag%22%7D"]).1;
            if last.contains("\"value\":[") && last.contains(",\"1\"]") {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        assert!(last.contains(",\"1\"]"), "up is not 1: {last}");
        let series = curl(&["http://127.0.0.1:19090/api/v1/query?query=sockdiag_tcp_sockets"]).1;
        assert!(
            series.contains("\"__name__\":\"sockdiag_tcp_sockets\""),
            "{series}"
        );
    });
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        basic_auth_401_200_headers_and_healthy,
        tls_versions_and_plain_http_on_the_tls_port,
        client_certificates_and_allowed_sans,
        certificate_rotation_needs_no_restart_and_a_broken_reload_keeps_the_old_config,
        bad_web_config_exits_78_naming_file_key_and_value,
        sighup_reloads_the_web_config,
        prometheus_scrapes_over_tls_with_basic_auth_and_a_client_certificate,
    ]
}
