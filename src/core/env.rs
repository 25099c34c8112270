//! The environment a CRM or LRM runs in: the only door from the pure core to
//! the world (upstream's `PVE::HA::Env`).
//!
//! The core calls these methods and nothing else: it never reads a clock,
//! a file or a socket itself. Three kinds of implementation exist or are
//! planned: the scenario simulator (virtual time), the node
//! daemon (cluster store, real agents) and test doubles. Every method is
//! synchronous; a shell that talks to the network answers from its local
//! replica and queues writes, which keeps rounds non-blocking.
//!
//! The large records (manager status, resource configuration, LRM status)
//! are handed out as shared, immutable snapshots (`Arc`): every daemon
//! reads them several times per round, and with thousands of services a
//! deep copy per read dominated the round (a profile of a 1 000-service
//! scenario spent ~85% of its time in `malloc`/`free` and clones). A shell
//! keeps its current value in an `Arc` and replaces (or copy-on-writes)
//! it on change, so a snapshot a caller still holds never changes under it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::agent::{AgentHost, JobSpec};
use super::crm_command::CrmCommand;
use super::rules::Rule;
use super::status::{Groups, LrmStatus, ManagerStatus, ServiceConfig};
use super::timing::Timing;
use super::types::{NodeName, RequestState, Time};
use super::usage::{CrsMode, NodeStats, RebalanceMethod, ResourceStats};

/// A failure of the shared store as the daemon sees it (upstream dies with a
/// message; we return it). The text is shown to operators verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnvError(pub String);

/// Cluster membership as seen by this node: `online` per member, plus
/// whether this partition is quorate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeInfo {
    pub online: BTreeMap<NodeName, bool>,
    pub quorate: bool,
}

/// Where a hardware fence of a node stands (fence.cfg devices; see
/// [`Env::fence_device`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceDeviceState {
    /// No fence device can fence the node: only its lease protects.
    NoDevice,
    /// A device run is under way (just asked for, or not finished).
    Running,
    /// Every device of a try confirmed the node off: proof that it runs
    /// nothing, so its services may be recovered before its lease ends.
    Off,
    /// Every device failed or timed out: only the lease protects.
    Failed,
}

/// Handle of an open watchdog client connection.
pub type WatchdogHandle = u64;

/// What a node shutdown does to the node's services (upstream's datacenter
/// `ha: shutdown_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShutdownPolicy {
    /// Freeze on reboot (the services come back with the node), fail over
    /// on power-off.
    #[default]
    Conditional,
    /// Always freeze: the services wait for the node.
    Freeze,
    /// Never freeze: the services are recovered elsewhere once the node is
    /// fenced.
    Failover,
    /// Put the node in maintenance: its services migrate away first.
    Migrate,
}

impl ShutdownPolicy {
    /// Every policy, in upstream's order (for messages that list them).
    pub const ALL: [ShutdownPolicy; 4] = [
        ShutdownPolicy::Conditional,
        ShutdownPolicy::Freeze,
        ShutdownPolicy::Failover,
        ShutdownPolicy::Migrate,
    ];

    /// Upstream's word for the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownPolicy::Conditional => "conditional",
            ShutdownPolicy::Freeze => "freeze",
            ShutdownPolicy::Failover => "failover",
            ShutdownPolicy::Migrate => "migrate",
        }
    }

    /// The policy for upstream's word; `None` for any other.
    pub fn parse(word: &str) -> Option<ShutdownPolicy> {
        ShutdownPolicy::ALL.into_iter().find(|p| p.as_str() == word)
    }
}

impl std::fmt::Display for ShutdownPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the node itself goes down while the daemon is asked to stop
/// (upstream's `is_node_shutdown`, which answers `(shutdown, reboot)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeShutdown {
    /// Only the daemon stops (a restart or an upgrade): the node stays up.
    #[default]
    StaysUp,
    /// The node powers off.
    PowerOff,
    /// The node reboots.
    Reboot,
}

impl NodeShutdown {
    /// True when the node goes down, by power-off or reboot.
    pub fn goes_down(self) -> bool {
        self != NodeShutdown::StaysUp
    }

    /// True when the node comes back by itself.
    pub fn is_reboot(self) -> bool {
        self == NodeShutdown::Reboot
    }
}

