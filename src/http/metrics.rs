//! The HTTP server's own metrics: connections open, refused and timed out, failed
//! accepts, TLS handshakes and authentication failures (401, 429 and refused SANs). Live counters, registered in a
//! registry of their own so that the snapshot's encoded body can stay cached.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct Reason {
    pub reason: &'static str,
}

/// Cheap to clone: every metric is a shared handle.
#[derive(Debug, Clone, Default)]
pub struct HttpMetrics {
    pub(crate) open: Gauge,
    pub(crate) limit: Gauge,
    pub(crate) refused: Counter,
    pub(crate) accept_errors: Counter,
    pub(crate) closed: Family<Reason, Counter>,
    pub(crate) tls_handshake_errors: Counter,
    pub(crate) auth_failures: Family<Reason, Counter>,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> HttpMetrics {
        let metrics = HttpMetrics::default();
        registry.register(
            "sockdiag_http_connections_open",
            "HTTP connections open now, of at most sockdiag_http_connections_max.",
            metrics.open.clone(),
        );
        registry.register(
            "sockdiag_http_connections_max",
            "Open HTTP connections allowed: web.max_connections, lowered to keep file descriptors free for polls under a low RLIMIT_NOFILE.",
            metrics.limit.clone(),
        );
        registry.register(
            "sockdiag_http_connections_refused",
            "HTTP connections closed right after accept: sockdiag_http_connections_max were open, each with a request in flight.",
            metrics.refused.clone(),
        );
        registry.register(
            "sockdiag_http_accept_errors",
            "Failed accept() calls on the HTTP listeners, e.g. out of file descriptors (EMFILE).",
            metrics.accept_errors.clone(),
        );
        registry.register(
            "sockdiag_http_connections_closed",
            "HTTP connections closed by the exporter: reason=\"header_timeout\" when a request header (or TLS handshake) took longer than web.header_read_timeout, \"idle_timeout\" after web.idle_timeout between requests, \"evicted\" to make room for a new connection at sockdiag_http_connections_max.",
            metrics.closed.clone(),
        );
        registry.register(
            "sockdiag_http_tls_handshake_errors",
            "TLS handshakes that failed: no or a wrong client certificate, a protocol version or cipher refused, plain HTTP on the TLS port.",
            metrics.tls_handshake_errors.clone(),
        );
        registry.register(
            "sockdiag_http_auth_failures",
            "Requests answered 401, reason=\"missing\" (no credentials) or \"wrong\" (bad user or password); answered 429, reason=\"throttled\" (the client address already had 8 credential checks waiting); and connections closed after the TLS handshake, reason=\"san\" (client certificate SANs not in client_allowed_sans).",
            metrics.auth_failures.clone(),
        );
        metrics
    }
}
