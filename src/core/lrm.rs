//! The local resource manager daemon loop (upstream `LRM.pm`): holds the
//! node's agent lock while it may run services, executes the master's
//! commands (the service state *is* the command, keyed by uid), applies the
//! restart policy, and handles shutdown policies.
//!
//! Calling contract: the shell calls [`Lrm::iterate`] once per round until
//! it returns `false` (the LRM exited after a shutdown request).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::agent::{self, JobSpec};
use super::env::{Env, ShutdownPolicy, WatchdogHandle};
use super::event::Event;
use super::status::{LrmResult, LrmStatus, ManagerStatus, ServiceStatus};
use super::types::{ExitCode, LrmMode, NodeName, NodeState, ServiceState, Time};

/// LRM daemon states, in lifecycle order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LrmState {
    Startup,
    /// No lock: nothing to run, disarmed, or waiting for quorum.
    WaitForAgentLock,
    /// Holds the agent lock and runs services.
    Active,
    /// Moving services away; keeps the lock while any remain.
    Maintenance,
    /// Renewal failed: the watchdog fires unless the lock comes back.
    LostAgentLock,
}

impl LrmState {
    pub fn as_str(self) -> &'static str {
        match self {
            LrmState::Startup => "startup",
            LrmState::WaitForAgentLock => "wait_for_agent_lock",
            LrmState::Active => "active",
            LrmState::Maintenance => "maintenance",
            LrmState::LostAgentLock => "lost_agent_lock",
        }
    }
}

/// A queued or running agent action.
#[derive(Debug, Clone)]
struct Job {
    /// `None` for the untracked stop jobs queued at node shutdown.
    uid: Option<String>,
    command: ServiceState,
    target: Option<NodeName>,
    timeout: Option<i64>,
    /// How often this job was considered for a start (fairness).
    start_tries: u32,
    /// Handed to the worker pool and not finished yet.
    running: bool,
}

/// One node's LRM.
#[derive(Debug)]
pub struct Lrm {
    state: LrmState,
    /// When `state` was entered.
    state_change_time: Time,
    mode: LrmMode,
    /// The master's status (a shared snapshot), refreshed every round.
    master: Arc<ManagerStatus>,
    /// This node's state in the master's table.
    node_state: NodeState,
    /// Whether the master recorded a maintenance request for this node.
    maintenance_requested: bool,
    /// Queued agent actions by sid (at most one per service).
    jobs: BTreeMap<String, Job>,
    /// Published results by uid.
    results: BTreeMap<String, LrmResult>,
    /// Restart-policy counters; in memory only, lost on restart.
    restart_tries: BTreeMap<String, u32>,
    /// When a shutdown was requested.
    shutdown_request: Option<Time>,
    /// Failed stop jobs of a node shutdown; non-zero keeps the watchdog armed.
    shutdown_errors: u32,
    cluster_state_update: bool,
    active_idle_rounds: u32,
    watchdog: Option<WatchdogHandle>,
    /// The first status write needs quorum; nothing runs before it.
    wrote_status_at_startup: bool,
}

impl Lrm {
    pub fn new(env: &mut dyn Env) -> Lrm {
        let mut lrm = Lrm {
            state: LrmState::Startup,
            state_change_time: env.now(),
            mode: LrmMode::Active,
            master: Arc::new(ManagerStatus::default()),
            node_state: NodeState::Unknown,
            maintenance_requested: false,
            jobs: BTreeMap::new(),
            results: BTreeMap::new(),
            restart_tries: BTreeMap::new(),
            shutdown_request: None,
            shutdown_errors: 0,
            cluster_state_update: false,
            active_idle_rounds: 0,
            watchdog: None,
            wrote_status_at_startup: false,
        };
        lrm.set_state(env, LrmState::WaitForAgentLock);
        lrm
    }

    /// The master's service table as last read.
    fn services(&self) -> &BTreeMap<String, ServiceStatus> {
        &self.master.service_status
    }

