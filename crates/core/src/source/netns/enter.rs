//! Entering a network namespace on the calling thread, and coming back.
//!
//! [`HomeNetns`] holds the calling thread's own namespace and enters another one for the
//! span of a [`Visit`] (setns(2) on the calling thread only, so the rest of the process
//! stays where it is). Entering reopens the path that discovery gave and checks its inode,
//! so a pid reused since discovery cannot put the thread in the wrong namespace; the fd is
//! closed as soon as setns returns, so no namespace is kept alive by us.
//!
//! [`missing_privileges`] says whether the process may enter namespaces that are not its
//! own at all (CAP_SYS_ADMIN for setns, CAP_SYS_PTRACE to open another process's link).

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::thread::{CapabilitySet, LinkNameSpaceType};

use super::is_gone;

/// Why entering a namespace, or coming back, failed, by stage.
#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    /// The namespace is gone, or the path now names another one (a reused pid). The poll
    /// drops such a namespace quietly and counts it.
    #[error("network namespace {inode} at {} is gone: {reason}", .path.display())]
    Vanished {
        path: PathBuf,
        inode: u64,
        reason: VanishedBecause,
    },
    /// The namespace file cannot be opened (other than vanished).
    #[error("opening {}: {error}", .path.display())]
    Open { path: PathBuf, error: io::Error },
    /// The opened namespace file cannot be examined.
    #[error("fstat {}: {error}", .path.display())]
    Stat { path: PathBuf, error: io::Error },
    /// setns(2) into the namespace failed.
    #[error("setns into network namespace {inode} ({}): {error}", .path.display())]
    Enter {
        path: PathBuf,
        inode: u64,
        error: io::Error,
    },
    /// setns(2) back into our own namespace failed: the thread is left in `inode`.
    #[error("setns back from network namespace {inode} to our own {home}: {error}")]
    Return {
        home: u64,
        inode: u64,
        error: io::Error,
    },
    /// A thread that once failed to return home refuses to enter again: its idea of "home"
    /// is no longer where it is.
    #[error(
        "this thread failed to return to its network namespace {home} earlier and is stranded"
    )]
    Stranded { home: u64 },
    /// capget(2) failed.
    #[error("reading our own capabilities: {error}")]
    Capabilities { error: io::Error },
}

/// How a namespace turned out to be gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VanishedBecause {
    /// ENOENT or ESRCH: the process or the bind mount is gone.
    #[error("no such file or process")]
    NotFound,
    /// The path names a namespace with another inode.
    #[error("the path now names network namespace {now}")]
    InodeChanged { now: u64 },
}

/// The calling thread's own network namespace, held open so the thread can come back to
/// it after entering another one. Not `Sync`: a thread enters and returns by itself.
#[derive(Debug)]
pub struct HomeNetns {
    fd: File,
    inode: u64,
    stranded: Cell<bool>,
}

impl HomeNetns {
    /// Opens `<proc_root>/thread-self/ns/net`.
    pub fn open(proc_root: &Path) -> Result<Self, EnterError> {
        let path = proc_root.join("thread-self/ns/net");
        let fd = File::open(&path).map_err(|error| EnterError::Open {
            path: path.clone(),
            error,
        })?;
        let inode = fd
            .metadata()
            .map_err(|error| EnterError::Stat { path, error })?
            .ino();
        Ok(HomeNetns {
            fd,
            inode,
            stranded: Cell::new(false),
        })
    }

    /// The inode of our own namespace.
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// Moves the calling thread into the namespace at `path`, which must still be `inode`,
    /// until the returned [`Visit`] is left or dropped.
    pub fn enter(&self, path: &Path, inode: u64) -> Result<Visit<'_>, EnterError> {
        if self.stranded.get() {
            return Err(EnterError::Stranded { home: self.inode });
        }
        let vanished = |reason| EnterError::Vanished {
            path: path.to_path_buf(),
            inode,
            reason,
        };
        // std opens with O_CLOEXEC; O_RDONLY is all setns needs. The fd is closed when
        // `target` drops at the end of this function, right after setns.
        let target = match File::open(path) {
            Ok(file) => file,
            Err(error) if is_gone(&error) => return Err(vanished(VanishedBecause::NotFound)),
            Err(error) => {
                return Err(EnterError::Open {
                    path: path.to_path_buf(),
                    error,
                })
            }
        };
        let now = target
            .metadata()
            .map_err(|error| EnterError::Stat {
                path: path.to_path_buf(),
                error,
            })?
            .ino();
        if now != inode {
            return Err(vanished(VanishedBecause::InodeChanged { now }));
        }
        rustix::thread::move_into_link_name_space(target.as_fd(), Some(LinkNameSpaceType::Network))
            .map_err(|errno| EnterError::Enter {
                path: path.to_path_buf(),
                inode,
                error: errno.into(),
            })?;
        Ok(Visit {
            home: self,
            inode,
            left: false,
        })
    }

    /// Runs `body` inside the namespace at `path` (which must still be `inode`) and brings
    /// the thread back. A failed return is an error even though `body` ran.
    pub fn run_in<T>(
        &self,
        path: &Path,
        inode: u64,
        body: impl FnOnce() -> T,
    ) -> Result<T, EnterError> {
        let visit = self.enter(path, inode)?;
        let value = body();
        visit.leave()?;
        Ok(value)
    }

    fn go_home(&self, from: u64) -> Result<(), EnterError> {
        rustix::thread::move_into_link_name_space(self.fd.as_fd(), Some(LinkNameSpaceType::Network))
            .map_err(|errno| {
                self.stranded.set(true);
                EnterError::Return {
                    home: self.inode,
                    inode: from,
                    error: errno.into(),
                }
            })
    }
}

