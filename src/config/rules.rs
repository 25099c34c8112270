//! `rules.cfg` text ↔ the core's typed [`Rule`]s: strict parsing with
//! line numbers, and upstream's canonical layout on write (byte-stable for
//! canonical text). The checks and compilation are the core's
//! (`core::rules`).

use std::collections::BTreeSet;

use super::section::{self, Section};
use super::value;
use crate::core::rules::{Rule, RuleKind, RulesError};
use crate::core::types::split_sid;

const COMMON_KEYS: &[&str] = &["comment", "disable", "resources"];

/// A rule's `resources`: a list of `type:name` ids. Upstream's decoder drops
/// invalid entries, but its schema check rejects the whole value first;
/// either way an invalid entry must not silently shrink the rule, so it is
/// an error here.
fn parse_resource_list(text: &str) -> Result<BTreeSet<String>, String> {
    let mut resources = BTreeSet::new();
    for entry in value::split_list(text) {
        if split_sid(entry).is_none() {
            return Err(format!("invalid resource id '{entry}' (expected <type>:<name>)"));
        }
        resources.insert(entry.to_string());
    }
    if resources.is_empty() {
        return Err("no resources given".to_string());
    }
    Ok(resources)
}

fn rule_from_section(s: &Section, order: usize) -> Result<Rule, RulesError> {
    let header_err = |message: String| RulesError { line: s.line, message };
    if !value::is_config_id(&s.id) {
        return Err(header_err(format!("invalid rule id '{}'", s.id)));
    }
    let (own_keys, booleans): (&[&str], &[&str]) = match s.kind.as_str() {
        "node-affinity" => (&["nodes", "strict"], &["disable", "strict"]),
        "resource-affinity" => (&["affinity"], &["disable"]),
        other => {
            return Err(header_err(format!(
                "unknown rule type '{other}' (expected node-affinity or resource-affinity)"
            )));
        }
    };
    // Errors about a key point at that key's line (the header's when the
    // key is missing) and name the key.
    let key_err = |key: &str, detail: String| RulesError {
        line: s.line_of(key),
        message: format!("rule '{}': key '{key}': {detail}", s.id),
    };
    for p in &s.properties {
        if !COMMON_KEYS.contains(&p.key.as_str()) && !own_keys.contains(&p.key.as_str()) {
            return Err(RulesError {
                line: p.line,
                message: format!("rule '{}': unknown key '{}' for type '{}'", s.id, p.key, s.kind),
            });
        }
        if p.bare && !booleans.contains(&p.key.as_str()) {
            return Err(key_err(&p.key, "missing value".to_string()));
        }
    }
    let required = |key: &str| {
        s.get(key).ok_or_else(|| RulesError {
            line: s.line,
            message: format!("rule '{}': missing key '{key}'", s.id),
        })
    };
    let boolean = |key: &str| match s.get(key) {
        None => Ok(None),
        Some(v) => value::parse_bool(v)
            .map(Some)
            .ok_or_else(|| key_err(key, format!("expected a boolean (0 or 1), got '{v}'"))),
    };
    let resources = parse_resource_list(required("resources")?).map_err(|e| key_err("resources", e))?;
    let kind = if s.kind == "node-affinity" {
        let nodes = value::parse_node_list(required("nodes")?).map_err(|e| key_err("nodes", e))?;
        let strict = boolean("strict")?.unwrap_or(false);
        RuleKind::NodeAffinity { nodes, strict }
    } else {
        let positive = match required("affinity")? {
            "positive" => true,
            "negative" => false,
            other => {
                return Err(key_err(
                    "affinity",
                    format!("expected positive or negative, got '{other}'"),
                ));
            }
        };
        RuleKind::ResourceAffinity { positive }
    };
    // A present `disable` disables the rule whatever its value [quirk]; a
    // value that is not a boolean is still an error.
    let disabled = boolean("disable")?.is_some();
    let comment = match s.get("comment") {
        None => None,
        Some(raw) => {
            value::check_comment(raw).map_err(|e| key_err("comment", e))?;
            Some(value::decode_text(raw))
        }
    };
    Ok(Rule {
        id: s.id.clone(),
        kind,
        resources,
        disabled,
        comment,
        order,
    })
}