    pub fn state(&self) -> LrmState {
        self.state
    }

    pub fn mode(&self) -> LrmMode {
        self.mode
    }

    /// Restart-policy counters by sid (shown by the simulator's console).
    pub fn restart_tries(&self) -> &BTreeMap<String, u32> {
        &self.restart_tries
    }

    fn set_state(&mut self, env: &mut dyn Env, state: LrmState) {
        if self.state == state {
            return;
        }
        env.log(Event::StatusChange {
            from: self.state.as_str(),
            to: state.as_str(),
        });
        self.state = state;
        self.state_change_time = env.now();
    }

    fn status(&self, env: &dyn Env) -> LrmStatus {
        LrmStatus {
            state: self.state.as_str().to_string(),
            mode: self.mode,
            results: self.results.clone(),
            timestamp: env.now(),
        }
    }

    /// Publishes `lrm_status`; needs quorum.
    fn update_lrm_status(&mut self, env: &mut dyn Env) -> bool {
        if !env.quorate() {
            return false;
        }
        let status = self.status(env);
        match env.write_lrm_status(status) {
            Ok(()) => true,
            Err(err) => {
                env.log(Event::WriteLrmStatusFailed { error: err.to_string() });
                false
            }
        }
    }

    /// Refreshes the master's view and derives the mode from it.
    fn update_service_status(&mut self, env: &mut dyn Env) -> bool {
        let ms = match env.read_manager_status() {
            Ok(ms) => ms,
            Err(err) => {
                env.log(Event::UpdateServiceStatusFailed { error: err.to_string() });
                return false;
            }
        };
        let me = env.nodename().to_string();
        self.master = Arc::clone(&ms);
        self.node_state = ms.node_status.get(&me).copied().unwrap_or(NodeState::Unknown);
        self.maintenance_requested = ms.maintenance_requested(&me);
        if self.shutdown_request.is_none() {
            if self.maintenance_requested {
                self.mode = LrmMode::Maintenance;
            } else if ms.disarm.is_some() {
                self.mode = LrmMode::Disarm;
            } else if matches!(self.mode, LrmMode::Maintenance | LrmMode::Disarm) {
                self.mode = LrmMode::Active;
            }
        }
        true
    }

    fn fence_requested(&self, me: &str) -> bool {
        self.node_state == NodeState::Fence
            || self
                .services()
                .values()
                .any(|sd| sd.state == ServiceState::Fence && sd.node == me)
    }

    /// Services this node is responsible for (as source or target) that
    /// are neither stopped, frozen, in error nor about to start.
    pub fn active_service_count(&self, me: &str) -> usize {
        self.services()
            .values()
            .filter(|sd| sd.node == me || sd.target.as_deref() == Some(me))
            .filter(|sd| {
                !matches!(
                    sd.state,
                    ServiceState::Stopped | ServiceState::Freeze | ServiceState::Error | ServiceState::RequestStart
                )
            })
            .count()
    }

    fn has_service_on_node(&self, me: &str) -> bool {
        self.services().values().any(|sd| sd.node == me)
    }

    fn get_protected_agent_lock(&mut self, env: &mut dyn Env) -> bool {
        let start = env.now();
        for attempt in 1..=6 {
            if env.get_ha_agent_lock(None) {
                match self.watchdog {
                    Some(wd) => env.watchdog_update(wd),
                    None => self.watchdog = Some(env.watchdog_open()),
                }
                return true;
            }
            if attempt == 6 || env.now() - start > env.timing().lock_retry_window {
                break;
            }
            env.sleep(1);
        }
        false
    }

    /// Closes the watchdog cleanly: only when nothing runs here any more.
    fn give_up_watchdog(&mut self, env: &mut dyn Env) {
        if let Some(wd) = self.watchdog.take() {
            env.watchdog_close(wd);
        }
    }

