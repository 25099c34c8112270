//! The transitional migration of legacy HA groups into node-affinity rules
//! (spec §2.9): attempted by the master every few rounds, only once every
//! node runs a version that understands rules and every LRM is active.

use std::collections::BTreeMap;

use super::env::{Env, EnvError};
use super::event::Event;
use super::node_status::NodeStatus;
use super::rules::rules_from_groups;
use super::status::ServiceStatus;
use super::types::{LrmMode, NodeName, NodeState};

/// Rounds before the first attempt of a new master.
pub const FIRST_ATTEMPT_ROUNDS: u32 = 3;
/// Rounds between attempts.
pub const RETRY_ROUNDS: u32 = 6;
/// The oldest pve-manager version whose nodes understand HA rules.
pub const MIN_VERSION: &str = "9.0.0~16";

/// A parsed `major.minor(.|-)patch(~rev)` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    release: (u64, u64, u64),
    rev: Option<u64>,
}

fn parse_version(text: &str) -> Option<Version> {
    let (main, rev) = match text.split_once('~') {
        Some((main, rev)) => (main, Some(rev.parse().ok()?)),
        None => (text, None),
    };
    let (major, rest) = main.split_once('.')?;
    let (minor, patch) = rest.split_once(['.', '-'])?;
    Some(Version {
        release: (major.parse().ok()?, minor.parse().ok()?, patch.parse().ok()?),
        rev,
    })
}

/// Whether `version` is at least `minimum`. A missing `~rev` counts as 0 on
/// the minimum side; a version without one satisfies any rev.
pub fn has_min_version(version: &str, minimum: &str) -> bool {
    let (Some(v), Some(min)) = (parse_version(version), parse_version(minimum)) else {
        return false;
    };
    match v.release.cmp(&min.release) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => match v.rev {
            None => true,
            Some(rev) => rev >= min.rev.unwrap_or(0),
        },
    }
}

/// The LRM facts the preconditions look at, per node.
pub struct LrmFacts<'a> {
    pub states: &'a BTreeMap<NodeName, String>,
    pub modes: &'a BTreeMap<NodeName, LrmMode>,
    pub services: &'a BTreeMap<String, ServiceStatus>,
}

/// Countdown and attempt logic, owned by the manager.
#[derive(Debug, Clone)]
pub struct GroupMigration {
    countdown: u32,
}

impl Default for GroupMigration {
    fn default() -> Self {
        GroupMigration {
            countdown: FIRST_ATTEMPT_ROUNDS,
        }
    }
}

impl GroupMigration {
    /// Called once per master round.
    pub fn round(&mut self, env: &mut dyn Env, nodes: &mut NodeStatus, lrm: &LrmFacts<'_>) -> Result<(), EnvError> {
        if env.read_groups()?.is_empty() {
            return Ok(());
        }
        self.countdown = self.countdown.saturating_sub(1);
        if self.countdown > 0 {
            return Ok(());
        }
        self.countdown = RETRY_ROUNDS;
        env.log(Event::GroupMigration {
            step: "start ha group migration...".into(),
        });
        match preconditions(env, nodes, lrm).and_then(|()| migrate(env)) {
            Ok(()) => env.log(Event::GroupMigration {
                step: "ha groups migration successful".into(),
            }),
            Err(reason) => {
                if let Some(reason) = reason {
                    env.log(Event::GroupMigrationAborted { reason });
                }
                env.log(Event::GroupMigrationFailed);
                env.log(Event::GroupMigration {
                    step: format!(
                        "retry ha groups migration in {RETRY_ROUNDS} rounds (~ {} seconds)",
                        RETRY_ROUNDS * 10
                    ),
                });
            }
        }
        Ok(())
    }
}

fn note(env: &mut dyn Env, text: String) {
    env.log(Event::GroupMigration {
        step: format!("ha groups migration: {text}"),
    });
}

