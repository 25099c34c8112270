//! openraft's network over the QUIC transport: one [`PeerRequest`] per
//! RPC, to the address and name the membership records for the target.

use std::net::SocketAddr;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};

use super::{Member, NodeId, TypeConfig};
use crate::net::peer::{PeerReply, PeerRequest};
use crate::net::quic::{Transport, TransportError};

/// Builds a client per target member.
#[derive(Clone)]
pub struct Network {
    pub transport: Transport,
}

/// The connection to one member (the transport caches the QUIC
/// connection and reconnects on its own).
pub struct Peer {
    transport: Transport,
    target: NodeId,
    member: Member,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, Member, RaftError<NodeId, E>>;

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Peer {
        Peer {
            transport: self.transport.clone(),
            target,
            member: node.clone(),
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
        let call = self
            .transport
            .call::<PeerRequest, PeerReply>(&self.member.name, addr, &request);
        match tokio::time::timeout(option.hard_ttl(), call).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(network_error(e)),
            Err(_) => Err(network_error(TransportError::Timeout(self.member.name.clone()))),
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
