//! QUIC transport between nodes: one request/response per bidirectional
//! stream, framed by [`super::codec`], mutual TLS from [`super::tls`].
//!
//! Every request names its sender; the server checks the name against the
//! sender's certificate, so only authenticated cluster members get an
//! answer. Every request is answered with a result envelope (a handler
//! failure is an error value, never a silently dropped stream). Malformed
//! or oversized frames close that stream with a logged reason; the node
//! keeps serving. Warnings that a peer (or anybody who can send UDP to
//! the port) can trigger at will are rate-limited ([`super::log_limit`]):
//! a few per interval, then one line with the count left out. A
//! fault-injection switch ([`QuicTransport::block`]) drops
//! traffic to and from chosen peers, for partition tests across processes.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::codec::{self, CodecError, MAX_FRAME_BYTES};
use super::log_limit::LogLimiter;
use super::tls::{self, NodeIdentity, TlsError};

/// How long one call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Refused handshakes or malformed requests logged per [`NOISE_INTERVAL`].
const NOISE_BURST: u32 = 5;
const NOISE_INTERVAL: Duration = Duration::from_secs(10);

/// The limiters of warnings an outsider can trigger.
#[derive(Debug)]
struct Noise {
    /// Failed handshakes: garbage datagrams, foreign certificates.
    handshakes: LogLimiter,
    /// Malformed or unauthenticated requests on a connection.
    requests: LogLimiter,
}

impl Noise {
    fn new() -> Noise {
        Noise {
            handshakes: LogLimiter::new(NOISE_BURST, NOISE_INTERVAL),
            requests: LogLimiter::new(NOISE_BURST, NOISE_INTERVAL),
        }
    }

    /// Logs how many warnings were left out since the last report.
    fn report(&mut self) {
        let every = self.handshakes.interval();
        if let Some(n) = self.handshakes.flush() {
            tracing::warn!("{n} more refused incoming connections not logged (at most {NOISE_BURST} per {every:?})");
        }
        if let Some(n) = self.requests.flush() {
            tracing::warn!("{n} more refused requests not logged (at most {NOISE_BURST} per {every:?})");
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RequestEnvelope<Req> {
    pub(super) from: String,
    pub(super) body: Req,
}

/// The frame of `request` from `node` to `peer` (both transports).
pub(super) fn request_frame<Req: Serialize>(node: &str, peer: &str, request: &Req) -> Result<Vec<u8>, TransportError> {
    codec::encode(&RequestEnvelope {
        from: node.to_string(),
        body: request,
    })
    .map_err(|error| TransportError::Codec {
        peer: peer.to_string(),
        error,
    })
}

/// The value of `peer`'s answer frame, or why there is none (both
/// transports).
pub(super) fn answer_of<Resp: DeserializeOwned>(peer: &str, bytes: &[u8]) -> Result<Resp, TransportError> {
    let answer: Result<Resp, RemoteError> = codec::decode(bytes).map_err(|error| TransportError::Codec {
        peer: peer.to_string(),
        error,
    })?;
    answer.map_err(|error| TransportError::Remote {
        peer: peer.to_string(),
        error,
    })
}

/// Why the remote side did not answer a request with a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteError {
    #[error("peer certificate does not name '{0}'")]
    Unauthenticated(String),
    #[error("request refused: {0}")]
    Malformed(String),
    #[error("{0}")]
    Handler(String),
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("cannot reach {peer}: {reason}")]
    Unreachable { peer: String, reason: String },
    #[error("traffic with {0} is blocked (fault injection)")]
    Blocked(String),
    #[error("call to {0} timed out")]
    Timeout(String),
    #[error("bad answer from {peer}: {error}")]
    Codec { peer: String, error: CodecError },
    #[error("{peer} refused: {error}")]
    Remote { peer: String, error: RemoteError },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("endpoint: {0}")]
    Endpoint(String),
}

