//! The HTTP server: the telemetry path (default `/metrics`), `/-/healthy`, `/-/ready`, and
//! the landing page `/` with its `/api/summary` ([`crate::view::web`]).
//!
//! A scrape encodes the snapshot the poller last published and never touches netlink, so
//! its latency does not depend on the number of sockets. The exposition format follows
//! the Accept header: OpenMetrics when the client prefers it (Prometheus does), text
//! 0.0.4 otherwise (curl, promtool, browsers).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::config::ListenAddress;
use crate::metrics::{self, Format};
use crate::snapshot::Published;

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

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    published: watch::Receiver<Arc<Published>>,
    /// Bounds concurrent scrapes (`web.max_requests`); `None` means unbounded.
    scrapes: Option<Arc<Semaphore>>,
    /// The last body encoded per format, with the publication it was encoded for.
    bodies: Arc<[BodyCache; 2]>,
}

/// The registry holds only the snapshot collector, so a body is a function of the
/// publication: scrapes between two polls share one encoding, and a burst of scrapes
/// waits on the lock for one encoder instead of each encoding the same snapshot.
type BodyCache = tokio::sync::Mutex<Option<(Arc<Published>, Bytes)>>;

/// Builds the router. `max_requests` 0 means no limit.
pub fn router(
    registry: Arc<Registry>,
    published: watch::Receiver<Arc<Published>>,
    telemetry_path: &str,
    max_requests: usize,
) -> Router {
    let state = AppState {
        registry,
        published,
        scrapes: (max_requests > 0).then(|| Arc::new(Semaphore::new(max_requests))),
        bodies: Arc::new([BodyCache::default(), BodyCache::default()]),
    };
    let views = crate::view::web::routes(state.published.clone(), telemetry_path);
    Router::new()
        .merge(views)
        .route(telemetry_path, get(scrape))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .fallback(not_found)
        .with_state(state)
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

/// Serves `router` on `listener` until `shutdown` turns true, then drains in-flight
/// requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), HttpError> {
    let address = listener.local_addr().map_err(|source| HttpError::Serve {
        address: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
        .map_err(|source| HttpError::Serve { address, source })
}

/// Picks the exposition format from an Accept header: OpenMetrics when its q-value is
/// positive and at least that of text/plain (or a wildcard matching it).
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text004;
    };
    let mut openmetrics = 0.0f32;
    let mut text = 0.0f32;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Text004
    }
}

async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let _permit = match &state.scrapes {
        Some(semaphore) => match Arc::clone(semaphore).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many concurrent scrapes (web.max_requests)\n",
                )
                    .into_response()
            }
        },
        None => None,
    };
    let format = negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let published = Arc::clone(&state.published.borrow());
    let mut cached = state.bodies[format as usize].lock().await;
    if let Some((encoded_for, body)) = cached.as_ref() {
        if Arc::ptr_eq(encoded_for, &published) {
            return (
                [(header::CONTENT_TYPE, format.content_type())],
                body.clone(),
            )
                .into_response();
        }
    }
    match metrics::encode(&state.registry, format) {
        Ok(body) => {
            let body = Bytes::from(body);
            *cached = Some((published, body.clone()));
            ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
        }
        Err(error) => {
            tracing::error!(%error, "encoding metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            )
                .into_response()
        }
    }
}

