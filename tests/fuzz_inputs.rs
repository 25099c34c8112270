//! Property-based tests of the parsers and decoders that take outside
//! input (issue 11 §6): the section-config files (resources, groups,
//! rules), datacenter.cfg, the node TOML, the API protocol and the
//! `ha-manager` command line.
//!
//! Inputs are generated from the grammar's own pieces (headers, keys,
//! known values, boundary numbers) mixed with arbitrary text, so most
//! cases get past the first check. Each property asserts that nothing
//! panics and that the result is either a clear error (a message, the
//! line inside the text) or a value that writes back to the same bytes:
//! parse → write → parse gives the same value, and writing it again the
//! same text.
//!
//! The seed is fixed and the number of cases small, so `cargo test` runs
//! the same cases every time in a few seconds; `PROPTEST_CASES` and
//! `PROPTEST_RNG_SEED` widen a run by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use clap::Parser;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

use hactor::actors::lock::Snapshot;
use hactor::api::plan::{self, PlanContext};
use hactor::api::protocol::{self, Outcome, Request, Response};
use hactor::cli::args::{Cli, Command, normalize};
use hactor::config::datacenter::parse_datacenter;
use hactor::config::groups::{parse_groups, write_groups};
use hactor::config::resources::{ConfiguredState, ResourceSection, parse_resources, write_resources};
use hactor::config::rules::{parse_rules, write_rules};
use hactor::config::value::{decode_text, encode_text};
use hactor::core::rules::{Rule, RuleKind};
use hactor::core::status::{GroupConfig, ResourceConfig};
use hactor::core::store::ClusterState;
use hactor::core::timing::{MAX_TIMEOUT_SECS, MAX_TIMING_MS, MAX_WORKERS};
use hactor::core::types::RequestState;
use hactor::node::config::NodeConfig;

/// A fixed number of cases from a fixed seed; no regression files.
fn cases(n: u32) -> ProptestConfig {
    let from_env = ProptestConfig::default();
    let fixed = std::env::var_os("PROPTEST_RNG_SEED").is_none();
    let cases_given = std::env::var_os("PROPTEST_CASES").is_some();
    ProptestConfig {
        cases: if cases_given { from_env.cases } else { n },
        failure_persistence: None,
        rng_seed: if fixed { RngSeed::Fixed(11) } else { from_env.rng_seed },
        ..from_env
    }
}

fn pick(items: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    proptest::sample::select(items).prop_map(str::to_string)
}

/// Numbers around every bound and type limit.
fn number() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        (0u64..5000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        pick(&[
            "0",
            "1",
            "-1",
            "86400",
            "86401",
            "3600000",
            "3600001",
            "4294967295",
            "4294967296",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709546616",
            "18446744073709551615",
            "18446744073709551616",
            "1e400",
            "NaN",
            "0.25",
            "-0.0",
        ]),
    ]
}

/// Text that might trip a parser: printable text, percent escapes,
/// control characters and non-ASCII.
fn text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        "[ -~]{0,24}",
        "[a-z0-9:%,;=\\-_ ]{0,24}",
        "(%[0-9A-Fa-f]{2}|%|[a-z ])*",
        "\\PC{0,16}",
        "[a-z]{1,3}[\t\r\u{b}\u{c}\u{85}\u{1b}][a-z]{1,3}",
        any::<String>(),
        pick(&["\t", "\r", "\n", "\u{85}", "\u{3000}", "\u{feff}", "é", "#", ":", "%41"]),
    ]
}

/// A value of a section-config property.
fn value() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        pick(&[
            "started",
            "stopped",
            "enabled",
            "disabled",
            "ignored",
            "0",
            "1",
            "yes",
            "node1",
            "node1:2,node2",
            "node1,node1",
            "node_1",
            "vm:100",
            "vm:100,ct:101",
            "vm:100 vm:101;ct:102",
            "positive",
            "negative",
            "g1",
            "prefer_node1",
        ]),
        number(),
        number().prop_map(|n| format!("node1:{n}")),
        text(),
    ]
}

