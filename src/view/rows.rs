//! The rows of a summary, as `report --json` (schema version [`super::summary::SCHEMA_VERSION`])
//! and `/api/summary` serialise them: their field names are the documented schema
//! (docs/report.md).

use std::collections::BTreeMap;

use serde::Serialize;

/// Everything `report` prints and `/` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub schema_version: u32,
    /// Unix time (seconds) when the latest poll finished.
    pub completed_at: f64,
    /// Seconds between the base poll and the latest; `null` without a base (no growth).
    pub window_seconds: Option<f64>,
    /// The first finding's text, or "nothing looks wrong".
    pub headline: String,
    pub findings: Vec<Finding>,
    /// Why the picture may be incomplete (namespaces not sampled, owners unknown).
    pub notes: Vec<String>,
    pub poll: PollHealth,
    /// The optional collectors by name, on (true) or turned off (false); TCP, always on,
    /// is not listed.
    pub collectors: BTreeMap<&'static str, bool>,
    pub namespaces: NamespaceCount,
    pub states: Vec<NetnsStates>,
    pub close_wait: Vec<CloseWaitRow>,
    pub listeners: Vec<ListenerRow>,
    pub unix_listeners: Vec<UnixListenerRow>,
    /// UDP series that dropped datagrams.
    pub udp_drops: Vec<UdpDropRow>,
    pub time_wait: Vec<TimeWaitRow>,
    pub ephemeral: Vec<EphemeralRow>,
    pub peers: Vec<PeerRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PollHealth {
    pub duration_seconds: f64,
    pub sockets_scanned: u64,
    /// Failed polls since start by stage; `null` in `report`, which fails instead.
    pub errors_total: Option<BTreeMap<&'static str, u64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NamespaceCount {
    /// Namespaces sampled, folded ones included.
    pub sampled: usize,
    /// Namespaces beyond `netns.max_namespaces`, summed under `netns="other"`.
    pub folded: u64,
    pub skipped_permission: u64,
    pub skipped_vanished: u64,
    pub skipped_error: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetnsStates {
    pub netns: String,
    /// What a person calls the namespace: `namespace/pod`, the container's name, else
    /// the `netns` label.
    pub netns_name: String,
    /// Sockets in the states kept by the filter, IPv4 and IPv6 together.
    pub total: u64,
    /// `state` label -> sockets, every state the filter keeps, zero included.
    pub states: BTreeMap<&'static str, u64>,
}

/// Change of a count between the base poll and the latest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Growth {
    /// Sockets now minus sockets then (a series absent then counts 0).
    pub sockets: i64,
    pub per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CloseWaitRow {
    pub netns: String,
    /// What a person calls the namespace: `namespace/pod`, the container's name, else
    /// the `netns` label.
    pub netns_name: String,
    pub process: String,
    pub direction: &'static str,
    pub port: String,
    pub sockets: u64,
    pub growth: Option<Growth>,
    /// Oldest CLOSE_WAIT socket, at least (seen since the first poll that saw it).
    pub oldest_seconds: f64,
    /// Older than `close_wait_stale_after`.
    pub stale: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListenerRow {
    pub netns: String,
    /// What a person calls the namespace: `namespace/pod`, the container's name, else
    /// the `netns` label.
    pub netns_name: String,
    pub address: String,
    pub port: u16,
    pub process: String,
    /// Connections in the accept queue (Recv-Q).
    pub length: u64,
    /// The backlog (Send-Q); a full queue shows `limit + 1`.
    pub limit: u64,
    /// length / limit (a limit of 0 counts as 1).
    pub fill: f64,
    pub peak: u64,
    /// Sockets of this port still in an accept queue, by state (per port, every address).
    pub unaccepted_close_wait: u64,
    pub unaccepted_established: u64,
}

/// A UNIX stream listener (php-fpm, gunicorn): the `sockdiag_unix_listen_queue_*` series.
#[derive(Debug, Clone, Serialize)]
pub struct UnixListenerRow {
    pub netns: String,
    /// What a person calls the namespace: `namespace/pod`, the container's name, else
    /// the `netns` label.
    pub netns_name: String,
    /// The `path` label: `@name` for an abstract name, `""` unnamed, `other` folded.
    pub path: String,
    pub process: String,
    /// Connections waiting to be accepted (`ss -xl` Recv-Q).
    pub length: u64,
    /// The backlog (`ss -xl` Send-Q); a full queue shows `limit + 1`.
    pub limit: u64,
    /// length / limit (a limit of 0 counts as 1).
    pub fill: f64,
    pub peak: u64,
}

/// A UDP (direction, port, process) that dropped datagrams: `sockdiag_udp_drops_total`
/// with the `sockdiag_udp_receive_{queue,buffer}_bytes` of the same labels.
#[derive(Debug, Clone, Serialize)]
pub struct UdpDropRow {
    pub netns: String,
    /// What a person calls the namespace: `namespace/pod`, the container's name, else
    /// the `netns` label.
    pub netns_name: String,
    pub direction: &'static str,
    /// inbound: the local port; outbound: the remote port; `other` folded.
    pub port: String,
    pub process: String,
    /// Datagrams dropped, as `sockdiag_udp_drops_total` counts them.
    pub drops: u64,
    /// Dropped since the base poll; `null` without one.
    pub growth: Option<u64>,
    /// Bytes in the receive queues (`ss -uam` r); 0 once the sockets are gone.
    pub queue_bytes: u64,
    /// The receive buffers (`ss -uam` rb); 0 once the sockets are gone.
    pub buffer_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimeWaitRow {
    pub netns: String,
    /// What a person calls the namespace: `namespace/pod`, the container's name, else
    /// the `netns` label.
    pub netns_name: String,
    pub direction: &'static str,
    pub port: String,
    pub sockets: u64,
    pub growth: Option<Growth>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EphemeralRow {
    pub netns: String,
    /// What a person calls the namespace: `namespace/pod`, the container's name, else
    /// the `netns` label.
    pub netns_name: String,
    /// `other` for the largest of the destinations beyond the cap.
    pub remote_address: String,
    pub remote_port: String,
    /// Local ephemeral ports in use toward it, any state, max over local addresses.
    pub used: u64,
    /// Size of net.ipv4.ip_local_port_range, when readable.
    pub range: Option<u32>,
    pub fill: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerRow {
    pub netns: String,
    /// What a person calls the namespace: `namespace/pod`, the container's name, else
    /// the `netns` label.
    pub netns_name: String,
    /// `other` for the rest beyond the cap.
    pub remote_address: String,
    /// Sockets in the states kept by the filter.
    pub sockets: u64,
    /// `state` label -> sockets, non-zero only.
    pub states: BTreeMap<&'static str, u64>,
}

/// The kind of a finding: the `kind` field of the JSON schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    CloseWaitGrowing,
    ListenQueueFull,
    UnixListenQueueFull,
    UdpDrops,
    UnacceptedCloseWait,
    CloseWaitStale,
    EphemeralPorts,
    TimeWaitGrowing,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub netns: String,
    /// What a person calls the namespace: `namespace/pod`, the container's name, else
    /// the `netns` label.
    pub netns_name: String,
    /// One line for a person, e.g. "CLOSE_WAIT growing: php-fpm :9000 inbound, +12/s,
    /// oldest 340 s".
    pub text: String,
}

/// The process label as people read it: `-` for no owner (inode 0).
pub fn process_text(process: &str) -> &str {
    if process.is_empty() {
        "-"
    } else {
        process
    }
}

/// The path label as people read it: `-` for an unnamed listener.
pub fn path_text(path: &str) -> &str {
    if path.is_empty() {
        "-"
    } else {
        path
    }
}
