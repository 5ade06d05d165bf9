//! The process names of the index, interned: one `Arc<str>` per distinct name, numbered by
//! [`NameId`], and dropped once no cached process holds it ([`Names::retain`]).
//!
//! Ids are stable: a name keeps its id for as long as some process holds it. The folds
//! hold the ids their lookups returned until the end of the poll, and names are dropped
//! at the start of the next one ([`super::ProcIndex::prune_names`]), so no id in use is
//! ever dropped. As a second guard, a dropped name's id waits one more prune before it
//! is handed out again: an id kept a poll too long reads `None` (`unknown`), never
//! another process's name.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::NameId;
use crate::source::label_cap;

#[derive(Debug, Default)]
pub(super) struct Names {
    /// By id; `None` for a dropped name whose id is free.
    names: Vec<Option<Arc<str>>>,
    ids: FxHashMap<Arc<str>, NameId>,
    /// Ids of names dropped before the last prune, for the next new names.
    free: Vec<NameId>,
    /// Ids of names the last prune dropped: free after the next one.
    quarantined: Vec<NameId>,
    /// Scratch: which ids a prune found held.
    held: Vec<bool>,
}

impl Names {
    /// The id of `name`, capped to [`label_cap::PROCESS`] first, so that two names
    /// that differ only past the cap share one id (and one series).
    pub(super) fn intern(&mut self, name: &str) -> NameId {
        let name = label_cap::cap(name, label_cap::PROCESS);
        if let Some(id) = self.ids.get(&*name) {
            return *id;
        }
        let name: Arc<str> = Arc::from(&*name);
        let id = match self.free.pop() {
            Some(id) => {
                self.names[id as usize] = Some(Arc::clone(&name));
                id
            }
            None => {
                self.names.push(Some(Arc::clone(&name)));
                (self.names.len() - 1) as NameId
            }
        };
        self.ids.insert(name, id);
        id
    }

    /// The name of `id`. An id that was dropped reads `unknown`: never another name.
    pub(super) fn get(&self, id: NameId) -> Option<&Arc<str>> {
        self.names.get(id as usize)?.as_ref()
    }

    /// Keeps the names whose ids `held` yields, drops the others.
    pub(super) fn retain(&mut self, held: impl IntoIterator<Item = NameId>) {
        self.free.append(&mut self.quarantined);
        self.held.clear();
        self.held.resize(self.names.len(), false);
        for id in held {
            if let Some(slot) = self.held.get_mut(id as usize) {
                *slot = true;
            }
        }
        for (id, name) in self.names.iter_mut().enumerate() {
            if !self.held[id] {
                if let Some(name) = name.take() {
                    self.ids.remove(&name);
                    self.quarantined.push(id as NameId);
                }
            }
        }
    }

    /// Names interned now.
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(names: &Names, id: NameId) -> Option<&str> {
        names.get(id).map(|name| &**name)
    }

    #[test]
    fn a_held_name_keeps_its_id_and_a_dropped_id_waits_one_prune_before_reuse() {
        let mut names = Names::default();
        let nginx = names.intern("nginx");
        let bash = names.intern("bash");
        assert_eq!(names.intern("nginx"), nginx);
        names.retain([nginx]);
        assert_eq!(name(&names, nginx), Some("nginx"));
        assert_eq!(
            name(&names, bash),
            None,
            "dropped: unknown, not another name"
        );
        // Quarantined: a new name does not take bash's id yet.
        let php = names.intern("php-fpm");
        assert_ne!(php, bash);
        assert_eq!(name(&names, bash), None);
        names.retain([nginx, php]);
        let redis = names.intern("redis");
        assert_eq!(redis, bash, "free after one more prune");
        assert_eq!(name(&names, redis), Some("redis"));
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn names_are_cut_to_the_process_cap_before_they_are_interned() {
        let mut names = Names::default();
        let long = "k".repeat(200);
        let id = names.intern(&long);
        assert_eq!(
            names.intern(&format!("{long}other")),
            id,
            "one id past the cap"
        );
        let expected = format!("{}…", "k".repeat(label_cap::PROCESS - 3));
        assert_eq!(name(&names, id), Some(expected.as_str()));
    }
}
