//! Golden-log and invariant tests over the simulator scenarios in `tests/sim/`.
//!
//! * `golden_logs`: every scenario's log must equal its `log.expect` line by
//!   line. Run with `UPDATE_EXPECT=1` to rewrite the expectations instead
//!   (then review the diff: an expectation is a claim about correct
//!   behaviour, not a snapshot to bless blindly).
//! * `logs_respect_safety_invariants`: checks that hold for every scenario
//!   whatever the wording of informational lines: no service runs on two nodes
//!   at once, recovery only after an acknowledged fence, fence acknowledgement
//!   only once the node's services are gone, fence/lock timings, legal service
//!   state transitions (spec §2.4/§2.5).
//! * `scenario_outcomes`: per-scenario decision facts (final placement and
//!   state of every service, which nodes got fenced, key decisions).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Fence delay of the CRM (spec §3.1).
const FENCE_DELAY: i64 = 60;
/// Lifetime of a cluster lock (spec §1.3).
const LOCK_TIMEOUT: i64 = 120;

fn sim_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("sim")
}

/// Every scenario directory below `tests/sim`, sorted. Fails if there is none,
/// so that an emptied or moved folder cannot make the tests pass vacuously.
fn scenario_dirs() -> Vec<PathBuf> {
    let root = sim_root();
    let entries = fs::read_dir(&root).unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()));
    let mut dirs: Vec<PathBuf> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()))
                .path()
        })
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no scenarios found under {}", root.display());
    dirs
}

fn name_of(dir: &Path) -> String {
    dir.file_name()
        .expect("scenario dir has a name")
        .to_string_lossy()
        .into_owned()
}

fn run(dir: &Path) -> Vec<String> {
    hactor::sim::run_scenario(dir).unwrap_or_else(|e| panic!("scenario {}: run failed: {e}", name_of(dir)))
}

/// The first difference between two logs, as a readable message.
fn first_difference(expected: &[&str], actual: &[String]) -> Option<String> {
    let len = expected.len().max(actual.len());
    (0..len).find_map(|i| {
        let exp = expected.get(i).copied();
        let act = actual.get(i).map(String::as_str);
        (exp != act).then(|| {
            format!(
                "first difference at line {}:\n  expected: {}\n  actual:   {}",
                i + 1,
                exp.unwrap_or("<end of log.expect>"),
                act.unwrap_or("<end of actual log>")
            )
        })
    })
}

