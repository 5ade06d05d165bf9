//! The glue between the /proc index (a source) and the folds' owner lookup: the index
//! answers the folds' questions, and the poll asks it to scan at two points of the
//! recipe, before the dumps and after them. Keeping this here is what lets `source` and
//! `fold` not know each other.

use std::sync::Arc;

use super::collector::PollNotes;
use crate::fold::owners::{NameId, Owner, Owners};
use crate::source::proc_fd::ProcIndex;

impl Owners for ProcIndex {
    fn owner(&self, inode: u32) -> Option<Owner> {
        match self.lookup(inode) {
            Some(id) => Some(Owner::Process(NameId(id))),
            None if self.is_unresolvable(inode) => Some(Owner::Unknown),
            None => None,
        }
    }

    fn settle(&self, inode: u32) -> Owner {
        match self.lookup(inode) {
            Some(id) => Owner::Process(NameId(id)),
            None if self.is_pending(inode) => Owner::Pending,
            None => Owner::Unknown,
        }
    }

    fn name(&self, id: NameId) -> Arc<str> {
        Arc::clone(ProcIndex::name(self, id.0))
    }
}

/// Before the dumps: a new poll generation; on the first poll a full scan, so that the
/// first poll finds owners in the cache instead of holding every socket as pending; on
/// the others a check that every cached owner still lives under its name; then the names
/// no process holds any more are dropped.
pub fn begin(index: &mut ProcIndex, notes: &mut PollNotes) {
    index.begin_poll();
    let result = if index.is_cold() {
        index.warm().map(|report| notes.scan = report)
    } else {
        index
            .revalidate()
            .map(|forgotten| notes.forgotten = forgotten)
    };
    if let Err(error) = result {
        notes.proc_index_error = Some(error);
    }
    // After the revalidation's renames, before the dumps' lookups: no name id of the last
    // poll is held any more (its folds ended with it), none of this one is yet.
    index.prune_names();
    notes.names_interned = index.names_interned();
}

/// After the dumps: forget the inodes the dumps no longer showed, then scan for the
/// owners of `missing`. Skipped when /proc already failed in this poll.
pub fn resolve(index: &mut ProcIndex, missing: &[u32], notes: &mut PollNotes) {
    index.sweep();
    if notes.proc_index_error.is_some() {
        index.forget_pending();
        return;
    }
    match index.resolve(missing) {
        Ok(report) => {
            notes.scan.scans += report.scans;
            notes.scan.readlinks += report.readlinks;
            notes.scan.permission_denied =
                notes.scan.permission_denied.max(report.permission_denied);
            notes.scan.unresolved = report.unresolved;
            notes.scan.pending = report.pending;
            notes.scan.full_passes += report.full_passes;
            notes.scan.budget_stopped = report.budget_stopped;
            notes.scan.new_sockets = report.new_sockets;
            notes.scan.new_processes += report.new_processes;
        }
        Err(error) => notes.proc_index_error = Some(error),
    }
}

#[cfg(test)]
mod tests;
