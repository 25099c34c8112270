//! The replicated cluster store as a node uses it: Raft (openraft) over
//! the QUIC transport, the [`ClusterState`] state machine, writes
//! forwarded to the leader, quorum as "this node can commit", members'
//! liveness from their committed heartbeats, and membership changes
//! (join, promote, remove).
//!
//! Reads are local (the applied state of this replica, like upstream's
//! pmxcfs reads); every write goes through the leader and is applied on
//! every replica in log order. Lease safety does not depend on read
//! freshness: a lease is granted or refused when its acquisition is
//! applied, with the proposer's timestamp.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, SnapshotPolicy};

use super::clock::Clock;
use super::peer::{ClusterView, LeaderHint, PeerReply, PeerRequest, Refusal};
use super::quic::TransportError;
use super::raft::Proposal;
use super::raft::log_store::LogStore;
use super::raft::network::Network;
use super::raft::state_machine::StateMachine;
use super::raft::{Json, Member, NodeId, Raft};
use super::transport::Transport;
use crate::core::store::{ClusterState, Op, Reply, StoreError};
use crate::core::types::NodeName;

mod election;

/// Timing of the replicated store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreTiming {
    pub heartbeat: Duration,
    pub election_min: Duration,
    /// A write not committed within this is reported as failed (it may
    /// still commit; every operation tolerates that).
    pub write_timeout: Duration,
    /// How often, at most, this node commits its liveness heartbeat (see
    /// [`StoreTiming::heartbeat_every`]).
    pub alive_interval: Duration,
    /// This node is quorate while its last commit is at most this old.
    pub quorum_window: Duration,
    /// Another node is online while its last heartbeat is at most this old.
    pub online_window: Duration,
}

impl StoreTiming {
    /// The store timing for a node round of `round` (the CRM and LRM
    /// renew leases once a round).
    pub fn for_round(round: Duration, raft_heartbeat: Duration, raft_election: Duration) -> StoreTiming {
        StoreTiming {
            heartbeat: raft_heartbeat,
            election_min: raft_election,
            // Half a round: a write stalled by a leader change is given up
            // in time for the next round to renew the lease.
            write_timeout: round / 2,
            alive_interval: round / 2,
            quorum_window: round,
            online_window: round * 3,
        }
    }

    /// The heartbeat interval: `alive_interval`, or a third of the online
    /// window if that is shorter, so that the others see this node online
    /// even when two heartbeats in a row commit late, and see it offline
    /// soon after it died when the window is short (the `pve` profile:
    /// 5 s, as upstream's corosync membership drops a dead node within
    /// seconds).
    pub fn heartbeat_every(&self) -> Duration {
        self.alive_interval
            .min(self.online_window / 3)
            .max(Duration::from_millis(1))
    }
}

/// A snapshot is due once this many entries were applied since the last
/// one (openraft's usual policy, and what a small state gets)...
const MIN_SNAPSHOT_ENTRIES: u64 = 1000;

/// ...or, for a large state, once about as many bytes of log as the state
/// holds were applied, at this many bytes an entry (an idle round's
/// heartbeat or lease renewal). Writing a 15 MB state every 1000 entries
/// (a minute or two of idle rounds) would cost more than the rounds
/// themselves; this way a snapshot costs at most as much as the log it
/// replaces.
const ENTRY_BYTES: u64 = 200;

/// How often the snapshot policy is checked: once per Raft heartbeat
/// (100 ms under `fast`, 1 s under `pve`), about as often as entries can
/// pile up; a fixed 100 ms poll would wake a `pve` member ten times per
/// heartbeat for nothing.
fn snapshot_check(timing: &StoreTiming) -> Duration {
    timing.heartbeat.max(Duration::from_millis(1))
}

/// Whether a snapshot is due after `since` entries, the last snapshot's
/// state having `snapshot_len` bytes.
fn snapshot_due(since: u64, snapshot_len: u64) -> bool {
    since >= MIN_SNAPSHOT_ENTRIES.max(snapshot_len / ENTRY_BYTES)
}

