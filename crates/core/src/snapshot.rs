//! The immutable result of one poll, and what the poller publishes for scrapes.
//!
//! A [`Snapshot`] is built once per successful poll and never changed; scrapes encode
//! whichever snapshot is current ([`Published`]), so a scrape never waits for netlink
//! and never sees a half-folded poll.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::collectors::Collectors;
use crate::label::label_enum;
use crate::source::inet_diag::{Family, TcpState};
use crate::source::kernel_value::KernelSource;
use crate::source::proc_net_snmp::NetCounters;
use crate::source::proc_sys_net::{NetSysctls, PortRange};
use crate::source::unix_diag::{UnixState, UnixType};

/// Per family, per state socket counts: `counts[family.index()][state.index()]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub counts: [[u64; TcpState::COUNT]; Family::COUNT],
}

impl StateCounts {
    pub fn get(&self, family: Family, state: TcpState) -> u64 {
        self.counts[family.index()][state.index()]
    }

    pub fn add(&mut self, family: Family, state: TcpState) {
        self.counts[family.index()][state.index()] += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &StateCounts) {
        for (total, n) in self
            .counts
            .iter_mut()
            .flatten()
            .zip(other.counts.iter().flatten())
        {
            *total += n;
        }
    }
}

/// Per type, per state UNIX socket counts: `counts[kind.index()][state.index()]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixCounts {
    pub counts: [[u64; UnixState::COUNT]; UnixType::COUNT],
}

impl UnixCounts {
    pub fn get(&self, kind: UnixType, state: UnixState) -> u64 {
        self.counts[kind.index()][state.index()]
    }

    pub fn add(&mut self, kind: UnixType, state: UnixState) {
        self.counts[kind.index()][state.index()] += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &UnixCounts) {
        for (total, n) in self
            .counts
            .iter_mut()
            .flatten()
            .zip(other.counts.iter().flatten())
        {
            *total += n;
        }
    }
}

label_enum! {
    /// Which end of a connection the port label names; the `direction` label.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Direction {
        /// The local port is a listening port of the namespace; `port` is that local port.
        Inbound => "inbound",
        /// Anything else; `port` is the remote port.
        Outbound => "outbound",
    }
}

/// A port label: a number, or `other` for ports folded by the cardinality limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortLabel {
    Port(u16),
    Other,
}

impl fmt::Display for PortLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortLabel::Port(port) => write!(f, "{port}"),
            PortLabel::Other => f.write_str("other"),
        }
    }
}

/// Non-LISTEN sockets of one (direction, port, process, state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSeries {
    pub direction: Direction,
    pub port: PortLabel,
    /// comm, `""` (no owner), `unknown` (owner not found) or `other` (folded).
    pub process: Arc<str>,
    pub state: TcpState,
    pub sockets: u64,
    pub receive_bytes: u64,
    pub send_bytes: u64,
    /// CLOSE_WAIT series only: age of the oldest socket (at least), and how many are
    /// older than `close_wait_stale_after`.
    pub close_wait_oldest: Duration,
    pub close_wait_stale: u64,
}

/// One listening address and port (SO_REUSEPORT groups summed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSeries {
    pub address: IpAddr,
    pub port: u16,
    pub process: Arc<str>,
    /// Connections waiting in the accept queue (Recv-Q).
    pub length: u64,
    /// The backlog (Send-Q).
    pub limit: u64,
    /// Largest length sampled since the previous poll.
    pub peak: u64,
}

/// One UNIX listener, by its bound name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixListenerSeries {
    /// The path, `@name` for an abstract name, `""` when unnamed, `other` when folded.
    pub path: Arc<str>,
    /// comm of the owner, `unknown` (not found), `other` (the folded listeners).
    pub process: Arc<str>,
    /// Connections waiting to be accepted (`ss -xl` Recv-Q).
    pub length: u64,
    /// The backlog (`ss -xl` Send-Q).
    pub limit: u64,
    /// Largest length sampled since the previous poll, at least the current length.
    pub peak: u64,
}

/// What the UNIX fold of one namespace measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixFigures {
    pub sockets: UnixCounts,
    /// Sorted by path, then process.
    pub listeners: Vec<UnixListenerSeries>,
    /// Listeners folded into `path="other"`: beyond `max_unix_paths`, or a less full
    /// listener of the same path and process.
    pub folded_paths: u64,
    /// Full listeners among them: beyond even the anomaly ceiling.
    pub folded_anomalies: u64,
    /// Listeners whose owner was not found.
    pub unattributed: u64,
    /// Records read from the kernel.
    pub sockets_scanned: u64,
}

