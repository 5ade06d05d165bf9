//! The web-security layer of the HTTP stack: a tower [`Layer`] around the routes that
//! asks [`WebSecurity`] whether a request may pass (basic auth, fair between clients),
//! answers 401 or 429 when not, counts the refusal, and adds the configured response
//! headers to every answer.
//!
//! The client's address comes from the connection, as a [`Peer`] request extension that
//! the accept loop inserts.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt};

use super::metrics::{HttpMetrics, Reason};
use crate::web_config::{AuthFailure, WebSecurity};

/// The address of the client that sent a request, from its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// Wraps a service in [`Secured`]; without a web config, requests pass untouched.
#[derive(Clone)]
pub struct SecurityLayer {
    security: Option<WebSecurity>,
    metrics: HttpMetrics,
}

impl SecurityLayer {
    pub fn new(security: Option<WebSecurity>, metrics: HttpMetrics) -> SecurityLayer {
        SecurityLayer { security, metrics }
    }
}

impl<S> Layer<S> for SecurityLayer {
    type Service = Secured<S>;

    fn layer(&self, inner: S) -> Secured<S> {
        Secured {
            inner,
            security: self.security.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Secured<S> {
    inner: S,
    security: Option<WebSecurity>,
    metrics: HttpMetrics,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl<S> Service<Request<Body>> for Secured<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner service is driven with `oneshot`, which waits for its readiness.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Answer {
        let inner = self.inner.clone();
        let Some(security) = self.security.clone() else {
            return Box::pin(inner.oneshot(request));
        };
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let active = security.active();
            let peer = request.extensions().get::<Peer>().map(|peer| peer.0.ip());
            let admitted = match peer {
                Some(peer) => {
                    let authorization = request.headers().get(header::AUTHORIZATION);
                    security
                        .admit(&active, request.uri().path(), authorization, peer)
                        .await
                }
                // Every connection inserts its peer; a request without one is refused.
                None => Err(AuthFailure::Missing),
            };
            let mut response = match admitted {
                Ok(()) => inner.oneshot(request).await?,
                Err(failure) => {
                    metrics
                        .auth_failures
                        .get_or_create(&Reason {
                            reason: failure.as_str(),
                        })
                        .inc();
                    refusal(failure)
                }
            };
            for (name, value) in &active.headers {
                response.headers_mut().insert(name.clone(), value.clone());
            }
            Ok(response)
        })
    }
}

/// 401 with the challenge a browser or Prometheus answers; 429 when the client has too
/// many credential checks waiting.
fn refusal(failure: AuthFailure) -> Response<Body> {
    let (status, body) = match failure {
        AuthFailure::Missing | AuthFailure::Wrong => (StatusCode::UNAUTHORIZED, "Unauthorized\n"),
        AuthFailure::Throttled => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many credential checks waiting for this client address\n",
        ),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    match failure {
        AuthFailure::Throttled => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        AuthFailure::Missing | AuthFailure::Wrong => {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        }
    }
    response
}
