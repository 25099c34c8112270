//! HA placement rules (`rules.cfg`): node affinity and resource affinity,
//! their feasibility checks, transformations and compilation (spec §5.6).
//!
//! Pure: checks and compiles typed rules; the text format is
//! `config::rules`'s, and the manager decides when.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::select::{CompiledRules, NodeAffinity};
use super::status::{Groups, ServiceConfig};
use super::types::NodeName;

/// What a rule constrains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

impl std::error::Error for RulesError {}

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

/// The feasibility checks' verdict on one set of rules (spec §5.6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Dropped rule id → its messages, in check order (each at most once).
    pub dropped: BTreeMap<String, Vec<String>>,
}

impl Verdict {
    fn blame(&mut self, rule: &Rule, message: impl Into<String>) {
        let message = message.into();
        let messages = self.dropped.entry(rule.id.clone()).or_default();
        if !messages.contains(&message) {
            messages.push(message);
        }
    }

    /// Upstream's log lines, `Drop rule '<id>', because <message>.`: rule
    /// ids sorted, each rule's messages in check order (all of them concern
    /// one option, `resources`, so sorting options changes nothing).
    pub fn log_lines(&self) -> Vec<String> {
        self.dropped
            .iter()
            .flat_map(|(id, reasons)| {
                reasons
                    .iter()
                    .map(move |reason| format!("Drop rule '{id}', because {reason}."))
            })
            .collect()
    }
}

/// Runs every feasibility check over the enabled rules, in upstream's
/// order: node-affinity checks, resource-affinity checks, then the global
/// ones. Disabled rules take no part.
pub fn check(rules: &[Rule], nodes: &[NodeName]) -> Verdict {
    let enabled: Vec<&Rule> = rules.iter().filter(|r| !r.disabled).collect();
    let node_rules: Vec<&Rule> = enabled.iter().copied().filter(|r| r.is_node_affinity()).collect();
    let mut verdict = Verdict::default();

    // node affinity: a resource in at most one rule; every rule holding a
    // shared resource is blamed once per shared resource.
    let mut holders: BTreeMap<&str, Vec<&Rule>> = BTreeMap::new();
    for rule in &node_rules {
        for sid in &rule.resources {
            holders.entry(sid.as_str()).or_default().push(rule);
        }
    }
    let mut shared: Vec<(&str, &str)> = holders
        .iter()
        .filter(|(_, rules)| rules.len() > 1)
        .flat_map(|(sid, rules)| rules.iter().map(move |r| (r.id.as_str(), *sid)))
        .collect();
    shared.sort_unstable();
    for (id, sid) in shared {
        let rule = node_rules.iter().find(|r| r.id == id).expect("holder is a node rule");
        verdict.blame(
            rule,
            format!("resource '{sid}' is already used in another node affinity rule"),
        );
    }

    // resource affinity on its own
    for rule in enabled.iter().filter(|r| !r.is_node_affinity()) {
        if rule.resources.len() < 2 {
            verdict.blame(rule, "rule is ineffective as there are less than two resources");
        }
    }
    for rule in enabled.iter().filter(|r| r.is_negative()) {
        if rule.resources.len() > nodes.len() {
            verdict.blame(rule, "rule defines more resources than available nodes");
        }
    }
    let owned: Vec<Rule> = enabled.iter().map(|r| (*r).clone()).collect();
    let components = positive_components(&owned);
    for negative in enabled.iter().filter(|r| r.is_negative()) {
        for (members, resources) in &components {
            if negative.resources.intersection(resources).count() >= 2 {
                verdict.blame(
                    negative,
                    "rule shares two or more resources with a positive resource affinity rule",
                );
                for &m in members {
                    verdict.blame(
                        &owned[m],
                        "rule shares two or more resources with a negative resource affinity rule",
                    );
                }
            }
        }
    }

    // resource affinity against node affinity: if any node-affinity rule
    // the resource-affinity rule overlaps has several priorities, the
    // resource-affinity rule and every node-affinity rule it overlaps go.
    for affinity in enabled.iter().filter(|r| !r.is_node_affinity()) {
        let overlapping: Vec<&Rule> = node_rules
            .iter()
            .copied()
            .filter(|r| !affinity.resources.is_disjoint(&r.resources))
            .collect();
        if overlapping.iter().any(|r| r.priorities().len() > 1) {
            verdict.blame(
                affinity,
                "resources are in node affinity rules with multiple priorities",
            );
            for node_rule in overlapping {
                verdict.blame(
                    node_rule,
                    "resources are in a resource affinity rule and cannot be in a node affinity rule with multiple priorities",
                );
            }
        }
    }
    for (members, resources) in &components {
        let overlapping: Vec<&Rule> = node_rules
            .iter()
            .copied()
            .filter(|r| !r.resources.is_disjoint(resources))
            .collect();
        if overlapping.len() > 1 {
            for &m in members {
                verdict.blame(&owned[m], "resources are in multiple node affinity rules");
            }
            for node_rule in overlapping {
                verdict.blame(
                    node_rule,
                    "at least one resource is in a positive resource affinity rule and there are other resources in at least one other node affinity rule already",
                );
            }
        }
    }
    // A negative rule's resources that node-affinity rules (strict or not:
    // a non-strict rule still configures where they belong) confine to
    // fewer nodes than there are such resources cannot be kept apart there.
    for negative in enabled.iter().filter(|r| r.is_negative()) {
        let mut restricted = 0;
        let mut configured_nodes = BTreeSet::new();
        let mut involved = Vec::new();
        for node_rule in &node_rules {
            let RuleKind::NodeAffinity { nodes: rule_nodes, .. } = &node_rule.kind else {
                continue;
            };
            let shared = negative.resources.intersection(&node_rule.resources).count();
            if shared > 0 {
                restricted += shared;
                configured_nodes.extend(rule_nodes.keys().cloned());
                involved.push(*node_rule);
            }
        }
        if restricted >= 2 && configured_nodes.len() < restricted {
            verdict.blame(
                negative,
                "two or more resources are restricted to less nodes than available to the resources",
            );
            for node_rule in involved {
                verdict.blame(
                    node_rule,
                    "at least one resource is in a negative resource affinity rule and this rule would restrict these to less nodes than available to the resources",
                );
            }
        }
    }
    verdict
}