/// Datacenter-wide HA settings (`datacenter.cfg` keys `ha` and `crs`).
#[derive(Debug, Clone, PartialEq)]
pub struct DatacenterSettings {
    /// `ha: shutdown_policy=...`.
    pub shutdown_policy: ShutdownPolicy,
    /// `crs: ha=basic|static|dynamic`.
    pub crs_mode: CrsMode,
    /// `crs: ha-rebalance-on-start=1`.
    pub rebalance_on_start: bool,
    /// `crs: ha-auto-rebalance=1`.
    pub auto_rebalance: bool,
    /// Imbalance (coefficient of variation) above which to rebalance.
    pub rebalance_threshold: f64,
    /// `crs: ha-auto-rebalance-method=bruteforce|topsis`.
    pub rebalance_method: RebalanceMethod,
    /// Rounds the imbalance must persist before a move.
    pub rebalance_hold_rounds: f64,
    /// Minimum relative improvement a move must bring.
    pub rebalance_margin: f64,
}

impl Default for DatacenterSettings {
    /// Upstream's defaults.
    fn default() -> Self {
        DatacenterSettings {
            shutdown_policy: ShutdownPolicy::Conditional,
            crs_mode: CrsMode::Basic,
            rebalance_on_start: false,
            auto_rebalance: false,
            rebalance_threshold: 0.3,
            rebalance_method: RebalanceMethod::Bruteforce,
            rebalance_hold_rounds: 3.0,
            rebalance_margin: 0.1,
        }
    }
}

/// Everything a CRM, LRM or manager round may ask of the world.
pub trait Env: AgentHost {
    /// The current time (virtual in the simulator).
    fn now(&self) -> Time;

