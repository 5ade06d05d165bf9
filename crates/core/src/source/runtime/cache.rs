//! What the runtimes' state files named, kept from poll to poll (a [`FileCache`], see
//! [`crate::source::state_cache`]): a file that named a container is read once, then costs
//! an `lstat` a poll until it changes; a broken one (a syntax error, a symlink out of the
//! root, 2 MB of JSON) is read, counted and logged once, then not read again until it
//! changes, as long as its container is still asked about. Also lists containerd's
//! namespaces once per poll.

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

/// [`runtime::lookup`] with what it found remembered, and containerd's namespaces listed
/// once per poll.
#[derive(Debug, Default)]
pub struct StateCache {
    files: FileCache<ContainerId, Found, RuntimeError>,
    containerd_namespaces: Vec<String>,
}

impl StateCache {
    /// Starts a poll: lists containerd's namespaces; containers not asked about again
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

    /// [`runtime::lookup`], or what it gave for an unchanged file (what it found, or the
    /// failure).
    pub fn lookup(
        &mut self,
        roots: &Roots,
        id: &ContainerId,
        hint: Option<Runtime>,
    ) -> Result<Option<Found>, Failed> {
        let namespaces = &self.containerd_namespaces;
        self.files
            .get_or_read(id, || runtime::lookup_read(roots, namespaces, id, hint))
    }

    /// Containers whose failure is remembered.
    pub fn failures(&self) -> usize {
        self.files.failures()
    }

    /// State files read (or tried) since the cache was made.
    pub fn reads(&self) -> u64 {
        self.files.reads()
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

    /// Issue 27: a good name was read again every poll (27.5 us a namespace).
    #[test]
    fn a_pods_bundle_is_read_once_and_again_when_replaced() {
        let state = TempRoot::new("cache-named");
        let roots = Roots {
            containerd_state: state.0.clone(),
            containers_run_root: "/nonexistent/storage".into(),
            proc_root: "/proc".into(),
        };
        let sandbox = include_str!("testdata/containerd-sandbox.json");
        let path = state.write(&format!("k8s.io/{ID}/config.json"), sandbox.as_bytes());
        let id = ContainerId::parse(ID).unwrap();
        let mut cache = StateCache::default();
        let mut pod_names = Vec::new();
        for _ in 0..3 {
            cache.begin_poll(&roots).unwrap();
            let found = cache.lookup(&roots, &id, None).unwrap().unwrap();
            assert_eq!(found.runtime, Runtime::Containerd);
            pod_names.push(found.names.pod_name.unwrap());
            cache.end_poll();
        }
        assert_eq!(pod_names, ["web-7d9f4", "web-7d9f4", "web-7d9f4"]);
        assert_eq!(cache.reads(), 1, "an unchanged bundle is read once");
        // A new bundle for the same id, another pod name: read in the poll that sees it.
        let renamed = sandbox.replace("web-7d9f4", "api-5c6d7");
        let temp = path.with_extension("tmp");
        std::fs::write(&temp, renamed).unwrap();
        std::fs::rename(&temp, &path).unwrap();
        cache.begin_poll(&roots).unwrap();
        let found = cache.lookup(&roots, &id, None).unwrap().unwrap();
        assert_eq!(found.names.pod_name.as_deref(), Some("api-5c6d7"));
        cache.end_poll();
        assert_eq!(cache.reads(), 2);
        // The container is gone: no longer asked about, forgotten.
        cache.begin_poll(&roots).unwrap();
        cache.end_poll();
        cache.begin_poll(&roots).unwrap();
        cache.lookup(&roots, &id, None).unwrap().unwrap();
        cache.end_poll();
        assert_eq!(
            cache.reads(),
            3,
            "asked about again after it was forgotten: read"
        );
    }
}
