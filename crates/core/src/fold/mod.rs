//! Turns the records of the sources into one namespace's figures.
//!
//! Everything here is pure: records and owner answers in, figures out, no I/O and no
//! clock (the poll passes ages and times in). One module per fold:
//! - [`anomaly`]: what counts as an anomaly, which the caps rank first and keep beyond
//!   their budget;
//! - [`tcp`]: inet_diag records into states, ports, processes, listeners, exhaustion;
//! - [`netns`]: the namespace cap: which namespaces keep their label;
//! - [`listen`]: the listener entries of the folds and the fast listener sampler's peaks;
//! - [`close_wait`]: CLOSE_WAIT ages by socket cookie, kept between polls;
//! - [`owners`]: the owner lookup the folds ask, and its answers;
//! - [`settings`]: the caps and thresholds;
//! - [`shrink`]: tables kept between polls give memory back on low water;
//! - [`top`]: the top-K tables with `other`;
//! - [`unix`]: unix_diag records into type and state counts and listeners;
//! - [`udp`]: udp_diag records into queues per port and process, and drop counters kept
//!   between polls ([`udp::drops`]).

pub mod anomaly;
pub mod close_wait;
pub mod listen;
pub mod netns;
pub mod owners;
pub mod settings;
pub mod shrink;
pub mod tcp;
pub mod top;
pub mod udp;
pub mod unix;

pub use settings::{NetnsCaps, PortFilter, Settings};
