//! Network namespaces: which ones exist on the host. How a thread steps into one and back
//! is [`enter`]'s job.
//!
//! [`discover`] finds every network namespace that a process is in (`/proc/*/ns/net`,
//! deduplicated by the namespace inode that the link names, `net:[INODE]`) and every one
//! bind-mounted under the bind roots (`ip netns` in /run/netns, Docker's sandboxes in
//! /run/docker/netns), even with no process left in it. It opens nothing that outlives the
//! call: an fd kept on a namespace keeps a dead container's namespace alive.
//!
//! Each namespace comes with the path to enter it by ([`Netns::enter_path`]), which
//! [`HomeNetns::enter`] reopens and checks against the inode.
//!
//! /proc is a moving target: a process that exits between readdir and readlink is counted
//! in [`Discovery::vanished_pids`], a link we may not read in [`Discovery::denied_pids`]
//! (the degraded mode without CAP_SYS_PTRACE); neither is an error.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

pub use enter::{
    missing_privileges, EnterError, HomeNetns, MissingPrivileges, VanishedBecause, Visit,
};

pub mod enter;

/// Where [`discover`] reads processes by default.
pub const DEFAULT_PROC_ROOT: &str = "/proc";

/// The inode of the initial network namespace on kernels that number it as a constant
/// (`PROC_NET_INIT_INO`, Linux 6.18); older kernels number it like any other. Never a
/// namespace created later: those are numbered from 0xF0000000 up.
pub const INIT_NET_INODE: u64 = 0xEFFF_FFF9;

/// Directories of bind-mounted namespaces, by default: `ip netns` first (its file names
/// are namespace names), then Docker's sandboxes (named by sandbox id, not by container).
pub const DEFAULT_BIND_ROOTS: [&str; 2] = ["/run/netns", "/run/docker/netns"];

/// How many member pids a [`Netns`] keeps: enough to find the container a namespace
/// belongs to and to enter it when the lowest pid exits, without growing with the
/// namespace (a host namespace holds thousands of processes).
pub const MAX_MEMBER_PIDS: usize = 4;

/// Every network namespace found by one [`discover`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// Ordered by inode.
    pub namespaces: Vec<Netns>,
    /// The host's namespace: PID 1's (the host's when we share the host's PID namespace),
    /// else, when PID 1's link cannot be read, the initial namespace if it was found by its
    /// fixed inode ([`INIT_NET_INODE`]); `None` when neither is known.
    pub host: Option<u64>,
    /// The namespace of the calling thread.
    pub own: u64,
    /// Processes that exited between readdir and readlink (or were zombies).
    pub vanished_pids: u64,
    /// Processes whose link we may not read (no CAP_SYS_PTRACE): their namespaces are
    /// missing unless another process or a bind mount shows them.
    pub denied_pids: u64,
    /// Files under the bind roots that are not a mounted namespace (left over after a
    /// failed `ip netns delete`, or a bind mount of something else).
    pub stray_files: u64,
}

/// One network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    /// The namespace inode: its identity for as long as it lives.
    pub inode: u64,
    /// The lowest pids of the processes in it, lowest first, at most [`MAX_MEMBER_PIDS`].
    pub pids: Vec<u32>,
    /// How many processes are in it (all of them, not only `pids`).
    pub processes: u64,
    /// Files under the bind roots that mount it, sorted.
    pub bind_mounts: Vec<PathBuf>,
    /// Its `ip netns` name: the file name under the first bind root (the smallest one when
    /// it is mounted there under several names).
    pub name: Option<String>,
}

impl Netns {
    /// The path to open to enter it: its first bind mount when it has one (it lives as long
    /// as the namespace), else the lowest member pid's link.
    pub fn enter_path(&self, proc_root: &Path) -> PathBuf {
        match (self.bind_mounts.first(), self.pids.first()) {
            (Some(mount), _) => mount.clone(),
            (None, Some(pid)) => ns_link(proc_root, &pid.to_string()),
            // A Netns is only ever made from a process or a bind mount.
            (None, None) => PathBuf::new(),
        }
    }
}

/// Why discovering namespaces failed, by stage, with the path.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The process directory cannot be listed.
    #[error("listing {}: {error}", .path.display())]
    ListProcesses { path: PathBuf, error: io::Error },
    /// A bind root exists but cannot be listed.
    #[error("listing {}: {error}", .path.display())]
    ListBindRoot { path: PathBuf, error: io::Error },
    /// A namespace link (or our own) cannot be read for a reason other than a vanished
    /// process or a denied permission.
    #[error("reading the link {}: {error}", .path.display())]
    ReadLink { path: PathBuf, error: io::Error },
    /// A namespace link does not read `net:[INODE]`.
    #[error("the link {} reads {target:?}, not net:[INODE]", .path.display())]
    ParseLink { path: PathBuf, target: String },
    /// A file under a bind root (or our own link) cannot be examined.
    #[error("stat {}: {error}", .path.display())]
    Stat { path: PathBuf, error: io::Error },
}