fn section_line() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        pick(&["vm", "ct", "group", "node-affinity", "resource-affinity", "lxc"]),
        "[a-z:]{0,6}",
    ];
    let id = prop_oneof![
        pick(&["100", "101", "7", "0100", "g1", "r1", "rule-a", "a b", ""]),
        number(),
        "[a-z0-9_-]{0,8}",
    ];
    let key = prop_oneof![
        pick(&[
            "state",
            "group",
            "failback",
            "max_restart",
            "max_relocate",
            "comment",
            "nodes",
            "restricted",
            "nofailback",
            "resources",
            "affinity",
            "strict",
            "disable",
        ]),
        "[a-z_#]{1,8}",
    ];
    let indent = pick(&["\t", "    ", " ", "\t\t", "\u{3000}"]);
    prop_oneof![
        3 => (kind, id).prop_map(|(k, i)| format!("{k}: {i}")),
        6 => (indent.clone(), key.clone(), value()).prop_map(|(ws, k, v)| format!("{ws}{k} {v}")),
        1 => (indent, key).prop_map(|(ws, k)| format!("{ws}{k}")),
        1 => Just(String::new()),
        1 => text().prop_map(|t| format!("# {t}")),
        1 => text(),
    ]
}

/// Section-config text: mostly well-formed lines, some not.
fn section_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(section_line(), 0..14),
        pick(&["\n", "\r\n"]),
        any::<bool>(),
    )
        .prop_map(|(lines, eol, trailing)| {
            let mut text = lines.join(&eol);
            if trailing {
                text.push_str(&eol);
            }
            text
        })
}

/// Section-config text of one file type: well-formed sections (distinct
/// keys of the type, values known or arbitrary), so that most cases get
/// past the syntax and reach the value checks and the writer.
fn typed_sections(
    kinds: &'static [&'static str],
    ids: &'static [&'static str],
    keys: &'static [&'static str],
) -> impl Strategy<Value = String> {
    let section = (
        pick(kinds),
        pick(ids),
        proptest::sample::subsequence(keys, 0..=keys.len()).prop_flat_map(|keys| {
            let values: Vec<BoxedStrategy<String>> = keys.iter().map(|k| value_for(k)).collect();
            values.prop_map(move |v| (keys.clone(), v))
        }),
        prop::collection::vec(pick(&["\t", "  "]), 6),
    )
        .prop_map(|(kind, id, (keys, values), indents)| {
            let mut text = format!("{kind}: {id}\n");
            for (i, (key, value)) in keys.iter().zip(values).enumerate() {
                text.push_str(&format!("{}{key} {value}\n", indents[i % indents.len()]));
            }
            text
        });
    prop::collection::vec(section, 0..4).prop_map(|sections| sections.join("\n"))
}

/// A value for `key`: mostly one of its kind, sometimes anything.
fn value_for(key: &str) -> BoxedStrategy<String> {
    let valid: BoxedStrategy<String> = match key {
        "state" => pick(&["started", "stopped", "enabled", "disabled", "ignored"]).boxed(),
        "failback" | "restricted" | "nofailback" | "strict" | "disable" => pick(&["0", "1", "yes", "off"]).boxed(),
        "max_restart" | "max_relocate" => {
            prop_oneof![3 => (0u32..10).prop_map(|n| n.to_string()), 1 => number()].boxed()
        }
        "group" => "[a-z][a-z0-9_]{1,8}".boxed(),
        "nodes" => "[a-z][a-z0-9]{0,4}(:[0-9]{1,20})?(,[a-z][a-z0-9]{0,4}(:[0-9]{1,3})?){0,3}".boxed(),
        "resources" => "(vm|ct):[0-9]{2,4}([,; ](vm|ct):[0-9]{2,4}){0,3}".boxed(),
        "affinity" => pick(&["positive", "negative"]).boxed(),
        _ => text().boxed(),
    };
    prop_oneof![8 => valid, 1 => value()].boxed()
}

const RESOURCE_KEYS: &[&str] = &["state", "group", "failback", "max_restart", "max_relocate", "comment"];
const GROUP_KEYS: &[&str] = &["nodes", "restricted", "nofailback", "comment"];
const RULE_KEYS: &[&str] = &["resources", "nodes", "strict", "affinity", "disable", "comment"];

