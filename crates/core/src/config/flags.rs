//! Command-line flags. Names follow the Prometheus exporters' (`--web.listen-address`).
//! Every flag but `--config.file` overrides one config key; see the README flag table.

use std::path::PathBuf;

use clap::Parser;
use config::{Value, ValueKind};

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
    /// Web config file (exporter-toolkit format: TLS, client certificates, basic auth,
    /// headers). Overrides `web.config_file`.
    #[arg(long = "web.config.file", value_name = "PATH")]
    pub web_config_file: Option<String>,
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
    pub(super) fn overrides(&self) -> Vec<(&'static str, &'static str, ValueKind)> {
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
            (
                "web.config_file",
                "--web.config.file",
                &self.web_config_file,
            ),
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
