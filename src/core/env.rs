//! The environment a CRM or LRM runs in: the only door from the pure core to
//! the world (upstream's `PVE::HA::Env`).
//!
//! The core calls these methods and nothing else: it never reads a clock,
//! a file or a socket itself. Three kinds of implementation exist or are
//! planned: the scenario simulator (virtual time), the node
//! daemon (cluster store, real agents) and test doubles. Every method is
//! synchronous; a shell that talks to the network answers from its local
//! replica and queues writes, which keeps rounds non-blocking.

use std::collections::BTreeMap;

use super::agent::{AgentHost, JobSpec};
use super::rules::Rule;
use super::status::{Groups, LrmStatus, ManagerStatus, ServiceConfig};
use super::timing::Timing;
use super::types::{NodeName, RequestState, Time};
use super::usage::{NodeStats, ResourceStats};

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

/// Handle of an open watchdog client connection.
pub type WatchdogHandle = u64;

/// Datacenter-wide HA settings (`datacenter.cfg` keys `ha` and `crs`).
#[derive(Debug, Clone, PartialEq)]
pub struct DatacenterSettings {
    /// `ha: shutdown_policy=...`; unknown values fall back to conditional.
    pub shutdown_policy: String,
    /// `crs: ha=basic|static|dynamic`.
    pub crs_mode: String,
    /// `crs: ha-rebalance-on-start=1`.
    pub rebalance_on_start: bool,
    /// `crs: ha-auto-rebalance=1`.
    pub auto_rebalance: bool,
    /// Imbalance (coefficient of variation) above which to rebalance.
    pub rebalance_threshold: f64,
    /// `bruteforce` or `topsis`.
    pub rebalance_method: String,
    /// Rounds the imbalance must persist before a move.
    pub rebalance_hold_rounds: f64,
    /// Minimum relative improvement a move must bring.
    pub rebalance_margin: f64,
}

impl Default for DatacenterSettings {
    fn default() -> Self {
        DatacenterSettings {
            shutdown_policy: "conditional".to_string(),
            crs_mode: "basic".to_string(),
            rebalance_on_start: false,
            auto_rebalance: false,
            rebalance_threshold: 0.3,
            rebalance_method: "bruteforce".to_string(),
            rebalance_hold_rounds: 3.0,
            rebalance_margin: 0.1,
        }
    }
}

/// Everything a CRM, LRM or manager round may ask of the world.
pub trait Env: AgentHost {
    /// The current time (virtual in the simulator).
    fn now(&self) -> Time;

    /// Whether this node is in the quorate partition.
    fn quorate(&mut self) -> bool;
    /// Membership and quorum.
    fn node_info(&mut self) -> NodeInfo;
    /// Refreshes the local view of the shared store; false when that failed
    /// (upstream: cfs update), in which case the round is skipped.
    fn cluster_state_update(&mut self) -> bool;

    fn read_manager_status(&mut self) -> Result<ManagerStatus, EnvError>;
    /// Takes the status by value: every shell stores or sends it as is.
    fn write_manager_status(&mut self, status: ManagerStatus) -> Result<(), EnvError>;
    /// `Ok(None)` when the node never wrote one.
    fn read_lrm_status(&mut self, node: &str) -> Result<Option<LrmStatus>, EnvError>;
    fn write_lrm_status(&mut self, status: &LrmStatus) -> Result<(), EnvError>;

    /// Resources with defaults applied.
    fn read_service_config(&mut self) -> Result<ServiceConfig, EnvError>;
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

    /// Reads and empties the CRM command queue (one command per entry).
    fn read_crm_commands(&mut self) -> Result<Vec<String>, EnvError>;
    fn any_pending_crm_command(&mut self) -> bool;

    /// Acquires or renews `ha_manager_lock`.
    fn get_ha_manager_lock(&mut self) -> bool;
    fn release_ha_manager_lock(&mut self) -> bool;
    /// Acquires or renews `ha_agent_<node>_lock`; `None` means this node.
    /// The master passes a dead node's name to acknowledge its fencing.
    fn get_ha_agent_lock(&mut self, node: Option<&str>) -> bool;
    fn release_ha_agent_lock(&mut self) -> bool;

    fn watchdog_open(&mut self) -> WatchdogHandle;
    fn watchdog_update(&mut self, handle: WatchdogHandle);
    fn watchdog_close(&mut self, handle: WatchdogHandle);

    /// `(shutdown, reboot)`: whether the node itself is going down.
    fn is_node_shutdown(&mut self) -> (bool, bool);
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

    /// Hands an agent action to the worker pool; only called when
    /// [`Env::max_workers`] is above zero. The shell reports completion
    /// through [`crate::core::lrm::Lrm::job_finished`].
    fn spawn_job(&mut self, job: JobSpec) {
        let _ = job;
        unreachable!("spawn_job needs an environment with a worker pool (max_workers > 0)");
    }
}
