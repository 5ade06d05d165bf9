//! Any valid configuration, rendered as a TOML file and `SOCKDIAG_` variables (each key
//! in one or the other), loads to the same values.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;

use super::super::*;
use crate::collectors::{CollectorKind, Collectors};
use crate::fold::anomaly::Thresholds;
use crate::fold::{NetnsCaps, PortFilter, Settings};
use crate::poll::Scope;

/// One key's value: as TOML, and as an environment variable's text.
#[derive(Debug)]
struct Rendered {
    key: &'static str,
    toml: String,
    env: String,
}

fn item(key: &'static str, toml: String, env: String) -> Rendered {
    Rendered { key, toml, env }
}

fn quoted(text: &str) -> String {
    format!("{text:?}")
}

fn string(key: &'static str, text: &str) -> Rendered {
    item(key, quoted(text), text.to_string())
}

fn number(key: &'static str, n: impl ToString) -> Rendered {
    let n = n.to_string();
    item(key, n.clone(), n)
}

fn millis(key: &'static str, ms: u64) -> Rendered {
    string(key, &format!("{ms}ms"))
}

fn list(key: &'static str, items: &[String]) -> Rendered {
    let toml: Vec<String> = items.iter().map(|i| quoted(i)).collect();
    item(key, format!("[{}]", toml.join(", ")), items.join(","))
}

fn ranges(key: &'static str, ranges: &[(u16, u16)]) -> Rendered {
    let items: Vec<String> = ranges
        .iter()
        .map(|&(low, high)| match low == high {
            true => low.to_string(),
            false => format!("{low}-{high}"),
        })
        .collect();
    list(key, &items)
}

fn arb_ranges() -> impl Strategy<Value = Vec<(u16, u16)>> {
    proptest::collection::vec(
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| (a.min(b), a.max(b))),
        0..3,
    )
}

fn arb_path() -> impl Strategy<Value = String> {
    "/[a-z]{1,8}(/[a-z0-9]{1,8})?"
}

/// A valid configuration and its rendering, key by key.
fn arb_config() -> impl Strategy<Value = (Config, Vec<Rendered>)> {
    let caps = proptest::collection::vec(1usize..1_000_000, 14);
    let intervals = (
        100u64..=86_400_000,
        prop_oneof![Just(0u64), 10u64..=86_400_000],
        1u64..=365 * 86_400,
        0u64..=600_000,
        100u64..=3_600_000,
        100u64..=3_600_000,
    );
    let lists = (
        arb_ranges(),
        arb_ranges(),
        proptest::collection::vec(arb_path(), 1..3),
    );
    let web = (
        proptest::collection::vec(
            prop::sample::select(vec![
                ":10120",
                "127.0.0.1:9100",
                "[::1]:8080",
                ":0",
                "localhost:1",
            ]),
            1..3,
        ),
        "/[a-z][a-z0-9_.~-]{0,8}",
        0usize..=100_000,
        1usize..=65_536,
        proptest::option::of(arb_path()),
        any::<bool>(),
    );
    let rest = (
        1usize..=64,
        arb_path(),
        prop::sample::select(vec![("all", Scope::All), ("own", Scope::Own)]),
        prop::sample::select(vec![
            ("error", LogLevel::Error),
            ("warn", LogLevel::Warn),
            ("info", LogLevel::Info),
            ("debug", LogLevel::Debug),
            ("trace", LogLevel::Trace),
        ]),
        prop::sample::select(vec![("text", LogFormat::Text), ("json", LogFormat::Json)]),
    );
    let toggles = proptest::collection::vec(any::<bool>(), CollectorKind::COUNT);
    (caps, intervals, lists, web, rest, toggles).prop_map(
        |(
            c,
            (poll, listen, stale, shutdown, header, idle),
            (include, exclude, roots),
            web,
            rest,
            toggles,
        )| {
            let mut collectors = Collectors::default();
            for (&kind, &on) in CollectorKind::ALL.iter().zip(&toggles) {
                collectors.set(kind, on);
            }
            let (addresses, path, max_requests, max_connections, web_config, probes) = web;
            let (
                concurrency,
                docker_root,
                (scope_text, scope),
                (level_text, level),
                (format_text, format),
            ) = rest;
            let config = Config {
                poll_interval: Duration::from_millis(poll),
                listen_poll_interval: (listen > 0).then(|| Duration::from_millis(listen)),
                settings: Settings {
                    max_ports: c[0],
                    max_processes: c[1],
                    ports: PortFilter {
                        include: include.clone(),
                        exclude: exclude.clone(),
                    },
                    max_destinations: c[2],
                    max_peers: c[3],
                    max_unix_paths: c[4],
                    max_listeners: c[12],
                    anomaly: Thresholds::default(),
                    close_wait_stale_after: Duration::from_secs(stale),
                    netns: NetnsCaps {
                        max_ports: c[5],
                        max_processes: c[6],
                        max_destinations: c[7],
                        max_peers: c[8],
                        max_unix_paths: c[9],
                        max_listeners: c[13],
                    },
                },
                close_wait_capacity: c[10],
                namespaces: scope,
                netns: NetnsConfig {
                    max_namespaces: c[11],
                    concurrency,
                    docker_root: PathBuf::from(&docker_root),
                    bind_roots: roots.iter().map(PathBuf::from).collect(),
                },
                web: WebConfig {
                    listen_addresses: addresses
                        .iter()
                        .map(|a| ListenAddress::parse(a).expect("valid address"))
                        .collect(),
                    telemetry_path: path.clone(),
                    max_requests,
                    shutdown_timeout: Duration::from_millis(shutdown),
                    max_connections,
                    header_read_timeout: Duration::from_millis(header),
                    idle_timeout: Duration::from_millis(idle),
                    config_file: web_config.as_ref().map(PathBuf::from),
                    probes_without_auth: probes,
                },
                log: LogConfig { level, format },
                collectors,
            };
            let addresses: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
            let mut rendered = vec![
                millis("poll_interval", poll),
                millis("listen_poll_interval", listen),
                number("max_ports", c[0]),
                number("max_processes", c[1]),
                ranges("ports.include", &include),
                ranges("ports.exclude", &exclude),
                number("max_destinations", c[2]),
                number("max_peers", c[3]),
                number("max_unix_paths", c[4]),
                number("max_listeners", c[12]),
                string("close_wait_stale_after", &format!("{stale}s")),
                number("netns.max_ports", c[5]),
                number("netns.max_processes", c[6]),
                number("netns.max_destinations", c[7]),
                number("netns.max_peers", c[8]),
                number("netns.max_unix_paths", c[9]),
                number("netns.max_listeners", c[13]),
                number("close_wait_capacity", c[10]),
                string("namespaces", scope_text),
                number("netns.max_namespaces", c[11]),
                number("netns.concurrency", concurrency),
                string("netns.docker_root", &docker_root),
                list("netns.bind_roots", &roots),
                list("web.listen_addresses", &addresses),
                string("web.telemetry_path", &path),
                number("web.max_requests", max_requests),
                millis("web.shutdown_timeout", shutdown),
                number("web.max_connections", max_connections),
                millis("web.header_read_timeout", header),
                millis("web.idle_timeout", idle),
                string("web.config_file", web_config.as_deref().unwrap_or("")),
                item(
                    "web.probes_without_auth",
                    probes.to_string(),
                    probes.to_string(),
                ),
                string("log.level", level_text),
                string("log.format", format_text),
            ];
            rendered.extend(
                CollectorKind::ALL
                    .iter()
                    .zip(&toggles)
                    .map(|(kind, on)| item(kind.key(), on.to_string(), on.to_string())),
            );
            (config, rendered)
        },
    )
}