/// Parses rules.cfg text. Unknown keys, bad values and duplicate ids are
/// errors with the line of the offending key (or of the header) and the
/// key's name. Comments are text-decoded (pve-common `decode_text`).
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, RulesError> {
    let sections = section::parse(text).map_err(|e| RulesError {
        line: e.line,
        message: e.message,
    })?;
    let mut rules: Vec<Rule> = Vec::new();
    for (index, s) in sections.iter().enumerate() {
        let rule = rule_from_section(s, index + 1)?;
        if let Some(first) = rules.iter().position(|r| r.id == rule.id) {
            return Err(RulesError {
                line: s.line,
                message: format!(
                    "duplicate rule id '{}' (first on line {})",
                    rule.id, sections[first].line
                ),
            });
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// Renders rules canonically, in the given order, as upstream's
/// `write_config` does: the header, `comment` (text-encoded, if non-empty),
/// `disable` as a bare flag when disabled, then the keys sorted —
/// node-affinity: `nodes` (sorted, `:prio` omitted when 0), `resources`,
/// `strict 1` only when strict; resource-affinity: `affinity`,
/// `resources` — with `resources` sorted and comma-joined; one blank line
/// after every rule. `order` is not written: it is the position in the file.
pub fn write_rules(rules: &[Rule]) -> String {
    let sections: Vec<Section> = rules
        .iter()
        .map(|rule| {
            let kind = match rule.kind {
                RuleKind::NodeAffinity { .. } => "node-affinity",
                RuleKind::ResourceAffinity { .. } => "resource-affinity",
            };
            let mut s = Section::new(kind, &rule.id);
            if let Some(comment) = rule.comment.as_deref().filter(|c| !c.is_empty()) {
                s.push("comment", value::encode_text(comment));
            }
            if rule.disabled {
                s.push_flag("disable");
            }
            let resources = rule.resources.iter().cloned().collect::<Vec<_>>().join(",");
            match &rule.kind {
                RuleKind::NodeAffinity { nodes, strict } => {
                    s.push("nodes", value::format_node_list(nodes));
                    s.push("resources", resources);
                    if *strict {
                        s.push("strict", "1");
                    }
                }
                RuleKind::ResourceAffinity { positive } => {
                    s.push("affinity", if *positive { "positive" } else { "negative" });
                    s.push("resources", resources);
                }
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
    use crate::core::rules::RuleKind;

    #[test]
    fn parses_both_rule_types() {
        let text = "node-affinity: na1\n\tnodes node1:2,node2\n\tresources vm:101\n\tstrict 1\n\n\
                    resource-affinity: ra1\n\tresources vm:101,vm:102\n\taffinity negative\n\tdisable\n";
        let rules = parse_rules(text).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].resources, BTreeSet::from(["vm:101".to_string()]));
        assert_eq!(
            rules[0].kind,
            RuleKind::NodeAffinity {
                nodes: BTreeMap::from([("node1".into(), 2), ("node2".into(), 0)]),
                strict: true
            }
        );
        assert!(rules[1].disabled);
        assert_eq!(rules[1].order, 2);
    }

    const CANONICAL: &str = "node-affinity: db-on-fast-nodes\n\tcomment Databases%3A fast disks only\n\
                             \tnodes node1:2,node2:1,node3\n\tresources ct:200,vm:101,vm:102\n\tstrict 1\n\n\
                             resource-affinity: web-apart\n\tdisable\n\taffinity negative\n\tresources vm:201,vm:202\n\n\
                             node-affinity: prefer-node2\n\tnodes node2\n\tresources vm:300\n\n\
                             resource-affinity: keep-together\n\taffinity positive\n\tresources ct:200,vm:300\n\n";

    #[test]
    fn canonical_text_round_trips_byte_for_byte() {
        let rules = parse_rules(CANONICAL).unwrap();
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[0].comment.as_deref(), Some("Databases: fast disks only"));
        assert!(rules[1].disabled);
        assert_eq!(write_rules(&rules), CANONICAL);
        assert_eq!(parse_rules(&write_rules(&rules)).unwrap(), rules);
        assert_eq!(write_rules(&[]), "");
    }

    #[test]
    fn non_canonical_text_is_normalised() {
        let text = "# upstream test style\nresource-affinity: r1\n    resources vm:3 vm:1;vm:2\n    affinity positive\n    comment a:b\n\
                    node-affinity: n1\n    strict 0\n    resources vm:1\n    nodes node3,node1:0,node2:5\n    disable 0\n";
        let rules = parse_rules(text).unwrap();
        let written = write_rules(&rules);
        assert_eq!(
            written,
            "resource-affinity: r1\n\tcomment a%3Ab\n\taffinity positive\n\tresources vm:1,vm:2,vm:3\n\n\
             node-affinity: n1\n\tdisable\n\tnodes node1,node2:5,node3\n\tresources vm:1\n\n"
        );
        assert_eq!(parse_rules(&written).unwrap(), rules);
    }

    #[test]
    fn bad_inputs_name_line_and_key() {
        let long = format!(
            "resource-affinity: r1\n\taffinity positive\n\tresources vm:1,vm:2\n\tcomment {}\n",
            "x".repeat(4097)
        );
        let cases: Vec<(&str, &str)> = vec![
            (
                "resource-affinity: r1\n\tresources vm:1,vm:2\n\t# note\n\taffinity maybe\n",
                "line 4: rule 'r1': key 'affinity': expected positive or negative, got 'maybe'",
            ),
            (
                "node-affinity: n1\n\tnodes node1\n\tresources vm:1\n\tcolour red\n",
                "line 4: rule 'n1': unknown key 'colour' for type 'node-affinity'",
            ),
            (
                "resource-affinity: r1\n\tresources vm:1,vm:2\n\taffinity positive\n\tstrict 1\n",
                "line 4: rule 'r1': unknown key 'strict' for type 'resource-affinity'",
            ),
            (
                "node-affinity: n1\n\tnodes node1\n\tresources vm:1,bogus\n",
                "line 3: rule 'n1': key 'resources': invalid resource id 'bogus' (expected <type>:<name>)",
            ),
            (
                "node-affinity: n1\n\tresources vm:1\n\tnodes node1,node_2\n",
                "line 3: rule 'n1': key 'nodes': invalid node name in 'node_2'",
            ),
            (
                "node-affinity: n1\n\tresources vm:1\n\tnodes node1:-1\n",
                "line 3: rule 'n1': key 'nodes': invalid priority in 'node1:-1' (expected a non-negative integer)",
            ),
            (
                "node-affinity: n1\n\tresources vm:1\n\tnodes node1,node1:2\n",
                "line 3: rule 'n1': key 'nodes': node 'node1' is listed twice",
            ),
            (
                "node-affinity: n1\n\tresources vm:1\n\tnodes node1\n\tstrict yes please\n",
                "line 4: rule 'n1': key 'strict': expected a boolean (0 or 1), got 'yes please'",
            ),
            (
                "node-affinity: n1\n\tresources vm:1\n\tnodes node1\n\tdisable later\n",
                "line 4: rule 'n1': key 'disable': expected a boolean (0 or 1), got 'later'",
            ),
            (
                "node-affinity: n1\n\tresources vm:1\n\tnodes\n",
                "line 3: rule 'n1': key 'nodes': missing value",
            ),
            (
                "node-affinity: n1\n\tresources vm:1\n",
                "line 1: rule 'n1': missing key 'nodes'",
            ),
            (
                "resource-affinity: r1\n\taffinity positive\n",
                "line 1: rule 'r1': missing key 'resources'",
            ),
            (
                "resource-affinity: r1\n\tresources vm:1,vm:2\n",
                "line 1: rule 'r1': missing key 'affinity'",
            ),
            (
                &long,
                "line 4: rule 'r1': key 'comment': too long (4097 characters, at most 4096)",
            ),
            (
                "location: r1\n\tresources vm:1\n",
                "line 1: unknown rule type 'location' (expected node-affinity or resource-affinity)",
            ),
            (
                "node-affinity: 1st\n\tresources vm:1\n",
                "line 1: invalid rule id '1st'",
            ),
            (
                "resource-affinity: r1\n\taffinity positive\n\tresources vm:1,vm:2\n\n\
                 resource-affinity: r1\n\taffinity negative\n\tresources vm:1,vm:2\n",
                "line 5: duplicate rule id 'r1' (first on line 1)",
            ),
            (
                "resource-affinity: r1\n\taffinity positive\n\taffinity negative\n",
                "line 3: duplicate key 'affinity' (first on line 2)",
            ),
        ];
        for (text, message) in cases {
            let err = parse_rules(text).unwrap_err();
            assert_eq!(err.to_string(), message, "{text:?}");
        }
    }
}
