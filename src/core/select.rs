//! Node selection for a service (upstream `select_service_node`) and the
//! usage model it scores with.
//!
//! Pure: takes the compiled placement rules, the usage of online nodes and
//! the service's status, returns a node or `None`.

use std::collections::{BTreeMap, BTreeSet};

use super::status::ServiceStatus;
use super::types::NodeName;
use super::usage::{Usage, used_service_nodes};

/// How hard `select_service_node` should try to keep the current node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// Stay on the current node if it is allowed.
    None,
    /// The best-scored allowed node.
    BestScore,
    /// The best-scored node not yet tried (after a failed start).
    TryNext,
}

/// Compiled node-affinity rule of one service: allowed nodes with priority.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeAffinity {
    pub nodes: BTreeMap<NodeName, i64>,
}

/// Placement rules compiled for fast lookup per service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompiledRules {
    pub node_affinity: BTreeMap<String, NodeAffinity>,
    /// Services that must run together with the key service.
    pub positive: BTreeMap<String, BTreeSet<String>>,
    /// Services that must not share a node with the key service.
    pub negative: BTreeMap<String, BTreeSet<String>>,
}

/// Allowed nodes and the highest-priority subset of them among the
/// online nodes of `usage`.
pub fn node_affinity<'a>(
    rules: &'a CompiledRules,
    sid: &str,
    usage: &'a Usage,
) -> (BTreeSet<&'a str>, BTreeSet<&'a str>) {
    let Some(rule) = rules.node_affinity.get(sid) else {
        let online: BTreeSet<&str> = usage.online_nodes().iter().map(String::as_str).collect();
        return (online.clone(), online);
    };
    let allowed: BTreeSet<&str> = rule
        .nodes
        .keys()
        .map(String::as_str)
        .filter(|n| usage.contains(n))
        .collect();
    let best = allowed.iter().map(|n| rule.nodes[*n]).max();
    let preferred = allowed
        .iter()
        .copied()
        .filter(|n| Some(rule.nodes[*n]) == best)
        .collect();
    (allowed, preferred)
}

/// `(together, separate)`: node counts of positive partners and the nodes
/// of negative partners.
pub fn resource_affinity<'a>(
    rules: &CompiledRules,
    sid: &str,
    services: &'a BTreeMap<String, ServiceStatus>,
    usage: &Usage,
) -> (BTreeMap<&'a str, usize>, BTreeSet<&'a str>) {
    let mut together = BTreeMap::new();
    let mut separate = BTreeSet::new();
    for partner in rules.positive.get(sid).into_iter().flatten() {
        let Some(sd) = services.get(partner) else { continue };
        let (current, target) = used_service_nodes(|n| usage.contains(n), sd);
        if let Some(node) = target.or(current) {
            *together.entry(node).or_insert(0) += 1;
        }
    }
    for partner in rules.negative.get(sid).into_iter().flatten() {
        let Some(sd) = services.get(partner) else { continue };
        let (current, target) = used_service_nodes(|n| usage.contains(n), sd);
        separate.extend(current);
        separate.extend(target);
    }
    (together, separate)
}

