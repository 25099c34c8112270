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
    /// A follower asks the leader for the index of its last log entry: the
    /// index the follower's replica must apply before it may decide
    /// anything from it.
    ReadIndex,
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
    /// No membership change is under way on this replica (a joint
    /// configuration needs a majority of the old and of the new voters).
    pub settled: bool,
    pub last_applied: Option<u64>,
    /// The CRM master the manager status names.
    pub master: Option<String>,
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
    ReadIndex(Result<u64, Refusal>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::codec;
    use crate::net::raft::Json;
    use crate::node::store::Op;

    /// Valid frames with bytes flipped, cut or appended, and pure noise:
    /// decoding gives a value or an error, never a panic.
    #[test]
    fn mangled_peer_frames_never_panic() {
        let samples = [
            PeerRequest::Write(Json(vec![Op::QueueCrmCommand("migrate vm:100 node2".into())])),
            PeerRequest::Join {
                name: "node4".into(),
                addr: "127.0.0.1:7400".into(),
            },
            PeerRequest::Vote(openraft::raft::VoteRequest::new(openraft::Vote::new(3, 2), None)),
            PeerRequest::Status,
        ];
        let mut seed = 0x2545f4914f6cdd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for sample in &samples {
            let frame = codec::encode(sample).unwrap();
            assert!(codec::decode::<PeerRequest>(&frame).is_ok());
            for _ in 0..5_000 {
                let mut bytes = frame.clone();
                match next() % 3 {
                    0 => {
                        for _ in 0..1 + next() % 4 {
                            let i = (next() as usize) % bytes.len();
                            bytes[i] ^= 1 << (next() % 8);
                        }
                    }
                    1 => bytes.truncate((next() as usize) % bytes.len()),
                    _ => bytes.extend((0..next() % 16).map(|_| next() as u8)),
                }
                let _ = codec::decode::<PeerRequest>(&bytes);
                let _ = codec::decode::<PeerReply>(&bytes);
            }
        }
        for _ in 0..20_000 {
            let len = (next() % 128) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= 6 {
                bytes[..4].copy_from_slice(&((len - 4) as u32).to_be_bytes());
                bytes[4..6].copy_from_slice(&codec::PROTOCOL_VERSION.to_be_bytes());
            }
            let _ = codec::decode::<PeerRequest>(&bytes);
        }
    }
}
