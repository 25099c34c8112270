//! One seeded run: N nodes' real actor trees on one paused runtime over
//! one shared store, a fault phase, then a liveness phase, with the
//! checkers after every step.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Recipient};
use tokio::task::{JoinHandle, LocalSet};

use crate::actors::round::{Exited, IgnoreExited};
use crate::actors::worker_pool::JobLatency;
use crate::actors::{InjectPanic, NodeHandle, NodeOptions, NodeRuntime, start_node};
use crate::agents::Agents;
use crate::core::env::DatacenterSettings;
use crate::core::status::ResourceConfig;
use crate::core::store::{ClusterState, Op};
use crate::core::types::{NodeName, RequestState};
use crate::net::clock::Clock;
use crate::node::cluster_store::ClusterStore;
use crate::node::config::NodeConfig;
use crate::node::memory_store::MemoryStore;
use crate::node::shared_store::SharedStore;

use super::agent::{KIND, SimAgent};
use super::check;
use super::clocks::{self, ClockError, MAX_CLOCK_OFFSET_MS};
use super::disk::{DiskFaultPlan, SlowWindow};
use super::fencing::FenceLog;
use super::freeze::Freeze;
use super::ledger::{AgentFault, SharedLedger};
use super::master::MasterLog;
use super::pace::Pace;
use super::replicas::{self, Agreement, ReplicaSlot, Replicas};
use super::rng::Rng;
use super::starts;
use super::traffic;
use super::watchdog::{SimWatchdog, WatchdogProbe};
use super::{ChaosConfig, Outcome, Report, StoreKind};
use crate::net::memory::LinkFaults;

/// A node stays frozen this long, in tenths of its watchdog device
/// timeout: thaws just before and well after the device fires.
pub const FREEZE_TENTHS: (u64, u64) = (2, 30);
/// Chance per step (per mille) that a fault or an operator edit starts:
/// one every ~1.7 s at the `fast` pace (a fault proper every ~2.7 s).
const FAULT_PER_MILLE: u64 = 30;
/// The kinds of fault [`Harness::maybe_inject`] draws from: crash, cut,
/// agent hang, agent fail, freeze, three kinds of operator edit
/// ([`traffic`]) and an actor panic.
const FAULT_KINDS: u64 = 9;

/// A running node incarnation.
struct Running {
    /// The LocalSet task holding every actor and task of the node: aborting
    /// it drops them all at once.
    task: JoinHandle<()>,
    store: NodeStore,
    watchdog: WatchdogProbe,
    alive: Arc<AtomicBool>,
    /// Stops the node's LocalSet from being polled ([`super::freeze`]).
    freeze: Freeze,
    /// When a frozen node thaws.
    thaw_at_ms: Option<u64>,
    /// Its actors, once started (an actor panic is sent to one).
    actors: Arc<Mutex<Option<NodeHandle>>>,
}

/// A node incarnation's store.
enum NodeStore {
    Shared(SharedStore),
    /// Its Raft member, once open.
    Raft(ReplicaSlot),
}

/// One simulated node across its incarnations.
struct Slot {
    name: NodeName,
    config: NodeConfig,
    /// Its wall clock's offset and rate error ([`clocks`]).
    clock: ClockError,
    incarnation: u32,
    running: Option<Running>,
    /// When a downed node comes back.
    restart_at_ms: Option<u64>,
    /// Its store link is cut until then.
    cut_until_ms: Option<u64>,
    /// The shutdown of its last incarnation's Raft member (Raft mode):
    /// the next one opens the files after it.
    shutdown: Option<JoinHandle<()>>,
    /// What its last going down left half written at the end of its Raft
    /// log ([`disk`]), for the next incarnation to find.
    torn: Option<Vec<u8>>,
}

pub struct Harness {
    config: ChaosConfig,
    /// The run's profile and the pace of its faults ([`pace`]).
    pace: Pace,
    rng: Rng,
    ledger: SharedLedger,
    store: MemoryStore,
    members: Arc<[NodeName]>,
    slots: Vec<Slot>,
    exited: Recipient<Exited>,
    /// Draws the faults only, a fixed number of draws per fault, so that
    /// skipping one ([`ChaosConfig::skip_faults`]) leaves the others.
    fault_rng: Rng,
    /// Fault opportunities so far: the index of the next one.
    fault_index: u32,
    /// Faults injected: index and what.
    faults: Vec<(u32, String)>,
    master: MasterLog,
    fencing: FenceLog,
    /// The Raft members' network and files ([`StoreKind::Raft`]).
    replicas: Option<Arc<Replicas>>,
    agreement: std::cell::RefCell<Agreement>,
    /// Raft mode's disk faults ([`disk`]) and whether its window of
    /// failing writes is still to come (`Some(false)`), on (`Some(true)`)
    /// or over (`None`).
    disk: Option<(DiskFaultPlan, Option<bool>)>,
    /// Raft mode's slow-disk window (fault model 4), with the same
    /// states as `disk`'s.
    slow: Option<(SlowWindow, Option<bool>)>,
    /// The operator's disarm window ([`traffic::DisarmWindow`]) and how
    /// many of its two commands went out.
    disarm: Option<(traffic::DisarmWindow, u8)>,
    /// Nodes that could not start (Raft mode: a replica that refused its
    /// own files). The harness's disk faults never damage what was
    /// synced, so a refusal is a violation: a torn tail not cut off.
    refusals: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
    /// Operator edits the store must take (Raft mode), retried each step.
    pending: Vec<PendingEdit>,
}

