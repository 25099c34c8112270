//! The daemon's [`Env`]: one CRM or LRM round over a snapshot of the
//! cluster store.
//!
//! Reads come from the snapshot (with this round's own writes applied, so
//! the round reads its writes); writes, lease operations, watchdog calls
//! and worker jobs go to an ordered outbox that the actor carries out
//! after the round; what of it stands once the store has answered is
//! [`super::outcome`]'s decision.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::core::agent::{AgentHost, JobSpec};
use crate::core::crm_command::CrmCommand;
use crate::core::env::{DatacenterSettings, Env, EnvError, FenceDeviceState, NodeInfo, NodeShutdown, WatchdogHandle};
use crate::core::event::Event;
use crate::core::rules::Rule;
use crate::core::status::{Groups, LrmStatus, ManagerStatus, ServiceConfig};
use crate::core::timing::Timing;
use crate::core::types::{NodeName, RequestState, Time};
use crate::core::usage::{NodeStats, ResourceStats};
use crate::core::watchdog::Client;

use super::lock_name::LockName;
use super::shared::Shared;
use super::state::{ClusterState, HELD_UNWATCHED, Op};

/// Something the round wants done, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Store(Op),
    /// Arm the watchdog client (first lease, or after a restart).
    WatchdogArm,
    /// Arm it whatever the store answers, keeping an armed client's
    /// deadline ([`crate::core::env::Env::watchdog_arm_ahead`]).
    WatchdogArmAhead,
    /// Pet it: valid only if the preceding lease acquisition succeeds.
    WatchdogPet,
    /// Magic close.
    WatchdogClose,
    /// Run an agent action in the worker pool.
    Job(JobSpec),
    /// Start a fence-device run for the node (hardware fencing).
    FenceRun(NodeName),
    /// The node's fence was acknowledged: forget its device run.
    FenceReset(NodeName),
}

/// What a round needs besides the snapshot.
#[derive(Debug, Clone)]
pub struct RoundContext {
    pub node: NodeName,
    pub client: Client,
    pub now_ms: u64,
    pub quorate: bool,
    /// Cluster members and whether each is online.
    pub members: BTreeMap<NodeName, bool>,
    pub lease_ms: u64,
    pub timing: Timing,
    pub max_workers: usize,
    pub datacenter: DatacenterSettings,
    /// Whether the node itself is going down (set by a shutdown request).
    pub node_shutdown: NodeShutdown,
}

/// One round's environment.
pub struct RoundEnv<'a> {
    pub ctx: &'a RoundContext,
    pub state: &'a mut ClusterState,
    pub outbox: Vec<Outgoing>,
    pub events: Vec<Event>,
    /// Nodes fence devices can fence, with their run's state (`None`: no
    /// run yet); empty without hardware fencing.
    pub fence: BTreeMap<NodeName, Option<FenceDeviceState>>,
}

#[cfg(test)]
impl RoundContext {
    /// A quorate round of `node`'s `client` at `now_ms`, upstream's
    /// timing, no members (tests).
    pub fn quorate(node: &str, client: Client, now_ms: u64) -> RoundContext {
        RoundContext {
            node: node.into(),
            client,
            now_ms,
            quorate: true,
            members: BTreeMap::new(),
            lease_ms: 6500,
            timing: Timing::UPSTREAM,
            max_workers: 0,
            datacenter: DatacenterSettings::default(),
            node_shutdown: NodeShutdown::StaysUp,
        }
    }
}