    /// The current time in milliseconds, where the world has them (the
    /// daemon's rounds); whole seconds otherwise.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.now()).unwrap_or(0).saturating_mul(1000)
    }

    /// Whether this node is in the quorate partition.
    fn quorate(&mut self) -> bool;
    /// Membership and quorum.
    fn node_info(&mut self) -> NodeInfo;
    /// Refreshes the local view of the shared store; false when that failed
    /// (upstream: cfs update), in which case the round is skipped.
    fn cluster_state_update(&mut self) -> bool;

    /// A snapshot of the manager status (shared, not copied).
    fn read_manager_status(&mut self) -> Result<Arc<ManagerStatus>, EnvError>;
    /// Takes the status by value: every shell stores or sends it as is.
    fn write_manager_status(&mut self, status: ManagerStatus) -> Result<(), EnvError>;
    /// A snapshot of one node's LRM status; `Ok(None)` when the node never
    /// wrote one.
    fn read_lrm_status(&mut self, node: &str) -> Result<Option<Arc<LrmStatus>>, EnvError>;
    /// Takes the status by value: every shell stores or sends it as is.
    fn write_lrm_status(&mut self, status: LrmStatus) -> Result<(), EnvError>;

    /// A snapshot of the resources, with defaults applied (shared, not
    /// copied; a caller that edits its view copies it on write).
    fn read_service_config(&mut self) -> Result<Arc<ServiceConfig>, EnvError>;
    /// Persists a new requested state for one resource (the `stop` command).
    fn set_service_request_state(&mut self, sid: &str, state: RequestState) -> Result<(), EnvError>;
    /// Moves a guest's configuration to another node after fencing.
    fn steal_service(&mut self, sid: &str, from: &str, to: &str);
    /// Removes the first of `locks` that the guest holds; returns its name.
    fn remove_locks(&mut self, sid: &str, locks: &[&str]) -> Option<String>;
    fn read_groups(&mut self) -> Result<Groups, EnvError>;
    /// Placement rules as configured (rules.cfg), parsed.
    fn read_rules(&mut self) -> Result<Vec<Rule>, EnvError>;
    /// Replaces the placement rules (groups → rules migration).
    fn write_rules(&mut self, rules: &[Rule]) -> Result<(), EnvError>;
    /// Removes the group of each listed resource and stores its failback.
    fn drop_resource_groups(&mut self, failback: &BTreeMap<String, bool>) -> Result<(), EnvError>;
    /// Deletes the legacy group configuration.
    fn delete_groups(&mut self) -> Result<(), EnvError>;
    /// The software version a node reports (pve-manager version upstream).
    fn node_version(&mut self, node: &str) -> Option<String>;
    fn datacenter_settings(&mut self) -> DatacenterSettings;
    /// Node capacities for the `static` model (cpu/mem usage zero).
    fn static_node_stats(&mut self) -> Result<BTreeMap<NodeName, NodeStats>, EnvError>;
    /// Measured node usage and capacity for the `dynamic` model.
    fn dynamic_node_stats(&mut self) -> Result<BTreeMap<NodeName, NodeStats>, EnvError>;
    /// Per-service usage: maxima always, measured values when `dynamic`.
    fn service_stats(&mut self, dynamic: bool) -> BTreeMap<String, ResourceStats>;

    /// Reads and empties the CRM command queue, oldest first.
    fn read_crm_commands(&mut self) -> Result<Vec<CrmCommand>, EnvError>;
    fn any_pending_crm_command(&mut self) -> bool;

    /// Acquires or renews `ha_manager_lock`.
    fn get_ha_manager_lock(&mut self) -> bool;
    fn release_ha_manager_lock(&mut self) -> bool;
    /// Acquires or renews `ha_agent_<node>_lock`; `None` means this node.
    /// The master passes a dead node's name to acknowledge its fencing.
    fn get_ha_agent_lock(&mut self, node: Option<&str>) -> bool;
    fn release_ha_agent_lock(&mut self) -> bool;
    /// Gives up the agent lock's watchdog but not the lock itself, for a
    /// disarm: the node's services go on running with nothing to fence
    /// them, so its lock must not become free or expire under it (a master
    /// that took it would count the node fenced and start its services
    /// elsewhere). The lock stays this node's, without expiry, until its
    /// own LRM takes it again ([`Env::get_ha_agent_lock`]) under a
    /// watchdog. A store that cannot hold it so releases it (upstream's
    /// behaviour, the simulator's).
    fn hold_ha_agent_lock_unwatched(&mut self) -> bool {
        self.release_ha_agent_lock()
    }
    /// Whether this node's agent lock is held as
    /// [`Env::hold_ha_agent_lock_unwatched`] left it.
    fn holds_agent_lock_unwatched(&mut self) -> bool {
        false
    }

    fn watchdog_open(&mut self) -> WatchdogHandle;
    /// Arms the watchdog before the agent lock is taken back from an
    /// unwatched hold (a disarm), whatever the store answers: a take
    /// whose answer is lost may still have been committed, and a lease
    /// this node does not know it holds must run out after its watchdog
    /// has reset it. An armed client keeps its deadline. Shells that never
    /// hold unwatched ([`Env::holds_agent_lock_unwatched`]) open as usual.
    fn watchdog_arm_ahead(&mut self) -> WatchdogHandle {
        self.watchdog_open()
    }
    fn watchdog_update(&mut self, handle: WatchdogHandle);
    fn watchdog_close(&mut self, handle: WatchdogHandle);

    /// Whether the node itself is going down.
    fn is_node_shutdown(&mut self) -> NodeShutdown;
    /// Worker slots of the LRM; 0 runs agent actions inline (simulator).
    fn max_workers(&self) -> usize;

    /// Pacing hints; a shell with real time sleeps, the simulator only
    /// accounts for them.
    fn sleep(&mut self, secs: Time);
    fn sleep_until(&mut self, until: Time);

    /// The core's timing constants (upstream's unless configured).
    fn timing(&self) -> Timing {
        Timing::UPSTREAM
    }

    /// Hardware fencing: the state of `node`'s fence-device run, asking
    /// for one (the shell starts it after the round) when none ran since
    /// the last [`Env::fence_device_reset`]. Without fence devices (the
    /// default) always [`FenceDeviceState::NoDevice`].
    fn fence_device(&mut self, node: &str) -> FenceDeviceState {
        let _ = node;
        FenceDeviceState::NoDevice
    }

    /// The fence of `node` is acknowledged: its device run's result is
    /// spent (a later fence runs the devices again).
    fn fence_device_reset(&mut self, node: &str) {
        let _ = node;
    }

    /// Hands an agent action to the worker pool; only called when
    /// [`Env::max_workers`] is above zero. The shell reports completion
    /// through [`crate::core::lrm::Lrm::job_finished`].
    fn spawn_job(&mut self, job: JobSpec) {
        let _ = job;
        unreachable!("spawn_job needs an environment with a worker pool (max_workers > 0)");
    }
}
