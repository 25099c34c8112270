//! The simulated cluster: hardware (power, network, cfs faults), the shared
//! store (manager status, LRM status, configuration, command queue, locks),
//! watchdogs, guests, and the log. [`SimEnv`] is one daemon's view of it,
//! implementing the core's [`Env`] on virtual time.
//!
//! The safety rules are the production ones: lease locks are taken,
//! renewed and released by the core store's state machine
//! ([`ClusterState::apply`]), and each node's watchdog is the core's
//! [`WatchdogMux`], as in the daemon.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::core::agent::AgentHost;
use crate::core::crm_command::CrmCommand;
use crate::core::env::{DatacenterSettings, Env, EnvError, NodeInfo, NodeShutdown, WatchdogHandle};
use crate::core::event::Event;
use crate::core::rules::Rule;
use crate::core::status::{Groups, LrmStatus, ManagerStatus, ResourceConfig, ServiceConfig};
use crate::core::store::lock_name::LockName;
use crate::core::store::{ClusterState, Op, Reply, Shared};
use crate::core::types::{NodeName, RequestState, Time, sid_type, split_sid};
use crate::core::usage::{NodeStats, ResourceStats};
use crate::core::watchdog::{Client, Feed, WatchdogMux};

use super::scenario::{Daemon, GuestStats, NodeHardware, Scenario};

/// Lock lifetime of the simulated cluster filesystem.
pub const LOCK_TIMEOUT_SECS: Time = 120;
/// A watchdog not updated for longer than this fences its node.
pub const WATCHDOG_TIMEOUT_SECS: Time = 60;

const MIB: f64 = 1024.0 * 1024.0;
/// Node capacity assumed by the dynamic model when the hardware omits it.
const DYNAMIC_DEFAULT_MAXCPU: f64 = 24.0;
const DYNAMIC_DEFAULT_MAXMEM: f64 = 128.0 * 1024.0 * MIB;
/// Service figures assumed when a scenario gives none.
const DEFAULT_SERVICE_MAXCPU: f64 = 4.0;
const DEFAULT_SERVICE_MAXMEM: f64 = 4096.0 * MIB;
const DEFAULT_SERVICE_CPU: f64 = 2.0;
const DEFAULT_SERVICE_MEM: f64 = 2048.0 * MIB;

/// The version a simulated node reports unless the scenario sets one.
const DEFAULT_NODE_VERSION: &str = "9.0.0~2";

const CFS_ERROR: &str = "cfs connection refused - not mounted?";

/// Runtime hardware state of one node.
#[derive(Debug, Clone)]
pub struct NodeState {
    pub hw: NodeHardware,
    /// `shutdown` or `reboot` while the node goes down.
    pub shutdown: Option<&'static str>,
    pub cfs_rw: bool,
    pub cfs_update: bool,
}

/// A daemon's own clock (upstream's per-env time plus accumulated sleeps).
#[derive(Debug, Clone, Copy, Default)]
pub struct DaemonClock {
    pub time: Time,
    pub loop_delay: Time,
}

/// Everything outside the daemons.
#[derive(Debug)]
pub struct World {
    /// The hardware clock.
    pub now: Time,
    pub nodes: BTreeMap<NodeName, NodeState>,
    /// Each daemon's clock, by node.
    pub clocks: BTreeMap<NodeName, BTreeMap<Daemon, DaemonClock>>,
    pub groups: Groups,
    pub rules: Vec<Rule>,
    pub datacenter: DatacenterSettings,
    pub stats: BTreeMap<String, GuestStats>,
    /// Which guests run where.
    pub running: BTreeMap<NodeName, BTreeMap<String, bool>>,
    /// The cluster store, the daemons' own (`core::store`): the resource
    /// configuration, the manager status, every node's LRM status, the
    /// CRM command queue and the lease locks, changed only through
    /// [`ClusterState::apply`] by the daemons' writes (copy-on-write
    /// fields: a daemon's read is a snapshot without a copy). Groups,
    /// rules and datacenter settings stay scenario configuration.
    pub store: ClusterState,
    /// Each node's watchdog multiplexer (created when a daemon first opens).
    watchdogs: BTreeMap<NodeName, WatchdogMux>,
    /// Open watchdog handles: whose node and which client.
    watchdog_handles: BTreeMap<WatchdogHandle, (NodeName, Client)>,
    watchdog_seq: WatchdogHandle,
    /// Failure-injection counters of `fa:` guests (global, as upstream's).
    fa_start_tries: BTreeMap<String, u32>,
    fa_migrate_tries: BTreeMap<String, u32>,
    /// Rendered log lines, in execution order.
    pub log: Vec<String>,
    /// Fence devices (a scenario's `fence.cfg`).
    pub fence: super::fence::SimFence,
}

