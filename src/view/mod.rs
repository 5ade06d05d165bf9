//! What a person reads: the `report` subcommand at a terminal and the landing page at `/`.
//!
//! Both show one [`Summary`], built by a pure function from one or two [`Snapshot`]s
//! (the second gives growth per second): findings in plain words, states per namespace,
//! who holds CLOSE_WAIT, listeners by queue fill, TIME_WAIT and ephemeral ports, top
//! peers. The rows are the snapshot's, so they carry the same caps and the same label
//! values as /metrics.
//! - [`rows`]: the summary's rows and findings, as the versioned JSON schema has them;
//! - [`summary`]: the pure builder and filters;
//! - [`findings`]: what looks wrong, against [`Thresholds`];
//! - [`table`]: the one place terminal text is made safe ([`table::shown`] escapes control
//!   characters) and fitted to a width; [`terminal`]: the summary as lines of it;
//! - [`report`] and [`watch`]: the subcommand, its samples and exit codes, `--watch`;
//!   [`json`]: `report --json`;
//! - [`web`]: `/` and `/api/summary`, served from the current snapshot.
//!
//! Imports go one way, no loop: `report` → `watch` → `terminal` → `table`; `terminal`,
//! `web` → `summary` → `findings` → `rows`.
//!
//! [`Snapshot`]: crate::snapshot::Snapshot

pub mod findings;
pub mod json;
pub mod report;
pub mod rows;
pub mod summary;
pub mod table;
pub mod terminal;
#[cfg(test)]
mod tests;
pub mod watch;
pub mod web;

pub use findings::{Finding, FindingKind, Thresholds};
pub use report::ReportArgs;
pub use summary::{Filter, Summary, SCHEMA_VERSION};
