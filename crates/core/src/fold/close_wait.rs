//! How long each CLOSE_WAIT socket has been in that state, at least.
//!
//! Kernel interface: none of its own; it keys on the socket cookie of inet_diag records
//! (`idiag_cookie`, from sock_gen_cookie), which is unique per socket for the life of the
//! kernel, so a socket that leaves CLOSE_WAIT and a new one on the same port never share
//! an age. Age is measured from the first poll that saw the socket in CLOSE_WAIT: it is a
//! lower bound, with the poll interval as resolution, and it restarts from zero when the
//! exporter restarts.
//!
//! Cookies are keyed with their network namespace's inode: kernels before 5.12 number
//! cookies per namespace, so two namespaces can show the same one.
//!
//! Only CLOSE_WAIT cookies are held, and at most `capacity` of them across every
//! namespace; sockets beyond that are counted as untracked, never silently dropped. Pure:
//! the caller passes the clock.

use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

#[derive(Debug, Clone, Copy)]
struct Entry {
    first_seen: Instant,
    /// The poll generation that last saw the socket.
    seen: u32,
}

/// A socket across namespaces: (network namespace inode, socket cookie).
pub type SocketKey = (u64, u64);

/// The tracker, carried from poll to poll.
#[derive(Debug)]
pub struct CloseWaitTracker {
    entries: FxHashMap<SocketKey, Entry>,
    capacity: usize,
    generation: u32,
    now: Instant,
    untracked: u64,
}

impl CloseWaitTracker {
    pub fn new(capacity: usize) -> CloseWaitTracker {
        CloseWaitTracker {
            entries: FxHashMap::default(),
            capacity,
            generation: 0,
            now: Instant::now(),
            untracked: 0,
        }
    }

    /// Starts a poll at `now`.
    pub fn begin_poll(&mut self, now: Instant) {
        self.generation = self.generation.wrapping_add(1);
        self.now = now;
        self.untracked = 0;
    }

    /// Records a CLOSE_WAIT socket and returns its age; `None` when the tracker is full
    /// and the socket is new to it.
    pub fn observe(&mut self, key: SocketKey) -> Option<Duration> {
        let (now, generation) = (self.now, self.generation);
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.seen = generation;
            return Some(now.saturating_duration_since(entry.first_seen));
        }
        if self.entries.len() >= self.capacity {
            self.untracked += 1;
            return None;
        }
        self.entries.insert(
            key,
            Entry {
                first_seen: now,
                seen: generation,
            },
        );
        Some(Duration::ZERO)
    }

    /// Ends a successful poll: forgets sockets that were not in CLOSE_WAIT any more,
    /// except in the namespaces of `unsampled` (their dump failed this poll: their
    /// sockets keep their ages for the next one).
    pub fn end_poll(&mut self, unsampled: &[u64]) {
        let generation = self.generation;
        self.entries
            .retain(|(netns, _), entry| entry.seen == generation || unsampled.contains(netns));
        // After a pile-up clears, the table would otherwise keep its peak's memory.
        super::shrink::map(&mut self.entries);
    }

    /// Entries the table has room for without growing (the low-water tests).
    #[cfg(test)]
    pub(crate) fn table_capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// CLOSE_WAIT sockets of the last poll whose age is unknown (tracker full).
    pub fn untracked(&self) -> u64 {
        self.untracked
    }

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

    #[test]
    fn age_grows_from_first_sight_and_is_forgotten_on_leaving() {
        let start = Instant::now();
        let mut tracker = CloseWaitTracker::new(10);
        tracker.begin_poll(start);
        assert_eq!(tracker.observe((1, 1)), Some(Duration::ZERO));
        tracker.end_poll(&[]);
        tracker.begin_poll(start + Duration::from_secs(15));
        assert_eq!(tracker.observe((1, 1)), Some(Duration::from_secs(15)));
        assert_eq!(
            tracker.observe((1, 2)),
            Some(Duration::ZERO),
            "a new socket starts at zero"
        );
        tracker.end_poll(&[]);
        tracker.begin_poll(start + Duration::from_secs(30));
        assert_eq!(tracker.observe((1, 2)), Some(Duration::from_secs(15)));
        tracker.end_poll(&[]);
        assert_eq!(
            tracker.len(),
            1,
            "cookie 1 left CLOSE_WAIT and was forgotten"
        );
        tracker.begin_poll(start + Duration::from_secs(45));
        assert_eq!(
            tracker.observe((1, 1)),
            Some(Duration::ZERO),
            "a returning cookie does not inherit its old age"
        );
    }

    /// A CLOSE_WAIT pile-up of 50k sockets that clears leaves a table sized for what
    /// remains, and the ages of what remains intact.
    #[test]
    fn a_cleared_pile_up_gives_its_table_back() {
        let start = Instant::now();
        let mut tracker = CloseWaitTracker::new(100_000);
        tracker.begin_poll(start);
        for cookie in 0..50_000 {
            tracker.observe((1, cookie));
        }
        tracker.end_poll(&[]);
        let peak = tracker.table_capacity();
        assert!(peak >= 50_000, "{peak}");
        tracker.begin_poll(start + Duration::from_secs(10));
        for cookie in 0..100 {
            tracker.observe((1, cookie));
        }
        tracker.end_poll(&[]);
        assert_eq!(tracker.len(), 100);
        assert!(
            tracker.table_capacity() <= 2 * crate::fold::shrink::FLOOR,
            "{}",
            tracker.table_capacity()
        );
        tracker.begin_poll(start + Duration::from_secs(20));
        assert_eq!(tracker.observe((1, 7)), Some(Duration::from_secs(20)));
    }

    #[test]
    fn full_tracker_counts_what_it_cannot_hold() {
        let start = Instant::now();
        let mut tracker = CloseWaitTracker::new(2);
        tracker.begin_poll(start);
        assert!(tracker.observe((1, 1)).is_some());
        assert!(tracker.observe((1, 2)).is_some());
        assert_eq!(tracker.observe((1, 3)), None);
        assert_eq!(tracker.observe((1, 4)), None);
        assert_eq!(tracker.untracked(), 2);
        tracker.end_poll(&[]);
        tracker.begin_poll(start + Duration::from_secs(1));
        assert_eq!(
            tracker.observe((1, 1)),
            Some(Duration::from_secs(1)),
            "tracked sockets keep their age"
        );
        assert_eq!(tracker.untracked(), 0);
    }

    #[test]
    fn same_cookie_in_two_namespaces_is_two_sockets_and_unsampled_namespaces_keep_ages() {
        let start = Instant::now();
        let mut tracker = CloseWaitTracker::new(10);
        tracker.begin_poll(start);
        assert_eq!(tracker.observe((1, 7)), Some(Duration::ZERO));
        tracker.end_poll(&[]);
        tracker.begin_poll(start + Duration::from_secs(10));
        assert_eq!(tracker.observe((1, 7)), Some(Duration::from_secs(10)));
        assert_eq!(
            tracker.observe((2, 7)),
            Some(Duration::ZERO),
            "cookie 7 of namespace 2 is another socket"
        );
        tracker.end_poll(&[]);
        // Namespace 1's dump fails: its socket is not observed, but keeps its age.
        tracker.begin_poll(start + Duration::from_secs(20));
        assert_eq!(tracker.observe((2, 7)), Some(Duration::from_secs(10)));
        tracker.end_poll(&[1]);
        tracker.begin_poll(start + Duration::from_secs(30));
        assert_eq!(tracker.observe((1, 7)), Some(Duration::from_secs(30)));
    }
}
