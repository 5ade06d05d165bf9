//! The HTTP side: binding the listeners, the accept loop with its connection cap and
//! timeouts ([`server`]), the routes ([`routes`]: `/`, the telemetry path, `/-/healthy`,
//! `/-/ready`), exposition-format negotiation ([`negotiate`]), and the server's own
//! metrics ([`metrics`]). [`security`] is the tower layer that puts basic auth and the
//! configured response headers in front of the routes.
//!
//! Layering: this module imports [`crate::web_config`] (the TLS acceptor in force, whether
//! a request's credentials pass); `web_config` never imports this module.

mod activity;
mod metrics;
mod negotiate;
mod routes;
mod security;
mod server;

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::config::ListenAddress;

pub use metrics::HttpMetrics;
pub use negotiate::negotiate;
pub use routes::router;
pub use security::{Peer, SecurityLayer};
pub use server::{connection_limit, serve, stopped, Limits, Server};

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("server on {address} failed: {source}")]
    Serve {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds every configured address. `:PORT` binds the IPv6 wildcard (dual-stack) and falls
/// back to the IPv4 wildcard on hosts without IPv6.
pub async fn bind(addresses: &[ListenAddress]) -> Result<Vec<TcpListener>, HttpError> {
    let mut listeners = Vec::new();
    for address in addresses {
        let mut last_error = None;
        for candidate in address.candidates() {
            match TcpListener::bind(candidate).await {
                Ok(listener) => {
                    listeners.push(listener);
                    last_error = None;
                    break;
                }
                Err(source) => last_error = Some(source),
            }
        }
        if let Some(source) = last_error {
            return Err(HttpError::Bind {
                address: address.to_string(),
                source,
            });
        }
    }
    Ok(listeners)
}
