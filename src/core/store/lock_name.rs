//! The names of the store's lease locks (upstream's pmxcfs lock
//! directories): which lock a lease is, typed, so that no caller spells
//! `ha_agent_<node>_lock` by hand. Stored and logged in upstream's text
//! form, so a store written before the type existed still reads.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::core::types::NodeName;

/// A lease lock of the cluster store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum LockName {
    /// `ha_manager_lock`: held by the CRM master.
    Manager,
    /// `ha_agent_<node>_lock`: held by the node's LRM while it may run
    /// services; taken over by the master to acknowledge the node's fencing.
    Agent(NodeName),
}

impl fmt::Display for LockName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockName::Manager => f.write_str("ha_manager_lock"),
            LockName::Agent(node) => write!(f, "ha_agent_{node}_lock"),
        }
    }
}

impl FromStr for LockName {
    type Err = String;

    fn from_str(text: &str) -> Result<LockName, String> {
        if text == "ha_manager_lock" {
            return Ok(LockName::Manager);
        }
        text.strip_prefix("ha_agent_")
            .and_then(|rest| rest.strip_suffix("_lock"))
            .filter(|node| !node.is_empty())
            .map(|node| LockName::Agent(node.to_string()))
            .ok_or_else(|| format!("unknown lock '{text}' (ha_manager_lock or ha_agent_<node>_lock)"))
    }
}

impl From<LockName> for String {
    fn from(lock: LockName) -> String {
        lock.to_string()
    }
}

impl TryFrom<String> for LockName {
    type Error = String;

    fn try_from(text: String) -> Result<LockName, String> {
        text.parse()
    }
}

/// Arbitrary lock names for property tests of the store.
#[cfg(test)]
pub fn any_lock() -> impl proptest::strategy::Strategy<Value = LockName> {
    use proptest::prelude::*;
    prop_oneof![Just(LockName::Manager), "node[1-9]".prop_map(LockName::Agent)]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn names_are_upstreams_and_round_trip() {
        for (lock, text) in [
            (LockName::Manager, "ha_manager_lock"),
            (LockName::Agent("node1".into()), "ha_agent_node1_lock"),
            (LockName::Agent("a_b".into()), "ha_agent_a_b_lock"),
        ] {
            assert_eq!(lock.to_string(), text);
            assert_eq!(text.parse::<LockName>(), Ok(lock.clone()));
            let map = BTreeMap::from([(lock.clone(), 1)]);
            let json = serde_json::to_string(&map).unwrap();
            assert_eq!(json, format!("{{\"{text}\":1}}"), "map keys stay text");
            assert_eq!(serde_json::from_str::<BTreeMap<LockName, i32>>(&json).unwrap(), map);
        }
        for bad in ["", "ha_agent__lock", "ha_manager", "my_lock"] {
            assert!(bad.parse::<LockName>().is_err(), "{bad}");
        }
    }
}
