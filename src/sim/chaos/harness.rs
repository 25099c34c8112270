//! One seeded run: N nodes' real actor trees on one paused runtime over
//! one shared store, a fault phase, then a liveness phase, with the
//! checkers after every step.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
use crate::node::clock::Clock;
use crate::node::config::NodeConfig;
use crate::node::memory_store::MemoryStore;
use crate::node::shared_store::SharedStore;

use super::agent::{KIND, SimAgent};
use super::check;
use super::freeze::Freeze;
use super::ledger::{AgentFault, SharedLedger};
use super::master::MasterLog;
use super::rng::Rng;
use super::starts;
use super::traffic;
use super::watchdog::{SimWatchdog, WatchdogProbe};
use super::{ChaosConfig, Outcome, Report};

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
/// A node stays frozen this long, in tenths of its watchdog device
/// timeout: thaws just before and well after the device fires.
pub const FREEZE_TENTHS: (u64, u64) = (2, 30);
/// Chance per step (per mille) that a fault or an operator edit starts:
/// one every ~1.7 s (a fault proper every ~2.7 s).
const FAULT_PER_MILLE: u64 = 30;
/// The kinds of fault [`Harness::maybe_inject`] draws from: crash, cut,
/// agent hang, agent fail, freeze, and three kinds of operator edit
/// ([`traffic`]).
const FAULT_KINDS: u64 = 8;
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
    store: SharedStore,
    watchdog: WatchdogProbe,
    alive: Arc<AtomicBool>,
    /// Stops the node's LocalSet from being polled ([`super::freeze`]).
    freeze: Freeze,
    /// When a frozen node thaws.
    thaw_at_ms: Option<u64>,
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
}

