//! Table tests for node selection and scoring (spec §5.1–§5.5, §5.7, §5.8).
//!
//! Each table row is a named case; a failing row reports its name. The
//! expected nodes and numbers are worked out by hand from the spec (see the
//! comment on each row), or with the small reference implementations at
//! the end of this file, never with the code under test.

use std::collections::BTreeMap;

use hactor::config::rules::parse_rules;
use hactor::core::rules::{compile, transform};
use hactor::core::select::{CompiledRules, Preference, select_service_node};
use hactor::core::status::ServiceStatus;
use hactor::core::types::{NodeName, ServiceState};
use hactor::core::usage::{CrsMode, Migration, MigrationCandidate, NodeStats, RebalanceMethod, ResourceStats, Usage};

use ServiceState::{Migrate, Recovery, RequestStartBalance, Started, Stopped};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Every node the HA stack knows (rules are checked and compiled against
/// these); the online ones are given per case.
const ALL_NODES: [&str; 4] = ["node1", "node2", "node3", "node4"];
const THREE: &[&str] = &["node1", "node2", "node3"];
const FOUR: &[&str] = &["node1", "node2", "node3", "node4"];

// ---------------------------------------------------------------------------
// builders

fn sd(state: ServiceState, node: &str) -> ServiceStatus {
    ServiceStatus::new(state, node, "uid".into())
}

trait StatusExt {
    fn target(self, node: &str) -> Self;
    fn failed(self, nodes: &[&str]) -> Self;
    fn maintenance(self, node: &str) -> Self;
    fn running(self) -> Self;
}

impl StatusExt for ServiceStatus {
    fn target(mut self, node: &str) -> Self {
        self.target = Some(node.to_string());
        self
    }
    fn failed(mut self, nodes: &[&str]) -> Self {
        self.failed_nodes = Some(nodes.iter().map(|n| n.to_string()).collect());
        self
    }
    fn maintenance(mut self, node: &str) -> Self {
        self.maintenance_node = Some(node.to_string());
        self
    }
    fn running(mut self) -> Self {
        self.running = true;
        self
    }
}

fn svc(sid: &str, status: ServiceStatus) -> (String, ServiceStatus) {
    (sid.to_string(), status)
}

/// `count` unrelated started services on `node` (sids `ct:9<node digit><i>`).
fn filler(node: &str, count: usize) -> Vec<(String, ServiceStatus)> {
    let digit = node.trim_start_matches("node");
    (0..count)
        .map(|i| (format!("ct:9{digit}{i}"), sd(Started, node)))
        .collect()
}

/// A node with capacity and no load (static model).
fn cap(maxcpu: f64, maxmem_gib: f64) -> NodeStats {
    NodeStats {
        cpu: 0.0,
        maxcpu,
        mem: 0.0,
        maxmem: maxmem_gib * GIB,
    }
}

/// A node with measured load (dynamic model).
fn measured(cpu: f64, maxcpu: f64, mem_gib: f64, maxmem_gib: f64) -> NodeStats {
    NodeStats {
        cpu,
        maxcpu,
        mem: mem_gib * GIB,
        maxmem: maxmem_gib * GIB,
    }
}

/// Static service stats: configured maxima.
fn limits(maxcpu: f64, maxmem_gib: f64) -> ResourceStats {
    ResourceStats {
        cpu: maxcpu,
        maxcpu,
        mem: maxmem_gib * GIB,
        maxmem: maxmem_gib * GIB,
        measured_running: false,
    }
}

/// Dynamic service stats: measured usage and maxima.
fn usage_of(cpu: f64, maxcpu: f64, mem_gib: f64, maxmem_gib: f64, measured_running: bool) -> ResourceStats {
    ResourceStats {
        cpu,
        maxcpu,
        mem: mem_gib * GIB,
        maxmem: maxmem_gib * GIB,
        measured_running,
    }
}

/// Raw numbers (no GiB scaling) for the small rebalancing examples.
fn raw(cpu: f64, mem: f64) -> ResourceStats {
    ResourceStats {
        cpu,
        maxcpu: cpu,
        mem,
        maxmem: mem,
        measured_running: false,
    }
}

fn raw_node(maxcpu: f64, maxmem: f64) -> NodeStats {
    NodeStats {
        cpu: 0.0,
        maxcpu,
        mem: 0.0,
        maxmem,
    }
}

#[derive(Clone)]
enum Model {
    /// Service counts over these online nodes.
    Basic(&'static [&'static str]),
    /// A resource model; the online nodes are the keys of `nodes`.
    Scheduled {
        mode: CrsMode,
        nodes: Vec<(&'static str, NodeStats)>,
        stats: Vec<(&'static str, ResourceStats)>,
    },
}

fn names(nodes: &[&str]) -> Vec<NodeName> {
    nodes.iter().map(|n| n.to_string()).collect()
}

/// Builds the usage of `model` with every service accounted, either all at
/// once (`set_all`) or one by one (`set_service`).
fn build_usage(model: &Model, services: &BTreeMap<String, ServiceStatus>, one_by_one: bool) -> Usage {
    let mut usage = match model {
        Model::Basic(online) => Usage::basic(&names(online)),
        Model::Scheduled { mode, nodes, stats } => Usage::scheduled(
            *mode,
            nodes.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
            stats.iter().map(|(sid, s)| (sid.to_string(), *s)).collect(),
        ),
    };
    if one_by_one {
        for (sid, sd) in services {
            usage.set_service(sid, sd);
        }
    } else {
        usage.set_all(services);
    }
    usage
}

fn compile_rules(case: &str, text: &str) -> CompiledRules {
    let all = names(&ALL_NODES);
    let rules = parse_rules(text).unwrap_or_else(|e| panic!("case '{case}': rules do not parse: {e}"));
    let (kept, messages) = transform(&rules, &all);
    assert!(messages.is_empty(), "case '{case}': rules dropped: {messages:?}");
    compile(&kept, &all)
}

// ---------------------------------------------------------------------------
// select_service_node

struct Case {
    name: &'static str,
    model: Model,
    services: Vec<(String, ServiceStatus)>,
    rules: &'static str,
    sid: &'static str,
    failback: bool,
    preference: Preference,
    expect: Option<&'static str>,
    /// Resource scoring must fail and be reported to the callback.
    score_error: bool,
}

fn base() -> Case {
    Case {
        name: "",
        model: Model::Basic(THREE),
        services: Vec::new(),
        rules: "",
        sid: "vm:101",
        failback: true,
        preference: Preference::BestScore,
        expect: None,
        score_error: false,
    }
}

/// Runs one case; returns a description of what went wrong, if anything.
fn check(case: &Case) -> Result<(), String> {
    let name = case.name;
    let rules = compile_rules(name, case.rules);
    let services: BTreeMap<String, ServiceStatus> = case.services.iter().cloned().collect();
    assert_eq!(services.len(), case.services.len(), "case '{name}': duplicate sid");
    let usage = build_usage(&case.model, &services, false);
    let incremental = build_usage(&case.model, &services, true);
    if usage.counts() != incremental.counts()
        || format!("{:?}", usage.score_nodes_to_start(case.sid))
            != format!("{:?}", incremental.score_nodes_to_start(case.sid))
    {
        return Err(format!("case '{name}': set_all and set_service disagree"));
    }
    let mut errors = Vec::new();
    let pick = select_service_node(
        &rules,
        &usage,
        case.sid,
        case.failback,
        &services,
        case.preference,
        &mut |e| errors.push(e),
    );
    if pick.as_deref() != case.expect {
        return Err(format!("case '{name}': expected {:?}, got {pick:?}", case.expect));
    }
    if errors.is_empty() == case.score_error {
        return Err(format!(
            "case '{name}': expected a scoring error: {}, reported: {errors:?}",
            case.score_error
        ));
    }
    Ok(())
}

fn run_table(cases: &[Case]) {
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
    let failures: Vec<String> = cases.iter().filter_map(|c| check(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}

const PREFER_NODE2: &str = "node-affinity: prefer2\n\tnodes node2:2,node1:1\n\tresources vm:101\n";
const STRICT_NODE3: &str = "node-affinity: only3\n\tnodes node3\n\tresources vm:101\n\tstrict 1\n";
const STRICT_NODE2_NODE3: &str = "node-affinity: two3\n\tnodes node2,node3\n\tresources vm:101\n\tstrict 1\n";
const LOOSE_NODE4: &str = "node-affinity: four\n\tnodes node4\n\tresources vm:101\n";
const APART: &str = "resource-affinity: apart\n\tresources vm:101,vm:102\n\taffinity negative\n";
const TOGETHER: &str = "resource-affinity: together\n\tresources vm:101,vm:102\n\taffinity positive\n";
const TOGETHER3: &str = "resource-affinity: together\n\tresources vm:101,vm:102,vm:103\n\taffinity positive\n";
const TOGETHER4: &str = "resource-affinity: together\n\tresources vm:101,vm:102,vm:103,vm:104\n\taffinity positive\n";
const TOGETHER_STRICT: &str = "node-affinity: one-two\n\tnodes node1,node2\n\tresources vm:101\n\tstrict 1\n\n\
                               resource-affinity: together\n\tresources vm:101,vm:102\n\taffinity positive\n";

fn preference_and_node_affinity_cases() -> Vec<Case> {
    vec![
        Case {
            name: "none stays on the current node, even if it is the busiest",
            services: [vec![svc("vm:101", sd(Started, "node2"))], filler("node2", 3)].concat(),
            preference: Preference::None,
            expect: Some("node2"),
            ..base()
        },
        Case {
            name: "none stays on the current node with failback=0",
            services: [vec![svc("vm:101", sd(Started, "node3"))], filler("node3", 2)].concat(),
            failback: false,
            preference: Preference::None,
            expect: Some("node3"),
            ..base()
        },
        Case {
            name: "none stays on a top-priority node of a rule",
            services: [vec![svc("vm:101", sd(Started, "node2"))], filler("node2", 3)].concat(),
            rules: PREFER_NODE2,
            preference: Preference::None,
            expect: Some("node2"),
            ..base()
        },
        Case {
            // counts: node1 1, node2 1, node3 0 (node4 offline is not scored)
            name: "none with the current node offline picks the least loaded",
            services: [
                vec![svc("vm:101", sd(Started, "node4"))],
                filler("node1", 1),
                filler("node2", 1),
            ]
            .concat(),
            preference: Preference::None,
            expect: Some("node3"),
            ..base()
        },
        Case {
            name: "failback=1 moves to the higher-priority node of a non-strict rule",
            services: vec![svc("vm:101", sd(Started, "node1"))],
            rules: PREFER_NODE2,
            preference: Preference::None,
            expect: Some("node2"),
            ..base()
        },
        Case {
            name: "failback=1 moves to the higher-priority node even if it is busier",
            services: [vec![svc("vm:101", sd(Started, "node1"))], filler("node2", 4)].concat(),
            rules: PREFER_NODE2,
            preference: Preference::None,
            expect: Some("node2"),
            ..base()
        },
        Case {
            name: "failback=0 stays on a lower-priority allowed node",
            services: vec![svc("vm:101", sd(Started, "node1"))],
            rules: PREFER_NODE2,
            failback: false,
            preference: Preference::None,
            expect: Some("node1"),
            ..base()
        },
        Case {
            // a non-strict rule allows every other node at priority -1
            name: "failback=0 stays on a node a non-strict rule does not list",
            services: vec![svc("vm:101", sd(Started, "node3"))],
            rules: PREFER_NODE2,
            failback: false,
            preference: Preference::None,
            expect: Some("node3"),
            ..base()
        },
        Case {
            // strict node2,node3: node1 not allowed; counts node2 1, node3 0
            name: "failback=0 leaves a node a strict rule does not allow",
            services: [vec![svc("vm:101", sd(Started, "node1"))], filler("node2", 1)].concat(),
            rules: STRICT_NODE2_NODE3,
            failback: false,
            preference: Preference::None,
            expect: Some("node3"),
            ..base()
        },
        Case {
            name: "best-score recovery goes to the top-priority node, not the least loaded",
            services: [vec![svc("vm:101", sd(Recovery, "node4"))], filler("node2", 2)].concat(),
            rules: PREFER_NODE2,
            expect: Some("node2"),
            ..base()
        },
        Case {
            // rule lists node4 only (offline): every other node at -1 is pri
            name: "non-strict rule with its nodes offline falls back to any node and stays",
            services: [vec![svc("vm:101", sd(Started, "node2"))], filler("node2", 2)].concat(),
            rules: LOOSE_NODE4,
            preference: Preference::None,
            expect: Some("node2"),
            ..base()
        },
        Case {
            name: "non-strict rule with its nodes offline: recovery picks the least loaded",
            services: [
                vec![svc("vm:101", sd(Recovery, "node4"))],
                filler("node1", 1),
                filler("node3", 1),
            ]
            .concat(),
            rules: LOOSE_NODE4,
            expect: Some("node2"),
            ..base()
        },
        Case {
            name: "strict rule with no allowed node online returns nothing (best-score)",
            services: vec![svc("vm:101", sd(Recovery, "node3"))],
            model: Model::Basic(&["node1", "node2"]),
            rules: STRICT_NODE3,
            expect: None,
            ..base()
        },
        Case {
            name: "strict rule with no allowed node online returns nothing (none)",
            services: vec![svc("vm:101", sd(Started, "node1"))],
            model: Model::Basic(&["node1", "node2"]),
            rules: STRICT_NODE3,
            preference: Preference::None,
            failback: false,
            expect: None,
            ..base()
        },
        Case {
            name: "unknown sid returns nothing",
            services: vec![svc("vm:102", sd(Started, "node1"))],
            preference: Preference::None,
            expect: None,
            ..base()
        },
        Case {
            name: "no online node returns nothing",
            services: vec![svc("vm:101", sd(Recovery, "node1"))],
            model: Model::Basic(&[]),
            expect: None,
            ..base()
        },
    ]
}

fn try_next_and_maintenance_cases() -> Vec<Case> {
    vec![
        Case {
            // counts: node1 1 (self), node2 1, node3 0; node1 tried
            name: "try-next skips the failed current node and picks the best untried",
            services: [
                vec![svc("fa:120", sd(Started, "node1").failed(&["node1"]))],
                filler("node2", 1),
            ]
            .concat(),
            sid: "fa:120",
            preference: Preference::TryNext,
            expect: Some("node3"),
            ..base()
        },
        Case {
            // counts: node1 2, node2 3, node3 1 (self), node4 0 but tried.
            // score order of the rest: node3, node1, node2 -> after node3
            name: "try-next picks the node after the current one in score order",
            model: Model::Basic(FOUR),
            services: [
                vec![svc("fa:120", sd(Started, "node3").failed(&["node4"]))],
                filler("node1", 2),
                filler("node2", 3),
            ]
            .concat(),
            sid: "fa:120",
            preference: Preference::TryNext,
            expect: Some("node1"),
            ..base()
        },
        Case {
            // counts: node1 2, node2 3 (self + 2), node3 1, node4 tried.
            // order node3, node1, node2: current is last -> the first
            name: "try-next wraps to the first node when the current one is last",
            model: Model::Basic(FOUR),
            services: [
                vec![svc("fa:120", sd(Started, "node2").failed(&["node4"]))],
                filler("node1", 2),
                filler("node2", 2),
                filler("node3", 1),
            ]
            .concat(),
            sid: "fa:120",
            preference: Preference::TryNext,
            expect: Some("node3"),
            ..base()
        },
        Case {
            name: "try-next with every online node tried returns nothing (caller retries on current)",
            services: vec![svc("fa:120", sd(Started, "node2").failed(&["node1", "node2", "node3"]))],
            sid: "fa:120",
            preference: Preference::TryNext,
            expect: None,
            ..base()
        },
        Case {
            name: "try-next respects a strict rule: the only untried allowed node",
            services: [
                vec![svc("vm:101", sd(Started, "node2").failed(&["node2"]))],
                filler("node3", 3),
            ]
            .concat(),
            rules: STRICT_NODE2_NODE3,
            preference: Preference::TryNext,
            expect: Some("node3"),
            ..base()
        },
        Case {
            name: "failed nodes are ignored by best-score",
            services: vec![svc("vm:101", sd(Recovery, "node4").failed(&["node1"]))],
            expect: Some("node1"),
            ..base()
        },
        Case {
            name: "maintenance fallback node is preferred when back online",
            services: [
                vec![svc("vm:101", sd(Started, "node2").maintenance("node1"))],
                filler("node1", 3),
            ]
            .concat(),
            preference: Preference::None,
            expect: Some("node1"),
            ..base()
        },
        Case {
            name: "maintenance fallback node beats a lighter node under best-score",
            services: [
                vec![svc("vm:101", sd(Started, "node2").maintenance("node1"))],
                filler("node1", 3),
            ]
            .concat(),
            expect: Some("node1"),
            ..base()
        },
        Case {
            // step 4 returns the current node before the fallback is looked at
            name: "failback=0 under none keeps the current node over the maintenance fallback",
            services: vec![svc("vm:101", sd(Started, "node2").maintenance("node1"))],
            failback: false,
            preference: Preference::None,
            expect: Some("node2"),
            ..base()
        },
        Case {
            name: "maintenance fallback node still offline: stay",
            model: Model::Basic(&["node2", "node3"]),
            services: [
                vec![svc("vm:101", sd(Started, "node2").maintenance("node1"))],
                filler("node2", 3),
            ]
            .concat(),
            preference: Preference::None,
            expect: Some("node2"),
            ..base()
        },
        Case {
            // prefer2: pri = {node2}; fallback node1 is only priority 1
            name: "maintenance fallback outside the top priority is not used",
            services: vec![svc("vm:101", sd(Started, "node2").maintenance("node1"))],
            rules: PREFER_NODE2,
            preference: Preference::None,
            expect: Some("node2"),
            ..base()
        },
        Case {
            name: "maintenance fallback that holds a negative partner is not used",
            services: vec![
                svc("vm:101", sd(Started, "node2").maintenance("node1")),
                svc("vm:102", sd(Started, "node1")),
            ],
            rules: APART,
            preference: Preference::None,
            expect: Some("node2"),
            ..base()
        },
    ]
}

fn resource_affinity_cases() -> Vec<Case> {
    vec![
        Case {
            // vm:102 migrates node1 -> node2: both excluded, node3 is busy
            name: "negative affinity excludes a partner's current and target nodes",
            services: [
                vec![
                    svc("vm:101", sd(Recovery, "node4")),
                    svc("vm:102", sd(Migrate, "node1").target("node2")),
                ],
                filler("node3", 3),
            ]
            .concat(),
            rules: APART,
            expect: Some("node3"),
            ..base()
        },
        Case {
            // request_start_balance has a target but no current node:
            // node2 excluded, node1 (2) beats node3 (3)
            name: "negative affinity: a balanced start excludes only its target",
            services: [
                vec![
                    svc("vm:101", sd(Recovery, "node4")),
                    svc("vm:102", sd(RequestStartBalance, "node1").target("node2")),
                ],
                filler("node1", 2),
                filler("node3", 3),
            ]
            .concat(),
            rules: APART,
            expect: Some("node1"),
            ..base()
        },
        Case {
            name: "negative affinity: a stopped partner excludes nothing",
            services: [
                vec![
                    svc("vm:101", sd(Recovery, "node4")),
                    svc("vm:102", sd(Stopped, "node1")),
                ],
                filler("node2", 1),
                filler("node3", 1),
            ]
            .concat(),
            rules: APART,
            expect: Some("node1"),
            ..base()
        },
        Case {
            // counts: node2 1, node3 0
            name: "negative affinity: none with failback=0 leaves a partner's node",
            services: [
                vec![svc("vm:101", sd(Started, "node1")), svc("vm:102", sd(Started, "node1"))],
                filler("node2", 1),
            ]
            .concat(),
            rules: APART,
            failback: false,
            preference: Preference::None,
            expect: Some("node3"),
            ..base()
        },
        Case {
            name: "negative affinity: none stays when the partner is elsewhere",
            services: vec![svc("vm:101", sd(Started, "node1")), svc("vm:102", sd(Started, "node2"))],
            rules: APART,
            preference: Preference::None,
            expect: Some("node1"),
            ..base()
        },
        Case {
            name: "negative affinity: every node excluded returns nothing",
            model: Model::Basic(&["node1"]),
            services: vec![
                svc("vm:101", sd(Recovery, "node4")),
                svc("vm:102", sd(Started, "node1")),
            ],
            rules: APART,
            expect: None,
            ..base()
        },
        Case {
            name: "positive affinity pulls to the partner's node even if busy",
            services: [
                vec![
                    svc("vm:101", sd(Recovery, "node4")),
                    svc("vm:102", sd(Started, "node3")),
                ],
                filler("node3", 3),
            ]
            .concat(),
            rules: TOGETHER,
            expect: Some("node3"),
            ..base()
        },
        Case {
            name: "positive affinity prefers a moving partner's target over its current node",
            services: vec![
                svc("vm:101", sd(Recovery, "node4")),
                svc("vm:102", sd(Migrate, "node1").target("node3")),
            ],
            rules: TOGETHER,
            expect: Some("node3"),
            ..base()
        },
        Case {
            name: "positive affinity ties go to the alphabetically first node",
            services: [
                vec![
                    svc("vm:101", sd(Recovery, "node4")),
                    svc("vm:102", sd(Started, "node3")),
                    svc("vm:103", sd(Started, "node2")),
                ],
                filler("node2", 2),
            ]
            .concat(),
            rules: TOGETHER3,
            expect: Some("node2"),
            ..base()
        },
        Case {
            name: "positive affinity picks the node with most partners",
            services: vec![
                svc("vm:101", sd(Recovery, "node4")),
                svc("vm:102", sd(Started, "node3")),
                svc("vm:103", sd(Started, "node3")),
                svc("vm:104", sd(Started, "node1")),
            ],
            rules: TOGETHER4,
            expect: Some("node3"),
            ..base()
        },
        Case {
            name: "positive affinity with failback=1 follows the partner under none",
            services: vec![svc("vm:101", sd(Started, "node1")), svc("vm:102", sd(Started, "node3"))],
            rules: TOGETHER,
            preference: Preference::None,
            expect: Some("node3"),
            ..base()
        },
        Case {
            name: "positive affinity with failback=0 stays under none",
            services: vec![svc("vm:101", sd(Started, "node1")), svc("vm:102", sd(Started, "node3"))],
            rules: TOGETHER,
            failback: false,
            preference: Preference::None,
            expect: Some("node1"),
            ..base()
        },
        Case {
            // the strict rule spreads to vm:102; node3 is not allowed.
            // counts: node1 1, node2 0
            name: "positive affinity ignores a partner on a node outside the allowed ones",
            services: [
                vec![
                    svc("vm:101", sd(Recovery, "node4")),
                    svc("vm:102", sd(Started, "node3")),
                ],
                filler("node1", 1),
            ]
            .concat(),
            rules: TOGETHER_STRICT,
            expect: Some("node2"),
            ..base()
        },
        Case {
            name: "positive affinity: a stopped partner pulls nowhere",
            services: [
                vec![
                    svc("vm:101", sd(Recovery, "node4")),
                    svc("vm:102", sd(Stopped, "node1")),
                ],
                filler("node1", 1),
                filler("node2", 1),
            ]
            .concat(),
            rules: TOGETHER,
            expect: Some("node3"),
            ..base()
        },
    ]
}

fn basic_scoring_cases() -> Vec<Case> {
    vec![
        Case {
            // counts node1 2, node2 1, node3 1 -> node2 by name
            name: "basic picks the least loaded node, ties by name",
            services: [
                vec![svc("vm:101", sd(Recovery, "node4"))],
                filler("node1", 2),
                filler("node2", 1),
                filler("node3", 1),
            ]
            .concat(),
            expect: Some("node2"),
            ..base()
        },
        Case {
            name: "basic on an empty cluster picks the first node by name",
            services: vec![svc("vm:101", sd(Recovery, "node4"))],
            expect: Some("node1"),
            ..base()
        },
        Case {
            // vm:1 migrating node1 -> node2 counts on both: node1 1, node2 1,
            // node3 2 -> node1 (node2 would win if the target were not counted)
            name: "basic counts a migrating service on its source and its target",
            services: [
                vec![
                    svc("vm:101", sd(Recovery, "node4")),
                    svc("vm:1", sd(Migrate, "node1").target("node2")),
                ],
                filler("node3", 2),
            ]
            .concat(),
            expect: Some("node1"),
            ..base()
        },
        Case {
            // stopped services do not count: node1 0 (+2 stopped), node2 1
            name: "basic does not count stopped services",
            model: Model::Basic(&["node1", "node2"]),
            services: [
                vec![
                    svc("vm:101", sd(Recovery, "node4")),
                    svc("vm:1", sd(Stopped, "node1")),
                    svc("vm:2", sd(Stopped, "node1")),
                ],
                filler("node2", 1),
            ]
            .concat(),
            expect: Some("node1"),
            ..base()
        },
    ]
}

fn scheduled_scoring_cases() -> Vec<Case> {
    let hetero = vec![
        ("node1", cap(64.0, 32.0)),
        ("node2", cap(8.0, 256.0)),
        ("node3", cap(16.0, 64.0)),
    ];
    let homogeneous = vec![
        ("node1", cap(16.0, 64.0)),
        ("node2", cap(16.0, 64.0)),
        ("node3", cap(16.0, 64.0)),
    ];
    vec![
        Case {
            // mem ratios 48/32, 48/256, 48/64; memory weighs 5+10 of 18
            name: "static sends a memory-heavy service to the node with most free memory",
            model: Model::Scheduled {
                mode: CrsMode::Static,
                nodes: hetero.clone(),
                stats: vec![("vm:101", limits(1.0, 48.0))],
            },
            services: vec![svc("vm:101", sd(Recovery, "node4"))],
            expect: Some("node2"),
            ..base()
        },
        Case {
            // cpu ratios 32/64, 32/8, 32/16; memory almost equal
            name: "static sends a CPU-heavy service to the node with most CPUs",
            model: Model::Scheduled {
                mode: CrsMode::Static,
                nodes: hetero.clone(),
                stats: vec![("vm:101", limits(32.0, 1.0))],
            },
            services: vec![svc("vm:101", sd(Recovery, "node4"))],
            expect: Some("node1"),
            ..base()
        },
        Case {
            // node1 and node2 each hold one big guest, node3 two small ones:
            // counts would pick node1, resources pick node3
            name: "static weighs existing services by their size, not their number",
            model: Model::Scheduled {
                mode: CrsMode::Static,
                nodes: homogeneous.clone(),
                stats: vec![
                    ("vm:101", limits(2.0, 4.0)),
                    ("vm:1", limits(8.0, 40.0)),
                    ("vm:2", limits(8.0, 48.0)),
                    ("vm:3", limits(1.0, 1.0)),
                    ("vm:4", limits(1.0, 1.0)),
                ],
            },
            services: vec![
                svc("vm:101", sd(Recovery, "node4")),
                svc("vm:1", sd(Started, "node1")),
                svc("vm:2", sd(Started, "node2")),
                svc("vm:3", sd(Started, "node3")),
                svc("vm:4", sd(Started, "node3")),
            ],
            expect: Some("node3"),
            ..base()
        },
        Case {
            name: "static on identical empty nodes ties by name",
            model: Model::Scheduled {
                mode: CrsMode::Static,
                nodes: homogeneous.clone(),
                stats: vec![("vm:101", limits(4.0, 8.0))],
            },
            services: vec![svc("vm:101", sd(Recovery, "node4"))],
            expect: Some("node1"),
            ..base()
        },
        Case {
            // memory is symmetric (2 GiB on each); vm:1 with maxcpu 0 fills
            // node1's 16 CPUs, vm:2 takes 8 of node2's -> node2. Were
            // maxcpu 0 counted as 0 CPUs, node1 would win.
            name: "static counts maxcpu 0 as the whole node",
            model: Model::Scheduled {
                mode: CrsMode::Static,
                nodes: vec![("node1", cap(16.0, 64.0)), ("node2", cap(16.0, 64.0))],
                stats: vec![
                    ("vm:101", limits(1.0, 1.0)),
                    ("vm:1", limits(0.0, 2.0)),
                    ("vm:2", limits(8.0, 2.0)),
                ],
            },
            services: vec![
                svc("vm:101", sd(Recovery, "node4")),
                svc("vm:1", sd(Started, "node1")),
                svc("vm:2", sd(Started, "node2")),
            ],
            expect: Some("node2"),
            ..base()
        },
        Case {
            // node1 measured 4/16 CPUs, 16/64 GiB (vm:1 running, already in
            // the measurement); vm:2 on node2 not yet running counts at its
            // maximum 8 CPUs, 32 GiB -> node1 is lighter. Counting vm:1 at
            // its maximum (16, 64) or vm:2 at its measured usage (1, 1)
            // would pick node2.
            name: "dynamic counts a starting service at its maximum and a running one as measured",
            model: Model::Scheduled {
                mode: CrsMode::Dynamic,
                nodes: vec![
                    ("node1", measured(4.0, 16.0, 16.0, 64.0)),
                    ("node2", measured(0.0, 16.0, 0.0, 64.0)),
                ],
                stats: vec![
                    ("vm:101", usage_of(0.5, 1.0, 0.5, 1.0, false)),
                    ("vm:1", usage_of(4.0, 16.0, 16.0, 64.0, false)),
                    ("vm:2", usage_of(1.0, 8.0, 1.0, 32.0, false)),
                ],
            },
            services: vec![
                svc("vm:101", sd(Recovery, "node3")),
                svc("vm:1", sd(Started, "node1").running()),
                svc("vm:2", sd(Started, "node2")),
            ],
            expect: Some("node1"),
            ..base()
        },
        Case {
            // same, but the measurement of node2 already includes vm:2
            // (measured_running): node2 at 1/16, 1/64 is lighter
            name: "dynamic counts a service the measurement already includes as running",
            model: Model::Scheduled {
                mode: CrsMode::Dynamic,
                nodes: vec![
                    ("node1", measured(4.0, 16.0, 16.0, 64.0)),
                    ("node2", measured(1.0, 16.0, 1.0, 64.0)),
                ],
                stats: vec![
                    ("vm:101", usage_of(0.5, 1.0, 0.5, 1.0, false)),
                    ("vm:1", usage_of(4.0, 16.0, 16.0, 64.0, false)),
                    ("vm:2", usage_of(1.0, 8.0, 1.0, 32.0, true)),
                ],
            },
            services: vec![
                svc("vm:101", sd(Recovery, "node3")),
                svc("vm:1", sd(Started, "node1").running()),
                svc("vm:2", sd(Started, "node2")),
            ],
            expect: Some("node2"),
            ..base()
        },
        Case {
            // node2 has no CPUs: loads become infinite/NaN, scoring fails,
            // counts decide: node1 2, node2 0, node3 1
            name: "a resource-scoring error falls back to service counts and is reported",
            model: Model::Scheduled {
                mode: CrsMode::Static,
                nodes: vec![
                    ("node1", cap(16.0, 64.0)),
                    ("node2", cap(0.0, 64.0)),
                    ("node3", cap(16.0, 64.0)),
                ],
                stats: vec![("vm:101", limits(1.0, 1.0))],
            },
            services: [
                vec![svc("vm:101", sd(Recovery, "node4"))],
                filler("node1", 2),
                filler("node3", 1),
            ]
            .concat(),
            expect: Some("node2"),
            score_error: true,
            ..base()
        },
        Case {
            name: "a resource-scoring error is not hit when none keeps the current node",
            model: Model::Scheduled {
                mode: CrsMode::Static,
                nodes: vec![("node1", cap(16.0, 64.0)), ("node2", cap(0.0, 64.0))],
                stats: vec![("vm:101", limits(1.0, 1.0))],
            },
            services: vec![svc("vm:101", sd(Started, "node1"))],
            preference: Preference::None,
            expect: Some("node1"),
            ..base()
        },
    ]
}

#[test]
fn preference_and_node_affinity() {
    run_table(&preference_and_node_affinity_cases());
}

#[test]
fn try_next_and_maintenance_fallback() {
    run_table(&try_next_and_maintenance_cases());
}

#[test]
fn resource_affinity() {
    run_table(&resource_affinity_cases());
}

#[test]
fn basic_scoring() {
    run_table(&basic_scoring_cases());
}

#[test]
fn static_and_dynamic_scoring() {
    run_table(&scheduled_scoring_cases());
}

// ---------------------------------------------------------------------------
// scores and imbalance as numbers

/// Reference TOPSIS (spec §5.8) for all-minimised criteria with weights
/// 1, 2, 5, 10: higher is better.
fn reference_topsis(matrix: &[[f64; 4]]) -> Vec<f64> {
    let signed = [-1.0, -2.0, -5.0, -10.0];
    let total: f64 = signed.iter().map(|w: &f64| w.abs()).sum();
    let w: Vec<f64> = signed.iter().map(|x: &f64| x.abs() / total).collect();
    let mut m = matrix.to_vec();
    for j in 0..4 {
        let norm = matrix.iter().map(|r| r[j] * r[j]).sum::<f64>().sqrt();
        if norm != 0.0 {
            m.iter_mut().for_each(|r| r[j] /= norm);
        }
    }
    let best: Vec<f64> = (0..4)
        .map(|j| m.iter().map(|r| r[j]).fold(f64::MAX, f64::min))
        .collect();
    let worst: Vec<f64> = (0..4)
        .map(|j| m.iter().map(|r| r[j]).fold(f64::MIN, f64::max))
        .collect();
    m.iter()
        .map(|r| {
            let dist = |ideal: &[f64]| (0..4).map(|j| (w[j] * (r[j] - ideal[j])).powi(2)).sum::<f64>().sqrt();
            let (plus, minus) = (dist(&best), dist(&worst));
            if plus + minus == 0.0 {
                0.0
            } else {
                minus / (plus + minus)
            }
        })
        .collect()
}

/// The spec's criteria over per-node (cpu ratio, mem ratio) pairs:
/// `[1 + RMS cpu, 1 + max cpu, 1 + RMS mem, 1 + max mem]`.
fn reference_criteria(ratios: &[(f64, f64)]) -> [f64; 4] {
    let n = ratios.len() as f64;
    let rms = |f: fn(&(f64, f64)) -> f64| (ratios.iter().map(|r| f(r).powi(2)).sum::<f64>() / n).sqrt();
    let max = |f: fn(&(f64, f64)) -> f64| ratios.iter().map(f).fold(0.0, f64::max);
    [
        1.0 + rms(|r| r.0),
        1.0 + max(|r| r.0),
        1.0 + rms(|r| r.1),
        1.0 + max(|r| r.1),
    ]
}

/// Population coefficient of variation.
fn reference_cv(loads: &[f64]) -> f64 {
    let n = loads.len() as f64;
    let mean = loads.iter().sum::<f64>() / n;
    (loads.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n).sqrt() / mean
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn static_scores_match_the_reference_topsis() {
    struct ScoreCase {
        name: &'static str,
        nodes: Vec<(&'static str, NodeStats)>,
        /// (sid, node) of services already placed, with their limits.
        placed: Vec<(&'static str, &'static str, ResourceStats)>,
        service: ResourceStats,
        /// Per node, in name order: the (cpu, mem) the service adds there.
        added: Vec<(f64, f64)>,
        /// Hand-computed scores (lower is better), where the example is
        /// small enough.
        expect: Option<Vec<f64>>,
    }
    let cases = vec![
        ScoreCase {
            // candidate node1: ratios (1/8, 1/8), (0, 0); node2: (0, 0),
            // (1/4, 1/4): node1 is better in every criterion -> 1 and 0
            name: "a dominating node scores -1, the dominated one 0",
            nodes: vec![("node1", cap(32.0, 128.0)), ("node2", cap(16.0, 64.0))],
            placed: vec![],
            service: limits(4.0, 16.0),
            added: vec![(4.0, 16.0 * GIB), (4.0, 16.0 * GIB)],
            expect: Some(vec![-1.0, 0.0]),
        },
        ScoreCase {
            name: "identical nodes all score 0",
            nodes: vec![("node1", cap(16.0, 64.0)), ("node2", cap(16.0, 64.0))],
            placed: vec![],
            service: limits(4.0, 16.0),
            added: vec![(4.0, 16.0 * GIB), (4.0, 16.0 * GIB)],
            expect: Some(vec![0.0, 0.0]),
        },
        ScoreCase {
            name: "heterogeneous nodes, memory-heavy service",
            nodes: vec![
                ("node1", cap(64.0, 32.0)),
                ("node2", cap(8.0, 256.0)),
                ("node3", cap(16.0, 64.0)),
            ],
            placed: vec![],
            service: limits(1.0, 48.0),
            added: vec![(1.0, 48.0 * GIB); 3],
            expect: None,
        },
        ScoreCase {
            name: "heterogeneous nodes, CPU-heavy service, existing load",
            nodes: vec![
                ("node1", cap(64.0, 32.0)),
                ("node2", cap(8.0, 256.0)),
                ("node3", cap(16.0, 64.0)),
            ],
            placed: vec![
                ("vm:1", "node1", limits(16.0, 8.0)),
                ("vm:2", "node3", limits(2.0, 30.0)),
            ],
            service: limits(32.0, 1.0),
            added: vec![(32.0, GIB); 3],
            expect: None,
        },
        ScoreCase {
            // maxcpu 0 adds the candidate's whole CPU count
            name: "a service with maxcpu 0 adds the whole node's CPUs",
            nodes: vec![("node1", cap(8.0, 64.0)), ("node2", cap(32.0, 64.0))],
            placed: vec![],
            service: limits(0.0, 4.0),
            added: vec![(8.0, 4.0 * GIB), (32.0, 4.0 * GIB)],
            expect: None,
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let mut stats: BTreeMap<String, ResourceStats> = BTreeMap::from([("vm:new".to_string(), case.service)]);
        let mut services = BTreeMap::new();
        for (sid, node, s) in &case.placed {
            stats.insert(sid.to_string(), *s);
            services.insert(sid.to_string(), sd(Started, node));
        }
        let mut usage = Usage::scheduled(
            CrsMode::Static,
            case.nodes.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
            stats,
        );
        usage.set_all(&services);
        let got = match usage.score_nodes_to_start("vm:new") {
            Ok(scores) => scores,
            Err(e) => {
                failures.push(format!("case '{}': scoring failed: {e}", case.name));
                continue;
            }
        };
        // independent: base load per node, then each candidate
        let base: Vec<(f64, f64, NodeStats)> = case
            .nodes
            .iter()
            .map(|(name, n)| {
                let (mut cpu, mut mem) = (n.cpu, n.mem);
                for (_, node, s) in &case.placed {
                    if node == name {
                        cpu += s.maxcpu;
                        mem += s.maxmem;
                    }
                }
                (cpu, mem, *n)
            })
            .collect();
        let matrix: Vec<[f64; 4]> = (0..base.len())
            .map(|candidate| {
                let ratios: Vec<(f64, f64)> = base
                    .iter()
                    .enumerate()
                    .map(|(i, (cpu, mem, n))| {
                        let (add_cpu, add_mem) = if i == candidate { case.added[i] } else { (0.0, 0.0) };
                        ((cpu + add_cpu) / n.maxcpu, (mem + add_mem) / n.maxmem)
                    })
                    .collect();
                reference_criteria(&ratios)
            })
            .collect();
        let reference: Vec<f64> = reference_topsis(&matrix).into_iter().map(|s| -s).collect();
        let got: Vec<f64> = case.nodes.iter().map(|(n, _)| got[*n]).collect();
        if got.len() != reference.len() || got.iter().zip(&reference).any(|(a, b)| (a - b).abs() > 1e-12) {
            failures.push(format!("case '{}': scores {got:?}, reference {reference:?}", case.name));
        }
        if let Some(expect) = &case.expect
            && got.iter().zip(expect).any(|(a, b)| !close(*a, *b))
        {
            failures.push(format!("case '{}': scores {got:?}, expected {expect:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn scoring_with_a_cpu_less_node_is_an_error() {
    let usage = Usage::scheduled(
        CrsMode::Static,
        BTreeMap::from([
            ("node1".to_string(), cap(16.0, 64.0)),
            ("node2".to_string(), cap(0.0, 64.0)),
        ]),
        BTreeMap::from([("vm:1".to_string(), limits(1.0, 1.0))]),
    );
    assert!(usage.score_nodes_to_start("vm:1").is_err());
    // the fallback scores are plain counts
    assert_eq!(usage.counts().values().copied().collect::<Vec<_>>(), vec![0.0, 0.0]);
}

struct ImbalanceCase {
    name: &'static str,
    mode: CrsMode,
    nodes: Vec<(&'static str, NodeStats)>,
    stats: Vec<(&'static str, ResourceStats)>,
    services: Vec<(String, ServiceStatus)>,
    expect: f64,
}

fn imbalance_cases() -> Vec<ImbalanceCase> {
    let three = || {
        vec![
            ("node1", cap(16.0, 64.0)),
            ("node2", cap(16.0, 64.0)),
            ("node3", cap(16.0, 64.0)),
        ]
    };
    vec![
        ImbalanceCase {
            // loads (x, 0, 0): mean x/3, sd x·√2/3 -> √2
            name: "three nodes with loads (x, 0, 0) give sqrt(2)",
            mode: CrsMode::Static,
            nodes: three(),
            stats: vec![("vm:1", limits(4.0, 8.0))],
            services: vec![svc("vm:1", sd(Started, "node1"))],
            expect: 2f64.sqrt(),
        },
        ImbalanceCase {
            // loads (x, 0): mean x/2, sd x/2 -> 1
            name: "two nodes with loads (x, 0) give 1",
            mode: CrsMode::Static,
            nodes: vec![("node1", cap(16.0, 64.0)), ("node2", cap(32.0, 64.0))],
            stats: vec![("vm:1", limits(4.0, 8.0))],
            services: vec![svc("vm:1", sd(Started, "node2"))],
            expect: 1.0,
        },
        ImbalanceCase {
            name: "equal loads give 0",
            mode: CrsMode::Static,
            nodes: three(),
            stats: vec![
                ("vm:1", limits(4.0, 8.0)),
                ("vm:2", limits(4.0, 8.0)),
                ("vm:3", limits(4.0, 8.0)),
            ],
            services: vec![
                svc("vm:1", sd(Started, "node1")),
                svc("vm:2", sd(Started, "node2")),
                svc("vm:3", sd(Started, "node3")),
            ],
            expect: 0.0,
        },
        ImbalanceCase {
            name: "one node gives 0",
            mode: CrsMode::Static,
            nodes: vec![("node1", cap(16.0, 64.0))],
            stats: vec![("vm:1", limits(4.0, 8.0))],
            services: vec![svc("vm:1", sd(Started, "node1"))],
            expect: 0.0,
        },
        ImbalanceCase {
            name: "no load gives 0",
            mode: CrsMode::Static,
            nodes: three(),
            stats: vec![],
            services: vec![],
            expect: 0.0,
        },
        ImbalanceCase {
            // loads 0.2, 0.4, 0.6 (cpu and mem equal): mean 0.4,
            // variance (0.04 + 0 + 0.04) / 3 -> sd/mean = sqrt(1/6)
            name: "dynamic measured loads (0.2, 0.4, 0.6) give sqrt(1/6)",
            mode: CrsMode::Dynamic,
            nodes: vec![
                ("node1", measured(2.0, 10.0, 2.0, 10.0)),
                ("node2", measured(4.0, 10.0, 4.0, 10.0)),
                ("node3", measured(6.0, 10.0, 6.0, 10.0)),
            ],
            stats: vec![],
            services: vec![],
            expect: (1.0f64 / 6.0).sqrt(),
        },
        ImbalanceCase {
            // load = (cpu + mem) / 2: node1 (0.5 + 0.1) / 2 = 0.3, node2
            // (0.1 + 0.5) / 2 = 0.3 -> 0, although cpu and mem differ
            name: "load averages the cpu and mem ratios",
            mode: CrsMode::Dynamic,
            nodes: vec![
                ("node1", measured(8.0, 16.0, 6.4, 64.0)),
                ("node2", measured(1.6, 16.0, 32.0, 64.0)),
            ],
            stats: vec![],
            services: vec![],
            expect: 0.0,
        },
        ImbalanceCase {
            // node1 measured 0.25 (vm:1 running included), node2 gets the
            // starting vm:2 at its maximum: 0.5 -> mean 0.375, sd 0.125
            name: "dynamic: running as measured, starting at maximum",
            mode: CrsMode::Dynamic,
            nodes: vec![
                ("node1", measured(4.0, 16.0, 16.0, 64.0)),
                ("node2", measured(0.0, 16.0, 0.0, 64.0)),
            ],
            stats: vec![
                ("vm:1", usage_of(4.0, 16.0, 16.0, 64.0, false)),
                ("vm:2", usage_of(1.0, 8.0, 1.0, 32.0, false)),
            ],
            services: vec![
                svc("vm:1", sd(Started, "node1").running()),
                svc("vm:2", sd(Started, "node2")),
            ],
            expect: 1.0 / 3.0,
        },
        ImbalanceCase {
            // vm:2 migrates node1 -> node2: measured on node1 (0.25),
            // at its maximum on the target (0.5)
            name: "dynamic: a migrating service counts at its maximum on the target",
            mode: CrsMode::Dynamic,
            nodes: vec![
                ("node1", measured(4.0, 16.0, 16.0, 64.0)),
                ("node2", measured(0.0, 16.0, 0.0, 64.0)),
            ],
            stats: vec![("vm:2", usage_of(4.0, 8.0, 16.0, 32.0, true))],
            services: vec![svc("vm:2", sd(Migrate, "node1").target("node2"))],
            expect: 1.0 / 3.0,
        },
        ImbalanceCase {
            // vm:1 maxcpu 0 takes all 16 CPUs of node1, no memory:
            // loads (0.5, 0) -> 1
            name: "static: maxcpu 0 loads the whole node's CPUs",
            mode: CrsMode::Static,
            nodes: vec![("node1", cap(16.0, 64.0)), ("node2", cap(16.0, 64.0))],
            stats: vec![("vm:1", limits(0.0, 0.0))],
            services: vec![svc("vm:1", sd(Started, "node1"))],
            expect: 1.0,
        },
        ImbalanceCase {
            // static counts the maximum on source and target: loads
            // (0.25, 0.25) -> 0
            name: "static: a migrating service counts on source and target",
            mode: CrsMode::Static,
            nodes: vec![("node1", cap(16.0, 64.0)), ("node2", cap(16.0, 64.0))],
            stats: vec![("vm:1", limits(4.0, 16.0))],
            services: vec![svc("vm:1", sd(Migrate, "node1").target("node2"))],
            expect: 0.0,
        },
    ]
}

#[test]
fn imbalance_is_the_population_coefficient_of_variation() {
    let mut failures = Vec::new();
    for case in imbalance_cases() {
        let services: BTreeMap<String, ServiceStatus> = case.services.into_iter().collect();
        let model = Model::Scheduled {
            mode: case.mode,
            nodes: case.nodes,
            stats: case.stats,
        };
        let got = build_usage(&model, &services, false).imbalance();
        let incremental = build_usage(&model, &services, true).imbalance();
        if !close(got, case.expect) || !close(incremental, case.expect) {
            failures.push(format!(
                "case '{}': imbalance {got} (one by one {incremental}), expected {}",
                case.name, case.expect
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn imbalance_sanity_of_the_reference() {
    assert!(close(reference_cv(&[1.0, 0.0, 0.0]), 2f64.sqrt()));
    assert!(close(reference_cv(&[0.2, 0.4, 0.6]), (1.0f64 / 6.0).sqrt()));
}

#[test]
fn basic_mode_imbalance_is_zero() {
    // spec §5.5: "basic: ... Imbalance is always 0"
    let mut usage = Usage::basic(&names(THREE));
    let services: BTreeMap<String, ServiceStatus> = filler("node1", 3).into_iter().collect();
    usage.set_all(&services);
    assert_eq!(usage.imbalance(), 0.0);
}

// ---------------------------------------------------------------------------
// best_migration

struct MigrationCase {
    name: &'static str,
    /// Node capacities (raw units) and placed services with their usage.
    nodes: Vec<(&'static str, NodeStats)>,
    placed: Vec<(&'static str, &'static str, ResourceStats)>,
    /// (sid, source, target, moved usage)
    candidates: Vec<(&'static str, &'static str, &'static str, ResourceStats)>,
    method: RebalanceMethod,
    /// The winner and the imbalance after it (hand-computed).
    expect: Option<(&'static str, &'static str, &'static str, f64)>,
}

fn migration_cases() -> Vec<MigrationCase> {
    let ten = || {
        vec![
            ("node1", raw_node(10.0, 10.0)),
            ("node2", raw_node(10.0, 10.0)),
            ("node3", raw_node(10.0, 10.0)),
        ]
    };
    // loads: node1 0.5 (vm:1 0.3 + vm:2 0.2), node2 0.1 (vm:3), node3 0
    let uneven = || {
        vec![
            ("vm:1", "node1", raw(3.0, 3.0)),
            ("vm:2", "node1", raw(2.0, 2.0)),
            ("vm:3", "node2", raw(1.0, 1.0)),
        ]
    };
    // after each move (mean stays 0.2):
    //   vm:1 -> node2 (0.2, 0.4, 0)   sqrt(2/3)
    //   vm:1 -> node3 (0.2, 0.1, 0.3) sqrt(1/6)
    //   vm:2 -> node2 (0.3, 0.3, 0)   sqrt(1/2)
    //   vm:2 -> node3 (0.3, 0.1, 0.2) sqrt(1/6)
    //   vm:3 -> node3 (0.5, 0, 0.1)   sqrt(7/6)
    let all_moves = || {
        vec![
            ("vm:1", "node1", "node2", raw(3.0, 3.0)),
            ("vm:1", "node1", "node3", raw(3.0, 3.0)),
            ("vm:2", "node1", "node2", raw(2.0, 2.0)),
            ("vm:2", "node1", "node3", raw(2.0, 2.0)),
            ("vm:3", "node2", "node3", raw(1.0, 1.0)),
        ]
    };
    let sixth = (1.0f64 / 6.0).sqrt();
    vec![
        MigrationCase {
            name: "bruteforce picks the lowest imbalance, ties by sid",
            nodes: ten(),
            placed: uneven(),
            candidates: all_moves(),
            method: RebalanceMethod::Bruteforce,
            expect: Some(("vm:1", "node1", "node3", sixth)),
        },
        MigrationCase {
            name: "bruteforce does not depend on the candidate order",
            nodes: ten(),
            placed: uneven(),
            candidates: all_moves().into_iter().rev().collect(),
            method: RebalanceMethod::Bruteforce,
            expect: Some(("vm:1", "node1", "node3", sixth)),
        },
        MigrationCase {
            name: "bruteforce prefers a lower imbalance over a smaller sid",
            nodes: ten(),
            placed: uneven(),
            candidates: vec![
                ("vm:1", "node1", "node2", raw(3.0, 3.0)),
                ("vm:2", "node1", "node2", raw(2.0, 2.0)),
                ("vm:3", "node2", "node3", raw(1.0, 1.0)),
            ],
            method: RebalanceMethod::Bruteforce,
            expect: Some(("vm:2", "node1", "node2", 0.5f64.sqrt())),
        },
        MigrationCase {
            // node1 0.6 (vm:1 0.4 + vm:2 0.2): vm:1 -> node2 (0.2, 0.4, 0),
            // vm:1 -> node3 (0.2, 0, 0.4): both sqrt(2/3) -> target order
            name: "bruteforce ties on the same sid go to the first target",
            nodes: ten(),
            placed: vec![("vm:1", "node1", raw(4.0, 4.0)), ("vm:2", "node1", raw(2.0, 2.0))],
            candidates: vec![
                ("vm:1", "node1", "node3", raw(4.0, 4.0)),
                ("vm:1", "node1", "node2", raw(4.0, 4.0)),
            ],
            method: RebalanceMethod::Bruteforce,
            expect: Some(("vm:1", "node1", "node2", (2.0f64 / 3.0).sqrt())),
        },
        MigrationCase {
            // node1 0.4, node2 0.4, node3 0; moving 0.2 from either source
            // to node3 gives the same loads up to order -> source order
            name: "bruteforce ties on the same sid and target go to the first source",
            nodes: ten(),
            placed: vec![("vm:a", "node1", raw(4.0, 4.0)), ("vm:b", "node2", raw(4.0, 4.0))],
            candidates: vec![
                ("vm:1", "node2", "node3", raw(2.0, 2.0)),
                ("vm:1", "node1", "node3", raw(2.0, 2.0)),
            ],
            method: RebalanceMethod::Bruteforce,
            // loads (0.2, 0.4, 0.2) or (0.4, 0.2, 0.2): CV 1/(2·sqrt(2))
            expect: Some(("vm:1", "node1", "node3", 1.0 / (2.0 * 2f64.sqrt()))),
        },
        MigrationCase {
            name: "bruteforce without candidates gives nothing",
            nodes: ten(),
            placed: uneven(),
            candidates: vec![],
            method: RebalanceMethod::Bruteforce,
            expect: None,
        },
        MigrationCase {
            // two nodes of 10 CPUs, 10 memory. node1: vm:c (8, 1),
            // vm:m (1, 3) -> (9, 4); node2: vm:x (1, 2).
            //   move vm:c: node1 (1, 3) 0.2, node2 (9, 3) 0.6 -> CV 0.5
            //   move vm:m: node1 (8, 1) 0.45, node2 (2, 5) 0.35 -> CV 0.125
            // bruteforce takes vm:m.
            name: "bruteforce minimises the combined-load imbalance",
            nodes: vec![("node1", raw_node(10.0, 10.0)), ("node2", raw_node(10.0, 10.0))],
            placed: vec![
                ("vm:c", "node1", raw(8.0, 1.0)),
                ("vm:m", "node1", raw(1.0, 3.0)),
                ("vm:x", "node2", raw(1.0, 2.0)),
            ],
            candidates: vec![
                ("vm:c", "node1", "node2", raw(8.0, 1.0)),
                ("vm:m", "node1", "node2", raw(1.0, 3.0)),
            ],
            method: RebalanceMethod::Bruteforce,
            expect: Some(("vm:m", "node1", "node2", 0.125)),
        },
        MigrationCase {
            // same moves under TOPSIS: vm:c leaves cpu (0.1, 0.9), mem
            // (0.3, 0.3); vm:m leaves cpu (0.8, 0.2), mem (0.1, 0.5).
            // vm:c is worse on CPU (weights 1, 2) but better on memory
            // (weights 5, 10) -> vm:c, reported with its imbalance 0.5
            name: "topsis ranks by the four criteria and reports the winner's imbalance",
            nodes: vec![("node1", raw_node(10.0, 10.0)), ("node2", raw_node(10.0, 10.0))],
            placed: vec![
                ("vm:c", "node1", raw(8.0, 1.0)),
                ("vm:m", "node1", raw(1.0, 3.0)),
                ("vm:x", "node2", raw(1.0, 2.0)),
            ],
            candidates: vec![
                ("vm:c", "node1", "node2", raw(8.0, 1.0)),
                ("vm:m", "node1", "node2", raw(1.0, 3.0)),
            ],
            method: RebalanceMethod::Topsis,
            expect: Some(("vm:c", "node1", "node2", 0.5)),
        },
        MigrationCase {
            name: "topsis without candidates gives nothing",
            nodes: ten(),
            placed: uneven(),
            candidates: vec![],
            method: RebalanceMethod::Topsis,
            expect: None,
        },
    ]
}

#[test]
fn best_migration() {
    let mut failures = Vec::new();
    for case in migration_cases() {
        let stats: BTreeMap<String, ResourceStats> = case.placed.iter().map(|(s, _, r)| (s.to_string(), *r)).collect();
        let services: BTreeMap<String, ServiceStatus> = case
            .placed
            .iter()
            .map(|(s, n, _)| (s.to_string(), sd(Started, n)))
            .collect();
        let mut usage = Usage::scheduled(
            CrsMode::Static,
            case.nodes.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
            stats,
        );
        usage.set_all(&services);
        let candidates: Vec<MigrationCandidate> = case
            .candidates
            .iter()
            .map(|(sid, source, target, stats)| MigrationCandidate {
                migration: Migration {
                    sid: sid.to_string(),
                    source: source.to_string(),
                    target: target.to_string(),
                },
                stats: *stats,
            })
            .collect();
        let got = match usage.best_migration(&candidates, case.method) {
            Ok(got) => got,
            Err(e) => {
                failures.push(format!("case '{}': error {e}", case.name));
                continue;
            }
        };
        let ok = match (&got, case.expect) {
            (None, None) => true,
            (Some((m, imbalance)), Some((sid, source, target, expect))) => {
                m.sid == sid && m.source == source && m.target == target && close(*imbalance, expect)
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("case '{}': got {got:?}, expected {:?}", case.name, case.expect));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn topsis_example_agrees_with_the_reference() {
    // the post-move ratios of the topsis case above, fed to the reference
    let after_c = reference_criteria(&[(0.1, 0.3), (0.9, 0.3)]);
    let after_m = reference_criteria(&[(0.8, 0.1), (0.2, 0.5)]);
    let scores = reference_topsis(&[after_c, after_m]);
    assert!(scores[0] > scores[1], "{scores:?}");
    // and the bruteforce figures
    assert!(close(reference_cv(&[0.2, 0.6]), 0.5));
    assert!(close(reference_cv(&[0.45, 0.35]), 0.125));
}
