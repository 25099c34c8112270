//! `groups.cfg`: legacy HA groups (spec §6.3), deprecated since PVE 9 and
//! migrated to node-affinity rules.
//!
//! ```text
//! group: prefer_node1
//!     comment Prefer node1
//!     nodes node1:2,node2
//!     nofailback 1
//!     restricted 1
//! ```
//!
//! (property lines are indented with a tab in the file.)
//!
//! Keys: `nodes` (required; `node[:prio]` entries, node names matching
//! `^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`, priority a non-negative
//! integer, default 0), `restricted` and `nofailback` (booleans, default 0),
//! `comment` (at most 4096 characters, stored as written). Any other key is
//! an error.
//!
//! Canonical form, as written by [`write_groups`]: groups sorted by id (the
//! typed [`Groups`] map keeps no file order); per group `comment` (if
//! non-empty), `nodes` (sorted, `:prio` omitted when 0), `nofailback 1` and
//! `restricted 1` only when set; one blank line after every group.

use crate::core::status::{GroupConfig, Groups};

use super::ConfigError;
use super::section::{self, Section};
use super::value::{check_comment, format_node_list, is_config_id, parse_bool, parse_node_list};

const KEYS: &[&str] = &["comment", "nodes", "nofailback", "restricted"];

fn group_from_section(s: &Section) -> Result<GroupConfig, ConfigError> {
    if s.kind != "group" {
        return Err(ConfigError::at(
            s.line,
            format!("unknown section type '{}' (expected 'group')", s.kind),
        ));
    }
    if !is_config_id(&s.id) {
        return Err(ConfigError::at(s.line, format!("invalid group id '{}'", s.id)));
    }
    let context = format!("group '{}'", s.id);
    let key_err = |key: &str, detail: String| ConfigError::key(s.line_of(key), &context, key, detail);
    for p in &s.properties {
        if !KEYS.contains(&p.key.as_str()) {
            return Err(ConfigError::key(p.line, &context, &p.key, "unknown key"));
        }
        let boolean = matches!(p.key.as_str(), "nofailback" | "restricted");
        if p.bare && !boolean {
            return Err(key_err(&p.key, "missing value".into()));
        }
    }
    let Some(nodes_text) = s.get("nodes") else {
        return Err(ConfigError::key(s.line, &context, "nodes", "missing (required)"));
    };
    let nodes = parse_node_list(nodes_text).map_err(|e| key_err("nodes", e))?;
    let flag = |key: &str| match s.get(key) {
        None => Ok(false),
        Some(v) => parse_bool(v).ok_or_else(|| key_err(key, format!("expected a boolean (0 or 1), got '{v}'"))),
    };
    let comment = s.get("comment").map(str::to_string);
    if let Some(text) = &comment {
        check_comment(text).map_err(|e| key_err("comment", e))?;
    }
    Ok(GroupConfig {
        nodes,
        restricted: flag("restricted")?,
        nofailback: flag("nofailback")?,
        comment,
    })
}

/// Parses groups.cfg text. Unknown keys, bad values and duplicate ids are
/// errors with the line of the offending key (or of the header).
pub fn parse_groups(text: &str) -> Result<Groups, ConfigError> {
    let mut groups = Groups::new();
    for s in section::parse(text)? {
        let group = group_from_section(&s)?;
        if groups.insert(s.id.clone(), group).is_some() {
            return Err(ConfigError::at(s.line, format!("duplicate group id '{}'", s.id)));
        }
    }
    Ok(groups)
}

