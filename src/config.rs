//! Configuration: embedded defaults, then an optional TOML file (`--config.file`), then
//! environment variables (`SOCKDIAG_KEY`, `SOCKDIAG_SECTION__KEY`), then command-line
//! flags; each layer overrides the one before.
//!
//! Everything is validated before the exporter starts, and every problem is reported at
//! once, each naming where the value came from (file path, environment variable or flag),
//! the key and the value received. Unknown keys are errors, so a typo never silently
//! falls back to a default. config.example.toml documents every key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use config::{Environment, File, FileFormat, Value, ValueKind};

use crate::fold::{NetnsCaps, PortFilter, Settings};
use crate::poll::Scope;

/// Exit code for configuration errors (EX_CONFIG from sysexits.h).
pub const EXIT_CONFIG: i32 = 78;

/// Default `web.listen_addresses`: every interface, port 10120.
pub const DEFAULT_LISTEN_ADDRESS: &str = ":10120";

const ENV_PREFIX: &str = "SOCKDIAG";

/// Command-line flags. Names follow the Prometheus exporters' (`--web.listen-address`).
/// Every flag but `--config.file` overrides one config key; see the README flag table.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "sockdiag_exporter", version, about, long_about = None)]
pub struct Flags {
    /// TOML configuration file. Without one the exporter runs on its embedded defaults.
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,
    /// Address to listen on (repeatable): `:PORT`, `IP:PORT` or `[IPv6]:PORT`.
    /// Overrides `web.listen_addresses`.
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    pub listen_addresses: Vec<String>,
    /// Path under which metrics are served. Overrides `web.telemetry_path`.
    #[arg(long = "web.telemetry-path", value_name = "PATH")]
    pub telemetry_path: Option<String>,
    /// Concurrent scrapes allowed before answering 503 (0: no limit).
    /// Overrides `web.max_requests`.
    #[arg(long = "web.max-requests", value_name = "N")]
    pub max_requests: Option<String>,
    /// Interval between socket polls, e.g. `15s`. Overrides `poll_interval`.
    #[arg(long = "poll.interval", value_name = "DURATION")]
    pub poll_interval: Option<String>,
    /// error, warn, info, debug or trace. Overrides `log.level`.
    #[arg(long = "log.level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// text or json. Overrides `log.format`.
    #[arg(long = "log.format", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// `all` (every network namespace on the host) or `own`. Overrides `namespaces`.
    #[arg(long = "namespaces", value_name = "all|own")]
    pub namespaces: Option<String>,
}

