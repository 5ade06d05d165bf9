//! Configuration: embedded defaults, then an optional TOML file (`--config.file`), then
//! environment variables (`SOCKDIAG_KEY`, `SOCKDIAG_SECTION__KEY`), then command-line
//! flags; each layer overrides the one before.
//!
//! Everything is validated before the exporter starts, and every problem is reported at
//! once, each naming where the value came from (file path, environment variable or flag),
//! the key and the value received. Unknown keys are errors, so a typo never silently
//! falls back to a default. config.example.toml documents every key.
//!
//! Jobs by file: [`keys`] defines every key once (TOML name, field, parser, help, flag)
//! and from it the command-line [`Flags`]; [`key`] says what a key is; [`load`] layers
//! the sources and reads the merged tree key by key; [`validate`] turns one raw value
//! into a typed one; [`types`] holds the validated configuration and its defaults;
//! [`poller`] turns it into the poller's settings; [`error`] holds the problems.

mod collector_flags;
mod error;
mod key;
mod keys;
mod load;
mod poller;
mod types;
mod validate;

#[cfg(test)]
mod tests;

pub use collector_flags::CollectorFlags;
pub use error::{ConfigError, ConfigErrors};
pub use key::{Flag, Key};
pub use keys::{Flags, KEYS};
pub use load::env_name;
pub use types::{Config, ListenAddress, LogConfig, LogFormat, LogLevel, NetnsConfig, WebConfig};
pub use validate::{MAX_CONNECTIONS, MAX_POLL_INTERVAL, MAX_REQUESTS};

/// Default `web.listen_addresses`: every interface, port 10120.
pub const DEFAULT_LISTEN_ADDRESS: ListenAddress = ListenAddress::AnyInterface(10120);

const ENV_PREFIX: &str = "SOCKDIAG";