#[test]
fn golden_logs() {
    let update = std::env::var("UPDATE_EXPECT").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for dir in scenario_dirs() {
        let name = name_of(&dir);
        let actual = match hactor::sim::run_scenario(&dir) {
            Ok(lines) => lines,
            Err(e) => {
                failures.push(format!("scenario {name}: run failed: {e}"));
                continue;
            }
        };
        let expect_path = dir.join("log.expect");
        if update {
            let mut text = actual.join("\n");
            text.push('\n');
            fs::write(&expect_path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", expect_path.display()));
            continue;
        }
        let expected = match fs::read_to_string(&expect_path) {
            Ok(text) => text,
            Err(e) => {
                failures.push(format!("scenario {name}: cannot read log.expect: {e}"));
                continue;
            }
        };
        let expected: Vec<&str> = expected.lines().collect();
        if let Some(diff) = first_difference(&expected, &actual) {
            failures.push(format!("scenario {name}: {diff}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} scenario(s) differ from log.expect (UPDATE_EXPECT=1 rewrites them):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Log parsing
// ---------------------------------------------------------------------------

/// One log line: `<level> <time> <source>: <message>` (spec §8.5).
#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    time: i64,
    source: String,
    msg: String,
}

impl Entry {
    /// The node of a daemon source (`node3/lrm` -> `node3`).
    fn node(&self) -> Option<&str> {
        self.source.split_once('/').map(|(n, _)| n)
    }
    fn daemon(&self) -> Option<&str> {
        self.source.split_once('/').map(|(_, d)| d)
    }
}

fn parse_line(index: usize, line: &str) -> Entry {
    try_parse_line(index, line).unwrap_or_else(|| panic!("line {}: not in log format: {line:?}", index + 1))
}

fn try_parse_line(index: usize, line: &str) -> Option<Entry> {
    let (_level, rest) = line.split_once(' ')?;
    let (time, rest) = rest.trim_start().split_once(' ')?;
    let (source, msg) = rest.trim_start().split_once(": ")?;
    Some(Entry {
        line: index + 1,
        time: time.parse().ok()?,
        source: source.to_string(),
        msg: msg.to_string(),
    })
}

/// The text between `prefix` and the next `'` after it: `quoted("a 'x' b", "a '")`
/// is `x`.
fn quoted<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = msg.strip_prefix(prefix)?;
    rest.split_once('\'').map(|(v, _)| v)
}

/// `service 'SID': state changed from 'A' to 'B'  (k = v, ...)`.
struct StateChange<'a> {
    sid: &'a str,
    from: &'a str,
    to: &'a str,
    node: Option<&'a str>,
}

fn parse_state_change(msg: &str) -> Option<StateChange<'_>> {
    let rest = msg.strip_prefix("service '")?;
    let (sid, rest) = rest.split_once("': state changed from '")?;
    let (from, rest) = rest.split_once("' to '")?;
    let (to, rest) = rest.split_once('\'')?;
    let node = rest.trim_start().strip_prefix('(').and_then(|params| {
        params
            .trim_end_matches(')')
            .split(", ")
            .find_map(|kv| kv.strip_prefix("node = "))
    });
    Some(StateChange { sid, from, to, node })
}

/// `node 'N': state changed from 'A' => 'B'`.
fn parse_node_change(msg: &str) -> Option<(&str, &str, &str)> {
    let rest = msg.strip_prefix("node '")?;
    let (node, rest) = rest.split_once("': state changed from '")?;
    let (from, rest) = rest.split_once("' => '")?;
    let to = rest.strip_suffix('\'')?;
    Some((node, from, to))
}

/// The node whose power goes off with this line, if any.
fn powered_off(e: &Entry) -> Option<String> {
    if let Some(rest) = e.msg.strip_prefix("execute power ") {
        let (node, state) = rest.split_once(' ')?;
        return (state == "off").then(|| node.to_string());
    }
    if e.msg == "killed by poweroff" {
        return e.node().map(str::to_string);
    }
    quoted(&e.msg, "server '")
        .filter(|_| e.msg.ends_with("stopped by poweroff (watchdog)"))
        .map(str::to_string)
}

fn node_count(dir: &Path) -> usize {
    let path = dir.join("hardware_status");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    value.as_object().map_or(0, |nodes| nodes.len())
}

// ---------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------

/// Legal `change_service_state` transitions (spec §2.5), plus the documented
/// quirk that a service on an offline maintenance node can pass
/// `fence -> migrate|relocate -> fence` within one round (spec §2.4, started).
fn transition_allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("request_start", "started" | "request_start_balance")
            | (
                "started",
                "request_stop" | "migrate" | "relocate" | "fence" | "error" | "freeze"
            )
            | ("stopped", "request_start" | "migrate" | "relocate" | "fence" | "freeze")
            | (
                "migrate" | "relocate" | "request_start_balance",
                "started" | "request_stop" | "error" | "fence"
            )
            | ("request_stop", "stopped" | "error" | "fence" | "freeze")
            | ("fence", "recovery" | "migrate" | "relocate")
            | ("recovery", "started" | "request_stop" | "stopped")
            | ("freeze", "started" | "request_stop")
            | ("error", "stopped")
    )
}

/// What the invariant walk learned about one scenario's decisions.
#[derive(Default)]
struct Outcome {
    /// sid -> (state, node) after the last logged change.
    services: BTreeMap<String, (String, Option<String>)>,
    /// Nodes that entered the `fence` node state at least once.
    fenced: BTreeSet<String>,
}