impl Flags {
    /// (config key, flag name, value) for every flag given.
    fn overrides(&self) -> Vec<(&'static str, &'static str, ValueKind)> {
        let mut out = Vec::new();
        if !self.listen_addresses.is_empty() {
            let list = self
                .listen_addresses
                .iter()
                .map(|a| Value::new(None, a.clone()))
                .collect::<Vec<_>>();
            out.push((
                "web.listen_addresses",
                "--web.listen-address",
                ValueKind::Array(list),
            ));
        }
        let scalars = [
            (
                "web.telemetry_path",
                "--web.telemetry-path",
                &self.telemetry_path,
            ),
            ("web.max_requests", "--web.max-requests", &self.max_requests),
            ("poll_interval", "--poll.interval", &self.poll_interval),
            ("log.level", "--log.level", &self.log_level),
            ("log.format", "--log.format", &self.log_format),
            ("namespaces", "--namespaces", &self.namespaces),
        ];
        for (key, flag, value) in scalars {
            if let Some(value) = value {
                out.push((key, flag, ValueKind::String(value.clone())));
            }
        }
        out
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub poll_interval: Duration,
    /// Interval of the LISTEN-only sampler behind `sockdiag_tcp_listen_queue_peak`;
    /// `None` ("0s") turns it off.
    pub listen_poll_interval: Option<Duration>,
    pub settings: Settings,
    /// CLOSE_WAIT sockets whose age is tracked at most; beyond, they are counted as
    /// untracked.
    pub close_wait_capacity: usize,
    /// Every network namespace on the host, or only the exporter's own.
    pub namespaces: Scope,
    pub netns: NetnsConfig,
    pub web: WebConfig,
    pub log: LogConfig,
}

/// `[netns]`: how namespaces other than ours are found and sampled (their caps are in
/// `settings.netns`).
#[derive(Debug, Clone, PartialEq)]
pub struct NetnsConfig {
    /// Namespaces that keep their label; the rest fold into `netns="other"`.
    pub max_namespaces: usize,
    /// Namespaces dumped at once besides ours.
    pub concurrency: usize,
    /// Docker's data root, for container names.
    pub docker_root: PathBuf,
    /// Directories of bind-mounted namespaces; the first is `ip netns`'.
    pub bind_roots: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    pub listen_addresses: Vec<ListenAddress>,
    pub telemetry_path: String,
    pub max_requests: usize,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where to listen. `:PORT` means every interface: IPv6 and IPv4 where the host has
/// IPv6, IPv4 alone where it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenAddress {
    AnyInterface(u16),
    Socket(SocketAddr),
}

impl ListenAddress {
    pub fn parse(text: &str) -> Result<ListenAddress, String> {
        let bad =
            || format!("expected :PORT, IP:PORT or [IPv6]:PORT, e.g. \"{DEFAULT_LISTEN_ADDRESS}\"");
        if let Some(port) = text.strip_prefix(':') {
            return port
                .parse::<u16>()
                .map(ListenAddress::AnyInterface)
                .map_err(|source| format!("{}: port: {source}", bad()));
        }
        if let Some(port) = text.strip_prefix("localhost:") {
            return port
                .parse::<u16>()
                .map(|port| {
                    ListenAddress::Socket(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port))
                })
                .map_err(|source| format!("{}: port: {source}", bad()));
        }
        text.parse::<SocketAddr>()
            .map(ListenAddress::Socket)
            .map_err(|source| format!("{}: {source}", bad()))
    }

    /// Socket addresses to bind, most preferred first.
    pub fn candidates(self) -> Vec<SocketAddr> {
        match self {
            ListenAddress::AnyInterface(port) => vec![
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            ],
            ListenAddress::Socket(addr) => vec![addr],
        }
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::AnyInterface(port) => write!(f, ":{port}"),
            ListenAddress::Socket(addr) => write!(f, "{addr}"),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            poll_interval: Duration::from_secs(15),
            listen_poll_interval: Some(Duration::from_secs(1)),
            settings: Settings::default(),
            close_wait_capacity: 100_000,
            namespaces: Scope::All,
            netns: NetnsConfig {
                max_namespaces: 100,
                concurrency: 2,
                docker_root: PathBuf::from(crate::source::docker::DEFAULT_DATA_ROOT),
                bind_roots: crate::source::netns::DEFAULT_BIND_ROOTS
                    .iter()
                    .map(PathBuf::from)
                    .collect(),
            },
            web: WebConfig {
                listen_addresses: vec![ListenAddress::AnyInterface(10120)],
                telemetry_path: "/metrics".to_string(),
                max_requests: 40,
                shutdown_timeout: Duration::from_secs(5),
            },
            log: LogConfig {
                level: LogLevel::Info,
                format: LogFormat::Text,
            },
        }
    }
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Load(String),
    #[error("{origin}: unknown key `{key}`")]
    UnknownKey { origin: String, key: String },
    #[error("{origin}: `{key}` = {value}: {reason}")]
    Invalid {
        origin: String,
        key: String,
        value: String,
        reason: String,
    },
}