/// An operator edit retried until the store takes it, as an operator
/// would (the liveness phase's undo, `arm-ha`).
struct PendingEdit {
    ops: Vec<Op>,
    line: String,
    /// [`EDIT_IDLE`], [`EDIT_TRYING`] or [`EDIT_DONE`].
    state: Arc<std::sync::atomic::AtomicU8>,
}

const EDIT_IDLE: u8 = 0;
const EDIT_TRYING: u8 = 1;
const EDIT_DONE: u8 = 2;

impl Harness {
    pub fn new(config: ChaosConfig, ledger: SharedLedger) -> Result<Harness, String> {
        let mut rng = Rng::new(config.seed);
        let fault_rng = rng.fork();
        let names: Vec<NodeName> = (1..=config.nodes).map(|i| format!("node{i}")).collect();
        let mut state = ClusterState::default();
        for s in 0..config.services {
            let mut resource = ResourceConfig::new(&names[s % names.len()], RequestState::Started);
            // A few failed starts (agent faults) must not put services
            // into `error` for good.
            resource.max_restart = 3;
            resource.max_relocate = 3;
            state.resources.insert(format!("{KIND}:svc{s}"), resource);
        }
        let mut slots = Vec::new();
        let model2 = config.fault_model >= 2;
        let pace = Pace::drawn(config.seed, config.fault_model, config.profile);
        let rates = if model2 {
            clocks::rates(config.seed, names.len())
        } else {
            vec![0; names.len()]
        };
        for (name, &rate_ppm) in names.iter().zip(&rates) {
            let text = format!(
                "node = \"{name}\"\nstate_dir = \"/nonexistent/hactor-chaos/{name}\"\nprofile = \"{}\"\n",
                pace.name()
            );
            let config = NodeConfig::parse(&text)?;
            slots.push(Slot {
                name: name.clone(),
                config,
                clock: ClockError {
                    offset_ms: rng.range(0, MAX_CLOCK_OFFSET_MS),
                    rate_ppm,
                },
                incarnation: 0,
                running: None,
                restart_at_ms: None,
                cut_until_ms: None,
                shutdown: None,
                torn: None,
            });
        }
        let timings = slots[0].config.timings;
        clocks::check_bound(&timings, run_bound_ms(&timings, pace), pace.step_ms())?;
        let replicas = match config.store {
            StoreKind::Raft => Some(Arc::new(Replicas::new(config.seed, &names)?)),
            StoreKind::Shared => None,
        };
        let disk = replicas
            .as_ref()
            .filter(|_| model2)
            .map(|_| (DiskFaultPlan::new(config.seed, names.len(), pace), Some(false)));
        let slow = replicas
            .as_ref()
            .filter(|_| config.fault_model >= 4)
            .and_then(|_| SlowWindow::drawn(config.seed, names.len(), pace))
            .map(|window| (window, Some(false)));
        Ok(Harness {
            refusals: Default::default(),
            pending: Vec::new(),
            disk,
            slow,
            disarm: traffic::DisarmWindow::drawn(config.seed, pace)
                .filter(|_| model2)
                .map(|w| (w, 0)),
            replicas,
            agreement: std::cell::RefCell::new(Agreement::default()),
            config,
            pace,
            rng,
            ledger,
            store: MemoryStore::volatile(state),
            members: names.into(),
            slots,
            exited: IgnoreExited.start().recipient(),
            fault_rng,
            fault_index: 0,
            faults: Vec::new(),
            master: MasterLog::default(),
            fencing: FenceLog::default(),
        })
    }