/// Walks one log and returns every violated invariant (empty if none).
fn check_invariants(lines: &[String], round: i64) -> (Vec<String>, Outcome) {
    let entries: Vec<Entry> = lines.iter().enumerate().map(|(i, l)| parse_line(i, l)).collect();
    let mut errors = Vec::new();
    let mut out = Outcome::default();
    // sid -> nodes where the simulated guest currently runs (per LRM lines).
    let mut running: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // node -> a fence requested and not acknowledged yet.
    let mut fence_pending: BTreeSet<String> = BTreeSet::new();
    // node -> acknowledged at least once since its last fence request.
    let mut acked: BTreeSet<String> = BTreeSet::new();
    // node -> time the master first saw it drop from online to unknown.
    let mut went_unknown: BTreeMap<String, i64> = BTreeMap::new();
    // node -> time its LRM lost the agent lock (could not renew it).
    let mut lost_agent_lock: BTreeMap<String, i64> = BTreeMap::new();
    // node -> when a master took that node's agent lock (to fence it).
    let mut agent_lock_taken: BTreeMap<String, i64> = BTreeMap::new();
    // the current master and, if it died holding the lock, when it died.
    let mut master: Option<String> = None;
    let mut master_died_at: Option<i64> = None;

    for e in &entries {
        let at = |what: String| format!("line {} (t={}, {}): {what}", e.line, e.time, e.source);
        let msg = e.msg.as_str();

        if let Some(node) = powered_off(e) {
            for nodes in running.values_mut() {
                nodes.remove(&node);
            }
            if master.as_deref() == Some(node.as_str()) {
                master_died_at = Some(e.time);
                master = None;
            }
        }

        match (e.node(), e.daemon()) {
            (Some(node), Some("lrm")) => {
                if let Some(sid) = msg.strip_prefix("starting service ") {
                    let elsewhere: Vec<&String> =
                        running.get(sid).into_iter().flatten().filter(|n| *n != node).collect();
                    if !elsewhere.is_empty() {
                        errors.push(at(format!(
                            "starting {sid} on {node} while it still runs on {elsewhere:?}"
                        )));
                    }
                } else if let Some(sid) = msg
                    .strip_prefix("service status ")
                    .and_then(|m| m.strip_suffix(" started"))
                {
                    let set = running.entry(sid.to_string()).or_default();
                    if set.iter().any(|n| n != node) {
                        errors.push(at(format!("{sid} started on {node} while it runs on {set:?}")));
                    }
                    set.insert(node.to_string());
                } else if let Some(sid) = msg
                    .strip_prefix("service status ")
                    .and_then(|m| m.strip_suffix(" stopped"))
                {
                    running.entry(sid.to_string()).or_default().remove(node);
                } else if let Some(rest) = msg.strip_prefix("service ") {
                    // `service <sid> - end migrate|relocate to node '<t>'`: the
                    // guest left this node (the simulator does not mark it
                    // running on the target).
                    if let Some((sid, _)) = rest.split_once(" - end ") {
                        running.entry(sid.to_string()).or_default().remove(node);
                    }
                }
                if msg == format!("got lock 'ha_agent_{node}_lock'")
                    && let Some(t) = agent_lock_taken.remove(node)
                    && e.time - t <= LOCK_TIMEOUT
                {
                    errors.push(at(format!(
                        "LRM took its agent lock {} s after the master took it (lock lifetime {LOCK_TIMEOUT} s)",
                        e.time - t
                    )));
                }
                if msg == "status change active => lost_agent_lock" {
                    lost_agent_lock.insert(node.to_string(), e.time);
                }
            }
            (Some(node), Some("crm")) => {
                if let Some(old_new) = msg.strip_prefix("status change ") {
                    if old_new.ends_with("=> master") {
                        master = Some(node.to_string());
                    } else if old_new.starts_with("master =>") && master.as_deref() == Some(node) {
                        master = None;
                    }
                }
                if msg == "voluntary release CRM lock" && master.as_deref() == Some(node) {
                    master = None;
                    master_died_at = None;
                }
                // The dead master renewed the lock at most one round before
                // it died; the lock only expires 120 s after that.
                if msg == "got lock 'ha_manager_lock'"
                    && let Some(died) = master_died_at.take()
                    && e.time <= died - round + LOCK_TIMEOUT
                {
                    errors.push(at(format!(
                        "manager lock taken {} s after the master died (lock lifetime {LOCK_TIMEOUT} s)",
                        e.time - died
                    )));
                }
                if let Some(n) = quoted(msg, "got lock 'ha_agent_")
                    .and_then(|lock| lock.strip_suffix("_lock"))
                    .filter(|n| *n != node)
                {
                    agent_lock_taken.insert(n.to_string(), e.time);
                }
                if let Some((n, from, to)) = parse_node_change(msg) {
                    if from == "online" && to == "unknown" {
                        went_unknown.insert(n.to_string(), e.time);
                    }
                    if to == "fence" {
                        out.fenced.insert(n.to_string());
                        fence_pending.insert(n.to_string());
                        acked.remove(n);
                        // last seen online >= one round before it went unknown
                        if let Some(t) = went_unknown.get(n)
                            && e.time < t - round + FENCE_DELAY
                        {
                            errors.push(at(format!(
                                "node {n} fenced {} s after it went unknown (fence delay {FENCE_DELAY} s)",
                                e.time - t
                            )));
                        }
                    }
                    if to == "online" {
                        went_unknown.remove(n);
                    }
                }
                if let Some(n) = quoted(msg, "fencing: acknowledged - got agent lock for node '") {
                    let still: Vec<&String> = running
                        .iter()
                        .filter(|(_, nodes)| nodes.contains(n))
                        .map(|(sid, _)| sid)
                        .collect();
                    if !still.is_empty() {
                        errors.push(at(format!("fence of {n} acknowledged while {still:?} still run there")));
                    }
                    // last renewal >= one round before the renewal failed
                    if let Some(t) = lost_agent_lock.remove(n)
                        && e.time - t <= LOCK_TIMEOUT - round
                    {
                        errors.push(at(format!(
                            "agent lock of {n} taken {} s after its LRM lost it (lock lifetime {LOCK_TIMEOUT} s)",
                            e.time - t
                        )));
                    }
                    fence_pending.remove(n);
                    acked.insert(n.to_string());
                }
                let recovered_from = if msg.starts_with("recover service '") {
                    msg.split_once("from fenced node '")
                        .or_else(|| msg.split_once("failed and fenced node '"))
                        .and_then(|(_, rest)| rest.split_once('\''))
                        .map(|(node, _)| node)
                } else {
                    None
                };
                if let Some(n) = recovered_from
                    && (fence_pending.contains(n) || !acked.contains(n))
                {
                    errors.push(at(format!("recovery from {n} without an acknowledged fence")));
                }
                if let Some(sid) = quoted(msg, "adding new service '") {
                    let node = quoted(msg.split_once("' on node '").map_or("", |(_, r)| r), "");
                    out.services
                        .insert(sid.to_string(), ("new".to_string(), node.map(str::to_string)));
                }
                if let Some(sid) = quoted(msg, "removing stale service '") {
                    out.services.remove(sid);
                }
                if let Some(sid) = quoted(msg, "disarm: freezing service '") {
                    let was = msg.split_once("(was '").and_then(|(_, r)| r.strip_suffix("')"));
                    let entry = out.services.entry(sid.to_string()).or_insert(("?".into(), None));
                    if let Some(was) = was
                        && entry.0 != "?"
                        && was != entry.0
                    {
                        errors.push(at(format!("{sid} frozen from '{was}' but was '{}'", entry.0)));
                    }
                    entry.0 = "freeze".to_string();
                }
                if let Some(c) = parse_state_change(msg) {
                    if !transition_allowed(c.from, c.to) {
                        errors.push(at(format!("illegal transition of {}: {} -> {}", c.sid, c.from, c.to)));
                    }
                    let entry = out.services.entry(c.sid.to_string()).or_insert(("?".into(), None));
                    let continuous = match entry.0.as_str() {
                        "?" => true,
                        "new" => matches!(c.from, "request_start" | "request_stop"),
                        prev => prev == c.from,
                    };
                    if !continuous {
                        errors.push(at(format!("{} changes from '{}' but was '{}'", c.sid, c.from, entry.0)));
                    }
                    entry.0 = c.to.to_string();
                    if let Some(node) = c.node {
                        entry.1 = Some(node.to_string());
                    }
                    if c.to == "recovery"
                        && let Some(node) = entry.1.as_deref()
                        && (!acked.contains(node) || fence_pending.contains(node))
                    {
                        errors.push(at(format!("{} enters recovery before {node} was fenced", c.sid)));
                    }
                }
            }
            _ => {}
        }
    }
    (errors, out)
}

