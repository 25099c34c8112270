//! What really runs: every live service instance in the simulated
//! cluster (which node, which fencing token), the agent faults in force,
//! and the journal. Shared by the simulated agents (which start and stop
//! instances), the simulated watchdogs (a fired one kills its node's
//! instances) and the checkers; the actors never see it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::core::types::NodeName;

use super::journal::Journal;
use super::starts::StartRecord;

/// One instance of a service on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub node: NodeName,
    /// The fencing token its start was given.
    pub token: u64,
    /// A stop is under way: it still runs until then (virtual ms).
    pub stopping_until: Option<u64>,
}

/// An agent fault in force on a node until a virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentFault {
    /// Every action takes seconds (a hung storage backend).
    Hang,
    /// Starts fail half the time.
    Fail,
}

/// The shared truth of a run.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Live instances by service id.
    pub instances: BTreeMap<String, Vec<Instance>>,
    /// The highest fencing token a start was given, by service id.
    pub start_tokens: BTreeMap<String, u64>,
    /// Agent faults by node, with when they end.
    pub agent_faults: BTreeMap<NodeName, (AgentFault, u64)>,
    /// Safety violations seen as they happened (a start under a token
    /// older than an earlier start's).
    pub violations: Vec<String>,
    /// Starts since the checkers last looked ([`super::starts`]).
    pub starts: Vec<StartRecord>,
    pub journal: Journal,
}

/// The ledger behind a mutex, with virtual time.
#[derive(Clone)]
pub struct SharedLedger {
    inner: Arc<Mutex<Ledger>>,
    /// Virtual time zero of the run.
    start: tokio::time::Instant,
}

impl SharedLedger {
    pub fn new(journal: Journal) -> SharedLedger {
        SharedLedger {
            inner: Arc::new(Mutex::new(Ledger {
                journal,
                ..Ledger::default()
            })),
            start: tokio::time::Instant::now(),
        }
    }

    /// Virtual milliseconds since the run began.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an event now.
    pub fn record(&self, what: &str) {
        let now = self.now_ms();
        self.lock().journal.record(now, what);
    }
}

impl Ledger {
    /// The agent fault in force on `node` at `now_ms`.
    pub fn agent_fault(&self, node: &str, now_ms: u64) -> Option<AgentFault> {
        self.agent_faults
            .get(node)
            .filter(|(_, until)| *until > now_ms)
            .map(|(fault, _)| *fault)
    }

    /// Drops the instances whose stop has finished by `now_ms`.
    pub fn reap(&mut self, now_ms: u64) {
        for list in self.instances.values_mut() {
            list.retain(|i| i.stopping_until.is_none_or(|until| until > now_ms));
        }
        self.instances.retain(|_, list| !list.is_empty());
    }

    /// Instances of `sid` live at `now_ms` on nodes other than `node`:
    /// node and token.
    pub fn elsewhere(&self, sid: &str, node: &str, now_ms: u64) -> Vec<(NodeName, u64)> {
        self.instances
            .get(sid)
            .into_iter()
            .flatten()
            .filter(|i| i.node != node && i.stopping_until.is_none_or(|until| until > now_ms))
            .map(|i| (i.node.clone(), i.token))
            .collect()
    }

    /// Every instance on `node` dies at once (a crash or a watchdog reset).
    pub fn kill_node(&mut self, node: &str) -> usize {
        let mut killed = 0;
        for list in self.instances.values_mut() {
            let before = list.len();
            list.retain(|i| i.node != node);
            killed += before - list.len();
        }
        self.instances.retain(|_, list| !list.is_empty());
        killed
    }
}
