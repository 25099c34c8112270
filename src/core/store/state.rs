//! The cluster store's state machine: everything the HA stack shares
//! (configuration, manager status, LRM status per node, the CRM command
//! queue, lease locks) and the operations that change it.
//!
//! [`ClusterState::apply`] is deterministic: lock times come from the
//! proposer (`now_ms` in the operation), never from a clock read here, so
//! the same log of operations gives the same state on every replica. The
//! node's in-process store applies operations directly; the replicated
//! store of the transport layer applies the same operations through
//! consensus.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::lock_name::LockName;
use super::shared::Shared;
use crate::core::crm_command::CrmCommand;
use crate::core::rules::Rule;
use crate::core::status::{Groups, LrmStatus, ManagerStatus, ResourceConfig, ServiceConfig};
use crate::core::types::{NodeName, RequestState};

/// A lease lock: who holds it until when (milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: NodeName,
    pub expires_ms: u64,
}

/// The expiry of a lock held without a watchdog ([`Op::Acquire`] with
/// this as its lease): a disarmed node's agent lock, kept while its
/// services run unfenceable, so nobody else can take it, ever, until the
/// holder takes it again itself (with a watchdog and an ordinary lease).
pub const HELD_UNWATCHED: u64 = u64::MAX;

/// Everything the HA stack shares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    pub resources: Shared<ServiceConfig>,
    #[serde(default)]
    pub groups_cfg: Shared<BTreeMap<String, StoredGroup>>,
    /// The rules of rules.cfg, parsed once when written (the text form is
    /// `config::rules`').
    #[serde(default)]
    pub rules: Shared<Vec<Rule>>,
    pub manager_status: Shared<ManagerStatus>,
    /// Each node's status shared on its own: a round reads every node's
    /// without a copy.
    pub lrm_status: Shared<BTreeMap<NodeName, Shared<LrmStatus>>>,
    pub crm_commands: VecDeque<CrmCommand>,
    pub leases: BTreeMap<LockName, Lease>,
    /// Strictly increasing per service: bumped on every placement, handed
    /// to agents as the fencing token.
    #[serde(default)]
    pub epochs: Shared<BTreeMap<String, u64>>,
    /// Last heartbeat of every node (its own clock, milliseconds since the
    /// epoch): how members of a replicated store see each other online.
    #[serde(default)]
    pub heartbeats: BTreeMap<NodeName, u64>,
    /// How many manager status writes were ever applied (persisted, the
    /// same on every replica): a CRM round proposes its writes only for
    /// the version it read ([`Op::ExpectManagerVersion`]), so a master
    /// deciding from a stale view never overwrites a newer status.
    #[serde(default)]
    pub manager_version: u64,
    /// Manager status writes applied by this replica since it started (not
    /// persisted): lets an LRM act on a new command at once instead of at
    /// its next round.
    #[serde(skip)]
    pub manager_writes: u64,
}

/// A legacy group as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGroup {
    pub nodes: BTreeMap<NodeName, i64>,
    pub restricted: bool,
    pub nofailback: bool,
    pub comment: Option<String>,
}

