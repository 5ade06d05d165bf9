//! sockdiag_exporter: a Prometheus exporter for Linux TCP sockets.
//!
//! Data flow (see docs/architecture.md): the [`poller`] dumps every TCP socket of the
//! network namespace through netlink sock_diag ([`sock_diag`]), folds each record as it is
//! read into an [`aggregate::Aggregator`], and publishes an immutable [`snapshot::Snapshot`].
//! The [`http`] server encodes the current snapshot through [`metrics`]; a scrape never
//! touches netlink.
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod close_wait;
pub mod config;
pub mod http;
pub mod metrics;
pub mod poller;
pub mod proc_index;
pub mod proc_net_snmp;
pub mod proc_sys_net;
pub mod snapshot;
pub mod sock_diag;
pub mod web_config;