/// `Err(Some(reason))` aborts with a reason; `Err(None)` failed and said why.
fn preconditions(env: &mut dyn Env, nodes: &mut NodeStatus, lrm: &LrmFacts<'_>) -> Result<(), Option<String>> {
    if !env.quorate() {
        return Err(Some("cluster is not quorate".into()));
    }
    let names = nodes.list_nodes();
    if names.is_empty() {
        return Err(Some("no nodes known".into()));
    }
    for node in names {
        let state = nodes.state(&node);
        note(env, format!("node '{node}' is in state '{state}'"));
        if state != NodeState::Online {
            return Err(Some(format!("node '{node}' is not online")));
        }
        let lrm_state = lrm.states.get(&node).map(String::as_str).unwrap_or("unknown");
        let mode = lrm.modes.get(&node).copied().unwrap_or(LrmMode::Unknown);
        note(env, format!("lrm '{node}' is in state '{lrm_state}' and mode '{mode}'"));
        let idle = lrm_state == "wait_for_agent_lock"
            && !lrm
                .services
                .values()
                .any(|sd| (sd.node == node || sd.target.as_deref() == Some(node.as_str())) && counts_as_active(sd));
        if lrm_state != "active" && !idle {
            return Err(Some(format!("lrm '{node}' is not in state 'active'")));
        }
        if mode != LrmMode::Active {
            return Err(Some(format!("lrm '{node}' is not in mode 'active'")));
        }
        let version = env.node_version(&node).unwrap_or_default();
        note(env, format!("node '{node}' has version '{version}'"));
        if !has_min_version(&version, MIN_VERSION) {
            return Err(Some(format!(
                "node '{node}' needs at least pve-manager version '{MIN_VERSION}'"
            )));
        }
    }
    Ok(())
}

fn counts_as_active(sd: &ServiceStatus) -> bool {
    use super::types::ServiceState::*;
    !matches!(sd.state, Stopped | Freeze | Error | RequestStart)
}

/// Writes the group rules, strips groups from resources and deletes the
/// group configuration; each step is logged once done.
fn migrate(env: &mut dyn Env) -> Result<(), Option<String>> {
    let failed = |env: &mut dyn Env, err: EnvError| {
        env.log(Event::UnexpectedError { error: err.to_string() });
        None
    };
    let groups = env.read_groups().map_err(|e| failed(env, e))?;
    let services = env.read_service_config().map_err(|e| failed(env, e))?;
    let mut rules = env.read_rules().map_err(|e| failed(env, e))?;
    let next_order = rules.iter().map(|r| r.order).max().unwrap_or(0) + 1;
    rules.extend(rules_from_groups(&groups, &services, next_order));
    env.write_rules(&rules).map_err(|e| failed(env, e))?;
    note(env, "migration to rules config successful".into());
    let updates: BTreeMap<String, bool> = services
        .iter()
        .filter_map(|(sid, cd)| {
            let group = groups.get(cd.group.as_ref()?)?;
            Some((sid.clone(), cd.failback && !group.nofailback))
        })
        .collect();
    env.drop_resource_groups(&updates).map_err(|e| failed(env, e))?;
    note(env, "migration to resources config successful".into());
    env.delete_groups().map_err(|e| failed(env, e))?;
    note(env, "group config deletion successful".into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_gate_matches_upstream_rules() {
        assert!(has_min_version("9.0.0~16", MIN_VERSION));
        assert!(has_min_version("9.0.0~17", MIN_VERSION));
        assert!(!has_min_version("9.0.0~15", MIN_VERSION));
        assert!(has_min_version("9.0.0", MIN_VERSION), "no rev satisfies any rev");
        assert!(has_min_version("9.1.2", MIN_VERSION));
        assert!(!has_min_version("8.4.1", MIN_VERSION));
        assert!(!has_min_version("7.4-4", MIN_VERSION));
        assert!(has_min_version("9.0.1", "9.0.1~3") && !has_min_version("9.0.1~2", "9.0.1~3"));
        assert!(!has_min_version("", MIN_VERSION));
        assert!(!has_min_version("garbage", MIN_VERSION));
    }
}
