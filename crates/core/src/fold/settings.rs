//! The fold's cardinality limits and thresholds, as the configuration sets them.

use std::time::Duration;

use super::anomaly::Thresholds;

/// Which ports may keep a label of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortFilter {
    /// When non-empty, only these ports may keep a label; others fold into `other`.
    pub include: Vec<(u16, u16)>,
    /// These ports always fold into `other`.
    pub exclude: Vec<(u16, u16)>,
}

impl PortFilter {
    pub fn allows(&self, port: u16) -> bool {
        let within =
            |ranges: &[(u16, u16)]| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port));
        (self.include.is_empty() || within(&self.include)) && !within(&self.exclude)
    }
}

/// Cardinality limits and thresholds of the aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Ports per direction that keep their own label.
    pub max_ports: usize,
    pub max_processes: usize,
    pub ports: PortFilter,
    /// Destinations (remote address, port) of `sockdiag_tcp_ephemeral_ports_used`.
    pub max_destinations: usize,
    /// Remote addresses of `sockdiag_tcp_peer_sockets`.
    pub max_peers: usize,
    /// UNIX listeners that keep their own `path` label, fullest first.
    pub max_unix_paths: usize,
    /// TCP listening addresses exported by `sockdiag_tcp_listen_queue_*`, fullest first.
    pub max_listeners: usize,
    /// When a figure is an anomaly, kept beyond the caps up to their ceiling.
    pub anomaly: Thresholds,
    /// CLOSE_WAIT older than this is stale (a leak, not a slow close).
    pub close_wait_stale_after: Duration,
    /// Caps of every namespace but the host's: a node holds hundreds of pods, each with a
    /// few ports and processes, so each gets far fewer series than the host.
    pub netns: NetnsCaps,
}

/// The caps of a namespace other than the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetnsCaps {
    pub max_ports: usize,
    pub max_processes: usize,
    pub max_destinations: usize,
    pub max_peers: usize,
    pub max_unix_paths: usize,
    pub max_listeners: usize,
}

impl Default for NetnsCaps {
    fn default() -> NetnsCaps {
        NetnsCaps {
            max_ports: 10,
            max_processes: 5,
            max_destinations: 5,
            max_peers: 5,
            max_unix_paths: 5,
            max_listeners: 20,
        }
    }
}

impl Settings {
    /// The settings of one namespace: the host's and our own keep these caps, the others
    /// get `netns`.
    pub fn for_namespace(&self, full: bool) -> Settings {
        if full {
            return self.clone();
        }
        Settings {
            max_ports: self.netns.max_ports,
            max_processes: self.netns.max_processes,
            max_destinations: self.netns.max_destinations,
            max_peers: self.netns.max_peers,
            max_unix_paths: self.netns.max_unix_paths,
            max_listeners: self.netns.max_listeners,
            ..self.clone()
        }
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_ports: 50,
            max_processes: 30,
            ports: PortFilter::default(),
            max_destinations: 20,
            max_peers: 20,
            max_unix_paths: 30,
            max_listeners: 100,
            anomaly: Thresholds::default(),
            close_wait_stale_after: Duration::from_secs(60),
            netns: NetnsCaps::default(),
        }
    }
}
