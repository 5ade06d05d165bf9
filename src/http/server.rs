//! The accept loop and each connection's life: a cap on open connections, a header-read
//! timeout and an idle keep-alive timeout, a bounded read buffer, and a shutdown that
//! closes idle and half-sent connections at once and waits only for responses in flight.
//!
//! hyper has no idle timeout of its own, and its header-read timer also runs while a
//! keep-alive connection waits for its next request. So each connection carries an
//! [`Activity`] (see [`super::activity`]), and the connection task closes the connection
//! at whichever deadline applies.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

use super::activity::{Activity, Watched};
use super::security::{Peer, Secured, SecurityLayer};
use super::{HttpError, HttpMetrics};
use crate::web_config::WebSecurity;

/// File descriptors kept out of the connection cap: the poll's netlink sockets and /proc
/// reads, the runtime's own, the listeners and the logs, and evicted connections not yet
/// closed ([`EVICTED_NOT_CLOSED`]).
pub const RESERVED_FDS: u64 = 128;

/// Evicted connections whose task has not closed them yet, at most: their slot is already
/// another connection's, their socket not yet closed.
const EVICTED_NOT_CLOSED: usize = 32;

/// A read buffer grows to at most this per connection (hyper's default is about 400 KiB,
/// which 200 slowloris clients turned into 76 MB). A request header above it gets 431.
const MAX_BUF_SIZE: usize = 16 * 1024;