/// Runs the feasibility checks ([`check`]) and drops every offending rule.
/// Returns the kept (enabled) rules and the log messages
/// (`Drop rule '<id>', because <message>.`, see [`Verdict::log_lines`]).
pub fn transform(rules: &[Rule], nodes: &[NodeName]) -> (Vec<Rule>, Vec<String>) {
    let verdict = check(rules, nodes);
    let kept: Vec<Rule> = rules
        .iter()
        .filter(|r| !r.disabled && !verdict.dropped.contains_key(&r.id))
        .cloned()
        .collect();
    (kept, verdict.log_lines())
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

    fn affinity(id: &str, positive: bool, resources: &[&str], order: usize) -> Rule {
        Rule {
            id: id.into(),
            kind: RuleKind::ResourceAffinity { positive },
            resources: resources.iter().map(|r| r.to_string()).collect(),
            disabled: false,
            comment: None,
            order,
        }
    }

    #[test]
    fn conflicting_positive_and_negative_rules_are_both_dropped() {
        let rules = [
            affinity("together", true, &["ct:228", "vm:140"], 1),
            affinity("apart", false, &["ct:228", "vm:140"], 2),
        ];
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
        let rules = [
            affinity("p1", true, &["vm:1", "vm:2"], 1),
            affinity("p2", true, &["vm:2", "vm:3"], 2),
            affinity("n1", false, &["vm:3", "vm:9"], 3),
        ];
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
        let rules = [Rule {
            id: "n1".into(),
            kind: RuleKind::NodeAffinity {
                nodes: BTreeMap::from([("node3".into(), 0)]),
                strict: false,
            },
            resources: BTreeSet::from(["vm:101".to_string()]),
            disabled: false,
            comment: None,
            order: 1,
        }];
        let compiled = compile(&rules, &nodes());
        let nodes = &compiled.node_affinity["vm:101"].nodes;
        assert_eq!(nodes["node3"], 0);
        assert_eq!(nodes["node1"], -1);
    }
}