/// The line of an error lies inside the text.
fn line_in(text: &str, line: usize) -> Result<(), TestCaseError> {
    prop_assert!(
        line >= 1 && line <= text.lines().count().max(1),
        "line {line} outside the {} lines",
        text.lines().count()
    );
    Ok(())
}

fn check_resources(text: &str) -> Result<(), TestCaseError> {
    match parse_resources(text) {
        Err(e) => {
            line_in(text, e.line)?;
            prop_assert!(!e.message.is_empty());
        }
        Ok(parsed) => {
            let written = write_resources(&parsed);
            let again = parse_resources(&written);
            prop_assert_eq!(again.as_ref(), Ok(&parsed), "written:\n{}", written);
            prop_assert_eq!(write_resources(&parsed), written);
        }
    }
    Ok(())
}

fn check_groups(text: &str) -> Result<(), TestCaseError> {
    match parse_groups(text) {
        Err(e) => {
            line_in(text, e.line)?;
            prop_assert!(!e.message.is_empty());
        }
        Ok(parsed) => {
            let written = write_groups(&parsed);
            let again = parse_groups(&written);
            prop_assert_eq!(again.as_ref(), Ok(&parsed), "written:\n{}", written);
        }
    }
    Ok(())
}

fn check_rules(text: &str) -> Result<(), TestCaseError> {
    match parse_rules(text) {
        Err(e) => {
            line_in(text, e.line)?;
            prop_assert!(!e.message.is_empty());
        }
        Ok(parsed) => {
            let written = write_rules(&parsed);
            let again = parse_rules(&written);
            prop_assert_eq!(again.as_ref(), Ok(&parsed), "written:\n{}", written);
            prop_assert_eq!(write_rules(&parsed), written);
        }
    }
    Ok(())
}

/// A comment as the parsers can return it: not empty, no surrounding
/// white space (the section syntax trims values), one line.
fn comment() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(
        text()
            .prop_map(|t| t.replace(['\n', '\r'], " ").trim().to_string())
            .prop_filter("not empty", |t| !t.is_empty()),
    )
}

fn resource_section() -> impl Strategy<Value = ResourceSection> {
    let state = proptest::option::of(proptest::sample::select(vec![
        ConfiguredState::Started,
        ConfiguredState::Enabled,
        ConfiguredState::Stopped,
        ConfiguredState::Disabled,
        ConfiguredState::Ignored,
    ]));
    (
        (pick(&["vm", "ct"]), 10u32..100_000),
        state,
        proptest::option::of("[a-z][a-z0-9_-]{1,10}"),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        comment(),
    )
        .prop_map(
            |((kind, name), state, group, failback, max_restart, max_relocate, comment)| ResourceSection {
                sid: format!("{kind}:{name}"),
                state,
                group,
                failback,
                max_restart,
                max_relocate,
                comment,
            },
        )
}

fn node_list() -> impl Strategy<Value = BTreeMap<String, i64>> {
    prop::collection::btree_map("[a-z][a-z0-9-]{0,6}[a-z0-9]", 0..=i64::MAX, 1..4)
}

