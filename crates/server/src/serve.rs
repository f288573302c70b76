//! The HTTP/1 server loop that `dofs serve` runs the router in, in place of
//! `axum::serve`, which has no timer and so no way to cut off slow clients:
//!
//! - a client that does not finish sending its request line and headers
//!   within [`ServeConfig::header_read_timeout`] has its connection closed
//!   (slowloris); a slow body is the handler's to refuse (408, see
//!   [`crate::overload`]);
//! - a kept-alive connection with no request in progress and nothing sent
//!   either way for [`ServeConfig::keep_alive_timeout`] is closed, so that
//!   idle clients do not hold connection slots;
//! - at most [`ServeConfig::max_connections`] connections are open at once;
//!   further clients wait in the listen backlog until one closes;
//! - every request carries its peer address as [`ConnectInfo`], which the
//!   per-IP rate limit counts against;
//! - on shutdown the listener closes, idle connections are closed, and the
//!   requests in flight finish before [`serve`] returns.

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// Connection-level limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeConfig {
    /// Longest time a client may take to send a request's line and headers.
    pub header_read_timeout: Duration,
    /// Longest time a kept-alive connection may sit idle (no request in
    /// progress, no byte sent or received) before it is closed.
    pub keep_alive_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
            max_connections: 4096,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) {
    let slots = config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let connections = Arc::new(Semaphore::new(slots));
    let (closing, closing_rx) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    if !is_connection_error(&e) {
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let busy = Arc::clone(&activity);
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            })
            .map_future(move |response| {
                let busy = Busy::new(Arc::clone(&busy));
                async move {
                    let response = response.await;
                    drop(busy);
                    response
                }
            });
        let io = TokioIo::new(Tracked {
            stream,
            activity: Arc::clone(&activity),
        });
        let connection = builder.serve_connection(io, TowerToHyperService::new(service));
        let mut closing = closing_rx.clone();
        let keep_alive = config.keep_alive_timeout;
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            let mut closed = false;
            loop {
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!(error = %e, client = %peer, "connection ended with an error");
                        }
                        break;
                    }
                    _ = closing.wait_for(|closing| *closing), if !closed => {
                        // Idle: closed now; mid-request: after the response.
                        connection.as_mut().graceful_shutdown();
                        closed = true;
                    }
                    () = activity.idle_for(keep_alive), if !closed => {
                        tracing::debug!(client = %peer, "idle connection closed");
                        connection.as_mut().graceful_shutdown();
                        closed = true;
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // Every connection holds a slot until it has ended.
    let all = u32::try_from(slots).unwrap_or(u32::MAX);
    let _ = connections.acquire_many(all).await;
}

fn is_connection_error(e: &io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// When a connection last sent or received a byte, and how many of its
/// requests are being handled.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Since when the connection has been idle; `None` while a request is handled.
    fn idle_since(&self) -> Option<Instant> {
        (self.busy.load(Ordering::Acquire) == 0)
            .then(|| self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Completes once the connection has been idle for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let deadline = self.idle_since().unwrap_or_else(Instant::now) + limit;
            tokio::time::sleep_until(deadline).await;
            if self
                .idle_since()
                .is_some_and(|since| since.elapsed() >= limit)
            {
                return;
            }
        }
    }
}

/// A request being handled: the connection is not idle until it is dropped.
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: Arc<Activity>) -> Busy {
        activity.busy.fetch_add(1, Ordering::AcqRel);
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's stream, noting every byte read or written in [`Activity`].
struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(config: ServeConfig) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let app = Router::new().route("/", get(|| async { "ok" })).route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(600)).await;
                "slow"
            }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, app, config, async {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    /// Sends a GET and reads its whole response (the body is the last 2 or 4 bytes).
    async fn get_on(stream: &mut TcpStream, path: &str, body: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&out).ends_with(body) {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .expect("a response within 5 s")
                .expect("read");
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn config(keep_alive_ms: u64) -> ServeConfig {
        ServeConfig {
            header_read_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_millis(keep_alive_ms),
            max_connections: 1,
        }
    }

    #[tokio::test]
    async fn an_idle_kept_alive_connection_is_closed_and_frees_its_slot() {
        let (addr, _stop) = start(config(300)).await;
        let mut idle = TcpStream::connect(addr).await.expect("connect");
        assert!(get_on(&mut idle, "/", "ok")
            .await
            .starts_with("HTTP/1.1 200"));
        // The only slot is held by `idle` until it has been idle for 300 ms.
        let started = std::time::Instant::now();
        let mut next = TcpStream::connect(addr).await.expect("connect");
        assert!(get_on(&mut next, "/", "ok")
            .await
            .starts_with("HTTP/1.1 200"));
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(3), "served after {waited:?}");
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(1), idle.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "the idle connection is closed"
        );
    }

    #[tokio::test]
    async fn a_request_longer_than_the_keep_alive_timeout_is_not_cut_off() {
        let (addr, _stop) = start(config(200)).await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let response = get_on(&mut stream, "/slow", "slow").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        // Used again at once, the connection is still open.
        assert!(get_on(&mut stream, "/", "ok")
            .await
            .starts_with("HTTP/1.1 200"));
    }
}
