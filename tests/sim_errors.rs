//! Malformed scenario inputs: the simulator must refuse them with a message
//! that names the file (and, where the format has lines, the line), both from
//! the library (`run_scenario`) and from the `hactor-sim` binary, which must
//! then exit non-zero and write no log.

use std::fs;
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

const HARDWARE: &str = r#"{
  "n1": { "power": "off", "network": "off" },
  "n2": { "power": "off", "network": "off" },
  "n3": { "power": "off", "network": "off" }
}
"#;

const CMDLIST: &str = r#"[
  [ "power n1 on", "power n2 on", "power n3 on" ],
  [ "service vm:42 migrate n2" ]
]
"#;

const SERVICES: &str = r#"{
  "vm:42": { "node": "n1", "state": "started" },
  "ct:43": { "node": "n3", "state": "stopped" }
}
"#;

/// A small valid scenario; `change` then breaks one file.
fn scenario(change: impl FnOnce(&Path)) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path();
    fs::write(p.join("hardware_status"), HARDWARE).unwrap();
    fs::write(p.join("cmdlist"), CMDLIST).unwrap();
    fs::write(p.join("service_config"), SERVICES).unwrap();
    fs::write(p.join("manager_status"), "{}\n").unwrap();
    change(p);
    dir
}

fn write(name: &'static str, text: &'static str) -> impl FnOnce(&Path) {
    move |p: &Path| fs::write(p.join(name), text).unwrap()
}

/// Breaks one file of a valid scenario.
type Change = Box<dyn FnOnce(&Path)>;

struct Case {
    name: &'static str,
    change: fn() -> Change,
    /// Fragments the error message must contain.
    expect: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "invalid JSON in hardware_status",
            change: || {
                Box::new(write(
                    "hardware_status",
                    "{\n  \"n1\": { \"power\": \"off\", \"network\": \"off\" },\n  \"n2\": { \"power\": \"off\" \"network\": \"off\" }\n}\n",
                ))
            },
            expect: &["hardware_status:3", "JSON"],
        },
        Case {
            name: "hardware_status power neither on nor off",
            change: || {
                Box::new(write(
                    "hardware_status",
                    "{\n  \"n1\": { \"power\": \"off\", \"network\": \"off\" },\n  \"n2\": { \"power\": \"maybe\", \"network\": \"off\" }\n}\n",
                ))
            },
            expect: &["hardware_status:3", "n2"],
        },
        Case {
            name: "unknown command in cmdlist",
            change: || {
                Box::new(write(
                    "cmdlist",
                    "[\n  [ \"power n1 on\", \"power n2 on\" ],\n  [ \"power n3 on\",\n    \"juggle n1 3\" ]\n]\n",
                ))
            },
            expect: &["cmdlist:4", "juggle n1 3", "unknown command"],
        },
        Case {
            name: "command on a node that does not exist",
            change: || Box::new(write("cmdlist", "[\n  [ \"power n1 on\", \"power n9 on\" ]\n]\n")),
            expect: &["cmdlist:2", "power n9 on", "n9"],
        },
        Case {
            name: "cmdlist is not an array",
            change: || Box::new(write("cmdlist", "{ \"power n1 on\": 1 }\n")),
            expect: &["cmdlist"],
        },
        Case {
            name: "missing cmdlist",
            change: || Box::new(|p: &Path| fs::remove_file(p.join("cmdlist")).unwrap()),
            expect: &["cmdlist", "missing"],
        },
        Case {
            name: "bad service id",
            change: || {
                Box::new(write(
                    "service_config",
                    "{\n  \"vm:42\": { \"node\": \"n1\" },\n  \"xx:1\": { \"node\": \"n2\" }\n}\n",
                ))
            },
            expect: &["service_config:3", "xx:1"],
        },
        Case {
            name: "service without node",
            change: || {
                Box::new(write(
                    "service_config",
                    "{\n  \"vm:42\": { \"state\": \"started\" }\n}\n",
                ))
            },
            expect: &["service_config:2", "vm:42", "node"],
        },
        Case {
            name: "rules_config with an unknown key",
            change: || {
                Box::new(write(
                    "rules_config",
                    "node-affinity: pin\n\tresources vm:42\n\tnodes n1\n\tcolour blue\n",
                ))
            },
            expect: &["rules_config:", "colour"],
        },
        Case {
            name: "rules_config with a bad affinity",
            change: || {
                Box::new(write(
                    "rules_config",
                    "resource-affinity: apart\n\tresources vm:42,ct:43\n\taffinity sideways\n",
                ))
            },
            expect: &["rules_config:", "sideways"],
        },
        Case {
            name: "groups property outside a section",
            change: || Box::new(write("groups", "\tnodes n1,n2\ngroup: g1\n\tnodes n1\n")),
            expect: &["groups:1", "outside"],
        },
        Case {
            name: "groups property after a blank line",
            change: || Box::new(write("groups", "group: g1\n\tnodes n1\n\nrestricted 1\n")),
            expect: &["groups:4", "restricted 1"],
        },
        Case {
            name: "datacenter.cfg not an object",
            change: || Box::new(write("datacenter.cfg", "[1, 2]\n")),
            expect: &["datacenter.cfg"],
        },
    ]
}

