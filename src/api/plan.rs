//! What a request means against one snapshot: the views of the read
//! commands, and for an edit either a one-line error (nothing changes) or
//! the store operations to apply. Pure: the server supplies the snapshot
//! and wraps the operations in a compare-and-swap on the configuration
//! digest the plan was made against, re-planning on a lost race.
//!
//! Checks and messages follow upstream's API (spec §7.1–7.2). Decisions
//! of our own, where upstream depends on things this daemon does not
//! have:
//!
//! - A new resource's node is the node that answers the request (upstream
//!   reads it from the guest's configuration). A bare number is a `vm:`
//!   sid. `proc:<name>` needs a `[proc.<name>]` section on this node.
//! - Groups and rules exclude each other as upstream's migration makes
//!   them: groups can be edited while no rule exists ("not migrated"),
//!   rules only while no group exists.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::resources::is_resource_name;
use crate::config::value::{
    check_comment, check_single_line, format_node_list, is_config_id, parse_bool, parse_node_list, split_list,
};
use crate::core::crm_command::{CrmCommand, DisarmMode, MoveKind};
use crate::core::rules::{self, Rule, RuleKind};
use crate::core::status::ResourceConfig;
use crate::core::store::{ClusterState, Op, Snapshot, StoredGroup};
use crate::core::timing::MAX_TIMEOUT_SECS;
use crate::core::types::{NodeName, RequestState, ServiceState, split_sid};

use super::protocol::{
    DroppedRule, GroupOptions, GroupView, MoveTask, Request, ResourceOptions, ResourceView, Response, RuleOptions,
    RuleView,
};

/// What planning needs besides the snapshot.
#[derive(Debug, Clone, Default)]
pub struct PlanContext {
    /// The node that answers.
    pub node: NodeName,
    /// The `[proc.<name>]` services this node defines.
    pub proc_services: BTreeSet<String>,
}

/// The operations of an edit.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub ops: Vec<Op>,
    /// Printed after success.
    pub messages: Vec<String>,
    /// The digest the user gave (`--digest`): a mismatch is an error, not
    /// a retry.
    pub digest: Option<String>,
    /// Applied, but reported as an error (upstream queues a blocked
    /// migration and then dies).
    pub error_after: Option<String>,
}

impl Plan {
    fn of(ops: Vec<Op>) -> Plan {
        Plan { ops, ..Plan::default() }
    }
}

type Result<T> = std::result::Result<T, String>;

const RESOURCE_STATES: &str = "started, stopped, enabled, disabled, ignored";

/// A sid as given on the command line: `<type>:<name>`, or a bare VMID.
pub fn parse_sid(text: &str) -> Result<String> {
    let sid = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        format!("vm:{text}")
    } else {
        text.to_string()
    };
    let Some((kind, name)) = split_sid(&sid) else {
        return Err(format!("unable to parse service id '{text}'"));
    };
    match kind {
        "vm" | "ct" if !is_resource_name(name) => Err(format!(
            "invalid resource name '{name}' in service id '{sid}' (expected a number of at least two digits)"
        )),
        "vm" | "ct" | "proc" => Ok(sid),
        _ => Err(format!(
            "unknown resource type '{kind}' in service id '{sid}' (expected vm, ct or proc)"
        )),
    }
}

fn boolean(key: &str, value: &str) -> Result<bool> {
    parse_bool(value).ok_or_else(|| format!("{key}: type check ('boolean') failed - got '{value}'"))
}

fn comment(value: &str) -> Result<String> {
    check_comment(value).map_err(|e| format!("comment: {e}"))?;
    Ok(value.to_string())
}

/// A resource's or group's comment: also one line, as upstream's section
/// config refuses to write a line feed. (A rule's comment is text-encoded
/// in rules.cfg, so it may hold one.)
fn line_comment(value: &str) -> Result<String> {
    check_single_line(value).map_err(|e| format!("comment: {e}"))?;
    comment(value)
}

/// Resource types `config --type` takes (upstream: the registered
/// resource plugins, `ct` and `vm`; here also `proc`).
const RESOURCE_TYPES: &[&str] = &["ct", "proc", "vm"];

fn check_resource_type(kind: Option<&str>) -> Result<()> {
    match kind {
        Some(k) if !RESOURCE_TYPES.contains(&k) => Err(format!(
            "type: value '{k}' does not have a value in the enumeration '{}'",
            RESOURCE_TYPES.join(", ")
        )),
        _ => Ok(()),
    }
}

fn delete_keys(delete: &[String], allowed: &[&str], set: &[&str]) -> Result<BTreeSet<String>> {
    let mut keys = BTreeSet::new();
    for key in delete.iter().flat_map(|d| split_list(d)) {
        if !allowed.contains(&key) {
            return Err(format!("delete: cannot delete property '{key}'"));
        }
        if set.contains(&key) {
            return Err(format!("cannot set and delete property '{key}' at the same time"));
        }
        keys.insert(key.to_string());
    }
    Ok(keys)
}

/// Whether groups have given way to rules (see the module documentation).
pub fn groups_migrated(state: &ClusterState) -> bool {
    state.groups_cfg.is_empty() && !state.rules.is_empty()
}

/// The cluster's nodes: its members (upstream's cluster node list), online
/// or not. Not the CRM's `node_status`, which keeps a removed node until
/// the master forgets it.
fn cluster_nodes(snapshot: &Snapshot) -> BTreeSet<NodeName> {
    snapshot.members.keys().cloned().collect()
}

fn check_node(snapshot: &Snapshot, node: &str) -> Result<()> {
    if cluster_nodes(snapshot).contains(node) {
        Ok(())
    } else {
        Err(format!("no such cluster node '{node}'"))
    }
}

fn read_rules(state: &ClusterState) -> Result<Vec<Rule>> {
    Ok(state.rules.to_vec())
}

fn resource_view(sid: &str, r: &ResourceConfig) -> ResourceView {
    ResourceView {
        sid: sid.to_string(),
        kind: split_sid(sid).map(|(k, _)| k).unwrap_or_default().to_string(),
        state: r.state.as_str().to_string(),
        comment: r.comment.clone().filter(|c| !c.is_empty()),
        failback: (r.failback != ResourceConfig::DEFAULT_FAILBACK).then_some(u8::from(r.failback)),
        group: r.group.clone(),
        max_relocate: (r.max_relocate != ResourceConfig::DEFAULT_MAX_RELOCATE).then_some(r.max_relocate),
        max_restart: (r.max_restart != ResourceConfig::DEFAULT_MAX_RESTART).then_some(r.max_restart),
    }
}

fn group_view(id: &str, g: &StoredGroup) -> GroupView {
    GroupView {
        group: id.to_string(),
        kind: "group".to_string(),
        nodes: format_node_list(&g.nodes),
        comment: g.comment.clone().filter(|c| !c.is_empty()),
        nofailback: g.nofailback.then_some(1),
        restricted: g.restricted.then_some(1),
    }
}

