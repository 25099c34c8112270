//! One master round (upstream `Manager.pm`): read node and LRM state, add and
//! remove services, process CRM commands, run every service's state machine
//! to a fix point, fence and recover, then write `manager_status`.
//!
//! Glossary of upstream abbreviations: `ss` = `services` (service status by
//! sid), `sd` = one service's status, `cd` = one service's configuration,
//! `ns` = `nodes` (node status), `ms` = manager status.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::crm_command::{CrmCommand, DisarmMode, MoveKind};
use super::env::{DatacenterSettings, Env, EnvError, NodeInfo};
use super::event::Event;
use super::group_migration::{GroupMigration, LrmFacts};
use super::node_status::NodeStatus;
use super::rules::{Rule, compile, rules_from_groups, transform};
use super::select::{CompiledRules, Preference, node_affinity, resource_affinity, select_service_node};
use super::status::{
    Disarm, Groups, LrmResult, LrmStatus, ManagerStatus, NodeRequest, ResourceConfig, ServiceCommand, ServiceConfig,
    ServiceStatus,
};
use super::types::{ExitCode, LrmMode, NodeName, RequestState, ServiceState, Time, sid_type};
use super::usage::{CrsMode, Migration, MigrationCandidate, ResourceStats, Usage};

/// Guest locks that are safe to drop once the guest's node was fenced.
const REMOVABLE_LOCKS_AFTER_FENCE: [&str; 9] = [
    "backup",
    "mounted",
    "migrate",
    "clone",
    "rollback",
    "snapshot",
    "snapshot-delete",
    "suspending",
    "suspended",
];

/// The master's working state, created when a CRM becomes master.
#[derive(Debug)]
pub struct Manager {
    /// Node table (persisted part plus runtime `last_online`).
    pub nodes: NodeStatus,
    /// Service status by sid.
    pub services: BTreeMap<String, ServiceStatus>,
    /// Maintenance requests by node.
    pub node_request: BTreeMap<NodeName, NodeRequest>,
    /// Disarm progress, if the stack is (being) disarmed.
    pub disarm: Option<Disarm>,
    /// This node: the master.
    master_node: NodeName,
    /// Usage of online nodes, kept current by every state change.
    usage: Usage,
    /// Placement rules, compiled when their inputs change.
    rules: CompiledRules,
    /// The inputs `rules` was compiled from: rules, groups and which
    /// services use which group (services without one do not matter). A
    /// change recompiles.
    rules_inputs: Option<RuleInputs>,
    /// The scheduler mode in use (re-read every round).
    crs_mode: CrsMode,
    /// Datacenter settings of this round.
    settings: DatacenterSettings,
    /// Consecutive rounds above the rebalance threshold (runtime only).
    sustained_imbalance_rounds: u32,
    /// Countdown of the groups → rules migration (runtime only).
    group_migration: GroupMigration,
    /// Uid sequence of this manager; combined with node and time it makes
    /// every uid unique, which is all the LRM protocol needs.
    uid_seq: u64,
    /// When this manager took over (ms): part of every uid ([`Manager::new_uid`]).
    uid_term: u64,
}

/// What compiled rules depend on: rules, groups, and the group of each
/// service that has one.
type RuleInputs = (Vec<Rule>, Groups, BTreeMap<String, String>);

/// Each cluster node's LRM status snapshot, in node order (`None`: the
/// node never wrote one).
type LrmStatuses = Vec<(NodeName, Option<Arc<LrmStatus>>)>;

/// LRM inputs of one round, borrowed from the nodes' status snapshots:
/// results by uid (the first node in name order that reports one wins),
/// each node's mode and state.
struct LrmView<'a> {
    results: BTreeMap<&'a str, &'a LrmResult>,
    modes: BTreeMap<NodeName, LrmMode>,
    states: BTreeMap<NodeName, String>,
}

impl LrmView<'_> {
    fn result(&self, uid: &str) -> Option<&LrmResult> {
        self.results.get(uid).copied()
    }
}

/// What `handle_disarm` decided for this round.
enum DisarmOutcome {
    /// The round is over (status already written).
    Handled,
    /// Only these services may run through the state machine.
    Deferred(BTreeSet<String>),
    /// Proceed normally.
    NotApplicable,
}

impl Manager {
    /// Takes over from the status on disk; runtime data starts empty.
    pub fn new(env: &mut dyn Env, ms: ManagerStatus) -> Manager {
        let mut manager = Manager {
            nodes: NodeStatus::new(ms.node_status),
            services: ms.service_status,
            node_request: ms.node_request,
            disarm: ms.disarm,
            master_node: env.nodename().to_string(),
            usage: Usage::basic(&[]),
            rules: CompiledRules::default(),
            rules_inputs: None,
            crs_mode: CrsMode::Basic,
            settings: DatacenterSettings::default(),
            sustained_imbalance_rounds: 0,
            group_migration: GroupMigration::default(),
            uid_seq: 0,
            uid_term: env.now_ms(),
        };
        manager.update_crs_mode(env, true);
        manager
    }

    /// Re-reads the datacenter settings and logs a scheduler mode change
    /// (or, for a new master, a mode other than basic).
    fn update_crs_mode(&mut self, env: &mut dyn Env, first: bool) {
        self.settings = env.datacenter_settings();
        let mode = self.settings.crs_mode;
        if first {
            if mode != CrsMode::Basic {
                env.log(Event::UsingSchedulerMode { mode: mode.as_str() });
            }
        } else if mode != self.crs_mode {
            env.log(Event::SwitchingSchedulerMode {
                from: self.crs_mode.as_str(),
                to: mode.as_str(),
            });
        }
        self.crs_mode = mode;
    }

    /// True once every online LRM released its lock for a disarm.
    pub fn is_fully_disarmed(&self) -> bool {
        self.disarm.as_ref().is_some_and(Disarm::is_disarmed)
    }

    /// A uid no other command has had: the master, the time, this
    /// manager's creation (ms) and a sequence number. The creation stamp
    /// keeps two terms of one master apart: without it a master that lost
    /// its lock and took it again within a second numbered its commands
    /// from 1 again, and an LRM's result for another service's command of
    /// the earlier term was taken for the new one (chaos Raft seed 336: a
    /// relocation counted done that never ran, then a double run).
    fn new_uid(&mut self, now: Time) -> String {
        self.uid_seq += 1;
        format!("{}-{}-{}-{}", self.master_node, now, self.uid_term, self.uid_seq)
    }

    fn status(&self, now: Time) -> ManagerStatus {
        ManagerStatus {
            master_node: Some(self.master_node.clone()),
            timestamp: Some(now),
            node_status: self.nodes.status.clone(),
            service_status: self.services.clone(),
            node_request: self.node_request.clone(),
            disarm: self.disarm.clone(),
        }
    }