    /// SIGTERM: choose the mode by shutdown policy and queue stop jobs when
    /// the node itself goes down.
    pub fn shutdown_request(&mut self, env: &mut dyn Env) {
        if self.shutdown_request.is_some() {
            return;
        }
        let me = env.nodename().to_string();
        let node_shutdown = env.is_node_shutdown();
        let (shutdown, reboot) = (node_shutdown.goes_down(), node_shutdown.is_reboot());
        let policy = env.datacenter_settings().shutdown_policy;
        if shutdown {
            env.log(Event::ShutdownPolicy { policy });
        }
        let (freeze_all, maintenance) = match policy {
            ShutdownPolicy::Conditional => (reboot, false),
            ShutdownPolicy::Freeze => (true, false),
            ShutdownPolicy::Failover => (false, false),
            ShutdownPolicy::Migrate => (false, true),
        };
        if !maintenance && shutdown {
            // Always stop everything when the node goes down, reboot or not.
            let local: Vec<String> = self
                .services()
                .iter()
                .filter(|(_, sd)| sd.node == me)
                .map(|(sid, _)| sid.clone())
                .collect();
            for sid in local {
                self.queue_job(&sid, None, ServiceState::RequestStop, None, None);
            }
        }
        let kind = if reboot { "reboot" } else { "shutdown" };
        if shutdown {
            if self.mode == LrmMode::Maintenance {
                if maintenance {
                    env.log(Event::ShutdownIgnoreMigrateAlreadyMaintenance { kind });
                } else {
                    env.log(Event::ShutdownIgnorePolicyMaintenance { kind, policy });
                }
            } else if maintenance {
                env.log(Event::ShutdownDoingMaintenance { kind });
                self.mode = LrmMode::Maintenance;
            } else if freeze_all {
                env.log(Event::ShutdownStopAndFreeze { kind });
                self.mode = LrmMode::Restart;
            } else {
                env.log(Event::ShutdownStopAll);
                self.mode = LrmMode::Shutdown;
            }
        } else if self.mode == LrmMode::Maintenance {
            env.log(Event::RestartInMaintenance);
        } else {
            env.log(Event::RestartFreezeAll);
            self.mode = LrmMode::Restart;
        }
        self.shutdown_request = Some(env.now());
        if !self.update_lrm_status(env) {
            env.log(Event::UpdateLrmStatusFailed {
                error: "not quorate?".to_string(),
            });
        }
    }

    /// One daemon iteration; `false` means the LRM exited.
    pub fn iterate(&mut self, env: &mut dyn Env) -> bool {
        self.cluster_state_update = env.cluster_state_update();
        self.work(env)
    }

    /// One round: publish the startup status, read the master's view,
    /// move between states on what it says, then do the state's work.
    fn work(&mut self, env: &mut dyn Env) -> bool {
        if !self.publish_startup_status(env) {
            env.sleep(5);
            return self.shutdown_request.is_none();
        }
        let me = env.nodename().to_string();
        self.update_service_status(env);
        let fence_request = self.fence_requested(&me);
        match self.state {
            LrmState::WaitForAgentLock => self.leave_wait_for_lock(env, &me, fence_request),
            LrmState::LostAgentLock => self.leave_lost_lock(env, fence_request),
            LrmState::Active => self.check_active(env, &me, fence_request),
            LrmState::Maintenance => self.check_maintenance(env, &me, fence_request),
            LrmState::Startup => unreachable!("the constructor leaves startup"),
        }
        match self.state {
            LrmState::WaitForAgentLock => self.work_wait_for_lock(env),
            LrmState::Active => self.work_active(env, &me),
            LrmState::LostAgentLock => self.work_lost_lock(env, &me),
            LrmState::Maintenance => self.work_maintenance(env, &me),
            LrmState::Startup => unreachable!("the constructor leaves startup"),
        }
    }

    /// Until the first status write succeeds (it needs quorum) the LRM
    /// neither takes the lock nor runs anything: the master must see this
    /// node's LRM before giving it work. `true` once written.
    fn publish_startup_status(&mut self, env: &mut dyn Env) -> bool {
        if !self.wrote_status_at_startup && self.update_lrm_status(env) {
            self.wrote_status_at_startup = true;
        }
        self.wrote_status_at_startup
    }