fn round_length(dir: &Path) -> i64 {
    // spec §8.4: max(20, 2 x #nodes) seconds per round
    (2 * node_count(dir) as i64).max(20)
}

#[test]
fn logs_respect_safety_invariants() {
    let mut failures = Vec::new();
    for dir in scenario_dirs() {
        let lines = run(&dir);
        let (errors, _) = check_invariants(&lines, round_length(&dir));
        for err in errors {
            failures.push(format!("scenario {}: {err}", name_of(&dir)));
        }
    }
    assert!(failures.is_empty(), "invariant violations:\n{}", failures.join("\n"));
}

/// The invariant checker itself must catch the faults it is meant to catch.
#[test]
fn invariant_checker_detects_violations() {
    let log = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    let double_run = log(&[
        "info     21    node1/lrm: starting service vm:100",
        "info     21    node1/lrm: service status vm:100 started",
        "info    125      cmdlist: execute network node1 off",
        "info    143    node2/lrm: starting service vm:100",
        "info    143    node2/lrm: service status vm:100 started",
    ]);
    let (errors, _) = check_invariants(&double_run, 20);
    assert_eq!(errors.len(), 2, "{errors:?}");

    let early_recovery = log(&[
        "info    120    node1/crm: node 'node3': state changed from 'online' => 'unknown'",
        "info    160    node1/crm: node 'node3': state changed from 'unknown' => 'fence'",
        "info    180    node1/crm: recover service 'vm:103' from fenced node 'node3' to node 'node2'",
        "info    180    node1/crm: service 'vm:103': state changed from 'stopped' to 'started'  (node = node2)",
    ]);
    let (errors, _) = check_invariants(&early_recovery, 20);
    assert_eq!(errors.len(), 2, "{errors:?}");

    let hasty = log(&[
        "info    125    node3/lrm: status change active => lost_agent_lock",
        "info    120    node1/crm: node 'node3': state changed from 'online' => 'unknown'",
        "info    140    node1/crm: node 'node3': state changed from 'unknown' => 'fence'",
        "info    160    node1/crm: fencing: acknowledged - got agent lock for node 'node3'",
    ]);
    let (errors, _) = check_invariants(&hasty, 20);
    assert_eq!(errors.len(), 2, "{errors:?}");

    let lock_stolen_back = log(&[
        "info    240    node1/crm: got lock 'ha_agent_node3_lock'",
        "info    240    node1/crm: fencing: acknowledged - got agent lock for node 'node3'",
        "info    345    node3/lrm: got lock 'ha_agent_node3_lock'",
    ]);
    let (errors, _) = check_invariants(&lock_stolen_back, 20);
    assert_eq!(errors.len(), 1, "{errors:?}");

    let good = log(&[
        "info     20    node1/crm: adding new service 'vm:103' on node 'node3'",
        "info     20    node1/crm: service 'vm:103': state changed from 'request_start' to 'started'  (node = node3)",
        "info     25    node3/lrm: starting service vm:103",
        "info     25    node3/lrm: service status vm:103 started",
        "info    120    node1/crm: node 'node3': state changed from 'online' => 'unknown'",
        "info    125    node3/lrm: status change active => lost_agent_lock",
        "info    160    node1/crm: service 'vm:103': state changed from 'started' to 'fence'",
        "info    160    node1/crm: node 'node3': state changed from 'unknown' => 'fence'",
        "info    166     watchdog: execute power node3 off",
        "info    240    node1/crm: fencing: acknowledged - got agent lock for node 'node3'",
        "info    240    node1/crm: service 'vm:103': state changed from 'fence' to 'recovery'",
        "info    240    node1/crm: recover service 'vm:103' from fenced node 'node3' to node 'node2'",
        "info    240    node1/crm: service 'vm:103': state changed from 'recovery' to 'started'  (node = node2)",
        "info    243    node2/lrm: starting service vm:103",
        "info    243    node2/lrm: service status vm:103 started",
    ]);
    let (errors, outcome) = check_invariants(&good, 20);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        outcome.services["vm:103"],
        ("started".to_string(), Some("node2".to_string()))
    );
    assert_eq!(outcome.fenced, BTreeSet::from(["node3".to_string()]));
}