/// splitmix64 of `x`: one well-spread draw from a seed.
pub(crate) fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How often a request follows "not the leader" before giving up.
const LEADER_ATTEMPTS: usize = 20;

/// Where a member reads the time and draws its chances: the system's (the
/// daemon), or the seeded harness's, which replays a run exactly.
#[derive(Debug, Clone, Default)]
pub struct RaftRuntime {
    /// Stamps heartbeats and commits (lease stamps must agree with the
    /// node's rounds, which read the same clock).
    pub clock: Clock,
    /// Draw openraft's election timeout and the election guard's retry
    /// delays from a generator seeded by the clock and the member id,
    /// instead of from the system (openraft's own timeout is then fixed
    /// per member start, as openraft 0.9 draws it once anyway).
    pub seeded: bool,
    /// Write failures injected into the member's files (the simulator's
    /// disk faults; none in the daemon).
    pub disk: crate::net::raft::log_store::DiskFaults,
}

impl RaftRuntime {
    /// The seed of this member's draws.
    fn seed(&self, id: NodeId) -> u64 {
        let base = if self.seeded {
            self.clock.now_ms()
        } else {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        };
        base ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

struct Inner {
    id: NodeId,
    node: NodeName,
    raft: Raft,
    sm: StateMachine,
    /// The log, read by the election guard (openraft's log reader is a clone).
    log: LogStore,
    transport: Transport,
    timing: StoreTiming,
    clock: Clock,
    /// Seeds the election guard's retry delays ([`RaftRuntime::seed`]).
    jitter_seed: u64,
    /// Wall time (ms) of this node's last successful commit.
    last_commit_ms: AtomicU64,
    /// Background tasks (serving, heartbeat, promotion), ended at shutdown.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// A handle on the node's replica; clones share it.
#[derive(Clone)]
pub struct RaftStore {
    inner: Arc<Inner>,
}

impl RaftStore {
    /// Opens the replica persisted under `dir` and starts Raft as member
    /// `id` (inside a tokio runtime that lives as long as the node).
    pub async fn start(
        cluster: &str,
        id: NodeId,
        dir: &std::path::Path,
        transport: Transport,
        timing: StoreTiming,
    ) -> Result<RaftStore, String> {
        Self::start_with(cluster, id, dir, transport, timing, RaftRuntime::default()).await
    }

    /// [`RaftStore::start`] with the clock and chances of `runtime`.
    pub async fn start_with(
        cluster: &str,
        id: NodeId,
        dir: &std::path::Path,
        transport: Transport,
        timing: StoreTiming,
        runtime: RaftRuntime,
    ) -> Result<RaftStore, String> {
        let raft_dir = dir.join("raft");
        let (log, sm) = super::raft::open_storage_with(&raft_dir, runtime.disk.clone())?;
        let heartbeat = timing.heartbeat.as_millis() as u64;
        let election = timing.election_min.as_millis() as u64;
        let jitter_seed = runtime.seed(id);
        // openraft draws its timeout in [min, max) from the thread's
        // generator; a seeded member narrows that to one value drawn here.
        let (election_min, election_max) = if runtime.seeded {
            let min = election + splitmix(jitter_seed) % election.max(1);
            (min, min + 1)
        } else {
            (election, election * 2)
        };
        let config = openraft::Config {
            cluster_name: cluster.to_string(),
            heartbeat_interval: heartbeat,
            election_timeout_min: election_min,
            election_timeout_max: election_max,
            // Snapshots are triggered by `spawn_snapshots`, sized to the state.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: 200,
            ..Default::default()
        }
        .validate()
        .map_err(|e| format!("raft configuration: {e}"))?;
        let network = Network::new(transport.clone());
        let raft = Raft::new(id, Arc::new(config), network, log.clone(), sm.clone())
            .await
            .map_err(|e| format!("starting raft: {e}"))?;
        let store = RaftStore {
            inner: Arc::new(Inner {
                id,
                node: transport.node().to_string(),
                raft,
                sm,
                log,
                transport,
                timing,
                clock: runtime.clock,
                jitter_seed,
                last_commit_ms: AtomicU64::new(0),
                tasks: std::sync::Mutex::new(Vec::new()),
            }),
        };
        store.spawn_snapshots();
        Ok(store)
    }

    /// Makes this node the first member of a new cluster (once; later
    /// starts find the membership in the log).
    pub async fn bootstrap(&self, addr: SocketAddr) -> Result<(), String> {
        let member = Member {
            name: self.inner.node.clone(),
            addr: addr.to_string(),
        };
        self.bootstrap_voters(BTreeMap::from([(self.inner.id, member)])).await
    }

    /// Makes `voters` (this node among them) a new cluster at once, as the
    /// seeded harness starts its clusters; the daemon's members join one
    /// by one instead ([`RaftStore::bootstrap`], then `cluster join`).
    pub async fn bootstrap_voters(&self, members: BTreeMap<NodeId, Member>) -> Result<(), String> {
        if self.inner.raft.is_initialized().await.map_err(|e| e.to_string())? {
            return Ok(());
        }
        self.inner
            .raft
            .initialize(members)
            .await
            .map_err(|e| format!("initializing the cluster: {e}"))
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    pub fn node(&self) -> &str {
        &self.inner.node
    }

    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// This replica's applied state.
    pub fn snapshot(&self) -> ClusterState {
        self.inner.sm.read().state.clone()
    }

    pub fn manager_writes(&self) -> u64 {
        self.inner.sm.read().state.manager_writes
    }

    /// Whether this node committed something within the quorum window.
    pub fn quorate(&self) -> bool {
        let last = self.inner.last_commit_ms.load(Ordering::Relaxed);
        last > 0 && self.inner.clock.now_ms().saturating_sub(last) <= self.inner.timing.quorum_window.as_millis() as u64
    }

    /// Every member (voters and learners) and whether it is online: this
    /// node while quorate, the others while their heartbeats are fresh.
    pub fn members(&self) -> BTreeMap<NodeName, bool> {
        let now = self.inner.clock.now_ms();
        let window = self.inner.timing.online_window.as_millis() as u64;
        let applied = self.inner.sm.read();
        applied
            .membership
            .membership()
            .nodes()
            .map(|(_, m)| {
                let online = if m.name == self.inner.node {
                    self.quorate()
                } else {
                    applied.state.heard_within(&m.name, now, window)
                };
                (m.name.clone(), online)
            })
            .collect()
    }

    /// The name of the member this replica takes for the leader, if any.
    pub fn leader_name(&self) -> Option<String> {
        self.leader_hint().map(|hint| hint.name)
    }

    fn leader_hint(&self) -> Option<LeaderHint> {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        let member = metrics.membership_config.membership().get_node(&leader)?.clone();
        Some(LeaderHint {
            name: member.name,
            addr: member.addr,
        })
    }

    /// Returns once this replica's current leader is no longer `name`
    /// (another leader, or none during an election).
    async fn leader_changed_from(&self, name: &str) {
        let mut metrics = self.inner.raft.metrics();
        loop {
            if self.leader_hint().is_none_or(|hint| hint.name != name) {
                return;
            }
            if metrics.changed().await.is_err() {
                // Raft stopped: nothing changes any more.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Commits `ops` here if leader; otherwise refuses with a hint.
    async fn commit_local(&self, ops: Proposal) -> Result<Vec<Reply>, Refusal> {
        match self.inner.raft.client_write(ops).await {
            Ok(response) => Ok(response.data.0),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                let hint = f.leader_node.map(|m| LeaderHint {
                    name: m.name,
                    addr: m.addr,
                });
                Err(Refusal::NotLeader(hint))
            }
            Err(e) => Err(Refusal::Failed(e.to_string())),
        }
    }

    /// Sends `request` to the leader, following redirects.
    async fn to_leader(&self, request: impl Fn() -> PeerRequest) -> Result<PeerReply, Refusal> {
        let mut hint = self.leader_hint();
        for _ in 0..LEADER_ATTEMPTS {
            let Some(leader) = hint.take() else {
                // No leader known yet (an election): ask again shortly.
                tokio::time::sleep(self.inner.timing.heartbeat).await;
                hint = self.leader_hint();
                continue;
            };
            let addr: SocketAddr = leader
                .addr
                .parse()
                .map_err(|e| Refusal::Failed(format!("leader address '{}': {e}", leader.addr)))?;
            let request = request();
            let call = self
                .inner
                .transport
                .call::<PeerRequest, PeerReply>(&leader.name, addr, &request);
            // A call to a leader that died hangs until its timeout; once
            // this replica learns of another leader (or of an election),
            // ask again at once: the first round after a leader change
            // must not wait out a call to the old one, its watchdog client
            // is running out.
            // `biased`: no random branch order, so a seeded run replays.
            let reply = tokio::select! {
                biased;
                reply = call => reply.map_err(|e| Refusal::Failed(e.to_string()))?,
                () = self.leader_changed_from(&leader.name) => {
                    hint = self.leader_hint();
                    continue;
                }
            };
            match reply {
                PeerReply::Written(Err(Refusal::NotLeader(next)))
                | PeerReply::Joined(Err(Refusal::NotLeader(next)))
                | PeerReply::Done(Err(Refusal::NotLeader(next)))
                | PeerReply::ReadIndex(Err(Refusal::NotLeader(next))) => {
                    tokio::time::sleep(self.inner.timing.heartbeat / 2).await;
                    hint = next.or_else(|| self.leader_hint());
                }
                reply => return Ok(reply),
            }
        }
        Err(Refusal::Failed("no cluster leader reachable".into()))
    }

    async fn propose(&self, ops: Vec<Op>) -> Result<Vec<Reply>, Refusal> {
        let proposal = Proposal::new(ops);
        match self.commit_local(proposal.clone()).await {
            Err(Refusal::NotLeader(_)) => {}
            other => return other,
        }
        match self.to_leader(|| PeerRequest::Write(proposal.clone())).await? {
            PeerReply::Written(result) => result.map(|o| o.0),
            _ => Err(Refusal::Failed("unexpected reply to a write".into())),
        }
    }

    /// If this node leads: the index of the last entry in its log, which
    /// covers everything the cluster committed so far. Not confirmed by a
    /// quorum (openraft's read index confirms with a heartbeat whose
    /// timeout is one heartbeat interval, which a loaded machine misses
    /// often): a deposed leader may answer with an old index, and that is
    /// safe, because every decision a round proposes is checked again
    /// where it commits (lease guards, [`Op::ExpectManagerVersion`],
    /// [`Op::ClaimStart`]). The barrier is there so that a node catching up
    /// decides nothing at all until it has, rather than having its
    /// decisions refused.
    fn read_index_local(&self) -> Result<u64, Refusal> {
        let metrics = self.inner.raft.metrics().borrow().clone();
        if metrics.state == openraft::ServerState::Leader && metrics.current_leader == Some(self.inner.id) {
            Ok(metrics.last_log_index.unwrap_or(0))
        } else {
            Err(Refusal::NotLeader(self.leader_hint()))
        }
    }

    /// A read barrier: returns once this replica has applied everything
    /// the leader had in its log when the call began (asked of the leader
    /// from a follower). A CRM or LRM round reads its snapshot only after
    /// it, so no node decides from a stale replica, e.g. one restarted
    /// after its node was fenced and its services recovered elsewhere: it
    /// neither becomes master nor starts anything before it caught up.
    /// Fails (the round then counts as not quorate) when no leader answers
    /// or this replica does not catch up within the write timeout.
    pub async fn read_barrier(&self) -> Result<(), StoreError> {
        let timeout = self.inner.timing.write_timeout;
        let barrier = async {
            let index = match self.read_index_local() {
                Err(Refusal::NotLeader(_)) => match self.to_leader(|| PeerRequest::ReadIndex).await? {
                    PeerReply::ReadIndex(index) => index?,
                    _ => return Err(Refusal::Failed("unexpected reply to a read index request".into())),
                },
                other => other?,
            };
            self.inner
                .raft
                .wait(Some(timeout))
                .applied_index_at_least(Some(index), "read barrier")
                .await
                .map_err(|e| Refusal::Failed(format!("replica not caught up: {e}")))?;
            Ok(())
        };
        match tokio::time::timeout(timeout, barrier).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Refusal::NotLeader(_))) | Err(_) => Err(StoreError::NoQuorum),
            Ok(Err(Refusal::Failed(e))) => Err(StoreError::Unavailable(e)),
        }
    }

    /// Applies `ops` in order through consensus. Fails (without knowing
    /// whether they will still commit) when no quorum answers in time.
    pub async fn apply(&self, ops: Vec<Op>) -> Result<Vec<Reply>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let started = self.inner.clock.now_ms();
        match tokio::time::timeout(self.inner.timing.write_timeout, self.propose(ops)).await {
            Ok(Ok(replies)) => {
                self.inner.last_commit_ms.fetch_max(started, Ordering::Relaxed);
                Ok(replies)
            }
            Ok(Err(Refusal::NotLeader(_))) | Err(_) => Err(StoreError::NoQuorum),
            Ok(Err(Refusal::Failed(e))) => Err(StoreError::Unavailable(e)),
        }
    }

    /// Commits this node's heartbeat every [`StoreTiming::heartbeat_every`]: the proof of
    /// quorum and, for the others, of liveness.
    pub fn spawn_heartbeat(&self) {
        let store = self.clone();
        self.keep(tokio::spawn(async move {
            let mut tick = tokio::time::interval(store.inner.timing.heartbeat_every());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                store.warm_connections();
                let op = Op::Heartbeat {
                    node: store.inner.node.clone(),
                    now_ms: store.inner.clock.now_ms(),
                };
                if let Err(e) = store.apply(vec![op]).await {
                    tracing::debug!("heartbeat not committed: {e}");
                }
            }
        }));
    }

    /// Builds a snapshot when [`snapshot_due`] says so (then openraft
    /// purges the log it covers, keeping the last 200 entries).
    fn spawn_snapshots(&self) {
        let store = self.clone();
        self.keep(tokio::spawn(async move {
            let mut tick = tokio::time::interval(snapshot_check(&store.inner.timing));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut requested = None;
            loop {
                tick.tick().await;
                let (applied, snapshot) = {
                    let metrics = store.inner.raft.metrics();
                    let metrics = metrics.borrow();
                    (
                        metrics.last_applied.map_or(0, |l| l.index),
                        metrics.snapshot.map(|l| l.index),
                    )
                };
                let since = applied.saturating_sub(snapshot.map_or(0, |i| i + 1));
                // One request per snapshot: wait until it shows (or, if
                // building it failed, ask again a while later).
                if requested.is_some_and(|(at, when): (Option<u64>, tokio::time::Instant)| {
                    at != snapshot || when.elapsed() > Duration::from_secs(10)
                }) {
                    requested = None;
                }
                if requested.is_none() && snapshot_due(since, store.inner.sm.snapshot_len()) {
                    requested = Some((snapshot, tokio::time::Instant::now()));
                    if let Err(e) = store.inner.raft.trigger().snapshot().await {
                        tracing::debug!("snapshot not triggered: {e}");
                    }
                }
            }
        }));
    }

    /// Starts the election guard ([`election`]): no election without a
    /// reachable majority, while a voter leads, while backing a viable
    /// candidate or against a longer log, and retries after a failed
    /// election on delays drawn afresh each time (openraft 0.9 keeps one
    /// per member, which can keep two survivors splitting the vote).
    /// `hold` keeps a member that just (re)started from campaigning
    /// before the leader could reach it.
    pub fn spawn_election_guard(&self, hold: Duration) {
        election::spawn_guard(self, hold);
    }

    /// The voting members, as the applied membership has them.
    fn voters(&self) -> Vec<(NodeId, Member)> {
        let applied = self.inner.sm.read();
        let membership = applied.membership.membership();
        membership
            .voter_ids()
            .filter_map(|id| membership.get_node(&id).map(|m| (id, m.clone())))
            .collect()
    }

    /// Connects to every member not connected yet.
    fn warm_connections(&self) {
        let members: Vec<Member> = {
            let applied = self.inner.sm.read();
            applied
                .membership
                .membership()
                .nodes()
                .map(|(_, m)| m.clone())
                .collect()
        };
        for member in members.into_iter().filter(|m| m.name != self.inner.node) {
            if let Ok(addr) = member.addr.parse() {
                self.inner.transport.warm(&member.name, addr);
            }
        }
    }

    fn keep(&self, task: tokio::task::JoinHandle<()>) {
        self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(task);
    }

    /// This member's view of the cluster.
    pub fn view(&self) -> ClusterView {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let leader = metrics
            .current_leader
            .and_then(|id| membership.get_node(&id))
            .map(|m| m.name.clone());
        let applied = self.inner.sm.read();
        let state = &applied.state;
        ClusterView {
            node: self.inner.node.clone(),
            id: self.inner.id,
            term: metrics.current_term,
            leader,
            quorate: self.quorate(),
            members: membership
                .nodes()
                .map(|(id, m)| (m.name.clone(), m.addr.clone(), voters.contains(id)))
                .collect(),
            settled: membership.get_joint_config().len() == 1,
            last_applied: metrics.last_applied.map(|l| l.index),
            master: state.manager_status.master_node.clone(),
            services: services(state),
            leases: state
                .leases
                .iter()
                .map(|(lock, lease)| (lock.to_string(), lease.holder.clone(), lease.expires_ms))
                .collect(),
        }
    }

    fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow().current_leader == Some(self.inner.id)
    }

