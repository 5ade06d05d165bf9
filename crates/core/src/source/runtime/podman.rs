//! Podman: a container's name from its own monitor. Podman keeps names only in its
//! database (`libpod/bolt_state.db`) and in containers/storage's one file for every
//! container (`overlay-containers/containers.json`); the OCI spec it writes per container
//! (`userdata/config.json` under the storage root) carries no name. What a running
//! container does have on its own is its conmon, which Podman starts with the container's
//! id and name on its command line (`conmon ... -c <id> ... -n <name> ...`) and whose pid
//! it writes to `<run_root>/overlay-containers/<id>/userdata/conmon.pid`.
//!
//! The id on the command line must be the container's: a pid file left by a dead conmon
//! whose pid was reused names nothing. The name is the one given at `podman run`; Podman
//! does not restart conmon on `podman rename`, so a renamed container keeps its old name
//! until it restarts.

use std::io;
use std::path::{Path, PathBuf};

use crate::source::bounded;
use crate::source::cgroup::ContainerId;
use crate::source::runtime::crio::userdata;
use crate::source::runtime::{read_state, Names, RuntimeError};
use crate::source::state_cache::StateFile;

/// The pid in the text of a `conmon.pid` file.
pub fn parse_pid(text: &str) -> Option<u32> {
    text.trim().parse().ok().filter(|&pid| pid > 0)
}

/// The container name on conmon's command line (`/proc/PID/cmdline`: NUL-separated
/// arguments), when that conmon monitors container `id`; `None` for any other process.
pub fn parse_cmdline(cmdline: &[u8], id: &ContainerId) -> Option<String> {
    let mut args = cmdline
        .split(|&b| b == 0)
        .map(|arg| std::str::from_utf8(arg).ok());
    let program = args.next()??;
    if Path::new(program).file_name()? != "conmon" {
        return None;
    }
    let (mut cid, mut name) = (None, None);
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let Some(arg) = arg else { continue };
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (arg, None),
        };
        let slot = match flag {
            "-c" | "--cid" => &mut cid,
            "-n" | "--name" => &mut name,
            _ => continue,
        };
        *slot = match inline {
            Some(value) => Some(value),
            None => args.next().flatten(),
        };
    }
    (cid? == id.as_str())
        .then_some(name?)
        .filter(|name| !name.is_empty())
        .map(String::from)
}

/// The name of Podman container `id`: `None` when the run root has no conmon pid file for
/// it, no name when its conmon is gone or is not its own.
pub fn read(
    run_root: &Path,
    proc_root: &Path,
    id: &ContainerId,
) -> Result<Option<Names>, RuntimeError> {
    read_file(run_root, proc_root, id).map(|read| read.map(|(names, _)| names))
}

/// [`read`], with the pid file it read: what names the container stays the same while
/// that file does (Podman starts a new conmon, which writes a new file, when the
/// container restarts).
pub fn read_file(
    run_root: &Path,
    proc_root: &Path,
    id: &ContainerId,
) -> Result<Option<(Names, StateFile)>, RuntimeError> {
    let relative = userdata(id, "conmon.pid");
    let Some((text, file)) = read_state(run_root, &relative, bounded::RUNTIME_STATE_LIMIT)? else {
        return Ok(None);
    };
    let pid = parse_pid(&text).ok_or_else(|| RuntimeError::Pid {
        path: file.path.clone(),
    })?;
    let cmdline = cmdline_path(proc_root, pid);
    let container_name = match bounded::read(&cmdline, bounded::PROC_LIMIT) {
        Ok(bytes) => parse_cmdline(&bytes, id),
        // conmon exited with its container: the namespace is going too.
        Err(error) if error.io_kind() == Some(io::ErrorKind::NotFound) => None,
        Err(error) => return Err(error.into()),
    };
    let names = Names {
        container_name,
        ..Names::default()
    };
    Ok(Some((names.capped(), file)))
}

