//! Loading and validation, end to end through [`Config::load_from`].

use std::time::Duration;

use super::*;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn file(contents: &str) -> tempfile_path::TempPath {
    tempfile_path::TempPath::with_contents(contents)
}

/// A tiny self-deleting temp file, to keep tests free of a tempfile dependency.
mod tempfile_path {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    pub struct TempPath(PathBuf);
    static NEXT: AtomicU32 = AtomicU32::new(0);

    impl TempPath {
        pub fn with_contents(contents: &str) -> TempPath {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "sockdiag-config-test-{}-{n}.toml",
                std::process::id()
            ));
            let mut f = std::fs::File::create(&path).expect("create temp config");
            std::io::Write::write_all(&mut f, contents.as_bytes()).expect("write temp config");
            TempPath(path)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn no_file_no_env_no_flags_is_the_embedded_defaults() {
    let config = Config::load_from(&Flags::default(), no_env()).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(
        config.web.listen_addresses,
        vec![ListenAddress::AnyInterface(10120)]
    );
    assert_eq!(config.poll_interval, Duration::from_secs(15));
}

#[test]
fn file_then_env_then_flags() {
    let f = file("poll_interval = \"5s\"\n[web]\ntelemetry_path = \"/m\"\nmax_requests = 3\n[log]\nlevel = \"debug\"\n");
    let flags = Flags {
        config_file: Some(f.path().to_path_buf()),
        log_level: Some("warn".into()),
        ..Flags::default()
    };
    let env = vec![
        ("SOCKDIAG_POLL_INTERVAL".to_string(), "7s".to_string()),
        (
            "SOCKDIAG_WEB__LISTEN_ADDRESSES".to_string(),
            "127.0.0.1:1,[::1]:2".to_string(),
        ),
        ("OTHER".to_string(), "ignored".to_string()),
    ];
    let config = Config::load_from(&flags, env).unwrap();
    assert_eq!(config.poll_interval, Duration::from_secs(7));
    assert_eq!(config.web.telemetry_path, "/m");
    assert_eq!(config.web.max_requests, 3);
    assert_eq!(config.log.level, LogLevel::Warn);
    assert_eq!(
        config.web.listen_addresses,
        vec![
            ListenAddress::Socket("127.0.0.1:1".parse().unwrap()),
            ListenAddress::Socket("[::1]:2".parse().unwrap())
        ]
    );
}

#[test]
fn repeated_listen_flags() {
    let flags = Flags {
        listen_addresses: vec![":9".into(), "localhost:10".into()],
        ..Flags::default()
    };
    let config = Config::load_from(&flags, no_env()).unwrap();
    assert_eq!(
        config.web.listen_addresses,
        vec![
            ListenAddress::AnyInterface(9),
            ListenAddress::Socket("127.0.0.1:10".parse().unwrap())
        ]
    );
}

#[test]
fn every_problem_is_reported_at_once_with_origin_key_and_value() {
    let f = file(
        "poll_interval = \"fast\"\npoll_intervall = \"5s\"\n[web]\ntelemetry_path = \"metrics\"\n",
    );
    let path = f.path().display().to_string();
    let flags = Flags {
        config_file: Some(f.path().to_path_buf()),
        log_format: Some("xml".into()),
        ..Flags::default()
    };
    let env = vec![("SOCKDIAG_WEB__MAX_REQUESTS".to_string(), "-1".to_string())];
    let errors = Config::load_from(&flags, env).unwrap_err();
    let expected = format!(
        "invalid configuration (5 problems):\n  \
         {path}: `poll_interval` = \"fast\": not a duration (expected number at 0); write e.g. \"15s\", \"500ms\" or \"1m\"\n  \
         {path}: `web.telemetry_path` = \"metrics\": must start with / and name a path, e.g. \"/metrics\"\n  \
         environment variable SOCKDIAG_WEB__MAX_REQUESTS: `web.max_requests` = \"-1\": expected a non-negative integer: invalid digit found in string\n  \
         flag --log.format: `log.format` = \"xml\": expected text or json\n  \
         {path}: unknown key `poll_intervall`"
    );
    assert_eq!(errors.to_string(), expected);
}

#[test]
fn unknown_environment_variable_is_named() {
    let env = vec![("SOCKDIAG_WEB__LISTEN".to_string(), ":1".to_string())];
    let errors = Config::load_from(&Flags::default(), env).unwrap_err();
    assert_eq!(
        errors.0,
        vec![ConfigError::UnknownKey {
            origin: "environment variable SOCKDIAG_WEB__LISTEN".into(),
            key: "web.listen".into()
        }]
    );
}

/// Found by fuzzing (fuzz/corpus/config_toml/crash-159c2413...): the config crate reads
/// `NAME[N]` as "element N of array NAME" and grew an array to N elements, so one
/// environment variable or quoted TOML key panicked the exporter at start (capacity
/// overflow) or exhausted its memory.
#[test]
fn config_key_with_an_array_index_panicked() {
    let env = vec![
        (
            "SOCKDIAG_WEB__LISTEN_ADDRESSES[99999999999999999]".to_string(),
            ":1".to_string(),
        ),
        ("SOCKDIAG_X[-999999999999]".to_string(), "1".to_string()),
        ("SOCKDIAG_".to_string(), "1".to_string()),
    ];
    let errors = Config::load_from(&Flags::default(), env).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "invalid configuration (3 problems):\n  \
         environment variable SOCKDIAG_WEB__LISTEN_ADDRESSES[99999999999999999]: unknown key `web.listen_addresses[99999999999999999]`\n  \
         environment variable SOCKDIAG_X[-999999999999]: unknown key `x[-999999999999]`\n  \
         environment variable SOCKDIAG_: unknown key ``"
    );
    let f = file(
        "\"max_ports[99999999999999999]\" = 1\n\"x[99999999999].y\" = 1\n[web]\n\"a[9]\" = 2\n",
    );
    let flags = Flags {
        config_file: Some(f.path().to_path_buf()),
        ..Flags::default()
    };
    let errors = Config::load_from(&flags, no_env()).unwrap_err();
    let path = f.path().display();
    assert_eq!(
        errors.to_string(),
        format!(
            "invalid configuration (3 problems):\n  \
             {path}: unknown key `max_ports[99999999999999999]`\n  \
             {path}: unknown key `web.a[9]`\n  \
             {path}: unknown key `x[99999999999].y`"
        )
    );
}