    fn flush(&self, env: &mut dyn Env) -> Result<(), EnvError> {
        env.write_manager_status(self.status(env.now()))
    }

    /// Upstream's `change_service_state`: wipes runtime keys (but node,
    /// failed_nodes and maintenance_node), sets the new state and params,
    /// assigns a new uid and logs the change.
    fn change_state(&mut self, env: &mut dyn Env, sid: &str, to: ServiceState, params: StateParams) {
        let now = env.now();
        let uid = self.new_uid(now);
        let sd = self.services.get_mut(sid).expect("state change of an unknown service");
        let from = sd.state;
        assert_ne!(from, to, "service '{sid}': state change to the same state '{to}'");
        let mut next = ServiceStatus::new(to, &sd.node, uid);
        next.failed_nodes = sd.failed_nodes.take();
        next.maintenance_node = sd.maintenance_node.take();
        let mut logged = Vec::new();
        if let Some(node) = params.node {
            logged.push(("node", node.clone()));
            next.node = node;
        }
        if let Some(target) = params.target {
            logged.push(("target", target.clone()));
            next.target = Some(target);
        }
        if let Some(timeout) = params.timeout {
            logged.push(("timeout", timeout.to_string()));
            next.timeout = Some(timeout);
        }
        *sd = next;
        self.usage.set_service(sid, sd);
        env.log(Event::ServiceStateChanged {
            sid: sid.to_string(),
            from,
            to,
            params: logged,
        });
    }

    /// Rebuilds the usage of the online nodes for the current scheduler
    /// mode; falls back to `basic` when node statistics are missing.
    fn recompute_usage(&mut self, env: &mut dyn Env) {
        let online = self.nodes.list_online_nodes();
        let fresh = match self.scheduled_usage(env, &online) {
            Ok(usage) => usage,
            Err(error) => {
                env.log(Event::SchedulerFallback {
                    mode: self.crs_mode.as_str(),
                    error,
                });
                Usage::basic(&online)
            }
        };
        self.usage.refresh(fresh, &self.services);
    }

    fn scheduled_usage(&self, env: &mut dyn Env, online: &[NodeName]) -> Result<Usage, String> {
        let dynamic = match self.crs_mode {
            CrsMode::Basic => return Ok(Usage::basic(online)),
            CrsMode::Static => false,
            CrsMode::Dynamic => true,
        };
        let kind = self.crs_mode.as_str();
        let all = if dynamic {
            env.dynamic_node_stats()
        } else {
            env.static_node_stats()
        }
        .map_err(|e| format!("did not get {kind} node usage information - {e}"))?;
        let mut nodes = BTreeMap::new();
        for node in online {
            let stats = all
                .get(node)
                .ok_or_else(|| format!("did not get {kind} node usage information for '{node}'"))?;
            if stats.maxcpu <= 0.0 {
                return Err(format!("{kind} node usage information for '{node}' missing cpu count"));
            }
            if stats.maxmem <= 0.0 {
                return Err(format!("{kind} node usage information for '{node}' missing memory"));
            }
            nodes.insert(node.clone(), *stats);
        }
        Ok(Usage::scheduled(self.crs_mode, nodes, env.service_stats(dynamic)))
    }

    /// Reads every cluster node's LRM status (`None`: never wrote one).
    fn read_lrm_statuses(env: &mut dyn Env, info: &NodeInfo) -> Result<LrmStatuses, EnvError> {
        info.online
            .keys()
            .map(|node| Ok((node.clone(), env.read_lrm_status(node)?)))
            .collect()
    }

