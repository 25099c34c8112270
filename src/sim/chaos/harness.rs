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
use crate::actors::{NodeOptions, NodeRuntime, start_node};
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
use super::ledger::{AgentFault, SharedLedger};
use super::replicas::{self, Agreement, ReplicaSlot, Replicas};
use super::rng::Rng;
use super::watchdog::{SimWatchdog, WatchdogProbe};
use super::{ChaosConfig, Outcome, Report, StoreKind};

/// Virtual time between two looks of the harness (faults, watchdogs,
/// checkers): well inside the 500 ms safety margin of the timings.
pub const STEP_MS: u64 = 50;
/// How long faults are injected.
pub const FAULT_PHASE_MS: u64 = 60_000;
/// A crashed or fenced node is back after this long (virtual ms).
pub const RESTART_MS: (u64, u64) = (1_000, 8_000);
/// A node's store link stays cut this long.
pub const CUT_MS: (u64, u64) = (1_000, 15_000);
/// An agent fault lasts this long.
pub const AGENT_FAULT_MS: (u64, u64) = (2_000, 10_000);
/// Chance per step (per mille) that a fault starts: one every ~2.5 s.
const FAULT_PER_MILLE: u64 = 20;
/// Lease stamps are virtual ms from this (2023-11-14), so they look like
/// wall-clock times.
const EPOCH_MS: u64 = 1_700_000_000_000;
/// Each node's clock is off by up to this much (well inside the margin).
const MAX_CLOCK_OFFSET_MS: u64 = 50;

/// A running node incarnation.
struct Running {
    /// The LocalSet task holding every actor and task of the node: aborting
    /// it drops them all at once.
    task: JoinHandle<()>,
    store: NodeStore,
    watchdog: WatchdogProbe,
    alive: Arc<AtomicBool>,
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
    clock_offset_ms: u64,
    incarnation: u32,
    running: Option<Running>,
    /// When a downed node comes back.
    restart_at_ms: Option<u64>,
    /// Its store link is cut until then.
    cut_until_ms: Option<u64>,
    /// The shutdown of its last incarnation's Raft member (Raft mode):
    /// the next one opens the files after it.
    shutdown: Option<JoinHandle<()>>,
}

pub struct Harness {
    config: ChaosConfig,
    rng: Rng,
    ledger: SharedLedger,
    store: MemoryStore,
    members: Arc<[NodeName]>,
    slots: Vec<Slot>,
    exited: Recipient<Exited>,
    /// The Raft members' network and files ([`StoreKind::Raft`]).
    replicas: Option<Arc<Replicas>>,
    agreement: std::cell::RefCell<Agreement>,
}

impl Harness {
    pub fn new(config: ChaosConfig, ledger: SharedLedger) -> Result<Harness, String> {
        let mut rng = Rng::new(config.seed);
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
        for name in &names {
            let text = format!("node = \"{name}\"\nstate_dir = \"/nonexistent/hactor-chaos/{name}\"\n");
            let config = NodeConfig::parse(&text)?;
            slots.push(Slot {
                name: name.clone(),
                config,
                clock_offset_ms: rng.range(0, MAX_CLOCK_OFFSET_MS),
                incarnation: 0,
                running: None,
                restart_at_ms: None,
                cut_until_ms: None,
                shutdown: None,
            });
        }
        let replicas = match config.store {
            StoreKind::Raft => Some(Arc::new(Replicas::new(config.seed, &names)?)),
            StoreKind::Shared => None,
        };
        Ok(Harness {
            replicas,
            agreement: std::cell::RefCell::new(Agreement::default()),
            config,
            rng,
            ledger,
            store: MemoryStore::volatile(state),
            members: names.into(),
            slots,
            exited: IgnoreExited.start().recipient(),
        })
    }

