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

use super::raft::{LogId, NodeId, Outcome, Proposal, TypeConfig};

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
    /// A follower asks the member it takes for the leader whether it still
    /// leads and commits (the election guard's pre-vote: nobody campaigns
    /// while a working leader answers).
    LeaderCheck,
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
    /// `(lock, holder, expires_ms)` of every lease in this replica's
    /// state: when the holder renewed it last (`expires_ms` minus the
    /// lease), which `hactor-bench timeline` uses to place a fault where
    /// the simulator's lands, just before the master's round.
    #[serde(default)]
    pub leases: Vec<(String, String, u64)>,
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
    /// Whether the member leads and committed within its quorum window,
    /// and the last entry of its log (the election guard defers to a
    /// longer log).
    LeaderCheck {
        leads: bool,
        last_log: Option<LogId>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::store::Op;
    use crate::net::codec;
    use crate::net::raft::Json;

    /// Valid frames with bytes flipped, cut or appended, and pure noise:
    /// decoding gives a value or an error, never a panic.
    #[test]
    fn mangled_peer_frames_never_panic() {
        let samples = [
            PeerRequest::Write(vec![Op::QueueCrmCommand("migrate vm:100 node2".parse().unwrap())].into()),
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

    mod fuzz {
        use super::*;
        use crate::net::raft::{Entry, LogId, Member};
        use openraft::{CommittedLeaderId, EntryPayload, Membership, SnapshotMeta, StoredMembership, Vote};
        use proptest::prelude::*;
        use std::collections::{BTreeMap, BTreeSet};

        fn arb_log_id() -> impl Strategy<Value = LogId> {
            (0u64..9, 0u64..4, any::<u64>()).prop_map(|(t, n, i)| LogId::new(CommittedLeaderId::new(t, n), i))
        }

        fn arb_op() -> impl Strategy<Value = Op> {
            prop_oneof![
                crate::core::crm_command::any_command().prop_map(Op::QueueCrmCommand),
                Just(Op::TakeCrmCommands),
                (
                    crate::core::store::lock_name::any_lock(),
                    "[a-z0-9]{1,6}",
                    any::<u64>(),
                    any::<u64>()
                )
                    .prop_map(|(lock, holder, now_ms, lease_ms)| Op::Acquire {
                        lock,
                        holder,
                        now_ms,
                        lease_ms,
                    }),
                ("[a-z0-9]{1,6}", any::<u64>()).prop_map(|(node, now_ms)| Op::Heartbeat { node, now_ms }),
            ]
        }

        fn arb_entry() -> impl Strategy<Value = Entry> {
            let payload = prop_oneof![
                Just(EntryPayload::Blank),
                proptest::collection::vec(arb_op(), 0..3).prop_map(|ops| EntryPayload::Normal(ops.into())),
                (1u64..4, "[a-z0-9]{1,6}").prop_map(|(id, name)| {
                    let member = Member {
                        name,
                        addr: "127.0.0.1:7401".into(),
                    };
                    EntryPayload::Membership(Membership::new(
                        vec![BTreeSet::from([id])],
                        BTreeMap::from([(id, member)]),
                    ))
                }),
            ];
            (arb_log_id(), payload).prop_map(|(log_id, payload)| Entry { log_id, payload })
        }

        fn arb_request() -> impl Strategy<Value = PeerRequest> {
            let vote = (any::<u64>(), 0u64..5).prop_map(|(t, n)| Vote::new(t, n));
            prop_oneof![
                proptest::collection::vec(arb_op(), 0..4).prop_map(|ops| PeerRequest::Write(ops.into())),
                ("[a-z0-9]{1,8}", ".{0,21}").prop_map(|(name, addr)| PeerRequest::Join { name, addr }),
                any::<u64>().prop_map(|id| PeerRequest::Promote { id }),
                ".{0,8}".prop_map(|name| PeerRequest::Remove { name }),
                Just(()).prop_map(|_| PeerRequest::Status),
                (vote.clone(), proptest::option::of(arb_log_id()))
                    .prop_map(|(v, last)| PeerRequest::Vote(openraft::raft::VoteRequest::new(v, last))),
                (
                    vote.clone(),
                    proptest::option::of(arb_log_id()),
                    proptest::collection::vec(arb_entry(), 0..3),
                    proptest::option::of(arb_log_id())
                )
                    .prop_map(|(vote, prev_log_id, entries, leader_commit)| {
                        PeerRequest::Append(openraft::raft::AppendEntriesRequest {
                            vote,
                            prev_log_id,
                            entries,
                            leader_commit,
                        })
                    }),
                (
                    vote,
                    any::<u64>(),
                    proptest::collection::vec(any::<u8>(), 0..64),
                    any::<bool>()
                )
                    .prop_map(|(vote, offset, data, done)| {
                        PeerRequest::Snapshot(openraft::raft::InstallSnapshotRequest {
                            vote,
                            meta: SnapshotMeta {
                                last_log_id: None,
                                last_membership: StoredMembership::default(),
                                snapshot_id: "1-1-1".into(),
                            },
                            offset,
                            data,
                            done,
                        })
                    }),
            ]
        }

        fn arb_refusal() -> impl Strategy<Value = Refusal> {
            prop_oneof![
                ".{0,20}".prop_map(Refusal::Failed),
                proptest::option::of(("[a-z0-9]{1,6}", ".{0,21}").prop_map(|(name, addr)| LeaderHint { name, addr }))
                    .prop_map(Refusal::NotLeader),
            ]
        }

        fn arb_reply() -> impl Strategy<Value = PeerReply> {
            let view = (
                "[a-z0-9]{1,6}",
                any::<u64>(),
                any::<bool>(),
                proptest::collection::vec(("[a-z0-9]{1,6}", ".{0,21}", any::<bool>()), 0..4),
                proptest::option::of(any::<u64>()),
                proptest::collection::vec((".{0,12}", "[a-z0-9]{1,6}", "[a-z_]{1,10}"), 0..3),
            )
                .prop_map(|(node, term, quorate, members, last_applied, services)| ClusterView {
                    node: node.clone(),
                    id: term % 7,
                    term,
                    leader: Some(node),
                    quorate,
                    members,
                    settled: !quorate,
                    last_applied,
                    master: None,
                    services,
                    leases: vec![("ha_manager_lock".into(), "node1".into(), term)],
                });
            prop_oneof![
                view.prop_map(PeerReply::Status),
                proptest::result::maybe_ok(any::<u64>(), arb_refusal()).prop_map(PeerReply::Joined),
                proptest::result::maybe_ok(Just(()), arb_refusal()).prop_map(PeerReply::Done),
                proptest::result::maybe_ok(
                    proptest::collection::vec(Just(crate::core::store::Reply::Done), 0..3).prop_map(Json),
                    arb_refusal()
                )
                .prop_map(PeerReply::Written),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn replies_round_trip(reply in arb_reply()) {
                let frame = codec::encode(&reply).unwrap();
                let back: PeerReply = codec::decode(&frame).unwrap();
                prop_assert_eq!(codec::encode(&back).unwrap(), frame);
            }

            /// Every request survives a frame: decoding gives a value
            /// that encodes to the same bytes.
            #[test]
            fn requests_round_trip(request in arb_request()) {
                let frame = codec::encode(&request).unwrap();
                let back: PeerRequest = codec::decode(&frame).unwrap();
                prop_assert_eq!(codec::encode(&back).unwrap(), frame);
            }

            /// A mangled request frame is an error with a message, or a
            /// value whose own frame decodes to the same frame again.
            #[test]
            fn mangled_requests_are_errors_or_consistent_values(
                request in arb_request(),
                flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
                cut in proptest::option::of(any::<prop::sample::Index>()),
            ) {
                let mut bytes = codec::encode(&request).unwrap();
                for (at, x) in &flips {
                    let i = at.index(bytes.len());
                    bytes[i] ^= x;
                }
                if let Some(cut) = cut {
                    bytes.truncate(cut.index(bytes.len()));
                }
                match codec::decode::<PeerRequest>(&bytes) {
                    Ok(value) => {
                        let again = codec::encode(&value).unwrap();
                        let back: PeerRequest = codec::decode(&again).unwrap();
                        prop_assert_eq!(codec::encode(&back).unwrap(), again);
                    }
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
                let _ = codec::decode::<PeerReply>(&bytes);
            }

            #[test]
            fn arbitrary_frames_never_panic(body in proptest::collection::vec(any::<u8>(), 0..128)) {
                let mut bytes = ((body.len() + 2) as u32).to_be_bytes().to_vec();
                bytes.extend_from_slice(&codec::PROTOCOL_VERSION.to_be_bytes());
                bytes.extend_from_slice(&body);
                let _ = codec::decode::<PeerRequest>(&bytes);
                let _ = codec::decode::<PeerReply>(&bytes);
                let _ = codec::decode::<PeerRequest>(&body);
            }
        }
    }
}
