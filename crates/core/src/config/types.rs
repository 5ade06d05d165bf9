//! The validated configuration and its embedded defaults.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::collectors::Collectors;
use crate::fold::Settings;
use crate::poll::{PollerConfig, Scope};

use super::DEFAULT_LISTEN_ADDRESS;

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
    /// `[collectors]`: the optional collectors turned on. The listener sampler runs when
    /// its toggle is on and `listen_poll_interval` is not `0s` (see `PollerConfig`).
    pub collectors: Collectors,
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
    /// Open connections served at most; accepts beyond are closed at once and counted.
    pub max_connections: usize,
    /// Time a new request's header may take to arrive, from the connection's start or
    /// from its first byte after a response.
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// The exporter-toolkit web config file (TLS, basic auth, headers), if any.
    pub config_file: Option<PathBuf>,
    /// `/-/healthy` and `/-/ready` answer without basic auth (for probes that cannot send
    /// credentials); by default they are protected like the rest.
    pub probes_without_auth: bool,
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
    /// The embedded defaults. The poller's settings (caps, namespaces, where discovery
    /// reads) are the poller's own defaults, defined once in [`PollerConfig::new`], the
    /// fold's in `Settings::default`; the web and log defaults are here.
    fn default() -> Config {
        let poller = PollerConfig::new(Duration::from_secs(15), Some(Duration::from_secs(1)));
        Config {
            poll_interval: poller.poll_interval,
            listen_poll_interval: poller.listen_poll_interval,
            settings: poller.settings,
            close_wait_capacity: poller.close_wait_capacity,
            namespaces: poller.scope,
            netns: NetnsConfig {
                max_namespaces: poller.max_namespaces,
                concurrency: poller.netns_concurrency,
                docker_root: poller.sources.docker_root,
                bind_roots: poller.sources.bind_roots,
            },
            web: WebConfig {
                listen_addresses: vec![DEFAULT_LISTEN_ADDRESS],
                telemetry_path: "/metrics".to_string(),
                max_requests: 40,
                shutdown_timeout: Duration::from_secs(5),
                max_connections: 512,
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
                config_file: None,
                probes_without_auth: false,
            },
            log: LogConfig {
                level: LogLevel::Info,
                format: LogFormat::Text,
            },
            collectors: Collectors::default(),
        }
    }
}
