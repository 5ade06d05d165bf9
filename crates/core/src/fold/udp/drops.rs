//! `sockdiag_udp_drops_total`: a counter per (direction, port, process) that never goes
//! down while its series exists, built from each socket's `sk_drops`, kept between polls.
//!
//! Kernel interface: none of its own; it keys on the socket cookie of udp_diag records
//! (unique per socket for the life of the kernel, numbered per namespace before 5.12,
//! hence keyed with the namespace's inode, as the CLOSE_WAIT tracker does) and reads
//! their `SK_MEMINFO_DROPS`.
//!
//! The rules:
//! - each dropping socket's last `sk_drops` is kept by cookie; every poll adds its growth
//!   to the series the socket was first counted in, even if the cap later moves the
//!   socket to another series (or to `other`): so no series ever loses drops;
//! - a socket is first counted in the poll that first sees it with drops, and adds its
//!   whole count then (the drops before the exporter started included); a socket that
//!   never dropped holds no entry, costs nothing, and belongs to no drop series;
//! - a series exists, at 0 until one of its sockets drops, while any socket has its
//!   labels or was counted in it, and for [`RETENTION`] after the last poll that saw
//!   one (a receiver that restarts on the same port continues its series); then it goes;
//! - at most `capacity` sockets are held across every namespace; a dropping socket beyond
//!   that is counted as untracked and adds nothing (a known undercount, never a decrease).
//!
//! Sockets of a namespace whose dump failed in a poll keep their entries. Pure: the
//! caller passes the clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::snapshot::{Direction, PortLabel, UdpDropSeries};

/// How long a drop series stays once its last socket is gone.
pub const RETENTION: Duration = Duration::from_secs(600);

/// Default bound on the dropping sockets held, across namespaces.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// A series' labels: (direction, port, process).
pub type SeriesKey = (Direction, PortLabel, Arc<str>);

#[derive(Debug)]
struct SocketEntry {
    last: u32,
    series: SeriesKey,
    /// The poll generation that last saw the socket.
    seen: u32,
}

#[derive(Debug)]
struct SeriesEntry {
    total: u64,
    /// The poll generation that last had a socket under its labels.
    touched: u32,
    /// The last poll at which it had a live socket.
    alive_at: Instant,
}

/// The tracker, carried from poll to poll, shared by every namespace.
#[derive(Debug)]
pub struct DropTracker {
    sockets: FxHashMap<(u64, u64), SocketEntry>,
    series: FxHashMap<(u64, SeriesKey), SeriesEntry>,
    capacity: usize,
    generation: u32,
    now: Instant,
}

impl DropTracker {
    pub fn new(capacity: usize) -> DropTracker {
        DropTracker {
            sockets: FxHashMap::default(),
            series: FxHashMap::default(),
            capacity,
            generation: 0,
            now: Instant::now(),
        }
    }

    /// Starts a poll at `now`.
    pub fn begin_poll(&mut self, now: Instant) {
        self.generation = self.generation.wrapping_add(1);
        self.now = now;
    }

    /// What a socket of namespace `netns` with cookie `cookie` and `drops` dropped since
    /// the previous poll (all of its drops if it is new): the cap's ranking. Read-only.
    pub fn growth(&self, netns: u64, cookie: u64, drops: u32) -> u64 {
        match self.sockets.get(&(netns, cookie)) {
            // sk_drops is an atomic_t: read as u32, it only grows, modulo 2^32.
            Some(entry) => u64::from(drops.wrapping_sub(entry.last)),
            None => u64::from(drops),
        }
    }

    /// Counts a socket: its growth goes to the series it was first counted in, or, for a
    /// socket seen dropping for the first time, all its drops to `series`. Returns false
    /// when the socket is dropping, new, and the tracker is full (it adds nothing).
    pub fn observe(&mut self, netns: u64, cookie: u64, drops: u32, series: &SeriesKey) -> bool {
        let (generation, full) = (self.generation, self.sockets.len() >= self.capacity);
        let (key, growth) = match self.sockets.get_mut(&(netns, cookie)) {
            Some(entry) => {
                let growth = drops.wrapping_sub(entry.last);
                entry.last = drops;
                entry.seen = generation;
                (&entry.series, growth)
            }
            None if drops == 0 => return true,
            None if full => return false,
            None => {
                let entry = self.sockets.entry((netns, cookie)).or_insert(SocketEntry {
                    last: drops,
                    series: series.clone(),
                    seen: generation,
                });
                (&entry.series, drops)
            }
        };
        let now = self.now;
        self.series
            .entry((netns, key.clone()))
            .or_insert(SeriesEntry {
                total: 0,
                touched: generation,
                alive_at: now,
            })
            .total += u64::from(growth);
        true
    }

