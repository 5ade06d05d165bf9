//! What one connection is doing, for its deadlines: the I/O wrapper ([`Watched`]) notes
//! when a request's first bytes arrive, the service wrapper ([`Activity::begin`]) when a
//! request is in flight and when its response was handed over. The connection task asks
//! [`Activity::deadline`] when to close. It also holds the connection's slot, so that the
//! accept loop can hand the slot of an evicted connection to a new one at once, without
//! waiting for the evicted connection's task to run.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::server::{Limits, Slot};

/// What a connection is doing, in milliseconds since it was accepted.
pub(super) struct Activity {
    pub(super) accepted: Instant,
    in_flight: AtomicUsize,
    /// The connection task has tried to read: until then the client had no chance to send.
    read: AtomicBool,
    /// When the first bytes of the next request arrived; `NONE` while idle.
    request_started: AtomicU64,
    /// When the last response was handed over; `NONE` before the first.
    idle_since: AtomicU64,
    /// Wakes the connection task to recompute its deadline.
    pub(super) changed: Notify,
    /// Asks the connection task to close: a new connection has taken its slot.
    pub(super) evict: Notify,
    /// One of the server's connection slots; taken away on eviction.
    pub(super) slot: Mutex<Option<Slot>>,
}

const NONE: u64 = u64::MAX;

impl Activity {
    pub(super) fn new(slot: Option<Slot>) -> Activity {
        Activity {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            read: AtomicBool::new(false),
            request_started: AtomicU64::new(NONE),
            idle_since: AtomicU64::new(NONE),
            changed: Notify::new(),
            evict: Notify::new(),
            slot: Mutex::new(slot),
        }
    }

    fn now(&self) -> u64 {
        self.accepted.elapsed().as_millis() as u64
    }

    fn at(&self, millis: u64) -> Instant {
        self.accepted + Duration::from_millis(millis)
    }

    pub(super) fn in_flight(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// Bytes arrived: if no request is in flight and none had started, one starts now.
    fn bytes_read(&self) {
        if !self.in_flight() && self.request_started.load(Ordering::Acquire) == NONE {
            self.request_started.store(self.now(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    /// A request's header is complete and its handler runs until the guard drops.
    pub(super) fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.request_started.store(NONE, Ordering::Release);
        self.changed.notify_one();
        Busy(Arc::clone(self))
    }

    /// The connection task is about to read for the first time (or start a TLS handshake).
    pub(super) fn reading(&self) {
        self.read.store(true, Ordering::Release);
    }

    /// Where this connection stands in the eviction order, first out first: connections
    /// read from but never served a request (silent, slowloris), oldest first; then
    /// keep-alive clients, longest idle first; last, connections whose task has not run
    /// yet. A scraper that keeps its connection busy is evicted late whatever its age, and
    /// a new one is not evicted on a busy server before it could send its request.
    pub(super) fn eviction_order(&self) -> (u8, Instant) {
        match self.idle_since.load(Ordering::Acquire) {
            NONE if self.read.load(Ordering::Acquire) => (0, self.accepted),
            NONE => (2, self.accepted),
            since => (1, self.at(since)),
        }
    }

    /// The instant this connection is closed unless something happens first, and why.
    pub(super) fn deadline(&self, limits: &Limits) -> Option<(Instant, &'static str)> {
        if self.in_flight() {
            return None;
        }
        let started = self.request_started.load(Ordering::Acquire);
        if started != NONE {
            return Some((
                self.at(started) + limits.header_read_timeout,
                "header_timeout",
            ));
        }
        match self.idle_since.load(Ordering::Acquire) {
            // A connection that never sent a byte has the header's time, not the idle time.
            NONE => Some((self.accepted + limits.header_read_timeout, "header_timeout")),
            since => Some((self.at(since) + limits.idle_timeout, "idle_timeout")),
        }
    }
}

pub(super) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.idle_since.store(activity.now(), Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        activity.changed.notify_one();
    }
}

/// An I/O object that reports reads to the connection's [`Activity`].
pub(super) struct Watched<I> {
    pub(super) inner: I,
    pub(super) activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.activity.reading();
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_connection_phase() {
        let limits = Limits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        };
        let activity = Arc::new(Activity::new(None));
        let accepted = activity.accepted;
        assert_eq!(
            activity.deadline(&limits),
            Some((accepted + Duration::from_secs(10), "header_timeout"))
        );
        let busy = activity.begin();
        assert_eq!(activity.deadline(&limits), None);
        tokio::time::advance(Duration::from_secs(3)).await;
        drop(busy);
        assert_eq!(
            activity.deadline(&limits),
            Some((accepted + Duration::from_secs(63), "idle_timeout"))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        activity.bytes_read();
        assert_eq!(
            activity.deadline(&limits),
            Some((accepted + Duration::from_secs(14), "header_timeout"))
        );
    }
}
