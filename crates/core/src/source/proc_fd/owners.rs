//! The inode -> owner map of the index, compact: a vector sorted by inode (16 bytes per
//! socket, no hash slack), plus a small hash map of the owners found since the last
//! [`OwnerMap::merge`], so that a scan's inserts do not shift the vector one by one.
//!
//! A hash map of the same entries cost about twice the memory at 300k sockets, and three
//! times at its peak, while growing (the old and the new table live together); the
//! vector grows by `realloc`, which the allocator does in place for large blocks.
//! Removed entries are tombstones (pid 0, never a process) until the next merge.

use std::sync::atomic::AtomicU32;

use rustc_hash::FxHashMap;

#[derive(Debug, Default)]
pub(super) struct Owner {
    pub(super) pid: u32,
    pub(super) fd: u32,
    /// Poll generation that last saw the inode in a dump; 0 = never (a socket of another
    /// namespace, or one created after the dump).
    pub(super) seen: AtomicU32,
}

const TOMBSTONE: u32 = 0;

#[derive(Debug, Default)]
pub(super) struct OwnerMap {
    /// Sorted by inode, one entry per inode.
    sorted: Vec<(u32, Owner)>,
    /// Where to search `sorted`, rebuilt by every merge.
    directory: Directory,
    /// Owners inserted since the last merge (none of them in `sorted`, live).
    recent: FxHashMap<u32, Owner>,
    /// Tombstones in `sorted`.
    dead: usize,
}

impl OwnerMap {
    /// The index of `inode` in `sorted`, live or tombstone.
    fn find(&self, inode: u32) -> Option<usize> {
        let (start, end) = self.directory.range(inode, self.sorted.len());
        let part = self.sorted.get(start..end)?;
        let i = part.binary_search_by_key(&inode, |(k, _)| *k).ok()?;
        Some(start + i)
    }

    fn position(&self, inode: u32) -> Option<usize> {
        let i = self.find(inode)?;
        (self.sorted[i].1.pid != TOMBSTONE).then_some(i)
    }

    pub(super) fn get(&self, inode: u32) -> Option<&Owner> {
        if let Some(i) = self.position(inode) {
            return Some(&self.sorted[i].1);
        }
        self.recent.get(&inode)
    }

    pub(super) fn get_mut(&mut self, inode: u32) -> Option<&mut Owner> {
        match self.position(inode) {
            Some(i) => Some(&mut self.sorted[i].1),
            None => self.recent.get_mut(&inode),
        }
    }

    pub(super) fn contains(&self, inode: u32) -> bool {
        self.get(inode).is_some()
    }

    /// Inserts or replaces the owner of `inode`.
    pub(super) fn insert(&mut self, inode: u32, owner: Owner) {
        if let Some(i) = self.find(inode) {
            if self.sorted[i].1.pid == TOMBSTONE {
                self.dead -= 1;
            }
            self.sorted[i].1 = owner;
        } else {
            self.recent.insert(inode, owner);
            // Merged in steps a fraction of the map's size: a full scan (the first poll
            // finds every socket) never holds most owners in the hash map.
            if self.recent.len() > (self.sorted.len() / 8).max(4096) {
                self.merge();
            }
        }
    }

    pub(super) fn remove(&mut self, inode: u32) {
        if let Some(i) = self.position(inode) {
            self.sorted[i].1.pid = TOMBSTONE;
            self.dead += 1;
        } else {
            self.recent.remove(&inode);
        }
    }

    /// Keeps the owners for which `keep` is true.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(u32, &mut Owner) -> bool) {
        for (inode, owner) in &mut self.sorted {
            if owner.pid != TOMBSTONE && !keep(*inode, owner) {
                owner.pid = TOMBSTONE;
                self.dead += 1;
            }
        }
        self.recent.retain(|inode, owner| keep(*inode, owner));
    }

    /// Every live owner (the tests count them).
    #[cfg(test)]
    pub(super) fn values(&self) -> impl Iterator<Item = &Owner> {
        self.sorted
            .iter()
            .map(|(_, owner)| owner)
            .filter(|owner| owner.pid != TOMBSTONE)
            .chain(self.recent.values())
    }

    /// Gives back the room a peak left (see [`super::scan::shrinkable`]). Run after a
    /// merge, when `recent` is empty and `sorted` holds no tombstone.
    pub(super) fn shrink(&mut self) {
        if super::scan::shrinkable(self.sorted.capacity(), self.sorted.len()) {
            self.sorted.shrink_to(2 * self.sorted.len());
        }
    }

    /// Capacity of the sorted vector (the tests check the shrink).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.sorted.capacity()
    }

    /// Moves the recent owners into the sorted vector (a merge from the back, in place)
    /// and drops the tombstones: after a scan, before the next dumps look owners up.
    pub(super) fn merge(&mut self) {
        if self.dead > 0 {
            self.sorted.retain(|(_, owner)| owner.pid != TOMBSTONE);
            self.dead = 0;
        }
        if !self.recent.is_empty() {
            self.merge_recent();
        }
        self.directory = Directory::build(&self.sorted);
    }

    fn merge_recent(&mut self) {
        let mut recent: Vec<(u32, Owner)> = self.recent.drain().collect();
        self.recent.shrink_to(4096);
        recent.sort_unstable_by_key(|(inode, _)| *inode);
        let mut i = self.sorted.len();
        self.sorted
            .resize_with(i + recent.len(), || (0, Owner::default()));
        let mut k = self.sorted.len();
        // Socket inodes are handed out in increasing order: most merges only append.
        while let Some(next) = recent.pop() {
            while i > 0 && self.sorted[i - 1].0 > next.0 {
                i -= 1;
                k -= 1;
                self.sorted.swap(i, k);
            }
            k -= 1;
            self.sorted[k] = next;
        }
    }
}

