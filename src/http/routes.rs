//! The routes: the landing page `/` with its `/api/summary` ([`crate::view::web`]), the
//! telemetry path (default `/metrics`), `/-/healthy` and `/-/ready`.
//!
//! A scrape encodes the snapshot the poller last published and never touches netlink, so
//! its latency does not depend on the number of sockets. The exposition format follows
//! the Accept header: OpenMetrics when the client prefers it (Prometheus does), text
//! 0.0.4 otherwise (curl, promtool, browsers).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use tokio::sync::{watch, Semaphore};

use super::negotiate;
use crate::metrics::{self, Format};
use crate::snapshot::Published;

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    /// Live metrics of the server itself, encoded on every scrape after the cached body.
    live: Arc<Registry>,
    published: watch::Receiver<Arc<Published>>,
    /// Bounds concurrent scrapes (`web.max_requests`) past the cached body: the copies of
    /// the body being built and sent; `None` means unbounded.
    scrapes: Option<Arc<Semaphore>>,
    /// The last body encoded per format, with the publication it was encoded for.
    bodies: Arc<[BodyCache; 2]>,
    /// Per format, whether it was scraped since the last publication: those are encoded
    /// as soon as the next one lands ([`encode_on_publish`]).
    asked: Arc<[AtomicBool; 2]>,
}

impl AppState {
    fn new(
        registry: Arc<Registry>,
        live: Arc<Registry>,
        published: watch::Receiver<Arc<Published>>,
        max_requests: usize,
    ) -> AppState {
        AppState {
            registry,
            live,
            published,
            scrapes: (max_requests > 0).then(|| Arc::new(Semaphore::new(max_requests))),
            bodies: Arc::new([BodyCache::default(), BodyCache::default()]),
            asked: Arc::new([AtomicBool::new(false), AtomicBool::new(false)]),
        }
    }
}

/// The registry holds only the snapshot collector, so a body is a function of the
/// publication: scrapes between two polls share one encoding, and a burst of scrapes
/// waits on the lock for one encoder instead of each encoding the same snapshot.
type BodyCache = tokio::sync::Mutex<Option<(Arc<Published>, Bytes)>>;

/// Builds the router. `registry` holds the snapshot collector alone (its body is cached
/// per publication); `live` the server's own counters. `max_requests` 0 means no limit.
pub fn router(
    registry: Arc<Registry>,
    live: Arc<Registry>,
    published: watch::Receiver<Arc<Published>>,
    telemetry_path: &str,
    max_requests: usize,
) -> Router {
    let state = AppState::new(registry, live, published, max_requests);
    tokio::spawn(encode_on_publish(state.clone()));
    let views = crate::view::web::routes(state.published.clone(), telemetry_path);
    Router::new()
        .merge(views)
        .route(telemetry_path, get(scrape))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .fallback(not_found)
        .with_state(state)
}

async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let format = negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    state.asked[format as usize].store(true, Ordering::Relaxed);
    let published = Arc::clone(&state.published.borrow());
    let body = snapshot_body(&state, format, published).await;
    // Taken once the shared body is in hand: scrapes waiting for another one's encoding
    // of the same poll hold no memory of their own, and on a busy server (every task
    // waits its turn) counting them turned scrapers away with 503 after each poll.
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
    match (body, live_body(&state.live, format)) {
        (Ok(body), Ok(live)) => {
            let body = axum::body::Body::new(join(&body, live, format));
            ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
        }
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(%error, "encoding metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            )
                .into_response()
        }
    }
}

/// Encodes each publication as soon as it lands, in the formats scraped since the one
/// before, so that no scrape waits for the encoding. With polls back to back and 32
/// scrapers, the first scrape after each publication encoded the body while the other 31
/// waited on the cache's lock: scrape p99 at 100k was 9-12 ms with polls every 100 ms,
/// 5 ms with polls off, on the same loaded machine. Ends when the poller's sender is gone.
async fn encode_on_publish(state: AppState) {
    let mut published = state.published.clone();
    loop {
        match published.changed().await {
            Ok(()) => {}
            // The poller's sender is gone: the daemon is stopping.
            Err(_closed) => return,
        }
        let current = Arc::clone(&published.borrow_and_update());
        for format in [Format::OpenMetrics, Format::Text004] {
            if !state.asked[format as usize].swap(false, Ordering::Relaxed) {
                continue;
            }
            // A failure is the scrape's to report: it encodes again and answers 500.
            if let Err(error) = snapshot_body(&state, format, Arc::clone(&current)).await {
                tracing::debug!(%error, "encoding a new publication failed");
            }
        }
    }
}