fn rule() -> impl Strategy<Value = Rule> {
    let kind = prop_oneof![
        (node_list(), any::<bool>()).prop_map(|(nodes, strict)| RuleKind::NodeAffinity { nodes, strict }),
        any::<bool>().prop_map(|positive| RuleKind::ResourceAffinity { positive }),
    ];
    let rule_comment = proptest::option::of(
        text()
            .prop_map(|t| t.trim().to_string())
            .prop_filter("not empty", |t| !t.is_empty()),
    );
    (
        "[a-z][a-z0-9_-]{1,10}",
        kind,
        prop::collection::btree_set("(vm|ct|proc):[a-z0-9]{1,5}", 1..4),
        any::<bool>(),
        rule_comment,
    )
        .prop_map(|(id, kind, resources, disabled, comment)| Rule {
            id,
            kind,
            resources,
            disabled,
            comment,
            order: 0,
        })
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn resources_cfg_text(text in prop_oneof![
        section_text(),
        typed_sections(&["vm", "ct"], &["100", "101", "1000", "99"], RESOURCE_KEYS),
    ]) {
        check_resources(&text)?;
    }

    #[test]
    fn groups_cfg_text(text in prop_oneof![
        section_text(),
        typed_sections(&["group"], &["g1", "g2", "prefer_node1"], GROUP_KEYS),
    ]) {
        check_groups(&text)?;
    }

    #[test]
    fn rules_cfg_text(text in prop_oneof![
        section_text(),
        typed_sections(&["node-affinity", "resource-affinity"], &["r1", "r2", "keep-apart"], RULE_KEYS),
    ]) {
        check_rules(&text)?;
    }

    #[test]
    fn datacenter_cfg_text(
        lines in prop::collection::vec(
            prop_oneof![
                3 => (
                    pick(&["ha", "crs", "keyboard", "ha ", "", "crs:"]),
                    prop::collection::vec(
                        (
                            pick(&[
                                "shutdown_policy", "ha", "ha-rebalance-on-start", "ha-auto-rebalance",
                                "ha-auto-rebalance-threshold", "ha-auto-rebalance-method",
                                "ha-auto-rebalance-hold-duration", "ha-auto-rebalance-margin", "colour",
                            ]),
                            prop_oneof![
                                pick(&["migrate", "freeze", "static", "dynamic", "basic", "topsis", "1", "0"]),
                                number(),
                                text(),
                            ],
                        ).prop_map(|(o, v)| format!("{o}={v}")),
                        0..5,
                    ),
                ).prop_map(|(key, options)| format!("{key}: {}", options.join(","))),
                1 => text(),
            ],
            0..6,
        )
    ) {
        let text = lines.join("\n");
        match parse_datacenter(&text) {
            Err(e) => {
                line_in(&text, e.line)?;
                prop_assert!(!e.message.is_empty());
                if let Some(key) = &e.key {
                    prop_assert!(e.message.contains(&format!("key '{key}'")), "{}", e.message);
                }
            }
            Ok(settings) => {
                for n in [settings.rebalance_threshold, settings.rebalance_hold_rounds, settings.rebalance_margin] {
                    prop_assert!(n.is_finite() && n >= 0.0, "{n}");
                }
                prop_assert!(settings.rebalance_hold_rounds <= 1_000_000.0);
            }
        }
    }

    #[test]
    fn resources_round_trip(resources in prop::collection::vec(resource_section(), 0..6)) {
        let mut seen = BTreeSet::new();
        let resources: Vec<ResourceSection> =
            resources.into_iter().filter(|r| seen.insert(r.sid.clone())).collect();
        let written = write_resources(&resources);
        prop_assert_eq!(parse_resources(&written), Ok(resources));
        check_resources(&written)?;
    }

    #[test]
    fn groups_round_trip(
        groups in prop::collection::btree_map(
            "[a-z][a-z0-9_-]{1,10}",
            (node_list(), any::<bool>(), any::<bool>(), comment()).prop_map(
                |(nodes, restricted, nofailback, comment)| GroupConfig { nodes, restricted, nofailback, comment },
            ),
            0..5,
        )
    ) {
        let written = write_groups(&groups);
        prop_assert_eq!(parse_groups(&written), Ok(groups));
    }

    #[test]
    fn rules_round_trip(rules in prop::collection::vec(rule(), 0..5)) {
        let mut seen = BTreeSet::new();
        let rules: Vec<Rule> = rules
            .into_iter()
            .filter(|r| seen.insert(r.id.clone()))
            .enumerate()
            .map(|(i, r)| Rule { order: i + 1, ..r })
            .collect();
        let written = write_rules(&rules);
        prop_assert_eq!(parse_rules(&written), Ok(rules));
        check_rules(&written)?;
    }

    #[test]
    fn comment_encoding_round_trips(text in text()) {
        let encoded = encode_text(&text);
        prop_assert!(encoded.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b':'), "{encoded}");
        prop_assert_eq!(decode_text(&encoded), text);
    }
}