/// The TOML file of the keys not in `env`: top-level keys first, then one table per
/// section.
fn toml_file(rendered: &[Rendered], in_env: &[bool]) -> String {
    let mut sections: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (r, env) in rendered
        .iter()
        .zip(in_env.iter().chain(std::iter::repeat(&false)))
    {
        if *env {
            continue;
        }
        let (section, leaf) = r.key.rsplit_once('.').unwrap_or(("", r.key));
        sections
            .entry(section)
            .or_default()
            .push(format!("{leaf} = {}\n", r.toml));
    }
    sections
        .into_iter()
        .map(|(section, lines)| match section {
            "" => lines.concat(),
            section => format!("[{section}]\n{}", lines.concat()),
        })
        .collect()
}

/// A key the property does not render would go untested by it.
#[test]
fn every_key_is_rendered() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (_, rendered) = arb_config()
        .new_tree(&mut runner)
        .expect("a config")
        .current();
    let rendered: BTreeSet<&str> = rendered.iter().map(|r| r.key).collect();
    let defined: BTreeSet<&str> = KEYS.iter().map(|key| key.name).collect();
    assert_eq!(rendered, defined);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Render any valid config, each key in the file or in its environment variable,
    /// and load it: the same config comes back.
    #[test]
    fn any_rendered_valid_config_loads_to_the_same_values(
        (config, rendered) in arb_config(),
        in_env in proptest::collection::vec(any::<bool>(), 40),
    ) {
        let text = toml_file(&rendered, &in_env);
        let env: Vec<(String, String)> = rendered
            .iter()
            .zip(&in_env)
            .filter(|(_, env)| **env)
            .map(|(r, _)| (env_name(r.key), r.env.clone()))
            .collect();
        let flags = Flags {
            config_file: Some("roundtrip.toml".into()),
            ..Flags::default()
        };
        let loaded = Config::load_text(&flags, Some(&text), env.clone());
        prop_assert_eq!(loaded, Ok(config), "file:\n{}\nenv: {:?}", text, env);
    }
}
