//! `--web.config.file`: TLS, client certificates, basic auth and response headers, in the
//! YAML format of Prometheus' exporter-toolkit, so that the file a user already has for
//! node_exporter works here unchanged.
//!
//! [`schema`] is the file's shape, [`files`] reads it and the files it names within a
//! size limit, [`load`] validates it into an [`Active`] config (every error names the
//! file, the key and the value), [`tls`] builds the rustls acceptor and checks client
//! certificates, [`auth`] checks basic-auth credentials with a bounded cache of verified
//! ones, [`verify`] runs the bcrypt checks, fair between clients, and [`reload`] re-reads
//! the file and the files it names when they change, keeping the previous good config
//! when the new one is broken.
//!
//! Layering: `crate::http` imports this module (the TLS acceptor, [`WebSecurity::admit`]);
//! this module never imports `crate::http`. What a refusal looks like on the wire (401,
//! 429, headers) and how it is counted belong to the HTTP side.

mod auth;
mod files;
mod load;
mod reload;
mod schema;
mod tls;
mod verify;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::http::{HeaderName, HeaderValue};

pub use auth::{Auth, AuthFailure, CACHE_CAPACITY, MAX_COST};
pub use load::{load, parse};
pub use reload::{WebConfigMetrics, WebSecurity};
pub use tls::{Tls, CIPHER_SUITES};
pub use verify::QUEUE_PER_CLIENT;

/// One problem in the web config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebConfigError {
    #[error("{file}: cannot read: {reason}")]
    Read { file: PathBuf, reason: String },
    #[error("{file}: {reason}")]
    Parse { file: PathBuf, reason: String },
    #[error("{file}: `{key}` = {value}: {reason}")]
    Invalid {
        file: PathBuf,
        key: String,
        value: String,
        reason: String,
    },
}

/// A validated web config, ready to serve with.
pub struct Active {
    pub tls: Option<Arc<Tls>>,
    pub auth: Option<Arc<Auth>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Files whose change triggers a reload: the config file and the files it names.
    pub watched: Vec<PathBuf>,
}

impl fmt::Debug for Active {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Active")
            .field("tls", &self.tls.is_some())
            .field("users", &self.auth.as_ref().map_or(0, |a| a.users()))
            .field("headers", &self.headers)
            .finish()
    }
}

/// Shared, swappable: readers take the current `Arc<Active>` and keep it for as long as
/// they need, so a reload never changes a handshake or request already under way.
pub(crate) type Current = Arc<RwLock<Arc<Active>>>;