/// Virtual seconds as the milliseconds the core store and the watchdog
/// multiplexer count in (virtual time never runs backwards from 0).
fn millis(secs: Time) -> u64 {
    u64::try_from(secs).unwrap_or(0).saturating_mul(1000)
}

/// Renders one log line in upstream's simulator format.
pub fn render_line(level: &str, time: Time, source: &str, message: &str) -> String {
    format!("{level:<5} {time:>5} {source:>12}: {message}")
}

impl World {
    pub fn new(scenario: &Scenario) -> World {
        let nodes = scenario
            .hardware
            .iter()
            .map(|(n, hw)| {
                (
                    n.clone(),
                    NodeState {
                        hw: hw.clone(),
                        shutdown: None,
                        cfs_rw: true,
                        cfs_update: true,
                    },
                )
            })
            .collect();
        let mut clocks = BTreeMap::new();
        for node in scenario.hardware.keys() {
            let both = [Daemon::Crm, Daemon::Lrm].map(|d| (d, DaemonClock::default()));
            clocks.insert(node.clone(), BTreeMap::from(both));
        }
        World {
            now: 0,
            nodes,
            clocks,
            groups: scenario.groups.clone(),
            rules: scenario.rules.clone(),
            datacenter: scenario.datacenter.clone(),
            stats: scenario.stats.clone(),
            running: scenario.running.clone(),
            store: ClusterState {
                resources: scenario.services.clone().into(),
                manager_status: scenario.manager_status.clone().into(),
                ..ClusterState::default()
            },
            watchdogs: BTreeMap::new(),
            watchdog_handles: BTreeMap::new(),
            watchdog_seq: 0,
            fa_start_tries: BTreeMap::new(),
            fa_migrate_tries: BTreeMap::new(),
            log: Vec::new(),
            fence: Default::default(),
        }
    }

    /// The clock of one daemon (created on first use).
    pub fn clock_mut(&mut self, node: &str, daemon: Daemon) -> &mut DaemonClock {
        if !self.clocks.contains_key(node) {
            self.clocks.insert(node.to_string(), BTreeMap::new());
        }
        let clocks = self.clocks.get_mut(node).expect("inserted above");
        clocks.entry(daemon).or_default()
    }

    /// A hardware-level line (`hardware`, `cmdlist`, `watchdog`, ...).
    pub fn log_hw(&mut self, source: &str, message: &str) {
        let line = render_line("info", self.now, source, message);
        self.log.push(line);
    }

    pub fn node_info(&self) -> NodeInfo {
        let online: BTreeMap<NodeName, bool> = self
            .nodes
            .iter()
            .map(|(n, s)| (n.clone(), s.hw.power && s.hw.network))
            .collect();
        let count = online.values().filter(|o| **o).count();
        let quorate = count > self.nodes.len() / 2;
        if quorate {
            NodeInfo { online, quorate }
        } else {
            NodeInfo {
                online: online.into_keys().map(|n| (n, false)).collect(),
                quorate,
            }
        }
    }