/// A TOML string (JSON's escapes are TOML's).
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// A TOML value for `key`: mostly a plausible number, sometimes anything.
fn toml_value(key: &'static str) -> BoxedStrategy<String> {
    let plausible: BoxedStrategy<String> = if key.ends_with("_ms") {
        pick(&["100", "200", "400", "1000", "3000", "6000", "10000", "60000", "120000"]).boxed()
    } else {
        (0u64..100).prop_map(|n| n.to_string()).boxed()
    };
    prop_oneof![
        6 => plausible,
        4 => number(),
        1 => text().prop_map(|t| toml_string(&t)),
        1 => pick(&["true", "[]", "[\"true\"]", "{}", "1.5", "inf", "nan", "\"TERM\"", "-0"]),
    ]
    .boxed()
}

/// A table with a subsequence of `keys`, each with a value.
fn toml_table(header: &'static str, fixed: &'static str, keys: &'static [&'static str]) -> BoxedStrategy<String> {
    proptest::sample::subsequence(keys, 0..=keys.len())
        .prop_flat_map(move |keys| {
            let values: Vec<BoxedStrategy<String>> = keys.iter().map(|k| toml_value(k)).collect();
            values.prop_map(move |values| {
                let mut text = format!("{header}\n{fixed}");
                for (key, value) in keys.iter().zip(values) {
                    text.push_str(&format!("{key} = {value}\n"));
                }
                text
            })
        })
        .boxed()
}

/// A node TOML: the required keys, then optional top-level keys and
/// tables of every kind, rarely a line of garbage.
fn node_toml_text() -> impl Strategy<Value = String> {
    let top = prop_oneof![
        pick(&[
            "profile = \"pve\"\n",
            "profile = \"fast\"\n",
            "shutdown_policy = \"freeze\"\n",
            ""
        ]),
        toml_value("max_worker").prop_map(|v| format!("max_worker = {v}\n")),
        text().prop_map(|t| format!("node = {}\n", toml_string(&t))),
    ];
    let tables = prop_oneof![
        3 => toml_table(
            "[timing]",
            "",
            &[
                "round_ms",
                "lease_ms",
                "fence_delay_ms",
                "watchdog_client_timeout_ms",
                "watchdog_device_timeout_ms",
                "margin_ms",
                "watchdog_tick_ms",
                "raft_heartbeat_ms",
                "raft_election_ms",
            ],
        ),
        2 => toml_table(
            "[proc.web]",
            "command = \"sleep\"\nhealth_check = [\"true\"]\n",
            &["stop_timeout_secs", "health_timeout_secs", "start_timeout_secs"],
        ),
        1 => toml_table("[script.db]", "path = \"/x\"\n", &["timeout_secs", "monitor_timeout_secs"]),
        1 => toml_table(
            "[agent.vm]",
            "",
            &["timeout_secs", "shutdown_timeout_secs", "migrate_timeout_secs"],
        ),
        1 => (toml_table("[proc.db]", "command = \"db\"\n", &[]), text())
            .prop_map(|(proc, comment)| format!(
                "{proc}[resource.\"proc:db\"]\ncomment = {}\n",
                toml_string(&comment)
            )),
        1 => toml_table("[resource.\"vm:100\"]", "", &["max_restart", "max_relocate"]),
        1 => text().prop_map(|t| format!("{t}\n")),
    ];
    (prop::collection::vec(top, 0..3), prop::collection::vec(tables, 0..4)).prop_map(|(top, tables)| {
        // TOML forbids a table twice: keep the first of each header.
        let mut seen = BTreeSet::new();
        let tables: Vec<String> = tables
            .into_iter()
            .filter(|t| seen.insert(t.lines().next().unwrap_or_default().to_string()))
            .collect();
        format!(
            "node = \"node1\"\nstate_dir = \"/tmp/hactor-fuzz\"\n{}[watchdog]\nbackend = \"process\"\n{}",
            top.concat(),
            tables.concat()
        )
    })
}