/// Every problem found, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Loads the configuration from the flags' file (if any), the process environment
    /// and the flags.
    pub fn load(flags: &Flags) -> Result<Config, ConfigErrors> {
        Config::load_from(flags, std::env::vars())
    }

    /// As [`Config::load`], with the environment given (for tests).
    pub fn load_from(
        flags: &Flags,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with(&format!("{ENV_PREFIX}_")))
            .collect();
        let mut builder = config::Config::builder();
        if let Some(path) = &flags.config_file {
            builder = builder.add_source(
                File::from(path.as_path())
                    .format(FileFormat::Toml)
                    .required(true),
            );
        }
        builder = builder.add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("_")
                .separator("__")
                .source(Some(env)),
        );
        let overrides = flags.overrides();
        for (key, _, value) in &overrides {
            builder = builder
                .set_override(*key, Value::new(None, value.clone()))
                .map_err(|source| ConfigErrors(vec![ConfigError::Load(source.to_string())]))?;
        }
        let merged = builder
            .build()
            .map_err(|source| ConfigErrors(vec![ConfigError::Load(source.to_string())]))?;

        let mut leaves = BTreeMap::new();
        flatten(String::new(), merged.cache, &mut leaves);
        let mut reader = Reader {
            leaves,
            flags: overrides
                .iter()
                .map(|(key, flag, _)| (*key, *flag))
                .collect(),
            file: flags.config_file.clone(),
            errors: Vec::new(),
        };
        let defaults = Config::default();
        let config = Config {
            poll_interval: reader.take("poll_interval", defaults.poll_interval, |v| {
                duration(v, Duration::from_millis(100))
            }),
            listen_poll_interval: reader.take(
                "listen_poll_interval",
                defaults.listen_poll_interval,
                |v| {
                    let interval = duration(v, Duration::ZERO)?;
                    match interval {
                        Duration::ZERO => Ok(None),
                        short if short < Duration::from_millis(10) => {
                            Err("must be 0s (off) or at least 10ms".to_string())
                        }
                        interval => Ok(Some(interval)),
                    }
                },
            ),
            settings: Settings {
                max_ports: reader.take("max_ports", defaults.settings.max_ports, positive),
                max_processes: reader.take(
                    "max_processes",
                    defaults.settings.max_processes,
                    positive,
                ),
                ports: PortFilter {
                    include: reader.take("ports.include", Vec::new(), port_ranges),
                    exclude: reader.take("ports.exclude", Vec::new(), port_ranges),
                },
                netns: NetnsCaps {
                    max_ports: reader.take(
                        "netns.max_ports",
                        defaults.settings.netns.max_ports,
                        positive,
                    ),
                    max_processes: reader.take(
                        "netns.max_processes",
                        defaults.settings.netns.max_processes,
                        positive,
                    ),
                    max_destinations: reader.take(
                        "netns.max_destinations",
                        defaults.settings.netns.max_destinations,
                        positive,
                    ),
                    max_peers: reader.take(
                        "netns.max_peers",
                        defaults.settings.netns.max_peers,
                        positive,
                    ),
                },
                max_destinations: reader.take(
                    "max_destinations",
                    defaults.settings.max_destinations,
                    positive,
                ),
                max_peers: reader.take("max_peers", defaults.settings.max_peers, positive),
                close_wait_stale_after: reader.take(
                    "close_wait_stale_after",
                    defaults.settings.close_wait_stale_after,
                    |v| duration(v, Duration::from_secs(1)),
                ),
            },
            close_wait_capacity: reader.take(
                "close_wait_capacity",
                defaults.close_wait_capacity,
                positive,
            ),
            namespaces: reader.take("namespaces", defaults.namespaces, scope),
            netns: NetnsConfig {
                max_namespaces: reader.take(
                    "netns.max_namespaces",
                    defaults.netns.max_namespaces,
                    positive,
                ),
                concurrency: reader.take("netns.concurrency", defaults.netns.concurrency, |v| {
                    let n = positive(v)?;
                    if n > 64 {
                        return Err("must be at most 64".to_string());
                    }
                    Ok(n)
                }),
                docker_root: reader.take("netns.docker_root", defaults.netns.docker_root, |v| {
                    absolute_path(v)
                }),
                bind_roots: reader.take(
                    "netns.bind_roots",
                    defaults.netns.bind_roots,
                    absolute_paths,
                ),
            },
            web: WebConfig {
                listen_addresses: reader.take(
                    "web.listen_addresses",
                    defaults.web.listen_addresses,
                    listen_addresses,
                ),
                telemetry_path: reader.take(
                    "web.telemetry_path",
                    defaults.web.telemetry_path,
                    telemetry_path,
                ),
                max_requests: reader.take("web.max_requests", defaults.web.max_requests, |v| {
                    integer(v).map(|n| n as usize)
                }),
                shutdown_timeout: reader.take(
                    "web.shutdown_timeout",
                    defaults.web.shutdown_timeout,
                    |v| duration(v, Duration::ZERO),
                ),
            },
            log: LogConfig {
                level: reader.take("log.level", defaults.log.level, log_level),
                format: reader.take("log.format", defaults.log.format, log_format),
            },
        };
        reader.finish()?;
        Ok(config)
    }
}