    /// The round's view of the LRM statuses. A node that never wrote one
    /// counts as `active` (what upstream's simulator reports).
    fn lrm_view(statuses: &LrmStatuses) -> LrmView<'_> {
        let mut view = LrmView {
            results: BTreeMap::new(),
            modes: BTreeMap::new(),
            states: BTreeMap::new(),
        };
        for (node, lrm) in statuses {
            let mode = match lrm {
                Some(lrm) => {
                    for (uid, result) in &lrm.results {
                        view.results.entry(uid.as_str()).or_insert(result);
                    }
                    view.states.insert(node.clone(), lrm.state.clone());
                    lrm.mode
                }
                None => LrmMode::Active,
            };
            view.modes.insert(node.clone(), mode);
        }
        view
    }

    /// One master round. An `Err` aborts the round (upstream dies and the
    /// CRM logs `got unexpected error`); nothing was written then.
    pub fn manage(&mut self, env: &mut dyn Env) -> Result<(), EnvError> {
        let info = env.node_info();
        let known: BTreeSet<&NodeName> = self.nodes.status.keys().collect();
        let node_list_changed = info.online.keys().collect::<BTreeSet<_>>() != known;
        let statuses = Self::read_lrm_statuses(env, &info)?;
        let lrm = Self::lrm_view(&statuses);
        self.nodes.update(env, &info, &lrm.modes);
        if !self.nodes.is_operational(&self.master_node.clone()) {
            env.log(Event::MasterSeemsOffline);
            return Ok(());
        }
        self.update_crs_mode(env, false);
        let facts = LrmFacts {
            states: &lrm.states,
            modes: &lrm.modes,
            services: &self.services,
        };
        self.group_migration.round(env, &mut self.nodes, &facts)?;

        let mut config = env.read_service_config()?;
        let groups = env.read_groups()?;

        if self.disarm.is_none() {
            self.add_new_services(env, &config);
            self.remove_stale_services(env, &config);
        }
        self.recompute_usage(env);

        // Groups give their members node affinity (compiled below) and
        // override failback (see `failback`).
        let rules = env.read_rules()?;
        self.compile_rules(env, rules, groups, &config, node_list_changed);

        self.process_crm_commands(env, &config)?;

        let only = match self.handle_disarm(env, &lrm.modes)? {
            DisarmOutcome::Handled => return Ok(()),
            DisarmOutcome::Deferred(sids) => Some(sids),
            DisarmOutcome::NotApplicable => {
                self.load_balance(env);
                None
            }
        };

        self.run_state_machine(env, &mut config, &lrm, only.as_ref())?;
        self.flush(env)
    }

    /// A service's failback setting: its group's when it has one (upstream
    /// overrides the resource's with the group's `nofailback`).
    fn failback(&self, cd: &ResourceConfig) -> bool {
        let groups = self.rules_inputs.as_ref().map(|(_, groups, _)| groups);
        match cd.group.as_ref().and_then(|g| groups?.get(g)) {
            Some(group) => !group.nofailback,
            None => cd.failback,
        }
    }

    /// Recompiles the placement rules when their inputs changed. Dropped
    /// rules are logged when the rules, the groups or the node list changed
    /// (upstream's trigger), not on every service edit.
    fn compile_rules(
        &mut self,
        env: &mut dyn Env,
        rules: Vec<Rule>,
        groups: Groups,
        config: &ServiceConfig,
        node_list_changed: bool,
    ) {
        // Without groups there are no group rules, whoever names one.
        let membership: BTreeMap<String, String> = match groups.is_empty() {
            true => BTreeMap::new(),
            false => config
                .iter()
                .filter_map(|(sid, cd)| Some((sid.clone(), cd.group.clone()?)))
                .collect(),
        };
        let log_drops = match &self.rules_inputs {
            None => true,
            Some((old_rules, old_groups, _)) => node_list_changed || *old_rules != rules || *old_groups != groups,
        };
        let inputs = (rules, groups, membership);
        if !log_drops && self.rules_inputs.as_ref() == Some(&inputs) {
            return;
        }
        let (rules, groups, _) = &inputs;
        let mut all = rules.clone();
        all.extend(rules_from_groups(groups, config, rules.len() + 1));
        let nodes = self.nodes.list_nodes();
        let (kept, messages) = transform(&all, &nodes);
        if log_drops {
            for message in messages {
                env.log(Event::RuleDropped { message });
            }
        }
        self.rules = compile(&kept, &nodes);
        self.rules_inputs = Some(inputs);
    }

    fn add_new_services(&mut self, env: &mut dyn Env, config: &ServiceConfig) {
        let new: Vec<(&String, &ResourceConfig)> = left_join(config, &self.services)
            .filter(|(_, cd, sd)| sd.is_none() && cd.state != RequestState::Ignored)
            .map(|(sid, cd, _)| (sid, cd))
            .collect();
        for (sid, cd) in new {
            let Some(node) = cd.node.clone() else {
                continue;
            };
            env.log(Event::AddingService {
                sid: sid.clone(),
                node: node.clone(),
            });
            let state = if cd.state == RequestState::Started {
                ServiceState::RequestStart
            } else {
                ServiceState::RequestStop
            };
            let uid = self.new_uid(env.now());
            self.services.insert(sid.clone(), ServiceStatus::new(state, &node, uid));
        }
    }

    fn remove_stale_services(&mut self, env: &mut dyn Env, config: &ServiceConfig) {
        let stale: Vec<(String, bool)> = left_join(&self.services, config)
            .filter_map(|(sid, _, cd)| match cd {
                None => Some((sid.clone(), false)),
                Some(cd) if cd.state == RequestState::Ignored => Some((sid.clone(), true)),
                Some(_) => None,
            })
            .collect();
        for (sid, ignored) in stale {
            env.log(Event::RemovingStaleService {
                sid: sid.clone(),
                ignored,
            });
            self.services.remove(&sid);
        }
    }

    // ------------------------------------------------------------------
    // CRM commands
    // ------------------------------------------------------------------

    fn process_crm_commands(&mut self, env: &mut dyn Env, config: &ServiceConfig) -> Result<(), EnvError> {
        for command in env.read_crm_commands()? {
            match &command {
                CrmCommand::Move { kind, sid, node } => self.command_move(env, &command, *kind, sid, node),
                CrmCommand::Stop { sid, timeout } => match self.services.get_mut(sid) {
                    Some(sd) => {
                        sd.cmd = Some(ServiceCommand::Stop(*timeout));
                        env.log(Event::CrmCommandReceived { command });
                    }
                    None => env.log(Event::CrmCommandNoSuchService { command }),
                },
                CrmCommand::EnableNodeMaintenance { node } => self.command_enable_maintenance(env, &command, node),
                CrmCommand::DisableNodeMaintenance { node } => self.command_disable_maintenance(env, node),
                CrmCommand::DisarmHa { mode } => self.command_disarm(env, &command, *mode),
                CrmCommand::ArmHa => self.command_arm(env, config),
            }
        }
        Ok(())
    }

    fn command_enable_maintenance(&mut self, env: &mut dyn Env, command: &CrmCommand, node: &str) {
        let node = node.to_string();
        if self.disarm.is_some() {
            env.log(Event::MaintenanceWhileDisarmed { node });
            return;
        }
        match self.nodes.state(&node) {
            super::types::NodeState::Online => {
                self.node_request.entry(node).or_default().maintenance = true;
            }
            super::types::NodeState::Maintenance => env.log(Event::AlreadyInMaintenance { node }),
            _ => env.log(Event::CrmCommandNodeNotOnline {
                command: command.clone(),
            }),
        }
    }

    fn command_disable_maintenance(&mut self, env: &mut dyn Env, node: &str) {
        let state = self.nodes.state(node);
        if state != super::types::NodeState::Maintenance {
            env.log(Event::ClearingMaintenanceWrongState {
                node: node.to_string(),
                state,
            });
        }
        if let Some(request) = self.node_request.get_mut(node) {
            request.maintenance = false;
        }
        self.node_request.retain(|_, r| r.maintenance);
    }

    fn command_move(&mut self, env: &mut dyn Env, command: &CrmCommand, kind: MoveKind, sid: &str, target: &str) {
        let Some(sd) = self.services.get(sid) else {
            env.log(Event::CrmCommandNoSuchService {
                command: command.clone(),
            });
            return;
        };
        let current = sd.node.clone();
        if !self.nodes.is_online(target) {
            env.log(Event::CrmCommandNodeNotOnline {
                command: command.clone(),
            });
        } else if current == target {
            env.log(Event::CrmCommandAlreadyOnTarget {
                command: command.clone(),
            });
        } else {
            self.queue_resource_motion(env, command, kind, sid, target);
        }
    }

    /// Attaches a move command to `sid` and its positive-affinity partners,
    /// unless a negative-affinity partner already occupies the target.
    fn queue_resource_motion(
        &mut self,
        env: &mut dyn Env,
        command: &CrmCommand,
        kind: MoveKind,
        sid: &str,
        target: &str,
    ) {
        let negative: Vec<String> = self.rules.negative.get(sid).into_iter().flatten().cloned().collect();
        for partner in negative {
            let Some(psd) = self.services.get(&partner) else {
                continue;
            };
            let targets_there = psd.target.as_deref().is_none_or(|t| t == target);
            if psd.node == target && targets_there {
                env.log(Event::NegativeAffinityBlocksCommand {
                    command: command.clone(),
                    partner,
                    target: target.to_string(),
                    sid: sid.to_string(),
                });
                return;
            }
        }
        env.log(Event::CrmCommandReceived {
            command: command.clone(),
        });
        let cmd = match kind {
            MoveKind::Migrate => ServiceCommand::Migrate(target.to_string()),
            MoveKind::Relocate => ServiceCommand::Relocate(target.to_string()),
        };
        if let Some(sd) = self.services.get_mut(sid) {
            sd.cmd = Some(cmd.clone());
        }
        let positive: Vec<String> = self.rules.positive.get(sid).into_iter().flatten().cloned().collect();
        for partner in positive {
            let Some(psd) = self.services.get_mut(&partner) else {
                continue;
            };
            if psd.node == target || psd.target.as_deref() == Some(target) {
                continue;
            }
            env.log(Event::PositiveAffinityComigrate {
                command: command.clone(),
                cmd: kind,
                partner: partner.clone(),
                target: target.to_string(),
                sid: sid.to_string(),
            });
            psd.cmd = Some(cmd.clone());
        }
    }

    fn command_disarm(&mut self, env: &mut dyn Env, command: &CrmCommand, mode: DisarmMode) {
        if let Some(disarm) = &self.disarm {
            env.log(Event::DisarmIgnoredAlreadyDisarmed {
                state: disarm.state.clone(),
            });
            return;
        }
        env.log(Event::CrmCommandReceived {
            command: command.clone(),
        });
        if mode == DisarmMode::Ignore {
            for sid in self.services.keys() {
                env.log(Event::DisarmSuspendingService { sid: sid.clone() });
            }
        }
        self.disarm = Some(Disarm {
            mode: mode.as_str().to_string(),
            state: Disarm::DISARMING.to_string(),
        });
    }

    fn command_arm(&mut self, env: &mut dyn Env, config: &ServiceConfig) {
        let Some(disarm) = self.disarm.take() else {
            env.log(Event::ArmIgnoredNotDisarmed);
            return;
        };
        env.log(Event::CrmCommandReceived {
            command: CrmCommand::ArmHa,
        });
        if disarm.mode == "ignore" {
            for (sid, sd) in self.services.iter_mut() {
                let Some(node) = config.get(sid).and_then(|cd| cd.node.clone()) else {
                    continue;
                };
                if node != sd.node {
                    env.log(Event::ArmUpdatingNode {
                        sid: sid.clone(),
                        from: sd.node.clone(),
                        to: node.clone(),
                    });
                    sd.node = node;
                }
            }
        }
    }

    // ------------------------------------------------------------------
    // Disarm
    // ------------------------------------------------------------------

    fn handle_disarm(
        &mut self,
        env: &mut dyn Env,
        modes: &BTreeMap<NodeName, LrmMode>,
    ) -> Result<DisarmOutcome, EnvError> {
        let Some(disarm) = self.disarm.clone() else {
            return Ok(DisarmOutcome::NotApplicable);
        };
        if disarm.mode != "freeze" && disarm.mode != "ignore" {
            env.log(Event::UnknownDisarmMode { mode: disarm.mode });
            return Ok(DisarmOutcome::NotApplicable);
        }
        let mut deferred = BTreeSet::new();
        for (sid, sd) in &self.services {
            if matches!(
                sd.state,
                ServiceState::Fence | ServiceState::Recovery | ServiceState::Migrate | ServiceState::Relocate
            ) {
                env.log(Event::DeferringDisarm {
                    sid: sid.clone(),
                    state: sd.state,
                });
                deferred.insert(sid.clone());
            }
        }
        if !deferred.is_empty() {
            return Ok(DisarmOutcome::Deferred(deferred));
        }
        let now = env.now();
        let sids: Vec<String> = self.services.keys().cloned().collect();
        for sid in sids {
            let uid = self.new_uid(now);
            let sd = self.services.get_mut(&sid).expect("listed above");
            let freeze = disarm.mode == "freeze"
                && matches!(
                    sd.state,
                    ServiceState::Started
                        | ServiceState::Stopped
                        | ServiceState::RequestStop
                        | ServiceState::RequestStart
                        | ServiceState::RequestStartBalance
                );
            if disarm.mode == "freeze" && !freeze {
                // Frozen and erroneous services keep everything they have,
                // their maintenance fallback node included: this runs every
                // round while disarmed, and a service frozen in an earlier
                // round must still move back once its node's maintenance
                // ends (upstream keeps `maintenance_node` through disarm/arm).
                continue;
            }
            let mut pruned = ServiceStatus::new(sd.state, &sd.node, sd.uid.clone());
            pruned.maintenance_node = sd.maintenance_node.take();
            if freeze {
                env.log(Event::DisarmFreezingService {
                    sid: sid.clone(),
                    was: sd.state,
                });
                pruned.state = ServiceState::Freeze;
                pruned.uid = uid;
            }
            *sd = pruned;
        }
        if !disarm.is_disarmed() {
            let online = self.nodes.list_online_nodes();
            let all_disarmed = online.iter().all(|n| modes.get(n) == Some(&LrmMode::Disarm));
            if all_disarmed {
                env.log(Event::AllLrmsDisarmed);
                if let Some(d) = self.disarm.as_mut() {
                    d.state = Disarm::DISARMED.to_string();
                }
            }
        }
        self.flush(env)?;
        Ok(DisarmOutcome::Handled)
    }

    // ------------------------------------------------------------------
    // Auto-rebalance
    // ------------------------------------------------------------------

    /// Moves one bundle of services when the load imbalance stayed above
    /// the threshold for the hold duration (spec §5.7).
    fn load_balance(&mut self, env: &mut dyn Env) {
        if !self.settings.auto_rebalance || self.usage.mode() == CrsMode::Basic || self.disarm.is_some() {
            return;
        }
        let moving = self.services.values().any(|sd| {
            matches!(sd.state, ServiceState::Migrate | ServiceState::Relocate)
                || matches!(sd.cmd, Some(ServiceCommand::Migrate(_) | ServiceCommand::Relocate(_)))
        });
        if moving {
            return;
        }
        let imbalance = self.usage.imbalance();
        if imbalance <= self.settings.rebalance_threshold {
            self.sustained_imbalance_rounds = 0;
            return;
        }
        self.sustained_imbalance_rounds = self.sustained_imbalance_rounds.saturating_add(1);
        if f64::from(self.sustained_imbalance_rounds) < self.settings.rebalance_hold_rounds {
            return;
        }
        self.sustained_imbalance_rounds = 0;
        let method = self.settings.rebalance_method;
        let candidates = self.migration_candidates();
        let best = match self.usage.best_migration(&candidates, method) {
            Ok(Some(best)) => best,
            Ok(None) => return,
            Err(error) => {
                env.log(Event::UnexpectedError { error });
                return;
            }
        };
        let (migration, expected) = best;
        if (imbalance - expected) / imbalance < self.settings.rebalance_margin {
            return;
        }
        let kind = if sid_type(&migration.sid) == "vm" {
            MoveKind::Migrate
        } else {
            MoveKind::Relocate
        };
        env.log(Event::AutoRebalance {
            task: kind.as_str(),
            sid: migration.sid.clone(),
            target: migration.target.clone(),
            from: imbalance,
            to: expected,
        });
        let command = CrmCommand::Move {
            kind,
            sid: migration.sid.clone(),
            node: migration.target.clone(),
        };
        self.queue_resource_motion(env, &command, kind, &migration.sid, &migration.target);
    }

    /// Bundles of started services kept together by positive affinity (on
    /// one node), each with the nodes it could move to.
    fn migration_candidates(&self) -> Vec<MigrationCandidate> {
        let mut seen = BTreeSet::new();
        let mut candidates = Vec::new();
        for (sid, sd) in &self.services {
            if sd.state != ServiceState::Started || seen.contains(sid) {
                continue;
            }
            let mut bundle: Vec<&String> = vec![sid];
            for partner in self.rules.positive.get(sid).into_iter().flatten() {
                if self
                    .services
                    .get(partner)
                    .is_some_and(|p| p.state == ServiceState::Started)
                {
                    bundle.push(partner);
                }
            }
            bundle.sort();
            bundle.dedup();
            seen.extend(bundle.iter().map(|s| (*s).clone()));
            let partners_moving = self.rules.positive.get(sid).into_iter().flatten().any(|p| {
                self.services
                    .get(p)
                    .is_some_and(|p| matches!(p.state, ServiceState::Migrate | ServiceState::Relocate))
            });
            let source = &sd.node;
            if partners_moving || bundle.iter().any(|m| &self.services[*m].node != source) {
                continue;
            }
            let leader = bundle[0];
            let (_, preferred) = node_affinity(&self.rules, leader, &self.usage);
            let mut separate = BTreeSet::new();
            for member in &bundle {
                let (_, apart) = resource_affinity(&self.rules, member, &self.services, &self.usage);
                separate.extend(apart);
            }
            let stats = bundle
                .iter()
                .map(|m| self.usage.running_stats(m))
                .fold(ResourceStats::default(), |a, b| a + b);
            for target in preferred
                .iter()
                .filter(|n| **n != source.as_str() && !separate.contains(*n))
            {
                candidates.push(MigrationCandidate {
                    migration: Migration {
                        sid: leader.clone(),
                        source: source.clone(),
                        target: target.to_string(),
                    },
                    stats,
                });
            }
        }
        candidates
    }

    // ------------------------------------------------------------------
    // The service state machine
    // ------------------------------------------------------------------

    fn run_state_machine(
        &mut self,
        env: &mut dyn Env,
        config: &mut Arc<ServiceConfig>,
        lrm: &LrmView,
        only: Option<&BTreeSet<String>>,
    ) -> Result<(), EnvError> {
        let disabled = ResourceConfig {
            state: RequestState::Disabled,
            ..ResourceConfig::default()
        };
        // The state machine neither adds nor removes services.
        loop {
            let mut repeat = false;
            for sid in &self.unsettled_services(config, &disabled, lrm, only) {
                let Some(sd) = self.services.get(sid) else {
                    continue;
                };
                let last = sd.state;
                // A result is this service's only if it names it: uids are
                // unique (`new_uid`), this is the second guard.
                let result = lrm.result(&sd.uid).filter(|r| r.sid == *sid).cloned();
                let cd = config.get(sid).unwrap_or(&disabled);
                match last {
                    ServiceState::Stopped => self.next_state_stopped(env, sid, cd),
                    ServiceState::Started => self.next_state_started(env, sid, cd, result.as_ref()),
                    ServiceState::RequestStart => self.next_state_request_start(env, sid, cd),
                    ServiceState::Migrate | ServiceState::Relocate | ServiceState::RequestStartBalance => {
                        self.next_state_migrate_relocate(env, sid, cd, result.as_ref())
                    }
                    ServiceState::Fence => {}
                    ServiceState::Recovery => {
                        let mut cd = cd.clone();
                        self.next_state_recovery(env, sid, &mut cd);
                        if config.get(sid).is_some_and(|entry| entry.node != cd.node)
                            && let Some(entry) = Arc::make_mut(config).get_mut(sid)
                        {
                            entry.node = cd.node;
                        }
                    }
                    ServiceState::RequestStop => self.next_state_request_stop(env, sid, result.as_ref()),
                    ServiceState::Freeze => self.next_state_freeze(env, sid, cd, &lrm.modes),
                    ServiceState::Error => self.next_state_error(env, sid, cd),
                }
                if let Some(sd) = self.services.get(sid) {
                    let frozen_node = lrm.modes.get(&sd.node) == Some(&LrmMode::Restart);
                    let freezable = matches!(
                        sd.state,
                        ServiceState::Started | ServiceState::Stopped | ServiceState::RequestStop
                    );
                    if frozen_node && freezable {
                        self.change_state(env, sid, ServiceState::Freeze, StateParams::default());
                    }
                    if self.services[sid].state != last {
                        repeat = true;
                    }
                }
            }
            if self.fencing_pass(env) {
                repeat = true;
            }
            if !repeat {
                return Ok(());
            }
        }
    }

    /// The services (in sid order) one pass of the state machine has to
    /// run through its handlers. Left out are those the pass would leave
    /// as they are, decided in one walk over status and configuration
    /// instead of the handlers' lookups:
    ///
    /// - `started` (and requested so) on an online node, with no LRM
    ///   result, command, maintenance fallback or placement rule, and not
    ///   to be frozen: `next_state_started` supervises it and selection's
    ///   fast path keeps it where it is;
    /// - moving (`migrate`, `relocate`, `request_start_balance`) from an
    ///   online node with no LRM result yet: `next_state_migrate_relocate`
    ///   waits.
    ///
    /// Deciding this before the pass rather than per service is the same:
    /// a handler changes only its own service, and what the test reads of
    /// the rest (node states, online nodes, LRM modes and results, rules,
    /// requested states) only changes between passes, in the fencing pass.
    fn unsettled_services(
        &self,
        config: &ServiceConfig,
        disabled: &ResourceConfig,
        lrm: &LrmView,
        only: Option<&BTreeSet<String>>,
    ) -> Vec<String> {
        // node -> (online, started services there stay put)
        let nodes: BTreeMap<&str, (bool, bool)> = self
            .nodes
            .status
            .iter()
            .map(|(node, state)| {
                let online = *state == super::types::NodeState::Online;
                let steady = online && self.usage.contains(node) && lrm.modes.get(node) != Some(&LrmMode::Restart);
                (node.as_str(), (online, steady))
            })
            .collect();
        let settled = |sid: &str, sd: &ServiceStatus, cd: &ResourceConfig| {
            let Some(&(online, steady)) = nodes.get(sd.node.as_str()) else {
                return false;
            };
            if !online || lrm.result(&sd.uid).is_some() {
                return false;
            }
            match sd.state {
                ServiceState::Started => {
                    steady
                        && cd.state == RequestState::Started
                        && sd.cmd.is_none()
                        && sd.maintenance_node.is_none()
                        && !self.rules.node_affinity.contains_key(sid)
                        && !self.rules.positive.contains_key(sid)
                        && !self.rules.negative.contains_key(sid)
                }
                ServiceState::Migrate | ServiceState::Relocate | ServiceState::RequestStartBalance => true,
                _ => false,
            }
        };
        left_join(&self.services, config)
            .filter(|(sid, _, _)| only.is_none_or(|set| set.contains(*sid)))
            .filter(|(sid, sd, cd)| !settled(sid, sd, cd.unwrap_or(disabled)))
            .map(|(sid, _, _)| sid.clone())
            .collect()
    }

    /// Fences the nodes of `fence` services (at most once per node per pass)
    /// and moves their services to `recovery`. Returns whether anything
    /// changed.
    fn fencing_pass(&mut self, env: &mut dyn Env) -> bool {
        let mut changed = false;
        let mut fenced: BTreeMap<NodeName, bool> = BTreeMap::new();
        let fence: Vec<(String, NodeName)> = self
            .services
            .iter()
            .filter(|(_, sd)| sd.state == ServiceState::Fence)
            .map(|(sid, sd)| (sid.clone(), sd.node.clone()))
            .collect();
        for (sid, node) in fence {
            let ok = match fenced.get(&node) {
                Some(ok) => *ok,
                None => {
                    let ok = self.nodes.fence_node(env, &node);
                    fenced.insert(node, ok);
                    ok
                }
            };
            if ok {
                self.change_state(env, &sid, ServiceState::Recovery, StateParams::default());
                changed = true;
            }
        }
        for node in self.nodes.list_nodes() {
            if fenced.contains_key(&node) || self.nodes.state(&node) != super::types::NodeState::Fence {
                continue;
            }
            env.log(Event::FenceNodeWithoutServices { node: node.clone() });
            if self.nodes.fence_node(env, &node) {
                changed = true;
            }
        }
        changed
    }

    fn offline_delayed(&mut self, env: &mut dyn Env, node: &str) -> bool {
        self.nodes.is_offline_delayed(node, env.now(), env.timing().fence_delay)
    }

    fn select(&self, env: &mut dyn Env, sid: &str, cd: &ResourceConfig, preference: Preference) -> Option<NodeName> {
        let mode = self.usage.mode().as_str();
        let mut on_error = |error: String| {
            env.log(Event::ScoringFailed {
                sid: sid.to_string(),
                mode,
                error,
            })
        };
        select_service_node(
            &self.rules,
            &self.usage,
            sid,
            self.failback(cd),
            &self.services,
            preference,
            &mut on_error,
        )
    }

    fn next_state_request_start(&mut self, env: &mut dyn Env, sid: &str, cd: &ResourceConfig) {
        let node = self.services[sid].node.clone();
        if self.settings.rebalance_on_start {
            let selected = self
                .select(env, sid, cd, Preference::BestScore)
                .unwrap_or_else(|| node.clone());
            let new = selected != node;
            env.log(Event::RebalanceSelected {
                sid: sid.to_string(),
                node: selected.clone(),
                new,
            });
            if new {
                let params = StateParams::moving(&node, &selected);
                self.change_state(env, sid, ServiceState::RequestStartBalance, params);
                return;
            }
        }
        self.change_state(env, sid, ServiceState::Started, StateParams::node(&node));
    }

    fn next_state_stopped(&mut self, env: &mut dyn Env, sid: &str, cd: &ResourceConfig) {
        if let Some(cd_node) = &cd.node {
            let sd = self.services.get_mut(sid).expect("known");
            if &sd.node != cd_node {
                env.log(Event::FixupLocation {
                    sid: sid.to_string(),
                    from: sd.node.clone(),
                    to: cd_node.clone(),
                });
                sd.node = cd_node.clone();
            }
        }
        if let Some(cmd) = self.services.get_mut(sid).and_then(|sd| sd.cmd.take()) {
            match &cmd {
                ServiceCommand::Migrate(target) | ServiceCommand::Relocate(target) => {
                    let target = target.clone();
                    let (task, state) = move_task(&cmd);
                    if self.move_allowed(env, sid, task, &target) {
                        let node = self.services[sid].node.clone();
                        self.change_state(env, sid, state, StateParams::moving(&node, &target));
                        return;
                    }
                }
                ServiceCommand::Stop(_) => {
                    env.log(Event::IgnoreStopAlreadyStopped { sid: sid.to_string() });
                }
            }
        }
        if cd.state == RequestState::Disabled {
            // The LRM keeps enforcing "stopped"; never fenced nor recovered.
            return;
        }
        let node = self.services[sid].node.clone();
        if self.offline_delayed(env, &node) && !self.nodes.is_maintenance(&node) {
            self.change_state(env, sid, ServiceState::Fence, StateParams::default());
            return;
        }
        match cd.state {
            RequestState::Stopped => {}
            RequestState::Started => {
                self.change_state(env, sid, ServiceState::RequestStart, StateParams::node(&node));
            }
            other => env.log(Event::UnknownConfigState {
                sid: sid.to_string(),
                state: other.as_str().into(),
            }),
        }
    }

    /// Checks a move command's target; logs why it is ignored otherwise.
    fn move_allowed(&mut self, env: &mut dyn Env, sid: &str, task: &'static str, target: &str) -> bool {
        if !self.nodes.is_online(target) {
            env.log(Event::IgnoreMoveTargetOffline {
                sid: sid.to_string(),
                cmd: task,
                target: target.to_string(),
            });
            false
        } else if self.services[sid].node == target {
            env.log(Event::IgnoreMoveAlreadyThere {
                sid: sid.to_string(),
                cmd: task,
                target: target.to_string(),
            });
            false
        } else {
            true
        }
    }

    fn next_state_started(&mut self, env: &mut dyn Env, sid: &str, cd: &ResourceConfig, result: Option<&LrmResult>) {
        let node = self.services[sid].node.clone();
        if !self.nodes.is_online(&node) {
            if self.offline_delayed(env, &node) {
                self.change_state(env, sid, ServiceState::Fence, StateParams::default());
            }
            if !self.nodes.is_maintenance(&node) {
                return;
            }
            // Remember where to come back to after the maintenance.
            self.services.get_mut(sid).expect("known").maintenance_node = Some(node.clone());
        }
        match cd.state {
            RequestState::Disabled | RequestState::Stopped => {
                self.change_state(env, sid, ServiceState::RequestStop, StateParams::default());
            }
            RequestState::Started => {
                let cmd = self.services.get_mut(sid).and_then(|sd| sd.cmd.take());
                match cmd {
                    Some(cmd) => self.started_command(env, sid, cmd),
                    None => self.started_supervise(env, sid, cd, result),
                }
            }
            RequestState::Ignored => env.log(Event::UnknownConfigState {
                sid: sid.to_string(),
                state: cd.state.as_str().into(),
            }),
        }
    }

    fn started_command(&mut self, env: &mut dyn Env, sid: &str, cmd: ServiceCommand) {
        match &cmd {
            ServiceCommand::Migrate(target) | ServiceCommand::Relocate(target) => {
                let target = target.clone();
                let (task, state) = move_task(&cmd);
                if self.move_allowed(env, sid, task, &target) {
                    env.log(Event::MoveService {
                        sid: sid.to_string(),
                        cmd: task,
                        target: target.to_string(),
                    });
                    let node = self.services[sid].node.clone();
                    self.change_state(env, sid, state, StateParams::moving(&node, &target));
                }
            }
            &ServiceCommand::Stop(timeout) => {
                if timeout == 0 {
                    env.log(Event::HardStopRequested { sid: sid.to_string() });
                } else {
                    env.log(Event::GracefulStopRequested {
                        sid: sid.to_string(),
                        timeout,
                    });
                }
                let params = StateParams {
                    timeout: Some(timeout),
                    ..StateParams::default()
                };
                self.change_state(env, sid, ServiceState::RequestStop, params);
                if let Err(err) = env.set_service_request_state(sid, RequestState::Stopped) {
                    env.log(Event::UnexpectedError { error: err.to_string() });
                }
            }
        }
    }

    /// Normal supervision of a started service: apply the LRM result, the
    /// relocate policy, and move the service where selection wants it.
    fn started_supervise(&mut self, env: &mut dyn Env, sid: &str, cd: &ResourceConfig, result: Option<&LrmResult>) {
        let mut preference = Preference::None;
        if let Some(result) = result {
            let sd = self.services.get_mut(sid).expect("known");
            match result.exit_code {
                ExitCode::Success => {
                    if let Some(failed) = sd.failed_nodes.take() {
                        env.log(Event::RelocationPolicySuccessful {
                            sid: sid.to_string(),
                            node: sd.node.clone(),
                            failed,
                        });
                    }
                    sd.running = true;
                }
                ExitCode::Error | ExitCode::WrongNode => {
                    sd.running = false;
                    let node = sd.node.clone();
                    let failed = sd.failed_nodes.get_or_insert_with(Vec::new);
                    failed.push(node.clone());
                    if failed.len() <= cd.max_relocate as usize {
                        preference = Preference::TryNext;
                        env.log(Event::StartFailedRelocating {
                            sid: sid.to_string(),
                            node,
                        });
                    } else {
                        let failed = failed.clone();
                        env.log(Event::RecoveryPolicyFailed {
                            sid: sid.to_string(),
                            failed,
                        });
                        self.change_state(env, sid, ServiceState::Error, StateParams::default());
                        return;
                    }
                }
                code => {
                    let node = sd.node.clone();
                    sd.failed_nodes.get_or_insert_with(Vec::new).push(node);
                    env.log(Event::UnrecoverableError {
                        sid: sid.to_string(),
                        code,
                    });
                    self.change_state(env, sid, ServiceState::Error, StateParams::default());
                    return;
                }
            }
        }

        let selected = self.select(env, sid, cd, preference);
        let current = self.services[sid].node.clone();
        match selected {
            Some(node) if node != current => {
                let sd = self.services.get_mut(sid).expect("known");
                if let Some(fallback) = sd.maintenance_node.clone() {
                    if node == fallback {
                        env.log(Event::MovingBackFromMaintenance {
                            sid: sid.to_string(),
                            node: fallback,
                        });
                        sd.maintenance_node = None;
                    } else if current != fallback {
                        env.log(Event::DroppingMaintenanceFallback {
                            sid: sid.to_string(),
                            node: fallback,
                        });
                        sd.maintenance_node = None;
                    }
                }
                if sid_type(sid) == "vm" {
                    env.log(Event::MigrateRunning {
                        sid: sid.to_string(),
                        target: node.clone(),
                    });
                    self.change_state(env, sid, ServiceState::Migrate, StateParams::moving(&current, &node));
                } else {
                    env.log(Event::RelocateService {
                        sid: sid.to_string(),
                        target: node.clone(),
                    });
                    self.change_state(env, sid, ServiceState::Relocate, StateParams::moving(&current, &node));
                }
            }
            _ => {
                if preference == Preference::TryNext && selected.is_none() {
                    let tried = self.services[sid].failed_nodes.clone().unwrap_or_default();
                    env.log(Event::TriedAllNodes {
                        sid: sid.to_string(),
                        tried,
                    });
                }
                let stale_fallback = self.services[sid].maintenance_node.as_deref() == Some(current.as_str());
                if stale_fallback && self.nodes.is_online(&current) {
                    env.log(Event::ClearingStaleMaintenanceNode {
                        sid: sid.to_string(),
                        node: current.clone(),
                    });
                    self.services.get_mut(sid).expect("known").maintenance_node = None;
                }
                // A consumed result re-arms the "is it still running?" check.
                if result.is_some() {
                    let uid = self.new_uid(env.now());
                    self.services.get_mut(sid).expect("known").uid = uid;
                }
            }
        }
    }

    fn next_state_request_stop(&mut self, env: &mut dyn Env, sid: &str, result: Option<&LrmResult>) {
        if let Some(result) = result {
            if result.exit_code == ExitCode::Success {
                self.change_state(env, sid, ServiceState::Stopped, StateParams::default());
            } else {
                env.log(Event::StopFailed {
                    sid: sid.to_string(),
                    code: result.exit_code,
                });
                self.change_state(env, sid, ServiceState::Error, StateParams::default());
            }
            return;
        }
        let node = self.services[sid].node.clone();
        if self.offline_delayed(env, &node) {
            self.change_state(env, sid, ServiceState::Fence, StateParams::default());
        }
    }

    fn next_state_migrate_relocate(
        &mut self,
        env: &mut dyn Env,
        sid: &str,
        cd: &ResourceConfig,
        result: Option<&LrmResult>,
    ) {
        let requested = if cd.state == RequestState::Started {
            ServiceState::Started
        } else {
            ServiceState::RequestStop
        };
        if let Some(result) = result {
            let sd = &self.services[sid];
            let (node, target) = (sd.node.clone(), sd.target.clone().unwrap_or_default());
            match result.exit_code {
                ExitCode::Success => {
                    self.change_state(env, sid, requested, StateParams::node(&target));
                    return;
                }
                ExitCode::WrongNode => {
                    env.log(Event::MigrationWrongNode { sid: sid.to_string() });
                    self.change_state(env, sid, ServiceState::Error, StateParams::default());
                }
                ExitCode::Ignored => {
                    env.log(Event::RebalanceIgnoredAlreadyRunning { sid: sid.to_string() });
                    self.change_state(env, sid, requested, StateParams::node(&node));
                }
                code => {
                    env.log(Event::MigrationFailed {
                        sid: sid.to_string(),
                        code,
                    });
                    self.change_state(env, sid, requested, StateParams::node(&node));
                    return;
                }
            }
        }
        let node = self.services[sid].node.clone();
        if self.offline_delayed(env, &node) && self.services[sid].state != ServiceState::Fence {
            self.change_state(env, sid, ServiceState::Fence, StateParams::default());
        }
    }

    fn next_state_recovery(&mut self, env: &mut dyn Env, sid: &str, cd: &mut ResourceConfig) {
        self.recompute_usage(env);
        let fenced = self.services[sid].node.clone();
        match self.select(env, sid, cd, Preference::BestScore) {
            Some(node) => {
                if node == fenced {
                    env.log(Event::RecoverToSameNode {
                        sid: sid.to_string(),
                        node: node.clone(),
                    });
                } else {
                    env.log(Event::RecoverService {
                        sid: sid.to_string(),
                        from: fenced.clone(),
                        to: node.clone(),
                    });
                }
                if let Some(lock) = env.remove_locks(sid, &REMOVABLE_LOCKS_AFTER_FENCE) {
                    env.log(Event::RemovedLeftoverLock {
                        sid: sid.to_string(),
                        lock,
                    });
                }
                env.steal_service(sid, &fenced, &node);
                cd.node = Some(node.clone());
                self.services.get_mut(sid).expect("known").node = node.clone();
                let state = if cd.state == RequestState::Started {
                    ServiceState::Started
                } else {
                    ServiceState::RequestStop
                };
                self.change_state(env, sid, state, StateParams::node(&node));
            }
            None => {
                env.log(Event::RecoveryFailed {
                    sid: sid.to_string(),
                    from: fenced,
                });
                if cd.state == RequestState::Disabled {
                    self.services.get_mut(sid).expect("known").failed_nodes = None;
                    self.change_state(env, sid, ServiceState::Stopped, StateParams::default());
                }
            }
        }
    }

    fn next_state_freeze(
        &mut self,
        env: &mut dyn Env,
        sid: &str,
        cd: &ResourceConfig,
        modes: &BTreeMap<NodeName, LrmMode>,
    ) {
        let node = &self.services[sid].node;
        if modes.get(node) == Some(&LrmMode::Active) {
            let state = if cd.state == RequestState::Started {
                ServiceState::Started
            } else {
                ServiceState::RequestStop
            };
            self.change_state(env, sid, state, StateParams::default());
        }
    }

    fn next_state_error(&mut self, env: &mut dyn Env, sid: &str, cd: &ResourceConfig) {
        if cd.state == RequestState::Disabled {
            self.services.get_mut(sid).expect("known").failed_nodes = None;
            self.change_state(env, sid, ServiceState::Stopped, StateParams::default());
        }
    }
}