/// UDP sockets of one (direction, port, process): the gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpSeries {
    pub direction: Direction,
    pub port: PortLabel,
    /// comm, `""` (no owner), `unknown` (owner not found) or `other` (folded).
    pub process: Arc<str>,
    pub sockets: u64,
    /// Bytes held by the receive queues (`ss -uam` r, summed).
    pub queue_bytes: u64,
    /// Receive buffers (`ss -uam` rb, summed).
    pub buffer_bytes: u64,
    /// Datagrams dropped by these sockets since the previous poll (a socket seen for
    /// the first time: all of its drops): what the cap ranks by.
    pub drops_growth: u64,
}

/// `sockdiag_udp_drops_total` of one (direction, port, process): a counter kept by
/// [`crate::fold::udp::drops::DropTracker`] from poll to poll.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UdpDropSeries {
    pub direction: Direction,
    pub port: PortLabel,
    pub process: Arc<str>,
    pub drops: u64,
}

/// What the UDP fold of one namespace measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpFigures {
    /// Sockets per family: `sockets[family.index()]`.
    pub sockets: [u64; 2],
    /// Sorted by direction, port, process.
    pub series: Vec<UdpSeries>,
    /// Sorted by direction, port, process.
    pub drops: Vec<UdpDropSeries>,
    /// (direction, port, process) series folded into `other` by `max_ports`.
    pub folded_series: u64,
    /// Of those, series that were dropping (folded only past the anomaly ceiling).
    pub folded_dropping: u64,
    /// Sockets whose owner was not found.
    pub unattributed: u64,
    /// Dropping sockets the drop tracker could not hold: their drops are not counted.
    pub drops_untracked: u64,
    /// Records read from the kernel.
    pub sockets_scanned: u64,
}

impl UdpFigures {
    pub fn total(&self) -> u64 {
        self.sockets.iter().sum()
    }
}

/// Who holds the sockets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breakdown {
    pub ports: Vec<PortSeries>,
    pub listeners: Vec<ListenerSeries>,
    /// Inbound established/close_wait sockets still in an accept queue, by port.
    pub unaccepted: Vec<(PortLabel, TcpState, u64)>,
    /// Sockets with an owner that was not found.
    pub unattributed: u64,
    pub folded_ports: u64,
    pub folded_processes: u64,
    /// Listening addresses beyond `max_listeners` (their series are not exported).
    pub folded_listeners: u64,
    pub folded_anomalies: FoldedAnomalies,
}

/// Anomalies ([`crate::fold::anomaly`]) folded because even the ceiling of their cap was
/// reached: `sockdiag_folded_anomalies{kind}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldedAnomalies {
    /// CLOSE_WAIT piles and never-accepted CLOSE_WAIT, per (direction, port, process).
    pub close_wait: u64,
    /// TIME_WAIT storms, per (direction, port).
    pub time_wait: u64,
    /// Full TCP accept queues, per listening address.
    pub listeners: u64,
}

/// Leak and exhaustion signals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exhaustion {
    /// net.ipv4.ip_local_port_range, if it could be read.
    pub port_range: Option<PortRange>,
    /// Top destinations (remote address, port) by ephemeral ports in use toward them,
    /// max over local addresses; `None` is `other`, the largest of the rest.
    pub destinations: Vec<(Option<(IpAddr, u16)>, u64)>,
    pub folded_destinations: u64,
    /// Top remote addresses by socket count, per state; `None` is `other`.
    pub peers: Vec<(Option<IpAddr>, TcpState, u64)>,
    pub folded_peers: u64,
    /// CLOSE_WAIT sockets whose age is unknown because the tracker was full.
    pub close_wait_untracked: u64,
}

/// Kernel counters and sysctls of the namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub counters: NetCounters,
    pub sysctls: NetSysctls,
    /// Wanted values that could not be read in the last poll, per source
    /// (`missing[source.index()]`).
    pub missing: [u64; KernelSource::COUNT],
}

impl KernelStats {
    /// What was read, with every value that is `None` counted missing under its source.
    pub fn new(counters: NetCounters, sysctls: NetSysctls) -> KernelStats {
        let mut missing = [0; KernelSource::COUNT];
        for row in counters.missing_rows() {
            missing[row.source.index()] += 1;
        }
        missing[KernelSource::Sysctl.index()] += sysctls.missing_count() as u64;
        KernelStats {
            counters,
            sysctls,
            missing,
        }
    }

