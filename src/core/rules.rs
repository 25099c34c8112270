//! HA placement rules (`rules.cfg`): node affinity and resource affinity,
//! their feasibility checks, transformations and compilation (spec §5.6).
//!
//! Pure: parses text, checks and compiles; the manager decides when.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::config::section::{self, Section};

use super::select::{CompiledRules, NodeAffinity};
use super::status::{Groups, ServiceConfig};
use super::types::{NodeName, split_sid};

/// What a rule constrains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// Keep the resources on these nodes (priority: higher is preferred).
    NodeAffinity {
        nodes: BTreeMap<NodeName, i64>,
        strict: bool,
    },
    /// Keep the resources together (`positive`) or apart (`negative`).
    ResourceAffinity { positive: bool },
}

/// One rule of `rules.cfg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub kind: RuleKind,
    pub resources: BTreeSet<String>,
    /// A present `disable` key disables the rule, whatever its value **[quirk]**.
    pub disabled: bool,
    pub comment: Option<String>,
    /// 1-based position in the file.
    pub order: usize,
}

impl Rule {
    fn is_positive(&self) -> bool {
        matches!(self.kind, RuleKind::ResourceAffinity { positive: true })
    }

    fn is_negative(&self) -> bool {
        matches!(self.kind, RuleKind::ResourceAffinity { positive: false })
    }

    fn is_node_affinity(&self) -> bool {
        matches!(self.kind, RuleKind::NodeAffinity { .. })
    }

    fn priorities(&self) -> BTreeSet<i64> {
        match &self.kind {
            RuleKind::NodeAffinity { nodes, .. } => nodes.values().copied().collect(),
            RuleKind::ResourceAffinity { .. } => BTreeSet::new(),
        }
    }
}

/// A rules.cfg problem at a line, naming the key where one is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn is_config_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "yes" | "on" | "true" => Some(true),
        "0" | "no" | "off" | "false" => Some(false),
        _ => None,
    }
}

/// Parses `nodes node1:2,node2` into node → priority (default 0).
pub fn parse_node_list(text: &str) -> Result<BTreeMap<NodeName, i64>, String> {
    let mut nodes = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (node, priority) = match entry.split_once(':') {
            Some((n, p)) => (
                n,
                p.parse::<i64>().map_err(|_| format!("invalid priority in '{entry}'"))?,
            ),
            None => (entry, 0),
        };
        let valid = !node.is_empty()
            && node.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !node.starts_with('-')
            && !node.ends_with('-');
        if !valid || priority < 0 {
            return Err(format!("invalid node entry '{entry}'"));
        }
        nodes.insert(node.to_string(), priority);
    }
    if nodes.is_empty() {
        return Err("no nodes given".to_string());
    }
    Ok(nodes)
}

fn rule_from_section(s: &Section, order: usize) -> Result<Rule, RulesError> {
    let err = |message: String| RulesError { line: s.line, message };
    if !is_config_id(&s.id) {
        return Err(err(format!("invalid rule id '{}'", s.id)));
    }
    let allowed: &[&str] = match s.kind.as_str() {
        "node-affinity" => &["resources", "nodes", "strict", "disable", "comment"],
        "resource-affinity" => &["resources", "affinity", "disable", "comment"],
        other => return Err(err(format!("unknown rule type '{other}'"))),
    };
    for (key, _) in &s.properties {
        if !allowed.contains(&key.as_str()) {
            return Err(err(format!(
                "rule '{}': unknown key '{key}' for type '{}'",
                s.id, s.kind
            )));
        }
    }
    let resources_text = s
        .get("resources")
        .ok_or_else(|| err(format!("rule '{}': missing key 'resources'", s.id)))?;
    // Invalid entries are dropped, as upstream's parser does.
    let resources = resources_text
        .split(',')
        .map(str::trim)
        .filter(|r| split_sid(r).is_some())
        .map(str::to_string)
        .collect();
    let kind = if s.kind == "node-affinity" {
        let nodes_text = s
            .get("nodes")
            .ok_or_else(|| err(format!("rule '{}': missing key 'nodes'", s.id)))?;
        let nodes = parse_node_list(nodes_text).map_err(|e| err(format!("rule '{}': key 'nodes': {e}", s.id)))?;
        let strict = match s.get("strict") {
            None => false,
            Some(v) => {
                parse_bool(v).ok_or_else(|| err(format!("rule '{}': key 'strict': invalid boolean '{v}'", s.id)))?
            }
        };
        RuleKind::NodeAffinity { nodes, strict }
    } else {
        let affinity = s
            .get("affinity")
            .ok_or_else(|| err(format!("rule '{}': missing key 'affinity'", s.id)))?;
        let positive = match affinity {
            "positive" => true,
            "negative" => false,
            other => {
                return Err(err(format!(
                    "rule '{}': key 'affinity': expected positive or negative, got '{other}'",
                    s.id
                )));
            }
        };
        RuleKind::ResourceAffinity { positive }
    };
    Ok(Rule {
        id: s.id.clone(),
        kind,
        resources,
        disabled: s.get("disable").is_some(),
        comment: s.get("comment").map(str::to_string),
        order,
    })
}