    /// Notes that a series has sockets this poll (dropping or not): it exists, at 0 if
    /// none of them ever dropped, and lives on.
    pub fn touch(&mut self, netns: u64, series: &SeriesKey) {
        let (generation, now) = (self.generation, self.now);
        match self.series.get_mut(&(netns, series.clone())) {
            Some(entry) => entry.touched = generation,
            None => {
                self.series.insert(
                    (netns, series.clone()),
                    SeriesEntry {
                        total: 0,
                        touched: generation,
                        alive_at: now,
                    },
                );
            }
        }
    }

    /// Ends a poll: forgets the sockets that are gone, except in the namespaces of
    /// `unsampled` (their dump failed this poll), and the series whose last socket went
    /// more than [`RETENTION`] ago.
    pub fn end_poll(&mut self, unsampled: &[u64]) {
        let (generation, now) = (self.generation, self.now);
        self.sockets
            .retain(|(netns, _), entry| entry.seen == generation || unsampled.contains(netns));
        for ((netns, _), entry) in &self.sockets {
            if let Some(series) = self.series.get_mut(&(*netns, entry.series.clone())) {
                series.touched = generation;
            }
        }
        self.series.retain(|(netns, _), series| {
            if series.touched == generation || unsampled.contains(netns) {
                series.alive_at = now;
            }
            now.saturating_duration_since(series.alive_at) <= RETENTION
        });
        // After a burst of dropping sockets, the tables would otherwise keep its memory.
        crate::fold::shrink::map(&mut self.sockets);
        crate::fold::shrink::map(&mut self.series);
    }

    /// Sockets the table has room for without growing (the low-water tests).
    #[cfg(test)]
    pub(crate) fn table_capacity(&self) -> usize {
        self.sockets.capacity()
    }

    /// The drop series of namespace `netns`, sorted by labels.
    pub fn series(&self, netns: u64) -> Vec<UdpDropSeries> {
        let mut out: Vec<UdpDropSeries> = self
            .series
            .iter()
            .filter(|((ns, _), _)| *ns == netns)
            .map(|((_, (direction, port, process)), entry)| UdpDropSeries {
                direction: *direction,
                port: *port,
                process: Arc::clone(process),
                drops: entry.total,
            })
            .collect();
        out.sort();
        out
    }

    /// Whether the socket is held (it was seen dropping).
    pub fn holds(&self, netns: u64, cookie: u64) -> bool {
        self.sockets.contains_key(&(netns, cookie))
    }