/// One node's QUIC endpoint (server and client).
#[derive(Clone)]
pub struct QuicTransport {
    node: String,
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    connections: Arc<Mutex<HashMap<String, quinn::Connection>>>,
    /// Peers a connection is being set up to.
    pending: Arc<Mutex<BTreeSet<String>>>,
    blocked: Arc<Mutex<BTreeSet<String>>>,
    /// When each peer last answered a call.
    answered: Arc<Mutex<HashMap<String, Instant>>>,
    noise: Arc<Mutex<Noise>>,
}

/// A call given up on drops its connection only if the peer has not
/// answered anything for this long: a peer that restarted behind the
/// connection never answers on it again, but a peer that is merely slow
/// (a vote's fsync on a loaded disk outlasting openraft's short vote
/// timeout) must not lose a working connection, or every following call
/// waits for a new handshake and times out too, and an election that
/// should take a second outlasts the watchdog.
const DROP_SILENT_AFTER: Duration = Duration::from_secs(1);

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut config = quinn::TransportConfig::default();
    config.keep_alive_interval(Some(Duration::from_millis(500)));
    if let Ok(idle) = quinn::IdleTimeout::try_from(Duration::from_secs(3)) {
        config.max_idle_timeout(Some(idle));
    }
    Arc::new(config)
}

