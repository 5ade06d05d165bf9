//! Every exit code the binary returns, in one place, after sysexits.h and the shell's
//! conventions. README "Signals and exit codes" and docs/report.md list the same table.

use std::process::ExitCode;

/// Configuration and usage errors of the daemon, flags included, and an open-file limit
/// too low to run (EX_CONFIG). systemd's `RestartPreventExitStatus=78` keeps a broken
/// config from restarting in a loop.
pub const CONFIG: u8 = 78;
/// `report --check` found something above a threshold.
pub const FINDING: u8 = 1;
/// `report`'s command line is malformed: an unknown flag, a bad value. A command's usage
/// error, as clap and most CLIs exit; the daemon exits [`CONFIG`] for its own.
pub const USAGE: u8 = 2;
/// `report`: the output could not be written: stdout closed (EPIPE, as after `| head`) or
/// full (ENOSPC), or, under `--watch`, the terminal failed. EX_CANTCREAT, "cannot create
/// (user) output", the nearest sysexits code, since EX_IOERR (74) already says a poll failed.
pub const OUTPUT: u8 = 73;
/// `report`: a poll failed: no netlink socket, a dump error (EX_IOERR).
pub const SAMPLING: u8 = 74;
/// Shut down by a second SIGTERM, without draining (128 + 15).
pub const SIGTERM: u8 = 143;
/// Shut down by a second SIGINT, without draining (128 + 2).
pub const SIGINT: u8 = 130;

/// The shell's convention for a process ended by `signal`: 128 + its number.
pub fn signalled(signal: usize) -> ExitCode {
    ExitCode::from(u8::try_from(128 + signal).unwrap_or(u8::MAX))
}