/// After an accept() failure such as EMFILE, the listener stays readable: without a pause
/// the loop would spin on the same error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A warning at most this often for refused connections and failed accepts.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// The connection cap actually used: `configured`, lowered so that `RESERVED_FDS` file
/// descriptors stay free under the soft RLIMIT_NOFILE `nofile` (a quarter of the limit
/// at least, 1 at the very least).
pub fn connection_limit(configured: usize, nofile: u64) -> usize {
    let room = nofile.saturating_sub(RESERVED_FDS).max(nofile / 4).max(1);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// How long a connection whose deadline passed waits for the I/O driver before it is
/// closed (see `connection`).
const LOOK_AGAIN: Duration = Duration::from_millis(20);

/// How long the accept loop waits for an evicted connection to close its socket, when
/// [`EVICTED_NOT_CLOSED`] of them are still open.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// What every listener shares: the routes behind the security layer, the limits, the
/// connection slots.
#[derive(Clone)]
pub struct Server {
    service: Secured<Router>,
    limits: Limits,
    /// `max_connections` slots, each held in a connection's [`Activity`].
    slots: Arc<Semaphore>,
    /// One per socket a connection task holds: `max_connections` plus the evicted ones
    /// not yet closed.
    sockets: Arc<Semaphore>,
    /// Open connections: at the cap, the first one in [`Activity::eviction_order`] without
    /// a request in flight gives its slot to the new one, so idle or stalled clients
    /// cannot lock out a scraper.
    open: Arc<Mutex<VecDeque<Weak<Activity>>>>,
    metrics: HttpMetrics,
    security: Option<WebSecurity>,
}

impl Server {
    /// `limits.max_connections` is taken as is: lower it with [`connection_limit`] first.
    pub fn new(
        router: Router,
        limits: Limits,
        metrics: HttpMetrics,
        security: Option<WebSecurity>,
    ) -> Server {
        metrics.limit.set(limits.max_connections as i64);
        let service = SecurityLayer::new(security.clone(), metrics.clone()).layer(router);
        Server {
            service,
            limits,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            sockets: Arc::new(Semaphore::new(limits.max_connections + EVICTED_NOT_CLOSED)),
            open: Arc::new(Mutex::new(VecDeque::new())),
            metrics,
            security,
        }
    }
}

/// Serves `listener` until `shutdown` turns true, then closes idle connections at once and
/// waits for the responses in flight.
pub async fn serve(
    listener: TcpListener,
    server: Server,
    shutdown: watch::Receiver<bool>,
) -> Result<(), HttpError> {
    let mut stop = shutdown.clone();
    let address = listener.local_addr().map_err(|source| HttpError::Serve {
        address: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let mut connections = JoinSet::new();
    let mut refused_log = RateLimited::default();
    let mut error_log = RateLimited::default();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match server.admit().await {
                    Some((activity, socket)) => {
                        let peer = Peer(peer);
                        connections.spawn(connection(stream, peer, activity, server.clone(), socket, shutdown.clone()));
                    }
                    None => {
                        server.metrics.refused.inc();
                        if let Some(suppressed) = refused_log.due() {
                            tracing::warn!(%address, %peer, limit = server.limits.max_connections, suppressed, "connection refused: every connection has a request in flight");
                        }
                        drop(stream);
                    }
                },
                Err(error) => {
                    server.metrics.accept_errors.inc();
                    if let Some(suppressed) = error_log.due() {
                        tracing::warn!(%address, %error, suppressed, "accept failed");
                    }
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

impl Server {
    /// A new connection's activity, holding a free slot or one taken from an evicted
    /// connection, and its socket permit; `None` when every connection is busy.
    ///
    /// The slot changes hands at once: waiting here for the evicted connection's task to
    /// run stalled the accept loop behind every busy connection, the accept queue
    /// overflowed and new clients waited a SYN retransmission (1 s) to connect.
    async fn admit(&self) -> Option<(Arc<Activity>, OwnedSemaphorePermit)> {
        let socket = match Arc::clone(&self.sockets).try_acquire_owned() {
            Ok(socket) => socket,
            Err(_) => {
                tokio::time::timeout(EVICTION_WAIT, Arc::clone(&self.sockets).acquire_owned())
                    .await
                    .ok()?
                    .ok()?
            }
        };
        let mut open = self.open.lock().ok()?;
        open.retain(|c| c.strong_count() > 0);
        let slot = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => Slot::new(permit, &self.metrics.open),
            Err(_) => {
                let slot = evict(&mut open)?;
                // Now, not when the evicted task runs: a scrape on the new connection
                // already sees it.
                self.closed("evicted");
                slot
            }
        };
        let activity = Arc::new(Activity::new(Some(slot)));
        open.push_back(Arc::downgrade(&activity));
        Some((activity, socket))
    }

    fn closed(&self, reason: &'static str) {
        self.metrics
            .closed
            .get_or_create(&super::metrics::Reason { reason })
            .inc();
    }
}

/// Takes the slot of the first connection in eviction order without a request in flight,
/// and tells it to close.
fn evict(open: &mut VecDeque<Weak<Activity>>) -> Option<Slot> {
    let (position, victim) = open
        .iter()
        .enumerate()
        .filter_map(|(position, c)| Some((position, c.upgrade()?)))
        .filter(|(_, c)| !c.in_flight())
        .min_by_key(|(_, c)| c.eviction_order())?;
    open.remove(position);
    let slot = victim.slot.lock().ok()?.take()?;
    victim.evict.notify_one();
    Some(slot)
}

/// At most one log line per [`LOG_EVERY`]; `due` says how many were held back meanwhile.
#[derive(Default)]
struct RateLimited {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

async fn connection(
    stream: TcpStream,
    peer: Peer,
    activity: Arc<Activity>,
    server: Server,
    _socket: OwnedSemaphorePermit,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let tls = server.security.as_ref().and_then(WebSecurity::tls);
    match tls {
        None => drive(stream, peer, activity, server, shutdown).await,
        Some(tls) => {
            activity.reading();
            let handshake = async {
                // Plain HTTP on the TLS port gets an answer saying so, as in Go.
                let mut first = [0u8; 8];
                let n = stream.peek(&mut first).await.unwrap_or(0);
                if looks_like_http(&first[..n]) {
                    plain_http(stream).await;
                    return Err(());
                }
                Ok(tls.acceptor.accept(stream).await)
            };
            let handshake = tokio::time::timeout(server.limits.header_read_timeout, handshake);
            let done = tokio::select! {
                done = handshake => done,
                // Counted by the accept loop when it took the slot.
                _ = activity.evict.notified() => return,
            };
            match done {
                Ok(Err(())) => {
                    server.metrics.tls_handshake_errors.inc();
                }
                Ok(Ok(Ok(stream))) => {
                    if let Err(reason) = tls.check_peer(stream.get_ref().1.peer_certificates()) {
                        server
                            .metrics
                            .auth_failures
                            .get_or_create(&super::metrics::Reason { reason: "san" })
                            .inc();
                        tracing::debug!(%reason, "client certificate refused");
                        return;
                    }
                    drive(stream, peer, activity, server, shutdown).await
                }
                Ok(Ok(Err(error))) => {
                    server.metrics.tls_handshake_errors.inc();
                    tracing::debug!(%error, "tls handshake failed");
                }
                Err(_) => server.closed("header_timeout"),
            }
        }
    }
}

/// The start of an HTTP/1 request line: a method in capitals, then a space.
fn looks_like_http(first: &[u8]) -> bool {
    let method = first.iter().take_while(|b| b.is_ascii_uppercase()).count();
    method >= 3 && first.get(method) == Some(&b' ')
}

async fn plain_http(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = stream
        .write_all(
            b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n\
              Client sent an HTTP request to an HTTPS server.\n",
        )
        .await;
    let _ = stream.shutdown().await;
}

/// One of the `max_connections` slots. `sockdiag_http_connections_open` counts the slots
/// held, so an evicted connection leaves it when its slot changes hands, not when its task
/// gets to close it: the gauge never exceeds the cap.
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, open: &Gauge) -> Slot {
        open.inc();
        Slot {
            _permit: permit,
            open: open.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// Serves HTTP/1.1 on one connection until it ends, times out, or shutdown closes it.
async fn drive<I>(
    io: I,
    peer: Peer,
    activity: Arc<Activity>,
    server: Server,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Watched {
        inner: io,
        activity: Arc::clone(&activity),
    });
    let service = {
        let activity = Arc::clone(&activity);
        let server = server.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let busy = activity.begin();
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(peer);
            let answer = server.service.clone().oneshot(request);
            async move {
                let response = answer.await;
                drop(busy);
                response
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_buf_size(MAX_BUF_SIZE);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    // The deadline that has had its second look (see below).
    let mut looked_again = None;
    loop {
        let deadline = activity.deadline(&server.limits);
        tokio::select! {
            // The connection first, so that bytes already read count before a deadline.
            biased;
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = activity.changed.notified() => {}
            // Counted by the accept loop when it took the slot.
            _ = activity.evict.notified() => return,
            _ = sleep_until(deadline) => {
                if let Some((at, reason)) = activity.deadline(&server.limits) {
                    if at > Instant::now() {
                        continue;
                    }
                    // After a stop (SIGSTOP, a frozen VM) the timer fires before the I/O
                    // driver has seen what the client sent meanwhile: a short sleep parks
                    // this worker, which runs the driver, then the connection is read
                    // first. Without it 13 of 20 requests sent during a stop were closed
                    // unread as header timeouts; a mere yield still lost 1 in about 50.
                    if looked_again != Some(at) {
                        looked_again = Some(at);
                        tokio::time::sleep(LOOK_AGAIN).await;
                        continue;
                    }
                    server.closed(reason);
                    return;
                }
            }
            _ = stopped(&mut shutdown), if !draining => {
                if !activity.in_flight() {
                    return;
                }
                // Finish the response in flight, then close.
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// Resolves once `stop` is true (at once if it already is).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn sleep_until(deadline: Option<(Instant, &'static str)>) {
    match deadline {
        Some((at, _)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_told_apart_from_a_tls_hello() {
        assert!(looks_like_http(b"GET /met"));
        assert!(looks_like_http(b"POST / H"));
        assert!(!looks_like_http(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01
        ]));
        assert!(!looks_like_http(b"GE"));
    }

    fn server(max_connections: usize) -> Server {
        let limits = Limits {
            max_connections,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        };
        let metrics = HttpMetrics::register(&mut prometheus_client::registry::Registry::default());
        Server::new(Router::new(), limits, metrics, None)
    }

    fn holds_slot(activity: &Activity) -> bool {
        activity.slot.lock().unwrap().is_some()
    }

    /// No connection task runs here, as on a runtime busy with other connections: the
    /// slot must change hands all the same. Waiting for the evicted connection's task
    /// stalled the accept loop, the accept queue overflowed, and clients waited a SYN
    /// retransmission (1 s, then 3 s) to connect.
    #[tokio::test(start_paused = true)]
    async fn eviction_stalled_the_accept_loop_until_the_evicted_task_ran() {
        let server = server(2);
        let (first, _first) = server.admit().await.unwrap();
        let (second, _second) = server.admit().await.unwrap();
        let started = Instant::now();
        let (third, _third) = server.admit().await.expect("admitted by eviction");
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(
            !holds_slot(&first),
            "the oldest idle connection gave its slot"
        );
        assert!(holds_slot(&second) && holds_slot(&third));
        // A busy connection is never a victim; with every one busy, the next is refused.
        let busy = (second.begin(), third.begin());
        assert!(server.admit().await.is_none());
        drop(busy);
    }

    /// Oldest first evicted the connection of a scraper that had just been served before
    /// any slowloris client; the scraper reconnected and evicted the next one, in a loop.
    #[tokio::test(start_paused = true)]
    async fn keep_alive_scraper_was_evicted_before_stalled_clients() {
        let server = server(3);
        let (scraper, _scraper) = server.admit().await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let (stalled, _stalled) = server.admit().await.unwrap();
        let (silent, _silent) = server.admit().await.unwrap();
        for read in [&scraper, &stalled, &silent] {
            read.reading();
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(scraper.begin());
        let (fourth, _fourth) = server.admit().await.unwrap();
        assert!(holds_slot(&scraper), "the scraper served last is kept");
        assert!(!holds_slot(&stalled), "the oldest never served goes first");
        let (fifth, _fifth) = server.admit().await.unwrap();
        assert!(!holds_slot(&silent));
        // Neither new connection has been read from yet: the idle scraper goes now.
        let (_sixth, _sixth_socket) = server.admit().await.unwrap();
        assert!(!holds_slot(&scraper));
        assert!(holds_slot(&fourth) && holds_slot(&fifth));
        fifth.reading();
        let (_seventh, _seventh_socket) = server.admit().await.unwrap();
        assert!(!holds_slot(&fifth), "read from, never served");
        assert!(holds_slot(&fourth), "its task has not run yet");
    }

    #[test]
    fn connection_limit_keeps_descriptors_for_the_poll() {
        assert_eq!(connection_limit(512, 1024), 512);
        assert_eq!(connection_limit(512, 256), 128);
        assert_eq!(connection_limit(512, 160), 40);
        assert_eq!(connection_limit(512, 2), 1);
    }
}