/// Checks a node TOML: an error, or a configuration that keeps every
/// bound and the safety inequality.
fn check_node_config(text: &str) -> Result<(), TestCaseError> {
    let Ok(config) = NodeConfig::parse(text) else {
        let err = NodeConfig::parse(text).unwrap_err();
        prop_assert!(!err.is_empty());
        return Ok(());
    };
    let t = config.timings;
    for value in [
        t.round_ms,
        t.lease_ms,
        t.fence_delay_ms,
        t.watchdog_client_timeout_ms,
        t.watchdog_device_timeout_ms,
        t.margin_ms,
        t.watchdog_tick_ms,
        t.raft_heartbeat_ms,
        t.raft_election_ms,
    ] {
        prop_assert!(value <= MAX_TIMING_MS, "{t:?}");
    }
    // In u128 no sum wraps: the inequality really holds.
    let needed = u128::from(t.round_ms)
        + u128::from(t.watchdog_client_timeout_ms)
        + u128::from(t.watchdog_device_timeout_ms)
        + u128::from(t.margin_ms);
    prop_assert!(u128::from(t.lease_ms) >= needed, "{t:?}");
    prop_assert!(u128::from(t.raft_election_ms) * 2 < u128::from(t.watchdog_client_timeout_ms));
    prop_assert!((1..=MAX_WORKERS).contains(&config.max_worker));
    for service in config.proc_services.values() {
        for secs in [
            service.stop_timeout_secs,
            service.health_timeout_secs,
            service.start_timeout_secs,
        ] {
            prop_assert!(secs <= MAX_TIMEOUT_SECS);
        }
    }
    for script in config.script_services.values() {
        prop_assert!(script.timeout_secs <= MAX_TIMEOUT_SECS && script.monitor_timeout_secs <= MAX_TIMEOUT_SECS);
    }
    for agent in config.vm_agent.iter().chain(&config.ct_agent) {
        for secs in [
            agent.timeout_secs,
            agent.shutdown_timeout_secs,
            agent.migrate_timeout_secs,
        ] {
            prop_assert!(secs <= MAX_TIMEOUT_SECS);
        }
    }
    for seed in config.resources.values() {
        prop_assert!(seed.comment.as_deref().is_none_or(|c| !c.contains(['\n', '\r'])));
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn node_toml(text in node_toml_text()) {
        check_node_config(&text)?;
    }

    #[test]
    fn node_toml_any_text(text in prop_oneof![text(), "[ -~\n]{0,200}"]) {
        check_node_config(&text)?;
    }
}

/// A request body: a command with every field some request has (serde
/// ignores the ones a command does not take), of the right type, then a
/// few of them dropped or replaced by anything.
fn request_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let command = pick(&[
        "status",
        "config",
        "add",
        "set",
        "remove",
        "move",
        "stop",
        "node-maintenance",
        "disarm-ha",
        "arm-ha",
        "group-config",
        "group-add",
        "group-set",
        "group-remove",
        "rules-config",
        "rules-add",
        "rules-set",
        "rules-remove",
        "launch",
    ]);
    let string = prop_oneof![
        4 => pick(&[
            "vm:100",
            "vm:101",
            "100",
            "proc:web",
            "vm:abc",
            "node1",
            "node2",
            "node9",
            "g1",
            "r1",
            "node-affinity",
            "resource-affinity",
            "freeze",
            "ignore",
            "started",
            "disabled",
            "positive",
            "negative",
            "node1:2,node2",
            "vm:100,proc:web",
            "bogus",
            "vm",
            "comment",
            "1",
        ]),
        1 => text(),
    ];
    let optional = proptest::option::of(string.clone()).prop_map(|s| json!(s));
    let scalar = prop_oneof![
        string.clone().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!([])),
        Just(json!({})),
    ];
    let option_keys: &'static [&'static str] = &[
        "state",
        "group",
        "max_restart",
        "max_relocate",
        "comment",
        "failback",
        "nodes",
        "restricted",
        "nofailback",
        "resources",
        "strict",
        "affinity",
        "disable",
    ];
    let option_value = string.clone();
    let options = proptest::sample::subsequence(option_keys, 0..4).prop_flat_map(move |keys| {
        let values: Vec<BoxedStrategy<Value>> = keys
            .iter()
            .map(|k| match *k {
                "max_restart" | "max_relocate" => {
                    prop_oneof![(0u64..10).prop_map(Value::from), any::<u64>().prop_map(Value::from)].boxed()
                }
                _ => option_value.clone().prop_map(Value::from).boxed(),
            })
            .collect();
        values.prop_map(move |values| Value::Object(keys.iter().map(|k| k.to_string()).zip(values).collect()))
    });
    let timeout = prop_oneof![
        (0u64..100).prop_map(Value::from),
        pick(&["86400", "86401", "9223372036854775807", "18446744073709551615"])
            .prop_map(|n| Value::from(n.parse::<u64>().unwrap())),
    ];
    let fields = (
        (optional.clone(), optional.clone(), optional, options),
        (
            prop::collection::vec(string.clone(), 0..3),
            (string.clone(), string.clone()),
            any::<bool>(),
            pick(&["migrate", "relocate", "move"]),
            timeout,
        ),
    );
    let mutations = prop::collection::vec(
        (
            pick(&[
                "sid", "node", "kind", "mode", "group", "rule", "resource", "task", "digest", "timeout", "verbose",
                "enable", "purge", "options", "delete",
            ]),
            proptest::option::of(scalar),
        ),
        0..3,
    );
    (command, fields, mutations).prop_map(
        |(command, ((kind, digest, resource, options), (delete, (sid, node), flag, task, timeout)), mutations)| {
            let mut body = json!({
                "command": command,
                "verbose": flag,
                "kind": kind,
                "sid": sid,
                "options": options,
                "delete": delete,
                "digest": digest,
                "purge": flag,
                "task": task,
                "node": node,
                "timeout": timeout,
                "enable": flag,
                "mode": kind,
                "group": "g1",
                "rule": "r1",
                "resource": resource,
            });
            if let Value::Object(map) = &mut body {
                for (key, value) in mutations {
                    match value {
                        Some(value) => map.insert(key, value),
                        None => map.remove(&key),
                    };
                }
            }
            body
        },
    )
}

