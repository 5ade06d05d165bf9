//! The fd slots of one process that scans have read: what each fd number held (a socket
//! inode, or something else), so that a later scan readlinks only new fd numbers.
//!
//! fd numbers are small and dense (the kernel hands out the lowest free one), so the
//! slots are a vector indexed by fd number plus a bitset of the slots read: 4 bytes and a
//! bit per fd number, where a hash map of fd entries cost about 35 bytes per fd with its
//! slack (most of the index's memory at 1M sockets). An fd number beyond
//! [`MAX_CACHED_FD`] is never cached: it is read again by every scan, which costs a
//! readlink, never a wrong owner.

/// fd numbers below this are cached (up to 4 MiB for a process that uses them all).
pub(super) const MAX_CACHED_FD: u32 = 1 << 20;

#[derive(Debug, Default)]
pub(super) struct FdSlots {
    /// Socket inode per fd number, as last read; 0 when the slot holds something else or
    /// was never read. Kept when the slot is marked for reading again
    /// ([`FdSlots::invalidate`]), so that the owner it gave can be dropped if the slot
    /// turns out to hold something else.
    inodes: Vec<u32>,
    /// Bit `fd` set when the slot's cached content is trusted (read, and not marked for
    /// reading again since).
    read: Bitset,
}

/// What a read slot holds: `Some(inode)` for a socket, `None` for anything else.
pub(super) type Slot = Option<u32>;

/// Below this many fd numbers a process's slots are never shrunk: the vectors are a few
/// hundred bytes, not worth a reallocation.
const SHRINK_FLOOR: usize = 1024;

impl FdSlots {
    /// The slot of `fd`, if its cached content is trusted.
    pub(super) fn get(&self, fd: u32) -> Option<Slot> {
        if !self.read.contains(fd) {
            return None;
        }
        Some(self.known(fd))
    }

    /// The socket inode `fd` held when last read, trusted or not.
    fn known(&self, fd: u32) -> Option<u32> {
        self.inodes
            .get(fd as usize)
            .copied()
            .filter(|&inode| inode != 0)
    }

    /// Records what `fd` holds; returns the socket inode it held when last read, if any
    /// (trusted or marked for reading again). An fd number too large to cache is not
    /// recorded.
    pub(super) fn set(&mut self, fd: u32, slot: Slot) -> Option<u32> {
        if fd >= MAX_CACHED_FD {
            return None;
        }
        let previous = self.known(fd);
        let index = fd as usize;
        if self.inodes.len() <= index {
            self.inodes.resize(index + 1, 0);
        }
        self.inodes[index] = slot.unwrap_or(0);
        self.read.insert(fd);
        previous
    }

    /// Forgets `fd` (closed, or its socket died): the next scan reads it again.
    pub(super) fn clear(&mut self, fd: u32) {
        self.read.remove(fd);
        if let Some(inode) = self.inodes.get_mut(fd as usize) {
            *inode = 0;
        }
    }

    /// Marks every slot for reading again (a full pass), keeping what each held so that
    /// the owners the slots gave stay named until the slot is read again.
    pub(super) fn invalidate(&mut self) {
        self.read.clear();
    }

    /// Marks `fd` for reading again, keeping what it held (see [`FdSlots::invalidate`]).
    pub(super) fn invalidate_one(&mut self, fd: u32) {
        self.read.remove(fd);
    }

    /// True when some slot holds a socket as last read.
    pub(super) fn holds_socket(&self) -> bool {
        self.inodes.iter().any(|&inode| inode != 0)
    }

    /// (fd, inode) of every slot that held a socket when last read.
    pub(super) fn sockets(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.inodes
            .iter()
            .enumerate()
            .filter(|(_, &inode)| inode != 0)
            .map(|(fd, &inode)| (fd as u32, inode))
    }

    /// Forgets every slot (read, or holding a socket as last read) whose fd number is not
    /// in `listed` (closed since it was read); returns the (fd, inode) of the sockets
    /// among them.
    pub(super) fn keep_listed(&mut self, listed: &Bitset) -> Vec<(u32, u32)> {
        let mut closed: Vec<u32> = self
            .read
            .iter()
            .chain(self.sockets().map(|(fd, _)| fd))
            .filter(|&fd| !listed.contains(fd))
            .collect();
        closed.sort_unstable();
        closed.dedup();
        let mut sockets = Vec::new();
        for fd in closed {
            if let Some(inode) = self.known(fd) {
                sockets.push((fd, inode));
            }
            self.clear(fd);
        }
        sockets
    }

    /// Gives back memory a peak left (a process that once held many more fds): the
    /// vectors are cut after the highest slot in use and, when their capacity is over
    /// four times that and over [`SHRINK_FLOOR`], reallocated to fit. Vectors only grow
    /// otherwise, so a burst of fds would be held for the process's lifetime.
    pub(super) fn shrink(&mut self) {
        let used = self
            .inodes
            .iter()
            .rposition(|&inode| inode != 0)
            .map_or(0, |fd| fd + 1)
            .max(self.read.end());
        self.inodes.truncate(used);
        self.read.truncate(used);
        if self.inodes.capacity() > SHRINK_FLOOR.max(4 * self.inodes.len()) {
            self.inodes.shrink_to_fit();
            self.read.shrink_to_fit();
        }
    }