    /// Without the lock: take it (and arm the watchdog) only when there is
    /// something to run, the cluster is armed and quorate, and this node
    /// is not to be fenced.
    fn leave_wait_for_lock(&mut self, env: &mut dyn Env, me: &str, fence_request: bool) {
        if self.mode == LrmMode::Disarm && self.watchdog.is_some() && env.quorate() && env.holds_agent_lock_unwatched()
        {
            // Disarmed again before the take (a current read says the hold
            // stands): unwatched, as before the arm.
            self.give_up_watchdog(env);
        }
        let wanted = self.active_service_count(me) > 0;
        let unwatched = self.mode != LrmMode::Disarm && env.holds_agent_lock_unwatched();
        // Taking the lock back from an unwatched hold (a disarm), its
        // services may still run: the watchdog is armed a round ahead,
        // whatever the store answers. The take's answer can be lost while
        // the take itself commits (Raft seed 5583: a round refused as not
        // quorate after its writes went through); the round is then
        // discarded with the LRM, and a lease this node never learned of
        // would run out with its services running and nothing to reset
        // it, and the master would take the lock as a fence acknowledged.
        if unwatched && (fence_request || wanted) && self.watchdog.is_none() {
            if env.quorate() {
                self.watchdog = Some(env.watchdog_arm_ahead());
            }
            return;
        }
        // To be fenced while its lock is held unwatched: nobody else can
        // take the lock, so this node fences itself: the lock back under
        // the watchdog, then lost (not renewed, the watchdog not fed), as
        // `check_active` does with a fence request.
        if fence_request && unwatched {
            if env.quorate() && self.get_protected_agent_lock(env) {
                env.log(Event::NodeNeedsFencingUnwatched);
                self.set_state(env, LrmState::LostAgentLock);
            }
            return;
        }
        if self.mode != LrmMode::Disarm
            && !fence_request
            && wanted
            && env.quorate()
            && self.get_protected_agent_lock(env)
        {
            self.set_state(env, LrmState::Active);
        }
    }

    /// After losing the lock: back to active as soon as it can be taken
    /// again, unless this node is to be fenced.
    fn leave_lost_lock(&mut self, env: &mut dyn Env, fence_request: bool) {
        if !fence_request && env.quorate() && self.get_protected_agent_lock(env) {
            self.set_state(env, LrmState::Active);
        }
    }

    /// Active: renew the lock, or lose it (a fence request gives it up
    /// on purpose), enter maintenance when asked, and release the lock and
    /// the watchdog when disarmed or idle for long enough.
    fn check_active(&mut self, env: &mut dyn Env, me: &str, fence_request: bool) {
        if fence_request {
            env.log(Event::NodeNeedsFencing);
            self.set_state(env, LrmState::LostAgentLock);
        } else if !self.get_protected_agent_lock(env) {
            self.set_state(env, LrmState::LostAgentLock);
        } else if self.mode == LrmMode::Maintenance {
            self.set_state(env, LrmState::Maintenance);
        } else if self.mode == LrmMode::Disarm && self.run_workers(env) == 0 {
            // Its services run on unwatched: the lock stays held.
            env.log(Event::LrmDisarmReleasing);
            env.hold_ha_agent_lock_unwatched();
            self.give_up_watchdog(env);
            self.set_state(env, LrmState::WaitForAgentLock);
        } else if !self.has_service_on_node(me) && self.run_workers(env) == 0 {
            self.count_idle_round(env);
        } else {
            self.active_idle_rounds = 0;
        }
    }