    /// Runs the fault phase and the liveness phase; stops at the first
    /// violation.
    pub async fn run(mut self) -> Report {
        if let Some(replicas) = &self.replicas {
            let faults = link_faults(self.config.seed);
            if faults != LinkFaults::default() {
                replicas.net().set_faults(faults);
                self.ledger.record(&format!(
                    "network: frames delayed {}-{} ms, {} per mille lost, {} per mille of requests delivered twice, until the liveness phase",
                    faults.delay_ms.0, faults.delay_ms.1, faults.loss_per_mille, faults.duplicate_per_mille
                ));
            }
        }
        let drift: Vec<String> = (self.slots.iter())
            .filter(|slot| slot.clock.rate_ppm != 0)
            .map(|slot| format!("{} {:+} ppm", slot.name, slot.clock.rate_ppm))
            .collect();
        if !drift.is_empty() {
            self.ledger.record(&format!("clocks drift: {}", drift.join(", ")));
        }
        for index in 0..self.slots.len() {
            self.start(index);
        }
        let deadline = run_bound_ms(&self.slots[0].config.timings, self.pace);
        let (step_ms, fault_phase_ms) = (self.pace.step_ms(), self.pace.fault_phase_ms());
        let mut faults_over = false;
        let mut next_step = step_ms;
        let outcome = loop {
            // A watchdog device resets its node the moment its deadline
            // passes, not at the next step: the harness wakes then too.
            let wake = self.next_watchdog_deadline().map_or(next_step, |d| d.min(next_step));
            let now = self.ledger.now_ms();
            tokio::time::sleep(Duration::from_millis(wake.saturating_sub(now))).await;
            let now = self.ledger.now_ms();
            self.fire_watchdogs(now);
            if now < next_step {
                continue;
            }
            next_step += step_ms;
            self.restart_due(now);
            self.heal_due(now);
            self.disk_due(now);
            self.slow_due(now);
            self.disarm_due(now);
            self.retry_pending();
            self.thaw_due(now);
            if now < fault_phase_ms {
                self.maybe_inject(now);
            } else if !faults_over {
                faults_over = true;
                self.end_faults(now);
            }
            if let Some(violation) = self.check().or_else(|| self.check_store()) {
                break Outcome::Violation(violation);
            }
            if faults_over {
                let missing = check::not_running(&self.ledger.lock(), &self.cluster_state());
                if missing.is_empty() {
                    break Outcome::Settled;
                }
                if now >= deadline {
                    break Outcome::Violation(format!(
                        "liveness: {} not running {} ms after the faults stopped",
                        missing.join(", "),
                        now - fault_phase_ms
                    ));
                }
            }
        };
        let now = self.ledger.now_ms();
        self.ledger.record(&format!("end: {outcome}"));
        // Every node's actors go while the runtime still runs: an actor
        // dropped before its first poll runs `started` in its drop, which
        // arms timers and needs the runtime (a node restarted in the last
        // step).
        for index in 0..self.slots.len() {
            if let Some(running) = self.slots[index].running.take() {
                running.task.abort();
                let _ = running.task.await;
                if let NodeStore::Raft(replica) = running.store
                    && let Some(raft) = replica.lock().unwrap_or_else(|p| p.into_inner()).take()
                {
                    self.slots[index].shutdown = Some(replicas::crash(raft));
                }
            }
            if let Some(shutdown) = self.slots[index].shutdown.take() {
                let _ = shutdown.await;
            }
        }
        let ledger = self.ledger.lock();
        Report {
            seed: self.config.seed,
            nodes: self.config.nodes,
            services: self.config.services,
            store: self.config.store,
            outcome,
            hash: ledger.journal.hash(),
            events: ledger.journal.count(),
            tail: ledger.journal.tail(),
            all: ledger.journal.all().map(<[String]>::to_vec),
            virtual_ms: now,
            faults: std::mem::take(&mut self.faults),
            skip_faults: self.config.skip_faults.clone(),
            sabotage: self.config.sabotage,
            fault_model: self.config.fault_model,
            profile: self.pace.profile,
            profile_forced: self.config.profile.is_some(),
        }
    }

    fn clock(&self, index: usize) -> Clock {
        self.slots[index].clock.clock(self.ledger.clone())
    }

