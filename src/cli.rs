//! The command line: the exporter's flags and its subcommands. It lives in the library so
//! that the man page generator (crates/xtask) renders the very definitions `--help` prints.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::build_info::LONG_VERSION;
use crate::config::Flags;
use crate::view;

/// The exporter's flags, and its subcommands: with none it runs as the daemon.
#[derive(Debug, Parser)]
#[command(name = "sockdiag_exporter", version, long_version = LONG_VERSION, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub flags: Flags,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Two polls a few seconds apart, printed as tables (or JSON): what looks wrong, who
    /// holds CLOSE_WAIT, listeners by queue fill, TIME_WAIT, ephemeral ports, peers.
    Report(view::ReportArgs),
}

/// The clap command as the binary parses it: the flags that shape a poll also apply
/// after `report`.
pub fn command() -> clap::Command {
    let mut command = Cli::command();
    for flag in ["config_file", "namespaces", "log_level", "log_format"] {
        command = command.mut_arg(flag, |arg| arg.global(true));
    }
    command
}

/// Parses the process's command line.
pub fn parse() -> Result<Cli, clap::Error> {
    let matches = command().try_get_matches()?;
    Cli::from_arg_matches(&matches)
}
