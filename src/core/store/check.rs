//! Checks on store records that come from outside the API: a
//! single node's `store.json` (which an operator may edit by hand) and
//! states loaded from disk. The API refuses bad ids and dangling group
//! references before they reach the store; a record edited by hand gets
//! the same checks here, at load, so a bad one is refused with the file
//! and the key instead of being run silently (as config files are).

use std::path::Path;

use super::state::ClusterState;
use crate::core::types::{is_config_id, is_resource_name, split_sid, valid_node_name};

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
        Some(("vm" | "ct", name)) if !is_resource_name(name) => Err(error(
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
/// resources to groups, and the rules. The first problem found is
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
    let mut rule_ids = std::collections::BTreeSet::new();
    for rule in &state.rules {
        let key = format!("rules.\"{}\"", rule.id);
        if !is_config_id(&rule.id) {
            return Err(error(key, format!("invalid rule id '{}'", rule.id)));
        }
        if !rule_ids.insert(rule.id.as_str()) {
            return Err(error(key, "duplicate rule id".into()));
        }
        if rule.resources.is_empty() {
            return Err(error(format!("{key}.resources"), "no resources given".into()));
        }
        // Rules name resources as rules.cfg does (`<type>:<name>`), not
        // necessarily configured ones.
        if let Some(sid) = rule.resources.iter().find(|sid| split_sid(sid).is_none()) {
            return Err(error(
                format!("{key}.resources"),
                format!("invalid resource id '{sid}'"),
            ));
        }
        if let crate::core::rules::RuleKind::NodeAffinity { nodes, .. } = &rule.kind {
            for node in nodes.keys() {
                check_node(&format!("{key}.nodes"), node)?;
            }
        }
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
    use crate::core::status::ResourceConfig;
    use crate::core::store::StoredGroup;
    use crate::core::types::RequestState;

    fn with_resource(sid: &str, group: Option<&str>) -> ClusterState {
        let mut state = ClusterState::default();
        let mut resource = ResourceConfig::new("node1", RequestState::Started);
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
            .insert("proc:web".into(), ResourceConfig::new("node2", RequestState::Stopped));
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
                    rules: vec![crate::core::rules::Rule {
                        id: "1r".into(),
                        kind: crate::core::rules::RuleKind::ResourceAffinity { positive: true },
                        resources: ["vm:100".to_string()].into(),
                        disabled: false,
                        comment: None,
                        order: 1,
                    }]
                    .into(),
                    ..ClusterState::default()
                },
                "rules.\"1r\"",
                "invalid rule id '1r'",
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

    /// Property tests over the decoding of store records: generated
    /// states, arbitrary bytes and mutated valid encodings. A fixed, small
    /// number of cases each (no failure files), so `cargo test` stays fast.
    mod properties {
        use std::collections::VecDeque;

        use proptest::prelude::*;
        use serde_json::Value;

        use super::super::*;
        use crate::core::status::ResourceConfig;
        use crate::core::store::{Lease, StoredGroup};
        use crate::core::types::RequestState;

        const PATH: &str = "/var/lib/hactor/store.json";

        fn config(cases: u32) -> ProptestConfig {
            ProptestConfig {
                cases,
                failure_persistence: None,
                ..ProptestConfig::default()
            }
        }

        fn sid() -> impl Strategy<Value = String> {
            prop_oneof![
                (10u32..100_000).prop_map(|n| format!("vm:{n}")),
                (10u32..100_000).prop_map(|n| format!("ct:{n}")),
                "[a-z][a-z0-9_.-]{0,8}".prop_map(|n| format!("proc:{n}")),
            ]
        }

        fn node() -> impl Strategy<Value = String> {
            "[a-z][a-z0-9-]{0,6}[a-z0-9]"
        }

        fn state_of() -> impl Strategy<Value = RequestState> {
            prop_oneof![
                Just(RequestState::Started),
                Just(RequestState::Stopped),
                Just(RequestState::Disabled),
                Just(RequestState::Ignored),
            ]
        }

        /// A state the API could have written: every id valid, every
        /// group a resource names defined.
        fn valid_state() -> impl Strategy<Value = ClusterState> {
            let groups = proptest::collection::btree_map(
                "[a-z][a-z0-9_-]{1,6}",
                (
                    proptest::collection::btree_map(node(), -5i64..1000, 0..4),
                    any::<bool>(),
                    any::<bool>(),
                    proptest::option::of(any::<String>()),
                ),
                0..4,
            );
            let resources = proptest::collection::btree_map(
                sid(),
                (
                    proptest::option::of(node()),
                    state_of(),
                    any::<u32>(),
                    any::<u32>(),
                    any::<bool>(),
                    any::<prop::sample::Index>(),
                    any::<bool>(),
                    proptest::option::of(any::<String>()),
                ),
                0..6,
            );
            let runtime = (
                proptest::collection::vec_deque(crate::core::crm_command::any_command(), 0..3),
                proptest::collection::btree_map(
                    crate::core::store::lock_name::any_lock(),
                    (node(), any::<u64>()),
                    0..3,
                ),
                proptest::collection::btree_map(sid(), any::<u64>(), 0..3),
                proptest::collection::btree_map(node(), any::<u64>(), 0..3),
            );
            (groups, resources, runtime).prop_map(|(groups, resources, runtime)| {
                let mut state = ClusterState::default();
                for (id, (nodes, restricted, nofailback, comment)) in groups {
                    let group = StoredGroup {
                        nodes,
                        restricted,
                        nofailback,
                        comment,
                    };
                    state.groups_cfg.insert(id, group);
                }
                let ids: Vec<String> = state.groups_cfg.keys().cloned().collect();
                for (sid, (node, request, max_restart, max_relocate, failback, pick, grouped, comment)) in resources {
                    let group = (grouped && !ids.is_empty()).then(|| pick.get(&ids).clone());
                    let resource = ResourceConfig {
                        node,
                        state: request,
                        max_restart,
                        max_relocate,
                        failback,
                        group,
                        lock: None,
                        comment,
                    };
                    state.resources.insert(sid, resource);
                }
                let (commands, leases, epochs, heartbeats) = runtime;
                state.crm_commands = VecDeque::from(Vec::from(commands));
                state.leases = leases
                    .into_iter()
                    .map(|(lock, (holder, expires_ms))| (lock, Lease { holder, expires_ms }))
                    .collect();
                *state.epochs = epochs;
                state.heartbeats = heartbeats;
                state
            })
        }

        /// Decodes, and checks what any input must give: an error that
        /// names the file, or a valid state whose encoding decodes to
        /// itself and encodes to the same bytes again.
        fn check_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
            match decode(Path::new(PATH), bytes) {
                Err(e) => prop_assert!(e.starts_with(&format!("{PATH}: ")), "{}", e),
                Ok(state) => {
                    prop_assert_eq!(validate(&state), Ok(()));
                    let once = serde_json::to_vec(&state).unwrap();
                    let again = decode(Path::new(PATH), &once).unwrap();
                    prop_assert_eq!(&again, &state);
                    prop_assert_eq!(serde_json::to_vec(&again).unwrap(), once);
                }
            }
            Ok(())
        }

        /// Every leaf's JSON pointer.
        fn leaves(value: &Value, at: String, out: &mut Vec<String>) {
            match value {
                Value::Object(map) if !map.is_empty() => {
                    for (k, v) in map {
                        leaves(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
                    }
                }
                Value::Array(items) if !items.is_empty() => {
                    for (i, v) in items.iter().enumerate() {
                        leaves(v, format!("{at}/{i}"), out);
                    }
                }
                _ => out.push(at),
            }
        }

        fn json_value() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                (-1e300f64..1e300).prop_map(Value::from),
                any::<String>().prop_map(Value::String),
                "(vm|ct|proc|x)?:?[a-z0-9 ]{0,4}".prop_map(Value::String),
                Just(Value::Array(vec![])),
                Just(Value::Object(serde_json::Map::new())),
            ]
        }

        proptest! {
            #![proptest_config(config(64))]

            #[test]
            fn a_valid_state_writes_back_to_the_same_bytes(state in valid_state()) {
                let bytes = serde_json::to_vec(&state).unwrap();
                let decoded = decode(Path::new(PATH), &bytes);
                prop_assert_eq!(decoded.as_ref(), Ok(&state));
                prop_assert_eq!(serde_json::to_vec(&decoded.unwrap()).unwrap(), bytes);
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
                check_decode(&bytes)?;
            }

            #[test]
            fn mutated_bytes_never_panic(
                state in valid_state(),
                edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
            ) {
                let mut bytes = serde_json::to_vec(&state).unwrap();
                for (at, byte, how) in edits {
                    let i = at.index(bytes.len() + 1);
                    match how {
                        0 if i < bytes.len() => bytes[i] = byte,
                        1 => bytes.insert(i, byte),
                        _ if i < bytes.len() => {
                            bytes.remove(i);
                        }
                        _ => {}
                    }
                }
                check_decode(&bytes)?;
            }

            #[test]
            fn a_replaced_value_is_refused_or_kept_valid(
                state in valid_state(),
                at in any::<prop::sample::Index>(),
                with in json_value(),
            ) {
                let mut value = serde_json::to_value(&state).unwrap();
                let mut pointers = Vec::new();
                leaves(&value, String::new(), &mut pointers);
                let pointer = at.get(&pointers).clone();
                if let Some(slot) = value.pointer_mut(&pointer) {
                    *slot = with;
                }
                check_decode(&serde_json::to_vec(&value).unwrap())?;
            }

            #[test]
            fn a_resource_with_any_id_or_group_is_refused_by_key_or_valid(
                state in valid_state(),
                sid in "[a-z]{0,4}:?[a-z0-9 :]{0,5}",
                group in proptest::option::of("[a-z0-9_-]{0,4}"),
            ) {
                let mut state = state;
                let mut resource = ResourceConfig::new("node1", RequestState::Started);
                resource.group = group.clone();
                state.resources.insert(sid.clone(), resource);
                let bytes = serde_json::to_vec(&state).unwrap();
                let known_group = group.as_ref().is_none_or(|g| state.groups_cfg.contains_key(g));
                let sid_ok = match split_sid(&sid) {
                    Some(("vm" | "ct", name)) => is_resource_name(name),
                    Some(_) => true,
                    None => false,
                };
                match decode(Path::new(PATH), &bytes) {
                    Ok(_) => prop_assert!(sid_ok && known_group),
                    Err(e) => {
                        prop_assert!(!(sid_ok && known_group), "{}", e);
                        let key = format!("resources.\"{sid}\"");
                        prop_assert!(e.contains(&key), "{}", e);
                    }
                }
            }
        }
    }
}
