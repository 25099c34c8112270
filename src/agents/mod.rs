//! Resource agents: what actually starts, stops and moves a service on
//! this node. The worker pool runs [`crate::core::agent::execute`] with a
//! [`WorkerHost`] over the node's [`Agents`].

pub mod proc;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::core::agent::AgentHost;
use crate::core::event::Event;
use crate::core::types::{NodeName, split_sid};

/// What a start needs to know besides the service's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartContext {
    pub sid: String,
    pub node: NodeName,
    /// Strictly increasing per placement; shared storage can refuse a
    /// writer presenting an older token.
    pub fencing_token: u64,
}

/// One kind of resource (`vm`, `ct`, `proc`, ...).
pub trait Agent: Send + Sync {
    /// Whether the service runs here now.
    fn running(&self, name: &str) -> bool;
    /// Starts it; `Err` explains a failure (the caller re-checks `running`).
    fn start(&self, name: &str, ctx: &StartContext) -> Result<(), String>;
    /// Stops it, gracefully within `timeout`, then hard.
    fn stop(&self, name: &str, timeout: Option<Duration>) -> Result<(), String>;
    /// Moves it to `target`; `Ok(true)` once it left this node.
    fn migrate(&self, name: &str, target: &str, online: bool) -> Result<bool, String>;
}

/// The agents of a node, by service type.
#[derive(Clone, Default)]
pub struct Agents {
    by_type: BTreeMap<String, Arc<dyn Agent>>,
}

impl Agents {
    pub fn new() -> Agents {
        Agents::default()
    }

    pub fn register(&mut self, kind: &str, agent: Arc<dyn Agent>) {
        self.by_type.insert(kind.to_string(), agent);
    }

    fn lookup<'a>(&'a self, sid: &'a str) -> Option<(&'a Arc<dyn Agent>, &'a str)> {
        let (kind, name) = split_sid(sid)?;
        Some((self.by_type.get(kind)?, name))
    }

    pub fn kinds(&self) -> Vec<String> {
        self.by_type.keys().cloned().collect()
    }
}

/// A worker's [`AgentHost`]: collects the events of one job and remembers
/// whether the service left this node.
pub struct WorkerHost<'a> {
    pub node: NodeName,
    pub agents: &'a Agents,
    pub fencing_token: u64,
    pub events: Vec<Event>,
    /// Set when a migration moved the service to this node.
    pub moved_to: Option<NodeName>,
}

impl AgentHost for WorkerHost<'_> {
    fn nodename(&self) -> &str {
        &self.node
    }

    fn log(&mut self, event: Event) {
        self.events.push(event);
    }

    fn agent_known(&self, kind: &str) -> bool {
        self.agents.by_type.contains_key(kind)
    }

    fn agent_running(&mut self, sid: &str) -> bool {
        self.agents.lookup(sid).is_some_and(|(agent, name)| agent.running(name))
    }

    fn agent_start(&mut self, sid: &str) {
        let Some((agent, name)) = self.agents.lookup(sid) else {
            return;
        };
        let ctx = StartContext {
            sid: sid.to_string(),
            node: self.node.clone(),
            fencing_token: self.fencing_token,
        };
        if let Err(error) = agent.start(name, &ctx) {
            self.events.push(Event::AgentFailed {
                sid: sid.to_string(),
                action: "start",
                error,
            });
        }
    }

    fn agent_shutdown(&mut self, sid: &str, timeout: Option<i64>) {
        let Some((agent, name)) = self.agents.lookup(sid) else {
            return;
        };
        let timeout = timeout.map(|t| Duration::from_secs(u64::try_from(t).unwrap_or(0)));
        if let Err(error) = agent.stop(name, timeout) {
            self.events.push(Event::AgentFailed {
                sid: sid.to_string(),
                action: "stop",
                error,
            });
        }
    }

    fn agent_migrate(&mut self, sid: &str, target: &str, online: bool) -> bool {
        let Some((agent, name)) = self.agents.lookup(sid) else {
            return false;
        };
        match agent.migrate(name, target, online) {
            Ok(moved) => {
                if moved {
                    self.moved_to = Some(target.to_string());
                }
                moved
            }
            Err(error) => {
                self.events.push(Event::AgentFailed {
                    sid: sid.to_string(),
                    action: "migrate",
                    error,
                });
                false
            }
        }
    }
}