/// Parses rules.cfg text. Unknown keys and bad values are errors.
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, RulesError> {
    let sections = section::parse(text).map_err(|e| RulesError {
        line: e.line,
        message: e.message,
    })?;
    let mut rules: Vec<Rule> = Vec::new();
    for (index, s) in sections.iter().enumerate() {
        let rule = rule_from_section(s, index + 1)?;
        if rules.iter().any(|r| r.id == rule.id) {
            return Err(RulesError {
                line: s.line,
                message: format!("duplicate rule id '{}'", rule.id),
            });
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// The in-memory node-affinity rules of legacy groups: one `ha-group-<G>`
/// per group used by at least one resource.
pub fn rules_from_groups(groups: &Groups, services: &ServiceConfig, first_order: usize) -> Vec<Rule> {
    let mut rules = Vec::new();
    for (id, group) in groups {
        let resources: BTreeSet<String> = services
            .iter()
            .filter(|(_, cd)| cd.group.as_deref() == Some(id))
            .map(|(sid, _)| sid.clone())
            .collect();
        if resources.is_empty() {
            continue;
        }
        rules.push(Rule {
            id: format!("ha-group-{id}"),
            kind: RuleKind::NodeAffinity {
                nodes: group.nodes.clone(),
                strict: group.restricted,
            },
            resources,
            disabled: false,
            comment: Some(
                group
                    .comment
                    .clone()
                    .unwrap_or_else(|| format!("Generated from HA group '{id}'.")),
            ),
            order: first_order + rules.len(),
        });
    }
    rules
}

/// Connected components of the positive resource-affinity rules: each is
/// (rule indices, union of their resources).
fn positive_components(rules: &[Rule]) -> Vec<(Vec<usize>, BTreeSet<String>)> {
    let mut components: Vec<(Vec<usize>, BTreeSet<String>)> = Vec::new();
    for (index, rule) in rules.iter().enumerate().filter(|(_, r)| r.is_positive()) {
        let mut merged = (vec![index], rule.resources.clone());
        let mut rest = Vec::new();
        for component in components.drain(..) {
            if component.1.is_disjoint(&merged.1) {
                rest.push(component);
            } else {
                merged.0.extend(component.0);
                merged.1.extend(component.1);
            }
        }
        merged.0.sort_unstable();
        rest.push(merged);
        components = rest;
    }
    components.sort_by(|a, b| a.1.iter().next().cmp(&b.1.iter().next()));
    components
}

/// Runs the feasibility checks, drops every offending rule, then applies
/// the transformations. Returns the kept rules, the log messages
/// (`Drop rule '<id>', because <message>.`, sorted) and the positive
/// components used for compilation.
pub fn transform(rules: &[Rule], nodes: &[NodeName]) -> (Vec<Rule>, Vec<String>) {
    let enabled: Vec<Rule> = rules.iter().filter(|r| !r.disabled).cloned().collect();
    let mut errors: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut blame = |rule: &Rule, message: &str| {
        errors.entry(rule.id.clone()).or_default().insert(message.to_string());
    };

    // node affinity: a resource in at most one rule
    let node_rules: Vec<&Rule> = enabled.iter().filter(|r| r.is_node_affinity()).collect();
    for (i, a) in node_rules.iter().enumerate() {
        for b in node_rules.iter().skip(i + 1) {
            if let Some(sid) = a.resources.intersection(&b.resources).next() {
                let message = format!("resource '{sid}' is already used in another node affinity rule");
                blame(a, &message);
                blame(b, &message);
            }
        }
    }
    // resource affinity on its own
    for rule in enabled.iter().filter(|r| !r.is_node_affinity()) {
        if rule.resources.len() < 2 {
            blame(rule, "rule is ineffective as there are less than two resources");
        }
        if rule.is_negative() && rule.resources.len() > nodes.len() {
            blame(rule, "rule defines more resources than available nodes");
        }
    }
    let components = positive_components(&enabled);
    for negative in enabled.iter().filter(|r| r.is_negative()) {
        for (members, resources) in &components {
            if negative.resources.intersection(resources).count() >= 2 {
                blame(
                    negative,
                    "rule shares two or more resources with a positive resource affinity rule",
                );
                for &m in members {
                    blame(
                        &enabled[m],
                        "rule shares two or more resources with a negative resource affinity rule",
                    );
                }
            }
        }
    }
    // resource affinity against node affinity
    for affinity in enabled.iter().filter(|r| !r.is_node_affinity()) {
        for node_rule in &node_rules {
            if node_rule.priorities().len() > 1 && !affinity.resources.is_disjoint(&node_rule.resources) {
                blame(
                    node_rule,
                    "resources are in a resource affinity rule and cannot be in a node affinity rule with multiple priorities",
                );
                blame(
                    affinity,
                    "resources are in node affinity rules with multiple priorities",
                );
            }
        }
    }
    for (members, resources) in &components {
        let overlapping: Vec<&&Rule> = node_rules
            .iter()
            .filter(|r| !r.resources.is_disjoint(resources))
            .collect();
        if overlapping.len() > 1 {
            for &m in members {
                blame(&enabled[m], "resources are in multiple node affinity rules");
            }
            for node_rule in overlapping {
                blame(
                    node_rule,
                    "at least one resource is in a positive resource affinity rule and there are other resources in at least one other node affinity rule already",
                );
            }
        }
    }
    for negative in enabled.iter().filter(|r| r.is_negative()) {
        let mut restricted = 0;
        let mut allowed_nodes = BTreeSet::new();
        let mut involved = Vec::new();
        for node_rule in &node_rules {
            let RuleKind::NodeAffinity {
                nodes: rule_nodes,
                strict: true,
            } = &node_rule.kind
            else {
                continue;
            };
            let shared = negative.resources.intersection(&node_rule.resources).count();
            if shared > 0 {
                restricted += shared;
                allowed_nodes.extend(rule_nodes.keys().cloned());
                involved.push(*node_rule);
            }
        }
        if restricted >= 2 && allowed_nodes.len() < restricted {
            blame(
                negative,
                "two or more resources are restricted to less nodes than available to the resources",
            );
            for node_rule in involved {
                blame(
                    node_rule,
                    "at least one resource is in a negative resource affinity rule and this rule would restrict these to less nodes than available to the resources",
                );
            }
        }
    }

    let mut messages = Vec::new();
    for (id, reasons) in &errors {
        for reason in reasons {
            messages.push(format!("Drop rule '{id}', because {reason}."));
        }
    }
    let kept: Vec<Rule> = enabled.into_iter().filter(|r| !errors.contains_key(&r.id)).collect();
    (kept, messages)
}

/// Compiles checked rules for [`super::select::select_service_node`]:
/// positive sets merged, implicit negatives derived, positive sets joined
/// into the node-affinity rule of any member, non-strict rules widened to
/// every known node at priority -1.
pub fn compile(rules: &[Rule], nodes: &[NodeName]) -> CompiledRules {
    let mut compiled = CompiledRules::default();
    let components = positive_components(rules);
    for (_, members) in &components {
        for sid in members {
            let others: BTreeSet<String> = members.iter().filter(|m| *m != sid).cloned().collect();
            compiled.positive.entry(sid.clone()).or_default().extend(others);
        }
    }
    let add_negative = |compiled: &mut CompiledRules, a: &str, b: &str| {
        compiled
            .negative
            .entry(a.to_string())
            .or_default()
            .insert(b.to_string());
        compiled
            .negative
            .entry(b.to_string())
            .or_default()
            .insert(a.to_string());
    };
    for rule in rules.iter().filter(|r| r.is_negative()) {
        let members: Vec<&String> = rule.resources.iter().collect();
        for (i, a) in members.iter().enumerate() {
            for b in members.iter().skip(i + 1) {
                add_negative(&mut compiled, a, b);
            }
        }
    }
    // Implicit negatives: a partner kept apart from one member of a
    // positive set is kept apart from all of them.
    let explicit = compiled.negative.clone();
    for (_, members) in &components {
        for a in members {
            for c in explicit.get(a).into_iter().flatten() {
                if members.contains(c) {
                    continue;
                }
                for b in members.iter().filter(|b| *b != a) {
                    add_negative(&mut compiled, b, c);
                }
            }
        }
    }
    for rule in rules {
        let RuleKind::NodeAffinity {
            nodes: rule_nodes,
            strict,
        } = &rule.kind
        else {
            continue;
        };
        let mut resources = rule.resources.clone();
        for (_, members) in &components {
            if !members.is_disjoint(&rule.resources) {
                resources.extend(members.iter().cloned());
            }
        }
        let mut allowed = rule_nodes.clone();
        if !strict {
            for node in nodes {
                allowed.entry(node.clone()).or_insert(-1);
            }
        }
        for sid in resources {
            compiled
                .node_affinity
                .insert(sid, NodeAffinity { nodes: allowed.clone() });
        }
    }
    compiled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<NodeName> {
        vec!["node1".into(), "node2".into(), "node3".into()]
    }

    #[test]
    fn parses_both_rule_types() {
        let text = "node-affinity: na1\n\tnodes node1:2,node2\n\tresources vm:101,bogus\n\tstrict 1\n\n\
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
    }

    #[test]
    fn unknown_keys_and_values_are_errors_with_lines() {
        let err = parse_rules("resource-affinity: r\n\tresources vm:1,vm:2\n\taffinity maybe\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("affinity"), "{}", err.message);
        let err = parse_rules("node-affinity: n\n\tnodes node1\n\tresources vm:1\n\tcolour red\n").unwrap_err();
        assert!(err.message.contains("unknown key 'colour'"), "{}", err.message);
    }

    #[test]
    fn conflicting_positive_and_negative_rules_are_both_dropped() {
        let text = "resource-affinity: together\n\tresources ct:228,vm:140\n\taffinity positive\n\n\
                    resource-affinity: apart\n\tresources ct:228,vm:140\n\taffinity negative\n";
        let rules = parse_rules(text).unwrap();
        let (kept, messages) = transform(&rules, &nodes());
        assert!(kept.is_empty());
        assert_eq!(
            messages,
            vec![
                "Drop rule 'apart', because rule shares two or more resources with a positive resource affinity rule.",
                "Drop rule 'together', because rule shares two or more resources with a negative resource affinity rule.",
            ]
        );
    }

    #[test]
    fn compile_merges_positive_sets_and_derives_implicit_negatives() {
        let text = "resource-affinity: p1\n\tresources vm:1,vm:2\n\taffinity positive\n\n\
                    resource-affinity: p2\n\tresources vm:2,vm:3\n\taffinity positive\n\n\
                    resource-affinity: n1\n\tresources vm:3,vm:9\n\taffinity negative\n";
        let rules = parse_rules(text).unwrap();
        let (kept, messages) = transform(&rules, &nodes());
        assert!(messages.is_empty(), "{messages:?}");
        let compiled = compile(&kept, &nodes());
        assert_eq!(
            compiled.positive["vm:1"],
            BTreeSet::from(["vm:2".to_string(), "vm:3".to_string()])
        );
        assert!(compiled.negative["vm:9"].contains("vm:1"));
        assert!(compiled.negative["vm:1"].contains("vm:9"));
    }

    #[test]
    fn non_strict_rules_fall_back_to_every_node() {
        let rules = parse_rules("node-affinity: n\n\tnodes node3\n\tresources vm:101\n").unwrap();
        let compiled = compile(&rules, &nodes());
        let nodes = &compiled.node_affinity["vm:101"].nodes;
        assert_eq!(nodes["node3"], 0);
        assert_eq!(nodes["node1"], -1);
    }
}
