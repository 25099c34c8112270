//! HA placement rules (`rules.cfg`): node affinity and resource affinity,
//! their feasibility checks, transformations and compilation (spec §5.6).
//!
//! Pure: parses text, checks and compiles; the manager decides when.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::config::section::{self, Section};
use crate::config::value;

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

impl std::error::Error for RulesError {}

/// Parses `nodes node1:2,node2` into node → priority (default 0); see
/// [`crate::config::value::parse_node_list`].
pub fn parse_node_list(text: &str) -> Result<BTreeMap<NodeName, i64>, String> {
    value::parse_node_list(text)
}

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
        let rules = parse_rules("node-affinity: n1\n\tnodes node3\n\tresources vm:101\n").unwrap();
        let compiled = compile(&rules, &nodes());
        let nodes = &compiled.node_affinity["vm:101"].nodes;
        assert_eq!(nodes["node3"], 0);
        assert_eq!(nodes["node1"], -1);
    }
}
