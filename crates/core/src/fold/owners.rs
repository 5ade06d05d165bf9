//! Who owns a socket, as the fold sees it, and the lookup the fold asks during a dump.
//!
//! The fold never reads /proc itself: the poll hands it an [`Owners`] implementation
//! (the /proc index, through the poll's glue), so the fold stays a pure function of the
//! records and the answers it gets.

use std::sync::Arc;

/// An interned process name, as the owner lookup numbers them. Valid for the poll whose
/// lookup returned it: the lookup drops the names no process holds any more between polls,
/// so a fold must not keep one past its `finish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameId(pub u32);

/// Who owns a socket, as far as the aggregation is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// inode 0: TIME_WAIT, orphaned, or still in an accept queue. Label `""`.
    Nobody,
    /// Has an owner that was not found. Label `unknown`.
    Unknown,
    /// Has an owner not looked for yet: the /proc scan of this poll did not find it but
    /// was not a full pass (or stopped at its budget); the next poll names it, or, if a
    /// full pass cannot find it either, makes it `Unknown`. Label [`PENDING`].
    Pending,
    /// A process, by interned comm.
    Process(NameId),
}

/// The `process` label of [`Owner::Pending`].
pub const PENDING: &str = "pending";

/// Owner lookup during a dump. Shared (`&self`): the dumps of several network namespaces
/// ask the same lookup at once from their own threads.
pub trait Owners {
    /// `Some(owner)` when settled now, `None` when the inode must wait for a /proc scan.
    fn owner(&self, inode: u32) -> Option<Owner>;
    /// After the scan: the owner, `Pending`, or `Unknown`.
    fn settle(&self, inode: u32) -> Owner;
    /// The label of a process.
    fn name(&self, id: NameId) -> Arc<str>;
}

#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use rustc_hash::FxHashMap;

    use super::{NameId, Owner, Owners};

    /// Owners from a fixed table: inode -> name; inodes in `later` resolve only at settle.
    #[derive(Default)]
    pub struct Table {
        names: Vec<Arc<str>>,
        now: FxHashMap<u32, NameId>,
        later: FxHashMap<u32, NameId>,
    }

    impl Table {
        fn name_id(&mut self, name: &str) -> NameId {
            if let Some(i) = self.names.iter().position(|n| &**n == name) {
                return NameId(i as u32);
            }
            self.names.push(Arc::from(name));
            NameId((self.names.len() - 1) as u32)
        }
        pub fn own(&mut self, inode: u32, name: &str) {
            let id = self.name_id(name);
            self.now.insert(inode, id);
        }
        pub fn own_later(&mut self, inode: u32, name: &str) {
            let id = self.name_id(name);
            self.later.insert(inode, id);
        }
    }

    impl Owners for Table {
        fn owner(&self, inode: u32) -> Option<Owner> {
            self.now.get(&inode).map(|id| Owner::Process(*id))
        }
        fn settle(&self, inode: u32) -> Owner {
            self.now
                .get(&inode)
                .or_else(|| self.later.get(&inode))
                .map(|id| Owner::Process(*id))
                .unwrap_or(Owner::Unknown)
        }
        fn name(&self, id: NameId) -> Arc<str> {
            Arc::clone(&self.names[id.0 as usize])
        }
    }
}
