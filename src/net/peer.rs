//! What cluster members say to each other over QUIC: Raft's RPCs, writes
//! forwarded to the leader, and membership changes. Each request gets
//! exactly one reply (see [`super::quic`] for the envelope and sender
//! authentication).

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::raft::{NodeId, Outcome, Proposal, TypeConfig};

/// A request from one member to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A write proposed on a follower, for the leader to commit.
    Write(Proposal),
    /// A new node asks to join; the sender's certificate must name it.
    Join {
        name: String,
        addr: String,
    },
    /// A joined node, now running, asks to become a voter.
    Promote {
        id: NodeId,
    },
    /// Remove a member (by name).
    Remove {
        name: String,
    },
    /// The cluster as this member sees it.
    Status,
}

/// Leader hint in refusals: who to ask instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderHint {
    pub name: String,
    pub addr: String,
}

/// Why a member refused a write or membership request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("not the leader")]
    NotLeader(Option<LeaderHint>),
    #[error("{0}")]
    Failed(String),
}

/// One member's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    pub node: String,
    pub id: NodeId,
    pub term: u64,
    pub leader: Option<String>,
    pub quorate: bool,
    /// `(name, addr, voter)` of every member.
    pub members: Vec<(String, String, bool)>,
    pub last_applied: Option<u64>,
    /// `(sid, node, state)` of every HA resource in this replica's state:
    /// the manager's placement, or the configured node before it has one.
    pub services: Vec<(String, String, String)>,
}

/// The reply to a [`PeerRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerReply {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    Written(Result<Outcome, Refusal>),
    Joined(Result<NodeId, Refusal>),
    Done(Result<(), Refusal>),
    Status(ClusterView),
}