    /// Whether `node`'s watchdog is still fed: every armed client was
    /// heard from within [`WATCHDOG_TIMEOUT_SECS`].
    pub fn watchdog_ok(&mut self, node: &str) -> bool {
        let now_ms = millis(self.now);
        self.watchdogs
            .get_mut(node)
            .is_none_or(|mux| !matches!(mux.tick(now_ms), Feed::Expired(_)))
    }

    /// The node went down: its watchdog with it.
    pub fn drop_watchdogs(&mut self, node: &str) {
        self.watchdogs.remove(node);
        self.watchdog_handles.retain(|_, (n, _)| n != node);
    }

    /// Changes a guest's configured node, as a migration does.
    pub fn change_service_location(&mut self, sid: &str, to: &str) {
        if let Some(cd) = self.service_mut(sid) {
            cd.node = Some(to.to_string());
        }
    }

    /// One resource's configuration for editing; copies the configuration
    /// first only while a reader still holds a snapshot of it.
    pub fn service_mut(&mut self, sid: &str) -> Option<&mut ResourceConfig> {
        if !self.store.resources.contains_key(sid) {
            return None;
        }
        self.store.resources.get_mut(sid)
    }

    /// Every configured guest with its configuration and stats (if any),
    /// in sid order; one walk over both maps.
    fn configured_guests(&self) -> Vec<(&str, &ResourceConfig, Option<&GuestStats>)> {
        let mut stats = self.stats.iter().peekable();
        self.store
            .resources
            .iter()
            .map(|(sid, cd)| {
                let mut guest = None;
                while let Some((s, g)) = stats.peek() {
                    match s.as_str().cmp(sid) {
                        std::cmp::Ordering::Less => {}
                        std::cmp::Ordering::Equal => guest = Some(*g),
                        std::cmp::Ordering::Greater => break,
                    }
                    stats.next();
                }
                (sid.as_str(), cd, guest)
            })
            .collect()
    }

    fn service_lock(&self, sid: &str) -> Option<String> {
        self.store.resources.get(sid).and_then(|cd| cd.lock.clone())
    }

    fn set_running(&mut self, node: &str, sid: &str, running: bool) {
        self.running
            .entry(node.to_string())
            .or_default()
            .insert(sid.to_string(), running);
    }
}

/// The digits of an `fa:` id: `(start failures, migrate failures, stop
/// fails, limit-to-node)`; see spec §8.3.
fn fa_behaviour(sid: &str) -> (u32, u32, bool, u32) {
    let digits: Vec<u32> = split_sid(sid)
        .map(|(_, name)| name.chars().filter_map(|c| c.to_digit(10)).collect())
        .unwrap_or_default();
    let at = |i: usize| digits.get(i).copied();
    (
        at(1).unwrap_or(0),
        at(2).unwrap_or(0),
        at(3).unwrap_or(0) != 0,
        at(5).unwrap_or(0),
    )
}

/// One daemon's window onto the world.
pub struct SimEnv<'a> {
    pub world: &'a mut World,
    pub node: NodeName,
    pub daemon: Daemon,
}