async fn healthy() -> &'static str {
    "OK\n"
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.published.borrow().ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first poll\n",
        )
            .into_response()
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::SnapshotCollector;
    use crate::snapshot::{NetnsFigures, Snapshot};
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use std::time::{Duration, SystemTime};
    use tower::ServiceExt;

    fn app() -> (Router, watch::Sender<Arc<Published>>) {
        let (tx, rx) = crate::poll::channel();
        let mut registry = Registry::default();
        SnapshotCollector::register(&mut registry, rx.clone());
        (router(Arc::new(registry), rx, "/metrics", 0), tx)
    }

    async fn get(
        router: &Router,
        path: &str,
        accept: Option<&str>,
    ) -> (StatusCode, String, String) {
        let mut request = Request::get(path);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    fn publish(tx: &watch::Sender<Arc<Published>>) {
        tx.send_modify(|p| {
            let mut next = (**p).clone();
            next.latest = Some(Arc::new(Snapshot {
                namespaces: vec![NetnsFigures {
                    netns: Arc::from("host"),
                    full: true,
                    ..Default::default()
                }],
                poll_duration: Duration::from_millis(1),
                completed_at: SystemTime::now(),
                ..Default::default()
            }));
            *p = Arc::new(next);
        });
    }

    const PROMETHEUS_2_42_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(Some(PROMETHEUS_2_42_ACCEPT)), Format::OpenMetrics);
        assert_eq!(negotiate(Some("*/*")), Format::Text004);
        assert_eq!(negotiate(None), Format::Text004);
        assert_eq!(negotiate(Some("text/plain;version=0.0.4")), Format::Text004);
        assert_eq!(
            negotiate(Some("application/openmetrics-text; version=1.0.0")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0,text/plain")),
            Format::Text004
        );
        assert_eq!(
            negotiate(Some(
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
            )),
            Format::Text004
        );
    }

    #[tokio::test]
    async fn content_type_follows_accept() {
        let (router, tx) = app();
        publish(&tx);
        let (status, content_type, body) =
            get(&router, "/metrics", Some(PROMETHEUS_2_42_ACCEPT)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            content_type,
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert!(
            body.contains("# TYPE sockdiag_poll_errors counter\n"),
            "{body}"
        );

        let (status, content_type, body) = get(&router, "/metrics", Some("*/*")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert!(!body.contains("# EOF"), "{body}");
        assert!(
            body.contains("# TYPE sockdiag_poll_errors_total counter\n"),
            "{body}"
        );
        assert!(
            body.contains(
                "sockdiag_tcp_sockets{netns=\"host\",family=\"ipv6\",state=\"close_wait\"} 0\n"
            ),
            "{body}"
        );
    }

    #[tokio::test]
    async fn cached_body_follows_each_publication() {
        let (router, tx) = app();
        let (_, _, before) = get(&router, "/metrics", None).await;
        assert!(!before.contains("sockdiag_tcp_sockets{"), "{before}");
        publish(&tx);
        let (_, _, after) = get(&router, "/metrics", None).await;
        assert!(
            after.contains("sockdiag_tcp_sockets{"),
            "a new publication is encoded anew: {after}"
        );
        let (_, _, again) = get(&router, "/metrics", None).await;
        assert_eq!(after, again);
        tx.send_modify(|p| {
            let mut next = (**p).clone();
            next.errors_total[0] = 7;
            *p = Arc::new(next);
        });
        let (_, _, failed) = get(&router, "/metrics", None).await;
        assert!(
            failed.contains("sockdiag_poll_errors_total{stage=\"open\"} 7\n"),
            "{failed}"
        );
    }

    #[tokio::test]
    async fn ready_is_503_until_the_first_poll() {
        let (router, tx) = app();
        let (status, _, body) = get(&router, "/-/ready", None).await;
        assert_eq!(
            (status, body.as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "waiting for the first poll\n"
            )
        );
        let (status, _, _) = get(&router, "/-/healthy", None).await;
        assert_eq!(status, StatusCode::OK);
        publish(&tx);
        let (status, _, body) = get(&router, "/-/ready", None).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));
    }

    #[tokio::test]
    async fn unknown_paths_are_404_and_landing_links_metrics() {
        let (router, _tx) = app();
        let (status, _, _) = get(&router, "/nope", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = get(&router, "/metricsx", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, content_type, body) = get(&router, "/", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/html"));
        assert!(body.contains("<a href=\"/metrics\">/metrics</a>"), "{body}");
        assert!(body.contains(env!("CARGO_PKG_VERSION")));
    }

    #[tokio::test]
    async fn before_the_first_poll_only_health_families_are_served() {
        let (router, _tx) = app();
        let (status, _, body) = get(&router, "/metrics", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("sockdiag_poll_errors_total{stage=\"dump\"} 0\n"),
            "{body}"
        );
        assert!(!body.contains("sockdiag_tcp_sockets{"), "{body}");
    }
}
