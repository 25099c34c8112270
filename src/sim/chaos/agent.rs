//! The simulated resource agent (type `sim`): starts and stops instances
//! in the [`Ledger`], each action taking a seeded random virtual time
//! (seconds while a hang fault is in force) and starts failing while a
//! fail fault is. One agent per node incarnation: once its node crashed
//! or was fenced it refuses everything.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::agents::{Agent, StartContext};
use crate::core::agent::JobSpec;
use crate::core::types::NodeName;

use super::ledger::{AgentFault, Instance, SharedLedger};
use super::rng::Rng;
use super::starts::StartRecord;
use super::watchdog::WatchdogProbe;

/// The service type the simulated agent handles.
pub const KIND: &str = "sim";

/// How long an action takes normally (virtual ms).
pub const ACTION_MS: (u64, u64) = (20, 400);
/// How long it takes while hung.
pub const HUNG_ACTION_MS: (u64, u64) = (3_000, 15_000);

/// One node incarnation's agent.
pub struct SimAgent {
    node: NodeName,
    ledger: SharedLedger,
    rng: Mutex<Rng>,
    /// The duration drawn for each service's action in progress.
    drawn_ms: Mutex<BTreeMap<String, u64>>,
    /// Cleared when the node crashes or is fenced.
    alive: Arc<AtomicBool>,
    /// The node's watchdog device, recorded with each start.
    watchdog: Option<WatchdogProbe>,
}

impl SimAgent {
    pub fn new(node: &str, ledger: SharedLedger, rng: Rng, alive: Arc<AtomicBool>) -> SimAgent {
        SimAgent {
            node: node.to_string(),
            ledger,
            rng: Mutex::new(rng),
            drawn_ms: Mutex::new(BTreeMap::new()),
            alive,
            watchdog: None,
        }
    }

    /// Records the state of `probe`'s device with every start (the
    /// run-only-while-armed checker).
    pub fn with_watchdog(mut self, probe: WatchdogProbe) -> SimAgent {
        self.watchdog = Some(probe);
        self
    }

    fn sid(name: &str) -> String {
        format!("{KIND}:{name}")
    }

    fn draw(&self, (lo, hi): (u64, u64)) -> u64 {
        self.rng.lock().unwrap_or_else(|p| p.into_inner()).range(lo, hi)
    }

    /// The time `spec`'s action takes; asked by the worker pool before
    /// the action runs ([`crate::actors::worker_pool::JobLatency`]).
    pub fn latency(&self, spec: &JobSpec) -> Duration {
        let now = self.ledger.now_ms();
        let hung = self.ledger.lock().agent_fault(&self.node, now) == Some(AgentFault::Hang);
        let ms = self.draw(if hung { HUNG_ACTION_MS } else { ACTION_MS });
        self.drawn_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(spec.sid.clone(), ms);
        Duration::from_millis(ms)
    }

    fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
}

impl Agent for SimAgent {
    fn running(&self, name: &str) -> bool {
        let sid = SimAgent::sid(name);
        self.alive()
            && self
                .ledger
                .lock()
                .instances
                .get(&sid)
                .is_some_and(|list| list.iter().any(|i| i.node == self.node && i.stopping_until.is_none()))
    }

    fn start(&self, name: &str, ctx: &StartContext) -> Result<(), String> {
        if !self.alive() {
            return Err("node is down".into());
        }
        let sid = SimAgent::sid(name);
        let now = self.ledger.now_ms();
        let mut ledger = self.ledger.lock();
        if ledger.agent_fault(&self.node, now) == Some(AgentFault::Fail)
            && self.rng.lock().unwrap_or_else(|p| p.into_inner()).chance(500)
        {
            ledger
                .journal
                .record(now, &format!("{} agent: start of {sid} failed", self.node));
            return Err("simulated start failure".into());
        }
        let highest = ledger.start_tokens.get(&sid).copied().unwrap_or(0);
        if ctx.fencing_token < highest {
            let violation = format!(
                "{sid} started on {} with fencing token {} after a start with token {highest}",
                self.node, ctx.fencing_token
            );
            ledger.violations.push(violation);
        }
        ledger.start_tokens.insert(sid.clone(), highest.max(ctx.fencing_token));
        let record = StartRecord {
            sid: sid.clone(),
            node: self.node.clone(),
            at_ms: now,
            token: ctx.fencing_token,
            last_feed_ms: self.watchdog.as_ref().map_or(Some(now), WatchdogProbe::last_feed_ms),
            elsewhere: ledger.elsewhere(&sid, &self.node, now),
        };
        ledger.starts.push(record);
        ledger.instances.entry(sid.clone()).or_default().push(Instance {
            node: self.node.clone(),
            token: ctx.fencing_token,
            stopping_until: None,
        });
        ledger.journal.record(
            now,
            &format!("{} agent: {sid} started (token {})", self.node, ctx.fencing_token),
        );
        Ok(())
    }

    fn stop(&self, name: &str, _timeout: Option<Duration>) -> Result<(), String> {
        if !self.alive() {
            return Err("node is down".into());
        }
        let sid = SimAgent::sid(name);
        let now = self.ledger.now_ms();
        let took = self
            .drawn_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&sid)
            .unwrap_or(0);
        let mut ledger = self.ledger.lock();
        // It keeps running until the stop's time is up: the job reports
        // the stop only then, and nothing may start it elsewhere before.
        if let Some(instance) = ledger.instances.get_mut(&sid).and_then(|list| {
            list.iter_mut()
                .find(|i| i.node == self.node && i.stopping_until.is_none())
        }) {
            instance.stopping_until = Some(now + took);
            ledger
                .journal
                .record(now, &format!("{} agent: {sid} stopping ({took} ms)", self.node));
        }
        Ok(())
    }

    fn migrate(&self, name: &str, _target: &str, _online: bool) -> Result<bool, String> {
        // Offline only: stop here, the target's LRM starts it.
        self.stop(name, None).map(|()| true)
    }
}