    /// Admits a new node as a learner and returns its id (leader only).
    async fn admit(&self, from: &str, name: String, addr: String) -> Result<NodeId, Refusal> {
        if from != name {
            return Err(Refusal::Failed(format!(
                "the joining node's certificate names '{from}', not '{name}'"
            )));
        }
        addr.parse::<SocketAddr>()
            .map_err(|e| Refusal::Failed(format!("address '{addr}': {e}")))?;
        if !self.is_leader() {
            return Err(Refusal::NotLeader(self.leader_hint()));
        }
        let metrics = self.inner.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        if let Some((id, member)) = membership.nodes().find(|(_, m)| m.name == name) {
            let learner = membership.learner_ids().any(|l| l == *id);
            if learner && member.addr == addr {
                return Ok(*id); // a repeated join (the first answer was lost)
            }
            return Err(Refusal::Failed(format!(
                "node name '{name}' is already a cluster member"
            )));
        }
        let id = membership.nodes().map(|(id, _)| *id).max().unwrap_or(0) + 1;
        let member = Member { name, addr };
        let change = self.inner.raft.add_learner(id, member, false);
        match tokio::time::timeout(Duration::from_secs(5), change).await {
            Ok(Ok(_)) => Ok(id),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(Refusal::NotLeader(self.leader_hint()))
            }
            Ok(Err(e)) => Err(Refusal::Failed(e.to_string())),
            Err(_) => Err(Refusal::Failed("the cluster has no quorum to admit a node".into())),
        }
    }

    async fn change(&self, change: ChangeMembers<NodeId, Member>) -> Result<(), Refusal> {
        if !self.is_leader() {
            return Err(Refusal::NotLeader(self.leader_hint()));
        }
        // A quorum must confirm this leader first: a change proposed
        // without one stays in the leader's log, is refused to the caller
        // as timed out, and still commits once the quorum is back (a
        // refused removal would then happen after all).
        match tokio::time::timeout(Duration::from_secs(2), self.inner.raft.get_read_log_id()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(Refusal::Failed(format!(
                    "the cluster has no quorum for a membership change: {e}"
                )));
            }
            Err(_) => {
                return Err(Refusal::Failed(
                    "the cluster has no quorum for a membership change (no majority confirmed the leader)".into(),
                ));
            }
        }
        let future = self.inner.raft.change_membership(change, false);
        match tokio::time::timeout(Duration::from_secs(10), future).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(Refusal::NotLeader(self.leader_hint()))
            }
            Ok(Err(e)) => Err(Refusal::Failed(e.to_string())),
            Err(_) => Err(Refusal::Failed("membership change timed out (no quorum?)".into())),
        }
    }

    async fn remove(&self, name: &str) -> Result<(), Refusal> {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let Some(id) = membership.nodes().find(|(_, m)| m.name == name).map(|(id, _)| *id) else {
            return Err(Refusal::Failed(format!("'{name}' is not a cluster member")));
        };
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        if voters.len() == 1 && voters.contains(&id) {
            return Err(Refusal::Failed(format!(
                "'{name}' is the last voter; the cluster cannot remove it"
            )));
        }
        if voters.contains(&id) {
            self.change(ChangeMembers::RemoveVoters(BTreeSet::from([id]))).await
        } else {
            self.change(ChangeMembers::RemoveNodes(BTreeSet::from([id]))).await
        }
    }

    /// Answers a peer's request (the transport authenticated `from`).
    pub async fn handle(&self, from: String, request: PeerRequest) -> Result<PeerReply, String> {
        let raft = &self.inner.raft;
        Ok(match request {
            PeerRequest::Append(rpc) => PeerReply::Append(raft.append_entries(rpc).await),
            PeerRequest::Vote(rpc) => PeerReply::Vote(raft.vote(rpc).await),
            PeerRequest::Snapshot(rpc) => PeerReply::Snapshot(raft.install_snapshot(rpc).await),
            PeerRequest::Write(proposal) => {
                let timeout = self.inner.timing.write_timeout;
                match tokio::time::timeout(timeout, self.commit_local(proposal)).await {
                    Ok(result) => PeerReply::Written(result.map(Json)),
                    Err(_) => PeerReply::Written(Err(Refusal::Failed("commit timed out".into()))),
                }
            }
            // Join and promotion name their sender, so they are not
            // forwarded: a follower answers with a leader hint instead.
            PeerRequest::Join { name, addr } => PeerReply::Joined(self.admit(&from, name, addr).await),
            PeerRequest::Promote { id } => {
                if from_member(self, &from) != Some(id) {
                    PeerReply::Done(Err(Refusal::Failed(format!("'{from}' may only promote itself"))))
                } else {
                    PeerReply::Done(self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await)
                }
            }
            PeerRequest::Remove { name } => match self.remove(&name).await {
                Err(Refusal::NotLeader(_)) => self
                    .to_leader(|| PeerRequest::Remove { name: name.clone() })
                    .await
                    .unwrap_or_else(|e| PeerReply::Done(Err(e))),
                result => PeerReply::Done(result),
            },
            PeerRequest::Status => PeerReply::Status(self.view()),
            PeerRequest::ReadIndex => PeerReply::ReadIndex(self.read_index_local()),
            PeerRequest::LeaderCheck => PeerReply::LeaderCheck {
                leads: self.read_index_local().is_ok() && self.quorate(),
                last_log: self.inner.log.bounds().1,
            },
        })
    }

    /// Serves peers on the node's endpoint.
    pub fn serve(&self) {
        let store = self.clone();
        let task = self.inner.transport.serve(move |from, request: PeerRequest| {
            let store = store.clone();
            async move { store.handle(from, request).await }
        });
        self.keep(task);
    }

    /// Asks the leader to make this (learner) node a voter, retrying until
    /// it is one.
    pub fn spawn_promotion(&self) {
        let store = self.clone();
        self.keep(tokio::spawn(async move {
            loop {
                let view = store.view();
                let me = view.members.iter().find(|(name, _, _)| *name == view.node);
                if me.is_some_and(|(_, _, voter)| *voter) && view.settled {
                    tracing::info!("this node is a voting member of the cluster");
                    return;
                }
                if me.is_some() {
                    let id = store.id();
                    match store.to_leader(|| PeerRequest::Promote { id }).await {
                        Ok(PeerReply::Done(Ok(()))) => continue,
                        Ok(PeerReply::Done(Err(e))) => tracing::info!("promotion to voter pending: {e}"),
                        Ok(_) => tracing::warn!("unexpected reply to a promotion request"),
                        Err(e) => tracing::info!("promotion to voter pending: {e}"),
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }

    /// Starts an election at once (fault injection: tests that need the
    /// Raft leader on a given node).
    pub async fn trigger_election(&self) {
        if let Err(e) = self.inner.raft.trigger().elect().await {
            tracing::warn!("triggering an election: {e}");
        }
    }

    /// Resolves once the Raft core has stopped (a storage error, a panic
    /// in the core, or [`RaftStore::shutdown`]), with the reason: after
    /// that this replica never changes again, so the daemon must fail
    /// stop rather than serve a frozen view.
    pub async fn core_stopped(&self) -> String {
        let mut metrics = self.inner.raft.metrics();
        loop {
            if let Err(e) = &metrics.borrow().running_state {
                return e.to_string();
            }
            if metrics.changed().await.is_err() {
                return "the Raft core is gone".into();
            }
        }
    }

    /// The applied log index and the digest of the applied state, read
    /// together (replicas at one index must agree).
    /// The index of the last applied entry (cheap: no digest).
    pub fn applied_index(&self) -> Option<u64> {
        self.inner.sm.read().last_applied.map(|l| l.index)
    }

    pub fn applied_digest(&self) -> (Option<u64>, String) {
        let applied = self.inner.sm.read();
        (applied.last_applied.map(|l| l.index), applied.digest())
    }

    /// Stops Raft (the node is going down).
    pub async fn shutdown(&self) {
        for task in self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
        let _ = self.inner.raft.shutdown().await;
        self.inner.transport.close();
    }
}

fn services(state: &ClusterState) -> Vec<(String, String, String)> {
    state
        .resources
        .iter()
        .map(|(sid, resource)| match state.manager_status.service_status.get(sid) {
            Some(ss) => (sid.clone(), ss.node.clone(), ss.state.to_string()),
            None => (sid.clone(), resource.node.clone().unwrap_or_default(), "new".into()),
        })
        .collect()
}

fn from_member(store: &RaftStore, name: &str) -> Option<NodeId> {
    let metrics = store.inner.raft.metrics().borrow().clone();
    metrics
        .membership_config
        .membership()
        .nodes()
        .find(|(_, m)| m.name == name)
        .map(|(id, _)| *id)
}

/// Sends one request to a member, as a client that is not (yet) running a
/// replica (`hactor cluster join`, `remove-node`, `status`).
pub async fn ask(
    transport: &Transport,
    peer: &str,
    addr: SocketAddr,
    request: PeerRequest,
) -> Result<PeerReply, TransportError> {
    transport.call::<PeerRequest, PeerReply>(peer, addr, &request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_come_every_third_of_the_online_window_at_most_every_half_round() {
        let round = StoreTiming::for_round(Duration::from_secs(10), Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(round.heartbeat_every(), Duration::from_secs(5));
        let pve = StoreTiming {
            online_window: Duration::from_secs(5),
            ..round
        };
        assert_eq!(pve.heartbeat_every(), Duration::from_secs(5) / 3);
        let fast = StoreTiming {
            online_window: Duration::from_secs(3),
            ..StoreTiming::for_round(
                Duration::from_secs(1),
                Duration::from_millis(100),
                Duration::from_millis(300),
            )
        };
        assert_eq!(fast.heartbeat_every(), Duration::from_millis(500));
    }

    #[test]
    fn snapshots_come_every_1000_entries_or_as_much_log_as_the_state_holds() {
        assert!(!snapshot_due(999, 0));
        assert!(snapshot_due(1000, 0));
        assert!(snapshot_due(1000, 150_000), "a small state: every 1000 entries");
        // 100 000 resources: about 15 MB of state, one snapshot per
        // 75 000 entries (an hour or more of idle rounds).
        assert!(!snapshot_due(74_999, 15_000_000));
        assert!(snapshot_due(75_000, 15_000_000));
    }
}