    /// Dropping sockets held.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16, process: &str) -> SeriesKey {
        (
            Direction::Inbound,
            PortLabel::Port(port),
            Arc::from(process),
        )
    }

    fn totals(tracker: &DropTracker, netns: u64) -> Vec<(PortLabel, String, u64)> {
        tracker
            .series(netns)
            .into_iter()
            .map(|s| (s.port, s.process.to_string(), s.drops))
            .collect()
    }

    fn poll(tracker: &mut DropTracker, at: Instant, sockets: &[(u64, u32, SeriesKey)]) {
        tracker.begin_poll(at);
        for (cookie, drops, series) in sockets {
            assert!(tracker.observe(1, *cookie, *drops, series));
        }
        tracker.end_poll(&[]);
    }

    /// A burst of 20k dropping sockets that close leaves a table sized for what remains;
    /// the series they counted into keep their totals.
    #[test]
    fn a_burst_of_dropping_sockets_gives_its_table_back() {
        let start = Instant::now();
        let mut tracker = DropTracker::new(100_000);
        let burst: Vec<_> = (0..20_000)
            .map(|cookie| (cookie, 1, key(53, "dns")))
            .collect();
        poll(&mut tracker, start, &burst);
        assert!(tracker.table_capacity() >= 20_000);
        poll(&mut tracker, start + Duration::from_secs(1), &burst[..10]);
        assert_eq!(tracker.len(), 10);
        assert!(
            tracker.table_capacity() <= 2 * crate::fold::shrink::FLOOR,
            "{}",
            tracker.table_capacity()
        );
        assert_eq!(
            totals(&tracker, 1),
            [(PortLabel::Port(53), "dns".to_string(), 20_000)]
        );
    }

    #[test]
    fn a_new_socket_adds_its_whole_count_then_its_growth() {
        let start = Instant::now();
        let mut tracker = DropTracker::new(10);
        poll(&mut tracker, start, &[(7, 994, key(8125, "udp-sink"))]);
        assert_eq!(
            totals(&tracker, 1),
            vec![(PortLabel::Port(8125), "udp-sink".into(), 994)]
        );
        assert_eq!(tracker.growth(1, 7, 1994), 1000);
        poll(&mut tracker, start, &[(7, 1994, key(8125, "udp-sink"))]);
        assert_eq!(totals(&tracker, 1)[0].2, 1994);
    }

    #[test]
    fn a_socket_keeps_adding_to_its_first_series_when_the_cap_moves_it() {
        let start = Instant::now();
        let mut tracker = DropTracker::new(10);
        let other = (Direction::Inbound, PortLabel::Other, Arc::from("other"));
        poll(&mut tracker, start, &[(7, 5, other.clone())]);
        poll(&mut tracker, start, &[(7, 12, key(8125, "udp-sink"))]);
        assert_eq!(
            totals(&tracker, 1),
            vec![(PortLabel::Other, "other".into(), 12)]
        );
    }

    #[test]
    fn a_restarted_receiver_continues_its_series_and_it_never_goes_down() {
        let start = Instant::now();
        let mut tracker = DropTracker::new(10);
        poll(&mut tracker, start, &[(7, 1994, key(8125, "udp-sink"))]);
        // The receiver restarts: a new cookie on the same port, no drops yet.
        poll(
            &mut tracker,
            start + Duration::from_secs(15),
            &[(8, 0, key(8125, "udp-sink"))],
        );
        assert_eq!(totals(&tracker, 1)[0].2, 1994);
        poll(
            &mut tracker,
            start + Duration::from_secs(30),
            &[(8, 6, key(8125, "udp-sink"))],
        );
        assert_eq!(totals(&tracker, 1)[0].2, 2000);
    }

    #[test]
    fn a_series_without_sockets_goes_after_the_retention() {
        let start = Instant::now();
        let mut tracker = DropTracker::new(10);
        poll(&mut tracker, start, &[(7, 3, key(8125, "udp-sink"))]);
        // Gone by the next poll: the retention runs from the last poll that saw it.
        poll(&mut tracker, start + Duration::from_secs(10), &[]);
        poll(&mut tracker, start + RETENTION, &[]);
        assert_eq!(totals(&tracker, 1).len(), 1, "kept for the retention");
        poll(
            &mut tracker,
            start + RETENTION + Duration::from_secs(1),
            &[],
        );
        assert_eq!(totals(&tracker, 1), vec![]);
        assert!(tracker.is_empty());
    }

    #[test]
    fn a_touched_series_exists_at_zero_and_lives_while_touched() {
        let start = Instant::now();
        let mut tracker = DropTracker::new(10);
        for poll in 0..3 {
            tracker.begin_poll(start + RETENTION * poll);
            tracker.touch(1, &key(8126, "udp-reader"));
            tracker.end_poll(&[]);
        }
        assert_eq!(
            totals(&tracker, 1),
            vec![(PortLabel::Port(8126), "udp-reader".into(), 0)]
        );
        poll(&mut tracker, start + RETENTION * 4, &[]);
        assert_eq!(totals(&tracker, 1), vec![]);
    }

    #[test]
    fn sk_drops_wrapping_around_counts_its_growth() {
        let start = Instant::now();
        let mut tracker = DropTracker::new(10);
        poll(&mut tracker, start, &[(7, u32::MAX - 1, key(53, "dns"))]);
        poll(&mut tracker, start, &[(7, 3, key(53, "dns"))]);
        assert_eq!(totals(&tracker, 1)[0].2, u64::from(u32::MAX) + 4);
    }

    #[test]
    fn a_full_tracker_counts_new_dropping_sockets_as_untracked_and_quiet_ones_cost_nothing() {
        let start = Instant::now();
        let mut tracker = DropTracker::new(1);
        tracker.begin_poll(start);
        assert!(tracker.observe(1, 1, 4, &key(1, "a")));
        assert!(
            tracker.observe(1, 2, 0, &key(2, "b")),
            "never dropped: no entry"
        );
        assert!(!tracker.observe(1, 3, 9, &key(3, "c")));
        tracker.end_poll(&[]);
        assert_eq!(tracker.len(), 1);
        assert_eq!(
            totals(&tracker, 1),
            vec![(PortLabel::Port(1), "a".into(), 4)]
        );
    }

    #[test]
    fn an_unsampled_namespace_keeps_its_sockets_and_series() {
        let start = Instant::now();
        let mut tracker = DropTracker::new(10);
        tracker.begin_poll(start);
        tracker.observe(2, 7, 10, &key(9, "x"));
        tracker.end_poll(&[]);
        tracker.begin_poll(start + RETENTION * 2);
        tracker.end_poll(&[2]);
        tracker.begin_poll(start + RETENTION * 2);
        tracker.observe(2, 7, 15, &key(9, "x"));
        tracker.end_poll(&[]);
        assert_eq!(
            totals(&tracker, 2)[0].2,
            15,
            "growth from the kept last value"
        );
        assert_eq!(totals(&tracker, 1), vec![], "namespaces apart");
    }
}