// ---------------------------------------------------------------------------
// Per-scenario decision facts
// ---------------------------------------------------------------------------

struct Expect {
    scenario: &'static str,
    /// (sid, final CRM state, node); every service of the final status.
    services: &'static [(&'static str, &'static str, &'static str)],
    /// Nodes that must have entered the `fence` state (exactly these).
    fenced: &'static [&'static str],
    /// Decision messages that must appear (substring of a daemon line).
    decisions: &'static [&'static str],
}

const EXPECTED: &[Expect] = &[
    Expect {
        scenario: "cfs-update-failures",
        services: &[
            ("vm:801", "started", "node1"),
            ("vm:802", "started", "node3"),
            ("vm:803", "started", "node3"),
        ],
        fenced: &[],
        decisions: &[
            "temporary inconsistent cluster state",
            "migrate service 'vm:802' to node 'node3'",
        ],
    },
    Expect {
        scenario: "disarm-freeze-then-arm",
        services: &[
            ("ct:704", "stopped", "node2"),
            ("vm:701", "started", "node1"),
            ("vm:702", "started", "node2"),
            ("vm:703", "stopped", "node3"),
        ],
        fenced: &[],
        decisions: &[
            "disarm: freezing service 'vm:701' (was 'started')",
            "all LRMs disarmed, HA stack is now fully disarmed",
            "ignoring disarm-ha command - already in disarm state",
            "service 'vm:703': state changed from 'freeze' to 'request_stop'",
        ],
    },
    Expect {
        scenario: "fa-migrate-and-stop-failures",
        services: &[("fa:1020", "started", "node2"), ("vm:191", "started", "node2")],
        fenced: &[],
        decisions: &[
            "service 'fa:1020' - migration failed (exit code 1)",
            "service 'fa:1001' stop failed (exit code 1)",
            "service 'fa:1001': state changed from 'request_stop' to 'error'",
            "service 'fa:1001': state changed from 'error' to 'stopped'",
            "removing stale service 'fa:1001' (no config)",
        ],
    },
    Expect {
        scenario: "fa-start-failures-error-state",
        services: &[
            ("fa:120", "started", "node2"),
            ("fa:130", "started", "node2"),
            ("vm:190", "started", "node3"),
        ],
        fenced: &[],
        decisions: &[
            "restart policy: retry number 1 for service 'fa:120'",
            "relocation policy successful for 'fa:120' on node 'node2', failed nodes: node1",
            "recovery policy for service fa:130 failed, entering error state. Failed nodes: node2, node1",
            "service 'fa:130': state changed from 'error' to 'stopped'",
            "relocation policy successful for 'fa:130' on node 'node2', failed nodes: node1",
        ],
    },
    Expect {
        scenario: "maintenance-ends-after-arm-freeze",
        services: &[
            ("vm:101", "started", "node1"),
            ("vm:102", "started", "node2"),
            ("vm:103", "started", "node3"),
        ],
        fenced: &[],
        decisions: &[
            "disarm: freezing service 'vm:103' (was 'started')",
            "service 'vm:103': state changed from 'freeze' to 'started'",
            "moving service 'vm:103' back to 'node3', node came back from maintenance.",
        ],
    },
    Expect {
        scenario: "maintenance-ends-while-disarmed-freeze",
        services: &[
            ("vm:101", "started", "node1"),
            ("vm:102", "started", "node2"),
            ("vm:103", "started", "node3"),
        ],
        fenced: &[],
        decisions: &[
            "disarm: freezing service 'vm:103' (was 'started')",
            "node 'node3': state changed from 'maintenance' => 'online'",
            "service 'vm:103': state changed from 'freeze' to 'started'",
            "moving service 'vm:103' back to 'node3', node came back from maintenance.",
        ],
    },
    Expect {
        scenario: "manual-maintenance-4node",
        services: &[
            ("ct:173", "started", "node2"),
            ("vm:171", "started", "node1"),
            ("vm:172", "started", "node2"),
            ("vm:174", "stopped", "node2"),
            ("vm:175", "started", "node3"),
            ("vm:176", "started", "node4"),
        ],
        fenced: &[],
        decisions: &[
            "node 'node2': state changed from 'online' => 'maintenance'",
            "relocate service 'ct:173' to node 'node1'",
            "ignoring crm command - node node2 is already in maintenance state",
            "moving service 'vm:172' back to 'node2', node came back from maintenance.",
        ],
    },
    Expect {
        scenario: "master-power-loss-4node",
        services: &[
            ("ct:312", "started", "delta"),
            ("vm:310", "started", "bravo"),
            ("vm:311", "started", "charlie"),
            ("vm:320", "started", "bravo"),
            ("vm:330", "started", "charlie"),
            ("vm:340", "stopped", "delta"),
        ],
        fenced: &["alpha"],
        decisions: &[
            "status change slave => master",
            "recover service 'vm:310' from fenced node 'alpha'",
        ],
    },
    Expect {
        scenario: "negative-affinity-recovery-4node",
        services: &[
            ("vm:901", "started", "node3"),
            ("vm:902", "started", "node2"),
            ("vm:903", "started", "node4"),
            ("vm:904", "started", "node4"),
        ],
        fenced: &["node3"],
        decisions: &[
            "recover service 'vm:903' from fenced node 'node3' to node 'node4'",
            "service 'vm:903' on node 'node4' in negative affinity with service 'vm:901'",
            "crm command error - node not online: relocate vm:902 node3",
        ],
    },
    Expect {
        scenario: "netloss-two-nodes-5node",
        services: &[
            ("ct:205", "started", "node1"),
            ("vm:201", "started", "node1"),
            ("vm:202", "started", "node2"),
            ("vm:203", "started", "node3"),
            ("vm:204", "started", "node2"),
            ("vm:206", "started", "node3"),
            ("vm:207", "stopped", "node1"),
        ],
        fenced: &["node4", "node5"],
        decisions: &["service 'vm:207': state changed from 'recovery' to 'request_stop'  (node = node1)"],
    },
    Expect {
        scenario: "nofailback-group-4node",
        services: &[
            ("vm:601", "started", "node2"),
            ("vm:602", "started", "node4"),
            ("vm:603", "started", "node1"),
        ],
        fenced: &["node4"],
        decisions: &["migrate service 'vm:602' to node 'node4' (running)"],
    },
    Expect {
        scenario: "restricted-group-all-nodes-fail",
        services: &[
            ("vm:501", "started", "node5"),
            ("vm:502", "started", "node5"),
            ("vm:503", "started", "node1"),
            ("vm:504", "started", "node2"),
        ],
        fenced: &["node4", "node5"],
        decisions: &[
            "recovering service 'vm:501' from fenced node 'node4' failed, no recovery node found",
            "recovering service 'vm:502' from fenced node 'node5' failed, no recovery node found",
            "recover service 'vm:502' to previous failed and fenced node 'node5' again",
        ],
    },
    Expect {
        scenario: "service-commands-migrate-relocate-stop",
        services: &[
            ("ct:182", "started", "node2"),
            ("vm:181", "started", "node2"),
            ("vm:183", "started", "node2"),
            ("vm:184", "stopped", "node1"),
            ("vm:185", "stopped", "node3"),
            ("vm:186", "started", "node3"),
        ],
        fenced: &[],
        decisions: &[
            "crm command error - node not online: migrate vm:183 node4",
            "ignore crm command - service already on target node: migrate vm:185 node2",
            "unable to live migrate running container, fallback to relocate",
            "request immediate service hard-stop for service 'vm:186'",
            "request graceful stop with timeout '45' for service 'vm:185'",
            "ignore service 'vm:186' stop request - service already stopped",
            "crm command error - no such service: stop vm:199 5",
        ],
    },
    Expect {
        scenario: "shutdown-policy-conditional",
        services: &[
            ("ct:123", "started", "node1"),
            ("vm:121", "started", "node1"),
            ("vm:122", "started", "node3"),
            ("vm:124", "started", "node3"),
            ("vm:125", "stopped", "node3"),
            ("vm:126", "started", "node4"),
        ],
        fenced: &["node2"],
        decisions: &[
            "service 'vm:124': state changed from 'started' to 'freeze'",
            "service 'vm:124': state changed from 'freeze' to 'started'",
            "recover service 'vm:122' from fenced node 'node2' to node 'node3'",
        ],
    },
    Expect {
        scenario: "shutdown-policy-failover",
        services: &[
            ("ct:153", "started", "node2"),
            ("ct:156", "started", "node1"),
            ("vm:151", "started", "node1"),
            ("vm:152", "started", "node2"),
            ("vm:154", "started", "node3"),
            ("vm:155", "started", "node3"),
        ],
        fenced: &["node4"],
        decisions: &[
            "got shutdown request with shutdown policy 'failover'",
            "recover service 'ct:156' from fenced node 'node4'",
        ],
    },
    Expect {
        scenario: "shutdown-policy-freeze-restart-lrm",
        services: &[
            ("ct:142", "stopped", "node1"),
            ("vm:141", "started", "node1"),
            ("vm:143", "started", "node2"),
            ("vm:144", "started", "node3"),
            ("vm:145", "stopped", "node3"),
        ],
        fenced: &[],
        decisions: &[
            "service 'vm:144': state changed from 'started' to 'freeze'",
            "service 'vm:141': state changed from 'started' to 'freeze'",
            "voluntary release CRM lock",
            "service 'vm:141': state changed from 'freeze' to 'started'",
        ],
    },
    Expect {
        scenario: "shutdown-policy-migrate",
        services: &[
            ("ct:164", "started", "node3"),
            ("vm:161", "started", "node1"),
            ("vm:162", "started", "node2"),
            ("vm:163", "started", "node3"),
            ("vm:165", "stopped", "node3"),
        ],
        fenced: &[],
        decisions: &[
            "node 'node3': state changed from 'online' => 'maintenance'",
            "relocate service 'ct:164' to node 'node1'",
            "migrate service 'vm:163' to node 'node2' (running)",
            "moving service 'ct:164' back to 'node3', node came back from maintenance.",
        ],
    },
];