/// One change to the shared state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Take or renew `lock` for `holder` until `now_ms + lease_ms`.
    Acquire {
        lock: LockName,
        holder: NodeName,
        now_ms: u64,
        lease_ms: u64,
    },
    /// Give up `lock` if `holder` holds it.
    Release {
        lock: LockName,
        holder: NodeName,
    },
    WriteManagerStatus(ManagerStatus),
    WriteLrmStatus {
        node: NodeName,
        status: LrmStatus,
    },
    /// Take every queued CRM command (the master consumes them).
    TakeCrmCommands,
    /// Take the first `count` queued CRM commands: those the master read
    /// (a command queued after its read stays for the next round).
    TakeFirstCrmCommands(usize),
    /// Guard: refused (and the rest of the proposal skipped) unless the
    /// manager status is still at this version, i.e. the round that
    /// proposes it read the newest status.
    ExpectManagerVersion(u64),
    /// Guard before an agent job that starts (or moves) a service: refused
    /// unless the committed manager status still places `sid` on `node`
    /// and its fencing epoch is still `epoch`. A start is only ever run
    /// under the service's current fencing token.
    ClaimStart {
        sid: String,
        node: NodeName,
        epoch: u64,
    },
    QueueCrmCommand(CrmCommand),
    SetRequestState {
        sid: String,
        state: RequestState,
    },
    /// Move a service's home node (the master's recovery after fencing;
    /// an LRM's move after a migration is [`Op::MoveServiceFrom`]).
    MoveService {
        sid: String,
        node: NodeName,
    },
    PutResource {
        sid: String,
        resource: ResourceConfig,
    },
    RemoveResource {
        sid: String,
    },
    /// A node says it is alive (and, being committed, that it is quorate).
    Heartbeat {
        node: NodeName,
        now_ms: u64,
    },
    /// Create or replace a legacy group (groups.cfg).
    PutGroup {
        id: String,
        group: StoredGroup,
    },
    RemoveGroup {
        id: String,
    },
    /// Replace the rules (rules.cfg).
    SetRules(Vec<Rule>),
    /// Compare and swap: apply `ops` only if [`ClusterState::config_digest`]
    /// is `digest`, all of them or none.
    Cas {
        digest: String,
        ops: Vec<Op>,
    },
    /// Guard: refused (and the rest of the proposal skipped) unless the
    /// store holds no resources. Seeding a fresh store with the resources
    /// a node's configuration declares goes behind it: a node's own
    /// replica may not have applied the seed yet (a restart whose saved
    /// commit index is behind, a new member), and a seed decided from it
    /// would put back every resource as declared, undoing what happened
    /// since (a recovery's move of a service to another node: Raft seed
    /// 8681).
    ExpectNoResources,
    /// Move a service's home node from `from` to `node`, only if it is
    /// still on `from`: the LRM's move after its migration or relocation,
    /// retried until it commits (a retry after the master moved the
    /// service on, a recovery, changes nothing).
    MoveServiceFrom {
        sid: String,
        from: NodeName,
        node: NodeName,
    },
}

impl Op {
    /// The proposal that seeds a fresh store with `resources`, behind
    /// [`Op::ExpectNoResources`] (empty if there are none): the daemon's
    /// seed from its configuration and the chaos harness's.
    pub fn seed(resources: impl IntoIterator<Item = (String, ResourceConfig)>) -> Vec<Op> {
        let puts: Vec<Op> = (resources.into_iter())
            .map(|(sid, resource)| Op::PutResource { sid, resource })
            .collect();
        if puts.is_empty() {
            return puts;
        }
        std::iter::once(Op::ExpectNoResources).chain(puts).collect()
    }
}

/// What applying an operation gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Done,
    /// The lock is now held until `expires_ms`.
    Granted {
        expires_ms: u64,
    },
    /// Somebody else holds the lock.
    Held {
        holder: NodeName,
        expires_ms: u64,
    },
    Commands(Vec<CrmCommand>),
    NotFound,
    /// A [`Op::Cas`] found another configuration digest; nothing changed.
    DigestMismatch {
        current: String,
    },
    /// The replies of a [`Op::Cas`]'s operations.
    Batch(Vec<Reply>),
    /// Not applied: an earlier lease acquisition or guard of the same
    /// proposal was refused (see [`ClusterState::apply_proposal`]).
    Skipped,
    /// A guard ([`Op::ExpectManagerVersion`], [`Op::ClaimStart`]) found the
    /// proposer's view out of date.
    Stale {
        reason: String,
    },
}

impl Reply {
    /// Whether this reply refuses its operation (and with it the rest of
    /// its proposal): a lock held by another node, a stale view, or a
    /// skipped operation.
    pub fn refused(&self) -> bool {
        matches!(self, Reply::Held { .. } | Reply::Stale { .. } | Reply::Skipped)
    }
}