/// A small cluster to plan requests against.
fn snapshot() -> Snapshot {
    let mut state = ClusterState::default();
    state
        .resources
        .insert("vm:100".into(), ResourceConfig::new("node1", RequestState::Started));
    state
        .resources
        .insert("proc:web".into(), ResourceConfig::new("node2", RequestState::Stopped));
    *state.rules = parse_rules("resource-affinity: r1\n\taffinity negative\n\tresources proc:web,vm:100\n\n").unwrap();
    Snapshot {
        state,
        quorate: true,
        members: ["node1", "node2"].map(|n| (n.to_string(), true)).into(),
    }
}

/// The same cluster before its groups were migrated to rules.
fn snapshot_with_groups() -> Snapshot {
    let mut snap = snapshot();
    snap.state.rules.clear();
    snap.state.groups_cfg.insert(
        "g1".into(),
        hactor::core::store::StoredGroup {
            nodes: BTreeMap::from([("node1".to_string(), 2)]),
            restricted: false,
            nofailback: true,
            comment: None,
        },
    );
    snap.state.resources.get_mut("vm:100").unwrap().group = Some("g1".into());
    snap
}

/// What the daemon does with a decoded request must not panic either.
fn check_request(request: &Request, snap: &Snapshot) -> Result<(), TestCaseError> {
    let line = protocol::encode(request);
    let decoded = protocol::decode_request(&line);
    prop_assert_eq!(decoded.as_ref(), Ok(request));
    let ctx = PlanContext {
        node: "node1".into(),
        proc_services: BTreeSet::from(["web".to_string()]),
    };
    let outcome = if request.is_edit() {
        plan::plan(request, snap, &ctx).map(|_| ())
    } else if matches!(request, Request::Status { .. }) {
        Ok(())
    } else {
        plan::read(request, snap).map(|_| ())
    };
    if let Err(message) = outcome {
        prop_assert!(!message.is_empty());
    }
    if let Request::Stop { timeout, .. } = request
        && *timeout > MAX_TIMEOUT_SECS
    {
        prop_assert!(
            plan::plan(request, snap, &ctx).is_err(),
            "stop timeout {timeout} accepted"
        );
    }
    Ok(())
}