    /// An active round with nothing on this node: after
    /// `lrm_idle_rounds` of them the lock and watchdog go, so that an
    /// empty node cannot be fenced.
    fn count_idle_round(&mut self, env: &mut dyn Env) {
        self.active_idle_rounds += 1;
        if self.active_idle_rounds > env.timing().lrm_idle_rounds {
            let rounds = env.timing().lrm_idle_rounds;
            self.release_agent_lock(env, Event::LrmGoingIdle { rounds });
            self.active_idle_rounds = 0;
        }
    }

    /// Maintenance: keep the lock while services or workers remain here,
    /// release it when disarmed and empty, and go back to active when the
    /// maintenance request is gone.
    fn check_maintenance(&mut self, env: &mut dyn Env, me: &str, fence_request: bool) {
        if fence_request {
            env.log(Event::NodeNeedsFencingInMaintenance);
            self.set_state(env, LrmState::LostAgentLock);
        } else if self.mode == LrmMode::Disarm && self.active_service_count(me) == 0 && self.run_workers(env) == 0 {
            self.release_agent_lock(env, Event::LrmDisarmReleasingInMaintenance);
        } else if self.active_service_count(me) > 0 || self.run_workers(env) > 0 {
            if !self.get_protected_agent_lock(env) {
                self.set_state(env, LrmState::LostAgentLock);
            }
        } else if self.mode != LrmMode::Maintenance {
            let next = if self.get_protected_agent_lock(env) {
                LrmState::Active
            } else {
                LrmState::LostAgentLock
            };
            self.set_state(env, next);
        }
    }

    /// Logs `why`, releases the agent lock, closes the watchdog and waits
    /// for the lock again: nothing runs here any more.
    fn release_agent_lock(&mut self, env: &mut dyn Env, why: Event) {
        env.log(why);
        env.release_ha_agent_lock();
        self.give_up_watchdog(env);
        self.set_state(env, LrmState::WaitForAgentLock);
    }

    /// Waiting for the lock: exit at a shutdown request (nothing runs
    /// here), else keep the status fresh for the master.
    fn work_wait_for_lock(&mut self, env: &mut dyn Env) -> bool {
        if self.shutdown_request.is_some() {
            return false;
        }
        self.update_lrm_status(env);
        env.sleep(5);
        true
    }

    fn work_active(&mut self, env: &mut dyn Env, me: &str) -> bool {
        let start = env.now();
        let mut exit = false;
        if self.update_service_status(env) {
            if self.shutdown_request.is_some() {
                if self.mode == LrmMode::Restart {
                    let workers = self.run_workers(env);
                    if self.active_service_count(me) == 0 && workers == 0 {
                        // Only frozen or stopped services remain: safe.
                        self.give_up_watchdog(env);
                        exit = true;
                        env.release_ha_agent_lock();
                    }
                } else if self.run_workers(env) == 0 {
                    if self.shutdown_errors == 0 {
                        // Every service is stopped: safe to disarm.
                        self.give_up_watchdog(env);
                        env.release_ha_agent_lock();
                    }
                    // A failed stop exits with the watchdog armed: the node
                    // resets rather than leaving a guest possibly running.
                    exit = true;
                }
            } else if !self.cluster_state_update {
                env.log(Event::TemporaryInconsistentState);
            } else {
                self.manage_resources(env, me);
            }
        }
        self.update_lrm_status(env);
        if exit {
            return false;
        }
        env.sleep_until(start + 10);
        true
    }

    fn work_lost_lock(&mut self, env: &mut dyn Env, me: &str) -> bool {
        if self.shutdown_request.is_some() {
            let services = self.active_service_count(me);
            if services > 0 {
                env.log(Event::ShutdownInLostLock { services });
                let giveup = env.timing().lost_lock_restart_giveup;
                if self.mode == LrmMode::Restart && env.now() - self.state_change_time > giveup {
                    env.log(Event::LostLockRestartGivingUp);
                    return false;
                }
            } else {
                self.give_up_watchdog(env);
                return false;
            }
        }
        env.sleep(5);
        true
    }