impl ClusterState {
    /// Whether `node`'s last committed heartbeat is at most `window_ms`
    /// old at `now_ms`: how every store tells another member online.
    pub fn heard_within(&self, node: &str, now_ms: u64, window_ms: u64) -> bool {
        self.heartbeats
            .get(node)
            .is_some_and(|t| now_ms.saturating_sub(*t) <= window_ms)
    }

    /// Whether `holder` may take `lock` at `now_ms`: it is free, expired,
    /// or already theirs.
    pub fn lock_available(&self, lock: &LockName, holder: &str, now_ms: u64) -> bool {
        match self.leases.get(lock) {
            None => true,
            Some(lease) => lease.holder == holder || now_ms > lease.expires_ms,
        }
    }

    /// Applies one proposal: its operations in order, except that once a
    /// lease acquisition or a guard is refused the rest are skipped. A
    /// round proposes its lease renewals first and its decisions after
    /// them, so a node whose view was stale (it believed it held a lease it
    /// did not, or read an old manager status or fencing epoch) never gets
    /// its decisions written: writes are guarded by the lease and by the
    /// versions the round read.
    pub fn apply_proposal(&mut self, ops: Vec<Op>) -> Vec<Reply> {
        let mut refused = false;
        ops.into_iter()
            .map(|op| {
                if refused {
                    return Reply::Skipped;
                }
                let reply = self.apply(op);
                refused = reply.refused();
                reply
            })
            .collect()
    }

