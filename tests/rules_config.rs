//! Golden tests of the rules pipeline (spec §5.6): every `tests/rules/<name>.cfg`
//! is parsed, checked and transformed against the node list node1..node3,
//! then compiled; the result must equal `<name>.cfg.expect`:
//!
//! ```text
//! --- Log ---
//! Drop rule '<id>', because <message>.      (one line per message)
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
//! `UPDATE_EXPECT=1 cargo test --test rules_config` rewrites the expect
//! files (review the diff against the spec). Indented lines start with a tab.
//!
//! A case whose `.cfg` has a line `# xfail: <reason>` documents a known
//! contradiction between the code and the spec: its expect file holds what
//! the spec demands, is never rewritten, and the case fails only once the
//! code produces that output (then remove the marker).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use hactor::core::rules::{compile, parse_rules, transform, write_rules};
use hactor::core::select::CompiledRules;

fn nodes() -> Vec<String> {
    vec!["node1".into(), "node2".into(), "node3".into()]
}

fn dump_sets(out: &mut String, title: &str, map: &BTreeMap<String, BTreeSet<String>>) {
    out.push_str(title);
    out.push('\n');
    for (sid, partners) in map {
        let partners: Vec<&str> = partners.iter().map(String::as_str).collect();
        writeln!(out, "\t{sid}: {}", partners.join(",")).unwrap();
    }
}

fn dump_compiled(compiled: &CompiledRules) -> String {
    let mut out = String::from("node_affinity\n");
    for (sid, affinity) in &compiled.node_affinity {
        let nodes: Vec<String> = affinity.nodes.iter().map(|(n, p)| format!("{n}:{p}")).collect();
        writeln!(out, "\t{sid}: {}", nodes.join(",")).unwrap();
    }
    dump_sets(&mut out, "positive", &compiled.positive);
    dump_sets(&mut out, "negative", &compiled.negative);
    out
}

fn run_case(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rules = parse_rules(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (kept, messages) = transform(&rules, &nodes());
    let compiled = compile(&kept, &nodes());
    let mut out = String::from("--- Log ---\n");
    for message in &messages {
        out.push_str(message);
        out.push('\n');
    }
    out.push_str("--- Config ---\n");
    out.push_str(&write_rules(&kept));
    out.push_str("--- Compiled Config ---\n");
    out.push_str(&dump_compiled(&compiled));
    out
}

fn xfail_reason(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("# xfail:").map(|r| r.trim().to_string()))
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules");
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cfg"))
        .collect();
    cases.sort();
    cases
}

#[test]
fn rules_config_golden_cases() {
    let cases = cases();
    assert!(!cases.is_empty(), "no test cases in tests/rules");
    let update = std::env::var("UPDATE_EXPECT").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    let mut known = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let expect_path = case.with_file_name(format!("{name}.expect"));
        let actual = run_case(case);
        let xfail = xfail_reason(case);
        if update && xfail.is_none() {
            fs::write(&expect_path, &actual).unwrap();
            continue;
        }
        let Ok(expected) = fs::read_to_string(&expect_path) else {
            failures.push(format!(
                "{name}: missing {} (run with UPDATE_EXPECT=1)",
                expect_path.display()
            ));
            continue;
        };
        match (xfail, actual == expected) {
            (None, true) => {}
            (None, false) => failures.push(format!(
                "{name}: output differs from {}\n--- expected\n{expected}--- actual\n{actual}",
                expect_path.display()
            )),
            (Some(reason), false) => known.push(format!(
                "{name} (known contradiction: {reason})\n--- spec\n{expected}--- code\n{actual}"
            )),
            (Some(_), true) => failures.push(format!(
                "{name}: the code now gives the spec's output: remove the '# xfail:' line"
            )),
        }
    }
    for note in &known {
        eprintln!("xfail {note}");
    }
    eprintln!(
        "{} rules cases: {} passed, {} known contradictions, {} failed",
        cases.len(),
        cases.len() - known.len() - failures.len(),
        known.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
