//! The runtime state files that failed to name a container, kept from poll to poll (a
//! [`FileCache`], see [`crate::source::state_cache`]): a broken file (a syntax error, a
//! symlink out of the root, 2 MB of JSON) is read, counted and logged once, then not read
//! again until it changes, as long as its container is still asked about. Also lists
//! containerd's namespaces once per poll.

use crate::source::cgroup::{ContainerId, Runtime};
use crate::source::runtime::{self, Found, Roots, RuntimeError};
use crate::source::state_cache::{self, FileCache, StateError};

/// A failed lookup.
pub type Failed = state_cache::Failed<RuntimeError>;

impl StateError for RuntimeError {
    fn path(&self) -> &std::path::Path {
        RuntimeError::path(self)
    }
}

/// [`runtime::lookup`] with its failures remembered, and containerd's namespaces listed
/// once per poll.
#[derive(Debug, Default)]
pub struct StateCache {
    files: FileCache<ContainerId, RuntimeError>,
    containerd_namespaces: Vec<String>,
}

impl StateCache {
    /// Starts a poll: lists containerd's namespaces; failures not asked about again
    /// before [`StateCache::end_poll`] are forgotten then.
    pub fn begin_poll(&mut self, roots: &Roots) -> Result<(), RuntimeError> {
        self.files.begin_poll();
        self.containerd_namespaces = runtime::containerd::namespaces(&roots.containerd_state)?;
        Ok(())
    }

    /// Forgets the containers not asked about since [`StateCache::begin_poll`].
    pub fn end_poll(&mut self) {
        self.files.end_poll();
    }

    /// [`runtime::lookup`], or the failure remembered for an unchanged file.
    pub fn lookup(
        &mut self,
        roots: &Roots,
        id: &ContainerId,
        hint: Option<Runtime>,
    ) -> Result<Option<Found>, Failed> {
        let namespaces = &self.containerd_namespaces;
        self.files
            .get_or_read(id, || runtime::lookup(roots, namespaces, id, hint))
    }

    /// Containers whose failure is remembered.
    pub fn failures(&self) -> usize {
        self.files.failures()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::runtime::TempRoot;
    use std::sync::Arc;

    const ID: &str = "c04514bc6cbfcb24a04dfe1155eccca2fbd5e3b42e25e41b2297baaa047b0e0a";

    #[test]
    fn a_malformed_bundle_is_read_once_until_it_changes_and_forgotten_with_its_container() {
        let state = TempRoot::new("cache-state");
        let roots = Roots {
            containerd_state: state.0.clone(),
            containers_run_root: "/nonexistent/storage".into(),
            proc_root: "/proc".into(),
        };
        let path = state.write(&format!("k8s.io/{ID}/config.json"), b"{\"annotations\":");
        let id = ContainerId::parse(ID).unwrap();
        let mut cache = StateCache::default();
        cache.begin_poll(&roots).unwrap();
        let first = cache.lookup(&roots, &id, None).unwrap_err();
        assert!(first.fresh);
        assert_eq!(
            first.error.to_string(),
            format!(
                "parsing {}: EOF while parsing a value at line 1 column 15",
                path.display()
            )
        );
        cache.end_poll();
        for _ in 0..3 {
            cache.begin_poll(&roots).unwrap();
            let again = cache.lookup(&roots, &id, None).unwrap_err();
            assert!(!again.fresh, "an unchanged file is not read again");
            assert!(Arc::ptr_eq(&again.error, &first.error));
            cache.end_poll();
        }
        // Replaced (as containerd writes: a new file), now valid.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, include_str!("testdata/containerd-sandbox.json")).unwrap();
        cache.begin_poll(&roots).unwrap();
        let found = cache.lookup(&roots, &id, None).unwrap().unwrap();
        assert_eq!(found.runtime, Runtime::Containerd);
        assert_eq!(found.names.pod_name.as_deref(), Some("web-7d9f4"));
        cache.end_poll();
        assert_eq!(cache.failures(), 0);
        // Broken again, then no longer asked about: forgotten.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "[").unwrap();
        cache.begin_poll(&roots).unwrap();
        assert!(cache.lookup(&roots, &id, None).unwrap_err().fresh);
        cache.end_poll();
        assert_eq!(cache.failures(), 1);
        cache.begin_poll(&roots).unwrap();
        cache.end_poll();
        assert_eq!(cache.failures(), 0);
    }
}