/// [`check_request`] against a cluster with rules and one with groups.
fn check_requests(request: &Request) -> Result<(), TestCaseError> {
    check_request(request, &snapshot())?;
    check_request(request, &snapshot_with_groups())
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn api_requests(body in request_json(), version in prop_oneof![8 => Just(1u64), 1 => any::<u64>()]) {
        let line = format!("{}\n", serde_json::json!({ "version": version, "body": body }));
        match protocol::decode_request(line.as_bytes()) {
            Ok(request) => check_requests(&request)?,
            Err(message) => prop_assert!(!message.is_empty()),
        }
    }

    #[test]
    fn api_any_bytes(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        "[{}\\[\\]\":,0-9a-z ]{0,120}".prop_map(String::into_bytes),
    ]) {
        if let Ok(request) = protocol::decode_request(&bytes) {
            check_requests(&request)?;
        }
        if let Ok(Outcome::Ok(response)) = protocol::decode_response(&bytes) {
            let line = protocol::encode(&Outcome::Ok(response.clone()));
            prop_assert_eq!(protocol::decode_response(&line), Ok(Outcome::Ok(response)));
        }
    }

    #[test]
    fn api_responses(entries in prop::collection::vec((text(), text()), 0..4), messages in prop::collection::vec(text(), 0..3)) {
        for response in [
            Response::Done { messages },
            Response::Status {
                entries: entries
                    .iter()
                    .map(|(id, status)| protocol::StatusEntry::new(id, "service", status.clone()))
                    .collect(),
                full: None,
            },
        ] {
            let outcome = Outcome::Ok(response);
            let line = protocol::encode(&outcome);
            prop_assert!(line.ends_with(b"\n") && !line[..line.len() - 1].contains(&b'\n'));
            prop_assert_eq!(protocol::decode_response(&line), Ok(outcome));
        }
    }
}

/// One argument of `ha-manager`.
fn argument() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => pick(&[
            "status", "config", "add", "set", "remove", "migrate", "relocate", "crm-command", "stop",
            "node-maintenance", "enable", "disable", "disarm-ha", "arm-ha", "groupconfig", "groupadd",
            "groupset", "groupremove", "rules", "list", "completions", "man", "help",
        ]),
        3 => pick(&[
            "--type", "--state", "--group", "--max_restart", "-max_restart", "--max-restart=2",
            "-max_relocate=x", "--comment", "--failback", "--failback=0", "--delete", "--digest",
            "--output-format", "--output-format=json", "--socket", "--verbose", "-v", "--nodes",
            "--resources", "--affinity", "--strict", "--disable", "--purge", "--resource", "--", "-",
            "--help", "--version", "-h", "--output", "-o",
        ]),
        3 => pick(&[
            "vm:100", "100", "proc:web", "node1", "json", "text", "bogus", "node-affinity", "freeze",
            "bash", "0", "1",
        ]),
        2 => number(),
        1 => text(),
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn command_lines(args in prop::collection::vec(argument(), 0..7)) {
        let argv: Vec<String> = std::iter::once("ha-manager".to_string()).chain(args).collect();
        let Ok(cli) = Cli::try_parse_from(normalize(argv)) else {
            return Ok(());
        };
        if let Command::CrmCommand(hactor::cli::args::CrmCommand::Stop { timeout, .. }) = &cli.command {
            prop_assert!(*timeout <= MAX_TIMEOUT_SECS);
        }
        if matches!(cli.command, Command::Completions { .. } | Command::Man { .. }) {
            return Ok(());
        }
        if let Ok(Some(request)) = hactor::cli::request(cli.command) {
            check_requests(&request)?;
        }
    }

    #[test]
    fn command_line_bytes(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..5)) {
        let valid = args.iter().all(|a| std::str::from_utf8(a).is_ok());
        let argv: Vec<OsString> = std::iter::once(OsString::from("ha-manager"))
            .chain(args.into_iter().map(OsString::from_vec))
            .collect();
        match hactor::cli::utf8_args(argv) {
            Ok(args) => {
                prop_assert!(valid);
                let _ = Cli::try_parse_from(normalize(args));
            }
            Err(message) => {
                prop_assert!(!valid);
                prop_assert!(message.contains("not valid UTF-8"));
            }
        }
    }
}
