//! sockdiag_exporter's core: everything that turns the kernel's answers into one immutable
//! [`snapshot::Snapshot`], synchronously, with no async runtime and no HTTP.
//!
//! One folder per step of the data path (docs/architecture.md):
//! - [`source`]: one module per kernel source (sock_diag, /proc fds, counters, sysctls,
//!   cgroups, runtime state), each a pure decoder beside a thin, bounded reader;
//! - [`fold`]: pure folds of those records into a namespace's figures, and the caps;
//! - [`snapshot`]: what a poll publishes;
//! - [`poll`]: the synchronous recipe: discovery, each namespace's dumps and folds, owners;
//! - [`config`]: the configuration, its defaults and its conversion into the poll's
//!   settings;
//! - [`collectors`]: the optional collectors and their toggles;
//! - `label`: `label_enum!`, how every label enum is written (one table of hand-written
//!   values), below all of them.
//!
//! The daemon crate (`sockdiag_exporter`) depends on this one, never the other way: the
//! compiler enforces the layering.
#![forbid(unsafe_code)]

pub mod collectors;
pub mod config;
pub mod fold;
mod label;
pub mod poll;
pub mod snapshot;
pub mod source;