    /// Starts a fresh incarnation of node `index`: new actors in a
    /// LocalSet of their own, a new agent, watchdog device and store link.
    fn start(&mut self, index: usize) {
        let clock = self.clock(index);
        let now = self.ledger.now_ms();
        let agent_rng = self.rng.fork();
        let initial = self.store.snapshot();
        let slot = &mut self.slots[index];
        slot.incarnation += 1;
        slot.restart_at_ms = None;
        let timings = slot.config.timings;
        let cut = slot.cut_until_ms.is_some_and(|until| until > now);
        let alive = Arc::new(AtomicBool::new(true));
        let device = SimWatchdog::new(self.ledger.clone());
        let watchdog = device.probe();
        let agent = Arc::new(
            SimAgent::new(&slot.name, self.ledger.clone(), agent_rng, alive.clone()).with_watchdog(watchdog.clone()),
        );
        let mut agents = Agents::new();
        agents.register(KIND, agent.clone());
        let latency: JobLatency = Arc::new(move |_node, spec| agent.latency(spec));
        let options = NodeOptions {
            backend: Some(Box::new(device)),
            guard_program: PathBuf::new(),
            fence_kills_daemon: false,
            agents,
            exited: self.exited.clone(),
            datacenter: DatacenterSettings::default(),
            runtime: NodeRuntime {
                clock: clock.clone(),
                watchdog_on_current_arbiter: true,
                inline_jobs: Some(latency),
                sabotage: self.config.sabotage,
            },
        };
        let local = LocalSet::new();
        let freeze = Freeze::default();
        let actors = Arc::new(Mutex::new(None));
        let up = format!("{} up (incarnation {})", slot.name, slot.incarnation);
        let store = if let Some(replicas) = self.replicas.clone() {
            // The member's links stay cut across a restart (the fault
            // is in the network, not the node).
            let replica: ReplicaSlot = Arc::new(Mutex::new(None));
            let (config, previous, ledger) = (slot.config.clone(), slot.shutdown.take(), self.ledger.clone());
            let torn = slot.torn.take();
            let disk = replicas.disk(index).clone();
            let (opened, started, fail_stop) = (replica.clone(), actors.clone(), freeze.clone());
            let refusals = self.refusals.clone();
            local.spawn_local(async move {
                let what = match replicas.open(index, clock, &timings, previous, &initial, torn).await {
                    Ok(raft) => {
                        *opened.lock().unwrap_or_else(|p| p.into_inner()) = Some(raft.clone());
                        match start_node(&config, ClusterStore::Replicated(raft.clone()), options) {
                            Ok(handle) => {
                                *started.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
                                ledger.record(&up);
                                // The daemon's fail stop (`daemon::run`): a
                                // stopped Raft core ends the process, and
                                // only the watchdog device is left to act.
                                let reason = raft.core_stopped().await;
                                format!(
                                    "{} daemon exits: the Raft core stopped ({reason}); its watchdog device is no longer fed",
                                    config.node
                                )
                            }
                            Err(e) => {
                                let what = format!("{} failed to start - {e}", config.node);
                                refusals.borrow_mut().push(what.clone());
                                what
                            }
                        }
                    }
                    // Opening writes too (openraft cuts a log back at its
                    // start): under the node's disk fault that is the fail
                    // stop of a failed write, not a refusal of its files
                    // (Raft seed 5380, `pve`: a full disk at a restart).
                    Err(e) if disk.is_failing() => format!(
                        "{} daemon exits: its replica could not open while its disk fails ({e}); its watchdog device is no longer fed",
                        config.node
                    ),
                    Err(e) => {
                        let what = format!("{} failed to open its replica - {e}", config.node);
                        refusals.borrow_mut().push(what.clone());
                        what
                    }
                };
                ledger.record(&what);
                fail_stop.stop();
            });
            NodeStore::Raft(replica)
        } else {
            let store = SharedStore::new(
                self.store.clone(),
                &slot.name,
                self.members.clone(),
                clock.clone(),
                timings.online_window_ms,
            );
            if cut {
                store.cut();
            }
            let started = {
                let _inside = local.enter();
                let started = start_node(&slot.config, store.clone(), options);
                tokio::task::spawn_local(heartbeat(store.clone(), slot.name.clone(), clock, timings));
                started
            };
            self.ledger.record(&match started {
                Ok(handle) => {
                    *actors.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
                    up
                }
                // Cannot happen with a backend given; recorded, not hidden.
                Err(e) => format!("{} failed to start - {e}", slot.name),
            });
            NodeStore::Shared(store)
        };
        slot.running = Some(Running {
            task: tokio::task::spawn_local(freeze.wrap(local)),
            store,
            watchdog,
            alive,
            freeze,
            thaw_at_ms: None,
            actors,
        });
    }

    /// Node `index`'s link to the store (the others, in Raft mode) cut or
    /// healed.
    fn set_cut(&self, index: usize, cut: bool) {
        let slot = &self.slots[index];
        if let Some(replicas) = &self.replicas {
            replicas.isolate(&slot.name, cut);
        } else if let Some(Running {
            store: NodeStore::Shared(store),
            ..
        }) = &slot.running
        {
            if cut {
                store.cut();
            } else {
                store.heal();
            }
        }
    }

    /// The cluster's state as the checkers read it: the shared store, or
    /// the most advanced open replica.
    fn cluster_state(&self) -> ClusterState {
        self.indexed_cluster_state().1
    }

    /// [`Harness::cluster_state`] with its position in the log: the
    /// applied index of the replica read (Raft mode; it may step back
    /// when the freshest replica closes), 0 for the shared store (never
    /// behind).
    fn indexed_cluster_state(&self) -> (u64, ClusterState) {
        if self.replicas.is_none() {
            return (0, self.store.snapshot());
        }
        replicas::freshest(self.open_replicas().map(|(_, r)| r)).unwrap_or_default()
    }

