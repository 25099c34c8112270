//! The little HTTP/1.1 server both consoles share, on hyper and the
//! actix system's (single-threaded tokio) runtime.
//!
//! Every resource a client can hold is bounded, so that a slow or hostile
//! client costs a bounded amount of memory and never stalls anybody else:
//! - at most [`Limits::max_connections`] connections (more are closed at
//!   once);
//! - request headers within [`Limits::header_timeout`], bodies of at most
//!   [`MAX_BODY`] bytes within the same time;
//! - a write that makes no progress for [`Limits::write_timeout`] ends the
//!   connection ([`Deadline`]), so a client that stops reading its event
//!   stream is dropped instead of piling up updates; the kernel's send
//!   buffer is capped ([`Limits::send_buffer`]) so that this happens after
//!   a few hundred kilobytes, not megabytes;
//! - an event stream holds at most [`STREAM_QUEUE`] frames; the producer
//!   always sends the latest state, never a backlog.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// A response body: a whole buffer or an event stream.
pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;
pub type Req = Request<Incoming>;
pub type Resp = Response<ResponseBody>;

/// Largest request body (commands and settings are a few bytes).
pub const MAX_BODY: usize = 16 * 1024;
/// Frames an event stream may hold before its producer waits.
pub const STREAM_QUEUE: usize = 2;

/// The bounds of one server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// The kernel's send buffer of each connection (bytes): with hyper's
    /// own buffer and the stream's queue, what one client can hold.
    pub send_buffer: usize,
    pub header_timeout: Duration,
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            send_buffer: 256 * 1024,
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Open connections, for tests and the status line.
#[derive(Debug, Default)]
pub struct Counters {
    pub open: AtomicUsize,
    pub refused: AtomicUsize,
}

/// A whole response.
pub fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        content_type.parse().expect("content types are valid header values"),
    );
    headers.insert("cache-control", "no-store".parse().expect("valid"));
    headers.insert("x-content-type-options", "nosniff".parse().expect("valid"));
    response
}

/// A plain-text answer.
pub fn text(status: StatusCode, message: &str) -> Resp {
    full(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

/// An event stream fed from `frames` (each one a complete `data: ...`
/// event).
pub fn event_stream(frames: mpsc::Receiver<Bytes>) -> Resp {
    let mut response = Response::new(Stream(frames).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert("content-type", "text/event-stream".parse().expect("valid"));
    headers.insert("cache-control", "no-store".parse().expect("valid"));
    response
}

struct Stream(mpsc::Receiver<Bytes>);

impl Body for Stream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|frame| frame.map(|b| Ok(Frame::data(b))))
    }
}

/// Reads a request body of at most [`MAX_BODY`] bytes.
pub async fn read_body(request: Req, timeout: Duration) -> Result<Bytes, Resp> {
    let limited = Limited::new(request.into_body(), MAX_BODY);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(text(StatusCode::REQUEST_TIMEOUT, "timeout reading the request body")),
        Ok(Err(_)) => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body too large or broken (at most {MAX_BODY} bytes)"),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Serves connections until the runtime stops. `handler` answers each
/// request; it runs on this thread (state may be `Rc`).
pub fn serve<H, F>(listener: TcpListener, tls: Option<TlsAcceptor>, limits: Limits, counters: Arc<Counters>, handler: H)
where
    H: Fn(Req) -> F + 'static,
    F: Future<Output = Resp> + 'static,
{
    let handler = Rc::new(handler);
    tokio::task::spawn_local(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!("web: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if counters.open.load(Ordering::Relaxed) >= limits.max_connections {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let _ = nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::SndBuf, &limits.send_buffer);
            counters.open.fetch_add(1, Ordering::Relaxed);
            let (handler, tls, counters) = (handler.clone(), tls.clone(), counters.clone());
            tokio::task::spawn_local(async move {
                let stuck_since = Rc::new(Cell::new(None));
                let stream = Deadline::new(stream, stuck_since.clone());
                let serve = async move {
                    match tls {
                        None => connection(stream, limits, handler).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(tls_stream)) => connection(tls_stream, limits, handler).await,
                                Ok(Err(e)) => Err(e.to_string()),
                                Err(_) => Err("TLS handshake timed out".into()),
                            }
                        }
                    }
                };
                // Dropping the connection's future closes its socket.
                let result = tokio::select! {
                    result = serve => result,
                    result = stuck(stuck_since, limits.write_timeout) => result,
                };
                if let Err(e) = result {
                    tracing::debug!("web: connection ended: {e}");
                }
                counters.open.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
}

async fn connection<S, H, F>(stream: S, limits: Limits, handler: Rc<H>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
    H: Fn(Req) -> F + 'static,
    F: Future<Output = Resp> + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let response = handler(request);
        async move { Ok::<_, Infallible>(response.await) }
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // One request per connection: an idle keep-alive connection would
        // hold a slot with no timeout running (the header timeout starts
        // with a request's first byte).
        .keep_alive(false)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .await
        .map_err(|e| e.to_string())
}

/// A stream that notes since when its writes have been stuck (pending
/// with no byte written): the connection's watchdog ends a connection
/// stuck longer than the write timeout, so a peer that stops reading
/// cannot hold its connection (and the buffers behind it) forever. The
/// watchdog sits outside hyper, so it does not depend on when hyper polls.
pub struct Deadline<S> {
    inner: S,
    stuck_since: Rc<Cell<Option<Instant>>>,
}

impl<S> Deadline<S> {
    pub fn new(inner: S, stuck_since: Rc<Cell<Option<Instant>>>) -> Deadline<S> {
        Deadline { inner, stuck_since }
    }

    /// Only written bytes count as progress: a flush of a TCP stream is
    /// always ready, and must not restart the clock.
    fn note<T>(&self, poll: &Poll<io::Result<T>>, progress: bool) {
        if progress {
            self.stuck_since.set(None);
        } else if poll.is_pending() && self.stuck_since.get().is_none() {
            self.stuck_since.set(Some(Instant::now()));
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deadline<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadline<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(&poll, matches!(poll, Poll::Ready(Ok(n)) if n > 0));
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(&poll, false);
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.note(&poll, false);
        poll
    }
}

/// Resolves once the writes noted in `stuck_since` have been stuck for
/// longer than `limit`.
async fn stuck(stuck_since: Rc<Cell<Option<Instant>>>, limit: Duration) -> Result<(), String> {
    loop {
        tokio::time::sleep(limit / 4).await;
        if stuck_since.get().is_some_and(|since| since.elapsed() > limit) {
            return Err("the client did not read for too long".into());
        }
    }
}

/// Whether a `Host` header names this machine (refuses DNS-rebinding
/// pages that would reach a loopback server under another name).
pub fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of `key` in a query string (no percent-decoding: tokens are
/// plain).
pub fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_secrets_and_queries() {
        assert!(loopback_host("127.0.0.1:8080"));
        assert!(loopback_host("localhost:1"));
        assert!(loopback_host("[::1]:8080"));
        assert!(!loopback_host("evil.example:8080"));
        assert!(!loopback_host("10.0.0.1"));
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert_eq!(query_param(Some("a=1&token=xyz"), "token"), Some("xyz"));
        assert_eq!(query_param(Some("a=1"), "token"), None);
        assert_eq!(query_param(None, "token"), None);
    }
}
