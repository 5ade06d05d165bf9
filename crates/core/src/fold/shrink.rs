//! Shrinking on low water. hashbrown tables and `Vec`s keep their capacity when emptied,
//! so a table carried from poll to poll (CLOSE_WAIT ages, UDP drops) sits at the size of
//! its largest poll for the life of the process: after a burst of 100k CLOSE_WAIT
//! sockets, a few MiB for a handful of entries. Past a floor, a table whose capacity is
//! more than four times its length is shrunk to twice its length: the factor between
//! the two leaves room to grow again without shrinking and regrowing every poll.
//! No kernel interface.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// Capacities at or below this many entries are never shrunk: too small to matter, and
/// a table that size would regrow at once.
pub const FLOOR: usize = 1024;

/// True when a table of `capacity` holding `len` should give memory back.
pub fn low_water(capacity: usize, len: usize) -> bool {
    capacity > FLOOR && capacity > len.saturating_mul(4)
}

/// The capacity a table of `len` entries is shrunk to.
fn target(len: usize) -> usize {
    len.saturating_mul(2).max(FLOOR)
}

/// Shrinks `map` on low water; returns true when it did.
pub fn map<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) -> bool {
    let shrink = low_water(map.capacity(), map.len());
    if shrink {
        map.shrink_to(target(map.len()));
    }
    shrink
}

/// Shrinks `vec` on low water; returns true when it did.
pub fn vec<T>(vec: &mut Vec<T>) -> bool {
    let shrink = low_water(vec.capacity(), vec.len());
    if shrink {
        vec.shrink_to(target(vec.len()));
    }
    shrink
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustc_hash::FxHashMap;

    #[test]
    fn a_table_emptied_after_a_peak_gives_memory_back_once() {
        let mut table: FxHashMap<u64, u64> = (0..100_000).map(|n| (n, n)).collect();
        assert!(!map(&mut table), "full: nothing to give back");
        table.retain(|key, _| *key < 3_000);
        let peak = table.capacity();
        assert!(map(&mut table));
        // hashbrown rounds a capacity up to its bucket layout: 6,000 asked, at most
        // 7/8 of the next power of two of buckets.
        assert!(
            table.capacity() >= 6_000 && table.capacity() < 8_192,
            "{}",
            table.capacity()
        );
        assert!(table.capacity() < peak / 4);
        assert_eq!(table.len(), 3_000);
        assert!(!map(&mut table), "shrunk once, then left alone");
    }

    #[test]
    fn small_tables_and_full_ones_are_left_alone() {
        let mut small: Vec<u32> = Vec::with_capacity(FLOOR);
        assert!(!vec(&mut small), "at the floor, even empty");
        let mut busy: Vec<u32> = Vec::with_capacity(40_000);
        busy.extend(0..10_000);
        assert!(!vec(&mut busy), "a quarter full is not low water");
        busy.truncate(9_999);
        assert!(vec(&mut busy));
        assert_eq!(busy.capacity(), 19_998);
    }
}