impl<'a> RoundEnv<'a> {
    pub fn new(ctx: &'a RoundContext, state: &'a mut ClusterState) -> RoundEnv<'a> {
        RoundEnv {
            ctx,
            state,
            outbox: Vec::new(),
            events: Vec::new(),
            fence: BTreeMap::new(),
        }
    }

    /// Applies `op` to this round's view and queues it for the store.
    fn apply(&mut self, op: Op) {
        self.state.apply(op.clone());
        self.outbox.push(Outgoing::Store(op));
    }

    /// Takes or renews `lock` for this node with a lease of `lease_ms`
    /// (or [`HELD_UNWATCHED`]) when the store is quorate and nobody else
    /// holds it: `Some(first)`, whether this node did not hold it before;
    /// `None` when it could not.
    fn take_lease(&mut self, lock: &LockName, lease_ms: u64) -> Option<bool> {
        if !self.ctx.quorate || !self.state.lock_available(lock, &self.ctx.node, self.ctx.now_ms) {
            return None;
        }
        let first = self.state.leases.get(lock).is_none_or(|l| l.holder != self.ctx.node);
        self.apply(Op::Acquire {
            lock: lock.clone(),
            holder: self.ctx.node.clone(),
            now_ms: self.ctx.now_ms,
            lease_ms,
        });
        Some(first)
    }

    fn write(&mut self, op: Op) -> Result<(), EnvError> {
        if !self.ctx.quorate {
            return Err(EnvError("cluster not quorate - store is read-only".into()));
        }
        self.apply(op);
        Ok(())
    }

    fn acquire(&mut self, lock: LockName) -> bool {
        let Some(first) = self.take_lease(&lock, self.ctx.lease_ms) else {
            return false;
        };
        if first {
            self.events.push(Event::GotLock { lock: lock.to_string() });
        }
        true
    }

    fn release(&mut self, lock: LockName) -> bool {
        if !self.ctx.quorate {
            return false;
        }
        let op = Op::Release {
            lock,
            holder: self.ctx.node.clone(),
        };
        self.apply(op);
        true
    }
}

impl AgentHost for RoundEnv<'_> {
    fn nodename(&self) -> &str {
        &self.ctx.node
    }

    fn log(&mut self, event: Event) {
        self.events.push(event);
    }

    // Agents run in the worker pool (`spawn_job`), never inside a round.
    fn agent_known(&self, _kind: &str) -> bool {
        true
    }

    fn agent_running(&mut self, _sid: &str) -> bool {
        false
    }

    fn agent_start(&mut self, _sid: &str) {}

    fn agent_shutdown(&mut self, _sid: &str, _timeout: Option<i64>) {}

    fn agent_migrate(&mut self, _sid: &str, _target: &str, _online: bool) -> bool {
        false
    }
}