#[test]
fn the_valid_base_scenario_runs() {
    let dir = scenario(|_| {});
    let lines = hactor::sim::run_scenario(dir.path()).expect("base scenario is valid");
    assert!(lines.iter().any(|l| l.contains("starting service vm:42")), "{lines:#?}");
}

#[test]
fn run_scenario_reports_file_and_line() {
    let mut failures = Vec::new();
    for case in cases() {
        let dir = scenario((case.change)());
        match hactor::sim::run_scenario(dir.path()) {
            Ok(_) => failures.push(format!("{}: accepted", case.name)),
            Err(err) => {
                let msg = err.to_string();
                let missing: Vec<&&str> = case.expect.iter().filter(|f| !msg.contains(**f)).collect();
                if !missing.is_empty() {
                    failures.push(format!("{}: message {msg:?} lacks {missing:?}", case.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn run_binary(case_name: &str, file: &str) {
    let case = cases().into_iter().find(|c| c.name == case_name).expect("known case");
    let dir = scenario((case.change)());
    let out_dir = tempfile::tempdir().expect("temp dir");
    let log = out_dir.path().join("out.log");
    let output = Command::new(env!("CARGO_BIN_EXE_hactor-sim"))
        .arg("run")
        .arg(dir.path())
        .arg("--log")
        .arg(&log)
        .output()
        .expect("run hactor-sim");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{case_name}: exit status {:?}", output.status);
    assert!(
        stderr.contains(file),
        "{case_name}: stderr does not name {file}: {stderr}"
    );
    for fragment in case.expect {
        assert!(
            stderr.contains(fragment),
            "{case_name}: stderr lacks {fragment:?}: {stderr}"
        );
    }
    let leftovers: Vec<_> = fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "{case_name}: files written despite the error: {leftovers:?}"
    );
}

#[test]
fn binary_rejects_invalid_hardware_json_without_writing_a_log() {
    run_binary("invalid JSON in hardware_status", "hardware_status");
}

#[test]
fn binary_rejects_unknown_command_without_writing_a_log() {
    run_binary("unknown command in cmdlist", "cmdlist");
}

#[test]
fn binary_rejects_bad_service_id_without_writing_a_log() {
    run_binary("bad service id", "service_config");
}

#[test]
fn binary_writes_the_log_for_a_valid_scenario() {
    let dir = scenario(|_| {});
    let out_dir = tempfile::tempdir().expect("temp dir");
    let log = out_dir.path().join("out.log");
    let status = Command::new(env!("CARGO_BIN_EXE_hactor-sim"))
        .arg("run")
        .arg(dir.path())
        .arg("--log")
        .arg(&log)
        .status()
        .expect("run hactor-sim");
    assert!(status.success());
    let text = fs::read_to_string(&log).expect("log written");
    let expected = hactor::sim::run_scenario(dir.path()).unwrap().join("\n") + "\n";
    assert_eq!(text, expected);
}