/// Picks the node `sid` should run on, or `None` when no allowed node is
/// online. `failback` is the service's (or its group's) failback setting.
/// A failure of resource scoring is reported to `on_score_error`, and
/// selection falls back to service counts.
pub fn select_service_node(
    rules: &CompiledRules,
    usage: &Usage,
    sid: &str,
    failback: bool,
    services: &BTreeMap<String, ServiceStatus>,
    preference: Preference,
    on_score_error: &mut dyn FnMut(String),
) -> Option<NodeName> {
    let sd = services.get(sid)?;
    let current = sd.node.as_str();
    // Fast path, equivalent to the full walk below: no rule constrains the
    // service and nothing asks it to move.
    let unconstrained = !rules.node_affinity.contains_key(sid)
        && !rules.positive.contains_key(sid)
        && !rules.negative.contains_key(sid);
    if unconstrained && preference == Preference::None && sd.maintenance_node.is_none() && usage.contains(current) {
        return Some(current.to_string());
    }
    // Candidates are online nodes, addressed by their index in `usage`
    // (which is name order, the order upstream walks them in).
    let index = |node: &str| usage.node_index(node);
    let (allowed_current, mut preferred) = match rules.node_affinity.get(sid) {
        None => (usage.contains(current), vec![true; usage.online_nodes().len()]),
        Some(rule) => {
            let mut allowed = vec![false; usage.online_nodes().len()];
            let mut best = None;
            for (node, priority) in &rule.nodes {
                if let Some(i) = index(node) {
                    allowed[i] = true;
                    best = best.max(Some(*priority));
                }
            }
            let mut preferred = vec![false; allowed.len()];
            for (node, priority) in &rule.nodes {
                if let Some(i) = index(node) {
                    preferred[i] = Some(*priority) == best;
                }
            }
            (index(current).is_some_and(|i| allowed[i]), preferred)
        }
    };
    if !preferred.contains(&true) {
        return None;
    }
    let is_preferred = |preferred: &[bool], node: &str| index(node).is_some_and(|i| preferred[i]);
    let (together, separate) = resource_affinity(rules, sid, services, usage);
    let allowed_here = together.contains_key(current) || !separate.contains(current);
    if preference == Preference::None && !failback && allowed_current && allowed_here {
        return Some(current.to_string());
    }
    if preference == Preference::TryNext {
        for tried in sd.failed_nodes.iter().flatten() {
            if let Some(i) = index(tried) {
                preferred[i] = false;
            }
        }
    }
    for node in &separate {
        if let Some(i) = index(node) {
            preferred[i] = false;
        }
    }
    let mut best_together: Option<(&str, usize)> = None;
    for (node, count) in together.iter().filter(|(n, _)| is_preferred(&preferred, n)) {
        if best_together.is_none_or(|(_, c)| *count > c) {
            best_together = Some((node, *count));
        }
    }
    if let Some((node, _)) = best_together {
        let only = index(node);
        for (i, p) in preferred.iter_mut().enumerate() {
            *p = Some(i) == only;
        }
    }
    if let Some(fallback) = sd.maintenance_node.as_deref().filter(|f| is_preferred(&preferred, f)) {
        return Some(fallback.to_string());
    }
    if preference == Preference::None && is_preferred(&preferred, current) {
        return Some(current.to_string());
    }
    let scores = usage.node_scores(sid).unwrap_or_else(|err| {
        on_score_error(err);
        usage.count_scores()
    });
    // The preferred nodes ranked by score, ties by name (index): the first
    // one, or with `TryNext` the one ranked right after the current node.
    let key = |i: usize| (scores.get(i).copied().unwrap_or(0.0), i);
    let before = |a: (f64, usize), b: (f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).is_lt();
    let current_key = index(current)
        .filter(|i| preference == Preference::TryNext && preferred[*i])
        .map(key);
    let (mut first, mut next) = (None, None);
    for i in (0..preferred.len()).filter(|i| preferred[*i]) {
        let k = key(i);
        if first.is_none_or(|f| before(k, f)) {
            first = Some(k);
        }
        if current_key.is_some_and(|c| before(c, k)) && next.is_none_or(|n| before(k, n)) {
            next = Some(k);
        }
    }
    next.or(first).map(|(_, i)| usage.online_nodes()[i].clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rules::{compile, rules_from_groups};
    use crate::core::status::{GroupConfig, Groups, ServiceConfig};
    use crate::core::types::ServiceState;

    fn status(state: ServiceState, node: &str) -> ServiceStatus {
        ServiceStatus::new(state, node, "uid".into())
    }

    fn nodes(names: &[&str]) -> Vec<NodeName> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recovery_prefers_the_least_loaded_node_then_the_name() {
        let online = nodes(&["node1", "node2"]);
        let mut services = BTreeMap::new();
        services.insert("vm:101".to_string(), status(ServiceState::Started, "node1"));
        services.insert("vm:103".to_string(), status(ServiceState::Recovery, "node3"));
        let mut usage = Usage::basic(&online);
        for (sid, sd) in &services {
            usage.set_service(sid, sd);
        }
        let rules = CompiledRules::default();
        let pick = select_service_node(
            &rules,
            &usage,
            "vm:103",
            true,
            &services,
            Preference::BestScore,
            &mut |_| {},
        );
        assert_eq!(pick.as_deref(), Some("node2"));
    }

    #[test]
    fn try_next_skips_failed_nodes_and_none_stays_put() {
        let online = nodes(&["node1", "node2", "node3"]);
        let mut services = BTreeMap::new();
        let mut sd = status(ServiceState::Started, "node1");
        sd.failed_nodes = Some(nodes(&["node1"]));
        services.insert("fa:120".to_string(), sd);
        let usage = Usage::basic(&online);
        let rules = CompiledRules::default();
        let next = select_service_node(
            &rules,
            &usage,
            "fa:120",
            true,
            &services,
            Preference::TryNext,
            &mut |_| {},
        );
        assert_eq!(next.as_deref(), Some("node2"));
        let stay = select_service_node(&rules, &usage, "fa:120", true, &services, Preference::None, &mut |_| {});
        assert_eq!(stay.as_deref(), Some("node1"));
    }

    #[test]
    fn restricted_groups_return_nothing_when_no_member_is_online() {
        let mut groups = Groups::new();
        groups.insert(
            "only3".into(),
            GroupConfig {
                nodes: BTreeMap::from([("node3".into(), 0)]),
                restricted: true,
                nofailback: false,
                comment: None,
            },
        );
        let mut config = ServiceConfig::new();
        let mut cd = super::super::status::ResourceConfig::new("node3", super::super::types::RequestState::Started);
        cd.group = Some("only3".into());
        config.insert("vm:103".into(), cd);
        let all = nodes(&["node1", "node2", "node3"]);
        let rules = compile(&rules_from_groups(&groups, &config, 1), &all);
        let mut services = BTreeMap::new();
        services.insert("vm:103".to_string(), status(ServiceState::Recovery, "node3"));
        let usage = Usage::basic(&nodes(&["node1", "node2"]));
        let pick = select_service_node(
            &rules,
            &usage,
            "vm:103",
            true,
            &services,
            Preference::BestScore,
            &mut |_| {},
        );
        assert_eq!(pick, None);
    }

    #[test]
    fn failback_moves_to_the_highest_priority_member() {
        let mut groups = Groups::new();
        groups.insert(
            "prefer2".into(),
            GroupConfig {
                nodes: BTreeMap::from([("node2".into(), 2), ("node1".into(), 1)]),
                restricted: false,
                nofailback: false,
                comment: None,
            },
        );
        let mut config = ServiceConfig::new();
        let mut cd = super::super::status::ResourceConfig::new("node1", super::super::types::RequestState::Started);
        cd.group = Some("prefer2".into());
        config.insert("vm:101".into(), cd);
        let all = nodes(&["node1", "node2", "node3"]);
        let rules = compile(&rules_from_groups(&groups, &config, 1), &all);
        let mut services = BTreeMap::new();
        services.insert("vm:101".to_string(), status(ServiceState::Started, "node1"));
        let usage = Usage::basic(&all);
        let with_failback =
            select_service_node(&rules, &usage, "vm:101", true, &services, Preference::None, &mut |_| {});
        assert_eq!(with_failback.as_deref(), Some("node2"));
        let without = select_service_node(
            &rules,
            &usage,
            "vm:101",
            false,
            &services,
            Preference::None,
            &mut |_| {},
        );
        assert_eq!(without.as_deref(), Some("node1"));
    }
}
