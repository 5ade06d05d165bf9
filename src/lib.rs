//! sockdiag_exporter: a Prometheus exporter for Linux TCP sockets.
//!
//! Data flow (see docs/architecture.md), one folder per step:
//! - [`source`]: one module per kernel source (inet_diag, /proc fds, counters, sysctls);
//! - [`fold`]: pure folds of those records into a namespace's figures;
//! - [`poll`]: the poll loops, one straight recipe per namespace, publishing an immutable
//!   [`snapshot::Snapshot`];
//! - [`metrics`]: encodes the current snapshot at scrape time; a scrape never touches
//!   netlink;
//! - [`view`]: the summary people read, `report` at a terminal and `/` in a browser;
//! - [`config`], [`http`] and [`web_config`]: configuration, the HTTP server, and its
//!   security (TLS, client certificates, basic auth) in the exporter-toolkit format.
#![forbid(unsafe_code)]

pub mod config;
pub mod fold;
pub mod http;
pub mod metrics;
pub mod poll;
pub mod snapshot;
pub mod source;
pub mod view;
pub mod web_config;