    /// Applies one operation (deterministic; no clock reads).
    pub fn apply(&mut self, op: Op) -> Reply {
        match op {
            Op::Acquire {
                lock,
                holder,
                now_ms,
                lease_ms,
            } => {
                if !self.lock_available(&lock, &holder, now_ms) {
                    let lease = &self.leases[&lock];
                    return Reply::Held {
                        holder: lease.holder.clone(),
                        expires_ms: lease.expires_ms,
                    };
                }
                // A renewal never shortens a lease (a new leader or a slow
                // clock must not cut somebody's fencing window short).
                // A hold without watchdog (a disarm) ends here: the holder
                // takes its lock back with a watchdog and an ordinary lease.
                let previous = self
                    .leases
                    .get(&lock)
                    .filter(|l| l.holder == holder && l.expires_ms != HELD_UNWATCHED)
                    .map(|l| l.expires_ms);
                let expires_ms = now_ms.saturating_add(lease_ms).max(previous.unwrap_or(0));
                self.leases.insert(lock, Lease { holder, expires_ms });
                Reply::Granted { expires_ms }
            }
            Op::Release { lock, holder } => {
                if self.leases.get(&lock).is_some_and(|l| l.holder == holder) {
                    self.leases.remove(&lock);
                }
                Reply::Done
            }
            Op::WriteManagerStatus(status) => {
                for (sid, sd) in &status.service_status {
                    let old = self.manager_status.service_status.get(sid);
                    let placed_anew = old.is_none_or(|o| o.node != sd.node || o.state != sd.state);
                    if placed_anew {
                        *self.epochs.entry(sid.clone()).or_insert(0) += 1;
                    }
                }
                self.manager_status = status.into();
                self.manager_writes += 1;
                self.manager_version += 1;
                Reply::Done
            }
            Op::WriteLrmStatus { node, status } => {
                self.lrm_status.insert(node, status.into());
                Reply::Done
            }
            Op::TakeCrmCommands => Reply::Commands(self.crm_commands.drain(..).collect()),
            Op::TakeFirstCrmCommands(count) => {
                let count = count.min(self.crm_commands.len());
                Reply::Commands(self.crm_commands.drain(..count).collect())
            }
            Op::ExpectManagerVersion(version) => {
                if self.manager_version == version {
                    Reply::Done
                } else {
                    Reply::Stale {
                        reason: format!(
                            "manager status is at version {}, the round read {version}",
                            self.manager_version
                        ),
                    }
                }
            }
            Op::ExpectNoResources => {
                if self.resources.is_empty() {
                    Reply::Done
                } else {
                    Reply::Stale {
                        reason: format!("the store holds {} resources already", self.resources.len()),
                    }
                }
            }
            Op::ClaimStart { sid, node, epoch } => {
                let placed = self.manager_status.service_status.get(&sid).map(|s| s.node.as_str());
                let current = self.epochs.get(&sid).copied().unwrap_or(0);
                if placed == Some(node.as_str()) && current == epoch {
                    Reply::Done
                } else {
                    Reply::Stale {
                        reason: format!(
                            "'{sid}' is placed on {} with fencing token {current}, not on {node} with {epoch}",
                            placed.unwrap_or("no node")
                        ),
                    }
                }
            }
            Op::QueueCrmCommand(command) => {
                self.crm_commands.push_back(command);
                Reply::Done
            }
            Op::SetRequestState { sid, state } => match self.resources.get_mut(&sid) {
                Some(resource) => {
                    resource.state = state;
                    Reply::Done
                }
                None => Reply::NotFound,
            },
            Op::MoveService { sid, node } => match self.resources.get_mut(&sid) {
                Some(resource) => {
                    resource.node = Some(node);
                    Reply::Done
                }
                None => Reply::NotFound,
            },
            Op::MoveServiceFrom { sid, from, node } => match self.resources.get_mut(&sid) {
                Some(resource) if resource.node.as_deref() == Some(from.as_str()) => {
                    resource.node = Some(node);
                    Reply::Done
                }
                Some(resource) => Reply::Stale {
                    reason: format!(
                        "service '{sid}' is on node '{}' now, not '{from}'",
                        resource.node.as_deref().unwrap_or("")
                    ),
                },
                None => Reply::NotFound,
            },
            Op::PutResource { sid, resource } => {
                self.resources.insert(sid, resource);
                Reply::Done
            }
            Op::RemoveResource { sid } => {
                self.resources.remove(&sid);
                Reply::Done
            }
            Op::Heartbeat { node, now_ms } => {
                let last = self.heartbeats.entry(node).or_insert(0);
                *last = (*last).max(now_ms);
                Reply::Done
            }
            Op::PutGroup { id, group } => {
                self.groups_cfg.insert(id, group);
                Reply::Done
            }
            Op::RemoveGroup { id } => match self.groups_cfg.remove(&id) {
                Some(_) => Reply::Done,
                None => Reply::NotFound,
            },
            Op::SetRules(rules) => {
                self.rules = rules.into();
                Reply::Done
            }
            Op::Cas { digest, ops } => {
                let current = self.config_digest();
                if current != digest {
                    return Reply::DigestMismatch { current };
                }
                // All or none: a nested compare-and-swap that fails
                // discards the whole batch.
                let mut next = self.clone();
                let mut replies = Vec::with_capacity(ops.len());
                for op in ops {
                    let reply = next.apply(op);
                    if let Reply::DigestMismatch { .. } = reply {
                        return reply;
                    }
                    replies.push(reply);
                }
                *self = next;
                Reply::Batch(replies)
            }
        }
    }

    /// The digest of the configuration (resources, groups, rules): hex
    /// SHA-256 over a canonical JSON rendering (maps are ordered, structs
    /// have a fixed field order), so every process and replica computes
    /// the same value for the same configuration. Editors send it back in
    /// an [`Op::Cas`] to detect concurrent changes. A resource's `node` is
    /// left out: it is where the resource runs (status, as upstream's
    /// digest of resources.cfg does not cover it), so a failover or
    /// migration does not invalidate a digest a user took before it.
    pub fn config_digest(&self) -> String {
        #[derive(Serialize)]
        struct Canonical<'a> {
            resources: BTreeMap<&'a str, ResourceConfig>,
            groups: &'a BTreeMap<String, StoredGroup>,
            rules: &'a [Rule],
        }
        let resources = self
            .resources
            .iter()
            .map(|(sid, r)| {
                (
                    sid.as_str(),
                    ResourceConfig {
                        node: None,
                        ..r.clone()
                    },
                )
            })
            .collect();
        let canonical = Canonical {
            resources,
            groups: &self.groups_cfg,
            rules: &self.rules,
        };
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(b"hactor-config-v2\0");
        context.update(&bytes);
        context.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The resources as the core reads them.
    pub fn service_config(&self) -> ServiceConfig {
        (*self.resources).clone()
    }