/// The inode of a namespace link target `net:[INODE]`; `None` for anything else.
pub fn parse_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Folds the readings of one discovery into a [`Discovery`]; pure, so that deduplication
/// and the bounded pid lists are tested without a /proc.
#[derive(Debug, Default)]
pub struct Collector {
    by_inode: FxHashMap<u64, Netns>,
    vanished_pids: u64,
    denied_pids: u64,
    stray_files: u64,
}

impl Collector {
    /// Process `pid` is in namespace `inode`.
    pub fn process(&mut self, pid: u32, inode: u64) {
        let ns = self.entry(inode);
        ns.processes += 1;
        let at = ns.pids.partition_point(|&p| p < pid);
        if at < MAX_MEMBER_PIDS && ns.pids.get(at) != Some(&pid) {
            ns.pids.insert(at, pid);
            ns.pids.truncate(MAX_MEMBER_PIDS);
        }
    }

    /// `path` mounts namespace `inode`; `name` is its `ip netns` name if it has one.
    pub fn bind_mount(&mut self, path: PathBuf, name: Option<String>, inode: u64) {
        let ns = self.entry(inode);
        let at = ns.bind_mounts.partition_point(|p| *p < path);
        ns.bind_mounts.insert(at, path);
        if let Some(name) = name {
            if ns.name.as_ref().is_none_or(|old| name < *old) {
                ns.name = Some(name);
            }
        }
    }

    pub fn vanished_pid(&mut self) {
        self.vanished_pids += 1;
    }

    pub fn denied_pid(&mut self) {
        self.denied_pids += 1;
    }

    pub fn stray_file(&mut self) {
        self.stray_files += 1;
    }

    /// `pid_1` is PID 1's namespace if its link could be read.
    pub fn finish(self, own: u64, pid_1: Option<u64>) -> Discovery {
        // Without CAP_SYS_PTRACE (or in a sandbox whose PID 1 has more capabilities than
        // we do) PID 1's link is denied; the initial namespace still names the host.
        let host = pid_1.or_else(|| {
            self.by_inode
                .contains_key(&INIT_NET_INODE)
                .then_some(INIT_NET_INODE)
        });
        let mut namespaces: Vec<Netns> = self.by_inode.into_values().collect();
        namespaces.sort_unstable_by_key(|ns| ns.inode);
        Discovery {
            namespaces,
            host,
            own,
            vanished_pids: self.vanished_pids,
            denied_pids: self.denied_pids,
            stray_files: self.stray_files,
        }
    }

    fn entry(&mut self, inode: u64) -> &mut Netns {
        self.by_inode.entry(inode).or_insert_with(|| Netns {
            inode,
            pids: Vec::new(),
            processes: 0,
            bind_mounts: Vec::new(),
            name: None,
        })
    }
}

/// Every network namespace a process is in, plus those bind-mounted under `bind_roots`
/// (see [`DEFAULT_BIND_ROOTS`]; a root that does not exist is skipped). File names under
/// `bind_roots[0]` are taken as `ip netns` names.
pub fn discover(proc_root: &Path, bind_roots: &[PathBuf]) -> Result<Discovery, NetnsError> {
    let own_link = proc_root.join("thread-self/ns/net");
    let own = read_ns_link(&own_link)?;
    let own_dev = stat_dev(&own_link)?;
    let mut collector = Collector::default();
    let mut host = None;

    let entries = list(proc_root).map_err(|error| NetnsError::ListProcesses {
        path: proc_root.to_path_buf(),
        error,
    })?;
    for entry in entries {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let link = ns_link(proc_root, &pid.to_string());
        match read_ns_link(&link) {
            Ok(inode) => {
                collector.process(pid, inode);
                if pid == 1 {
                    host = Some(inode);
                }
            }
            Err(NetnsError::ReadLink { error, .. }) if is_gone(&error) => collector.vanished_pid(),
            Err(NetnsError::ReadLink { error, .. })
                if error.kind() == io::ErrorKind::PermissionDenied =>
            {
                collector.denied_pid()
            }
            Err(other) => return Err(other),
        }
    }

    for (index, root) in bind_roots.iter().enumerate() {
        let entries = match list(root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            // Without CAP_DAC_READ_SEARCH a root-only directory (Docker's, 0700 on some
            // hosts) is closed to us: the namespaces behind it are as out of reach as the
            // processes whose links we may not read, and the missing privileges are
            // already reported (sockdiag_netns_skipped{reason="permission"}). The rest
            // of discovery goes on.
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => continue,
            Err(error) => {
                return Err(NetnsError::ListBindRoot {
                    path: root.clone(),
                    error,
                })
            }
        };
        for entry in entries {
            let path = entry.path();
            let metadata = match std::fs::metadata(&path) {
                Ok(metadata) => metadata,
                // Deleted since readdir (`ip netns delete` racing us).
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(NetnsError::Stat { path, error }),
            };
            // A mounted namespace is an nsfs inode, on the device our own link is on; the
            // empty file that `ip netns add` leaves after a failed mount is not.
            if metadata.dev() != own_dev {
                collector.stray_file();
                continue;
            }
            let name = (index == 0)
                .then(|| entry.file_name().into_string().ok())
                .flatten();
            collector.bind_mount(path, name, metadata.ino());
        }
    }
    Ok(collector.finish(own, host))
}