    /// Runs the fault phase and the liveness phase; stops at the first
    /// violation.
    pub async fn run(mut self) -> Report {
        for index in 0..self.slots.len() {
            self.start(index);
        }
        let timings = self.slots[0].config.timings;
        let deadline = FAULT_PHASE_MS + check::liveness_bound_ms(&timings, RESTART_MS.1);
        let mut faults_over = false;
        let outcome = loop {
            tokio::time::sleep(Duration::from_millis(STEP_MS)).await;
            let now = self.ledger.now_ms();
            self.fire_watchdogs(now);
            self.restart_due(now);
            self.heal_due(now);
            if now < FAULT_PHASE_MS {
                self.maybe_inject(now);
            } else if !faults_over {
                faults_over = true;
                self.end_faults(now);
            }
            if let Some(violation) = self.check() {
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
                        now - FAULT_PHASE_MS
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
        }
    }

    fn clock(&self, index: usize) -> Clock {
        let ledger = self.ledger.clone();
        let offset = self.slots[index].clock_offset_ms;
        Clock::from_fn(move || EPOCH_MS + offset + ledger.now_ms())
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
        let agent = Arc::new(SimAgent::new(&slot.name, self.ledger.clone(), agent_rng, alive.clone()));
        let device = SimWatchdog::new(self.ledger.clone());
        let watchdog = device.probe();
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
        let up = format!("{} up (incarnation {})", slot.name, slot.incarnation);
        let store = if let Some(replicas) = self.replicas.clone() {
            // The member's links stay cut across a restart (the fault
            // is in the network, not the node).
            let replica: ReplicaSlot = Arc::new(Mutex::new(None));
            let (config, previous, ledger) = (slot.config.clone(), slot.shutdown.take(), self.ledger.clone());
            let opened = replica.clone();
            local.spawn_local(async move {
                let what = match replicas.open(index, clock, &timings, previous, &initial).await {
                    Ok(raft) => {
                        *opened.lock().unwrap_or_else(|p| p.into_inner()) = Some(raft.clone());
                        match start_node(&config, ClusterStore::Replicated(raft), options) {
                            Ok(_) => up,
                            Err(e) => format!("{} failed to start - {e}", config.node),
                        }
                    }
                    Err(e) => format!("{} failed to open its replica - {e}", config.node),
                };
                ledger.record(&what);
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
                Ok(_) => up,
                // Cannot happen with a backend given; recorded, not hidden.
                Err(e) => format!("{} failed to start - {e}", slot.name),
            });
            NodeStore::Shared(store)
        };
        slot.running = Some(Running {
            task: tokio::task::spawn_local(local),
            store,
            watchdog,
            alive,
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
        if self.replicas.is_none() {
            return self.store.snapshot();
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

    /// Node `index` goes down at once (crash or watchdog reset): its actors
    /// stop, its instances die; it comes back after a random delay.
    fn take_down(&mut self, index: usize, why: &str) {
        let delay = self.rng.range(RESTART_MS.0, RESTART_MS.1);
        let now = self.ledger.now_ms();
        let slot = &mut self.slots[index];
        let Some(running) = slot.running.take() else {
            return;
        };
        running.alive.store(false, Ordering::SeqCst);
        match running.store {
            NodeStore::Shared(store) => store.cut(),
            NodeStore::Raft(replica) => {
                if let Some(raft) = replica.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    slot.shutdown = Some(replicas::crash(raft));
                }
            }
        }
        running.task.abort();
        slot.restart_at_ms = Some(now + delay);
        let mut ledger = self.ledger.lock();
        let killed = ledger.kill_node(&slot.name);
        let line = format!(
            "{} {why}: down, {killed} instances killed, back in {delay} ms",
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

    /// Nodes down or cut off: at most a minority at once, as a quorum
    /// store would need (the later Raft slice).
    fn impaired(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.running.is_none() || s.cut_until_ms.is_some())
            .count()
    }

    fn maybe_inject(&mut self, now: u64) {
        if !self.rng.chance(FAULT_PER_MILLE) {
            return;
        }
        let index = self.rng.range(0, self.slots.len() as u64 - 1) as usize;
        let kind = self.rng.range(0, 3);
        let may_impair = self.impaired() < (self.slots.len() - 1) / 2;
        let slot = &self.slots[index];
        let healthy = slot.running.is_some() && slot.cut_until_ms.is_none();
        match kind {
            0 if may_impair && healthy => self.take_down(index, "crash"),
            1 if may_impair && healthy => {
                let until = now + self.rng.range(CUT_MS.0, CUT_MS.1);
                self.slots[index].cut_until_ms = Some(until);
                self.set_cut(index, true);
                let line = format!("{} store link cut for {} ms", self.slots[index].name, until - now);
                self.ledger.record(&line);
            }
            2 | 3 => {
                let fault = if kind == 2 { AgentFault::Hang } else { AgentFault::Fail };
                let until = now + self.rng.range(AGENT_FAULT_MS.0, AGENT_FAULT_MS.1);
                let name = self.slots[index].name.clone();
                let mut ledger = self.ledger.lock();
                ledger.agent_faults.insert(name.clone(), (fault, until));
                let line = format!("{name} agent {fault:?} for {} ms", until - now);
                ledger.journal.record(now, &line);
            }
            _ => {}
        }
    }

    /// The liveness phase: every link healed, every agent fault over
    /// (downed nodes come back at their time).
    fn end_faults(&mut self, now: u64) {
        for index in 0..self.slots.len() {
            if self.slots[index].cut_until_ms.take().is_some() {
                self.set_cut(index, false);
            }
        }
        self.ledger.lock().agent_faults.clear();
        self.ledger.record(&format!("faults stop at {now} ms: liveness phase"));
    }

    fn check(&self) -> Option<String> {
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
        let ledger = self.ledger.lock();
        check::double_runs(&ledger)
            .into_iter()
            .next()
            .map(|d| format!("double run: {d}"))
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
