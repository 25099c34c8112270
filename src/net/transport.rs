//! The node-to-node transport the replicated store talks over: QUIC
//! between real processes ([`QuicTransport`]), or an in-process network
//! ([`MemoryTransport`]) for the seeded actor-level harness, which runs
//! every node's Raft member in one process on virtual time. Both carry
//! the same codec frames, so the harness exercises the wire format too.

use std::future::Future;
use std::net::SocketAddr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::memory::MemoryTransport;
use super::quic::{QuicTransport, TransportError};
use super::tls::NodeIdentity;

/// One node's endpoint (server and client); clones share it.
#[derive(Clone)]
pub enum Transport {
    Quic(QuicTransport),
    Memory(MemoryTransport),
}

impl Transport {
    /// Binds a QUIC endpoint (see [`QuicTransport::bind`]).
    pub fn bind(addr: SocketAddr, identity: &NodeIdentity) -> Result<Transport, TransportError> {
        QuicTransport::bind(addr, identity).map(Transport::Quic)
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Transport::Quic(t) => t.local_addr(),
            Transport::Memory(t) => Some(t.addr()),
        }
    }

    pub fn node(&self) -> &str {
        match self {
            Transport::Quic(t) => t.node(),
            Transport::Memory(t) => t.node(),
        }
    }

    /// Fault injection: drop all traffic with `peer` (both directions).
    pub fn block(&self, peer: &str) {
        match self {
            Transport::Quic(t) => t.block(peer),
            Transport::Memory(t) => t.block(peer),
        }
    }

    pub fn unblock(&self, peer: &str) {
        match self {
            Transport::Quic(t) => t.unblock(peer),
            Transport::Memory(t) => t.unblock(peer),
        }
    }

    /// See [`QuicTransport::drop_if_silent`] (nothing to drop in memory).
    pub fn drop_if_silent(&self, peer: &str) {
        if let Transport::Quic(t) = self {
            t.drop_if_silent(peer);
        }
    }

    /// Whether `peer` can be reached now.
    pub fn connected(&self, peer: &str) -> bool {
        match self {
            Transport::Quic(t) => t.connected(peer),
            Transport::Memory(t) => t.connected(peer),
        }
    }

    /// See [`QuicTransport::warm`] (nothing to warm in memory).
    pub fn warm(&self, peer: &str, addr: SocketAddr) {
        if let Transport::Quic(t) = self {
            t.warm(peer, addr);
        }
    }

    /// Sends `request` to `peer` at `addr` and waits for its answer.
    pub async fn call<Req, Resp>(&self, peer: &str, addr: SocketAddr, request: &Req) -> Result<Resp, TransportError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        match self {
            Transport::Quic(t) => t.call(peer, addr, request).await,
            Transport::Memory(t) => t.call(peer, request).await,
        }
    }

    /// Sends `bytes` as they are as one request and returns the raw answer
    /// (tests of what a QUIC server does with malformed frames).
    #[doc(hidden)]
    pub async fn call_raw(&self, peer: &str, addr: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>, TransportError> {
        match self {
            Transport::Quic(t) => t.call_raw(peer, addr, bytes).await,
            Transport::Memory(_) => Err(TransportError::Endpoint("raw frames need a QUIC endpoint".into())),
        }
    }

    /// Serves requests with `handler` until the endpoint closes.
    pub fn serve<Req, Resp, H, Fut>(&self, handler: H) -> tokio::task::JoinHandle<()>
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        H: Fn(String, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, String>> + Send + 'static,
    {
        match self {
            Transport::Quic(t) => t.serve(handler),
            Transport::Memory(t) => t.serve(handler),
        }
    }

    /// Closes the endpoint and every connection.
    pub fn close(&self) {
        match self {
            Transport::Quic(t) => t.close(),
            Transport::Memory(t) => t.close(),
        }
    }

    /// Waits until every connection of the closed endpoint is gone.
    pub async fn closed(&self) {
        if let Transport::Quic(t) = self {
            t.closed().await;
        }
    }
}