impl SimEnv<'_> {
    fn clock(&mut self) -> &mut DaemonClock {
        self.world.clock_mut(&self.node, self.daemon)
    }

    fn cfs_rw(&self) -> Result<(), EnvError> {
        if self.world.nodes.get(&self.node).is_some_and(|n| n.cfs_rw) {
            Ok(())
        } else {
            Err(EnvError(CFS_ERROR.to_string()))
        }
    }

    /// Upstream's `sim_get_lock` over the core store's leases: take,
    /// renew or (with `unlock`) release `name` for this node, for
    /// [`LOCK_TIMEOUT_SECS`] from this daemon's clock. A release answers
    /// as upstream's does: yes for an expired lock or one this node held
    /// (which it gives up), no otherwise.
    fn sim_lock(&mut self, name: LockName, unlock: bool) -> bool {
        if !self.quorate() {
            return false;
        }
        let now_ms = millis(self.now());
        let me = self.node.clone();
        let current = self.world.store.leases.get(&name).cloned();
        let expired = current.as_ref().is_some_and(|lease| now_ms > lease.expires_ms);
        if unlock {
            return match current {
                Some(_) if expired => true,
                Some(lease) if lease.holder == me => {
                    let release = Op::Release { lock: name, holder: me };
                    self.world.store.apply(release) == Reply::Done
                }
                _ => false,
            };
        }
        let acquire = Op::Acquire {
            lock: name.clone(),
            holder: me.clone(),
            now_ms,
            lease_ms: millis(LOCK_TIMEOUT_SECS),
        };
        match self.world.store.apply(acquire) {
            Reply::Granted { .. } => {
                if expired || current.is_none_or(|lease| lease.holder != me) {
                    self.log(Event::GotLock { lock: name.to_string() });
                }
                true
            }
            _ => false,
        }
    }

    fn running_here(&self, sid: &str) -> bool {
        self.world
            .running
            .get(&self.node)
            .and_then(|m| m.get(sid))
            .copied()
            .unwrap_or(false)
    }

    /// Whether an `fa:` guest's injected failure applies to this attempt:
    /// the first `n` starts (or migrations) fail, on every node or only on
    /// the node the last digit names.
    fn fa_fails(&mut self, sid: &str, migrate: bool) -> bool {
        let (start_fails, migrate_fails, _, limit) = fa_behaviour(sid);
        let applies = limit == 0 || self.node == format!("node{limit}");
        let (fails, counters) = if migrate {
            (migrate_fails, &mut self.world.fa_migrate_tries)
        } else {
            (start_fails, &mut self.world.fa_start_tries)
        };
        let tries = counters.entry(sid.to_string()).or_insert(0);
        if applies {
            *tries += 1;
            if fails >= *tries {
                return true;
            }
        }
        *tries = 0;
        false
    }
}

