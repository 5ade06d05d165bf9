//! sockdiag_exporter, the daemon: a Prometheus exporter for Linux sockets.
//!
//! Below it, the `sockdiag_core` crate holds the kernel sources, the folds, the snapshot,
//! the synchronous poll and the configuration; it is re-exported here under the same
//! paths. This crate adds what needs an async runtime or talks to people
//! (docs/architecture.md):
//! - [`poll`]: the poll loops, publishing an immutable [`snapshot::Snapshot`];
//! - [`metrics`]: encodes the current snapshot at scrape time; a scrape never touches
//!   netlink;
//! - [`view`]: the summary people read, `report` at a terminal and `/` in a browser;
//! - [`http`] and [`web_config`]: the HTTP server, and its security (TLS, client
//!   certificates, basic auth) in the exporter-toolkit format;
//! - [`exit`]: every exit code the binary returns;
//! - [`cli`] and [`build_info`]: the command line (shared with the man page generator)
//!   and what the binary was built from.
#![forbid(unsafe_code)]

pub use sockdiag_core::{collectors, config, fold, snapshot, source};

pub mod build_info;
pub mod cli;
pub mod exit;
pub mod http;
pub mod metrics;
pub mod poll;
pub mod view;
pub mod web_config;
