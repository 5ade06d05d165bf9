//! Whether a network namespace was made by root or by an unprivileged user: the user
//! namespace of its lowest member process (`/proc/PID/ns/user`) and that user namespace's
//! `uid_map`.
//!
//! Any user may create network namespaces, through a user namespace of their own
//! (`unshare -Urn`), and fill them with sockets. The namespace cap ranks such namespaces
//! after the host's and the runtimes', so that a user without privileges cannot fold a
//! real container out of sight by making a hundred of their own.
//!
//! A user namespace counts as root's when it is the initial one (PID 1's), or when its
//! `uid_map` maps host uid 0 into it. An unprivileged user can only write a map of their
//! own uid, so no namespace of theirs passes; a root-owned namespace that maps only other
//! uids (Docker's `userns-remap`, rootless runtimes) does not pass either, which only
//! lowers its rank. The kernel's own answer (`NS_GET_OWNER_UID`) is an ioctl, and this
//! crate has no unsafe code; the map tells the same for every namespace made by
//! `unshare`, runtimes or hand.

use std::path::{Path, PathBuf};

use super::bounded::{self, BoundedReadError, PROC_LIMIT};

/// Who owns a network namespace's user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The initial user namespace, or one that maps host uid 0.
    Root,
    /// A user namespace that does not map host uid 0.
    User,
}

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("cannot read the user namespace link {}: {error}", path.display())]
    Link {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("reading a uid map: {0}")]
    Map(#[from] BoundedReadError),
}

impl UsernsError {
    /// The process exited while we looked: not an error, the namespace goes with it.
    pub fn is_gone(&self) -> bool {
        match self {
            UsernsError::Link { error, .. } => super::netns::is_gone(error),
            UsernsError::Map(error) => {
                error
                    .io_kind()
                    .is_some_and(|kind| kind == std::io::ErrorKind::NotFound)
                    || matches!(error, BoundedReadError::Open { source, .. } | BoundedReadError::Read { source, .. } if source.raw_os_error() == Some(libc::ESRCH))
            }
        }
    }
}

/// The user namespaces of the host, to compare each process's against.
#[derive(Debug, Clone)]
pub struct Users {
    proc_root: PathBuf,
    /// The link target of PID 1's user namespace (`user:[INODE]`), when readable.
    initial: Option<PathBuf>,
}

impl Users {
    /// Reads PID 1's user namespace under `proc_root`, once per discovery.
    pub fn new(proc_root: &Path) -> Users {
        Users {
            proc_root: proc_root.to_path_buf(),
            initial: std::fs::read_link(proc_root.join("1/ns/user")).ok(),
        }
    }

    /// The owner of `pid`'s user namespace.
    pub fn owner(&self, pid: u32) -> Result<Owner, UsernsError> {
        let dir = self.proc_root.join(pid.to_string());
        let path = dir.join("ns/user");
        let link = std::fs::read_link(&path).map_err(|error| UsernsError::Link {
            path: path.clone(),
            error,
        })?;
        if self.initial.as_ref() == Some(&link) {
            return Ok(Owner::Root);
        }
        let map = bounded::read_to_string(&dir.join("uid_map"), PROC_LIMIT)?;
        Ok(owner_of_map(&map))
    }
}

/// The owner a `uid_map` shows: root when a line maps a range that holds host uid 0
/// (`inside outside count`, outside read in the reader's, here the initial, namespace).
/// Pure.
pub fn owner_of_map(map: &str) -> Owner {
    let maps_root = map.lines().any(|line| {
        let mut fields = line.split_ascii_whitespace().map(str::parse::<u64>);
        match (fields.next(), fields.next(), fields.next()) {
            (Some(Ok(_inside)), Some(Ok(outside)), Some(Ok(count))) => outside == 0 && count > 0,
            _ => false,
        }
    });
    if maps_root {
        Owner::Root
    } else {
        Owner::User
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_map_is_roots() {
        assert_eq!(
            owner_of_map("         0          0 4294967295\n"),
            Owner::Root
        );
    }

    #[test]
    fn unshare_by_an_unprivileged_user_is_theirs() {
        assert_eq!(
            owner_of_map("         0      65534          1\n"),
            Owner::User
        );
    }

    #[test]
    fn a_remapped_runtime_without_host_root_is_a_users() {
        assert_eq!(
            owner_of_map("0 100000 65536\n"),
            Owner::User,
            "docker userns-remap maps no host root: it ranks with the unknown"
        );
    }

    #[test]
    fn a_map_that_holds_host_root_on_a_later_line_is_roots() {
        assert_eq!(owner_of_map("0 1000 1\n1 0 1\n"), Owner::Root);
    }

    #[test]
    fn an_empty_or_garbled_map_is_not_roots() {
        assert_eq!(owner_of_map(""), Owner::User);
        assert_eq!(owner_of_map("0 zero 1\n0 0\n"), Owner::User);
    }

    #[test]
    fn our_own_process_in_the_initial_namespace_is_roots() {
        let users = Users::new(Path::new("/proc"));
        assert_eq!(users.owner(std::process::id()).unwrap(), Owner::Root);
    }
}
