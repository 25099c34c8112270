//! Resource agents: what actually starts, stops and moves a service on
//! this node. The worker pool runs [`crate::core::agent::execute`] with a
//! [`WorkerHost`] over the node's [`Agents`].
//!
//! | type | agent | drives |
//! |---|---|---|
//! | `proc` | [`proc::ProcAgent`] | a supervised child process group (`[proc.<name>]`) |
//! | `script` | [`script::ScriptAgent`] | an OCF-style script (`[script.<name>]`) |
//! | `vm`, `ct` | [`guest::GuestAgent`] | `qm` / `pct` or the commands of `[agent.vm]` / `[agent.ct]` |
//!
//! # From agent outcomes to the LRM's exit codes
//!
//! Agents answer questions and report failures; the exit code of a job is
//! decided by the pure core ([`crate::core::agent::execute`], upstream's
//! `exec_resource_agent`, spec §4.5–4.6) from those answers:
//!
//! | command | agent answers | result |
//! |---|---|---|
//! | `started` | [`Agent::monitor`] says [`Health::Running`] | `SUCCESS`, nothing done |
//! | `started` | not running or [`Health::Failed`]: [`Agent::start`], then the monitor says running | `SUCCESS` |
//! | `started` | the monitor still says stopped or failed after the start | `ERROR`: the LRM's restart policy retries up to `max_restart` times, then the CRM relocates (`max_relocate`) |
//! | `stopped`, `request_stop` | [`Agent::running`] false (already stopped) | `SUCCESS`, nothing done |
//! | `stopped`, `request_stop` | [`Agent::stop`], then `running` false / true | `SUCCESS` / `ERROR` |
//! | `migrate`, `relocate` | [`Agent::migrate`] `Ok(true)` / `Ok(false)` or `Err` | `SUCCESS` / `ERROR` |
//! | `request_start_balance` | `running` true | `IGNORED` |
//! | any | no agent registered for the type | `EUNKNOWN_SERVICE_TYPE` |
//!
//! A failed monitor (a health check that fails, an OCF `monitor` exit
//! other than 0 and 7, a status command that timed out) counts as running
//! for a stop — whatever is left must be stopped before the service may
//! run elsewhere — and as not running for a start, which first stops what
//! is left. A crashed process is not running: the master's next `started`
//! command (a new uid each round) restarts it, and if that start fails the
//! restart policy applies. Every `Err` of an agent is logged as
//! `service '<sid>' <action> failed - <why>`.
//!
//! Every command an agent runs gets `HACTOR_SID` and `HACTOR_NODE`; a start
//! also gets `HACTOR_FENCING_TOKEN`, the service's placement epoch.
//!
//! Owns: the agents and their settings ([`spec`]). May import: `core`;
//! never `node`, `actors` or `api`.

pub mod command;
pub mod guest;
pub mod proc;
pub mod script;
pub mod spec;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::core::agent::AgentHost;
use crate::core::event::Event;
use crate::core::timing::MAX_TIMEOUT_SECS;
use crate::core::types::{NodeName, split_sid};

/// What a start needs to know besides the service's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartContext {
    pub sid: String,
    pub node: NodeName,
    /// Strictly increasing per placement; shared storage can refuse a
    /// writer presenting an older token. Started commands see it as
    /// `HACTOR_FENCING_TOKEN`.
    pub fencing_token: u64,
}

impl StartContext {
    /// The environment every started command gets.
    pub fn env(&self) -> [(&'static str, String); 3] {
        [
            ("HACTOR_SID", self.sid.clone()),
            ("HACTOR_NODE", self.node.clone()),
            ("HACTOR_FENCING_TOKEN", self.fencing_token.to_string()),
        ]
    }
}

/// What a monitor found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Nothing of the service runs here.
    Stopped,
    /// It runs and works.
    Running,
    /// Something of it runs (or may run) but does not work: it needs a
    /// stop before it counts as stopped, a restart before it counts as
    /// started.
    Failed(String),
}

/// One kind of resource (`vm`, `ct`, `proc`, ...).
pub trait Agent: Send + Sync {
    /// Whether anything of the service runs here now, working or not
    /// (what a stop must end).
    fn running(&self, name: &str) -> bool;
    /// Starts it; `Err` explains a failure (the caller re-checks with
    /// [`Agent::monitor`]). A start of a [`Health::Failed`] service first
    /// stops what is left.
    fn start(&self, name: &str, ctx: &StartContext) -> Result<(), String>;
    /// Stops it, gracefully within `timeout`, then hard.
    fn stop(&self, name: &str, timeout: Option<Duration>) -> Result<(), String>;
    /// Moves it to `target`; `Ok(true)` once it left this node.
    fn migrate(&self, name: &str, target: &str, online: bool) -> Result<bool, String>;
    /// Whether it runs and works (health check, OCF `monitor`). Without a
    /// check of its own: [`Agent::running`].
    fn monitor(&self, name: &str) -> Health {
        if self.running(name) {
            Health::Running
        } else {
            Health::Stopped
        }
    }
    /// Whether this node knows the resource (upstream's `exists`: a guest
    /// configuration, a configured process or script).
    fn exists(&self, _name: &str) -> bool {
        true
    }
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

    /// Adds every agent of `other`, replacing those of the same type.
    pub fn extend(&mut self, other: Agents) {
        self.by_type.extend(other.by_type);
    }

    /// Whether an agent handles `kind`.
    pub fn has(&self, kind: &str) -> bool {
        self.by_type.contains_key(kind)
    }

    /// Whether the agent of `sid`'s type knows it (false without agent).
    pub fn exists(&self, sid: &str) -> bool {
        self.lookup(sid).is_some_and(|(agent, name)| agent.exists(name))
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

    fn agent_healthy(&mut self, sid: &str) -> bool {
        let Some((agent, name)) = self.agents.lookup(sid) else {
            return false;
        };
        match agent.monitor(name) {
            Health::Running => true,
            Health::Stopped => false,
            Health::Failed(error) => {
                self.events.push(Event::AgentFailed {
                    sid: sid.to_string(),
                    action: "monitor",
                    error,
                });
                false
            }
        }
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
        let timeout = timeout.map(stop_timeout);
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
/// The stop timeout of a `crm-command stop` as the manager status carries
/// it (seconds): a negative one stops hard (0), and one above
/// [`MAX_TIMEOUT_SECS`] (the API refuses those; an old queue might hold
/// one) is cut to it, so no agent computes a deadline it cannot represent.
pub fn stop_timeout(secs: i64) -> Duration {
    Duration::from_secs(u64::try_from(secs).unwrap_or(0).min(MAX_TIMEOUT_SECS))
}

#[cfg(test)]
mod stop_timeout_tests {
    use super::*;

    #[test]
    fn stop_timeouts_are_bounded() {
        assert_eq!(stop_timeout(30), Duration::from_secs(30));
        assert_eq!(stop_timeout(-1), Duration::ZERO);
        assert_eq!(stop_timeout(i64::MAX), Duration::from_secs(MAX_TIMEOUT_SECS));
    }
}
