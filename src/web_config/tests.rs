//! Bad web config files, one per key, each with the exact message; and good ones.

use std::path::{Path, PathBuf};

use super::*;

/// Certificates from the integration tests' helper: ca.crt, server.crt and server.key.
#[allow(dead_code)]
#[path = "../../tests/integration/pki.rs"]
mod pki;

struct Dir(pki::Pki);

impl Dir {
    fn new(name: &str) -> Dir {
        Dir(pki::Pki::new(&format!("webcfg-{name}")))
    }

    fn write(&self, yaml: &str) -> PathBuf {
        let path = self.0.dir.join("web.yml");
        std::fs::write(&path, yaml).unwrap();
        path
    }

    fn error(&self, yaml: &str) -> String {
        let path = self.write(yaml);
        let error = load(&path).expect_err("config should be refused");
        error
            .to_string()
            .replace(&path.display().to_string(), "web.yml")
    }
}

const TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

#[test]
fn good_files_load() {
    let dir = Dir::new("good");
    let path = dir.write(&format!(
        "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
         client_allowed_sans: [scraper.example]\n  min_version: TLS13\n  \
         cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [X25519, CurveP256]\n\
         http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n\
         basic_auth_users:\n  prometheus: $2y$04$Q6rH8N9YqJ9cG2YbGgX3eu0M0m6yZQ9l0yq0S8Q8mM7q1bN6Qy2fW\n"
    ));
    let active = load(&path).unwrap();
    assert!(active.tls.is_some());
    assert_eq!(active.auth.as_ref().map(|a| a.users()), Some(1));
    assert_eq!(active.headers.len(), 1);
    assert_eq!(
        active.watched,
        vec![
            path.clone(),
            dir.0.dir.join("server.crt"),
            dir.0.dir.join("server.key"),
            dir.0.dir.join("ca.crt")
        ]
    );
    // An empty file is valid: nothing configured.
    let empty = dir.write("");
    let active = load(&empty).unwrap();
    assert!(active.tls.is_none() && active.auth.is_none());
}

#[test]
fn every_bad_key_is_named_with_its_value() {
    let dir = Dir::new("bad");
    let cases: Vec<(String, &str)> = vec![
        ("tls_server_confg: {}\n".into(),
         "web.yml: unknown field `tls_server_confg`, expected one of `tls_server_config`, `http_server_config`, `basic_auth_users`"),
        (format!("{TLS}  cert_fil: x\n"),
         "web.yml: tls_server_config: unknown field `cert_fil`, expected one of `cert_file`, `key_file`, `cert`, `key`, `client_auth_type`, `client_ca_file`, `client_allowed_sans`, `min_version`, `max_version`, `cipher_suites`, `curve_preferences`, `prefer_server_cipher_suites` at line 4 column 3"),
        ("tls_server_config:\n  key_file: server.key\n".into(),
         "web.yml: `tls_server_config.cert_file` = \"\": missing: cert_file (or cert) is required with tls_server_config"),
        ("tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n".into(),
         "web.yml: `tls_server_config.cert_file` = \"nope.crt\": cannot read: No such file or directory (os error 2)"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: ca.crt\n".into(),
         "web.yml: `tls_server_config.key_file` = \"ca.crt\": no PEM private key read: no items found"),
        (format!("{TLS}  client_auth_type: RequireClientCert\n"),
         "web.yml: `tls_server_config.client_auth_type` = \"RequireClientCert\": expected one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"),
        (format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n"),
         "web.yml: `tls_server_config.client_ca_file` = \"\": missing: required by client_auth_type RequireAndVerifyClientCert"),
        (format!("{TLS}  client_ca_file: ca.crt\n"),
         "web.yml: `tls_server_config.client_ca_file` = \"ca.crt\": client CAs configured without a client_auth_type that uses them"),
        (format!("{TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n  client_allowed_sans: [a.example]\n"),
         "web.yml: `tls_server_config.client_allowed_sans` = \"a.example\": needs client_auth_type RequireAndVerifyClientCert"),
        (format!("{TLS}  min_version: TLS10\n"),
         "web.yml: `tls_server_config.min_version` = \"TLS10\": not supported by rustls: TLS12 is the oldest version"),
        (format!("{TLS}  max_version: TLS14\n"),
         "web.yml: `tls_server_config.max_version` = \"TLS14\": expected TLS12 or TLS13"),
        (format!("{TLS}  min_version: TLS13\n  max_version: TLS12\n"),
         "web.yml: `tls_server_config.max_version` = \"TLS12\": below min_version"),
        (format!("{TLS}  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n"),
         "web.yml: `tls_server_config.cipher_suites` = \"TLS_RSA_WITH_AES_128_CBC_SHA\": not supported by rustls; supported: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
        (format!("{TLS}  curve_preferences: [CurveP521]\n"),
         "web.yml: `tls_server_config.curve_preferences` = \"CurveP521\": not supported by rustls; supported: X25519, CurveP256, CurveP384"),
        ("http_server_config:\n  headers:\n    Server: sockdiag\n".into(),
         "web.yml: `http_server_config.headers.Server` = \"sockdiag\": header \"Server\" can not be configured; allowed: Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy"),
        ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n".into(),
         "web.yml: `http_server_config.headers.X-Frame-Options` = \"allow\": expected one of: deny, sameorigin"),
        ("http_server_config:\n  http3: true\n".into(),
         "web.yml: http_server_config: unknown field `http3`, expected `http2` or `headers` at line 2 column 3"),
        ("basic_auth_users:\n  alice: $2y$31$Q6rH8N9YqJ9cG2YbGgX3eu0M0m6yZQ9l0yq0S8Q8mM7q1bN6Qy2fW\n".into(),
         "web.yml: `basic_auth_users.alice` = \"$2y$31$Q6rH8N9YqJ9cG2YbGgX3eu0M0m6yZQ9l0yq0S8Q8mM7q1bN6Qy2fW\": bcrypt cost 31 is above the maximum, 16 (a check at 16 takes about 4 s of CPU, and each step doubles it)"),
        ("basic_auth_users:\n  prometheus: plaintext\n".into(),
         "web.yml: `basic_auth_users.prometheus` = \"plaintext\": not a bcrypt hash: Invalid hash: the hash format is malformed; expected 60 ASCII bytes"),
    ];
    for (yaml, want) in cases {
        assert_eq!(dir.error(&yaml), want, "for:\n{yaml}");
    }
}