#[test]
fn scenario_outcomes() {
    let dirs = scenario_dirs();
    let names: BTreeSet<String> = dirs.iter().map(|d| name_of(d)).collect();
    let listed: BTreeSet<String> = EXPECTED.iter().map(|e| e.scenario.to_string()).collect();
    assert_eq!(
        names, listed,
        "every scenario in tests/sim needs an entry in EXPECTED (and vice versa)"
    );

    let mut failures = Vec::new();
    for exp in EXPECTED {
        let dir = sim_root().join(exp.scenario);
        let lines = run(&dir);
        let (_, outcome) = check_invariants(&lines, round_length(&dir));
        let mut fail = |what: String| failures.push(format!("scenario {}: {what}", exp.scenario));

        let actual: BTreeMap<&str, (&str, &str)> = outcome
            .services
            .iter()
            .map(|(sid, (state, node))| (sid.as_str(), (state.as_str(), node.as_deref().unwrap_or("?"))))
            .collect();
        let expected: BTreeMap<&str, (&str, &str)> = exp
            .services
            .iter()
            .map(|&(sid, state, node)| (sid, (state, node)))
            .collect();
        if actual != expected {
            fail(format!(
                "final services differ:\n  expected: {expected:?}\n  actual:   {actual:?}"
            ));
        }

        let fenced: BTreeSet<&str> = outcome.fenced.iter().map(String::as_str).collect();
        let want: BTreeSet<&str> = exp.fenced.iter().copied().collect();
        if fenced != want {
            fail(format!("fenced nodes: expected {want:?}, got {fenced:?}"));
        }

        for decision in exp.decisions {
            let found = lines.iter().enumerate().any(|(i, l)| {
                let e = parse_line(i, l);
                e.daemon().is_some() && e.msg.contains(decision)
            });
            if !found {
                fail(format!("missing decision: {decision}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
