//! Typed log events emitted by the CRM, the LRM and the manager.
//!
//! The core never formats log lines ad hoc: it emits an [`Event`], and the
//! shell decides where it goes (the simulator's golden log, `tracing` in the
//! daemon). `Display` renders upstream's exact wording, which operators and
//! the conformance checker both read, so wording lives in this one place.

use std::fmt;

use super::crm_command::{CrmCommand, MoveKind};
use super::env::ShutdownPolicy;
use super::types::{ExitCode, NodeName, NodeState, ServiceState, join_nodes};

/// Syslog-like level of an event, as upstream logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Notice,
    Warning,
    Err,
    /// A fencing notification (upstream sends e-mail; the simulator logs `emai`).
    Email,
    /// Upstream passes a mangled level string for one message **[quirk]**;
    /// kept so the simulator's log stays byte-identical.
    Garbled,
}

impl Level {
    /// Upstream's level name (the simulator prints its first four bytes).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Notice => "notice",
            Level::Warning => "warning",
            Level::Err => "err",
            Level::Email => "email",
            Level::Garbled => "\n\t    info",
        }
    }
}

/// A daemon state change target or source (CRM or LRM local state).
pub type DaemonState = &'static str;

/// Everything the HA core reports. Variants are grouped by the component
/// that emits them.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    // ---- locks and daemon lifecycle (CRM and LRM) ----
    GotLock {
        lock: String,
    },
    StatusChange {
        from: DaemonState,
        to: DaemonState,
    },
    ShutdownRequestReceived,
    TemporaryInconsistentState,
    UnexpectedError {
        error: String,
    },

    // ---- CRM ----
    CouldNotReadManagerStatus {
        error: String,
    },
    CouldNotReadServiceConfig {
        error: String,
    },
    VoluntaryReleaseCrmLock,
    CrmLockReleaseFailed,
    CrmGoingIdle {
        rounds: u32,
    },
    TakingOverDisarmed,
    FullyDisarmedReleasingWatchdog,
    ReArming,

    // ---- manager round ----
    MasterSeemsOffline,
    AddingService {
        sid: String,
        node: NodeName,
    },
    RemovingStaleService {
        sid: String,
        ignored: bool,
    },
    ServiceStateChanged {
        sid: String,
        from: ServiceState,
        to: ServiceState,
        params: Vec<(&'static str, String)>,
    },
    NodeStateChanged {
        node: NodeName,
        from: NodeState,
        to: NodeState,
    },
    DeletingGoneNode {
        node: NodeName,
    },
    FenceRequest {
        node: NodeName,
    },
    FenceAcknowledged {
        node: NodeName,
    },
    FenceSucceededNotice {
        node: NodeName,
    },
    /// A fence device confirmed the node off (hardware fencing).
    FenceDeviceAcknowledged {
        node: NodeName,
    },
    FenceDeviceSucceededNotice {
        node: NodeName,
    },
    FenceNodeWithoutServices {
        node: NodeName,
    },
    FixupLocation {
        sid: String,
        from: NodeName,
        to: NodeName,
    },
    IgnoreMoveTargetOffline {
        sid: String,
        cmd: &'static str,
        target: NodeName,
    },
    IgnoreMoveAlreadyThere {
        sid: String,
        cmd: &'static str,
        target: NodeName,
    },
    IgnoreStopAlreadyStopped {
        sid: String,
    },
    UnknownCommand {
        sid: String,
        cmd: String,
    },
    UnknownConfigState {
        sid: String,
        state: String,
    },
    MoveService {
        sid: String,
        cmd: &'static str,
        target: NodeName,
    },
    HardStopRequested {
        sid: String,
    },
    GracefulStopRequested {
        sid: String,
        timeout: i64,
    },
    RelocationPolicySuccessful {
        sid: String,
        node: NodeName,
        failed: Vec<NodeName>,
    },
    StartFailedRelocating {
        sid: String,
        node: NodeName,
    },
    RecoveryPolicyFailed {
        sid: String,
        failed: Vec<NodeName>,
    },
    UnrecoverableError {
        sid: String,
        code: ExitCode,
    },
    MovingBackFromMaintenance {
        sid: String,
        node: NodeName,
    },
    DroppingMaintenanceFallback {
        sid: String,
        node: NodeName,
    },
    MigrateRunning {
        sid: String,
        target: NodeName,
    },
    RelocateService {
        sid: String,
        target: NodeName,
    },
    TriedAllNodes {
        sid: String,
        tried: Vec<NodeName>,
    },
    ClearingStaleMaintenanceNode {
        sid: String,
        node: NodeName,
    },
    StopFailed {
        sid: String,
        code: ExitCode,
    },
    MigrationWrongNode {
        sid: String,
    },
    RebalanceIgnoredAlreadyRunning {
        sid: String,
    },
    MigrationFailed {
        sid: String,
        code: ExitCode,
    },
    RecoverService {
        sid: String,
        from: NodeName,
        to: NodeName,
    },
    RecoverToSameNode {
        sid: String,
        node: NodeName,
    },
    RemovedLeftoverLock {
        sid: String,
        lock: String,
    },
    RecoveryFailed {
        sid: String,
        from: NodeName,
    },
    RebalanceSelected {
        sid: String,
        node: NodeName,
        new: bool,
    },
    /// A placement rule failed its checks (`Drop rule '<id>', because ...`).
    RuleDropped {
        message: String,
    },
    UsingSchedulerMode {
        mode: &'static str,
    },
    SwitchingSchedulerMode {
        from: &'static str,
        to: &'static str,
    },
    SchedulerFallback {
        mode: &'static str,
        error: String,
    },
    ScoringFailed {
        sid: String,
        mode: &'static str,
        error: String,
    },
    AutoRebalance {
        task: &'static str,
        sid: String,
        target: NodeName,
        from: f64,
        to: f64,
    },
    /// A step of the groups → rules migration (notice).
    GroupMigration {
        step: String,
    },
    GroupMigrationAborted {
        reason: String,
    },
    GroupMigrationFailed,

    // ---- CRM commands ----
    CrmCommandNoSuchService {
        command: CrmCommand,
    },
    CrmCommandNodeNotOnline {
        command: CrmCommand,
    },
    CrmCommandAlreadyOnTarget {
        command: CrmCommand,
    },
    CrmCommandReceived {
        command: CrmCommand,
    },
    MaintenanceWhileDisarmed {
        node: NodeName,
    },
    AlreadyInMaintenance {
        node: NodeName,
    },
    ClearingMaintenanceWrongState {
        node: NodeName,
        state: NodeState,
    },
    DisarmIgnoredAlreadyDisarmed {
        state: String,
    },
    DisarmSuspendingService {
        sid: String,
    },
    ArmIgnoredNotDisarmed,
    ArmUpdatingNode {
        sid: String,
        from: NodeName,
        to: NodeName,
    },
    UnknownDisarmMode {
        mode: String,
    },
    DeferringDisarm {
        sid: String,
        state: ServiceState,
    },
    DisarmFreezingService {
        sid: String,
        was: ServiceState,
    },
    AllLrmsDisarmed,
    NegativeAffinityBlocksCommand {
        command: CrmCommand,
        partner: String,
        target: NodeName,
        sid: String,
    },
    PositiveAffinityComigrate {
        command: CrmCommand,
        cmd: MoveKind,
        partner: String,
        target: NodeName,
        sid: String,
    },

    // ---- LRM ----
    NodeNeedsFencing,
    NodeNeedsFencingInMaintenance,
    /// hactor only: a node to be fenced whose lock it held without a
    /// watchdog since a disarm fences itself.
    NodeNeedsFencingUnwatched,
    LrmGoingIdle {
        rounds: u32,
    },
    LrmDisarmReleasing,
    LrmDisarmReleasingInMaintenance,
    ShutdownInLostLock {
        services: usize,
    },
    LostLockRestartGivingUp,
    UpdateServiceStatusFailed {
        error: String,
    },
    WriteLrmStatusFailed {
        error: String,
    },
    UpdateLrmStatusFailed {
        error: String,
    },
    ShutdownPolicy {
        policy: ShutdownPolicy,
    },
    ShutdownIgnorePolicyMaintenance {
        kind: &'static str,
        policy: ShutdownPolicy,
    },
    ShutdownIgnoreMigrateAlreadyMaintenance {
        kind: &'static str,
    },
    ShutdownDoingMaintenance {
        kind: &'static str,
    },
    ShutdownStopAndFreeze {
        kind: &'static str,
    },
    ShutdownStopAll,
    RestartInMaintenance,
    RestartFreezeAll,
    RestartPolicyRetry {
        sid: String,
        tries: u32,
    },
    RestartPolicyGaveUp {
        sid: String,
        tries: u32,
    },
    AgentFailedToExecute {
        sid: String,
    },
    AgentGotSignal {
        sid: String,
        signal: i32,
    },

    // ---- resource agent execution ----
    ServiceTypeNotImplemented {
        kind: String,
    },
    MissingResourceConfig {
        sid: String,
    },
    ServiceInErrorState {
        sid: String,
    },
    ServiceNotOnThisNode {
        sid: String,
    },
    StartingService {
        sid: String,
    },
    ServiceStarted {
        sid: String,
    },
    UnableToStart {
        sid: String,
    },
    StoppingService {
        sid: String,
        timeout: Option<i64>,
    },
    ServiceStopped {
        sid: String,
    },
    UnableToStop {
        sid: String,
    },
    IgnoringRebalanceRunning {
        sid: String,
    },
    NotMoved {
        sid: String,
    },
    ImplementMe {
        cmd: String,
    },

    // ---- guests (the simulator's agents and the built-in ones) ----
    GuestLocked {
        sid: String,
        lock: String,
        action: &'static str,
    },
    MigrateStart {
        sid: String,
        task: &'static str,
        target: NodeName,
    },
    MigrateEnd {
        sid: String,
        task: &'static str,
        target: NodeName,
    },
    StoppingForRelocate {
        sid: String,
    },
    LiveMigrateFallback,
    /// A resource agent reported why an action failed.
    AgentFailed {
        sid: String,
        action: &'static str,
        error: String,
    },
}