impl Env for SimEnv<'_> {
    fn now(&self) -> Time {
        self.world
            .clocks
            .get(&self.node)
            .and_then(|clocks| clocks.get(&self.daemon))
            .map(|c| c.time)
            .unwrap_or(0)
    }

    fn quorate(&mut self) -> bool {
        let info = self.world.node_info();
        info.quorate && info.online.get(&self.node).copied().unwrap_or(false)
    }

    fn node_info(&mut self) -> NodeInfo {
        self.world.node_info()
    }

    fn cluster_state_update(&mut self) -> bool {
        self.world.nodes.get(&self.node).is_some_and(|n| n.cfs_update)
    }

    fn read_manager_status(&mut self) -> Result<Arc<ManagerStatus>, EnvError> {
        self.cfs_rw()?;
        Ok(self.world.store.manager_status.arc())
    }

    fn write_manager_status(&mut self, status: ManagerStatus) -> Result<(), EnvError> {
        self.cfs_rw()?;
        self.world.store.apply(Op::WriteManagerStatus(status));
        Ok(())
    }

    fn read_lrm_status(&mut self, node: &str) -> Result<Option<Arc<LrmStatus>>, EnvError> {
        self.cfs_rw()?;
        Ok(self.world.store.lrm_status.get(node).map(Shared::arc))
    }

    fn write_lrm_status(&mut self, status: LrmStatus) -> Result<(), EnvError> {
        self.cfs_rw()?;
        let node = self.node.clone();
        self.world.store.apply(Op::WriteLrmStatus { node, status });
        Ok(())
    }

    fn read_service_config(&mut self) -> Result<Arc<ServiceConfig>, EnvError> {
        self.cfs_rw()?;
        Ok(self.world.store.resources.arc())
    }

    fn set_service_request_state(&mut self, sid: &str, state: RequestState) -> Result<(), EnvError> {
        self.cfs_rw()?;
        if let Some(cd) = self.world.service_mut(sid) {
            cd.state = state;
        }
        Ok(())
    }

    fn steal_service(&mut self, sid: &str, _from: &str, to: &str) {
        self.world.change_service_location(sid, to);
    }

    fn remove_locks(&mut self, sid: &str, locks: &[&str]) -> Option<String> {
        let lock = self.world.store.resources.get(sid)?.lock.as_deref()?;
        if !locks.contains(&lock) {
            return None;
        }
        self.world.service_mut(sid)?.lock.take()
    }

    fn read_groups(&mut self) -> Result<Groups, EnvError> {
        self.cfs_rw()?;
        Ok(self.world.groups.clone())
    }

    fn read_rules(&mut self) -> Result<Vec<Rule>, EnvError> {
        self.cfs_rw()?;
        Ok(self.world.rules.clone())
    }

    fn write_rules(&mut self, rules: &[Rule]) -> Result<(), EnvError> {
        self.cfs_rw()?;
        self.world.rules = rules.to_vec();
        Ok(())
    }

    fn drop_resource_groups(&mut self, failback: &BTreeMap<String, bool>) -> Result<(), EnvError> {
        self.cfs_rw()?;
        for (sid, value) in failback {
            if let Some(cd) = self.world.service_mut(sid) {
                cd.group = None;
                cd.failback = *value;
            }
        }
        Ok(())
    }

    fn delete_groups(&mut self) -> Result<(), EnvError> {
        self.cfs_rw()?;
        self.world.groups.clear();
        Ok(())
    }

    fn node_version(&mut self, node: &str) -> Option<String> {
        let version = self.world.nodes.get(node)?.hw.version.clone();
        Some(version.unwrap_or_else(|| DEFAULT_NODE_VERSION.to_string()))
    }

    fn datacenter_settings(&mut self) -> DatacenterSettings {
        self.world.datacenter.clone()
    }

    fn static_node_stats(&mut self) -> Result<BTreeMap<NodeName, NodeStats>, EnvError> {
        Ok(self
            .world
            .nodes
            .iter()
            .map(|(name, n)| {
                let stats = NodeStats {
                    cpu: 0.0,
                    maxcpu: n.hw.maxcpu.unwrap_or(0.0).trunc(),
                    mem: 0.0,
                    maxmem: n.hw.maxmem.unwrap_or(0.0).trunc(),
                };
                (name.clone(), stats)
            })
            .collect())
    }

    fn dynamic_node_stats(&mut self) -> Result<BTreeMap<NodeName, NodeStats>, EnvError> {
        let world = &*self.world;
        // Configured guests with their stats, sorted by sid: each node's
        // running guests (also sorted) are found by a search from where
        // the previous one was.
        let guests = world.configured_guests();
        Ok(world
            .nodes
            .iter()
            .map(|(name, n)| {
                let mut stats = NodeStats {
                    cpu: 0.0,
                    maxcpu: n.hw.maxcpu.unwrap_or(DYNAMIC_DEFAULT_MAXCPU).trunc(),
                    mem: 0.0,
                    maxmem: n.hw.maxmem.unwrap_or(DYNAMIC_DEFAULT_MAXMEM).trunc(),
                };
                let mut from = 0;
                for (sid, on) in world.running.get(name).into_iter().flatten() {
                    from += guests[from..].partition_point(|(s, _, _)| *s < sid.as_str());
                    let Some((_, _, guest)) = guests.get(from).filter(|(s, _, _)| *s == sid.as_str()) else {
                        continue;
                    };
                    if *on {
                        let guest = guest.copied().unwrap_or_default();
                        stats.cpu += guest.cpu.unwrap_or(DEFAULT_SERVICE_CPU);
                        stats.mem += guest.mem.unwrap_or(DEFAULT_SERVICE_MEM).trunc();
                    }
                }
                (name.clone(), stats)
            })
            .collect())
    }

    fn service_stats(&mut self, dynamic: bool) -> BTreeMap<String, ResourceStats> {
        let world = &*self.world;
        world
            .configured_guests()
            .into_iter()
            .map(|(sid, cd, guest)| {
                let guest = guest.copied().unwrap_or_default();
                let maxcpu = guest.maxcpu.unwrap_or(DEFAULT_SERVICE_MAXCPU);
                let maxmem = guest.maxmem.unwrap_or(DEFAULT_SERVICE_MAXMEM).trunc();
                let stats = if dynamic {
                    let running = cd
                        .node
                        .as_ref()
                        .and_then(|n| world.running.get(n))
                        .and_then(|m| m.get(sid));
                    ResourceStats {
                        cpu: guest.cpu.unwrap_or(DEFAULT_SERVICE_CPU),
                        maxcpu,
                        mem: guest.mem.unwrap_or(DEFAULT_SERVICE_MEM).trunc(),
                        maxmem,
                        measured_running: running.copied().unwrap_or(false),
                    }
                } else {
                    ResourceStats {
                        cpu: maxcpu,
                        maxcpu,
                        mem: maxmem,
                        maxmem,
                        measured_running: false,
                    }
                };
                (sid.to_string(), stats)
            })
            .collect()
    }

    fn read_crm_commands(&mut self) -> Result<Vec<CrmCommand>, EnvError> {
        self.cfs_rw()?;
        match self.world.store.apply(Op::TakeCrmCommands) {
            Reply::Commands(commands) => Ok(commands),
            _ => Ok(Vec::new()),
        }
    }

    fn any_pending_crm_command(&mut self) -> bool {
        !self.world.store.crm_commands.is_empty()
    }

    fn get_ha_manager_lock(&mut self) -> bool {
        self.clock().loop_delay += 1;
        self.sim_lock(LockName::Manager, false)
    }

    fn release_ha_manager_lock(&mut self) -> bool {
        self.sim_lock(LockName::Manager, true)
    }

    fn get_ha_agent_lock(&mut self, node: Option<&str>) -> bool {
        self.clock().loop_delay += 1;
        let node = node.unwrap_or(&self.node).to_string();
        self.sim_lock(LockName::Agent(node.to_string()), false)
    }

    fn release_ha_agent_lock(&mut self) -> bool {
        self.sim_lock(LockName::Agent(self.node.clone()), true)
    }

    fn watchdog_open(&mut self) -> WatchdogHandle {
        self.world.watchdog_seq += 1;
        let id = self.world.watchdog_seq;
        let client = match self.daemon {
            Daemon::Crm => Client::Crm,
            Daemon::Lrm => Client::Lrm,
        };
        let now_ms = millis(self.world.now);
        self.world
            .watchdogs
            .entry(self.node.clone())
            .or_insert_with(|| WatchdogMux::new(millis(WATCHDOG_TIMEOUT_SECS)))
            .arm(client, now_ms);
        self.world.watchdog_handles.insert(id, (self.node.clone(), client));
        id
    }

    fn watchdog_update(&mut self, handle: WatchdogHandle) {
        let now_ms = millis(self.world.now);
        if let Some((node, client)) = self.world.watchdog_handles.get(&handle)
            && let Some(mux) = self.world.watchdogs.get_mut(node)
        {
            mux.pet(*client, now_ms);
        }
    }

    fn watchdog_close(&mut self, handle: WatchdogHandle) {
        if let Some((node, client)) = self.world.watchdog_handles.remove(&handle)
            && let Some(mux) = self.world.watchdogs.get_mut(&node)
        {
            mux.close(client);
        }
    }

    fn is_node_shutdown(&mut self) -> NodeShutdown {
        match self.world.nodes.get(&self.node).and_then(|n| n.shutdown) {
            Some("reboot") => NodeShutdown::Reboot,
            Some(_) => NodeShutdown::PowerOff,
            None => NodeShutdown::StaysUp,
        }
    }

    fn max_workers(&self) -> usize {
        0
    }

    fn fence_device(&mut self, node: &str) -> crate::core::env::FenceDeviceState {
        let (state, lines) = self.world.fence.request(node);
        let source = format!("{}/{}", self.node, self.daemon.as_str());
        for (level, message) in lines {
            let line = render_line(level, self.now(), &source, &message);
            self.world.log.push(line);
        }
        state
    }

    fn fence_device_reset(&mut self, node: &str) {
        self.world.fence.reset(node);
    }

    fn sleep(&mut self, secs: Time) {
        self.clock().loop_delay += secs;
    }

    fn sleep_until(&mut self, until: Time) {
        let clock = self.clock();
        let current = clock.time + clock.loop_delay;
        if current < until {
            clock.loop_delay += until - current;
        }
    }
}