#[test]
fn bad_listen_address_and_too_short_interval() {
    let flags = Flags {
        listen_addresses: vec!["10120".into()],
        poll_interval: Some("10ms".into()),
        ..Flags::default()
    };
    let errors = Config::load_from(&flags, no_env()).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "invalid configuration (2 problems):\n  \
         flag --poll.interval: `poll_interval` = \"10ms\": must be at least 100ms\n  \
         flag --web.listen-address: `web.listen_addresses` = [\"10120\"]: \"10120\": expected :PORT, IP:PORT or [IPv6]:PORT, e.g. \":10120\": invalid socket address syntax"
    );
}

#[test]
fn unreadable_file_is_one_error_naming_it() {
    let flags = Flags {
        config_file: Some("/nonexistent/sockdiag.toml".into()),
        ..Flags::default()
    };
    let errors = Config::load_from(&flags, no_env()).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert!(
        errors.to_string().contains("/nonexistent/sockdiag.toml"),
        "{errors}"
    );
}

#[test]
fn example_file_parses_to_the_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config.example.toml");
    let flags = Flags {
        config_file: Some(path.into()),
        ..Flags::default()
    };
    assert_eq!(
        Config::load_from(&flags, no_env()).unwrap(),
        Config::default()
    );
}

#[test]
fn limits_and_port_lists() {
    let f = file("max_ports = 5\nmax_processes = 2\nlisten_poll_interval = \"0s\"\n[ports]\ninclude = [3306, \"8000-8100\"]\nexclude = [\"8080\"]\n");
    let flags = Flags {
        config_file: Some(f.path().to_path_buf()),
        ..Flags::default()
    };
    let config = Config::load_from(&flags, no_env()).unwrap();
    assert_eq!(config.listen_poll_interval, None);
    assert_eq!(config.settings.max_ports, 5);
    assert_eq!(config.settings.max_processes, 2);
    assert_eq!(
        config.settings.ports.include,
        vec![(3306, 3306), (8000, 8100)]
    );
    assert_eq!(config.settings.ports.exclude, vec![(8080, 8080)]);
}

#[test]
fn bad_limits_are_named() {
    let f = file("max_ports = 0\n[ports]\ninclude = [\"9-1\", 70000]\n");
    let path = f.path().display().to_string();
    let flags = Flags {
        config_file: Some(f.path().to_path_buf()),
        ..Flags::default()
    };
    let errors = Config::load_from(&flags, no_env()).unwrap_err();
    assert_eq!(
        errors.to_string(),
        format!(
            "invalid configuration (2 problems):\n  \
             {path}: `max_ports` = 0: must be at least 1\n  \
             {path}: `ports.include` = [\"9-1\", 70000]: \"9-1\": range starts above its end"
        )
    );
}

#[test]
fn port_lists_from_the_environment() {
    let env = vec![(
        "SOCKDIAG_PORTS__EXCLUDE".to_string(),
        "22, 6000-6010".to_string(),
    )];
    let config = Config::load_from(&Flags::default(), env).unwrap();
    assert_eq!(config.settings.ports.exclude, vec![(22, 22), (6000, 6010)]);
}