impl Event {
    pub fn level(&self) -> Level {
        use Event::*;
        match self {
            FenceRequest { .. } | FenceSucceededNotice { .. } | FenceDeviceSucceededNotice { .. } => Level::Email,
            TemporaryInconsistentState
            | CrmLockReleaseFailed
            | DeletingGoneNode { .. }
            | FenceNodeWithoutServices { .. }
            | DisarmIgnoredAlreadyDisarmed { .. }
            | ArmIgnoredNotDisarmed
            | GroupMigration { .. } => Level::Notice,
            StartFailedRelocating { .. }
            | TriedAllNodes { .. }
            | RemovedLeftoverLock { .. }
            | SchedulerFallback { .. }
            | ClearingMaintenanceWrongState { .. }
            | MaintenanceWhileDisarmed { .. }
            | RestartPolicyRetry { .. }
            | UnableToStart { .. }
            | LiveMigrateFallback => Level::Warning,
            DeferringDisarm {
                state: ServiceState::Fence | ServiceState::Recovery,
                ..
            } => Level::Warning,
            UnexpectedError { .. }
            | CouldNotReadManagerStatus { .. }
            | CouldNotReadServiceConfig { .. }
            | IgnoreMoveTargetOffline { .. }
            | UnknownCommand { .. }
            | UnknownConfigState { .. }
            | RecoveryPolicyFailed { .. }
            | UnrecoverableError { .. }
            | StopFailed { .. }
            | MigrationWrongNode { .. }
            | MigrationFailed { .. }
            | RecoveryFailed { .. }
            | ScoringFailed { .. }
            | GroupMigrationAborted { .. }
            | GroupMigrationFailed
            | CrmCommandNoSuchService { .. }
            | CrmCommandNodeNotOnline { .. }
            | UnknownDisarmMode { .. }
            | NegativeAffinityBlocksCommand { .. }
            | NodeNeedsFencing
            | NodeNeedsFencingInMaintenance
            | NodeNeedsFencingUnwatched
            | ShutdownInLostLock { .. }
            | LostLockRestartGivingUp
            | UpdateServiceStatusFailed { .. }
            | WriteLrmStatusFailed { .. }
            | UpdateLrmStatusFailed { .. }
            | RestartPolicyGaveUp { .. }
            | AgentFailedToExecute { .. }
            | AgentGotSignal { .. }
            | ServiceTypeNotImplemented { .. }
            | MissingResourceConfig { .. }
            | ServiceInErrorState { .. }
            | ServiceNotOnThisNode { .. }
            | NotMoved { .. }
            | ImplementMe { .. }
            | GuestLocked { .. }
            | AgentFailed { .. } => Level::Err,
            RestartInMaintenance => Level::Garbled,
            _ => Level::Info,
        }
    }
}

