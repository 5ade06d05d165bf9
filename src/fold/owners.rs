//! Who owns a socket, as the fold sees it, and the lookup the fold asks during a dump.
//!
//! The fold never reads /proc itself: the poll hands it an [`Owners`] implementation
//! (the /proc index, through the poll's glue), so the fold stays a pure function of the
//! records and the answers it gets.

use std::sync::Arc;

/// An interned process name, as the owner lookup numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameId(pub u32);

/// Who owns a socket, as far as the aggregation is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// inode 0: TIME_WAIT, orphaned, or still in an accept queue. Label `""`.
    Nobody,
    /// Has an owner that was not found. Label `unknown`.
    Unknown,
    /// A process, by interned comm.
    Process(NameId),
}

/// Owner lookup during a dump. Shared (`&self`): the dumps of several network namespaces
/// ask the same lookup at once from their own threads.
pub trait Owners {
    /// `Some(owner)` when settled now, `None` when the inode must wait for a /proc scan.
    fn owner(&self, inode: u32) -> Option<Owner>;
    /// After the scan: the owner, or `Unknown`.
    fn settle(&self, inode: u32) -> Owner;
    /// The label of a process.
    fn name(&self, id: NameId) -> Arc<str>;
}
