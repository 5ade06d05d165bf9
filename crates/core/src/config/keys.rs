//! Every configuration key, defined once: its TOML name, the [`Config`] field it sets, its
//! parser, its help and, for a few, its flag. The flags ([`Flags`]), the environment
//! variables ([`env_name`](super::env_name)), the loader and the README's tables follow
//! from this table; a key's default is its field in [`Config::default`]. Problems are
//! reported in the table's order.
//!
//! Adding a key: an entry here, the field (and its default) in the struct that holds it,
//! and its prose in config.example.toml; then `UPDATE_DOCS=1 cargo test -p sockdiag-core
//! readme` regenerates the README's tables. The drift checks in `tests/drift.rs` fail
//! until the example file and the README agree with this table.
//!
//! The collectors' keys (`collectors.NAME`) and flag pairs are not entries here: they come
//! from the collector table in [`crate::collectors`], which this table is handed through.

use std::time::Duration;

use super::key::config_keys;
use super::validate::{self as v, MAX_CONNECTIONS, MAX_POLL_INTERVAL, MAX_REQUESTS};
#[cfg(doc)]
use super::Config;
use crate::collectors::for_each_collector;

const DAY: Duration = Duration::from_secs(24 * 3600);

// The collectors' keys (`collectors.NAME`) and flags come last, from the collector table
// in `crate::collectors`.
for_each_collector!(config_keys! {
    "poll_interval" {
        field: poll_interval,
        parse: |v| v::duration(v, Duration::from_millis(100), MAX_POLL_INTERVAL),
        help: "Interval between socket polls, e.g. `15s`",
        flag: poll_interval: Option<String> = "poll.interval" "DURATION",
    }
    "listen_poll_interval" {
        field: listen_poll_interval,
        parse: v::listen_interval,
        help: "LISTEN-only sampling for queue peaks; `0s` off, as `collectors.listen_sampler = false`",
    }
    "max_ports" {
        field: settings.max_ports,
        parse: v::positive,
        help: "Ports per direction keeping their label",
    }
    "max_processes" {
        field: settings.max_processes,
        parse: v::positive,
        help: "Processes keeping their label",
    }
    "ports.include" {
        field: settings.ports.include,
        parse: v::port_ranges,
        help: "Ports (or `\"LOW-HIGH\"` ranges) allowed a label of their own; empty: all",
    }
    "ports.exclude" {
        field: settings.ports.exclude,
        parse: v::port_ranges,
        help: "Ports (or `\"LOW-HIGH\"` ranges) always folded into `other`",
    }
    "max_destinations" {
        field: settings.max_destinations,
        parse: v::positive,
        help: "Destinations of `sockdiag_tcp_ephemeral_ports_used`",
    }
    "max_peers" {
        field: settings.max_peers,
        parse: v::positive,
        help: "Remote addresses of `sockdiag_tcp_peer_sockets`",
    }
    "max_unix_paths" {
        field: settings.max_unix_paths,
        parse: v::positive,
        help: "UNIX listeners keeping their `path` label (fullest first, full ones up \
               to twice the cap); the rest are summed into `path=\"other\"`",
    }
    "max_listeners" {
        field: settings.max_listeners,
        parse: v::positive,
        help: "TCP listening addresses exported by `sockdiag_tcp_listen_queue_*` (fullest \
               first, full ones up to twice the cap); the rest are counted in \
               `sockdiag_folded_label_values{label=\"listener\"}`",
    }
    "netns.max_ports" {
        field: settings.netns.max_ports,
        parse: v::positive,
        help: "`max_ports` of every namespace but the host's and our own",
    }
    "netns.max_processes" {
        field: settings.netns.max_processes,
        parse: v::positive,
        help: "`max_processes` of every namespace but the host's and our own",
    }
    "netns.max_destinations" {
        field: settings.netns.max_destinations,
        parse: v::positive,
        help: "`max_destinations` of every namespace but the host's and our own",
    }
    "netns.max_peers" {
        field: settings.netns.max_peers,
        parse: v::positive,
        help: "`max_peers` of every namespace but the host's and our own",
    }
    "netns.max_unix_paths" {
        field: settings.netns.max_unix_paths,
        parse: v::positive,
        help: "`max_unix_paths` of every namespace but the host's and our own",
    }
    "netns.max_listeners" {
        field: settings.netns.max_listeners,
        parse: v::positive,
        help: "`max_listeners` of every namespace but the host's and our own",
    }
    "close_wait_stale_after" {
        field: settings.close_wait_stale_after,
        parse: |v| v::duration(v, Duration::from_secs(1), 365 * DAY),
        help: "Age from which CLOSE_WAIT is stale (at least 1s)",
    }
    "close_wait_capacity" {
        field: close_wait_capacity,
        parse: v::positive,
        help: "CLOSE_WAIT sockets whose age is tracked, every namespace together",
    }
    "namespaces" {
        field: namespaces,
        parse: v::scope,
        help: "`all` (every network namespace on the host) or `own`",
        flag: namespaces: Option<String> = "namespaces" "all|own",
    }
    "netns.max_namespaces" {
        field: netns.max_namespaces,
        parse: v::positive,
        help: "Namespaces keeping their `netns` label (the host's and our own always): \
               runtimes' and `ip netns` ones before any user's, anomalies first; those \
               holding an anomaly are kept past the cap, up to as many again; the rest \
               fold into `other`",
    }
    "netns.concurrency" {
        field: netns.concurrency,
        parse: |v| v::between(v, 1, 64),
        help: "Namespaces dumped at once besides ours (1-64)",
    }
    "netns.docker_root" {
        field: netns.docker_root,
        parse: v::absolute_path,
        help: "Docker's data root, for container names",
    }
    "netns.bind_roots" {
        field: netns.bind_roots,
        parse: v::absolute_paths,
        help: "Bind-mounted namespaces, sampled with no process in them; the first is \
               ip-netns' (names become labels)",
    }
    "web.listen_addresses" {
        field: web.listen_addresses,
        parse: v::listen_addresses,
        help: "Address to listen on (repeatable): `:PORT`, `IP:PORT` or `[IPv6]:PORT`",
        flag: listen_addresses: Vec<String> = "web.listen-address" "ADDR",
    }
    "web.telemetry_path" {
        field: web.telemetry_path,
        parse: v::telemetry_path,
        help: "Path under which metrics are served",
        flag: telemetry_path: Option<String> = "web.telemetry-path" "PATH",
    }
    "web.max_requests" {
        field: web.max_requests,
        parse: |v| v::at_most(v, MAX_REQUESTS),
        help: "Concurrent scrapes allowed before answering 503 (0: no limit)",
        flag: max_requests: Option<String> = "web.max-requests" "N",
    }
    "web.shutdown_timeout" {
        field: web.shutdown_timeout,
        parse: |v| v::duration(v, Duration::ZERO, Duration::from_secs(600)),
        help: "Drain deadline for responses in flight after SIGTERM/SIGINT (at most 10m); \
               a second signal exits at once",
    }
    "web.max_connections" {
        field: web.max_connections,
        parse: |v| v::between(v, 1, MAX_CONNECTIONS),
        help: "Open HTTP connections at most (see \"Limits and timeouts\")",
    }
    "web.header_read_timeout" {
        field: web.header_read_timeout,
        parse: |v| v::duration(v, Duration::from_millis(100), Duration::from_secs(3600)),
        help: "Time a request header (or TLS handshake) may take to arrive",
    }
    "web.idle_timeout" {
        field: web.idle_timeout,
        parse: |v| v::duration(v, Duration::from_millis(100), Duration::from_secs(3600)),
        help: "Time a keep-alive connection may wait for its next request",
    }
    "web.config_file" {
        field: web.config_file,
        parse: v::file_path,
        help: "Web config file (exporter-toolkit format: TLS, client certificates, basic \
               auth, headers)",
        flag: web_config_file: Option<String> = "web.config.file" "PATH",
    }
    "web.probes_without_auth" {
        field: web.probes_without_auth,
        parse: v::boolean,
        help: "`/-/healthy` and `/-/ready` answer without basic auth",
    }
    "log.level" {
        field: log.level,
        parse: v::log_level,
        help: "error, warn, info, debug or trace",
        flag: log_level: Option<String> = "log.level" "LEVEL",
    }
    "log.format" {
        field: log.format,
        parse: v::log_format,
        help: "text or json",
        flag: log_format: Option<String> = "log.format" "FORMAT",
    }
});