impl Env for RoundEnv<'_> {
    fn now(&self) -> Time {
        i64::try_from(self.ctx.now_ms / 1000).unwrap_or(i64::MAX)
    }

    fn now_ms(&self) -> u64 {
        self.ctx.now_ms
    }

    fn quorate(&mut self) -> bool {
        self.ctx.quorate
    }

    fn node_info(&mut self) -> NodeInfo {
        if self.ctx.quorate {
            NodeInfo {
                online: self.ctx.members.clone(),
                quorate: true,
            }
        } else {
            NodeInfo {
                online: self.ctx.members.keys().map(|n| (n.clone(), false)).collect(),
                quorate: false,
            }
        }
    }

    fn cluster_state_update(&mut self) -> bool {
        true
    }

    fn read_manager_status(&mut self) -> Result<Arc<ManagerStatus>, EnvError> {
        Ok(self.state.manager_status.arc())
    }

    fn write_manager_status(&mut self, status: ManagerStatus) -> Result<(), EnvError> {
        // Only for the version this round read (with its own earlier
        // writes): a stale master's status never lands.
        let version = self.state.manager_version;
        self.write(Op::ExpectManagerVersion(version))?;
        self.write(Op::WriteManagerStatus(status))
    }

    fn read_lrm_status(&mut self, node: &str) -> Result<Option<Arc<LrmStatus>>, EnvError> {
        Ok(self.state.lrm_status.get(node).map(Shared::arc))
    }

    fn write_lrm_status(&mut self, status: LrmStatus) -> Result<(), EnvError> {
        let node = self.ctx.node.clone();
        self.write(Op::WriteLrmStatus { node, status })
    }

    fn read_service_config(&mut self) -> Result<Arc<ServiceConfig>, EnvError> {
        Ok(self.state.resources.arc())
    }

    fn set_service_request_state(&mut self, sid: &str, state: RequestState) -> Result<(), EnvError> {
        self.write(Op::SetRequestState {
            sid: sid.to_string(),
            state,
        })
    }

    fn steal_service(&mut self, sid: &str, _from: &str, to: &str) {
        // Refused only without quorum, which the master cannot be in.
        let _ = self.write(Op::MoveService {
            sid: sid.to_string(),
            node: to.to_string(),
        });
    }

    fn remove_locks(&mut self, _sid: &str, _locks: &[&str]) -> Option<String> {
        None
    }

    fn read_groups(&mut self) -> Result<Groups, EnvError> {
        Ok(self.state.groups())
    }

    fn read_rules(&mut self) -> Result<Vec<Rule>, EnvError> {
        Ok(self.state.rules.to_vec())
    }

    fn write_rules(&mut self, _rules: &[Rule]) -> Result<(), EnvError> {
        Err(EnvError(
            "rule updates need the cluster store of the cluster layer".into(),
        ))
    }

    fn drop_resource_groups(&mut self, _failback: &BTreeMap<String, bool>) -> Result<(), EnvError> {
        Err(EnvError(
            "group migration needs the cluster store of the cluster layer".into(),
        ))
    }

    fn delete_groups(&mut self) -> Result<(), EnvError> {
        Err(EnvError(
            "group migration needs the cluster store of the cluster layer".into(),
        ))
    }

    fn node_version(&mut self, _node: &str) -> Option<String> {
        Some(env!("CARGO_PKG_VERSION").to_string())
    }

    fn datacenter_settings(&mut self) -> DatacenterSettings {
        self.ctx.datacenter.clone()
    }

    fn static_node_stats(&mut self) -> Result<BTreeMap<NodeName, NodeStats>, EnvError> {
        Err(EnvError("node statistics are not published yet".into()))
    }

    fn dynamic_node_stats(&mut self) -> Result<BTreeMap<NodeName, NodeStats>, EnvError> {
        Err(EnvError("node statistics are not published yet".into()))
    }

    fn service_stats(&mut self, _dynamic: bool) -> BTreeMap<String, ResourceStats> {
        BTreeMap::new()
    }

    fn read_crm_commands(&mut self) -> Result<Vec<CrmCommand>, EnvError> {
        if self.state.crm_commands.is_empty() {
            return Ok(Vec::new());
        }
        let commands: Vec<CrmCommand> = self.state.crm_commands.iter().cloned().collect();
        let version = self.state.manager_version;
        self.write(Op::ExpectManagerVersion(version))?;
        self.write(Op::TakeFirstCrmCommands(commands.len()))?;
        Ok(commands)
    }

    fn any_pending_crm_command(&mut self) -> bool {
        !self.state.crm_commands.is_empty()
    }

    fn get_ha_manager_lock(&mut self) -> bool {
        self.acquire(LockName::Manager)
    }

    fn release_ha_manager_lock(&mut self) -> bool {
        self.release(LockName::Manager)
    }

    fn get_ha_agent_lock(&mut self, node: Option<&str>) -> bool {
        let node = node.unwrap_or(&self.ctx.node).to_string();
        self.acquire(LockName::Agent(node))
    }

    fn release_ha_agent_lock(&mut self) -> bool {
        self.release(LockName::Agent(self.ctx.node.clone()))
    }

    fn hold_ha_agent_lock_unwatched(&mut self) -> bool {
        let lock = LockName::Agent(self.ctx.node.clone());
        self.take_lease(&lock, HELD_UNWATCHED).is_some()
    }

    fn holds_agent_lock_unwatched(&mut self) -> bool {
        let lock = LockName::Agent(self.ctx.node.clone());
        self.state
            .leases
            .get(&lock)
            .is_some_and(|l| l.holder == self.ctx.node && l.expires_ms == HELD_UNWATCHED)
    }

    fn watchdog_open(&mut self) -> WatchdogHandle {
        self.outbox.push(Outgoing::WatchdogArm);
        1
    }

    fn watchdog_arm_ahead(&mut self) -> WatchdogHandle {
        self.outbox.push(Outgoing::WatchdogArmAhead);
        1
    }

    fn watchdog_update(&mut self, _handle: WatchdogHandle) {
        self.outbox.push(Outgoing::WatchdogPet);
    }

    fn watchdog_close(&mut self, _handle: WatchdogHandle) {
        self.outbox.push(Outgoing::WatchdogClose);
    }

    fn is_node_shutdown(&mut self) -> NodeShutdown {
        self.ctx.node_shutdown
    }

    fn max_workers(&self) -> usize {
        self.ctx.max_workers
    }

    fn fence_device(&mut self, node: &str) -> FenceDeviceState {
        match self.fence.get(node) {
            None => FenceDeviceState::NoDevice,
            Some(Some(state)) => *state,
            Some(None) => {
                self.outbox.push(Outgoing::FenceRun(node.to_string()));
                self.fence.insert(node.to_string(), Some(FenceDeviceState::Running));
                FenceDeviceState::Running
            }
        }
    }

    fn fence_device_reset(&mut self, node: &str) {
        if let Some(state) = self.fence.get_mut(node) {
            *state = None;
            self.outbox.push(Outgoing::FenceReset(node.to_string()));
        }
    }

    fn sleep(&mut self, _secs: Time) {}

    fn sleep_until(&mut self, _until: Time) {}

    fn timing(&self) -> Timing {
        self.ctx.timing
    }

    fn spawn_job(&mut self, job: JobSpec) {
        if let Some(op) = start_claim(&job, &self.ctx.node, self.state) {
            self.outbox.push(Outgoing::Store(op));
        }
        self.outbox.push(Outgoing::Job(job));
    }
}