fn rule_view(rule: &Rule, errors: Vec<String>) -> RuleView {
    let (kind, nodes, strict, affinity) = match &rule.kind {
        RuleKind::NodeAffinity { nodes, strict } => (
            "node-affinity",
            Some(format_node_list(nodes)),
            strict.then_some(1),
            None,
        ),
        RuleKind::ResourceAffinity { positive } => (
            "resource-affinity",
            None,
            None,
            Some(if *positive { "positive" } else { "negative" }.to_string()),
        ),
    };
    RuleView {
        rule: rule.id.clone(),
        kind: kind.to_string(),
        resources: rule.resources.iter().cloned().collect::<Vec<_>>().join(","),
        nodes,
        strict,
        affinity,
        disable: rule.disabled.then_some(1),
        comment: rule.comment.clone().filter(|c| !c.is_empty()),
        state: if errors.is_empty() {
            "in use"
        } else {
            "ignored (conflicts)"
        }
        .to_string(),
        errors,
        order: rule.order,
    }
}

/// Why the checks drop each rule, by rule id (messages in check order).
fn rule_errors(rules: &[Rule], nodes: &[NodeName]) -> BTreeMap<String, Vec<String>> {
    rules::check(rules, nodes).dropped
}

/// `rules check`: the stored rules with the legacy groups' ones, or a
/// candidate rules.cfg, against the cluster's members.
fn rules_check(snapshot: &Snapshot, rules_cfg: Option<&str>) -> Result<Response> {
    let state = &snapshot.state;
    let all = match rules_cfg {
        Some(text) => crate::config::rules::parse_rules(text).map_err(|e| format!("rules.cfg: {e}"))?,
        None => {
            let mut all = read_rules(state)?;
            let services = state.service_config();
            all.extend(rules::rules_from_groups(&state.groups(), &services, all.len() + 1));
            all
        }
    };
    let nodes: Vec<NodeName> = cluster_nodes(snapshot).into_iter().collect();
    let dropped = rule_errors(&all, &nodes)
        .into_iter()
        .map(|(rule, messages)| DroppedRule { rule, messages })
        .collect();
    Ok(Response::RulesCheck {
        nodes,
        checked: all.len(),
        dropped,
    })
}

/// Answers a read request (`config`, `groupconfig`, `rules config`).
pub fn read(request: &Request, snapshot: &Snapshot) -> Result<Response> {
    let state = &snapshot.state;
    let digest = state.config_digest();
    match request {
        Request::Config { kind } => {
            check_resource_type(kind.as_deref())?;
            let resources = state
                .resources
                .iter()
                .filter(|(sid, _)| {
                    kind.as_deref()
                        .is_none_or(|k| split_sid(sid).is_some_and(|(t, _)| t == k))
                })
                .map(|(sid, r)| resource_view(sid, r))
                .collect();
            Ok(Response::Resources { digest, resources })
        }
        Request::GroupConfig => {
            if groups_migrated(state) {
                return Err("cannot read group: ha groups have been migrated to rules".into());
            }
            let groups = state.groups_cfg.iter().map(|(id, g)| group_view(id, g)).collect();
            Ok(Response::Groups { digest, groups })
        }
        Request::RulesConfig { kind, resource } => {
            if let Some(kind) = kind {
                check_rule_kind(kind)?;
            }
            let resource = match resource {
                Some(r) => Some(parse_sid(r).map_err(|e| format!("resource: {e}"))?),
                None => None,
            };
            let mut all = read_rules(state)?;
            let services = state.service_config();
            all.extend(rules::rules_from_groups(&state.groups(), &services, all.len() + 1));
            let nodes: Vec<NodeName> = cluster_nodes(snapshot).into_iter().collect();
            let mut errors = rule_errors(&all, &nodes);
            let rules = all
                .iter()
                .map(|rule| rule_view(rule, errors.remove(&rule.id).unwrap_or_default()))
                .filter(|view| kind.as_deref().is_none_or(|k| view.kind == k))
                .filter(|view| {
                    resource
                        .as_deref()
                        .is_none_or(|r| view.resources.split(',').any(|x| x == r))
                })
                .collect();
            Ok(Response::Rules { digest, rules })
        }
        Request::RulesCheck { rules_cfg } => rules_check(snapshot, rules_cfg.as_deref()),
        _ => Err("not a read request".into()),
    }
}

fn apply_resource_options(
    state: &ClusterState,
    resource: &mut ResourceConfig,
    options: &ResourceOptions,
) -> Result<()> {
    if let Some(value) = &options.state {
        let parsed = RequestState::parse(value).ok_or_else(|| {
            format!("state: value '{value}' does not have a value in the enumeration '{RESOURCE_STATES}'")
        })?;
        resource.state = parsed;
    }
    if let Some(group) = &options.group {
        if groups_migrated(state) {
            return Err("invalid parameter 'group': ha groups have been migrated to rules".into());
        }
        if !state.groups_cfg.contains_key(group) {
            return Err(format!("group '{group}' does not exist"));
        }
        resource.group = Some(group.clone());
    }
    if let Some(n) = options.max_restart {
        resource.max_restart = n;
    }
    if let Some(n) = options.max_relocate {
        resource.max_relocate = n;
    }
    if let Some(value) = &options.failback {
        resource.failback = boolean("failback", value)?;
    }
    if let Some(value) = &options.comment {
        resource.comment = Some(line_comment(value)?);
    }
    Ok(())
}

fn managed<'a>(state: &'a ClusterState, sid: &str) -> Result<&'a ResourceConfig> {
    match state.resources.get(sid) {
        Some(r) if r.state != RequestState::Ignored => Ok(r),
        _ => Err(format!("resource '{sid}' is not HA managed")),
    }
}

fn in_error(state: &ClusterState, sid: &str) -> bool {
    state
        .manager_status
        .service_status
        .get(sid)
        .is_some_and(|sd| sd.state == ServiceState::Error)
}

fn error_state_message(sid: &str) -> String {
    format!("service '{sid}' in error state, must be disabled and fixed first")
}