    /// The open Raft members, with their node's name.
    fn open_replicas(&self) -> impl Iterator<Item = (&str, crate::net::cluster::RaftStore)> + '_ {
        self.slots.iter().filter_map(|slot| match &slot.running {
            Some(Running {
                store: NodeStore::Raft(replica),
                ..
            }) => replica
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .map(|r| (slot.name.as_str(), r)),
            _ => None,
        })
    }

    /// Applies an operator's edit as the CLI would: to the shared store,
    /// or through an open Raft member (retried until it commits when
    /// `until_done`, as the liveness phase's undo must); the outcome is
    /// journaled as `line`.
    fn apply_edit(&mut self, ops: Vec<Op>, line: String, until_done: bool) {
        if self.replicas.is_none() {
            let outcome = match self.store.apply(ops) {
                Ok(_) => String::new(),
                Err(e) => format!(": refused - {e}"),
            };
            self.ledger.record(&format!("{line}{outcome}"));
            return;
        }
        if until_done {
            self.pending.push(PendingEdit {
                ops,
                line,
                state: Arc::default(),
            });
            self.retry_pending();
            return;
        }
        let member = self.open_replicas().map(|(_, r)| r).next();
        let ledger = self.ledger.clone();
        tokio::spawn(async move {
            let outcome = match member {
                None => ": refused - no member open".to_string(),
                Some(raft) => match raft.apply(ops).await {
                    Ok(_) => String::new(),
                    Err(e) => format!(": refused - {e}"),
                },
            };
            ledger.record(&format!("{line}{outcome}"));
        });
    }

    /// Sends the oldest pending edit, unless a try of it is under way,
    /// through the first open member (members crash and reopen: each try
    /// takes the one open now); journaled once one commits. One at a
    /// time, in order, as an operator waits for each command's answer
    /// (an `arm-ha` must not overtake its `disarm-ha`).
    fn retry_pending(&mut self) {
        self.pending
            .retain(|edit| edit.state.load(Ordering::SeqCst) != EDIT_DONE);
        let Some(member) = self.open_replicas().map(|(_, r)| r).next() else {
            return;
        };
        if let Some(edit) = self.pending.first() {
            if edit.state.load(Ordering::SeqCst) != EDIT_IDLE {
                return;
            }
            edit.state.store(EDIT_TRYING, Ordering::SeqCst);
            let (raft, ops, line, state) = (member.clone(), edit.ops.clone(), edit.line.clone(), edit.state.clone());
            let (ledger, edit_try) = (self.ledger.clone(), self.pace.edit_try());
            tokio::spawn(async move {
                let done = tokio::time::timeout(edit_try, raft.apply(ops)).await;
                if matches!(done, Ok(Ok(_))) {
                    ledger.record(&line);
                    state.store(EDIT_DONE, Ordering::SeqCst);
                } else {
                    state.store(EDIT_IDLE, Ordering::SeqCst);
                }
            });
        }
    }

    /// Node `index` goes down at once (crash or watchdog reset): its actors
    /// stop, its instances die; it comes back after a random delay.
    fn take_down(&mut self, index: usize, why: &str) {
        let (lo, hi) = self.pace.restart_ms();
        let delay = self.rng.range(lo, hi);
        self.take_down_for(index, why, delay);
    }

    /// [`Harness::take_down`], back after `delay` ms.
    fn take_down_for(&mut self, index: usize, why: &str, delay: u64) {
        let now = self.ledger.now_ms();
        let slot = &mut self.slots[index];
        let Some(running) = slot.running.take() else {
            return;
        };
        slot.torn = self.disk.as_mut().and_then(|(plan, _)| plan.torn_tail());
        running.alive.store(false, Ordering::SeqCst);
        match running.store {
            NodeStore::Shared(store) => store.cut(),
            NodeStore::Raft(replica) => {
                if let Some(raft) = replica.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    slot.shutdown = Some(replicas::crash(raft));
                }
                if let Some(replicas) = &self.replicas {
                    if self.config.fault_model >= 4 {
                        replicas.end_writes(index);
                    }
                    // A reset ends a freeze: the next incarnation starts
                    // thawed.
                    replicas.net().thaw(&slot.name);
                }
            }
        }
        running.task.abort();
        slot.restart_at_ms = Some(now + delay);
        let mut ledger = self.ledger.lock();
        let killed = ledger.kill_node(&slot.name);
        let torn = match &slot.torn {
            Some(torn) => format!(", its log's last write torn ({} bytes)", torn.len()),
            None => String::new(),
        };
        let line = format!(
            "{} {why}: down, {killed} instances killed{torn}, back in {delay} ms",
            slot.name
        );
        ledger.journal.record(now, &line);
    }

    fn fire_watchdogs(&mut self, now: u64) {
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            let device_ms = slot.config.timings.watchdog_device_timeout_ms;
            if slot.running.as_ref().is_some_and(|r| r.watchdog.fired(now, device_ms)) {
                self.take_down(index, "watchdog fired");
            }
        }
    }

    /// The first virtual ms at which a running node's device fires, if
    /// nothing feeds it before.
    fn next_watchdog_deadline(&self) -> Option<u64> {
        self.slots
            .iter()
            .filter_map(|slot| {
                let running = slot.running.as_ref()?;
                let fed = running.watchdog.last_feed_ms()?;
                Some(fed + slot.config.timings.watchdog_device_timeout_ms + 1)
            })
            .min()
    }

    fn restart_due(&mut self, now: u64) {
        for index in 0..self.slots.len() {
            if self.slots[index].restart_at_ms.is_some_and(|at| at <= now) {
                self.start(index);
            }
        }
    }

    fn heal_due(&mut self, now: u64) {
        for index in 0..self.slots.len() {
            if self.slots[index].cut_until_ms.is_some_and(|until| until <= now) {
                self.slots[index].cut_until_ms = None;
                self.set_cut(index, false);
                self.ledger
                    .record(&format!("{} store link healed", self.slots[index].name));
            }
        }
    }

    /// Starts or ends the window of failing writes (Raft mode).
    fn disk_due(&mut self, now: u64) {
        let (Some((plan, Some(on))), Some(replicas)) = (&mut self.disk, &self.replicas) else {
            return;
        };
        let Some(window) = plan.window else {
            return;
        };
        let name = &self.slots[window.node].name;
        if !*on && now >= window.from_ms {
            *on = true;
            replicas.disk(window.node).set(Some(window.fault));
            self.ledger.record(&format!("{name} {}", window.describe()));
        } else if *on && now >= window.until_ms {
            replicas.disk(window.node).set(None);
            self.ledger.record(&format!("{name} disk healed"));
            self.end_disk_window();
        }
    }

    /// Starts or ends the slow-disk window (Raft mode, fault model 4).
    fn slow_due(&mut self, now: u64) {
        let Some((window, Some(on))) = self.slow else {
            return;
        };
        if !on && now >= window.from_ms {
            let (node, note) = self.aim(window.node, window.aim_draw);
            let window = SlowWindow { node, ..window };
            self.slow = Some((window, Some(true)));
            if let Some(replicas) = &self.replicas {
                replicas
                    .disk(node)
                    .set_slow(Some(Duration::from_millis(window.delay_ms)));
            }
            let name = &self.slots[node].name;
            self.ledger.record(&format!("{name}{note} {}", window.describe()));
        } else if on && now >= window.until_ms {
            let name = &self.slots[window.node].name;
            self.ledger.record(&format!("{name} disk fast again"));
            self.end_slow_window();
        }
    }

    /// No more slow writes (the liveness phase, or the window's end).
    fn end_slow_window(&mut self) {
        if let (Some((window, state)), Some(replicas)) = (&mut self.slow, &self.replicas) {
            replicas.disk(window.node).set_slow(None);
            *state = None;
        }
    }

    /// Sends the operator's `disarm-ha` or `arm-ha` when due; both are
    /// retried until the store takes them.
    fn disarm_due(&mut self, now: u64) {
        let Some((window, sent)) = &mut self.disarm else {
            return;
        };
        if let Some((ops, line)) = window.due(now, sent) {
            self.apply_edit(ops, line, true);
        }
    }

    /// No more failing writes (the liveness phase, or the window's end).
    fn end_disk_window(&mut self) {
        if let (Some((plan, state)), Some(replicas)) = (&mut self.disk, &self.replicas) {
            if let Some(window) = plan.window {
                replicas.disk(window.node).set(None);
            }
            *state = None;
        }
    }

    /// Nodes down or cut off: at most a minority at once, as a quorum
    /// store would need (the later Raft slice).
    fn impaired(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| {
                s.running.is_none()
                    || s.cut_until_ms.is_some()
                    || s.running.as_ref().is_some_and(|r| r.freeze.is_frozen())
            })
            .count()
    }

    /// Thaws the frozen nodes whose time is up.
    fn thaw_due(&mut self, now: u64) {
        for slot in &mut self.slots {
            if let Some(running) = &mut slot.running
                && running.thaw_at_ms.is_some_and(|at| at <= now)
            {
                running.thaw_at_ms = None;
                running.freeze.thaw();
                if let Some(replicas) = &self.replicas {
                    replicas.net().thaw(&slot.name);
                }
                self.ledger.record(&format!("{} thawed", slot.name));
            }
        }
    }

    /// The node a crash, cut or freeze aims at: a quarter of them at the
    /// Raft leader (Raft mode; as some replica sees it), a quarter at the
    /// HA master (the manager lock's holder), the rest at the drawn node;
    /// the drawn node when there is no such holder. Returns its index and
    /// a note for the journal.
    fn aim(&self, drawn: usize, draw: u64) -> (usize, &'static str) {
        let target = match draw % 4 {
            0 => self
                .open_replicas()
                .find_map(|(name, replica)| (replica.leader_name().as_deref() == Some(name)).then(|| name.to_string()))
                .map(|name| (name, " (the Raft leader)")),
            1 => self
                .cluster_state()
                .leases
                .get(&crate::core::store::LockName::Manager)
                .map(|lease| (lease.holder.to_string(), " (the HA master)")),
            _ => None,
        };
        target
            .and_then(|(name, note)| Some((self.slots.iter().position(|s| s.name == name)?, note)))
            .unwrap_or((drawn, ""))
    }

    /// Maybe starts a fault. Every opportunity gets an index and takes
    /// the same draws from [`Harness::fault_rng`], whether or not its
    /// fault applies or is skipped, so that dropping one fault
    /// (`--skip-faults`, shrinking) leaves the later ones as they were.
    fn maybe_inject(&mut self, now: u64) {
        if !self.fault_rng.chance(FAULT_PER_MILLE) {
            return;
        }
        let fault = self.fault_index;
        self.fault_index += 1;
        let index = self.fault_rng.range(0, self.slots.len() as u64 - 1) as usize;
        let kind = self.fault_rng.range(0, FAULT_KINDS - 1);
        let draw = self.fault_rng.next_u64();
        let (lo, hi) = self.pace.restart_ms();
        let restart = self.fault_rng.range(lo, hi);
        let within = |(lo, hi): (u64, u64)| lo + draw % (hi - lo + 1);
        let may_impair = self.impaired() < (self.slots.len() - 1) / 2;
        let (index, aim) = match kind {
            0 | 1 | 4 => self.aim(index, draw >> 40),
            _ => (index, ""),
        };
        let slot = &self.slots[index];
        let healthy = slot.running.as_ref().is_some_and(|r| !r.freeze.is_frozen()) && slot.cut_until_ms.is_none();
        let applies = match kind {
            0 | 1 | 4 => may_impair && healthy,
            8 => healthy,
            _ => true,
        };
        if !applies {
            return;
        }
        if self.config.skip_faults.contains(&fault) {
            self.ledger.record(&format!("fault #{fault} skipped"));
            return;
        }
        let name = self.slots[index].name.clone();
        let what = match kind {
            0 => {
                self.take_down_for(index, &format!("crash{aim} (fault #{fault})"), restart);
                format!("{name} crash{aim}")
            }
            1 => {
                let until = now + within(self.pace.cut_ms());
                self.slots[index].cut_until_ms = Some(until);
                // Over Raft a cut may be one-way (an asymmetric partition).
                let way = match &self.replicas {
                    Some(replicas) => {
                        let way = replicas::Way::drawn(draw / 7);
                        replicas.partition(&name, way);
                        way.describe()
                    }
                    None => {
                        self.set_cut(index, true);
                        ""
                    }
                };
                let line = format!("{name}{aim} store link cut{way} for {} ms", until - now);
                self.ledger.record(&format!("{line} (fault #{fault})"));
                line
            }
            2 | 3 => {
                let agent_fault = if kind == 2 { AgentFault::Hang } else { AgentFault::Fail };
                let until = now + within(self.pace.agent_fault_ms());
                let mut ledger = self.ledger.lock();
                ledger.agent_faults.insert(name.clone(), (agent_fault, until));
                let line = format!("{name} agent {agent_fault:?} for {} ms", until - now);
                ledger.journal.record(now, &format!("{line} (fault #{fault})"));
                line
            }
            5..=7 => {
                let (ops, line) = traffic::edit(kind - 5, draw, &self.sids(), &name);
                self.apply_edit(ops, format!("{line} (fault #{fault})"), false);
                line
            }
            8 => {
                let actor = panic_actor(&self.slots[index], draw);
                let line = format!("{name} {actor} panicked");
                self.ledger.record(&format!("{line} (fault #{fault})"));
                line
            }
            _ => {
                let device_ms = self.slots[index].config.timings.watchdog_device_timeout_ms;
                let ms = within(FREEZE_TENTHS) * device_ms / 10;
                if let Some(running) = &mut self.slots[index].running {
                    running.freeze.freeze();
                    running.thaw_at_ms = Some(now + ms);
                }
                if let Some(replicas) = &self.replicas {
                    replicas.net().freeze(&name);
                }
                let line = format!("{name}{aim} frozen for {ms} ms");
                self.ledger.record(&format!("{line} (fault #{fault})"));
                line
            }
        };
        self.faults.push((fault, what));
    }

    /// The liveness phase: every link healed, every agent fault over
    /// (downed nodes come back at their time).
    fn end_faults(&mut self, now: u64) {
        self.thaw_due(u64::MAX);
        for index in 0..self.slots.len() {
            if self.slots[index].cut_until_ms.take().is_some() {
                self.set_cut(index, false);
            }
        }
        self.ledger.lock().agent_faults.clear();
        self.end_disk_window();
        self.end_slow_window();
        self.disarm_due(u64::MAX);
        if let Some(replicas) = &self.replicas {
            replicas.net().set_faults(LinkFaults::default());
        }
        let mut undo = traffic::undo_all(&self.sids(), &self.members);
        if self.disarm.is_some() {
            // In case a late copy of a retried `disarm-ha` landed after
            // the `arm-ha` (ignored, with a notice, when armed).
            // First: a disarmed stack ignores maintenance commands.
            undo.insert(0, Op::QueueCrmCommand(crate::core::crm_command::CrmCommand::ArmHa));
        }
        self.apply_edit(undo, "operator edits undone".into(), true);
        self.ledger.record(&format!("faults stop at {now} ms: liveness phase"));
    }

    fn check(&self) -> Option<String> {
        if let Some(refusal) = self.refusals.borrow().first() {
            return Some(format!("start: {refusal}"));
        }
        let now = self.ledger.now_ms();
        let mut ledger = self.ledger.lock();
        ledger.reap(now);
        if let Some(violation) = ledger.violations.first() {
            return Some(format!("fencing token: {violation}"));
        }
        drop(ledger);
        let mut agreement = self.agreement.borrow_mut();
        for (node, replica) in self.open_replicas() {
            if let Some(violation) = agreement.check(node, &replica) {
                return Some(violation);
            }
        }
        drop(agreement);
        let mut ledger = self.ledger.lock();
        let new_starts = std::mem::take(&mut ledger.starts);
        if let Some(violation) = starts::unfenced_starts(&new_starts).into_iter().next() {
            return Some(format!("fence before recover: {violation}"));
        }
        let device_ms = self.slots[0].config.timings.watchdog_device_timeout_ms;
        if let Some(violation) = starts::unarmed_starts(&new_starts, device_ms).into_iter().next() {
            return Some(format!("run only while armed: {violation}"));
        }
        check::double_runs(&ledger)
            .into_iter()
            .next()
            .map(|d| format!("double run: {d}"))
    }
}

