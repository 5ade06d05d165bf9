//! Pure parsers of /proc text and the small readers that feed them.

use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};

use crate::source::bounded;

pub(super) fn parse_u32(name: &CStr) -> Option<u32> {
    let bytes = name.to_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Parses an fd symlink target `socket:[12345]`.
pub fn parse_socket_link(link: &[u8]) -> Option<u32> {
    let inner = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(inner).ok()?.parse().ok()
}

/// Field 22 (starttime) of /proc/PID/stat. The comm field may hold spaces and ')', so
/// fields are counted from the last ')'.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A file of an open /proc/PID directory, through [`bounded::read_at`] (at most
/// [`bounded::PROC_LIMIT`], a regular file). `None` on any failure: the process exited or
/// is not ours to read, which ends what the scan does with it.
pub(super) fn read_small(dir: &OwnedFd, name: &str) -> Option<String> {
    let bytes = bounded::read_at(dir.as_fd(), name, bounded::PROC_LIMIT, || {
        PathBuf::from("/proc/PID").join(name)
    })
    .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

pub(super) fn read_start_time(dir: &OwnedFd) -> Option<u64> {
    parse_start_time(&read_small(dir, "stat")?)
}

pub(super) fn read_comm(dir: &OwnedFd) -> Option<String> {
    let comm = read_small(dir, "comm")?;
    Some(comm.trim_end_matches('\n').to_string())
}

/// Field 2 (comm) of /proc/PID/stat: what lies between the first '(' and the last ')'.
/// The same text as /proc/PID/comm, so one read gives the name and the start time.
pub fn parse_stat_comm(stat: &str) -> Option<&str> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    stat.get(open + 1..close)
}

/// `/proc/PID/stat`, read through the already open /proc directory.
pub(super) fn read_stat(proc: &OwnedFd, pid: u32) -> Option<String> {
    let dir = rustix::fs::openat(
        proc,
        pid.to_string(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    read_small(&dir, "stat")
}