/// Plans an edit or a CRM command: one function per request.
pub fn plan(request: &Request, snapshot: &Snapshot, ctx: &PlanContext) -> Result<Plan> {
    match request {
        Request::Add { sid, kind, options } => plan_add(snapshot, ctx, sid, kind.as_deref(), options),
        Request::Set {
            sid,
            options,
            delete,
            digest,
        } => plan_set(snapshot, sid, options, delete, digest),
        Request::Remove { sid, purge } => plan_remove(snapshot, sid, *purge),
        Request::Move { task, sid, node } => plan_move(snapshot, *task, sid, node),
        Request::Stop { sid, timeout } => plan_stop(snapshot, sid, *timeout),
        Request::NodeMaintenance { enable, node } => plan_node_maintenance(snapshot, *enable, node),
        Request::DisarmHa { mode } => plan_disarm(mode),
        Request::ArmHa => Ok(Plan::of(vec![Op::QueueCrmCommand(CrmCommand::ArmHa)])),
        Request::GroupAdd { group, options } => plan_group_add(snapshot, group, options),
        Request::GroupSet {
            group,
            options,
            delete,
            digest,
        } => plan_group_set(snapshot, group, options, delete, digest),
        Request::GroupRemove { group } => plan_group_remove(snapshot, group),
        Request::RulesAdd { kind, rule, options } => plan_rules_add(snapshot, kind, rule, options),
        Request::RulesSet {
            kind,
            rule,
            options,
            delete,
            digest,
        } => plan_rules_set(snapshot, kind, rule, options, delete, digest),
        Request::RulesRemove { rule } => plan_rules_remove(snapshot, rule),
        Request::Status { .. }
        | Request::Config { .. }
        | Request::GroupConfig
        | Request::RulesConfig { .. }
        | Request::RulesCheck { .. } => Err("not an edit".into()),
    }
}

fn plan_add(
    snapshot: &Snapshot,
    ctx: &PlanContext,
    sid: &str,
    kind: Option<&str>,
    options: &ResourceOptions,
) -> Result<Plan> {
    let state = &snapshot.state;
    let sid = parse_sid(sid)?;
    let (sid_kind, name) = split_sid(&sid).unwrap_or_default();
    if kind.is_some_and(|k| k != sid_kind) {
        return Err("types does not match".into());
    }
    if state.resources.contains_key(&sid) {
        return Err(format!("resource ID '{sid}' already defined"));
    }
    if sid_kind == "proc" && !ctx.proc_services.contains(name) {
        return Err(format!("resource '{sid}' does not exist in cluster"));
    }
    let mut resource = ResourceConfig::new(&ctx.node, ResourceConfig::DEFAULT_STATE);
    apply_resource_options(state, &mut resource, options)?;
    Ok(Plan::of(vec![Op::PutResource { sid, resource }]))
}