    fn work_maintenance(&mut self, env: &mut dyn Env, me: &str) -> bool {
        let start = env.now();
        if !self.update_service_status(env) {
            // Upstream leaves its daemon loop here **[quirk]**; we keep
            // running and retry next round, which is the safe reading.
            return true;
        }
        let mut exit = false;
        if self.active_service_count(me) == 0 && self.run_workers(env) == 0 {
            // Everything moved away: the node is safe without a watchdog.
            self.give_up_watchdog(env);
            exit = self.shutdown_request.is_some();
            env.release_ha_agent_lock();
        }
        if !exit {
            self.manage_resources(env, me);
        }
        self.update_lrm_status(env);
        if exit {
            return false;
        }
        env.sleep_until(start + 5);
        true
    }

    /// Queues the master's commands for this node and runs them.
    fn manage_resources(&mut self, env: &mut dyn Env, me: &str) -> usize {
        let services = &self.master.service_status;
        self.restart_tries.retain(|sid, _| services.contains_key(sid));
        let master = Arc::clone(&self.master);
        let commands = master
            .service_status
            .iter()
            .filter(|(_, sd)| sd.node == me && !sd.uid.is_empty())
            .filter(|(_, sd)| {
                !matches!(
                    sd.state,
                    ServiceState::Recovery | ServiceState::Freeze | ServiceState::RequestStart
                )
            });
        for (sid, sd) in commands {
            self.queue_job(sid, Some(&sd.uid), sd.state, sd.target.as_ref(), sd.timeout);
        }
        self.run_workers(env)
    }

    fn queue_job(
        &mut self,
        sid: &str,
        uid: Option<&String>,
        command: ServiceState,
        target: Option<&NodeName>,
        timeout: Option<i64>,
    ) {
        // Never run the same uid twice once it has a result, except `stopped`
        // which is always enforced (even with no master around).
        let done = uid.is_some_and(|uid| self.results.contains_key(uid));
        if command != ServiceState::Stopped && done {
            return;
        }
        // A running worker is never replaced; a queued one is, keeping its
        // place in line (its try count), so that a busy pool cannot starve
        // a service behind the periodic re-checks of others.
        if self.jobs.get(sid).is_some_and(|job| job.running) {
            return;
        }
        let waited = self.jobs.get(sid).map_or(0, |job| job.start_tries);
        self.jobs.insert(
            sid.to_string(),
            Job {
                uid: uid.cloned(),
                command,
                target: target.cloned(),
                timeout,
                start_tries: waited,
                running: false,
            },
        );
    }

    /// Runs queued jobs, those that waited longest first, then by sid.
    /// Agent actions run inline through the environment and finish within
    /// the call (upstream's `max_workers == 0` mode, which the simulator
    /// uses); returns the jobs still pending.
    fn run_workers(&mut self, env: &mut dyn Env) -> usize {
        let max_workers = env.max_workers();
        let mut order: Vec<(String, u32)> = self
            .jobs
            .iter()
            .filter(|(_, j)| !j.running)
            .map(|(sid, j)| (sid.clone(), j.start_tries))
            .collect();
        order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut running = self.jobs.values().filter(|j| j.running).count();
        let mut finished = false;
        for (sid, _) in order {
            let spec = {
                let Some(job) = self.jobs.get_mut(&sid) else { continue };
                job.start_tries += 1;
                if max_workers > 0 && running >= max_workers {
                    continue;
                }
                JobSpec {
                    sid: sid.clone(),
                    uid: job.uid.clone(),
                    command: job.command,
                    target: job.target.clone(),
                    timeout: job.timeout,
                    config: None,
                }
            };
            let config = env.read_service_config().ok().and_then(|c| c.get(&sid).cloned());
            let spec = JobSpec { config, ..spec };
            if max_workers == 0 {
                // Inline, as upstream's test environment: done at once.
                let code = agent::execute(env, &spec);
                self.finish_job(env, &sid, spec.uid.as_deref(), code);
                finished = true;
            } else {
                if let Some(job) = self.jobs.get_mut(&sid) {
                    job.running = true;
                }
                running += 1;
                env.spawn_job(spec);
            }
        }
        if finished {
            self.prune_results();
        }
        self.jobs.len()
    }