/// `  (key = value, ...)` with the keys sorted (stable for equal keys), or
/// nothing without params; written straight into the line (state changes
/// are the most frequent log line).
struct ParamsSuffix<'a>(&'a [(&'static str, String)]);

impl fmt::Display for ParamsSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params = self.0;
        if params.is_empty() {
            return Ok(());
        }
        f.write_str("  (")?;
        // Selection by (key, position): a handful of params, no allocation.
        let mut last: Option<(&str, usize)> = None;
        for n in 0..params.len() {
            let next = params
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (*k, i))
                .filter(|candidate| last.is_none_or(|l| *candidate > l))
                .min()
                .expect("one param per pass");
            let (key, i) = next;
            if n > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{key} = {}", params[i].1)?;
            last = Some(next);
        }
        f.write_str(")")
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Event::*;
        match self {
            GotLock { lock } => write!(f, "got lock '{lock}'"),
            StatusChange { from, to } => write!(f, "status change {from} => {to}"),
            ShutdownRequestReceived => write!(f, "server received shutdown request"),
            TemporaryInconsistentState => {
                write!(f, "temporary inconsistent cluster state (cfs restart?), skip round")
            }
            UnexpectedError { error } => write!(f, "got unexpected error - {error}"),

            CouldNotReadManagerStatus { error } => {
                write!(f, "could not read manager status: {error}")
            }
            CouldNotReadServiceConfig { error } => {
                write!(f, "could not read service config: {error}")
            }
            VoluntaryReleaseCrmLock => write!(f, "voluntary release CRM lock"),
            CrmLockReleaseFailed => write!(f, "CRM lock release failed, let the lock timeout"),
            CrmGoingIdle { rounds } => {
                write!(f, "cluster had no service configured for {rounds} rounds, going idle.")
            }
            TakingOverDisarmed => write!(f, "taking over as disarmed master, skipping watchdog"),
            FullyDisarmedReleasingWatchdog => {
                write!(f, "HA stack fully disarmed, releasing CRM watchdog")
            }
            ReArming => write!(f, "re-arming HA stack"),

            MasterSeemsOffline => write!(f, "master seems offline"),
            AddingService { sid, node } => write!(f, "adding new service '{sid}' on node '{node}'"),
            RemovingStaleService { sid, ignored } => {
                let reason = if *ignored {
                    "ignored state requested"
                } else {
                    "no config"
                };
                write!(f, "removing stale service '{sid}' ({reason})")
            }
            ServiceStateChanged { sid, from, to, params } => write!(
                f,
                "service '{sid}': state changed from '{from}' to '{to}'{}",
                ParamsSuffix(params)
            ),
            NodeStateChanged { node, from, to } => {
                write!(f, "node '{node}': state changed from '{from}' => '{to}'")
            }
            DeletingGoneNode { node } => {
                write!(f, "deleting gone node '{node}', not a cluster member anymore.")
            }
            FenceRequest { node } => write!(f, "FENCE: Try to fence node '{node}'"),
            FenceAcknowledged { node } => {
                write!(f, "fencing: acknowledged - got agent lock for node '{node}'")
            }
            FenceSucceededNotice { node } => {
                write!(f, "SUCCEED: fencing: acknowledged - got agent lock for node '{node}'")
            }
            FenceDeviceAcknowledged { node } => {
                write!(f, "fencing: acknowledged - fence device confirmed node '{node}' off")
            }
            FenceDeviceSucceededNotice { node } => {
                write!(
                    f,
                    "SUCCEED: fencing: acknowledged - fence device confirmed node '{node}' off"
                )
            }
            FenceNodeWithoutServices { node } => write!(
                f,
                "node '{node}' in fence state but no services to-fence! admin interference?!"
            ),
            FixupLocation { sid, from, to } => {
                write!(f, "fixup service '{sid}' location ({from} => {to})")
            }
            IgnoreMoveTargetOffline { sid, cmd, target } => {
                write!(f, "ignore service '{sid}' {cmd} request - node '{target}' not online")
            }
            IgnoreMoveAlreadyThere { sid, cmd, target } => write!(
                f,
                "ignore service '{sid}' {cmd} request - service already on node '{target}'"
            ),
            IgnoreStopAlreadyStopped { sid } => {
                write!(f, "ignore service '{sid}' stop request - service already stopped")
            }
            UnknownCommand { sid, cmd } => write!(f, "unknown command '{cmd}' for service '{sid}'"),
            UnknownConfigState { sid, state } => {
                write!(f, "service '{sid}' - unknown state '{state}' in service configuration")
            }
            MoveService { sid, cmd, target } => {
                write!(f, "{cmd} service '{sid}' to node '{target}'")
            }
            HardStopRequested { sid } => {
                write!(f, "request immediate service hard-stop for service '{sid}'")
            }
            GracefulStopRequested { sid, timeout } => {
                write!(f, "request graceful stop with timeout '{timeout}' for service '{sid}'")
            }
            RelocationPolicySuccessful { sid, node, failed } => write!(
                f,
                "relocation policy successful for '{sid}' on node '{node}', failed nodes: {}",
                join_nodes(failed)
            ),
            StartFailedRelocating { sid, node } => {
                write!(f, "starting service {sid} on node '{node}' failed, relocating service.")
            }
            RecoveryPolicyFailed { sid, failed } => write!(
                f,
                "recovery policy for service {sid} failed, entering error state. Failed nodes: {}",
                join_nodes(failed)
            ),
            UnrecoverableError { sid, code } => {
                write!(f, "service '{sid}' got unrecoverable error (exit code {code})")
            }
            MovingBackFromMaintenance { sid, node } => write!(
                f,
                "moving service '{sid}' back to '{node}', node came back from maintenance."
            ),
            DroppingMaintenanceFallback { sid, node } => {
                write!(f, "dropping maintenance fallback node '{node}' for '{sid}'")
            }
            MigrateRunning { sid, target } => {
                write!(f, "migrate service '{sid}' to node '{target}' (running)")
            }
            RelocateService { sid, target } => {
                write!(f, "relocate service '{sid}' to node '{target}'")
            }
            TriedAllNodes { sid, tried } => write!(
                f,
                "Start Error Recovery: Tried all available nodes for service '{sid}', retry start on current node. Tried nodes: {}",
                join_nodes(tried)
            ),
            ClearingStaleMaintenanceNode { sid, node } => write!(
                f,
                "service '{sid}': clearing stale maintenance node '{node}' setting (is current node)"
            ),
            StopFailed { sid, code } => write!(f, "service '{sid}' stop failed (exit code {code})"),
            MigrationWrongNode { sid } => write!(
                f,
                "service '{sid}' - migration failed: service registered on wrong node!"
            ),
            RebalanceIgnoredAlreadyRunning { sid } => write!(
                f,
                "service '{sid}' - rebalance-on-start request ignored - service already running"
            ),
            MigrationFailed { sid, code } => {
                write!(f, "service '{sid}' - migration failed (exit code {code})")
            }
            RecoverService { sid, from, to } => {
                write!(f, "recover service '{sid}' from fenced node '{from}' to node '{to}'")
            }
            RecoverToSameNode { sid, node } => write!(
                f,
                "recover service '{sid}' to previous failed and fenced node '{node}' again"
            ),
            RemovedLeftoverLock { sid, lock } => write!(
                f,
                "removed leftover lock '{lock}' from recovered service '{sid}' to allow its start."
            ),
            RecoveryFailed { sid, from } => write!(
                f,
                "recovering service '{sid}' from fenced node '{from}' failed, no recovery node found"
            ),
            RebalanceSelected { sid, node, new } => write!(
                f,
                "service {sid}: re-balance selected {} node {node} for startup",
                if *new { "new" } else { "current" }
            ),

            RuleDropped { message } => f.write_str(message),
            GroupMigration { step } => f.write_str(step),
            GroupMigrationAborted { reason } => write!(f, "abort ha groups migration: {reason}"),
            GroupMigrationFailed => write!(f, "ha groups migration failed"),
            UsingSchedulerMode { mode } => write!(f, "using scheduler mode '{mode}'"),
            SwitchingSchedulerMode { from, to } => {
                write!(f, "switching scheduler mode from '{from}' to '{to}'")
            }
            SchedulerFallback { mode, error } => {
                write!(
                    f,
                    "fallback to 'basic' scheduler mode, init for '{mode}' failed - {error}"
                )
            }
            ScoringFailed { sid, mode, error } => write!(
                f,
                "unable to score nodes according to {mode} usage for service '{sid}' - {error}"
            ),
            AutoRebalance {
                task,
                sid,
                target,
                from,
                to,
            } => write!(
                f,
                "auto rebalance - {task} {sid} to {target} (expected change for imbalance from {from:.2} to {to:.2})"
            ),
            CrmCommandNoSuchService { command } => {
                write!(f, "crm command error - no such service: {command}")
            }
            CrmCommandNodeNotOnline { command } => {
                write!(f, "crm command error - node not online: {command}")
            }
            CrmCommandAlreadyOnTarget { command } => {
                write!(f, "ignore crm command - service already on target node: {command}")
            }
            CrmCommandReceived { command } => write!(f, "got crm command: {command}"),
            MaintenanceWhileDisarmed { node } => {
                write!(f, "ignoring maintenance command for node {node} - HA stack is disarmed")
            }
            AlreadyInMaintenance { node } => {
                write!(f, "ignoring crm command - node {node} is already in maintenance state")
            }
            ClearingMaintenanceWrongState { node, state } => write!(
                f,
                "clearing maintenance of node {node} requested, but it's in state {state}"
            ),
            DisarmIgnoredAlreadyDisarmed { state } => {
                write!(f, "ignoring disarm-ha command - already in disarm state ({state})")
            }
            DisarmSuspendingService { sid } => {
                write!(f, "disarm: suspending HA tracking for service '{sid}'")
            }
            ArmIgnoredNotDisarmed => {
                write!(f, "ignoring arm-ha command - HA stack is not disarmed")
            }
            ArmUpdatingNode { sid, from, to } => write!(
                f,
                "service '{sid}': updating node '{from}' => '{to}' (changed while disarmed)"
            ),
            UnknownDisarmMode { mode } => write!(f, "unknown disarm-mode '{mode}', ignoring"),
            DeferringDisarm { sid, state } => {
                write!(f, "deferring disarm - service '{sid}' is in '{state}' state")
            }
            DisarmFreezingService { sid, was } => {
                write!(f, "disarm: freezing service '{sid}' (was '{was}')")
            }
            AllLrmsDisarmed => write!(f, "all LRMs disarmed, HA stack is now fully disarmed"),
            NegativeAffinityBlocksCommand {
                command,
                partner,
                target,
                sid,
            } => write!(
                f,
                "crm command '{command}' error - service '{partner}' on node '{target}' in negative affinity with service '{sid}'"
            ),
            PositiveAffinityComigrate {
                command,
                cmd,
                partner,
                target,
                sid,
            } => write!(
                f,
                "crm command '{command}' - {} service '{partner}' to node '{target}' (service '{partner}' in positive affinity with service '{sid}')",
                cmd.as_str()
            ),

            NodeNeedsFencing => write!(f, "node needs to be fenced - releasing agent_lock"),
            NodeNeedsFencingInMaintenance => write!(
                f,
                "node needs to be fenced during maintenance mode - releasing agent_lock"
            ),
            NodeNeedsFencingUnwatched => write!(
                f,
                "node needs to be fenced, but its services ran without watchdog since the disarm - \
                 taking the agent lock back under the watchdog and letting it expire"
            ),
            LrmGoingIdle { rounds } => {
                write!(f, "node had no service configured for {rounds} rounds, going idle.")
            }
            LrmDisarmReleasing => {
                write!(f, "HA disarm requested, releasing agent lock and watchdog")
            }
            LrmDisarmReleasingInMaintenance => write!(
                f,
                "HA disarm requested during maintenance, releasing agent lock and watchdog"
            ),
            ShutdownInLostLock { services } => write!(
                f,
                "got shutdown request in state 'lost_agent_lock' - detected {services} running services"
            ),
            LostLockRestartGivingUp => write!(
                f,
                "lost agent lock and restart request for over 90 seconds - giving up!"
            ),
            UpdateServiceStatusFailed { error } => {
                write!(f, "updating service status from manager failed: {error}")
            }
            WriteLrmStatusFailed { error } => {
                write!(f, "unable to write lrm status file - {error}")
            }
            UpdateLrmStatusFailed { error } => {
                write!(f, "unable to update lrm status file - {error}")
            }
            ShutdownPolicy { policy } => {
                write!(f, "got shutdown request with shutdown policy '{policy}'")
            }
            ShutdownIgnorePolicyMaintenance { kind, policy } => write!(
                f,
                "{kind} LRM, ignore {policy} policy as manual maintenance mode is enabled"
            ),
            ShutdownIgnoreMigrateAlreadyMaintenance { kind } => {
                write!(f, "{kind} LRM, ignore maintenance policy, already in maintenance mode")
            }
            ShutdownDoingMaintenance { kind } => {
                write!(f, "{kind} LRM, doing maintenance, removing this node from active list")
            }
            ShutdownStopAndFreeze { kind } => write!(f, "{kind} LRM, stop and freeze all services"),
            ShutdownStopAll => write!(f, "shutdown LRM, stop all services"),
            RestartInMaintenance => write!(
                f,
                "Restarting LRM in maintenance mode may be delayed until all services are moved"
            ),
            RestartFreezeAll => write!(f, "restart LRM, freeze all services"),
            RestartPolicyRetry { sid, tries } => {
                write!(f, "restart policy: retry number {tries} for service '{sid}'")
            }
            RestartPolicyGaveUp { sid, tries } => {
                write!(f, "unable to start service {sid} on local node after {tries} retries")
            }
            AgentFailedToExecute { sid } => {
                write!(f, "resource agent {sid} finished - failed to execute")
            }
            AgentGotSignal { sid, signal } => {
                write!(f, "resource agent {sid} finished - got signal {signal}")
            }

            ServiceTypeNotImplemented { kind } => {
                write!(f, "service type '{kind}' not implemented")
            }
            MissingResourceConfig { sid } => {
                write!(f, "missing resource configuration for '{sid}'")
            }
            ServiceInErrorState { sid } => write!(
                f,
                "service {sid} is in an error state and needs manual intervention. Look up 'ERROR RECOVERY' in the documentation."
            ),
            ServiceNotOnThisNode { sid } => write!(f, "service '{sid}' not on this node"),
            StartingService { sid } => write!(f, "starting service {sid}"),
            ServiceStarted { sid } => write!(f, "service status {sid} started"),
            UnableToStart { sid } => write!(f, "unable to start service {sid}"),
            StoppingService { sid, timeout: Some(t) } => {
                write!(f, "stopping service {sid} (timeout={t})")
            }
            StoppingService { sid, timeout: None } => write!(f, "stopping service {sid}"),
            ServiceStopped { sid } => write!(f, "service status {sid} stopped"),
            UnableToStop { sid } => write!(f, "unable to stop service {sid} (still running)"),
            IgnoringRebalanceRunning { sid } => {
                write!(f, "ignoring rebalance-on-start for service {sid} - already running")
            }
            NotMoved { sid } => write!(f, "service {sid} not moved (migration error)"),
            ImplementMe { cmd } => write!(f, "implement me (cmd '{cmd}')"),

            GuestLocked { sid, lock, action } => {
                write!(f, "service '{sid}' locked ({lock}), unable to {action}!")
            }
            MigrateStart { sid, task, target } => {
                write!(f, "service {sid} - start {task} to node '{target}'")
            }
            MigrateEnd { sid, task, target } => {
                write!(f, "service {sid} - end {task} to node '{target}'")
            }
            StoppingForRelocate { sid } => write!(f, "stopping service {sid} (relocate)"),
            AgentFailed { sid, action, error } => write!(f, "service '{sid}' {action} failed - {error}"),
            LiveMigrateFallback => {
                write!(f, "unable to live migrate running container, fallback to relocate")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_change_params_are_sorted_and_separated_by_two_spaces() {
        let ev = Event::ServiceStateChanged {
            sid: "vm:101".into(),
            from: ServiceState::Started,
            to: ServiceState::Migrate,
            params: vec![("target", "node2".into()), ("node", "node3".into())],
        };
        assert_eq!(
            ev.to_string(),
            "service 'vm:101': state changed from 'started' to 'migrate'  (node = node3, target = node2)"
        );
        assert_eq!(ev.level(), Level::Info);
    }

    #[test]
    fn fence_notifications_are_mail() {
        let ev = Event::FenceRequest { node: "node3".into() };
        assert_eq!(ev.level(), Level::Email);
        assert_eq!(ev.to_string(), "FENCE: Try to fence node 'node3'");
    }
}