/// Renders groups canonically (see the module documentation).
pub fn write_groups(groups: &Groups) -> String {
    let sections: Vec<Section> = groups
        .iter()
        .map(|(id, g)| {
            let mut s = Section::new("group", id);
            if let Some(comment) = g.comment.as_deref().filter(|c| !c.is_empty()) {
                s.push("comment", comment);
            }
            s.push("nodes", format_node_list(&g.nodes));
            if g.nofailback {
                s.push("nofailback", "1");
            }
            if g.restricted {
                s.push("restricted", "1");
            }
            s
        })
        .collect();
    section::write(&sections)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const CANONICAL: &str = "group: edge\n\tnodes node4,node5\n\trestricted 1\n\n\
                             group: prefer_node1\n\tcomment Prefer node1: it has the fast disks\n\
                             \tnodes node1:2,node2:1,node3\n\tnofailback 1\n\trestricted 1\n\n\
                             group: spread\n\tnodes node1,node2,node3\n\n";

    #[test]
    fn canonical_text_round_trips_byte_for_byte() {
        let groups = parse_groups(CANONICAL).unwrap();
        assert_eq!(groups.len(), 3);
        let g = &groups["prefer_node1"];
        assert_eq!(
            g.nodes,
            BTreeMap::from([("node1".into(), 2), ("node2".into(), 1), ("node3".into(), 0)])
        );
        assert!(g.restricted && g.nofailback);
        assert_eq!(g.comment.as_deref(), Some("Prefer node1: it has the fast disks"));
        assert!(!groups["spread"].restricted && !groups["spread"].nofailback);
        assert_eq!(write_groups(&groups), CANONICAL);
        assert_eq!(parse_groups(&write_groups(&groups)).unwrap(), groups);
    }

    #[test]
    fn non_canonical_text_parses_and_normalises() {
        let text = "# legacy\ngroup: g2\n    restricted 0\n    nodes node3:1 node1\n    nofailback yes\n\ngroup: g1\n\tnodes n1\n\trestricted\n";
        let groups = parse_groups(text).unwrap();
        assert!(!groups["g2"].restricted);
        assert!(groups["g2"].nofailback);
        assert!(groups["g1"].restricted);
        let written = write_groups(&groups);
        assert_eq!(
            written,
            "group: g1\n\tnodes n1\n\trestricted 1\n\ngroup: g2\n\tnodes node1,node3:1\n\tnofailback 1\n\n"
        );
        assert_eq!(parse_groups(&written).unwrap(), groups);
        assert_eq!(parse_groups("").unwrap(), Groups::new());
        assert_eq!(write_groups(&Groups::new()), "");
    }

    #[test]
    fn bad_inputs_name_line_and_key() {
        let long = format!("group: g1\n\tnodes n1\n\tcomment {}\n", "x".repeat(4097));
        let cases: Vec<(&str, &str, Option<&str>)> = vec![
            (
                "group: g1\n\tnodes n1\n\tcolour red\n",
                "line 3: group 'g1': key 'colour': unknown key",
                Some("colour"),
            ),
            (
                "group: g1\n\tcomment no nodes\n",
                "line 1: group 'g1': key 'nodes': missing (required)",
                Some("nodes"),
            ),
            (
                "group: g1\n\trestricted 1\n\tnodes node_1\n",
                "line 3: group 'g1': key 'nodes': invalid node name in 'node_1'",
                Some("nodes"),
            ),
            (
                "group: g1\n\tnodes n1:high\n",
                "line 2: group 'g1': key 'nodes': invalid priority in 'n1:high' (expected a non-negative integer)",
                Some("nodes"),
            ),
            (
                "group: g1\n\tnodes n1,n2,n1:3\n",
                "line 2: group 'g1': key 'nodes': node 'n1' is listed twice",
                Some("nodes"),
            ),
            (
                "group: g1\n\tnodes n1\n\n\n\tnofailback\n",
                "line 5: property outside of a section",
                None,
            ),
            (
                "group: g1\n\tnodes n1\n\trestricted maybe\n",
                "line 3: group 'g1': key 'restricted': expected a boolean (0 or 1), got 'maybe'",
                Some("restricted"),
            ),
            (
                "group: g1\n\tnodes n1\n\tcomment\n",
                "line 3: group 'g1': key 'comment': missing value",
                Some("comment"),
            ),
            (
                "group: g1\n\tnodes\n",
                "line 2: group 'g1': key 'nodes': missing value",
                Some("nodes"),
            ),
            (
                &long,
                "line 3: group 'g1': key 'comment': too long (4097 characters, at most 4096)",
                Some("comment"),
            ),
            (
                "pool: g\n\tnodes n1\n",
                "line 1: unknown section type 'pool' (expected 'group')",
                None,
            ),
            ("group: 1g\n\tnodes n1\n", "line 1: invalid group id '1g'", None),
            (
                "group: g1\n\tnodes n1\n\ngroup: g1\n\tnodes n2\n",
                "line 4: duplicate group id 'g1'",
                None,
            ),
            (
                "group: g1\n\tnodes n1\n\tnodes n2\n",
                "line 3: duplicate key 'nodes' (first on line 2)",
                None,
            ),
        ];
        for (text, message, key) in cases {
            let err = parse_groups(text).unwrap_err();
            assert_eq!(err.to_string(), message, "{text:?}");
            assert_eq!(err.key.as_deref(), key, "{text:?}");
        }
    }
}