pub struct Harness {
    config: ChaosConfig,
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
}

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
            });
        }
        Ok(Harness {
            config,
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
        let mut next_step = STEP_MS;
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
            next_step += STEP_MS;
            self.restart_due(now);
            self.heal_due(now);
            self.thaw_due(now);
            if now < FAULT_PHASE_MS {
                self.maybe_inject(now);
            } else if !faults_over {
                faults_over = true;
                self.end_faults(now);
            }
            if let Some(violation) = self.check().or_else(|| self.check_master()) {
                break Outcome::Violation(violation);
            }
            if faults_over {
                let missing = check::not_running(&self.ledger.lock(), &self.store.snapshot());
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
        for slot in &mut self.slots {
            if let Some(running) = slot.running.take() {
                running.task.abort();
                let _ = running.task.await;
            }
        }
        let ledger = self.ledger.lock();
        Report {
            seed: self.config.seed,
            nodes: self.config.nodes,
            services: self.config.services,
            outcome,
            hash: ledger.journal.hash(),
            events: ledger.journal.count(),
            tail: ledger.journal.tail(),
            all: ledger.journal.all().map(<[String]>::to_vec),
            virtual_ms: now,
            faults: std::mem::take(&mut self.faults),
            skip_faults: self.config.skip_faults.clone(),
            sabotage: self.config.sabotage,
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
        let slot = &mut self.slots[index];
        slot.incarnation += 1;
        slot.restart_at_ms = None;
        let timings = slot.config.timings;
        let store = SharedStore::new(
            self.store.clone(),
            &slot.name,
            self.members.clone(),
            clock.clone(),
            timings.online_window_ms,
        );
        if slot.cut_until_ms.is_some_and(|until| until > now) {
            store.cut();
        }
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
        let started = {
            let _inside = local.enter();
            let started = start_node(&slot.config, store.clone(), options);
            tokio::task::spawn_local(heartbeat(store.clone(), slot.name.clone(), clock, timings));
            started
        };
        let what = match started {
            Ok(_) => format!("{} up (incarnation {})", slot.name, slot.incarnation),
            // Cannot happen with a backend given; recorded, not hidden.
            Err(e) => format!("{} failed to start - {e}", slot.name),
        };
        let freeze = Freeze::default();
        slot.running = Some(Running {
            task: tokio::task::spawn_local(freeze.wrap(local)),
            store,
            watchdog,
            alive,
            freeze,
            thaw_at_ms: None,
        });
        self.ledger.record(&what);
    }

    /// Node `index` goes down at once (crash or watchdog reset): its actors
    /// stop, its instances die; it comes back after a random delay.
    fn take_down(&mut self, index: usize, why: &str) {
        let delay = self.rng.range(RESTART_MS.0, RESTART_MS.1);
        self.take_down_for(index, why, delay);
    }

    /// [`Harness::take_down`], back after `delay` ms.
    fn take_down_for(&mut self, index: usize, why: &str, delay: u64) {
        let now = self.ledger.now_ms();
        let slot = &mut self.slots[index];
        let Some(running) = slot.running.take() else {
            return;
        };
        running.alive.store(false, Ordering::SeqCst);
        running.store.cut();
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
        for slot in &mut self.slots {
            if slot.cut_until_ms.is_some_and(|until| until <= now) {
                slot.cut_until_ms = None;
                if let Some(running) = &slot.running {
                    running.store.heal();
                }
                self.ledger.record(&format!("{} store link healed", slot.name));
            }
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
                self.ledger.record(&format!("{} thawed", slot.name));
            }
        }
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
        let restart = self.fault_rng.range(RESTART_MS.0, RESTART_MS.1);
        let within = |(lo, hi): (u64, u64)| lo + draw % (hi - lo + 1);
        let may_impair = self.impaired() < (self.slots.len() - 1) / 2;
        let slot = &self.slots[index];
        let healthy = slot.running.as_ref().is_some_and(|r| !r.freeze.is_frozen()) && slot.cut_until_ms.is_none();
        let applies = match kind {
            0 | 1 | 4 => may_impair && healthy,
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
                self.take_down_for(index, &format!("crash (fault #{fault})"), restart);
                format!("{name} crash")
            }
            1 => {
                let until = now + within(CUT_MS);
                let slot = &mut self.slots[index];
                slot.cut_until_ms = Some(until);
                if let Some(running) = &slot.running {
                    running.store.cut();
                }
                let line = format!("{name} store link cut for {} ms", until - now);
                self.ledger.record(&format!("{line} (fault #{fault})"));
                line
            }
            2 | 3 => {
                let agent_fault = if kind == 2 { AgentFault::Hang } else { AgentFault::Fail };
                let until = now + within(AGENT_FAULT_MS);
                let mut ledger = self.ledger.lock();
                ledger.agent_faults.insert(name.clone(), (agent_fault, until));
                let line = format!("{name} agent {agent_fault:?} for {} ms", until - now);
                ledger.journal.record(now, &format!("{line} (fault #{fault})"));
                line
            }
            5..=7 => {
                let (ops, line) = traffic::edit(kind - 5, draw, &self.sids(), &name);
                let outcome = match self.store.apply(ops) {
                    Ok(_) => String::new(),
                    Err(e) => format!(": refused - {e}"),
                };
                self.ledger.record(&format!("{line}{outcome} (fault #{fault})"));
                line
            }
            _ => {
                let device_ms = self.slots[index].config.timings.watchdog_device_timeout_ms;
                let ms = within(FREEZE_TENTHS) * device_ms / 10;
                if let Some(running) = &mut self.slots[index].running {
                    running.freeze.freeze();
                    running.thaw_at_ms = Some(now + ms);
                }
                let line = format!("{name} frozen for {ms} ms");
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
        for slot in &mut self.slots {
            if slot.cut_until_ms.take().is_some()
                && let Some(running) = &slot.running
            {
                running.store.heal();
            }
        }
        self.ledger.lock().agent_faults.clear();
        let _ = self.store.apply(traffic::undo_all(&self.sids(), &self.members));
        self.ledger.record(&format!("faults stop at {now} ms: liveness phase"));
    }

    fn check(&self) -> Option<String> {
        let now = self.ledger.now_ms();
        let mut ledger = self.ledger.lock();
        ledger.reap(now);
        if let Some(violation) = ledger.violations.first() {
            return Some(format!("fencing token: {violation}"));
        }
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

    /// Samples the manager lock and status ([`MasterLog`]).
    fn check_master(&mut self) -> Option<String> {
        let lease_ms = self.slots[0].config.timings.lease_ms;
        self.master
            .sample(&self.store.snapshot(), lease_ms)
            .map(|v| format!("single master: {v}"))
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