fn plan_set(
    snapshot: &Snapshot,
    sid: &str,
    options: &ResourceOptions,
    delete: &[String],
    digest: &Option<String>,
) -> Result<Plan> {
    let state = &snapshot.state;
    let sid = parse_sid(sid)?;
    let Some(current) = state.resources.get(&sid) else {
        return Err(format!("no such resource '{sid}'"));
    };
    if in_error(state, &sid) && options.state.as_deref() != Some("disabled") {
        return Err(error_state_message(&sid));
    }
    let given: Vec<&str> = [
        ("state", options.state.is_some()),
        ("group", options.group.is_some()),
        ("max_restart", options.max_restart.is_some()),
        ("max_relocate", options.max_relocate.is_some()),
        ("failback", options.failback.is_some()),
        ("comment", options.comment.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    let deleted = delete_keys(
        delete,
        &["comment", "failback", "group", "max_relocate", "max_restart", "state"],
        &given,
    )?;
    let mut resource = current.clone();
    for key in &deleted {
        let defaults = ResourceConfig::default();
        match key.as_str() {
            "comment" => resource.comment = None,
            "failback" => resource.failback = defaults.failback,
            "group" => resource.group = None,
            "max_relocate" => resource.max_relocate = defaults.max_relocate,
            "max_restart" => resource.max_restart = defaults.max_restart,
            "state" => resource.state = defaults.state,
            other => return Err(format!("unknown key '{other}'")),
        }
    }
    apply_resource_options(state, &mut resource, options)?;
    Ok(Plan {
        digest: digest.clone(),
        ..Plan::of(vec![Op::PutResource { sid, resource }])
    })
}

fn plan_remove(snapshot: &Snapshot, sid: &str, purge: bool) -> Result<Plan> {
    let state = &snapshot.state;
    let sid = parse_sid(sid)?;
    if !state.resources.contains_key(&sid) {
        return Err(format!("cannot delete service '{sid}', not HA managed!"));
    }
    let mut ops = vec![Op::RemoveResource { sid: sid.clone() }];
    if purge {
        let mut rules = read_rules(state)?;
        let before = rules.clone();
        for rule in &mut rules {
            rule.resources.remove(&sid);
        }
        rules.retain(|r| !r.resources.is_empty());
        if rules != before {
            ops.push(Op::SetRules(rules));
        }
    }
    Ok(Plan::of(ops))
}

fn plan_stop(snapshot: &Snapshot, sid: &str, timeout: u64) -> Result<Plan> {
    let state = &snapshot.state;
    if timeout > MAX_TIMEOUT_SECS {
        return Err(format!(
            "timeout: {timeout} is out of range (0 to {MAX_TIMEOUT_SECS} seconds; 0 stops hard)"
        ));
    }
    let sid = parse_sid(sid)?;
    managed(state, &sid)?;
    Ok(Plan::of(vec![Op::QueueCrmCommand(CrmCommand::Stop {
        sid,
        timeout: timeout as i64,
    })]))
}

fn plan_node_maintenance(snapshot: &Snapshot, enable: bool, node: &str) -> Result<Plan> {
    check_node(snapshot, node)?;
    let command = if enable {
        CrmCommand::EnableNodeMaintenance { node: node.to_string() }
    } else {
        CrmCommand::DisableNodeMaintenance { node: node.to_string() }
    };
    Ok(Plan::of(vec![Op::QueueCrmCommand(command)]))
}

fn plan_disarm(mode: &str) -> Result<Plan> {
    let Some(mode) = DisarmMode::parse(mode) else {
        return Err(format!(
            "resource-mode: value '{mode}' does not have a value in the enumeration 'freeze, ignore'"
        ));
    };
    Ok(Plan::of(vec![Op::QueueCrmCommand(CrmCommand::DisarmHa { mode })]))
}

fn plan_group_add(snapshot: &Snapshot, group: &str, options: &GroupOptions) -> Result<Plan> {
    let state = &snapshot.state;
    if groups_migrated(state) {
        return Err("cannot create group: ha groups have been migrated to rules".into());
    }
    if !is_config_id(group) {
        return Err(format!("group: invalid format - invalid configuration ID '{group}'"));
    }
    if state.groups_cfg.contains_key(group) {
        return Err(format!("ha group '{group}' already defined"));
    }
    if options.nodes.is_none() {
        return Err("nodes: property is missing and it is not optional".into());
    }
    let mut stored = StoredGroup {
        nodes: BTreeMap::new(),
        restricted: false,
        nofailback: false,
        comment: None,
    };
    apply_group_options(&mut stored, options)?;
    Ok(Plan::of(vec![Op::PutGroup {
        id: group.to_string(),
        group: stored,
    }]))
}

fn plan_group_set(
    snapshot: &Snapshot,
    group: &str,
    options: &GroupOptions,
    delete: &[String],
    digest: &Option<String>,
) -> Result<Plan> {
    let state = &snapshot.state;
    if groups_migrated(state) {
        return Err("cannot update group: ha groups have been migrated to rules".into());
    }
    let Some(current) = state.groups_cfg.get(group) else {
        return Err(format!("no such ha group '{group}'"));
    };
    let given: Vec<&str> = [
        ("nodes", options.nodes.is_some()),
        ("restricted", options.restricted.is_some()),
        ("nofailback", options.nofailback.is_some()),
        ("comment", options.comment.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    let deleted = delete_keys(delete, &["comment", "nofailback", "restricted"], &given)?;
    let mut stored = current.clone();
    for key in &deleted {
        match key.as_str() {
            "comment" => stored.comment = None,
            "nofailback" => stored.nofailback = false,
            "restricted" => stored.restricted = false,
            other => return Err(format!("unknown key '{other}'")),
        }
    }
    apply_group_options(&mut stored, options)?;
    Ok(Plan {
        digest: digest.clone(),
        ..Plan::of(vec![Op::PutGroup {
            id: group.to_string(),
            group: stored,
        }])
    })
}

fn plan_group_remove(snapshot: &Snapshot, group: &str) -> Result<Plan> {
    let state = &snapshot.state;
    if groups_migrated(state) {
        return Err("cannot delete group: ha groups have been migrated to rules".into());
    }
    if !state.groups_cfg.contains_key(group) {
        return Err(format!("no such ha group '{group}'"));
    }
    if let Some(sid) = state
        .resources
        .iter()
        .find(|(_, r)| r.group.as_deref() == Some(group))
        .map(|(sid, _)| sid)
    {
        return Err(format!("ha group is used by service '{sid}'"));
    }
    Ok(Plan::of(vec![Op::RemoveGroup { id: group.to_string() }]))
}

fn plan_rules_add(snapshot: &Snapshot, kind: &str, rule: &str, options: &RuleOptions) -> Result<Plan> {
    let state = &snapshot.state;
    if !state.groups_cfg.is_empty() {
        return Err("cannot create ha rule: ha groups have not been migrated yet".into());
    }
    check_rule_kind(kind)?;
    if !is_config_id(rule) {
        return Err(format!("rule: invalid format - invalid configuration ID '{rule}'"));
    }
    let mut rules = read_rules(state)?;
    if rules.iter().any(|r| r.id == *rule) {
        return Err(format!("HA rule '{rule}' already defined"));
    }
    let new = build_rule(snapshot, kind, rule, None, options, &BTreeSet::new(), rules.len() + 1)?;
    rules.push(new);
    check_feasible(snapshot, &rules, rule)?;
    Ok(Plan::of(vec![Op::SetRules(rules)]))
}

fn plan_rules_set(
    snapshot: &Snapshot,
    kind: &str,
    rule: &str,
    options: &RuleOptions,
    delete: &[String],
    digest: &Option<String>,
) -> Result<Plan> {
    let state = &snapshot.state;
    check_rule_kind(kind)?;
    let mut rules = read_rules(state)?;
    let Some(index) = rules.iter().position(|r| r.id == *rule) else {
        return Err(format!("no such ha rule '{rule}'"));
    };
    let given: Vec<&str> = [
        ("resources", options.resources.is_some()),
        ("nodes", options.nodes.is_some()),
        ("strict", options.strict.is_some()),
        ("affinity", options.affinity.is_some()),
        ("disable", options.disable.is_some()),
        ("comment", options.comment.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    let deleted = delete_keys(delete, &["comment", "disable", "strict"], &given)?;
    let current = rules[index].clone();
    let current_kind = match current.kind {
        RuleKind::NodeAffinity { .. } => "node-affinity",
        RuleKind::ResourceAffinity { .. } => "resource-affinity",
    };
    if current_kind != kind {
        return Err(format!("rule '{rule}' is of type '{current_kind}', not '{kind}'"));
    }
    rules[index] = build_rule(snapshot, kind, rule, Some(&current), options, &deleted, current.order)?;
    check_feasible(snapshot, &rules, rule)?;
    Ok(Plan {
        digest: digest.clone(),
        ..Plan::of(vec![Op::SetRules(rules)])
    })
}

fn plan_rules_remove(snapshot: &Snapshot, rule: &str) -> Result<Plan> {
    let state = &snapshot.state;
    let mut rules = read_rules(state)?;
    let before = rules.len();
    rules.retain(|r| r.id != *rule);
    if rules.len() == before {
        return Err(format!("no such ha rule '{rule}'"));
    }
    Ok(Plan::of(vec![Op::SetRules(rules)]))
}

fn apply_group_options(group: &mut StoredGroup, options: &GroupOptions) -> Result<()> {
    if let Some(nodes) = &options.nodes {
        group.nodes = parse_node_list(nodes).map_err(|e| format!("nodes: {e}"))?;
    }
    if let Some(v) = &options.restricted {
        group.restricted = boolean("restricted", v)?;
    }
    if let Some(v) = &options.nofailback {
        group.nofailback = boolean("nofailback", v)?;
    }
    if let Some(v) = &options.comment {
        group.comment = Some(line_comment(v)?);
    }
    Ok(())
}

fn check_rule_kind(kind: &str) -> Result<()> {
    match kind {
        "node-affinity" | "resource-affinity" => Ok(()),
        _ => Err(format!(
            "type: value '{kind}' does not have a value in the enumeration 'node-affinity, resource-affinity'"
        )),
    }
}

/// A rule from the options, over `current` for `rules set`.
fn build_rule(
    snapshot: &Snapshot,
    kind: &str,
    id: &str,
    current: Option<&Rule>,
    options: &RuleOptions,
    deleted: &BTreeSet<String>,
    order: usize,
) -> Result<Rule> {
    let state = &snapshot.state;
    let node_affinity = kind == "node-affinity";
    let foreign: &[(&str, bool)] = if node_affinity {
        &[("affinity", options.affinity.is_some())]
    } else {
        &[("nodes", options.nodes.is_some()), ("strict", options.strict.is_some())]
    };
    if let Some((key, _)) = foreign.iter().find(|(_, given)| *given) {
        return Err(format!("{key}: property is not defined for rule type '{kind}'"));
    }
    let resources = match (&options.resources, current) {
        (Some(text), _) => {
            let mut set = BTreeSet::new();
            for entry in split_list(text) {
                set.insert(parse_sid(entry).map_err(|e| format!("resources: {e}"))?);
            }
            if set.is_empty() {
                return Err("resources: no resources given".into());
            }
            let unmanaged: Vec<&str> = set
                .iter()
                .filter(|sid| !state.resources.contains_key(*sid))
                .map(String::as_str)
                .collect();
            if !unmanaged.is_empty() {
                return Err(format!("cannot use unmanaged resource(s) {}.", unmanaged.join(", ")));
            }
            set
        }
        (None, Some(rule)) => rule.resources.clone(),
        (None, None) => return Err("resources: property is missing and it is not optional".into()),
    };
    let kind = if node_affinity {
        let (mut nodes, mut strict) = match current.map(|r| &r.kind) {
            Some(RuleKind::NodeAffinity { nodes, strict }) => (Some(nodes.clone()), *strict),
            _ => (None, false),
        };
        if let Some(text) = &options.nodes {
            let parsed = parse_node_list(text).map_err(|e| format!("nodes: {e}"))?;
            let known = cluster_nodes(snapshot);
            let missing: Vec<&str> = parsed
                .keys()
                .filter(|n| !known.contains(*n))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(format!("cannot use non-existent node(s) {}.", missing.join(", ")));
            }
            nodes = Some(parsed);
        }
        if deleted.contains("strict") {
            strict = false;
        }
        if let Some(v) = &options.strict {
            strict = boolean("strict", v)?;
        }
        let nodes = nodes.ok_or("nodes: property is missing and it is not optional")?;
        RuleKind::NodeAffinity { nodes, strict }
    } else {
        let positive = match (options.affinity.as_deref(), current.map(|r| &r.kind)) {
            (Some("positive"), _) => true,
            (Some("negative"), _) => false,
            (Some(other), _) => {
                return Err(format!(
                    "affinity: value '{other}' does not have a value in the enumeration 'positive, negative'"
                ));
            }
            (None, Some(RuleKind::ResourceAffinity { positive })) => *positive,
            (None, _) => return Err("affinity: property is missing and it is not optional".into()),
        };
        RuleKind::ResourceAffinity { positive }
    };
    let mut disabled = current.is_some_and(|r| r.disabled) && !deleted.contains("disable");
    if let Some(v) = &options.disable {
        disabled = boolean("disable", v)?;
    }
    let mut rule_comment = current
        .and_then(|r| r.comment.clone())
        .filter(|_| !deleted.contains("comment"));
    if let Some(v) = &options.comment {
        rule_comment = Some(comment(v)?);
    }
    Ok(Rule {
        id: id.to_string(),
        kind,
        resources,
        disabled,
        comment: rule_comment,
        order,
    })
}

fn check_feasible(snapshot: &Snapshot, rules: &[Rule], id: &str) -> Result<()> {
    let nodes: Vec<NodeName> = cluster_nodes(snapshot).into_iter().collect();
    match rule_errors(rules, &nodes).remove(id) {
        Some(reasons) => Err(format!("Rule '{id}' is invalid - {}", reasons.join("; "))),
        None => Ok(()),
    }
}

fn plan_move(snapshot: &Snapshot, task: MoveTask, sid: &str, node: &str) -> Result<Plan> {
    let state = &snapshot.state;
    let sid = parse_sid(sid)?;
    managed(state, &sid)?;
    if in_error(state, &sid) {
        return Err(error_state_message(&sid));
    }
    check_node(snapshot, node)?;
    let cmd = task.as_str();
    let kind = match task {
        MoveTask::Migrate => MoveKind::Migrate,
        MoveTask::Relocate => MoveKind::Relocate,
    };
    let mut plan = Plan::of(vec![Op::QueueCrmCommand(CrmCommand::Move {
        kind,
        sid: sid.clone(),
        node: node.to_string(),
    })]);
    let rules = read_rules(state)?;
    let nodes: Vec<NodeName> = cluster_nodes(snapshot).into_iter().collect();
    let (kept, _) = rules::transform(&rules, &nodes);
    let compiled = rules::compile(&kept, &nodes);
    let status = &state.manager_status.service_status;
    let ignored = |c: &str| state.resources.get(c).is_none_or(|r| r.state == RequestState::Ignored);
    let blocking: Vec<&String> = compiled
        .negative
        .get(&sid)
        .into_iter()
        .flatten()
        .filter(|c| !ignored(c))
        .filter(|c| {
            status
                .get(*c)
                .is_some_and(|sd| sd.node == node && sd.target.as_deref().is_none_or(|t| t == node))
        })
        .collect();
    if !blocking.is_empty() {
        let mut message = format!("cannot {cmd} resource '{sid}' to node '{node}':\n");
        for c in blocking {
            message.push_str(&format!(
                "\n- resource '{c}' on target node '{node}' in negative affinity with resource '{sid}'"
            ));
        }
        plan.error_after = Some(message);
        return Ok(plan);
    }
    for c in compiled.positive.get(&sid).into_iter().flatten() {
        let there = status
            .get(c)
            .is_some_and(|sd| sd.node == node || sd.target.as_deref() == Some(node));
        if !there && !ignored(c) {
            plan.messages.push(format!(
                "also {cmd} resource '{c}' in positive affinity with resource '{sid}' to target node '{node}'"
            ));
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rules::{parse_rules, write_rules};

    fn rules_of(text: &str) -> Vec<Rule> {
        parse_rules(text).unwrap()
    }
    use crate::core::status::ServiceStatus;

    fn resource(node: &str) -> ResourceConfig {
        ResourceConfig::new(node, RequestState::Started)
    }

    fn snapshot() -> Snapshot {
        let mut state = ClusterState::default();
        for (sid, node) in [("vm:100", "node1"), ("vm:101", "node2"), ("vm:102", "node1")] {
            state.resources.insert(sid.into(), resource(node));
            state
                .manager_status
                .service_status
                .insert(sid.into(), ServiceStatus::new(ServiceState::Started, node, "u".into()));
        }
        let members = ["node1", "node2", "node3"].map(|n| (n.to_string(), true)).into();
        Snapshot {
            state,
            quorate: true,
            members,
        }
    }

    fn ctx() -> PlanContext {
        PlanContext {
            node: "node1".into(),
            proc_services: BTreeSet::from(["web".to_string()]),
        }
    }

    fn add(sid: &str, options: ResourceOptions) -> Request {
        Request::Add {
            sid: sid.into(),
            kind: None,
            options,
        }
    }

    fn rules_add(kind: &str, rule: &str, options: RuleOptions) -> Request {
        Request::RulesAdd {
            kind: kind.into(),
            rule: rule.into(),
            options,
        }
    }

    #[test]
    fn sids() {
        assert_eq!(parse_sid("100").unwrap(), "vm:100");
        assert_eq!(parse_sid("ct:200").unwrap(), "ct:200");
        assert_eq!(parse_sid("proc:web").unwrap(), "proc:web");
        assert_eq!(parse_sid("vm100").unwrap_err(), "unable to parse service id 'vm100'");
        assert!(parse_sid("vm:7").unwrap_err().contains("at least two digits"));
        assert!(
            parse_sid("lxc:100")
                .unwrap_err()
                .contains("unknown resource type 'lxc'")
        );
    }

    #[test]
    fn add_applies_options_over_defaults_on_this_node() {
        let plan = plan(
            &add(
                "proc:web",
                ResourceOptions {
                    state: Some("stopped".into()),
                    max_restart: Some(3),
                    failback: Some("0".into()),
                    comment: Some("front".into()),
                    ..ResourceOptions::default()
                },
            ),
            &snapshot(),
            &ctx(),
        )
        .unwrap();
        let Op::PutResource { sid, resource } = &plan.ops[0] else {
            panic!()
        };
        assert_eq!(sid, "proc:web");
        assert_eq!(resource.node.as_deref(), Some("node1"));
        assert_eq!(resource.state, RequestState::Stopped);
        assert_eq!(
            (resource.max_restart, resource.max_relocate, resource.failback),
            (3, 1, false)
        );
        assert_eq!(resource.comment.as_deref(), Some("front"));
    }

    #[test]
    fn bad_edits_are_refused_with_upstreams_words() {
        let snap = snapshot();
        let mut error_snap = snapshot();
        error_snap
            .state
            .manager_status
            .service_status
            .get_mut("vm:101")
            .unwrap()
            .state = ServiceState::Error;
        let bad_state = ResourceOptions {
            state: Some("on".into()),
            ..ResourceOptions::default()
        };
        let cases: Vec<(Request, &Snapshot, &str)> = vec![
            (
                add("vm:100", ResourceOptions::default()),
                &snap,
                "resource ID 'vm:100' already defined",
            ),
            (
                add("vm:103", bad_state.clone()),
                &snap,
                "state: value 'on' does not have a value in the enumeration 'started, stopped, enabled, disabled, ignored'",
            ),
            (
                add("proc:db", ResourceOptions::default()),
                &snap,
                "resource 'proc:db' does not exist in cluster",
            ),
            (
                Request::Add {
                    sid: "vm:103".into(),
                    kind: Some("ct".into()),
                    options: ResourceOptions::default(),
                },
                &snap,
                "types does not match",
            ),
            (
                add(
                    "vm:103",
                    ResourceOptions {
                        group: Some("g1".into()),
                        ..ResourceOptions::default()
                    },
                ),
                &snap,
                "group 'g1' does not exist",
            ),
            (
                add(
                    "vm:103",
                    ResourceOptions {
                        failback: Some("maybe".into()),
                        ..ResourceOptions::default()
                    },
                ),
                &snap,
                "failback: type check ('boolean') failed - got 'maybe'",
            ),
            (
                Request::Set {
                    sid: "vm:109".into(),
                    options: ResourceOptions::default(),
                    delete: vec![],
                    digest: None,
                },
                &snap,
                "no such resource 'vm:109'",
            ),
            (
                Request::Set {
                    sid: "vm:101".into(),
                    options: ResourceOptions::default(),
                    delete: vec!["comment".into()],
                    digest: None,
                },
                &error_snap,
                "service 'vm:101' in error state, must be disabled and fixed first",
            ),
            (
                Request::Set {
                    sid: "vm:101".into(),
                    options: ResourceOptions::default(),
                    delete: vec!["node".into()],
                    digest: None,
                },
                &snap,
                "delete: cannot delete property 'node'",
            ),
            (
                Request::Remove {
                    sid: "vm:109".into(),
                    purge: true,
                },
                &snap,
                "cannot delete service 'vm:109', not HA managed!",
            ),
            (
                Request::Move {
                    task: MoveTask::Migrate,
                    sid: "vm:109".into(),
                    node: "node2".into(),
                },
                &snap,
                "resource 'vm:109' is not HA managed",
            ),
            (
                Request::Move {
                    task: MoveTask::Relocate,
                    sid: "vm:100".into(),
                    node: "node9".into(),
                },
                &snap,
                "no such cluster node 'node9'",
            ),
            (
                Request::Move {
                    task: MoveTask::Migrate,
                    sid: "vm:101".into(),
                    node: "node1".into(),
                },
                &error_snap,
                "service 'vm:101' in error state, must be disabled and fixed first",
            ),
            (
                Request::NodeMaintenance {
                    enable: true,
                    node: "node9".into(),
                },
                &snap,
                "no such cluster node 'node9'",
            ),
            (
                Request::DisarmHa { mode: "melt".into() },
                &snap,
                "resource-mode: value 'melt' does not have a value in the enumeration 'freeze, ignore'",
            ),
            (
                Request::GroupAdd {
                    group: "g1".into(),
                    options: GroupOptions {
                        nodes: Some("node1:x".into()),
                        ..GroupOptions::default()
                    },
                },
                &snap,
                "nodes: invalid priority in 'node1:x' (expected a non-negative integer)",
            ),
            (
                Request::GroupAdd {
                    group: "g1".into(),
                    options: GroupOptions {
                        nodes: Some("node_1".into()),
                        ..GroupOptions::default()
                    },
                },
                &snap,
                "nodes: invalid node name in 'node_1'",
            ),
            (
                Request::GroupAdd {
                    group: "g1".into(),
                    options: GroupOptions::default(),
                },
                &snap,
                "nodes: property is missing and it is not optional",
            ),
            (
                Request::GroupRemove { group: "g9".into() },
                &snap,
                "no such ha group 'g9'",
            ),
            (
                rules_add(
                    "node-affinity",
                    "r1",
                    RuleOptions {
                        resources: Some("vm:100,vm:200".into()),
                        nodes: Some("node1".into()),
                        ..RuleOptions::default()
                    },
                ),
                &snap,
                "cannot use unmanaged resource(s) vm:200.",
            ),
            (
                rules_add(
                    "node-affinity",
                    "r1",
                    RuleOptions {
                        resources: Some("vm:100".into()),
                        nodes: Some("node1,node7".into()),
                        ..RuleOptions::default()
                    },
                ),
                &snap,
                "cannot use non-existent node(s) node7.",
            ),
            (
                rules_add(
                    "resource-affinity",
                    "r1",
                    RuleOptions {
                        resources: Some("vm:100".into()),
                        affinity: Some("negative".into()),
                        ..RuleOptions::default()
                    },
                ),
                &snap,
                "Rule 'r1' is invalid - rule is ineffective as there are less than two resources",
            ),
            (
                rules_add(
                    "resource-affinity",
                    "r1",
                    RuleOptions {
                        resources: Some("vm:100,vm:101".into()),
                        nodes: Some("node1".into()),
                        affinity: Some("negative".into()),
                        ..RuleOptions::default()
                    },
                ),
                &snap,
                "nodes: property is not defined for rule type 'resource-affinity'",
            ),
            (
                rules_add("colocation", "r1", RuleOptions::default()),
                &snap,
                "type: value 'colocation' does not have a value in the enumeration 'node-affinity, resource-affinity'",
            ),
            (
                Request::RulesRemove { rule: "r9".into() },
                &snap,
                "no such ha rule 'r9'",
            ),
        ];
        for (request, snapshot, message) in cases {
            assert_eq!(plan(&request, snapshot, &ctx()).unwrap_err(), message, "{request:?}");
        }
    }

    #[test]
    fn groups_and_rules_exclude_each_other() {
        let mut snap = snapshot();
        let group = Request::GroupAdd {
            group: "g1".into(),
            options: GroupOptions {
                nodes: Some("node1:2,node2".into()),
                restricted: Some("1".into()),
                ..GroupOptions::default()
            },
        };
        let Op::PutGroup { id, group: stored } = plan(&group, &snap, &ctx()).unwrap().ops.remove(0) else {
            panic!()
        };
        snap.state.groups_cfg.insert(id, stored);
        let rule = rules_add(
            "node-affinity",
            "r1",
            RuleOptions {
                resources: Some("vm:100".into()),
                nodes: Some("node1".into()),
                ..RuleOptions::default()
            },
        );
        assert_eq!(
            plan(&rule, &snap, &ctx()).unwrap_err(),
            "cannot create ha rule: ha groups have not been migrated yet"
        );
        snap.state.resources.get_mut("vm:100").unwrap().group = Some("g1".into());
        assert_eq!(
            plan(&Request::GroupRemove { group: "g1".into() }, &snap, &ctx()).unwrap_err(),
            "ha group is used by service 'vm:100'"
        );
        snap.state.resources.get_mut("vm:100").unwrap().group = None;
        snap.state.groups_cfg.clear();
        let Op::SetRules(text) = plan(&rule, &snap, &ctx()).unwrap().ops.remove(0) else {
            panic!()
        };
        assert_eq!(
            write_rules(&text),
            "node-affinity: r1\n\tnodes node1\n\tresources vm:100\n\n"
        );
        *snap.state.rules = text;
        assert_eq!(
            plan(&group, &snap, &ctx()).unwrap_err(),
            "cannot create group: ha groups have been migrated to rules"
        );
        assert_eq!(plan(&rule, &snap, &ctx()).unwrap_err(), "HA rule 'r1' already defined");
    }

    #[test]
    fn moves_queue_the_command_the_manager_parses() {
        let mut snap = snapshot();
        let request = |sid: &str, node: &str| Request::Move {
            task: MoveTask::Migrate,
            sid: sid.into(),
            node: node.into(),
        };
        let p = plan(&request("100", "node2"), &snap, &ctx()).unwrap();
        assert_eq!(
            p.ops,
            vec![Op::QueueCrmCommand("migrate vm:100 node2".parse().unwrap())]
        );
        *snap.state.rules = rules_of(
            "resource-affinity: apart\n\taffinity negative\n\tresources vm:100,vm:101\n\n\
                                resource-affinity: together\n\taffinity positive\n\tresources vm:100,vm:102\n\n",
        );
        let p = plan(&request("vm:100", "node2"), &snap, &ctx()).unwrap();
        assert_eq!(
            p.error_after.as_deref(),
            Some(
                "cannot migrate resource 'vm:100' to node 'node2':\n\n\
                 - resource 'vm:101' on target node 'node2' in negative affinity with resource 'vm:100'"
            )
        );
        let p = plan(&request("vm:100", "node3"), &snap, &ctx()).unwrap();
        assert_eq!(p.error_after, None);
        assert_eq!(
            p.messages,
            ["also migrate resource 'vm:102' in positive affinity with resource 'vm:100' to target node 'node3'"]
        );
        let stop = Request::Stop {
            sid: "vm:100".into(),
            timeout: 0,
        };
        assert_eq!(
            plan(&stop, &snap, &ctx()).unwrap().ops,
            vec![Op::QueueCrmCommand("stop vm:100 0".parse().unwrap())]
        );
        let maint = Request::NodeMaintenance {
            enable: false,
            node: "node2".into(),
        };
        assert_eq!(
            plan(&maint, &snap, &ctx()).unwrap().ops,
            vec![Op::QueueCrmCommand("disable-node-maintenance node2".parse().unwrap())]
        );
    }

    /// Issue 11 §2: `stop <sid> 18446744073709551615` was queued and then
    /// dropped by the CRM ("unable to parse crm command"), and
    /// `9223372036854775807` panicked the proc agent.
    #[test]
    fn stop_timeouts_out_of_range_are_refused() {
        let snap = snapshot();
        let stop = |timeout: u64| Request::Stop {
            sid: "vm:100".into(),
            timeout,
        };
        for timeout in [18_446_744_073_709_551_615, 9_223_372_036_854_775_807, 86_401] {
            assert_eq!(
                plan(&stop(timeout), &snap, &ctx()).unwrap_err(),
                format!("timeout: {timeout} is out of range (0 to 86400 seconds; 0 stops hard)")
            );
        }
        assert_eq!(
            plan(&stop(86_400), &snap, &ctx()).unwrap().ops,
            vec![Op::QueueCrmCommand("stop vm:100 86400".parse().unwrap())]
        );
    }

    /// Issue 11 §5: filters with values upstream's schema refuses.
    #[test]
    fn read_filters_are_checked() {
        let snap = snapshot();
        let config = |kind: &str| Request::Config {
            kind: Some(kind.into()),
        };
        assert_eq!(
            read(&config("bogus"), &snap).unwrap_err(),
            "type: value 'bogus' does not have a value in the enumeration 'ct, proc, vm'"
        );
        let Response::Resources { resources, .. } = read(&config("vm"), &snap).unwrap() else {
            panic!()
        };
        assert_eq!(resources.len(), 3);
        let rules = |kind: Option<&str>, resource: Option<&str>| Request::RulesConfig {
            kind: kind.map(str::to_string),
            resource: resource.map(str::to_string),
        };
        assert_eq!(
            read(&rules(Some("bogus"), None), &snap).unwrap_err(),
            "type: value 'bogus' does not have a value in the enumeration 'node-affinity, resource-affinity'"
        );
        assert_eq!(
            read(&rules(None, Some("vm:abc")), &snap).unwrap_err(),
            "resource: invalid resource name 'abc' in service id 'vm:abc' (expected a number of at least two digits)"
        );
        let mut snap = snap;
        *snap.state.rules = rules_of("resource-affinity: apart\n\taffinity negative\n\tresources vm:100,vm:101\n\n");
        for resource in ["100", "vm:100"] {
            let Response::Rules { rules, .. } = read(&rules(Some("resource-affinity"), Some(resource)), &snap).unwrap()
            else {
                panic!()
            };
            assert_eq!(rules.len(), 1, "{resource}");
        }
    }

    /// Issue 11 §5: upstream's section config cannot store a line feed in
    /// a resource's or group's comment; a rule's is text-encoded.
    #[test]
    fn comments_with_line_feeds() {
        let snap = snapshot();
        let options = ResourceOptions {
            comment: Some("db\n\tstate stopped".into()),
            ..ResourceOptions::default()
        };
        assert_eq!(
            plan(&add("vm:200", options.clone()), &snap, &ctx()).unwrap_err(),
            "comment: contains a line feed"
        );
        let set = Request::Set {
            sid: "vm:100".into(),
            options,
            delete: vec![],
            digest: None,
        };
        assert_eq!(plan(&set, &snap, &ctx()).unwrap_err(), "comment: contains a line feed");
        let group = Request::GroupAdd {
            group: "g1".into(),
            options: GroupOptions {
                nodes: Some("node1".into()),
                comment: Some("a\rb".into()),
                ..GroupOptions::default()
            },
        };
        assert_eq!(
            plan(&group, &snap, &ctx()).unwrap_err(),
            "comment: contains a line feed"
        );
        let rule = rules_add(
            "resource-affinity",
            "apart",
            RuleOptions {
                resources: Some("vm:100,vm:101".into()),
                affinity: Some("negative".into()),
                comment: Some("two\nlines".into()),
                ..RuleOptions::default()
            },
        );
        let p = plan(&rule, &snap, &ctx()).unwrap();
        let [Op::SetRules(rules)] = p.ops.as_slice() else {
            panic!("{:?}", p.ops)
        };
        let text = write_rules(rules);
        assert!(text.contains("\tcomment two%0Alines\n"), "{text}");
    }

    #[test]
    fn nodes_are_the_cluster_members_online_or_not() {
        let mut snap = snapshot();
        // node4 left the cluster; the CRM still lists it for a while.
        snap.state
            .manager_status
            .node_status
            .insert("node4".into(), crate::core::types::NodeState::Gone);
        snap.members.insert("node3".into(), false);
        let migrate = |node: &str| Request::Move {
            task: MoveTask::Migrate,
            sid: "vm:100".into(),
            node: node.into(),
        };
        assert_eq!(
            plan(&migrate("node4"), &snap, &ctx()).unwrap_err(),
            "no such cluster node 'node4'"
        );
        let maint = Request::NodeMaintenance {
            enable: true,
            node: "node4".into(),
        };
        assert_eq!(plan(&maint, &snap, &ctx()).unwrap_err(), "no such cluster node 'node4'");
        let pin = rules_add(
            "node-affinity",
            "pin",
            RuleOptions {
                resources: Some("vm:100".into()),
                nodes: Some("node3,node4".into()),
                ..RuleOptions::default()
            },
        );
        assert_eq!(
            plan(&pin, &snap, &ctx()).unwrap_err(),
            "cannot use non-existent node(s) node4."
        );
        // An offline member is still a node of the cluster.
        assert!(plan(&migrate("node3"), &snap, &ctx()).is_ok());
    }

    #[test]
    fn remove_purges_the_sid_from_rules() {
        let mut snap = snapshot();
        *snap.state.rules = rules_of(
            "resource-affinity: apart\n\taffinity negative\n\tresources vm:100,vm:101,vm:102\n\n\
                                node-affinity: pin\n\tnodes node1\n\tresources vm:100\n\n",
        );
        let p = plan(
            &Request::Remove {
                sid: "vm:100".into(),
                purge: true,
            },
            &snap,
            &ctx(),
        )
        .unwrap();
        assert_eq!(
            p.ops,
            vec![
                Op::RemoveResource { sid: "vm:100".into() },
                Op::SetRules(rules_of(
                    "resource-affinity: apart\n\taffinity negative\n\tresources vm:101,vm:102\n\n"
                )),
            ]
        );
    }

    #[test]
    fn rules_view_marks_conflicts() {
        let mut snap = snapshot();
        *snap.state.rules = rules_of(
            "node-affinity: ra\n\tnodes node1\n\tresources vm:100\n\n\
                                node-affinity: rb\n\tnodes node2\n\tresources vm:100\n\n\
                                resource-affinity: rc\n\tdisable\n\taffinity positive\n\tresources vm:100,vm:101\n\n",
        );
        let Response::Rules { rules, .. } = read(
            &Request::RulesConfig {
                kind: None,
                resource: None,
            },
            &snap,
        )
        .unwrap() else {
            panic!()
        };
        let states: Vec<(&str, &str)> = rules.iter().map(|r| (r.rule.as_str(), r.state.as_str())).collect();
        assert_eq!(
            states,
            [
                ("ra", "ignored (conflicts)"),
                ("rb", "ignored (conflicts)"),
                ("rc", "in use")
            ]
        );
        assert_eq!(rules[2].disable, Some(1));
        assert_eq!(
            rules[0].errors,
            ["resource 'vm:100' is already used in another node affinity rule"]
        );
    }

    #[test]
    fn rules_check_reports_dropped_rules_in_check_order() {
        let mut snap = snapshot();
        *snap.state.rules = rules_of(
            "node-affinity: first-home\n\tnodes node1\n\tresources vm:100\n\n\
                                node-affinity: second-home\n\tnodes node2\n\tresources vm:100,vm:101\n\n\
                                resource-affinity: together\n\taffinity positive\n\tresources vm:100,vm:101\n\n",
        );
        let before = snap.state.clone();
        let Response::RulesCheck {
            nodes,
            checked,
            dropped,
        } = read(&Request::RulesCheck { rules_cfg: None }, &snap).unwrap()
        else {
            panic!()
        };
        assert_eq!(nodes, ["node1", "node2", "node3"]);
        assert_eq!(checked, 3);
        let ids: Vec<&str> = dropped.iter().map(|d| d.rule.as_str()).collect();
        assert_eq!(ids, ["first-home", "second-home", "together"]);
        assert_eq!(
            dropped[0].messages,
            [
                "resource 'vm:100' is already used in another node affinity rule",
                "at least one resource is in a positive resource affinity rule and there are other resources in at least one other node affinity rule already",
            ]
        );
        assert_eq!(snap.state, before);
    }

    #[test]
    fn rules_check_of_a_candidate_file() {
        let snap = snapshot();
        let candidate = "resource-affinity: apart\n\taffinity negative\n\tresources vm:1,vm:2,vm:3,vm:4\n";
        let Response::RulesCheck { checked, dropped, .. } = read(
            &Request::RulesCheck {
                rules_cfg: Some(candidate.into()),
            },
            &snap,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(checked, 1);
        assert_eq!(
            dropped,
            [DroppedRule {
                rule: "apart".into(),
                messages: vec!["rule defines more resources than available nodes".into()],
            }]
        );
        let err = read(
            &Request::RulesCheck {
                rules_cfg: Some("resource-affinity: apart\n\tresources vm:1,vm:2\n".into()),
            },
            &snap,
        )
        .unwrap_err();
        assert_eq!(err, "rules.cfg: line 1: rule 'apart': missing key 'affinity'");
    }
}
