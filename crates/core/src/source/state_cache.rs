//! Reads of container runtimes' state files, remembered from poll to poll by the file's
//! identity: the one mechanism behind [`super::docker::ConfigCache`] and
//! [`super::runtime::cache::StateCache`].
//!
//! A file is read when its key (a container) is first asked about, and then only when the
//! file changes: an unchanged file costs one `lstat` a poll. That holds for a file that
//! named the container (a name is read once, not every poll) and for one that failed (a
//! syntax error, a symlink out of the root, 2 MB of JSON, a FIFO: read, counted and
//! logged once). A file's identity is what `lstat` says of it ([`FileIdentity`]: device,
//! inode, size, mtime, ctime): runtimes replace their files by rename (`docker rename`
//! writes a new config.v2.json), and a change in place moves the ctime, so a changed file
//! is read again in the same poll. A name is remembered under the identity of the file it
//! was read from, taken from the open file before reading, so a file replaced during the
//! read is read again next poll; a failure under the identity of the file its error
//! names, taken after. A lookup that found no file (another runtime's container) is not
//! remembered.
//!
//! Only the keys asked about in the last poll are remembered, so the cache holds at most
//! the containers of one poll: those of a vanished container go at the end of the poll
//! that no longer asks.
//!
//! Reads no kernel interface itself: `lstat` of the files the reads named.

use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::bounded::FileIdentity;

/// An error that names the file it is about, whose identity the cache remembers.
pub trait StateError {
    fn path(&self) -> &Path;
}

/// The state file a value was read from: its path and its identity when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    pub path: PathBuf,
    pub identity: FileIdentity,
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
struct Remembered<V, E> {
    path: PathBuf,
    identity: FileIdentity,
    outcome: Result<V, Arc<E>>,
    generation: u64,
}

/// What a poll learnt from each key's state file, kept from poll to poll.
#[derive(Debug)]
pub struct FileCache<K, V, E> {
    entries: FxHashMap<K, Remembered<V, E>>,
    generation: u64,
    /// Files read (or tried) since the cache was made: what the cache saves is the
    /// difference with the lookups.
    reads: u64,
}

