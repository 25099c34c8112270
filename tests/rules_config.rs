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
//! Each case runs through the code path of `hactor-sim rules <file>`
//! ([`hactor::sim::rules_check::report`]), so the command prints exactly
//! what is checked here.

use std::fs;
use std::path::{Path, PathBuf};

use hactor::sim::rules_check::{default_nodes, report};

fn run_case(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    report(&text, &default_nodes()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let expect_path = case.with_file_name(format!("{name}.expect"));
        let actual = run_case(case);
        if update {
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
        if actual != expected {
            failures.push(format!(
                "{name}: output differs from {}\n--- expected\n{expected}--- actual\n{actual}",
                expect_path.display()
            ));
        }
    }
    eprintln!(
        "{} rules cases: {} passed, {} failed",
        cases.len(),
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The command prints the same report as the library, and a bad file or
/// node list is refused with its name and line, without a report.
#[test]
fn hactor_sim_rules_command() {
    let bin = env!("CARGO_BIN_EXE_hactor-sim");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules");
    let case = dir.join("message-order.cfg");
    let output = std::process::Command::new(bin)
        .arg("rules")
        .arg(&case)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let expected = fs::read_to_string(dir.join("message-order.cfg.expect")).unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);

    let case = dir.join("resource-affinity-counts.cfg");
    let output = std::process::Command::new(bin)
        .args(["rules", "--nodes", "node1,node2,node3,node4"])
        .arg(&case)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("resource-affinity: four-apart"), "{stdout}");
    assert!(!stdout.contains("Drop rule 'four-apart'"), "{stdout}");

    let bad = std::env::temp_dir().join(format!("hactor-rules-{}.cfg", std::process::id()));
    fs::write(
        &bad,
        "node-affinity: pin\n\tnodes node1\n\tresources vm:1\n\tstrict maybe\n",
    )
    .unwrap();
    let output = std::process::Command::new(bin).arg("rules").arg(&bad).output().unwrap();
    fs::remove_file(&bad).unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&*bad.to_string_lossy()) && stderr.contains("line 4") && stderr.contains("strict"),
        "{stderr}"
    );

    let output = std::process::Command::new(bin)
        .args(["rules", "--nodes", "node1,,node_2"])
        .arg(&case)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid node name 'node_2'"));
}
