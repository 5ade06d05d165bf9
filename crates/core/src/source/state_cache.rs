//! Reads of container runtimes' state files, remembered from poll to poll by the file's
//! identity: the one mechanism behind [`super::docker::ConfigCache`] and
//! [`super::runtime::cache::StateCache`].
//!
//! A file that failed (a syntax error, a symlink out of the root, 2 MB of JSON, a FIFO) is
//! read, counted and logged once, then not read again until it changes. A file's
//! identity is what `lstat` says of it ([`FileIdentity`]: device, inode, size, mtime,
//! ctime): runtimes replace their files by rename, and a change in place moves the ctime.
//! Only the keys (containers) asked about in the last poll are remembered, so the cache
//! holds at most the containers of one poll.
//!
//! Reads no kernel interface itself: `lstat` of the file a read named.

use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::bounded::FileIdentity;

/// An error that names the file it is about, whose identity the cache remembers.
pub trait StateError {
    fn path(&self) -> &Path;
}

/// A failed read.
#[derive(Debug)]
pub struct Failed<E> {
    pub error: Arc<E>,
    /// True when the file was read (and failed) now; false when the failure is the one
    /// remembered from an earlier poll, for an unchanged file.
    pub fresh: bool,
}

impl<E> Clone for Failed<E> {
    fn clone(&self) -> Self {
        Failed {
            error: Arc::clone(&self.error),
            fresh: self.fresh,
        }
    }
}

#[derive(Debug)]
struct Remembered<E> {
    path: PathBuf,
    identity: FileIdentity,
    error: Arc<E>,
    generation: u64,
}

/// The failed reads, per key, kept from poll to poll.
#[derive(Debug)]
pub struct FileCache<K, E> {
    failed: FxHashMap<K, Remembered<E>>,
    generation: u64,
}

impl<K, E> Default for FileCache<K, E> {
    fn default() -> Self {
        FileCache {
            failed: FxHashMap::default(),
            generation: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, E: StateError> FileCache<K, E> {
    /// Starts a poll: keys not asked about again before [`FileCache::end_poll`] are
    /// forgotten then.
    pub fn begin_poll(&mut self) {
        self.generation += 1;
    }

    /// Forgets the keys not asked about since [`FileCache::begin_poll`].
    pub fn end_poll(&mut self) {
        let generation = self.generation;
        self.failed.retain(|_, r| r.generation == generation);
    }

    /// What `read` gives for `key`, or the failure remembered for an unchanged file. A
    /// failure is remembered under the identity of the file its error names, taken after
    /// the read; a file that cannot be stat'ed is read again every poll.
    pub fn get_or_read<V>(
        &mut self,
        key: &K,
        read: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Failed<E>> {
        if let Some(remembered) = self.failed.get_mut(key) {
            if FileIdentity::of(&remembered.path) == Some(remembered.identity) {
                remembered.generation = self.generation;
                return Err(Failed {
                    error: Arc::clone(&remembered.error),
                    fresh: false,
                });
            }
        }
        match read() {
            Ok(value) => {
                self.failed.remove(key);
                Ok(value)
            }
            Err(error) => {
                let error = Arc::new(error);
                let path = error.path().to_path_buf();
                match FileIdentity::of(&path) {
                    Some(identity) => {
                        let remembered = Remembered {
                            path,
                            identity,
                            error: Arc::clone(&error),
                            generation: self.generation,
                        };
                        self.failed.insert(key.clone(), remembered);
                    }
                    None => {
                        self.failed.remove(key);
                    }
                }
                Err(Failed { error, fresh: true })
            }
        }
    }

    /// Keys whose failure is remembered.
    pub fn failures(&self) -> usize {
        self.failed.len()
    }
}
