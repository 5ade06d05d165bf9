//! The sysctls of every namespace sampled, kept from poll to poll: settings
//! (`somaxconn`, `tcp_fin_timeout`, `ip_local_port_range`, ...) change when an operator
//! changes them, not with the load, so a namespace's nine files under `/proc/sys/net` are
//! read when the namespace is new to the poller and again once its values are
//! [`REFRESH`] old, not every poll. (With 200 namespaces, reading them every poll was about
//! a fifth of what a namespace cost beyond its dump: each open under /proc/sys compares
//! names with the entries of every namespace on the host.) The kernel counters are not
//! kept: they are read every poll.
//!
//! Only a read without error is kept: a failed read is tried again next poll. A namespace
//! not sampled in a poll (gone, or failed) is forgotten at its end, so the cache holds at
//! most the namespaces of the last poll, and a namespace inode that the kernel reuses
//! after the namespace died between two polls is the one way to see another
//! namespace's values, for at most [`REFRESH`].
//!
//! Reads no kernel interface itself: [`super::namespace::dump`] reads the files, on the
//! thread that entered the namespace, when [`SysctlCache::get`] has nothing fresh.

use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::source::proc_sys_net::NetSysctls;

/// How old a namespace's sysctls may be before they are read again: the staleness of
/// every `sockdiag_sysctl_*` family and of the ephemeral port range the folds use
/// (docs/metrics.md, docs/architecture.md).
pub const REFRESH: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Entry {
    sysctls: NetSysctls,
    read_at: Instant,
}

/// Each namespace's sysctls (by namespace inode) and when they were read.
#[derive(Debug, Default)]
pub struct SysctlCache {
    entries: FxHashMap<u64, Entry>,
}

impl SysctlCache {
    /// The sysctls of namespace `netns` if they were read less than [`REFRESH`] before
    /// `now`; `None` when they must be read.
    pub fn get(&self, netns: u64, now: Instant) -> Option<NetSysctls> {
        self.entries
            .get(&netns)
            .filter(|entry| now.saturating_duration_since(entry.read_at) < REFRESH)
            .map(|entry| entry.sysctls)
    }

    /// Keeps what a poll read without error in namespace `netns` at `read_at`.
    pub fn store(&mut self, netns: u64, sysctls: NetSysctls, read_at: Instant) {
        self.entries.insert(netns, Entry { sysctls, read_at });
    }

    /// Forgets every namespace that is not in `sampled` (the namespaces the poll dumped).
    pub fn retain(&mut self, sampled: impl IntoIterator<Item = u64>) {
        let sampled: FxHashSet<u64> = sampled.into_iter().collect();
        self.entries.retain(|netns, _| sampled.contains(netns));
    }

    /// Namespaces whose sysctls are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::proc_sys_net::PortRange;

    fn sysctls(somaxconn: u64) -> NetSysctls {
        NetSysctls {
            somaxconn: Some(somaxconn),
            ip_local_port_range: PortRange::new(32768, 60999),
            ..NetSysctls::default()
        }
    }

    #[test]
    fn kept_until_refresh_old_then_read_again() {
        let start = Instant::now();
        let mut cache = SysctlCache::default();
        assert_eq!(cache.get(7, start), None, "a new namespace is read");
        cache.store(7, sysctls(4096), start);
        assert_eq!(cache.get(7, start), Some(sysctls(4096)));
        let almost = start + REFRESH - Duration::from_millis(1);
        assert_eq!(cache.get(7, almost), Some(sysctls(4096)));
        assert_eq!(
            cache.get(7, start + REFRESH),
            None,
            "REFRESH old: read again"
        );
        assert_eq!(
            cache.get(8, start),
            None,
            "another namespace is not this one"
        );
        // Read again: the new value, kept from its own read time.
        cache.store(7, sysctls(128), start + REFRESH);
        assert_eq!(cache.get(7, start + REFRESH), Some(sysctls(128)));
        assert_eq!(
            cache.get(7, start + REFRESH + REFRESH - Duration::from_millis(1)),
            Some(sysctls(128))
        );
    }

    #[test]
    fn namespaces_not_sampled_are_forgotten() {
        let now = Instant::now();
        let mut cache = SysctlCache::default();
        for netns in [1, 2, 3] {
            cache.store(netns, sysctls(netns), now);
        }
        cache.retain([3, 1, 9]);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(1, now), Some(sysctls(1)));
        assert_eq!(cache.get(2, now), None);
        assert_eq!(cache.get(3, now), Some(sysctls(3)));
        cache.retain([]);
        assert!(cache.is_empty());
    }
}