/// Parameters logged with a state change (upstream's `%params`).
#[derive(Debug, Default)]
struct StateParams {
    node: Option<NodeName>,
    target: Option<NodeName>,
    timeout: Option<i64>,
}

impl StateParams {
    fn node(node: &str) -> StateParams {
        StateParams {
            node: Some(node.to_string()),
            ..StateParams::default()
        }
    }

    fn moving(node: &str, target: &str) -> StateParams {
        StateParams {
            node: Some(node.to_string()),
            target: Some(target.to_string()),
            timeout: None,
        }
    }
}

/// Every entry of `left` with the entry of `right` under the same key, if
/// any: one merge walk over both sorted maps instead of a lookup per key.
fn left_join<'a, 'b, V, W>(
    left: &'a BTreeMap<String, V>,
    right: &'b BTreeMap<String, W>,
) -> impl Iterator<Item = (&'a String, &'a V, Option<&'b W>)> {
    let mut right = right.iter().peekable();
    left.iter().map(move |(key, value)| {
        while let Some((k, w)) = right.peek() {
            match k.as_str().cmp(key) {
                Ordering::Less => {
                    right.next();
                }
                Ordering::Equal => {
                    let w = *w;
                    right.next();
                    return (key, value, Some(w));
                }
                Ordering::Greater => break,
            }
        }
        (key, value, None)
    })
}