/// Takes known keys out of the merged tree; whatever is left is unknown.
struct Reader {
    leaves: BTreeMap<String, Value>,
    flags: BTreeMap<&'static str, &'static str>,
    file: Option<PathBuf>,
    errors: Vec<ConfigError>,
}

impl Reader {
    fn take<T>(&mut self, key: &str, default: T, parse: impl Fn(&Value) -> Result<T, String>) -> T {
        let Some(value) = self.leaves.remove(key) else {
            return default;
        };
        match parse(&value) {
            Ok(parsed) => parsed,
            Err(reason) => {
                self.errors.push(ConfigError::Invalid {
                    origin: self.origin(key, &value),
                    key: key.to_string(),
                    value: render(&value),
                    reason,
                });
                default
            }
        }
    }

    fn origin(&self, key: &str, value: &Value) -> String {
        if let Some(flag) = self.flags.get(key) {
            return format!("flag {flag}");
        }
        match (value.origin(), &self.file) {
            (Some("the environment"), _) => format!("environment variable {}", env_name(key)),
            // The config crate records the file relative to the working directory; name it
            // the way the user did.
            (Some(_), Some(file)) => file.display().to_string(),
            (Some(origin), None) => origin.to_string(),
            (None, _) => "configuration".to_string(),
        }
    }

    fn finish(mut self) -> Result<(), ConfigErrors> {
        let unknown = std::mem::take(&mut self.leaves);
        for (key, value) in unknown {
            self.errors.push(ConfigError::UnknownKey {
                origin: self.origin(&key, &value),
                key,
            });
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// The environment variable that sets `key`.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}_{}", key.replace('.', "__").to_uppercase())
}

fn flatten(prefix: String, value: Value, out: &mut BTreeMap<String, Value>) {
    if let ValueKind::Table(table) = &value.kind {
        for (name, child) in table.clone() {
            let key = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}.{name}")
            };
            flatten(key, child, out);
        }
        return;
    }
    out.insert(prefix, value);
}

fn render(value: &Value) -> String {
    match &value.kind {
        ValueKind::String(s) => format!("{s:?}"),
        ValueKind::Array(items) => {
            let items: Vec<String> = items.iter().map(render).collect();
            format!("[{}]", items.join(", "))
        }
        _ => value.to_string(),
    }
}

fn string(value: &Value) -> Result<&str, String> {
    match &value.kind {
        ValueKind::String(s) => Ok(s),
        _ => Err("expected a string".to_string()),
    }
}

fn duration(value: &Value, minimum: Duration) -> Result<Duration, String> {
    let text = string(value)
        .map_err(|_| "expected a duration string such as \"15s\" or \"500ms\"".to_string())?;
    let parsed = humantime::parse_duration(text).map_err(|source| {
        format!("not a duration ({source}); write e.g. \"15s\", \"500ms\" or \"1m\"")
    })?;
    if parsed < minimum {
        return Err(format!(
            "must be at least {}",
            humantime::format_duration(minimum)
        ));
    }
    Ok(parsed)
}

fn integer(value: &Value) -> Result<u64, String> {
    match &value.kind {
        ValueKind::I64(n) if *n >= 0 => Ok(*n as u64),
        ValueKind::U64(n) => Ok(*n),
        ValueKind::I128(n) if *n >= 0 && *n <= u64::MAX as i128 => Ok(*n as u64),
        ValueKind::U128(n) if *n <= u64::MAX as u128 => Ok(*n as u64),
        ValueKind::String(s) => s
            .trim()
            .parse::<u64>()
            .map_err(|source| format!("expected a non-negative integer: {source}")),
        _ => Err("expected a non-negative integer".to_string()),
    }
}

fn positive(value: &Value) -> Result<usize, String> {
    match integer(value)? {
        0 => Err("must be at least 1".to_string()),
        n => usize::try_from(n).map_err(|source| source.to_string()),
    }
}