/// The snapshot's body, encoded once per publication and format.
async fn snapshot_body(
    state: &AppState,
    format: Format,
    published: Arc<Published>,
) -> Result<Bytes, std::fmt::Error> {
    let cache = &state.bodies[format as usize];
    // Only a scrape that finds another encoding this publication waits. An uncontended
    // `lock().await` still yields when the task has spent its scheduling budget, and on a
    // busy server the parked scrape held its `web.max_requests` permit meanwhile: 500
    // keep-alive scrapers made a normal scrape fail with 503.
    let mut cached = match cache.try_lock() {
        Ok(cached) => cached,
        Err(_) => cache.lock().await,
    };
    if let Some((encoded_for, body)) = cached.as_ref() {
        if Arc::ptr_eq(encoded_for, &published) {
            return Ok(body.clone());
        }
    }
    let body = Bytes::from(metrics::encode(&state.registry, format)?);
    *cached = Some((published, body.clone()));
    Ok(body)
}

/// The server's own families, without the OpenMetrics `# EOF`.
fn live_body(live: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(4096);
    prometheus_client::encoding::text::encode_registry(&mut out, live)?;
    Ok(match format {
        Format::OpenMetrics => out,
        Format::Text004 => metrics::to_text_004(&out),
    })
}

/// The snapshot's families, then the live ones, then `# EOF` for OpenMetrics.
fn join(snapshot: &Bytes, live: String, format: Format) -> Parts {
    const EOF: &[u8] = b"# EOF\n";
    let head = match format {
        Format::OpenMetrics if snapshot.ends_with(EOF) => {
            snapshot.slice(..snapshot.len() - EOF.len())
        }
        _ => snapshot.clone(),
    };
    let mut parts = Parts::default();
    parts.push(head);
    parts.push(Bytes::from(live));
    if format == Format::OpenMetrics {
        parts.push(Bytes::from_static(EOF));
    }
    parts
}

/// A scrape's body as the parts it is made of: the cached snapshot body, shared by every
/// scrape of the publication (a reference count, not a copy), and this scrape's live
/// families. They go out as successive frames, which hyper writes with one vectored
/// write, with a Content-Length from the exact size. Joined into one buffer, 32
/// concurrent scrapes held 32 copies of a 230 to 370 kB body and copied each once.
#[derive(Debug, Default)]
struct Parts(std::collections::VecDeque<Bytes>);

impl Parts {
    fn push(&mut self, part: Bytes) {
        if !part.is_empty() {
            self.0.push_back(part);
        }
    }
}

impl http_body::Body for Parts {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(
            self.get_mut()
                .0
                .pop_front()
                .map(|part| Ok(http_body::Frame::data(part))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.0.iter().map(|part| part.len() as u64).sum())
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
        app_with(0)
    }

    fn app_with(max_requests: usize) -> (Router, watch::Sender<Arc<Published>>) {
        let (tx, rx) = crate::poll::channel();
        let mut registry = Registry::default();
        SnapshotCollector::register(&mut registry, rx.clone());
        let mut live = Registry::default();
        crate::http::HttpMetrics::register(&mut live);
        (
            router(
                Arc::new(registry),
                Arc::new(live),
                rx,
                "/metrics",
                max_requests,
            ),
            tx,
        )
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
    async fn live_server_metrics_follow_the_snapshot_before_one_eof() {
        let (router, tx) = app();
        publish(&tx);
        let (_, _, om) = get(&router, "/metrics", Some(PROMETHEUS_2_42_ACCEPT)).await;
        assert_eq!(om.matches("# EOF").count(), 1, "{om}");
        assert!(om.ends_with("\n# EOF\n"), "{om}");
        let live = om
            .find("\nsockdiag_http_connections_open 0\n")
            .expect("live gauge");
        let snapshot = om
            .find("\nsockdiag_poll_errors_total{")
            .expect("snapshot counter");
        assert!(
            snapshot < live,
            "live families come after the snapshot's: {om}"
        );

        let (_, _, text) = get(&router, "/metrics", None).await;
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            text.contains("# TYPE sockdiag_http_accept_errors_total counter\nsockdiag_http_accept_errors_total 0\n"),
            "{text}"
        );
    }