fn cmdline_path(proc_root: &Path, pid: u32) -> PathBuf {
    proc_root.join(pid.to_string()).join("cmdline")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::runtime::TempRoot;

    /// conmon's /proc/PID/cmdline and the pid file, from Podman 4.3.1 running
    /// `podman run -d --name podman-looper --network none ...`.
    const CMDLINE: &[u8] = include_bytes!("testdata/podman-conmon.cmdline");
    const PID_FILE: &str = include_str!("testdata/podman-conmon.pid");
    const ID: &str = "a7e829961b44e1bdd2a7591833fd07cfbede52807db110689943a49b2798c21e";

    fn id() -> ContainerId {
        ContainerId::parse(ID).unwrap()
    }

    #[test]
    fn the_name_on_a_real_conmon_command_line() {
        assert_eq!(parse_pid(PID_FILE), Some(9325));
        assert_eq!(
            parse_cmdline(CMDLINE, &id()).as_deref(),
            Some("podman-looper")
        );
    }

    #[test]
    fn another_containers_conmon_or_another_program_names_nothing() {
        let other = ContainerId::parse(&"b".repeat(64)).unwrap();
        assert_eq!(parse_cmdline(CMDLINE, &other), None);
        let sleep = format!("/usr/bin/sleep\0-c\0{ID}\0-n\0x\0");
        assert_eq!(parse_cmdline(sleep.as_bytes(), &id()), None);
        assert_eq!(parse_cmdline(b"", &id()), None);
        assert_eq!(parse_cmdline(b"conmon\0-n\0", &id()), None);
        let unnamed = format!("conmon\0-c\0{ID}\0-n\0\0");
        assert_eq!(parse_cmdline(unnamed.as_bytes(), &id()), None);
        let bad_utf8 = format!("conmon\0-c\0{ID}\0-n\0\u{0}");
        assert_eq!(parse_cmdline(bad_utf8.as_bytes(), &id()), None);
    }

    #[test]
    fn long_and_inline_flags() {
        let long = format!("/usr/libexec/podman/conmon\0--cid\0{ID}\0--name\0web\0");
        assert_eq!(
            parse_cmdline(long.as_bytes(), &id()).as_deref(),
            Some("web")
        );
        let inline = format!("conmon\0--cid={ID}\0--name=web=1\0");
        assert_eq!(
            parse_cmdline(inline.as_bytes(), &id()).as_deref(),
            Some("web=1")
        );
    }

    #[test]
    fn pid_files() {
        assert_eq!(parse_pid("42\n"), Some(42));
        assert_eq!(parse_pid("0"), None);
        assert_eq!(parse_pid("-1"), None);
        assert_eq!(parse_pid(""), None);
        assert_eq!(parse_pid("4294967296"), None);
    }

    #[test]
    fn reader_through_the_pid_file_and_a_fake_proc() {
        let run_root = TempRoot::new("podman-run");
        let proc = TempRoot::new("podman-proc");
        assert_eq!(read(&run_root.0, &proc.0, &id()).unwrap(), None);
        let pid_file = run_root.write(
            &format!("overlay-containers/{ID}/userdata/conmon.pid"),
            PID_FILE.as_bytes(),
        );
        // conmon gone: Podman's container, nameless.
        assert_eq!(
            read(&run_root.0, &proc.0, &id()).unwrap(),
            Some(Names::default())
        );
        proc.write("9325/cmdline", CMDLINE);
        assert_eq!(
            read(&run_root.0, &proc.0, &id()).unwrap(),
            Some(Names {
                container_name: Some("podman-looper".into()),
                ..Names::default()
            })
        );
        std::fs::write(&pid_file, "not a pid").unwrap();
        assert_eq!(
            read(&run_root.0, &proc.0, &id()).unwrap_err().to_string(),
            format!("{} holds no process id", pid_file.display())
        );
    }
}