/// The calling thread's stay in another namespace: [`Visit::leave`] returns it home and
/// reports a failure; dropping the visit returns it too (for early returns and panics),
/// and a failure there leaves the [`HomeNetns`] stranded, so it enters nothing again.
#[derive(Debug)]
#[must_use = "the thread stays in the namespace only while the Visit lives"]
pub struct Visit<'home> {
    home: &'home HomeNetns,
    inode: u64,
    left: bool,
}

impl Visit<'_> {
    /// The namespace the thread is in.
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// Returns the thread to its own namespace.
    pub fn leave(mut self) -> Result<(), EnterError> {
        self.left = true;
        self.home.go_home(self.inode)
    }
}

impl Drop for Visit<'_> {
    fn drop(&mut self) {
        if !self.left {
            // The failure is recorded in `home.stranded`; a drop has no one to tell.
            let _stranded = self.home.go_home(self.inode);
        }
    }
}

/// The capabilities that entering another network namespace needs and this thread lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingPrivileges {
    /// CAP_SYS_ADMIN: setns(2) itself.
    pub sys_admin: bool,
    /// CAP_SYS_PTRACE: opening another process's namespace link.
    pub sys_ptrace: bool,
}

impl MissingPrivileges {
    /// What `effective` lacks; `None` when it has both.
    pub fn from_effective(effective: CapabilitySet) -> Option<Self> {
        let missing = MissingPrivileges {
            sys_admin: !effective.contains(CapabilitySet::SYS_ADMIN),
            sys_ptrace: !effective.contains(CapabilitySet::SYS_PTRACE),
        };
        (missing.sys_admin || missing.sys_ptrace).then_some(missing)
    }

    /// The `reason` label of `sockdiag_netns_skipped`.
    pub fn reason(&self) -> &'static str {
        match (self.sys_admin, self.sys_ptrace) {
            (true, true) => "missing_cap_sys_admin_and_sys_ptrace",
            (true, false) => "missing_cap_sys_admin",
            _ => "missing_cap_sys_ptrace",
        }
    }
}

impl std::fmt::Display for MissingPrivileges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [
            (self.sys_admin, "CAP_SYS_ADMIN"),
            (self.sys_ptrace, "CAP_SYS_PTRACE"),
        ]
        .into_iter()
        .filter_map(|(missing, name)| missing.then_some(name))
        .collect();
        write!(
            f,
            "entering other network namespaces needs {} in the effective set",
            names.join(" and ")
        )
    }
}

/// Whether the calling thread may enter namespaces other than its own: `Ok(None)` when it
/// may, else what it lacks (the poll then covers its own namespace only and says why).
pub fn missing_privileges() -> Result<Option<MissingPrivileges>, EnterError> {
    let sets = rustix::thread::capabilities(None).map_err(|errno| EnterError::Capabilities {
        error: errno.into(),
    })?;
    Ok(MissingPrivileges::from_effective(sets.effective))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_needed_to_enter() {
        let all = CapabilitySet::SYS_ADMIN | CapabilitySet::SYS_PTRACE | CapabilitySet::NET_RAW;
        assert_eq!(MissingPrivileges::from_effective(all), None);
        let no_admin = MissingPrivileges::from_effective(CapabilitySet::SYS_PTRACE).unwrap();
        assert_eq!(no_admin.reason(), "missing_cap_sys_admin");
        assert_eq!(
            no_admin.to_string(),
            "entering other network namespaces needs CAP_SYS_ADMIN in the effective set"
        );
        let none = MissingPrivileges::from_effective(CapabilitySet::empty()).unwrap();
        assert_eq!(none.reason(), "missing_cap_sys_admin_and_sys_ptrace");
        assert_eq!(
            none.to_string(),
            "entering other network namespaces needs CAP_SYS_ADMIN and CAP_SYS_PTRACE in the effective set"
        );
        let no_ptrace = MissingPrivileges::from_effective(CapabilitySet::SYS_ADMIN).unwrap();
        assert_eq!(no_ptrace.reason(), "missing_cap_sys_ptrace");
    }

    #[test]
    fn vanished_error_names_path_inode_and_reason() {
        let e = EnterError::Vanished {
            path: "/proc/4242/ns/net".into(),
            inode: 4026532300,
            reason: VanishedBecause::InodeChanged { now: 4026532999 },
        };
        assert_eq!(
            e.to_string(),
            "network namespace 4026532300 at /proc/4242/ns/net is gone: the path now names network namespace 4026532999"
        );
    }
}