    /// A worker finished `sid`'s job `uid` with `code` (the shell calls
    /// this for jobs it got through [`Env::spawn_job`]). Applies the
    /// restart policy and records the result for the master.
    ///
    /// A result for another uid than the service's current job is
    /// dropped: it belongs to an earlier command, from a job started
    /// before this LRM was restarted (an actor panic) and asked again.
    /// Taken for the current one it would report, say, a relocation done
    /// when only a start had finished, and the master would move a service
    /// still running here (`sim::chaos`, seed 15827).
    pub fn job_finished(&mut self, env: &mut dyn Env, sid: &str, uid: Option<&str>, code: ExitCode) {
        self.finish_job(env, sid, uid, code);
        self.prune_results();
    }

    /// [`Lrm::job_finished`] without pruning the results: inline jobs
    /// prune once after the batch (the master's table does not change in
    /// between), not once per job.
    fn finish_job(&mut self, env: &mut dyn Env, sid: &str, uid: Option<&str>, code: ExitCode) {
        if self.jobs.get(sid).is_none_or(|job| job.uid.as_deref() != uid) {
            return;
        }
        let Some(job) = self.jobs.remove(sid) else { return };
        match job.uid.clone() {
            Some(uid) => self.command_finished(env, sid, uid, &job, code),
            None => {
                if code != ExitCode::Success {
                    self.shutdown_errors += 1;
                }
            }
        }
    }

    /// Sids of jobs handed to workers and not finished (for the shell).
    pub fn running_jobs(&self) -> Vec<String> {
        self.jobs
            .iter()
            .filter(|(_, j)| j.running)
            .map(|(sid, _)| sid.clone())
            .collect()
    }

    fn command_finished(&mut self, env: &mut dyn Env, sid: &str, uid: String, job: &Job, code: ExitCode) {
        let code = self.apply_restart_policy(env, sid, job.command, code);
        if code == ExitCode::TryAgain {
            return;
        }
        self.results.insert(
            uid,
            LrmResult {
                sid: sid.to_string(),
                state: job.command,
                exit_code: code,
            },
        );
    }

    /// Drops the results of commands the master no longer issues. A uid
    /// names one command of one service, so a result stands exactly while
    /// its service's current uid is the result's: one lookup per result
    /// instead of a set of every service's uid.
    fn prune_results(&mut self) {
        let services = &self.master.service_status;
        self.results
            .retain(|uid, result| services.get(&result.sid).is_some_and(|sd| sd.uid == *uid));
    }

    /// Restart policy: retry a failed start up to `max_restart` times on
    /// this node before reporting the error to the master.
    fn apply_restart_policy(
        &mut self,
        env: &mut dyn Env,
        sid: &str,
        command: ServiceState,
        code: ExitCode,
    ) -> ExitCode {
        if command != ServiceState::Started {
            return code;
        }
        let max_restart = env
            .read_service_config()
            .ok()
            .and_then(|config| config.get(sid).map(|cd| cd.max_restart))
            .unwrap_or(0);
        match code {
            ExitCode::Success => {
                match self.restart_tries.get_mut(sid) {
                    Some(tries) => *tries = 0,
                    None => {
                        self.restart_tries.insert(sid.to_string(), 0);
                    }
                }
                code
            }
            ExitCode::Error => {
                let tries = self.restart_tries.entry(sid.to_string()).or_insert(0);
                if *tries >= max_restart {
                    env.log(Event::RestartPolicyGaveUp {
                        sid: sid.to_string(),
                        tries: *tries,
                    });
                    *tries = 0;
                    return ExitCode::Error;
                }
                *tries += 1;
                env.log(Event::RestartPolicyRetry {
                    sid: sid.to_string(),
                    tries: *tries,
                });
                ExitCode::TryAgain
            }
            other => other,
        }
    }
}