    /// The body goes out in parts (the shared cached body, then the live families); hyper
    /// takes its Content-Length from the exact size hint, which must add up.
    #[tokio::test]
    async fn body_in_parts_has_the_exact_length_of_what_it_sends() {
        use axum::body::HttpBody;
        let (router, tx) = app();
        publish(&tx);
        for accept in [Some(PROMETHEUS_2_42_ACCEPT), None] {
            let mut request = Request::get("/metrics");
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT, accept);
            }
            let response = router
                .clone()
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let hint = response.body().size_hint().exact();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(hint, Some(body.len() as u64), "{accept:?}");
            let text = String::from_utf8(body.to_vec()).unwrap();
            assert_eq!(text.matches("# EOF").count(), usize::from(accept.is_some()));
            assert!(
                text.contains("\nsockdiag_http_connections_open 0\n"),
                "{text}"
            );
        }
    }

    /// A format scraped since the last publication is encoded when the next one lands,
    /// before any scrape asks; a format nobody scraped is not.
    #[tokio::test]
    async fn a_new_publication_is_encoded_before_the_next_scrape() {
        let (tx, rx) = crate::poll::channel();
        let mut registry = Registry::default();
        SnapshotCollector::register(&mut registry, rx.clone());
        let state = AppState::new(Arc::new(registry), Arc::default(), rx, 0);
        let encoder = tokio::spawn(encode_on_publish(state.clone()));
        let cached = |format: Format| {
            state.bodies[format as usize]
                .try_lock()
                .unwrap()
                .as_ref()
                .map(|(for_, body)| (Arc::clone(for_), body.clone()))
        };
        state.asked[Format::OpenMetrics as usize].store(true, Ordering::Relaxed);
        publish(&tx);
        let current = Arc::clone(&tx.borrow());
        // The encoder runs when this task yields (a current-thread runtime).
        for _ in 0..10 {
            if cached(Format::OpenMetrics).is_some() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let (encoded_for, body) = cached(Format::OpenMetrics).expect("encoded on publication");
        assert!(Arc::ptr_eq(&encoded_for, &current));
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains(
                "sockdiag_tcp_sockets{netns=\"host\",family=\"ipv6\",state=\"close_wait\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            cached(Format::Text004).is_none(),
            "text 0.0.4 was not scraped"
        );
        assert!(!state.asked[Format::OpenMetrics as usize].load(Ordering::Relaxed));
        drop(tx);
        encoder.await.unwrap();
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

    /// On a busy runtime a task runs out of its scheduling budget; a scrape polled then
    /// must still finish in that poll, not park holding a `web.max_requests` permit.
    #[tokio::test]
    async fn scrape_parked_by_the_scheduler_held_its_permit_and_others_got_503() {
        let (router, tx) = app_with(1);
        publish(&tx);
        let _ = get(&router, "/metrics", None).await;
        let (spend, mut budget) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..1024 {
            spend.send(()).unwrap();
        }
        let request = Request::get("/metrics").body(Body::empty()).unwrap();
        let mut first = std::pin::pin!(router.clone().oneshot(request));
        let parked = std::future::poll_fn(|cx| {
            // Each receive spends budget; Pending once it is gone.
            let spent = (0..1024).find(|_| budget.poll_recv(cx).is_pending());
            assert!(spent.is_some(), "the budget was never exhausted");
            std::task::Poll::Ready(std::future::Future::poll(first.as_mut(), cx).is_pending())
        })
        .await;
        let (status, _, body) = get(&router, "/metrics", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(!parked, "the scrape parked with its permit");
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