    /// Legacy groups as the core reads them.
    pub fn groups(&self) -> Groups {
        self.groups_cfg
            .iter()
            .map(|(id, g)| {
                let group = crate::core::status::GroupConfig {
                    nodes: g.nodes.clone(),
                    restricted: g.restricted,
                    nofailback: g.nofailback,
                    comment: g.comment.clone(),
                };
                (id.clone(), group)
            })
            .collect()
    }
}

/// A consistent view of the store: the state, whether this node's
/// store is quorate, and the cluster's members with whether each is
/// online.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub state: ClusterState,
    pub quorate: bool,
    pub members: BTreeMap<NodeName, bool>,
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("cluster not quorate")]
    NoQuorum,
    #[error("store write failed - {0}")]
    Io(String),
    #[error("cluster store unavailable - {0}")]
    Unavailable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop_now() -> CrmCommand {
        CrmCommand::Stop {
            sid: "vm:100".into(),
            timeout: 0,
        }
    }

    fn acquire(lock: &str, holder: &str, now_ms: u64) -> Op {
        Op::Acquire {
            lock: lock.parse().unwrap(),
            holder: holder.into(),
            now_ms,
            lease_ms: 6000,
        }
    }

    #[test]
    fn leases_are_exclusive_until_they_expire() {
        let mut state = ClusterState::default();
        assert_eq!(
            state.apply(acquire("ha_agent_node1_lock", "node1", 1000)),
            Reply::Granted { expires_ms: 7000 }
        );
        assert_eq!(
            state.apply(acquire("ha_agent_node1_lock", "node2", 7000)),
            Reply::Held {
                holder: "node1".into(),
                expires_ms: 7000
            },
            "not before the lease ran out"
        );
        assert_eq!(
            state.apply(acquire("ha_agent_node1_lock", "node2", 7001)),
            Reply::Granted { expires_ms: 13001 }
        );
    }

    #[test]
    fn a_refused_acquisition_skips_the_rest_of_its_proposal() {
        let mut state = ClusterState::default();
        state.apply(acquire("ha_agent_node2_lock", "node1", 1000));
        let replies = state.apply_proposal(vec![
            acquire("ha_agent_node2_lock", "node2", 2000),
            Op::QueueCrmCommand(CrmCommand::ArmHa),
        ]);
        assert_eq!(replies[1], Reply::Skipped);
        assert!(state.crm_commands.is_empty(), "a stale round's writes never land");
        let replies = state.apply_proposal(vec![
            acquire("ha_agent_node1_lock", "node1", 2000),
            Op::QueueCrmCommand(CrmCommand::ArmHa),
        ]);
        assert_eq!(replies[1], Reply::Done);
    }

    #[test]
    fn renewal_never_shortens_a_lease() {
        let mut state = ClusterState::default();
        state.apply(acquire("ha_manager_lock", "a", 10_000));
        assert_eq!(
            state.apply(acquire("ha_manager_lock", "a", 1_000)),
            Reply::Granted { expires_ms: 16_000 }
        );
    }

    #[test]
    fn a_lock_held_unwatched_is_nobody_elses_until_its_holder_takes_it_back() {
        let mut state = ClusterState::default();
        state.apply(acquire("ha_agent_node1_lock", "node1", 1000));
        let hold = Op::Acquire {
            lock: "ha_agent_node1_lock".parse().unwrap(),
            holder: "node1".into(),
            now_ms: 2000,
            lease_ms: HELD_UNWATCHED,
        };
        assert_eq!(
            state.apply(hold),
            Reply::Granted {
                expires_ms: HELD_UNWATCHED
            }
        );
        assert_eq!(
            state.apply(acquire("ha_agent_node1_lock", "node2", 1_000_000_000)),
            Reply::Held {
                holder: "node1".into(),
                expires_ms: HELD_UNWATCHED
            },
            "no time frees it"
        );
        assert_eq!(
            state.apply(acquire("ha_agent_node1_lock", "node1", 50_000)),
            Reply::Granted { expires_ms: 56_000 },
            "the holder takes it back with an ordinary lease, which then runs out"
        );
        assert_eq!(
            state.apply(acquire("ha_agent_node1_lock", "node2", 56_001)),
            Reply::Granted { expires_ms: 62_001 }
        );
    }

    fn test_rule(id: &str) -> Rule {
        Rule {
            id: id.into(),
            kind: crate::core::rules::RuleKind::ResourceAffinity { positive: false },
            resources: ["vm:100".to_string(), "vm:101".to_string()].into(),
            disabled: false,
            comment: None,
            order: 1,
        }
    }

    fn stored(state: RequestState) -> ResourceConfig {
        ResourceConfig::new("node1", state)
    }

    #[test]
    fn config_digest_is_stable_and_covers_only_the_configuration() {
        let mut state = ClusterState::default();
        assert_eq!(
            state.config_digest(),
            ClusterState::default().config_digest(),
            "deterministic"
        );
        assert_eq!(state.config_digest().len(), 64);
        let empty = state.config_digest();
        state.apply(Op::QueueCrmCommand(CrmCommand::ArmHa));
        state.apply(acquire("ha_manager_lock", "a", 1));
        assert_eq!(state.config_digest(), empty, "runtime state is not configuration");
        state.apply(Op::PutResource {
            sid: "vm:100".into(),
            resource: stored(RequestState::Started),
        });
        let one = state.config_digest();
        assert_ne!(one, empty);
        // Insertion order does not matter.
        let mut a = state.clone();
        let mut b = state.clone();
        for (x, y) in [("vm:101", "vm:102"), ("vm:102", "vm:101")] {
            a.apply(Op::PutResource {
                sid: x.into(),
                resource: stored(RequestState::Stopped),
            });
            b.apply(Op::PutResource {
                sid: y.into(),
                resource: stored(RequestState::Stopped),
            });
        }
        assert_eq!(a.config_digest(), b.config_digest());
        // A known value pins the canonical form across releases (checked
        // with sha256sum).
        assert_eq!(
            ClusterState::default().config_digest(),
            "196451b061ca7337b6c75f52941238b564dfb1a3a12027f2ace2ae867f041242"
        );
        state.apply(Op::SetRules(vec![test_rule("x")]));
        assert_ne!(state.config_digest(), one);
    }

    /// Issue 11 §5: the digest changed on every failover, so a `--digest`
    /// taken before one was refused after it.
    #[test]
    fn config_digest_does_not_cover_where_a_resource_runs() {
        let mut state = ClusterState::default();
        state.apply(Op::PutResource {
            sid: "vm:100".into(),
            resource: stored(RequestState::Started),
        });
        let before = state.config_digest();
        // Pinned (sha256 of "hactor-config-v2\0" and the canonical JSON,
        // checked with sha256sum): the node is rendered as null.
        assert_eq!(
            before,
            "1a8e132211215aa857d7f8e12e6a5991144560d3b9cd73fa897c7acfdf9c9308"
        );
        let mut moved = state.clone();
        moved.resources.get_mut("vm:100").unwrap().node = Some("node2".into());
        assert_eq!(
            moved.config_digest(),
            before,
            "a failover is not a configuration change"
        );
        moved.resources.get_mut("vm:100").unwrap().max_restart = 2;
        assert_ne!(moved.config_digest(), before, "a setting is");
    }

    #[test]
    fn cas_applies_all_or_nothing() {
        let mut state = ClusterState::default();
        let digest = state.config_digest();
        let group = StoredGroup {
            nodes: BTreeMap::from([("node1".to_string(), 2)]),
            restricted: false,
            nofailback: false,
            comment: None,
        };
        let batch = vec![
            Op::PutGroup {
                id: "g1".into(),
                group: group.clone(),
            },
            Op::SetRules(vec![test_rule("r1")]),
            Op::RemoveGroup { id: "nope".into() },
        ];
        assert_eq!(
            state.apply(Op::Cas {
                digest: digest.clone(),
                ops: batch.clone()
            }),
            Reply::Batch(vec![Reply::Done, Reply::Done, Reply::NotFound])
        );
        assert_eq!(state.groups_cfg["g1"], group);
        assert_eq!(*state.rules, vec![test_rule("r1")]);
        // The same digest again is stale now: nothing changes.
        let before = state.clone();
        let current = state.config_digest();
        assert_eq!(
            state.apply(Op::Cas {
                digest,
                ops: vec![Op::RemoveGroup { id: "g1".into() }]
            }),
            Reply::DigestMismatch {
                current: current.clone()
            }
        );
        assert_eq!(state, before);
        // A failing nested compare-and-swap discards the earlier ops too.
        let reply = state.apply(Op::Cas {
            digest: current.clone(),
            ops: vec![
                Op::RemoveGroup { id: "g1".into() },
                Op::Cas {
                    digest: "stale".into(),
                    ops: vec![],
                },
            ],
        });
        assert!(matches!(reply, Reply::DigestMismatch { .. }), "{reply:?}");
        assert_eq!(state, before);
        assert_eq!(
            state.apply(Op::Cas {
                digest: current,
                ops: vec![Op::RemoveGroup { id: "g1".into() }]
            }),
            Reply::Batch(vec![Reply::Done])
        );
        assert!(state.groups_cfg.is_empty());
    }

    fn placed(state: &mut ClusterState, sid: &str, node: &str) {
        let mut ms = (*state.manager_status).clone();
        ms.service_status.insert(
            sid.into(),
            crate::core::status::ServiceStatus::new(crate::core::types::ServiceState::Started, node, "u".into()),
        );
        state.apply(Op::WriteManagerStatus(ms));
    }

    #[test]
    fn a_start_is_confirmed_only_under_the_current_placement_and_token() {
        let mut state = ClusterState::default();
        placed(&mut state, "proc:a", "node2");
        let claim = |node: &str, epoch: u64| Op::ClaimStart {
            sid: "proc:a".into(),
            node: node.into(),
            epoch,
        };
        assert_eq!(state.apply(claim("node2", 1)), Reply::Done);
        // Recovered elsewhere: a restarted node2 deciding from its stale
        // replica claims the old placement and token, and is refused, with
        // every later op of its proposal.
        placed(&mut state, "proc:a", "node3");
        let replies = state.apply_proposal(vec![
            acquire("ha_agent_node2_lock", "node2", 1000),
            claim("node2", 1),
            Op::QueueCrmCommand(CrmCommand::ArmHa),
        ]);
        assert!(matches!(replies[0], Reply::Granted { .. }));
        assert!(matches!(&replies[1], Reply::Stale { reason } if reason.contains("node3 with fencing token 2")));
        assert_eq!(replies[2], Reply::Skipped);
        assert!(state.crm_commands.is_empty());
        assert!(replies[1].refused() && replies[2].refused() && !replies[0].refused());
        // The right node with an old token is refused too.
        assert!(state.apply(claim("node3", 1)).refused());
        assert_eq!(state.apply(claim("node3", 2)), Reply::Done);
        assert!(
            state.apply(claim("node3", 3)).refused(),
            "a token from the future is no token"
        );
        assert!(
            state
                .apply(Op::ClaimStart {
                    sid: "proc:unknown".into(),
                    node: "node3".into(),
                    epoch: 0
                })
                .refused()
        );
    }

    /// The LRM's move after a migration is retried until the store
    /// answers (Raft seed 3510): it lands only while the service is still
    /// on the node it left, so a retry of a move that had committed, or
    /// one that comes after the master recovered the service elsewhere,
    /// changes nothing.
    #[test]
    fn a_move_from_a_node_lands_only_while_the_service_is_there() {
        let mut state = ClusterState::default();
        state.apply(Op::PutResource {
            sid: "vm:100".into(),
            resource: ResourceConfig::new("node2", RequestState::Started),
        });
        let moved = |from: &str, to: &str| Op::MoveServiceFrom {
            sid: "vm:100".into(),
            from: from.into(),
            node: to.into(),
        };
        let node = |state: &ClusterState| state.resources["vm:100"].node.clone();
        assert_eq!(state.apply(moved("node2", "node4")), Reply::Done);
        assert_eq!(node(&state).as_deref(), Some("node4"));
        assert!(state.apply(moved("node2", "node4")).refused(), "a retry");
        state.apply(Op::MoveService {
            sid: "vm:100".into(),
            node: "node1".into(),
        });
        assert!(state.apply(moved("node2", "node4")).refused(), "after a recovery");
        assert_eq!(node(&state).as_deref(), Some("node1"));
        assert_eq!(
            state.apply(Op::MoveServiceFrom {
                sid: "vm:999".into(),
                from: "node1".into(),
                node: "node2".into()
            }),
            Reply::NotFound
        );
    }

    /// Raft seed 8681: a restarted node whose replica had not applied the
    /// first seed yet seeded again and put a recovered service back on
    /// its fenced node. The seed now lands only in a store without
    /// resources, whatever the proposer's replica showed.
    #[test]
    fn a_resource_seed_lands_only_in_a_store_without_resources() {
        let seed = |node: &str| Op::seed([("vm:100".into(), ResourceConfig::new(node, RequestState::Started))]);
        assert_eq!(Op::seed([]), vec![], "nothing to seed, no proposal");
        let mut state = ClusterState::default();
        assert_eq!(state.apply_proposal(seed("node1")), vec![Reply::Done, Reply::Done]);
        state.apply(Op::MoveService {
            sid: "vm:100".into(),
            node: "node3".into(),
        });
        let before = state.clone();
        let replies = state.apply_proposal(seed("node1"));
        assert!(matches!(replies[0], Reply::Stale { .. }), "{replies:?}");
        assert_eq!(replies[1], Reply::Skipped);
        assert_eq!(state, before, "the recovery's move stands");
    }

    #[test]
    fn a_status_write_lands_only_on_the_version_its_round_read() {
        let mut state = ClusterState::default();
        assert_eq!(state.manager_version, 0);
        let write = Op::WriteManagerStatus(ManagerStatus::default());
        let replies = state.apply_proposal(vec![Op::ExpectManagerVersion(0), write.clone()]);
        assert_eq!(replies, vec![Reply::Done, Reply::Done]);
        assert_eq!(state.manager_version, 1);
        // A master that read version 0 (a stale replica) writes nothing.
        let before = state.clone();
        let replies = state.apply_proposal(vec![Op::ExpectManagerVersion(0), write]);
        assert!(matches!(replies[0], Reply::Stale { .. }));
        assert_eq!(replies[1], Reply::Skipped);
        assert_eq!(state, before);
    }

    #[test]
    fn the_master_takes_only_the_commands_it_read() {
        let mut state = ClusterState::default();
        state.apply(Op::QueueCrmCommand(CrmCommand::ArmHa));
        state.apply(Op::QueueCrmCommand(stop_now()));
        assert_eq!(
            state.apply(Op::TakeFirstCrmCommands(1)),
            Reply::Commands(vec![CrmCommand::ArmHa])
        );
        assert_eq!(state.crm_commands, VecDeque::from([stop_now()]));
        assert_eq!(
            state.apply(Op::TakeFirstCrmCommands(5)),
            Reply::Commands(vec![stop_now()])
        );
    }

    #[test]
    fn epochs_increase_on_every_placement() {
        let mut state = ClusterState::default();
        let mut ms = ManagerStatus::default();
        let sd = |node: &str| {
            crate::core::status::ServiceStatus::new(crate::core::types::ServiceState::Started, node, "u".into())
        };
        ms.service_status.insert("vm:100".into(), sd("node1"));
        state.apply(Op::WriteManagerStatus(ms.clone()));
        state.apply(Op::WriteManagerStatus(ms.clone()));
        assert_eq!(state.epochs["vm:100"], 1, "an unchanged placement keeps its token");
        ms.service_status.insert("vm:100".into(), sd("node2"));
        state.apply(Op::WriteManagerStatus(ms));
        assert_eq!(state.epochs["vm:100"], 2);
    }
}