#[test]
fn env_name_maps_sections() {
    assert_eq!(
        env_name("web.listen_addresses"),
        "SOCKDIAG_WEB__LISTEN_ADDRESSES"
    );
    assert_eq!(env_name("poll_interval"), "SOCKDIAG_POLL_INTERVAL");
}

fn load_file(contents: &str) -> (Result<Config, ConfigErrors>, String) {
    let f = file(contents);
    let path = f.path().display().to_string();
    let flags = Flags {
        config_file: Some(f.path().to_path_buf()),
        ..Flags::default()
    };
    (Config::load_from(&flags, no_env()), path)
}

fn load_flags(flags: Flags) -> String {
    Config::load_from(&flags, no_env()).unwrap_err().to_string()
}

#[test]
fn max_requests_near_the_semaphore_limit_is_a_config_error_not_a_panic() {
    let (result, path) = load_file("[web]\nmax_requests = 2305843009213693952\n");
    assert_eq!(
        result.unwrap_err().to_string(),
        format!(
            "invalid configuration (1 problem):\n  \
             {path}: `web.max_requests` = 2305843009213693952: must be at most 100000"
        )
    );
}

#[test]
fn telemetry_path_with_route_syntax_is_a_config_error_not_a_panic() {
    for (path, bad) in [
        ("/a:b", "':'"),
        ("/*rest", "'*'"),
        ("/{x}", "'{'"),
        ("/m}", "'}'"),
    ] {
        let errors = load_flags(Flags {
            telemetry_path: Some(path.into()),
            ..Flags::default()
        });
        assert_eq!(
            errors,
            format!(
                "invalid configuration (1 problem):\n  \
                 flag --web.telemetry-path: `web.telemetry_path` = {path:?}: {bad} is not allowed: \
                 a path is literal, made of letters, digits and / - . _ ~"
            )
        );
    }
}

#[test]
fn poll_interval_without_upper_bound_is_a_config_error() {
    let errors = load_flags(Flags {
        poll_interval: Some("500000000y".into()),
        ..Flags::default()
    });
    assert_eq!(
        errors,
        "invalid configuration (1 problem):\n  \
         flag --poll.interval: `poll_interval` = \"500000000y\": must be at most 1day"
    );
}

#[test]
fn non_utf8_variable_outside_the_prefix_is_ignored_and_inside_is_an_error() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let bad = || OsString::from_vec(vec![b'a', 0xff]);
    let (env, errors) = super::load::utf8_environment_for_tests(vec![
        (OsString::from("LANG_X"), bad()),
        (
            OsString::from("SOCKDIAG_LOG__LEVEL"),
            OsString::from("debug"),
        ),
        (OsString::from("SOCKDIAG_WEB__TELEMETRY_PATH"), bad()),
    ]);
    assert_eq!(
        env,
        vec![("SOCKDIAG_LOG__LEVEL".to_string(), "debug".to_string())]
    );
    assert_eq!(
        ConfigErrors(errors).to_string(),
        "invalid configuration (1 problem):\n  \
         environment variable SOCKDIAG_WEB__TELEMETRY_PATH: not valid UTF-8: \"a\u{fffd}\""
    );
}

#[test]
fn config_file_that_is_a_directory_fifo_or_device_is_named_as_such() {
    let dir = std::env::temp_dir().join(format!("sockdiag-config-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    for (path, what) in [
        (dir.clone(), "a directory"),
        (fifo.clone(), "a FIFO"),
        ("/dev/zero".into(), "a device"),
    ] {
        let errors = load_flags(Flags {
            config_file: Some(path.clone()),
            ..Flags::default()
        });
        assert_eq!(
            errors,
            format!(
                "invalid configuration (1 problem):\n  {}: not a regular file ({what})",
                path.display()
            )
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_file_named_is_the_file_read_no_extension_added() {
    let f = file("poll_interval = \"5s\"\n");
    let toml = f.path().to_path_buf();
    let bare = toml.with_extension("");
    let errors = load_flags(Flags {
        config_file: Some(bare.clone()),
        ..Flags::default()
    });
    assert_eq!(
        errors,
        format!(
            "invalid configuration (1 problem):\n  {}: cannot read the config file: \
             No such file or directory (os error 2)",
            bare.display()
        )
    );
}

#[test]
fn integer_too_large_for_toml_names_the_key() {
    let (result, path) = load_file("poll_interval = \"5s\"\nmax_ports = 99999999999999999999\n");
    assert_eq!(
        result.unwrap_err().to_string(),
        format!(
            "invalid configuration (1 problem):\n  \
             {path}: line 2: `max_ports`: invalid type: integer `99999999999999999999` as i128, \
             expected any valid TOML value"
        )
    );
}

mod collectors;
mod drift;
mod poller;
mod roundtrip;