    /// The missing counts of the sources the tables read, in source order: the series of
    /// `sockdiag_kernel_values_missing`.
    pub fn missing_by_source(&self) -> impl Iterator<Item = (KernelSource, u64)> + '_ {
        KernelSource::ALL
            .into_iter()
            .filter(|source| NetCounters::reads(*source) || NetSysctls::reads(*source))
            .map(|source| (source, self.missing[source.index()]))
    }
}

/// What the TCP fold of one namespace measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpFigures {
    pub tcp_sockets: StateCounts,
    pub breakdown: Breakdown,
    pub exhaustion: Exhaustion,
    /// Records read from the kernel (all dumps together).
    pub sockets_scanned: u64,
}

/// What one network namespace's poll measured.
/// Where a network namespace comes from, as the namespace cap ranks it: when the cap
/// bites, [`Provenance::Unknown`] namespaces are folded before known ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Provenance {
    /// The host's or our own namespace, a container runtime's (its processes sit in a
    /// runtime's cgroup, a kubepods cgroup included), or an `ip netns` bind mount; and its
    /// user namespace is root's.
    #[default]
    Known,
    /// No runtime's cgroup and no bind mount, or a user namespace that does not map host
    /// root: anyone can make one (`unshare -Urn`).
    Unknown,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetnsFigures {
    /// The `netns` label: `host`, an ip-netns name, a 12-hex container id, `ns-<inode>`.
    pub netns: Arc<str>,
    /// The host's or our own namespace: every state and every zero-valued count is
    /// exported. Other namespaces export only non-zero counts, so that a node with
    /// hundreds of pods stays within a few thousand series.
    pub full: bool,
    pub provenance: Provenance,
    pub tcp: TcpFigures,
    pub unix: UnixFigures,
    pub udp: UdpFigures,
    pub kernel: KernelStats,
}

/// Who a network namespace is: `sockdiag_netns_info`. Empty strings where unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetnsInfo {
    pub netns: Arc<str>,
    /// The nsfs inode, as `ls -Li /proc/PID/ns/net` shows it.
    pub inode: u64,
    /// The full 64-hex container id.
    pub container_id: String,
    /// Docker's or Podman's container name; empty for a pod's namespace.
    pub container_name: String,
    pub pod_name: String,
    /// The pod's Kubernetes namespace.
    pub pod_namespace: String,
    pub pod_uid: String,
    /// docker, containerd, crio or podman.
    pub runtime: String,
    /// Docker Compose's project and service.
    pub compose_project: String,
    pub compose_service: String,
}

impl NetnsInfo {
    /// What a person calls the namespace: `namespace/pod` for a pod, the container's
    /// name, else its `netns` label (`host`, an `ip netns` name, an id, `ns-<inode>`).
    pub fn display_name(&self) -> String {
        if !self.pod_name.is_empty() {
            if self.pod_namespace.is_empty() {
                return self.pod_name.clone();
            }
            return format!("{}/{}", self.pod_namespace, self.pod_name);
        }
        if !self.container_name.is_empty() {
            return self.container_name.clone();
        }
        self.netns.to_string()
    }
}

/// Why namespaces were not sampled in a poll: `sockdiag_netns_skipped{reason}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetnsSkipped {
    /// Namespaces seen but not entered: the exporter lacks CAP_SYS_ADMIN or
    /// CAP_SYS_PTRACE (or was configured with `namespaces = "own"`: then 0, nothing is
    /// discovered).
    pub permission: u64,
    /// Namespaces that disappeared between discovery and their dump.
    pub vanished: u64,
    /// Namespaces whose dump failed for another reason (logged).
    pub error: u64,
}

/// What the /proc owner lookup did: the `sockdiag_owner_*` families. Counts of the
/// last poll, and totals since start that the poll carries from one poll to the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnerFigures {
    /// Distinct sockets labelled `process="pending"` by the last poll.
    pub pending: u64,
    /// fd symlinks the last poll's /proc scans read (the first poll's warm-up included).
    pub readlinks: u64,
    /// Full /proc passes since start (the first poll's warm-up included).
    pub full_passes_total: u64,
    /// Polls since start whose /proc scan stopped at the readlink budget.
    pub budget_stops_total: u64,
}

/// Namespaces beyond `netns.max_namespaces`: only their state counts are kept, summed
/// under `netns="other"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoldedNetns {
    pub namespaces: u64,
    /// Of those, namespaces that held an anomaly: folded only past the anomaly ceiling
    /// (another `max_namespaces` beyond the cap).
    pub anomalous: u64,
    pub tcp_sockets: StateCounts,
    pub unix_sockets: UnixCounts,
    /// UDP sockets per family.
    pub udp_sockets: [u64; 2],
}