/// A list of ports and inclusive ranges: `[3306, "8000-8100"]`, or from an environment
/// variable the same comma-separated: `3306,8000-8100`.
fn port_ranges(value: &Value) -> Result<Vec<(u16, u16)>, String> {
    let items: Vec<String> = match &value.kind {
        ValueKind::Array(items) => items
            .iter()
            .map(|item| match &item.kind {
                ValueKind::String(s) => Ok(s.trim().to_string()),
                _ => integer(item)
                    .map(|n| n.to_string())
                    .map_err(|_| format!("{}: not a port", render(item))),
            })
            .collect::<Result<_, _>>()?,
        ValueKind::String(list) if list.trim().is_empty() => Vec::new(),
        ValueKind::String(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        _ => return Err("expected a list of ports or \"LOW-HIGH\" ranges".to_string()),
    };
    items
        .iter()
        .map(|text| {
            let (low, high) = text.split_once('-').unwrap_or((text, text));
            let port = |p: &str| {
                p.trim()
                    .parse::<u16>()
                    .map_err(|source| format!("{text:?}: not a port or range ({source})"))
            };
            let (low, high) = (port(low)?, port(high)?);
            if low > high {
                return Err(format!("{text:?}: range starts above its end"));
            }
            Ok((low, high))
        })
        .collect()
}

fn listen_addresses(value: &Value) -> Result<Vec<ListenAddress>, String> {
    // An environment variable holds the list comma-separated.
    let items: Vec<&str> = match &value.kind {
        ValueKind::Array(items) => items.iter().map(string).collect::<Result<_, _>>()?,
        ValueKind::String(list) => list.split(',').collect(),
        _ => return Err("expected a list of addresses".to_string()),
    };
    if items.is_empty() {
        return Err("at least one address is needed".to_string());
    }
    items
        .iter()
        .map(|item| ListenAddress::parse(item.trim()).map_err(|e| format!("{item:?}: {e}")))
        .collect()
}

fn telemetry_path(value: &Value) -> Result<String, String> {
    let path = string(value)?;
    if !path.starts_with('/') || path.len() < 2 {
        return Err("must start with / and name a path, e.g. \"/metrics\"".to_string());
    }
    if path.starts_with("/-/") {
        return Err("/-/ is reserved for /-/healthy and /-/ready".to_string());
    }
    if path == "/api/summary" {
        return Err("/api/summary is the landing page's data".to_string());
    }
    Ok(path.to_string())
}

fn scope(value: &Value) -> Result<Scope, String> {
    match string(value)? {
        "all" => Ok(Scope::All),
        "own" => Ok(Scope::Own),
        other => Err(format!("{other:?} is not all or own")),
    }
}

fn absolute_path(value: &Value) -> Result<PathBuf, String> {
    let path = PathBuf::from(string(value)?);
    if !path.is_absolute() {
        return Err("must be an absolute path".to_string());
    }
    Ok(path)
}

/// A list of absolute paths; an environment variable holds it comma-separated.
fn absolute_paths(value: &Value) -> Result<Vec<PathBuf>, String> {
    let texts: Vec<String> = match &value.kind {
        ValueKind::Array(items) => items
            .iter()
            .map(|item| string(item).map(str::to_string))
            .collect::<Result<_, _>>()?,
        ValueKind::String(list) if list.trim().is_empty() => Vec::new(),
        ValueKind::String(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        _ => return Err("expected a list of absolute paths".to_string()),
    };
    texts
        .into_iter()
        .map(|text| {
            let path = PathBuf::from(&text);
            if path.is_absolute() {
                Ok(path)
            } else {
                Err(format!("{text:?} is not an absolute path"))
            }
        })
        .collect()
}

fn log_level(value: &Value) -> Result<LogLevel, String> {
    match string(value)? {
        "error" => Ok(LogLevel::Error),
        "warn" => Ok(LogLevel::Warn),
        "info" => Ok(LogLevel::Info),
        "debug" => Ok(LogLevel::Debug),
        "trace" => Ok(LogLevel::Trace),
        _ => Err("expected one of error, warn, info, debug, trace".to_string()),
    }
}

fn log_format(value: &Value) -> Result<LogFormat, String> {
    match string(value)? {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected text or json".to_string()),
    }
}

#[cfg(test)]
mod tests {
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
        let f = file("poll_interval = \"fast\"\npoll_intervall = \"5s\"\n[web]\ntelemetry_path = \"metrics\"\n");
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
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
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
}
