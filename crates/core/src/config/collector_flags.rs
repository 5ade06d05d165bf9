//! The `--collector.<name>` / `--no-collector.<name>` pair of every optional collector,
//! made from [`CollectorKind::ALL`].
//!
//! Written by hand rather than derived: the derive needs a field per flag, and a
//! `macro_rules!` table cannot make the two field names (`unix`, `no_unix`) from one row.
//! Over the table, one row per collector stays the only definition. As in node_exporter,
//! the last of the pair on the command line wins (clap's `overrides_with`).

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use crate::collectors::CollectorKind;

/// The collectors turned on or off on the command line; `None` where neither flag was
/// given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectorFlags([Option<bool>; CollectorKind::COUNT]);

impl CollectorFlags {
    /// What the command line says of `kind`, if anything.
    pub fn get(&self, kind: CollectorKind) -> Option<bool> {
        self.0[kind as usize]
    }

    /// As if `--collector.NAME` (`on`) or `--no-collector.NAME` had been given last.
    pub fn set(&mut self, kind: CollectorKind, on: bool) {
        self.0[kind as usize] = Some(on);
    }
}

impl FromArgMatches for CollectorFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<CollectorFlags, clap::Error> {
        let mut flags = CollectorFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for &kind in CollectorKind::ALL {
            // overrides_with leaves at most one of the pair in the matches: the last.
            if matches.get_flag(kind.flag()) {
                self.set(kind, true);
            } else if matches.get_flag(kind.no_flag()) {
                self.set(kind, false);
            }
        }
        Ok(())
    }
}

impl Args for CollectorFlags {
    fn augment_args(command: Command) -> Command {
        CollectorKind::ALL.iter().fold(command, |command, &kind| {
            let state = if kind.default_enabled() { "on" } else { "off" };
            command
                .arg(
                    Arg::new(kind.flag())
                        .long(kind.flag())
                        .action(ArgAction::SetTrue)
                        .overrides_with(kind.no_flag())
                        .help(format!(
                            "Turn on the {} collector ({state} by default): {}. \
                             Overrides `{}`",
                            kind.label(),
                            kind.help(),
                            kind.key()
                        )),
                )
                .arg(
                    Arg::new(kind.no_flag())
                        .long(kind.no_flag())
                        .action(ArgAction::SetTrue)
                        .overrides_with(kind.flag())
                        .help(format!("Turn off the {} collector", kind.label())),
                )
        })
    }

    fn augment_args_for_update(command: Command) -> Command {
        CollectorFlags::augment_args(command)
    }
}