/// Everything one successful poll measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Sampled namespaces that keep their label, sorted by label.
    pub namespaces: Vec<NetnsFigures>,
    pub folded: FoldedNetns,
    /// One per namespace that keeps its label; a folded namespace's info goes with it.
    pub netns_info: Vec<NetnsInfo>,
    pub skipped: NetnsSkipped,
    /// Records read from the kernel in this poll, every namespace and dump together.
    pub sockets_scanned: u64,
    /// What the /proc owner lookup did.
    pub owners: OwnerFigures,
    /// Wall time of the poll, dumps and aggregation included.
    pub poll_duration: Duration,
    /// When the poll finished.
    pub completed_at: SystemTime,
    /// The optional collectors that ran: the families of one that did not are absent,
    /// not zero.
    pub collectors: Collectors,
}

impl Default for Snapshot {
    /// A poll that saw nothing, finished at the epoch: a base for tests and fixtures.
    fn default() -> Snapshot {
        Snapshot {
            namespaces: Vec::new(),
            folded: FoldedNetns::default(),
            netns_info: Vec::new(),
            skipped: NetnsSkipped::default(),
            sockets_scanned: 0,
            owners: OwnerFigures::default(),
            poll_duration: Duration::ZERO,
            completed_at: SystemTime::UNIX_EPOCH,
            collectors: Collectors::default(),
        }
    }
}

label_enum! {
    /// Stage of a poll that can fail; the `stage` label of `sockdiag_poll_errors_total`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Stage {
        /// Opening the netlink socket.
        Open => "open",
        /// The sock_diag dump itself (send, receive, decode).
        Dump => "dump",
        /// The fast LISTEN-only sample for queue peaks.
        ListenDump => "listen_dump",
        /// The /proc scan for socket owners (the poll still publishes, with owners unknown).
        ProcIndex => "proc_index",
        /// Network namespace discovery (the poll still publishes, our own namespace only).
        Discovery => "discovery",
        /// Naming a namespace's container: a cgroup file or a Docker config that could not
        /// be read or parsed (the poll still publishes; the namespace keeps what could be
        /// learnt). A Docker config that keeps failing unchanged is counted once, not every
        /// poll.
        Attribution => "attribution",
        /// The blocking task died (a bug: it panicked or was cancelled).
        Task => "task",
    }
}

/// What the poller publishes after every poll, successful or not.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// The last successful poll's snapshot; `None` until the first one lands.
    pub latest: Option<Arc<Snapshot>>,
    /// The successful poll before `latest`: the landing page's growth per second.
    pub previous: Option<Arc<Snapshot>>,
    /// Failed polls since start, by stage.
    pub errors_total: [u64; Stage::COUNT],
}

impl Published {
    /// True once a poll has succeeded: what `/-/ready` reports.
    pub fn ready(&self) -> bool {
        self.latest.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value read but `TcpExt.TCPTimeWaitOverflow`, `Tcp.PassiveOpens` and the port
    /// range.
    fn read_but_three() -> (NetCounters, NetSysctls) {
        let mut counters = NetCounters::default();
        for slot in counters.slots_mut() {
            *slot = Some(1);
        }
        counters.time_wait_overflow = None;
        counters.passive_opens = None;
        let mut sysctls = NetSysctls::default();
        for slot in sysctls.slots_mut() {
            *slot = Some(1);
        }
        (counters, sysctls)
    }

    #[test]
    fn missing_values_are_counted_under_their_file() {
        let (counters, sysctls) = read_but_three();
        let stats = KernelStats::new(counters, sysctls);
        let by_source: Vec<(&str, u64)> = stats
            .missing_by_source()
            .map(|(source, n)| (source.label(), n))
            .collect();
        // snmp6 (the Udp6 rows) was read whole.
        assert_eq!(
            by_source,
            [("netstat", 1), ("snmp", 1), ("snmp6", 0), ("sysctl", 1)]
        );
    }

    #[test]
    fn nothing_read_counts_every_wanted_value() {
        let stats = KernelStats::new(NetCounters::default(), NetSysctls::default());
        let by_source: Vec<(&str, u64)> = stats
            .missing_by_source()
            .map(|(source, n)| (source.label(), n))
            .collect();
        assert_eq!(
            by_source,
            [("netstat", 5), ("snmp", 7), ("snmp6", 5), ("sysctl", 9)]
        );
    }
}