impl QuicTransport {
    /// Binds the endpoint (inside a tokio runtime, e.g. an actix arbiter
    /// that lives as long as the node: connections die with their runtime).
    pub fn bind(addr: SocketAddr, identity: &NodeIdentity) -> Result<QuicTransport, TransportError> {
        let mut server = tls::server_config(identity)?;
        server.transport_config(transport_config());
        let mut client = tls::client_config(identity)?;
        client.transport_config(transport_config());
        let endpoint = quinn::Endpoint::server(server, addr).map_err(|e| TransportError::Endpoint(e.to_string()))?;
        Ok(QuicTransport {
            node: identity.node.clone(),
            endpoint,
            client,
            connections: Arc::new(Mutex::new(HashMap::new())),
            pending: Arc::new(Mutex::new(BTreeSet::new())),
            blocked: Arc::new(Mutex::new(BTreeSet::new())),
            answered: Arc::new(Mutex::new(HashMap::new())),
            noise: Arc::new(Mutex::new(Noise::new())),
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Fault injection: drop all traffic with `peer` (both directions).
    pub fn block(&self, peer: &str) {
        lock(&self.blocked).insert(peer.to_string());
        if let Some(conn) = lock(&self.connections).remove(peer) {
            conn.close(0u32.into(), b"blocked");
        }
    }

    pub fn unblock(&self, peer: &str) {
        lock(&self.blocked).remove(peer);
    }

    /// Whether a refused handshake may be logged now.
    fn log_handshake(&self) -> bool {
        lock(&self.noise).handshakes.allow(Instant::now())
    }

    /// Whether a refused request may be logged now.
    fn log_request(&self) -> bool {
        lock(&self.noise).requests.allow(Instant::now())
    }

    fn is_blocked(&self, peer: &str) -> bool {
        lock(&self.blocked).contains(peer)
    }

    fn cached(&self, peer: &str) -> Option<quinn::Connection> {
        lock(&self.connections)
            .get(peer)
            .filter(|c| c.close_reason().is_none())
            .cloned()
    }

    /// Sets up a connection to `peer` in a task of its own, which caches
    /// it when done. A caller that gives up waiting (its RPC timed out)
    /// does not cancel the handshake: on a loaded machine a handshake may
    /// take longer than one RPC may, and the next call finds it ready.
    fn spawn_connect(
        &self,
        peer: &str,
        addr: SocketAddr,
    ) -> tokio::task::JoinHandle<Result<quinn::Connection, String>> {
        let (transport, peer) = (self.clone(), peer.to_string());
        tokio::spawn(async move {
            let result = match transport.endpoint.connect_with(transport.client.clone(), addr, &peer) {
                Ok(connecting) => connecting.await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Ok(conn) = &result {
                lock(&transport.connections).insert(peer.clone(), conn.clone());
            }
            lock(&transport.pending).remove(&peer);
            result
        })
    }

    async fn connection(&self, peer: &str, addr: SocketAddr) -> Result<quinn::Connection, TransportError> {
        loop {
            if let Some(conn) = self.cached(peer) {
                return Ok(conn);
            }
            if lock(&self.pending).insert(peer.to_string()) {
                let done = self.spawn_connect(peer, addr).await;
                let unreachable = |reason: String| TransportError::Unreachable {
                    peer: peer.to_string(),
                    reason,
                };
                return done.map_err(|e| unreachable(e.to_string()))?.map_err(unreachable);
            }
            // Another call is connecting to this peer: wait for it.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Closes the connection to `peer` if the peer has answered nothing
    /// for [`DROP_SILENT_AFTER`]: the calls waiting on it fail at once and
    /// the next call connects afresh (to a peer that restarted behind the
    /// old connection, say). A peer that is merely slow keeps it.
    pub fn drop_if_silent(&self, peer: &str) {
        let silent = lock(&self.answered)
            .get(peer)
            .is_none_or(|at| at.elapsed() >= DROP_SILENT_AFTER);
        if silent && let Some(conn) = lock(&self.connections).remove(peer) {
            conn.close(0u32.into(), b"peer silent");
        }
    }

    /// Whether a live connection to `peer` is up.
    pub fn connected(&self, peer: &str) -> bool {
        !self.is_blocked(peer) && self.cached(peer).is_some()
    }

    /// Opens a connection to `peer` in the background unless one is up or
    /// being set up (keeps connections between all members warm, so an
    /// election never waits for handshakes).
    pub fn warm(&self, peer: &str, addr: SocketAddr) {
        if self.is_blocked(peer) || self.cached(peer).is_some() {
            return;
        }
        if lock(&self.pending).insert(peer.to_string()) {
            drop(self.spawn_connect(peer, addr));
        }
    }

    /// Sends `request` to `peer` at `addr` and waits for its answer.
    pub async fn call<Req, Resp>(&self, peer: &str, addr: SocketAddr, request: &Req) -> Result<Resp, TransportError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        if self.is_blocked(peer) {
            return Err(TransportError::Blocked(peer.to_string()));
        }
        let frame = request_frame(&self.node, peer, request)?;
        let attempt = async {
            // One reconnect: a cached connection may have died quietly.
            let mut last = None;
            for _ in 0..2 {
                let conn = self.connection(peer, addr).await?;
                // A call given up on (timed out here or by the caller) drops
                // the connection it waited on: the peer may have restarted
                // behind it, and that would only be noticed at the idle
                // timeout; the next call connects afresh.
                let guard = DropOnCancel {
                    transport: self,
                    peer,
                    id: conn.stable_id(),
                    armed: true,
                };
                let result = exchange(&conn, &frame).await;
                guard.disarm();
                match result {
                    Ok(bytes) => {
                        lock(&self.answered).insert(peer.to_string(), Instant::now());
                        return Ok(bytes);
                    }
                    Err(reason) => {
                        lock(&self.connections).remove(peer);
                        last = Some(reason);
                    }
                }
            }
            Err(TransportError::Unreachable {
                peer: peer.to_string(),
                reason: last.unwrap_or_default(),
            })
        };
        let bytes = tokio::time::timeout(CALL_TIMEOUT, attempt)
            .await
            .map_err(|_| TransportError::Timeout(peer.to_string()))??;
        answer_of(peer, &bytes)
    }

    /// Sends `bytes` as they are as one request and returns the raw answer
    /// (tests of what the server does with malformed frames).
    #[doc(hidden)]
    pub async fn call_raw(&self, peer: &str, addr: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>, TransportError> {
        let conn = self.connection(peer, addr).await?;
        exchange(&conn, bytes)
            .await
            .map_err(|reason| TransportError::Unreachable {
                peer: peer.to_string(),
                reason,
            })
    }

    /// Serves requests with `handler` until the endpoint closes.
    pub fn serve<Req, Resp, H, Fut>(&self, handler: H) -> tokio::task::JoinHandle<()>
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        H: Fn(String, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, String>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let transport = self.clone();
        tokio::spawn(async move {
            // The summaries of left-out warnings, once an interval.
            let noise = transport.noise.clone();
            let reporter = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(NOISE_INTERVAL).await;
                    lock(&noise).report();
                }
            });
            while let Some(incoming) = transport.endpoint.accept().await {
                let (handler, transport) = (handler.clone(), transport.clone());
                tokio::spawn(async move {
                    let conn = match incoming.await {
                        Ok(conn) => conn,
                        Err(e) => {
                            if transport.log_handshake() {
                                tracing::warn!("refused incoming connection: {e}");
                            }
                            return;
                        }
                    };
                    while let Ok((send, recv)) = conn.accept_bi().await {
                        let (handler, transport, conn) = (handler.clone(), transport.clone(), conn.clone());
                        tokio::spawn(async move { transport.answer(&conn, send, recv, handler.as_ref()).await });
                    }
                });
            }
            reporter.abort();
            lock(&transport.noise).report();
        })
    }

    async fn answer<Req, Resp, H, Fut>(
        &self,
        conn: &quinn::Connection,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        handler: &H,
    ) where
        Req: DeserializeOwned,
        Resp: Serialize,
        H: Fn(String, Req) -> Fut,
        Fut: Future<Output = Result<Resp, String>>,
    {
        let bytes = match recv.read_to_end(MAX_FRAME_BYTES + 8).await {
            Ok(bytes) => bytes,
            Err(e) => {
                if self.log_request() {
                    tracing::warn!("closing stream from {}: {e}", conn.remote_address());
                }
                let _ = send.reset(1u32.into());
                return;
            }
        };
        let request: RequestEnvelope<Req> = match codec::decode(&bytes) {
            Ok(request) => request,
            Err(e) => {
                if self.log_request() {
                    tracing::warn!("closing stream from {}: {e}", conn.remote_address());
                }
                let reply: Result<Resp, RemoteError> = Err(RemoteError::Malformed(e.to_string()));
                if let Ok(frame) = codec::encode(&reply) {
                    let _ = send.write_all(&frame).await;
                }
                let _ = send.finish();
                return;
            }
        };
        if self.is_blocked(&request.from) {
            let _ = send.reset(2u32.into());
            return;
        }
        let reply: Result<Resp, RemoteError> = if tls::peer_is(conn, &request.from) {
            handler(request.from, request.body).await.map_err(RemoteError::Handler)
        } else {
            if self.log_request() {
                tracing::warn!(
                    "refusing request claiming to be from '{}' ({})",
                    request.from,
                    conn.remote_address()
                );
            }
            Err(RemoteError::Unauthenticated(request.from))
        };
        match codec::encode(&reply) {
            Ok(frame) => {
                let _ = send.write_all(&frame).await;
                let _ = send.finish();
                let _ = send.stopped().await;
            }
            Err(e) => {
                tracing::error!("cannot encode reply: {e}");
                let _ = send.reset(3u32.into());
            }
        }
    }

    /// Closes the endpoint and every connection.
    pub fn close(&self) {
        lock(&self.connections).clear();
        self.endpoint.close(0u32.into(), b"bye");
    }

    /// Waits until every connection of the closed endpoint is gone (its
    /// address is free again once the last handle drops).
    pub async fn closed(&self) {
        self.endpoint.wait_idle().await;
    }
}

/// Forgets a cached connection unless disarmed (see [`Transport::call`]).
struct DropOnCancel<'a> {
    transport: &'a QuicTransport,
    peer: &'a str,
    id: usize,
    armed: bool,
}

impl DropOnCancel<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for DropOnCancel<'_> {
    fn drop(&mut self) {
        let silent = lock(&self.transport.answered)
            .get(self.peer)
            .is_none_or(|at| at.elapsed() >= DROP_SILENT_AFTER);
        if self.armed && silent {
            let mut connections = lock(&self.transport.connections);
            if connections.get(self.peer).is_some_and(|c| c.stable_id() == self.id) {
                connections.remove(self.peer);
            }
        }
    }
}

async fn exchange(conn: &quinn::Connection, frame: &[u8]) -> Result<Vec<u8>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(frame).await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    recv.read_to_end(MAX_FRAME_BYTES + 8).await.map_err(|e| e.to_string())
}
