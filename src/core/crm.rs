//! The cluster resource manager daemon loop (upstream `CRM.pm`): becomes
//! master by holding `ha_manager_lock`, runs a [`Manager`] round while
//! master, and ties its watchdog to every lock renewal.
//!
//! Calling contract: the shell calls [`Crm::iterate`] once per round (about
//! 10 s on a real cluster, one simulated round in the simulator) until it
//! returns `false`, which means the CRM exited after a shutdown request.

use std::sync::Arc;

use super::env::{Env, WatchdogHandle};
use super::event::Event;
use super::manager::Manager;
use super::status::{Disarm, ManagerStatus, ServiceStatus};
use super::types::{NodeState, ServiceState};

/// CRM daemon states, in lifecycle order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrmState {
    /// Before the constructor ran.
    Startup,
    /// Not allowed to be master (no quorum, nothing to do, or fenced).
    WaitForQuorum,
    /// Holds `ha_manager_lock` and makes every decision.
    Master,
    /// Renewing the lock failed; transient, the watchdog is closed.
    LostManagerLock,
    /// Another node is master; keep trying for the lock.
    Slave,
}

impl CrmState {
    pub fn as_str(self) -> &'static str {
        match self {
            CrmState::Startup => "startup",
            CrmState::WaitForQuorum => "wait_for_quorum",
            CrmState::Master => "master",
            CrmState::LostManagerLock => "lost_manager_lock",
            CrmState::Slave => "slave",
        }
    }
}

/// One node's CRM.
#[derive(Debug)]
pub struct Crm {
    state: CrmState,
    /// The master's working state; exists exactly while `state == Master`.
    manager: Option<Manager>,
    /// Set by SIGTERM; the CRM releases what it holds and exits.
    shutdown_request: bool,
    /// Whether this round's refresh of the shared store succeeded.
    cluster_state_update: bool,
    /// Watchdog connection, open while this CRM is (or was just) master.
    watchdog: Option<WatchdogHandle>,
    /// Master of a fully disarmed stack: no watchdog is held.
    disarmed: bool,
    /// Consecutive master rounds with nothing configured.
    active_idle_rounds: u32,
}

impl Crm {
    /// Creates the CRM in `wait_for_quorum` (logging the change from `startup`).
    pub fn new(env: &mut dyn Env) -> Crm {
        let mut crm = Crm {
            state: CrmState::Startup,
            manager: None,
            shutdown_request: false,
            cluster_state_update: false,
            watchdog: None,
            disarmed: false,
            active_idle_rounds: 0,
        };
        crm.set_state(env, CrmState::WaitForQuorum);
        crm
    }

    pub fn state(&self) -> CrmState {
        self.state
    }

    /// The manager, while master (for status views and tests).
    pub fn manager(&self) -> Option<&Manager> {
        self.manager.as_ref()
    }

    /// SIGTERM: release the lock at the next round and exit.
    pub fn shutdown_request(&mut self, env: &mut dyn Env) {
        if !self.shutdown_request {
            env.log(Event::ShutdownRequestReceived);
        }
        self.shutdown_request = true;
    }

    fn set_state(&mut self, env: &mut dyn Env, state: CrmState) {
        if self.state == state {
            return;
        }
        env.log(Event::StatusChange {
            from: self.state.as_str(),
            to: state.as_str(),
        });
        self.state = state;
        self.manager = None;
        if state == CrmState::Master {
            // A new master starts from what is on disk; runtime data is fresh.
            let ms = env.read_manager_status().map(Arc::unwrap_or_clone).unwrap_or_default();
            self.manager = Some(Manager::new(env, ms));
        }
    }

    /// Quorate, store refreshed, manager status readable, and no service of
    /// this node awaiting fencing (a node being fenced must not lead).
    fn is_healthy(&mut self, env: &mut dyn Env) -> Option<Arc<ManagerStatus>> {
        if !env.quorate() || !self.cluster_state_update {
            return None;
        }
        let ms = match env.read_manager_status() {
            Ok(ms) => ms,
            Err(err) => {
                env.log(Event::CouldNotReadManagerStatus { error: err.to_string() });
                return None;
            }
        };
        let me = env.nodename();
        let fenced = ms.service_status.values().any(|sd| is_fenced_on(sd, me));
        (!fenced).then_some(ms)
    }

    fn can_get_active(&mut self, env: &mut dyn Env, allow_no_service: bool) -> bool {
        let Some(ms) = self.is_healthy(env) else {
            return false;
        };
        if allow_no_service {
            return true;
        }
        let config = match env.read_service_config() {
            Ok(config) => config,
            Err(err) => {
                env.log(Event::CouldNotReadServiceConfig { error: err.to_string() });
                return false;
            }
        };
        if !config.is_empty() {
            return true;
        }
        // Nothing configured: wake up only if there is work left to do and
        // no other live master does it.
        let me = env.nodename().to_string();
        let master_free = match &ms.master_node {
            None => true,
            Some(master) => master == &me || ms.node_status.get(master) != Some(&NodeState::Online),
        };
        if !master_free {
            return false;
        }
        let stale_maintenance = ms
            .node_status
            .iter()
            .any(|(node, state)| *state == NodeState::Maintenance && !ms.maintenance_requested(node));
        stale_maintenance || env.any_pending_crm_command() || !ms.service_status.is_empty() || ms.disarm.is_some()
    }