impl Harness {
    /// Every service's id.
    fn sids(&self) -> Vec<String> {
        self.store.snapshot().resources.keys().cloned().collect()
    }

    /// Samples the manager lock and status ([`MasterLog`]) and the
    /// fencing decisions ([`FenceLog`]) from one read of the store.
    fn check_store(&mut self) -> Option<String> {
        let lease_ms = self.slots[0].config.timings.lease_ms;
        let (index, state) = self.indexed_cluster_state();
        let master = self
            .master
            .sample(index, &state, lease_ms)
            .map(|v| format!("single master: {v}"));
        let (slots, ledger) = (&self.slots, self.ledger.lock());
        // A node's live incarnation, and whether services run there.
        let live = |node: &str| {
            let slot = slots.iter().find(|slot| slot.name == node && slot.running.is_some())?;
            let runs = ledger.instances.values().flatten().any(|i| i.node == node);
            Some((slot.incarnation, runs))
        };
        let fencing = self
            .fencing
            .sample(index, &state, live)
            .map(|v| format!("fence acknowledged: {v}"));
        master.or(fencing)
    }
}

/// Makes one of the node's actors panic inside a handler (`draw` picks
/// which): its supervisor restarts it, and the watchdog must stay fed
/// (the WatchdogActor itself is not among them: its loss is a reset, as
/// watchdog-mux's would be). Returns the actor's name.
fn panic_actor(slot: &Slot, draw: u64) -> &'static str {
    let actors = slot
        .running
        .as_ref()
        .map(|r| r.actors.lock().unwrap_or_else(|p| p.into_inner()).clone());
    let Some(Some(actors)) = actors else {
        return "(not yet started) actor";
    };
    match draw % 4 {
        0 => {
            actors.lock.do_send(InjectPanic);
            "LockActor"
        }
        1 => {
            actors.crm.do_send(InjectPanic);
            "CrmActor"
        }
        2 => {
            actors.lrm.do_send(InjectPanic);
            "LrmActor"
        }
        _ => {
            actors.pool.do_send(InjectPanic);
            "WorkerPool"
        }
    }
}