/// The guard a job that may start a service needs: the committed state
/// must still place the service on this node under the fencing epoch the
/// round read (which is the token the job hands to the agent). Stops need
/// none: stopping is always safe.
pub fn start_claim(job: &JobSpec, node: &str, state: &ClusterState) -> Option<Op> {
    use crate::core::types::ServiceState::{Migrate, Relocate, RequestStartBalance, Started};
    if job.uid.is_none() || !matches!(job.command, Started | Migrate | Relocate | RequestStartBalance) {
        return None;
    }
    Some(Op::ClaimStart {
        sid: job.sid.clone(),
        node: node.to_string(),
        epoch: state.epochs.get(&job.sid).copied().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_that_may_start_a_service_claim_its_placement_first() {
        use crate::core::types::ServiceState;
        let mut state = ClusterState::default();
        state.epochs.insert("proc:a".into(), 7);
        let job = |command, uid: Option<&str>| JobSpec {
            sid: "proc:a".into(),
            uid: uid.map(String::from),
            command,
            target: None,
            timeout: None,
            config: None,
        };
        assert_eq!(
            start_claim(&job(ServiceState::Started, Some("u1")), "node2", &state),
            Some(Op::ClaimStart {
                sid: "proc:a".into(),
                node: "node2".into(),
                epoch: 7
            })
        );
        assert!(start_claim(&job(ServiceState::Migrate, Some("u1")), "node2", &state).is_some());
        assert_eq!(
            start_claim(&job(ServiceState::Stopped, Some("u1")), "node2", &state),
            None
        );
        assert_eq!(
            start_claim(&job(ServiceState::Started, None), "node2", &state),
            None,
            "the untracked stops of a node shutdown"
        );
    }

    #[test]
    fn a_fence_device_run_is_asked_once_and_reset_after_the_acknowledgement() {
        let ctx = RoundContext::quorate("node1", Client::Crm, 1000);
        let mut state = ClusterState::default();
        let mut env = RoundEnv::new(&ctx, &mut state);
        assert_eq!(
            env.fence_device("node3"),
            FenceDeviceState::NoDevice,
            "no devices configured"
        );
        env.fence.insert("node3".into(), None);
        env.fence.insert("node2".into(), Some(FenceDeviceState::Off));
        assert_eq!(env.fence_device("node3"), FenceDeviceState::Running);
        assert_eq!(env.fence_device("node3"), FenceDeviceState::Running, "asked once");
        assert_eq!(env.fence_device("node2"), FenceDeviceState::Off);
        env.fence_device_reset("node2");
        env.fence_device_reset("node9");
        assert_eq!(
            env.outbox,
            [Outgoing::FenceRun("node3".into()), Outgoing::FenceReset("node2".into())]
        );
    }
}
