//! `hactor-sim rules`: upstream's rules test for one `rules.cfg` (spec
//! §5.6) — the feasibility checks' log, the kept rules and the compiled
//! rules — against a given node list.
//!
//! ```text
//! --- Log ---
//! Drop rule '<id>', because <message>.      (upstream's wording and order)
//! --- Config ---
//! <the kept rules, written back with write_rules>
//! --- Compiled Config ---
//! node_affinity
//!     <sid>: <node>:<priority>,...            (sids and nodes sorted)
//! positive
//!     <sid>: <partner>,...
//! negative
//!     <sid>: <partner>,...
//! ```
//!
//! Only the `Log` section follows upstream byte for byte; the other two
//! use our own layout (indented lines start with a tab).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::config::rules::{parse_rules, write_rules};
use crate::config::value;
use crate::core::rules::{RulesError, compile, transform};
use crate::core::select::CompiledRules;
use crate::core::types::NodeName;

/// The node list `hactor-sim rules` checks against without `--nodes`.
pub fn default_nodes() -> Vec<NodeName> {
    vec!["node1".into(), "node2".into(), "node3".into()]
}

/// Parses a `--nodes` value (`node1,node2,...`): at least one node, valid
/// names, no duplicates.
pub fn parse_nodes(text: &str) -> Result<Vec<NodeName>, String> {
    let mut nodes: Vec<NodeName> = Vec::new();
    for node in value::split_list(text) {
        if !value::is_node_name(node) {
            return Err(format!("--nodes: invalid node name '{node}'"));
        }
        if nodes.iter().any(|n| n == node) {
            return Err(format!("--nodes: node '{node}' listed twice"));
        }
        nodes.push(node.to_string());
    }
    if nodes.is_empty() {
        return Err("--nodes: no node given".to_string());
    }
    Ok(nodes)
}

/// The report for one rules.cfg text; a parse error names the line (and
/// the key) and no report is produced.
pub fn report(text: &str, nodes: &[NodeName]) -> Result<String, RulesError> {
    let rules = parse_rules(text)?;
    let (kept, messages) = transform(&rules, nodes);
    let compiled = compile(&kept, nodes);
    let mut out = String::from("--- Log ---\n");
    for message in &messages {
        out.push_str(message);
        out.push('\n');
    }
    out.push_str("--- Config ---\n");
    out.push_str(&write_rules(&kept));
    out.push_str("--- Compiled Config ---\n");
    out.push_str(&dump_compiled(&compiled));
    Ok(out)
}

fn dump_sets(out: &mut String, title: &str, map: &BTreeMap<String, BTreeSet<String>>) {
    out.push_str(title);
    out.push('\n');
    for (sid, partners) in map {
        let partners: Vec<&str> = partners.iter().map(String::as_str).collect();
        let _ = writeln!(out, "\t{sid}: {}", partners.join(","));
    }
}

fn dump_compiled(compiled: &CompiledRules) -> String {
    let mut out = String::from("node_affinity\n");
    for (sid, affinity) in &compiled.node_affinity {
        let nodes: Vec<String> = affinity.nodes.iter().map(|(n, p)| format!("{n}:{p}")).collect();
        let _ = writeln!(out, "\t{sid}: {}", nodes.join(","));
    }
    dump_sets(&mut out, "positive", &compiled.positive);
    dump_sets(&mut out, "negative", &compiled.negative);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lists_are_checked() {
        assert_eq!(parse_nodes("a, b").unwrap(), vec!["a".to_string(), "b".to_string()]);
        assert!(parse_nodes("").unwrap_err().contains("no node"));
        assert!(parse_nodes("a,a").unwrap_err().contains("twice"));
        assert!(parse_nodes("a,b_c").unwrap_err().contains("invalid node name"));
    }

    #[test]
    fn the_node_list_decides_the_negative_count_check() {
        let text = "resource-affinity: apart\n\taffinity negative\n\tresources vm:1,vm:2,vm:3\n";
        let three = report(text, &default_nodes()).unwrap();
        assert!(three.starts_with("--- Log ---\n--- Config ---\nresource-affinity: apart\n"));
        let two = report(text, &parse_nodes("node1,node2").unwrap()).unwrap();
        assert!(two.starts_with(
            "--- Log ---\nDrop rule 'apart', because rule defines more resources than available nodes.\n--- Config ---\n--- Compiled"
        ));
    }

    #[test]
    fn a_parse_error_names_the_line() {
        let err = report(
            "resource-affinity: apart\n\taffinity sideways\n\tresources vm:1,vm:2\n",
            &default_nodes(),
        )
        .unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("affinity"), "{err}");
    }
}