#[test]
fn inline_cert_and_key_load_and_only_the_file_is_watched() {
    let dir = Dir::new("inline");
    let indented = |file: &str| {
        std::fs::read_to_string(dir.0.dir.join(file))
            .unwrap()
            .lines()
            .map(|line| format!("    {line}\n"))
            .collect::<String>()
    };
    let yaml = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}",
        indented("server.crt"),
        indented("server.key")
    );
    let path = dir.write(&yaml);
    let active = load(&path).unwrap();
    assert!(active.tls.is_some());
    assert_eq!(active.watched, vec![path]);
}

#[test]
fn unreadable_file_is_named() {
    let error = load(Path::new("/nonexistent/web.yml")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "/nonexistent/web.yml: cannot read: No such file or directory (os error 2)"
    );
}

/// A symlink to /dev/zero as the web config was read to 3 GB at start and 1.5 GB on a
/// reload. It is refused after following the link; a symlink to a regular file (a
/// Kubernetes Secret mount) still loads.
#[test]
fn web_config_symlink_to_dev_zero_was_read_without_bound() {
    let dir = Dir::new("devzero");
    let link = dir.0.dir.join("zero.yml");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    assert_eq!(
        load(&link).unwrap_err().to_string(),
        format!(
            "{}: cannot read: not a regular file (after following symlinks)",
            link.display()
        )
    );
    let target = dir.write("basic_auth_users: {}\n");
    let secret = dir.0.dir.join("secret.yml");
    std::os::unix::fs::symlink(&target, &secret).unwrap();
    assert!(load(&secret).is_ok(), "a symlink to a regular file loads");
}

/// A FIFO would block the open until a writer came: it is refused at once.
#[test]
fn web_config_fifo_is_refused_without_blocking() {
    let dir = Dir::new("fifo");
    let fifo = dir.0.dir.join("fifo.yml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    assert_eq!(
        load(&fifo).unwrap_err().to_string(),
        format!(
            "{}: cannot read: not a regular file (after following symlinks)",
            fifo.display()
        )
    );
}

/// A 100 MB web config was accepted, at 103 MB RSS. A sparse file: nothing past the limit
/// is read.
#[test]
fn web_config_of_100_mb_was_accepted() {
    let dir = Dir::new("huge");
    let path = dir.write("basic_auth_users: {}\n");
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    assert_eq!(
        load(&path).unwrap_err().to_string(),
        format!(
            "{}: cannot read: larger than the limit of 1 MiB (1048576 bytes)",
            path.display()
        )
    );
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    // At the limit it is read (and then fails to parse: a megabyte of NUL bytes).
    assert!(matches!(load(&path), Err(WebConfigError::Parse { .. })));
}

/// The certificate, key and CA files the config names are read with the same bounds.
#[test]
fn named_files_are_read_with_the_same_bound() {
    let dir = Dir::new("named");
    std::os::unix::fs::symlink("/dev/zero", dir.0.dir.join("zero.pem")).unwrap();
    let cases = [
        ("tls_server_config:\n  cert_file: zero.pem\n  key_file: server.key\n",
         "web.yml: `tls_server_config.cert_file` = \"zero.pem\": cannot read: not a regular file (after following symlinks)"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: zero.pem\n",
         "web.yml: `tls_server_config.key_file` = \"zero.pem\": cannot read: not a regular file (after following symlinks)"),
        (&format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: zero.pem\n"),
         "web.yml: `tls_server_config.client_ca_file` = \"zero.pem\": cannot read: not a regular file (after following symlinks)"),
    ];
    for (yaml, want) in cases {
        assert_eq!(dir.error(yaml), want, "for:\n{yaml}");
    }
}

#[test]
fn client_auth_type_parses_every_exporter_toolkit_name() {
    let dir = Dir::new("authtypes");
    for name in [
        "",
        "NoClientCert",
        "RequestClientCert",
        "RequireAnyClientCert",
        "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
    ] {
        let ca = if name.contains("Verify") {
            "  client_ca_file: ca.crt\n"
        } else {
            ""
        };
        let path = dir.write(&format!("{TLS}  client_auth_type: \"{name}\"\n{ca}"));
        assert!(load(&path).is_ok(), "{name}");
    }
}
