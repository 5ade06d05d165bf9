//! The landing page `/` and its data, `/api/summary`: the summary of the snapshot the
//! poller last published, with growth since the poll before it. Neither touches netlink.
//!
//! The page is one HTML document with its CSS and JavaScript inline (it works offline and
//! behind any proxy); it fetches `/api/summary` every 2 s and builds its tables with
//! `textContent` only, so a process name can never inject markup. Both routes are added
//! to the exporter's router with [`routes`] and sit behind whatever layers it gets.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use super::findings::Thresholds;
use super::summary::{Filter, Summary};
use crate::build_info::BuildInfo;
use crate::snapshot::Published;

const PAGE: &str = include_str!("page.html");

#[derive(Clone)]
struct PageState {
    published: watch::Receiver<Arc<Published>>,
    page: Arc<String>,
    /// The last summary encoded, with the publication it was built from: refreshes
    /// between two polls share one encoding.
    summary: Arc<Cached>,
}

/// A body and the publication it was built from.
type Cached = tokio::sync::Mutex<Option<(Arc<Published>, Bytes)>>;

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /` and `GET /api/summary`, for merging into the exporter's router.
pub fn routes<S: Clone + Send + Sync + 'static>(
    published: watch::Receiver<Arc<Published>>,
    telemetry_path: &str,
) -> Router<S> {
    let page = PAGE
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
        .replace("{{BUILD}}", &escape_html(&build_line(&BuildInfo::CURRENT)))
        .replace("{{TELEMETRY_PATH}}", &escape_html(telemetry_path));
    let state = PageState {
        published,
        page: Arc::new(page),
        summary: Arc::default(),
    };
    Router::new()
        .route("/", get(landing))
        .route("/api/summary", get(api_summary))
        .with_state(state)
}

/// The build facts of `sockdiag_build_info`, as one line of the landing page.
fn build_line(build: &BuildInfo) -> String {
    format!(
        "version {}, revision {} (branch {}), built {} with rustc {} for {}",
        build.version,
        build.revision,
        build.branch,
        build.build_date,
        build.rustc_version,
        build.target
    )
}

async fn landing(State(state): State<PageState>) -> Html<String> {
    Html(String::clone(&state.page))
}

/// The summary of the latest publication, as JSON (schema in docs/report.md); 503 until
/// the first poll has landed.
pub fn summary_of(published: &Published) -> Option<Summary> {
    let latest = published.latest.as_deref()?;
    Some(Summary::build(
        published.previous.as_deref(),
        latest,
        Some(&published.errors_total),
        &Filter::default(),
        &Thresholds::default(),
    ))
}

async fn api_summary(State(state): State<PageState>) -> Response {
    let published = Arc::clone(&state.published.borrow());
    let mut cached = state.summary.lock().await;
    let body = match cached.as_ref() {
        Some((built_for, body)) if Arc::ptr_eq(built_for, &published) => body.clone(),
        _ => {
            let Some(summary) = summary_of(&published) else {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "waiting for the first poll\n",
                )
                    .into_response();
            };
            let body = match serde_json::to_vec(&summary) {
                Ok(json) => Bytes::from(json),
                Err(error) => {
                    tracing::error!(%error, "encoding the summary failed");
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "encoding the summary failed\n",
                    )
                        .into_response();
                }
            };
            *cached = Some((published, body.clone()));
            body
        }
    };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Snapshot;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use std::time::{Duration, SystemTime};
    use tower::ServiceExt;

    async fn get(router: &Router, path: &str) -> (StatusCode, String) {
        let response = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn at(seconds: u64) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            completed_at: SystemTime::UNIX_EPOCH + Duration::from_secs(seconds),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn summary_is_503_until_the_first_poll_then_follows_each_publication() {
        let (tx, rx) = crate::poll::channel();
        let router: Router = routes(rx, "/m\"etrics");
        assert_eq!(
            get(&router, "/api/summary").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "waiting for the first poll\n".to_string()
            )
        );
        let (status, page) = get(&router, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("<a href=\"/m&quot;etrics\">"), "escaped");
        assert!(!page.contains("{{"), "every placeholder filled");

        tx.send_modify(|p| {
            let mut next = (**p).clone();
            next.latest = Some(at(100));
            next.errors_total[1] = 3;
            *p = Arc::new(next);
        });
        let (status, body) = get(&router, "/api/summary").await;
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["window_seconds"], serde_json::Value::Null);
        assert_eq!(json["poll"]["errors_total"]["dump"], 3);
        assert_eq!(json["headline"], "nothing looks wrong");

        tx.send_modify(|p| {
            let mut next = (**p).clone();
            next.previous = next.latest.replace(at(115));
            *p = Arc::new(next);
        });
        let (_, body) = get(&router, "/api/summary").await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["window_seconds"], 15.0, "growth since the poll before");
    }

    #[tokio::test]
    async fn landing_page_shows_every_build_fact() {
        let (_tx, rx) = crate::poll::channel();
        let router: Router = routes(rx, "/metrics");
        let (_, page) = get(&router, "/").await;
        let build = BuildInfo::CURRENT;
        let footer = format!(
            "<footer id=\"build\">version {}, revision {} (branch {}), built {} with rustc {} for {}</footer>",
            build.version,
            build.revision,
            build.branch,
            build.build_date,
            build.rustc_version,
            build.target
        );
        assert!(page.contains(&footer), "{footer} not in the page");
    }
}