    /// Bytes allocated (the tests check the shrink).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.inodes.capacity()
    }
}

/// A set of fd numbers.
#[derive(Debug, Default)]
pub(super) struct Bitset(Vec<u64>);

impl Bitset {
    pub(super) fn contains(&self, n: u32) -> bool {
        self.0
            .get(n as usize / 64)
            .is_some_and(|word| word & (1 << (n % 64)) != 0)
    }

    pub(super) fn insert(&mut self, n: u32) {
        let word = n as usize / 64;
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << (n % 64);
    }

    /// Returns whether `n` was in the set.
    pub(super) fn remove(&mut self, n: u32) -> bool {
        let present = self.contains(n);
        if present {
            self.0[n as usize / 64] &= !(1 << (n % 64));
        }
        present
    }

    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    /// One past the highest number in the set (0 when empty).
    pub(super) fn end(&self) -> usize {
        self.0
            .iter()
            .rposition(|&word| word != 0)
            .map_or(0, |i| i * 64 + 64 - self.0[i].leading_zeros() as usize)
    }

    /// Drops the words above `end` (every number at or over it must be absent).
    pub(super) fn truncate(&mut self, end: usize) {
        self.0.truncate(end.div_ceil(64));
    }

    pub(super) fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &word)| {
            (0..64)
                .filter(move |bit| word & (1 << bit) != 0)
                .map(move |bit| (i * 64 + bit) as u32)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_remember_sockets_and_other_objects_apart_from_unread_ones() {
        let mut slots = FdSlots::default();
        assert_eq!(slots.set(3, Some(1000)), None);
        assert_eq!(slots.set(70, None), None);
        assert_eq!(slots.get(3), Some(Some(1000)));
        assert_eq!(slots.get(70), Some(None), "read, not a socket");
        assert_eq!(slots.get(4), None, "never read");
        assert_eq!(slots.set(3, Some(1001)), Some(1000));
        assert_eq!(slots.sockets().collect::<Vec<_>>(), [(3, 1001)]);
        slots.clear(3);
        assert_eq!(slots.get(3), None);
    }

    #[test]
    fn slots_not_listed_any_more_are_forgotten_with_their_sockets_returned() {
        let mut slots = FdSlots::default();
        slots.set(1, None);
        slots.set(5, Some(50));
        slots.set(130, Some(1300));
        let mut listed = Bitset::default();
        listed.insert(1);
        listed.insert(130);
        assert_eq!(slots.keep_listed(&listed), [(5, 50)]);
        assert_eq!(slots.get(5), None);
        assert_eq!(slots.get(130), Some(Some(1300)));
        assert_eq!(slots.get(1), Some(None));
    }

    #[test]
    fn an_fd_number_too_large_to_cache_is_never_recorded() {
        let mut slots = FdSlots::default();
        assert_eq!(slots.set(MAX_CACHED_FD, Some(9)), None);
        assert_eq!(slots.get(MAX_CACHED_FD), None);
        assert_eq!(slots.sockets().count(), 0);
    }

    #[test]
    fn a_peak_of_fds_is_given_back_once_they_close() {
        let mut slots = FdSlots::default();
        for fd in 0..100_000 {
            slots.set(fd, None);
        }
        slots.set(3, Some(7));
        slots.set(40, Some(8));
        let mut listed = Bitset::default();
        listed.insert(3);
        listed.insert(40);
        assert_eq!(slots.keep_listed(&listed), []);
        assert!(slots.capacity() >= 100_000);
        slots.shrink();
        assert!(slots.capacity() <= 64, "capacity {}", slots.capacity());
        assert_eq!(slots.get(3), Some(Some(7)));
        assert_eq!(slots.get(40), Some(Some(8)));
        assert_eq!(slots.get(41), None);
        assert_eq!(slots.sockets().collect::<Vec<_>>(), [(3, 7), (40, 8)]);
    }

    #[test]
    fn slots_marked_for_reading_keep_their_socket_until_read_or_closed() {
        let mut slots = FdSlots::default();
        slots.set(3, Some(7));
        slots.set(4, None);
        slots.invalidate();
        assert_eq!(slots.get(3), None, "to be read again");
        assert_eq!(slots.sockets().collect::<Vec<_>>(), [(3, 7)]);
        assert_eq!(slots.set(3, None), Some(7), "the owner it gave is dropped");
        slots.invalidate();
        slots.set(5, Some(9));
        slots.invalidate();
        let mut listed = Bitset::default();
        listed.insert(3);
        assert_eq!(slots.keep_listed(&listed), [(5, 9)], "closed while marked");
        assert_eq!(slots.sockets().count(), 0);
    }

    #[test]
    fn few_slots_or_a_high_fd_in_use_are_not_reallocated() {
        let mut slots = FdSlots::default();
        for fd in 0..500 {
            slots.set(fd, None);
        }
        let before = slots.capacity();
        slots.clear(499);
        slots.shrink();
        assert_eq!(slots.capacity(), before, "under the floor");
        let mut slots = FdSlots::default();
        for fd in 0..10_000 {
            slots.set(fd, None);
        }
        slots.set(9_999, Some(1));
        let before = slots.capacity();
        slots.shrink();
        assert_eq!(slots.capacity(), before, "fd 9999 still in use");
        assert_eq!(slots.get(9_999), Some(Some(1)));
    }
}