impl AgentHost for SimEnv<'_> {
    fn nodename(&self) -> &str {
        &self.node
    }

    fn log(&mut self, event: Event) {
        use std::fmt::Write;
        let level = event.level().as_str();
        let level = level.char_indices().nth(4).map_or(level, |(end, _)| &level[..end]);
        // render_line, without rendering the source and the message on
        // their own first: `{source:>12}` padded by hand
        let daemon = self.daemon.as_str();
        let width = self.node.chars().count() + 1 + daemon.len();
        let mut line = String::with_capacity(96);
        let _ = write!(line, "{level:<5} {:>5} ", self.now());
        line.extend(std::iter::repeat_n(' ', 12usize.saturating_sub(width)));
        let _ = write!(line, "{}/{daemon}: {event}", self.node);
        self.world.log.push(line);
    }

    fn agent_known(&self, kind: &str) -> bool {
        matches!(kind, "vm" | "ct" | "fa")
    }

    fn agent_running(&mut self, sid: &str) -> bool {
        self.running_here(sid)
    }

    fn agent_start(&mut self, sid: &str) {
        if sid_type(sid) == "fa" && self.fa_fails(sid, false) {
            return;
        }
        if let Some(lock) = self.world.service_lock(sid) {
            self.log(Event::GuestLocked {
                sid: sid.to_string(),
                lock,
                action: "start",
            });
            return;
        }
        self.sleep(2);
        let node = self.node.clone();
        self.world.set_running(&node, sid, true);
    }

    fn agent_shutdown(&mut self, sid: &str, _timeout: Option<i64>) {
        if sid_type(sid) == "fa" && fa_behaviour(sid).2 {
            return;
        }
        if let Some(lock) = self.world.service_lock(sid) {
            self.log(Event::GuestLocked {
                sid: sid.to_string(),
                lock,
                action: "shutdown",
            });
            return;
        }
        self.sleep(2);
        let node = self.node.clone();
        self.world.set_running(&node, sid, false);
    }

    fn agent_migrate(&mut self, sid: &str, target: &str, mut online: bool) -> bool {
        if sid_type(sid) == "fa" && self.fa_fails(sid, true) {
            return false;
        }
        if sid_type(sid) == "ct" && online && self.running_here(sid) {
            self.log(Event::LiveMigrateFallback);
            online = false;
        }
        let task = if online { "migrate" } else { "relocate" };
        let target_name = target.to_string();
        self.log(Event::MigrateStart {
            sid: sid.to_string(),
            task,
            target: target_name.clone(),
        });
        if let Some(lock) = self.world.service_lock(sid) {
            self.log(Event::GuestLocked {
                sid: sid.to_string(),
                lock,
                action: task,
            });
            return false;
        }
        if !online && self.running_here(sid) {
            self.log(Event::StoppingForRelocate { sid: sid.to_string() });
            self.agent_shutdown(sid, None);
            self.log(Event::ServiceStopped { sid: sid.to_string() });
        } else {
            self.sleep(2);
        }
        self.world.change_service_location(sid, target);
        self.log(Event::MigrateEnd {
            sid: sid.to_string(),
            task,
            target: target_name,
        });
        let node = self.node.clone();
        if let Some(map) = self.world.running.get_mut(&node) {
            map.remove(sid);
        }
        true
    }
}
