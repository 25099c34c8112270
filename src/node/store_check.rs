//! Checks on store records that come from outside the API: a
//! single node's `store.json` (which an operator may edit by hand) and
//! states loaded from disk. The API refuses bad ids and dangling group
//! references before they reach the store; a record edited by hand gets
//! the same checks here, at load, so a bad one is refused with the file
//! and the key instead of being run silently (as config files are).

use std::path::Path;

use super::store::ClusterState;
use crate::config::value::is_config_id;
use crate::core::types::split_sid;
use crate::net::tls::valid_node_name;

/// What is wrong with a state, and where (`resources."vm:1".group`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct RecordError {
    pub key: String,
    pub message: String,
}

fn error(key: String, message: String) -> RecordError {
    RecordError { key, message }
}

/// A service id as the store keeps it: `<type>:<name>`, and for `vm`/`ct`
/// a VMID (at least two digits, no leading zero), as the API and the node
/// configuration require.
fn check_sid(key: &str, sid: &str) -> Result<(), RecordError> {
    match split_sid(sid) {
        None => Err(error(
            key.to_string(),
            format!("invalid service id '{sid}' (expected <type>:<name>)"),
        )),
        Some(("vm" | "ct", name)) if !crate::config::resources::is_resource_name(name) => Err(error(
            key.to_string(),
            format!("invalid VMID '{name}' in service id '{sid}' (at least two digits, no leading zero)"),
        )),
        Some(_) => Ok(()),
    }
}

fn check_node(key: &str, node: &str) -> Result<(), RecordError> {
    if valid_node_name(node) {
        Ok(())
    } else {
        Err(error(
            key.to_string(),
            format!("invalid node name '{node}' (letters, digits and '-', at most 63)"),
        ))
    }
}

/// Checks every record of `state` whose shape the types do not already
/// guarantee: service ids, node names, group ids, references from
/// resources to groups, and the rules text. The first problem found is
/// returned, in a fixed order (resources, groups, rules, status maps).
pub fn validate(state: &ClusterState) -> Result<(), RecordError> {
    for (id, group) in &state.groups_cfg {
        let key = format!("groups_cfg.\"{id}\"");
        if !is_config_id(id) {
            return Err(error(key, format!("invalid group id '{id}'")));
        }
        for node in group.nodes.keys() {
            check_node(&format!("{key}.nodes"), node)?;
        }
    }
    for (sid, resource) in &state.resources {
        let key = format!("resources.\"{sid}\"");
        check_sid(&key, sid)?;
        if let Some(node) = &resource.node {
            check_node(&format!("{key}.node"), node)?;
        }
        if let Some(group) = &resource.group
            && !state.groups_cfg.contains_key(group)
        {
            return Err(error(
                format!("{key}.group"),
                format!("unknown group '{group}' (not in groups_cfg)"),
            ));
        }
    }
    if !state.rules_cfg.trim().is_empty() {
        crate::core::rules::parse_rules(&state.rules_cfg).map_err(|e| error("rules_cfg".into(), e.to_string()))?;
    }
    for sid in state.manager_status.service_status.keys() {
        check_sid(&format!("manager_status.service_status.\"{sid}\""), sid)?;
    }
    for node in state.manager_status.node_status.keys() {
        check_node("manager_status.node_status", node)?;
    }
    for node in state.lrm_status.keys() {
        check_node("lrm_status", node)?;
    }
    for node in state.heartbeats.keys() {
        check_node("heartbeats", node)?;
    }
    Ok(())
}

/// Decodes a `store.json` as read from `path`: JSON into a
/// [`ClusterState`], then [`validate`]. Every error names the file, and
/// the line and column (bad JSON) or the key (a bad record); no input
/// panics.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<ClusterState, String> {
    let state: ClusterState =
        serde_json::from_slice(bytes).map_err(|e| format!("{}: corrupt store: {e}", path.display()))?;
    validate(&state).map_err(|e| format!("{}: refused store record: {e}", path.display()))?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::core::types::RequestState;
    use crate::node::store::{StoredGroup, StoredResource};

    fn with_resource(sid: &str, group: Option<&str>) -> ClusterState {
        let mut state = ClusterState::default();
        let mut resource = StoredResource::new("node1", RequestState::Started);
        resource.group = group.map(String::from);
        state.resources.insert(sid.into(), resource);
        state
    }

    #[test]
    fn a_valid_state_passes() {
        let mut state = with_resource("vm:100", Some("g1"));
        state.groups_cfg.insert(
            "g1".into(),
            StoredGroup {
                nodes: BTreeMap::from([("node1".to_string(), 1)]),
                restricted: false,
                nofailback: false,
                comment: None,
            },
        );
        state
            .resources
            .insert("proc:web".into(), StoredResource::new("node2", RequestState::Stopped));
        assert_eq!(validate(&state), Ok(()));
        assert_eq!(validate(&ClusterState::default()), Ok(()));
    }

    #[test]
    fn bad_records_are_refused_with_their_key() {
        let cases: Vec<(ClusterState, &str, &str)> = vec![
            (
                with_resource("vm:100", Some("nope")),
                "resources.\"vm:100\".group",
                "unknown group 'nope'",
            ),
            (
                with_resource("vm100", None),
                "resources.\"vm100\"",
                "invalid service id 'vm100'",
            ),
            (
                with_resource("vm:abc", None),
                "resources.\"vm:abc\"",
                "invalid VMID 'abc'",
            ),
            (
                with_resource("ct:0100", None),
                "resources.\"ct:0100\"",
                "invalid VMID '0100'",
            ),
            (
                with_resource("proc:a b", None),
                "resources.\"proc:a b\"",
                "invalid service id",
            ),
            (
                {
                    let mut s = with_resource("vm:100", None);
                    s.resources.get_mut("vm:100").unwrap().node = Some("no de".into());
                    s
                },
                "resources.\"vm:100\".node",
                "invalid node name 'no de'",
            ),
            (
                {
                    let mut s = ClusterState::default();
                    s.groups_cfg.insert(
                        "1g".into(),
                        StoredGroup {
                            nodes: BTreeMap::new(),
                            restricted: false,
                            nofailback: false,
                            comment: None,
                        },
                    );
                    s
                },
                "groups_cfg.\"1g\"",
                "invalid group id '1g'",
            ),
            (
                ClusterState {
                    rules_cfg: "bogus: r1\n".into(),
                    ..ClusterState::default()
                },
                "rules_cfg",
                "line 1",
            ),
        ];
        for (state, key, message) in cases {
            let err = validate(&state).unwrap_err();
            assert_eq!(err.key, key, "{err}");
            assert!(err.message.contains(message), "{err}");
        }
    }

    #[test]
    fn decode_names_the_file_and_the_key() {
        let path = Path::new("/var/lib/hactor/store.json");
        let text = serde_json::to_vec(&with_resource("vm:100", Some("gone"))).unwrap();
        let err = decode(path, &text).unwrap_err();
        assert!(
            err.starts_with(
                "/var/lib/hactor/store.json: refused store record: resources.\"vm:100\".group: unknown group 'gone'"
            ),
            "{err}"
        );
        let err = decode(path, b"{\"resources\": 7}").unwrap_err();
        assert!(err.starts_with("/var/lib/hactor/store.json: corrupt store: "), "{err}");
        assert!(err.contains("line 1"), "{err}");
        let err = decode(path, &[0xff, 0xfe, b'{']).unwrap_err();
        assert!(err.starts_with("/var/lib/hactor/store.json: corrupt store: "), "{err}");
    }
}
