//! Configuration problems, each naming where the value came from, the key and the value.

use std::fmt;

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read as a file.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    /// The layers could not be merged (e.g. TOML syntax).
    #[error("{0}")]
    Load(String),
    /// A `SOCKDIAG_` environment variable whose name or value is not UTF-8.
    #[error("environment variable {name}: not valid UTF-8: {value}")]
    NotUtf8 { name: String, value: String },
    #[error("{origin}: unknown key `{key}`")]
    UnknownKey { origin: String, key: String },
    #[error("{origin}: `{key}` = {value}: {reason}")]
    Invalid {
        origin: String,
        key: String,
        value: String,
        reason: String,
    },
}

/// Every problem found, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