/// The task name and target state of a move command.
fn move_task(cmd: &ServiceCommand) -> (&'static str, ServiceState) {
    match cmd {
        ServiceCommand::Relocate(_) => ("relocate", ServiceState::Relocate),
        _ => ("migrate", ServiceState::Migrate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::store::{ClusterState, RoundContext, RoundEnv};

    fn manager_at(now_ms: u64) -> Manager {
        let ctx = RoundContext::quorate("node1", crate::core::watchdog::Client::Crm, now_ms);
        let mut state = ClusterState::default();
        let mut env = RoundEnv::new(&ctx, &mut state);
        Manager::new(&mut env, ManagerStatus::default())
    }

    #[test]
    fn two_terms_of_one_master_within_a_second_never_share_a_uid() {
        // Chaos Raft seed 336: node1 master at 36.213 s, lost its lock,
        // master again at 36.858 s; both numbered their commands from 1.
        let (mut first, mut second) = (manager_at(36_213), manager_at(36_858));
        let earlier: Vec<String> = (0..5).map(|_| first.new_uid(36)).collect();
        let later: Vec<String> = (0..5).map(|_| second.new_uid(36)).collect();
        assert!(later.iter().all(|uid| !earlier.contains(uid)), "{earlier:?} {later:?}");
        assert_eq!(earlier[0], "node1-36-36213-1");
    }
}