/// The entries of `dir`, read in full before any is examined.
fn list(dir: &Path) -> io::Result<Vec<std::fs::DirEntry>> {
    std::fs::read_dir(dir)?.collect()
}

/// `<proc_root>/<pid>/ns/net`.
pub fn ns_link(proc_root: &Path, pid: &str) -> PathBuf {
    proc_root.join(pid).join("ns/net")
}

fn read_ns_link(path: &Path) -> Result<u64, NetnsError> {
    let target = std::fs::read_link(path).map_err(|error| NetnsError::ReadLink {
        path: path.to_path_buf(),
        error,
    })?;
    let target = target.to_string_lossy();
    parse_link(&target).ok_or_else(|| NetnsError::ParseLink {
        path: path.to_path_buf(),
        target: target.into_owned(),
    })
}

fn stat_dev(path: &Path) -> Result<u64, NetnsError> {
    std::fs::metadata(path)
        .map(|m| m.dev())
        .map_err(|error| NetnsError::Stat {
            path: path.to_path_buf(),
            error,
        })
}

/// ENOENT (the process or file is gone) or ESRCH (the process is exiting).
pub(crate) fn is_gone(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A /proc lookalike: a namespace link is a symlink whose target reads `net:[INODE]`,
    /// and a file of that name beside it lets stat follow it, as stat follows the real one.
    struct FakeProc {
        root: PathBuf,
    }

    impl FakeProc {
        fn new(name: &str) -> Self {
            let root = std::env::temp_dir()
                .join(format!("sockdiag-fakeproc-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            FakeProc { root }
        }

        fn link(&self, dir: &str, inode: u64) {
            let ns = self.root.join(dir).join("ns");
            std::fs::create_dir_all(&ns).unwrap();
            let target = format!("net:[{inode}]");
            std::fs::write(ns.join(&target), "").unwrap();
            std::os::unix::fs::symlink(&target, ns.join("net")).unwrap();
        }
    }

    impl Drop for FakeProc {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    #[test]
    fn reader_counts_vanished_pids_and_skips_what_is_not_a_pid() {
        let proc = FakeProc::new("reader");
        proc.link("thread-self", 4026532100);
        proc.link("1", 4026531833);
        proc.link("42", 4026532100);
        proc.link("43", 4026532100);
        // Exited between readdir and readlink: the directory is there, the link is not.
        std::fs::create_dir_all(proc.root.join("77")).unwrap();
        // Not processes.
        std::fs::create_dir_all(proc.root.join("sys")).unwrap();
        std::fs::write(proc.root.join("uptime"), "1.0 1.0").unwrap();
        let d = discover(&proc.root, &[proc.root.join("no-such-bind-root")]).unwrap();
        assert_eq!((d.own, d.host), (4026532100, Some(4026531833)));
        assert_eq!(d.vanished_pids, 1);
        assert_eq!(d.denied_pids, 0);
        let found: Vec<(u64, &[u32], u64)> = d
            .namespaces
            .iter()
            .map(|ns| (ns.inode, ns.pids.as_slice(), ns.processes))
            .collect();
        assert_eq!(
            found,
            vec![(4026531833, &[1][..], 1), (4026532100, &[42, 43][..], 2)]
        );
    }

    #[test]
    fn without_pid_1_the_initial_namespace_is_the_host() {
        let mut c = Collector::default();
        c.process(300, INIT_NET_INODE);
        c.process(400, 4026532200);
        c.denied_pid();
        assert_eq!(c.finish(INIT_NET_INODE, None).host, Some(INIT_NET_INODE));
        // PID 1's namespace wins when known: in a container sharing the host's PID
        // namespace but not its network, PID 1 is still the host.
        let mut c = Collector::default();
        c.process(1, 4026531992);
        c.process(300, INIT_NET_INODE);
        assert_eq!(
            c.finish(INIT_NET_INODE, Some(4026531992)).host,
            Some(4026531992)
        );
        // Neither known (a kernel before 6.18 numbers the initial namespace freely).
        let mut c = Collector::default();
        c.process(300, 4026531992);
        assert_eq!(c.finish(4026531992, None).host, None);
    }

    #[test]
    fn reader_rejects_a_link_that_is_not_a_network_namespace() {
        let proc = FakeProc::new("badlink");
        proc.link("thread-self", 4026532100);
        let ns = proc.root.join("9/ns");
        std::fs::create_dir_all(&ns).unwrap();
        std::os::unix::fs::symlink("mnt:[4026531841]", ns.join("net")).unwrap();
        let error = discover(&proc.root, &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "the link {}/9/ns/net reads \"mnt:[4026531841]\", not net:[INODE]",
                proc.root.display()
            )
        );
    }

    #[test]
    fn link_targets() {
        assert_eq!(parse_link("net:[4026531833]"), Some(4026531833));
        // Another namespace type, a path, a truncated target, a sign, overflow.
        assert_eq!(parse_link("mnt:[4026531841]"), None);
        assert_eq!(parse_link("/run/netns/blue"), None);
        assert_eq!(parse_link("net:[4026531833"), None);
        assert_eq!(parse_link("net:[-1]"), None);
        assert_eq!(parse_link("net:[18446744073709551616]"), None);
        assert_eq!(parse_link("net:[]"), None);
    }

    #[test]
    fn processes_deduplicate_by_inode_and_keep_the_lowest_pids() {
        let mut c = Collector::default();
        // Out of order, as readdir may give them; 7 processes share the host namespace.
        for pid in [900, 3, 1, 77, 12, 5, 2] {
            c.process(pid, 100);
        }
        c.process(4242, 200);
        c.vanished_pid();
        c.denied_pid();
        c.denied_pid();
        let d = c.finish(100, Some(100));
        assert_eq!(d.namespaces.len(), 2);
        assert_eq!(d.namespaces[0].inode, 100);
        assert_eq!(d.namespaces[0].pids, vec![1, 2, 3, 5]);
        assert_eq!(d.namespaces[0].processes, 7);
        assert_eq!(d.namespaces[1].pids, vec![4242]);
        assert_eq!((d.vanished_pids, d.denied_pids), (1, 2));
        assert_eq!((d.own, d.host), (100, Some(100)));
    }

    #[test]
    fn bind_mounts_join_processes_and_keep_the_smallest_name() {
        let mut c = Collector::default();
        c.process(50, 300);
        c.bind_mount("/run/netns/zeta".into(), Some("zeta".into()), 300);
        c.bind_mount("/run/netns/alpha".into(), Some("alpha".into()), 300);
        c.bind_mount("/run/docker/netns/1a2b3c4d5e6f".into(), None, 300);
        // Mounted only, no process in it.
        c.bind_mount("/run/docker/netns/default".into(), None, 400);
        let d = c.finish(1, None);
        let with_process = &d.namespaces[0];
        assert_eq!(with_process.name.as_deref(), Some("alpha"));
        assert_eq!(
            with_process.bind_mounts,
            vec![
                PathBuf::from("/run/docker/netns/1a2b3c4d5e6f"),
                PathBuf::from("/run/netns/alpha"),
                PathBuf::from("/run/netns/zeta"),
            ]
        );
        // A bind mount is entered through the mount, which outlives any process.
        assert_eq!(
            with_process.enter_path(Path::new("/proc")),
            PathBuf::from("/run/docker/netns/1a2b3c4d5e6f")
        );
        let mounted_only = &d.namespaces[1];
        assert_eq!(
            (mounted_only.processes, mounted_only.name.as_ref()),
            (0, None)
        );
    }

    #[test]
    fn a_namespace_without_bind_mount_is_entered_through_its_lowest_pid() {
        let mut c = Collector::default();
        c.process(31, 500);
        c.process(30, 500);
        let d = c.finish(1, None);
        assert_eq!(
            d.namespaces[0].enter_path(Path::new("/host/proc")),
            PathBuf::from("/host/proc/30/ns/net")
        );
    }
}
