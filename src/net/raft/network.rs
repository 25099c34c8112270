//! openraft's network over the QUIC transport: one [`PeerRequest`] per
//! RPC, to the address and name the membership records for the target.
//!
//! openraft gives an append only one heartbeat interval and a vote one
//! election timeout, and drops the RPC when that runs out. On a loaded
//! machine a follower's fsync outlasts that often; cancelling the exchange
//! then would lose its work and, retried at once, the next one too, so
//! that a new leader never gets its first entry committed and the
//! majority's watchdogs run out. So each RPC runs in a task of its own,
//! which finishes (bounded by the transport's call timeout) even when
//! openraft stopped waiting: the follower keeps what it appended and
//! answers the retry at once. At most [`MAX_DETACHED`] run per member, and
//! a connection whose peer answered nothing for a second is closed when a
//! call to it times out (ending the calls still waiting on it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};

use super::{Member, NodeId, TypeConfig};
use crate::net::peer::{PeerReply, PeerRequest};
use crate::net::quic::TransportError;
use crate::net::transport::Transport;

/// RPCs to one member still running after openraft stopped waiting, at
/// most: past it a member that does not answer gets no new task.
const MAX_DETACHED: usize = 8;

/// How long a call refused for [`MAX_DETACHED`] waits before it fails.
const PILED_UP_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// Builds a client per target member.
#[derive(Clone)]
pub struct Network {
    transport: Transport,
    /// RPCs running per member (shared by all its clients).
    running: Arc<Mutex<HashMap<NodeId, Arc<AtomicUsize>>>>,
}

impl Network {
    pub fn new(transport: Transport) -> Network {
        Network {
            transport,
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// The connection to one member (the transport caches the QUIC
/// connection and reconnects on its own).
pub struct Peer {
    transport: Transport,
    target: NodeId,
    member: Member,
    running: Arc<AtomicUsize>,
}

/// Counts one running RPC until dropped.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, Member, RaftError<NodeId, E>>;

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Peer {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(target)
            .or_default()
            .clone();
        Peer {
            transport: self.transport.clone(),
            target,
            member: node.clone(),
            running,
        }
    }
}

/// Every transport failure is a plain network error, never
/// `Unreachable`: openraft backs off from unreachable members for seconds,
/// and a member that restarts meanwhile hears no leader and disrupts the
/// cluster with an election. Retrying at the heartbeat pace costs little.
fn network_error<E: std::error::Error>(e: TransportError) -> RPCError<NodeId, Member, E> {
    RPCError::Network(NetworkError::new(&e))
}

impl Peer {
    async fn call<E: std::error::Error>(
        &self,
        request: PeerRequest,
        option: &RPCOption,
    ) -> Result<PeerReply, RPCError<NodeId, Member, E>> {
        let addr: SocketAddr = self
            .member
            .addr
            .parse()
            .map_err(|e: std::net::AddrParseError| RPCError::Network(NetworkError::new(&e)))?;
        if self.running.fetch_add(1, Ordering::AcqRel) >= MAX_DETACHED {
            self.running.fetch_sub(1, Ordering::AcqRel);
            // Calls pile up: the connection is likely dead. Closing it ends
            // the calls waiting on it, and the next one connects afresh.
            self.transport.drop_if_silent(&self.member.name);
            // openraft retries a failed append at once: without a pause
            // here that is a busy loop (on virtual time, one that never
            // lets the clock advance).
            tokio::time::sleep(option.hard_ttl().min(PILED_UP_PAUSE)).await;
            return Err(network_error(TransportError::Timeout(self.member.name.clone())));
        }
        let running = Running(self.running.clone());
        let (transport, name) = (self.transport.clone(), self.member.name.clone());
        let call = tokio::spawn(async move {
            let _running = running;
            transport.call::<PeerRequest, PeerReply>(&name, addr, &request).await
        });
        match tokio::time::timeout(option.hard_ttl(), call).await {
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(e))) => Err(network_error(e)),
            Ok(Err(e)) => Err(RPCError::Network(NetworkError::new(&e))),
            Err(_) => {
                self.transport.drop_if_silent(&self.member.name);
                Err(network_error(TransportError::Timeout(self.member.name.clone())))
            }
        }
    }

    fn remote<E: std::error::Error>(&self, e: RaftError<NodeId, E>) -> RPCError<NodeId, Member, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new_with_node(self.target, self.member.clone(), e))
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<NodeId, Member, E> {
    let e = std::io::Error::other("unexpected reply kind");
    RPCError::Network(NetworkError::new(&e))
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        match self.call(PeerRequest::Append(rpc), &option).await? {
            PeerReply::Append(result) => result.map_err(|e| self.remote(e)),
            _ => Err(unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        match self.call(PeerRequest::Snapshot(rpc), &option).await? {
            PeerReply::Snapshot(result) => result.map_err(|e| self.remote(e)),
            _ => Err(unexpected()),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> Result<VoteResponse<NodeId>, RpcErr> {
        match self.call(PeerRequest::Vote(rpc), &option).await? {
            PeerReply::Vote(result) => result.map_err(|e| self.remote(e)),
            _ => Err(unexpected()),
        }
    }
}