    fn allowed_to_get_idle(&mut self, env: &mut dyn Env) -> bool {
        let Some(ms) = self.is_healthy(env) else {
            return false;
        };
        if ms.disarm.is_some() || !ms.service_status.is_empty() {
            return false;
        }
        env.read_service_config().is_ok_and(|config| config.is_empty())
    }

    /// Takes or renews the manager lock (up to 6 attempts within 5 s), and
    /// pets the watchdog only after a successful renewal.
    fn get_protected_manager_lock(&mut self, env: &mut dyn Env) -> bool {
        let start = env.now();
        for attempt in 1..=6 {
            if env.get_ha_manager_lock() {
                if let Some(wd) = self.watchdog {
                    env.watchdog_update(wd);
                } else if !self.disarmed {
                    let disarmed_on_disk = env
                        .read_manager_status()
                        .is_ok_and(|ms| ms.disarm.as_ref().is_some_and(Disarm::is_disarmed));
                    if disarmed_on_disk {
                        env.log(Event::TakingOverDisarmed);
                        self.disarmed = true;
                    } else {
                        self.watchdog = Some(env.watchdog_open());
                    }
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

    fn close_watchdog(&mut self, env: &mut dyn Env) {
        if let Some(wd) = self.watchdog.take() {
            env.watchdog_close(wd);
        }
    }

    /// One daemon iteration; `false` means the CRM exited.
    pub fn iterate(&mut self, env: &mut dyn Env) -> bool {
        self.cluster_state_update = env.cluster_state_update();
        self.work(env)
    }

    fn work(&mut self, env: &mut dyn Env) -> bool {
        match self.state {
            CrmState::WaitForQuorum => {
                if self.can_get_active(env, false) {
                    let next = if self.get_protected_manager_lock(env) {
                        CrmState::Master
                    } else {
                        CrmState::Slave
                    };
                    self.set_state(env, next);
                }
            }
            CrmState::Slave => {
                if self.can_get_active(env, false) {
                    if self.get_protected_manager_lock(env) {
                        self.set_state(env, CrmState::Master);
                    }
                } else {
                    self.set_state(env, CrmState::WaitForQuorum);
                }
            }
            CrmState::LostManagerLock => {
                if self.can_get_active(env, true) && self.get_protected_manager_lock(env) {
                    self.set_state(env, CrmState::Master);
                }
            }
            CrmState::Master => {
                if !self.get_protected_manager_lock(env) {
                    self.set_state(env, CrmState::LostManagerLock);
                } else if !self.allowed_to_get_idle(env) {
                    self.active_idle_rounds = 0;
                } else {
                    self.active_idle_rounds += 1;
                    if self.active_idle_rounds > env.timing().crm_idle_rounds {
                        env.log(Event::CrmGoingIdle {
                            rounds: env.timing().crm_idle_rounds,
                        });
                        env.release_ha_manager_lock();
                        self.close_watchdog(env);
                        self.active_idle_rounds = 0;
                        self.set_state(env, CrmState::WaitForQuorum);
                    }
                }
            }
            CrmState::Startup => unreachable!("the constructor leaves startup"),
        }

        match self.state {
            CrmState::WaitForQuorum => {
                if self.shutdown_request {
                    return false;
                }
                env.sleep(5);
            }
            CrmState::Master => {
                let start = env.now();
                if self.shutdown_request {
                    self.close_watchdog(env);
                    env.log(Event::VoluntaryReleaseCrmLock);
                    if !env.release_ha_manager_lock() {
                        env.log(Event::CrmLockReleaseFailed);
                    }
                    return false;
                }
                if !self.cluster_state_update {
                    env.log(Event::TemporaryInconsistentState);
                } else {
                    self.run_manager(env);
                }
                env.sleep_until(start + 10);
            }
            CrmState::LostManagerLock => {
                self.close_watchdog(env);
                if self.shutdown_request {
                    return false;
                }
                self.set_state(env, CrmState::WaitForQuorum);
            }
            CrmState::Slave => {
                if self.shutdown_request {
                    return false;
                }
            }
            CrmState::Startup => unreachable!("the constructor leaves startup"),
        }
        true
    }

    fn run_manager(&mut self, env: &mut dyn Env) {
        let Some(manager) = self.manager.as_mut() else {
            return;
        };
        if let Err(err) = manager.manage(env) {
            env.log(Event::UnexpectedError { error: err.to_string() });
        }
        let fully_disarmed = manager.is_fully_disarmed();
        let stack_disarmed = manager.disarm.is_some();
        if fully_disarmed && !self.disarmed {
            env.log(Event::FullyDisarmedReleasingWatchdog);
            self.close_watchdog(env);
            self.disarmed = true;
        } else if self.disarmed && !stack_disarmed {
            env.log(Event::ReArming);
            self.disarmed = false;
        }
    }
}

/// A service of `node` waiting to be fenced.
fn is_fenced_on(sd: &ServiceStatus, node: &str) -> bool {
    sd.state == ServiceState::Fence && sd.node == node
}