/// The longest a run lasts: the fault phase and the liveness bound.
fn run_bound_ms(timings: &crate::node::config::Timings, pace: Pace) -> u64 {
    pace.fault_phase_ms() + check::liveness_bound_ms(timings, pace.restart_ms().1)
}

/// The Raft members' network during the fault phase, from a stream of
/// its own (the fault stream stays as it was): half of the seeds a clean
/// network, the others frames delayed up to 30 ms one way, up to 3 % lost
/// and up to 2 % of requests delivered twice.
fn link_faults(seed: u64) -> LinkFaults {
    let mut rng = Rng::new(seed ^ 0x11_4e_fa_u64.wrapping_mul(0x9E37_79B9));
    if !rng.chance(500) {
        return LinkFaults::default();
    }
    let max_delay = rng.range(0, 30);
    LinkFaults {
        delay_ms: (rng.range(0, max_delay), max_delay),
        loss_per_mille: rng.range(0, 30),
        duplicate_per_mille: rng.range(0, 20),
    }
}

/// Commits the node's liveness heartbeat, as the Raft store's background
/// task does ([`crate::net::cluster::StoreTiming::heartbeat_every`]).
async fn heartbeat(store: SharedStore, node: NodeName, clock: Clock, timings: crate::node::config::Timings) {
    let every = (timings.round() / 2)
        .min(Duration::from_millis(timings.online_window_ms / 3))
        .max(Duration::from_millis(1));
    loop {
        let _ = store.apply(vec![Op::Heartbeat {
            node: node.clone(),
            now_ms: clock.now_ms(),
        }]);
        tokio::time::sleep(every).await;
    }
}
