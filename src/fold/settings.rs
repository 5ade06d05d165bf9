//! The fold's cardinality limits and thresholds, as the configuration sets them.

use std::time::Duration;

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
    /// CLOSE_WAIT older than this is stale (a leak, not a slow close).
    pub close_wait_stale_after: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_ports: 50,
            max_processes: 30,
            ports: PortFilter::default(),
            max_destinations: 20,
            max_peers: 20,
            close_wait_stale_after: Duration::from_secs(60),
        }
    }
}