impl<K, V, E> Default for FileCache<K, V, E> {
    fn default() -> Self {
        FileCache {
            entries: FxHashMap::default(),
            generation: 0,
            reads: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone, E: StateError> FileCache<K, V, E> {
    /// Starts a poll: keys not asked about again before [`FileCache::end_poll`] are
    /// forgotten then.
    pub fn begin_poll(&mut self) {
        self.generation += 1;
    }

    /// Forgets the keys not asked about since [`FileCache::begin_poll`].
    pub fn end_poll(&mut self) {
        let generation = self.generation;
        self.entries.retain(|_, r| r.generation == generation);
    }

    /// What `read` gives for `key`, or what it gave for an unchanged file: the value, or
    /// the failure (then not `fresh`). `read` says which file a value came from; `None`
    /// (no file) is not remembered. A failure whose file cannot be stat'ed is read again
    /// every poll.
    pub fn get_or_read(
        &mut self,
        key: &K,
        read: impl FnOnce() -> Result<Option<(V, StateFile)>, E>,
    ) -> Result<Option<V>, Failed<E>> {
        if let Some(remembered) = self.entries.get_mut(key) {
            if FileIdentity::of(&remembered.path) == Some(remembered.identity) {
                remembered.generation = self.generation;
                return match &remembered.outcome {
                    Ok(value) => Ok(Some(value.clone())),
                    Err(error) => Err(Failed {
                        error: Arc::clone(error),
                        fresh: false,
                    }),
                };
            }
        }
        self.reads += 1;
        let generation = self.generation;
        match read() {
            Ok(None) => {
                self.entries.remove(key);
                Ok(None)
            }
            Ok(Some((value, file))) => {
                let remembered = Remembered {
                    path: file.path,
                    identity: file.identity,
                    outcome: Ok(value.clone()),
                    generation,
                };
                self.entries.insert(key.clone(), remembered);
                Ok(Some(value))
            }
            Err(error) => {
                let error = Arc::new(error);
                let path = error.path().to_path_buf();
                match FileIdentity::of(&path) {
                    Some(identity) => {
                        let remembered = Remembered {
                            path,
                            identity,
                            outcome: Err(Arc::clone(&error)),
                            generation,
                        };
                        self.entries.insert(key.clone(), remembered);
                    }
                    None => {
                        self.entries.remove(key);
                    }
                }
                Err(Failed { error, fresh: true })
            }
        }
    }

    /// Keys whose failure is remembered.
    pub fn failures(&self) -> usize {
        self.entries.values().filter(|r| r.outcome.is_err()).count()
    }

    /// Keys remembered, named or failed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Files read (or tried) since the cache was made.
    pub fn reads(&self) -> u64 {
        self.reads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::bounded;

    #[derive(Debug, PartialEq)]
    struct Error(PathBuf);

    impl StateError for Error {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    /// A directory of state files, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let path = std::env::temp_dir().join(format!(
                "sockdiag-state-cache-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        /// Replaces `name` by a new file holding `text`, as runtimes write (rename).
        fn replace(&self, name: &str, text: &str) {
            let temp = self.0.join(format!(".{name}.tmp"));
            std::fs::write(&temp, text).unwrap();
            std::fs::rename(&temp, self.0.join(name)).unwrap();
        }

        /// A reader as the runtimes' are: the text, or an error for text "broken".
        fn read(&self, name: &str) -> Result<Option<(String, StateFile)>, Error> {
            let relative = Path::new(name);
            match bounded::read_beneath_with_identity(&self.0, relative, 1 << 10) {
                Ok((text, _)) if text == "broken" => Err(Error(self.0.join(name))),
                Ok((text, identity)) => Ok(Some((
                    text,
                    StateFile {
                        path: self.0.join(name),
                        identity,
                    },
                ))),
                Err(error) if error.io_kind() == Some(std::io::ErrorKind::NotFound) => Ok(None),
                Err(error) => panic!("{error}"),
            }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    type Cache = FileCache<&'static str, String, Error>;

    /// One poll asking for `key`, whose file is `name`: the value, and whether the file
    /// was read.
    fn poll(
        cache: &mut Cache,
        dir: &Dir,
        key: &'static str,
    ) -> (Result<Option<String>, bool>, bool) {
        cache.begin_poll();
        let before = cache.reads();
        let got = cache
            .get_or_read(&key, || dir.read(key))
            .map_err(|failed| failed.fresh);
        cache.end_poll();
        (got, cache.reads() > before)
    }

    #[test]
    fn a_name_is_read_once_and_again_in_the_poll_its_file_changes() {
        let dir = Dir::new("named");
        let mut cache = Cache::default();
        dir.replace("web", "web-1");
        assert_eq!(
            poll(&mut cache, &dir, "web"),
            (Ok(Some("web-1".into())), true)
        );
        for _ in 0..3 {
            assert_eq!(
                poll(&mut cache, &dir, "web"),
                (Ok(Some("web-1".into())), false),
                "an unchanged file is not read again"
            );
        }
        // `docker rename`: dockerd writes a new file; read in the poll that sees it.
        dir.replace("web", "web-renamed");
        assert_eq!(
            poll(&mut cache, &dir, "web"),
            (Ok(Some("web-renamed".into())), true)
        );
        // Changed in place (the same inode).
        std::fs::write(dir.0.join("web"), "web-in-place").unwrap();
        assert_eq!(
            poll(&mut cache, &dir, "web"),
            (Ok(Some("web-in-place".into())), true)
        );
        // Now broken: a fresh failure, then remembered.
        dir.replace("web", "broken");
        assert_eq!(poll(&mut cache, &dir, "web"), (Err(true), true));
        assert_eq!(poll(&mut cache, &dir, "web"), (Err(false), false));
        assert_eq!((cache.len(), cache.failures()), (1, 1));
        // Gone: nothing, and nothing remembered.
        std::fs::remove_file(dir.0.join("web")).unwrap();
        assert_eq!(poll(&mut cache, &dir, "web"), (Ok(None), true));
        assert!(cache.is_empty());
        assert_eq!(
            poll(&mut cache, &dir, "web"),
            (Ok(None), true),
            "no file: read again"
        );
    }

    #[test]
    fn keys_not_asked_about_are_dropped_so_the_cache_holds_one_poll() {
        let dir = Dir::new("bounded");
        let mut cache = Cache::default();
        let keys = ["a", "b", "c"];
        for key in keys {
            dir.replace(key, key);
        }
        cache.begin_poll();
        for key in keys {
            cache.get_or_read(&key, || dir.read(key)).unwrap();
        }
        cache.end_poll();
        assert_eq!(cache.len(), 3);
        // Container b vanished: not asked about, forgotten at the end of the poll.
        cache.begin_poll();
        for key in ["a", "c"] {
            cache.get_or_read(&key, || dir.read(key)).unwrap();
        }
        cache.end_poll();
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.reads(), 3, "a and c were not read again");
        cache.begin_poll();
        cache.end_poll();
        assert!(cache.is_empty());
    }
}