/// A directory over the sorted inodes: the inode range cut into equal spans, one per
/// about four owners, and where each span starts in the vector. Inodes are spread fairly
/// evenly, so a lookup reads one directory word and binary-searches a few neighbouring
/// entries, instead of some 18 steps across the whole vector (a cache miss each at 300k
/// owners: the search was a sixth of a poll at 1.1M sockets).
#[derive(Debug, Default)]
struct Directory {
    first: u32,
    shift: u32,
    /// `starts[b]` is the first index whose inode is in span `b` or later.
    starts: Vec<u32>,
}

impl Directory {
    fn build(sorted: &[(u32, Owner)]) -> Directory {
        let (Some(&(first, _)), Some(&(last, _))) = (sorted.first(), sorted.last()) else {
            return Directory::default();
        };
        let spans = (sorted.len() / 4).max(1).next_power_of_two() as u64;
        let width = u64::from(last - first) + 1;
        let mut shift = 0;
        while width >> shift > spans {
            shift += 1;
        }
        let count = (u64::from(last - first) >> shift) as usize + 1;
        let mut starts = Vec::with_capacity(count + 1);
        let mut at = 0usize;
        for span in 0..count as u64 {
            while at < sorted.len() && (u64::from(sorted[at].0 - first) >> shift) < span {
                at += 1;
            }
            starts.push(at as u32);
        }
        starts.push(sorted.len() as u32);
        Directory {
            first,
            shift,
            starts,
        }
    }

    /// The part of the vector (of length `len`) where `inode` can be.
    fn range(&self, inode: u32, len: usize) -> (usize, usize) {
        if self.starts.is_empty() {
            // Not built yet (inserts since the last merge): the whole vector.
            return (0, len);
        }
        let Some(offset) = inode.checked_sub(self.first) else {
            return (0, 0);
        };
        let span = (offset >> self.shift) as usize;
        match (self.starts.get(span), self.starts.get(span + 1)) {
            (Some(&start), Some(&end)) => (start as usize, (end as usize).min(len)),
            _ => (0, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(pid: u32, fd: u32) -> Owner {
        Owner {
            pid,
            fd,
            seen: AtomicU32::new(0),
        }
    }

    fn pid(map: &OwnerMap, inode: u32) -> Option<u32> {
        map.get(inode).map(|o| o.pid)
    }

    #[test]
    fn owners_are_found_before_and_after_a_merge_in_any_insert_order() {
        let mut map = OwnerMap::default();
        for inode in [50, 10, 30] {
            map.insert(inode, owner(inode + 1, 3));
        }
        assert_eq!(pid(&map, 10), Some(11));
        map.merge();
        map.insert(20, owner(21, 4));
        map.insert(60, owner(61, 4));
        assert_eq!(pid(&map, 20), Some(21));
        map.merge();
        for inode in [10, 20, 30, 50, 60] {
            assert_eq!(pid(&map, inode), Some(inode + 1));
        }
        assert_eq!(pid(&map, 40), None);
        assert_eq!(map.values().count(), 5);
    }

    #[test]
    fn removed_and_unkept_owners_are_gone_and_a_reinsert_revives_them() {
        let mut map = OwnerMap::default();
        for inode in 1..=4 {
            map.insert(inode, owner(100 + inode, 3));
        }
        map.merge();
        map.remove(2);
        map.retain(|inode, _| inode != 3);
        assert_eq!(pid(&map, 2), None);
        assert_eq!(pid(&map, 3), None);
        assert!(!map.contains(3));
        assert_eq!(map.values().count(), 2);
        map.insert(3, owner(7, 9));
        assert_eq!(pid(&map, 3), Some(7));
        map.get_mut(3).expect("owner").fd = 10;
        map.merge();
        assert_eq!(map.get(3).map(|o| o.fd), Some(10));
        assert_eq!(map.sorted.len(), 3, "the tombstone of 2 is dropped");
    }

    #[test]
    fn a_large_scan_merges_in_steps_and_keeps_every_owner() {
        let mut map = OwnerMap::default();
        // Interleaved like the fd directories of several processes.
        let inodes: Vec<u32> = (0..20_000u32).map(|i| (i * 7919) % 20_011 + 1).collect();
        for &inode in &inodes {
            map.insert(inode, owner(inode, 1));
        }
        assert!(map.recent.len() <= 4096, "merged along the way");
        map.merge();
        assert!(map.sorted.windows(2).all(|w| w[0].0 < w[1].0));
        let present: std::collections::HashSet<u32> = inodes.iter().copied().collect();
        for inode in 0..=20_100 {
            let expected = present.contains(&inode).then_some(inode);
            assert_eq!(pid(&map, inode), expected, "inode {inode}");
        }
        assert_eq!(pid(&map, u32::MAX), None);
    }

    #[test]
    fn a_peak_of_owners_is_given_back_once_they_die() {
        let mut map = OwnerMap::default();
        for inode in 1..=100_000 {
            map.insert(inode, owner(inode, 3));
        }
        map.merge();
        map.retain(|inode, _| inode % 10_000 == 0);
        map.merge();
        assert!(map.capacity() >= 100_000);
        map.shrink();
        assert!(map.capacity() < 4096, "capacity {}", map.capacity());
        for inode in 1..=100_000 {
            let expected = (inode % 10_000 == 0).then_some(inode);
            assert_eq!(pid(&map, inode), expected, "inode {inode}");
        }
    }
}
