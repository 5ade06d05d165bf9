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
    /// Socket inode per fd number; 0 when the slot holds something else or is not read.
    inodes: Vec<u32>,
    /// Bit `fd` set when the slot was read.
    read: Bitset,
}

/// What a read slot holds: `Some(inode)` for a socket, `None` for anything else.
pub(super) type Slot = Option<u32>;

impl FdSlots {
    /// The slot of `fd`, if it was read.
    pub(super) fn get(&self, fd: u32) -> Option<Slot> {
        if !self.read.contains(fd) {
            return None;
        }
        Some(
            self.inodes
                .get(fd as usize)
                .copied()
                .filter(|&inode| inode != 0),
        )
    }

    /// Records what `fd` holds; returns what it held before, if it was read. An fd number
    /// too large to cache is not recorded.
    pub(super) fn set(&mut self, fd: u32, slot: Slot) -> Option<Slot> {
        if fd >= MAX_CACHED_FD {
            return None;
        }
        let previous = self.get(fd);
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
        if self.read.remove(fd) {
            self.inodes[fd as usize] = 0;
        }
    }

    /// True when some read slot holds a socket (a slot not read, or holding anything
    /// else, has inode 0).
    pub(super) fn holds_socket(&self) -> bool {
        self.inodes.iter().any(|&inode| inode != 0)
    }

    /// (fd, inode) of every read slot that holds a socket.
    pub(super) fn sockets(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.read.iter().filter_map(|fd| Some((fd, self.get(fd)??)))
    }

    /// Forgets every read slot whose fd number is not in `listed` (closed since it was
    /// read); returns the (fd, inode) of the sockets among them.
    pub(super) fn keep_listed(&mut self, listed: &Bitset) -> Vec<(u32, u32)> {
        let closed: Vec<u32> = self
            .read
            .iter()
            .filter(|&fd| !listed.contains(fd))
            .collect();
        let mut sockets = Vec::new();
        for fd in closed {
            if let Some(Some(inode)) = self.get(fd) {
                sockets.push((fd, inode));
            }
            self.clear(fd);
        }
        sockets
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
        assert_eq!(slots.set(3, Some(1001)), Some(Some(1000)));
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
}
