//! `ha-manager` against running daemons: real `hactor` processes with a
//! temp state dir and `proc:` services, the real socket, the real CLI
//! binary. Every command in text and JSON, a table of bad inputs, racing
//! clients, the socket's permissions.
//!
//! [`Cluster`] is a single daemon on the in-process store. The
//! `three_nodes_*` tests form a real 3-node cluster (replicated store over
//! QUIC, [`multinode::Cluster`]) and run the commands against different
//! nodes: edits on one node show on the others once replicated, CRM
//! commands move services for real, node names are the cluster's members,
//! a node without quorum refuses edits, racing clients on different nodes
//! lose nothing.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

mod multinode;

/// One `hactor` process; killed on drop (its fence guard then stops the
/// node's services).
struct Daemon {
    name: String,
    socket: PathBuf,
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one `ha-manager` run gave.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// N daemons in one temp dir.
struct Cluster {
    nodes: Vec<Daemon>,
    dir: tempfile::TempDir,
}

fn node_config(dir: &Path, name: &str) -> String {
    format!(
        "node = \"{name}\"\nstate_dir = \"{dir}\"\nsocket = \"{dir}/hactor.sock\"\n\
         [watchdog]\nbackend = \"process\"\n\
         [proc.web]\ncommand = \"sleep\"\nargs = [\"1000\"]\nstop_timeout_secs = 1\n\
         [proc.db]\ncommand = \"sleep\"\nargs = [\"1000\"]\nstop_timeout_secs = 1\n\
         [resource.\"proc:web\"]\n",
        dir = dir.display()
    )
}

impl Cluster {
    /// Starts `n` daemons and waits until node1 is master and `proc:web`
    /// runs. Only a single in-process-store node; the multi-node tests
    /// form real clusters with [`multinode::Cluster`].
    fn start(n: usize) -> Cluster {
        assert_eq!(n, 1, "multi-node clusters: see three_nodes()");
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for i in 1..=n {
            let name = format!("node{i}");
            let state = dir.path().join(&name);
            std::fs::create_dir_all(&state).unwrap();
            let config = state.join("node.toml");
            std::fs::write(&config, node_config(&state, &name)).unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_hactor"))
                .arg("--config")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            nodes.push(Daemon {
                name,
                socket: state.join("hactor.sock"),
                child,
            });
        }
        let cluster = Cluster { nodes, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let run = cluster.ha(&["status"]);
            if run.stdout.contains("service proc:web (node1, started)") && run.stdout.contains("(active,") {
                break;
            }
            assert!(Instant::now() < deadline, "cluster not ready: {run:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    fn client(&self, node: usize) -> Client {
        Client::new(&self.nodes[node].name, &self.nodes[node].socket)
    }

    /// Waits until `status` on node1 shows `line`.
    fn wait_for_status(&self, line: &str) {
        self.client(0).wait_for_status(line);
    }

    fn command(&self, node: usize) -> Command {
        self.client(node).command()
    }

    /// `ha-manager <args>` on node1.
    fn ha(&self, args: &[&str]) -> Run {
        self.client(0).ha(args)
    }

    /// Runs and expects success with empty stderr; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.client(0).ok(args)
    }

    fn json(&self, args: &[&str]) -> Value {
        self.client(0).json(args)
    }
}

/// `ha-manager` against one daemon's socket.
struct Client {
    name: String,
    socket: PathBuf,
}

/// How long a change may take to show on a node (replication, a CRM
/// round, an LRM round) on a loaded machine.
const SETTLE: Duration = Duration::from_secs(60);

impl Client {
    fn new(name: &str, socket: &Path) -> Client {
        Client {
            name: name.to_string(),
            socket: socket.to_path_buf(),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ha-manager"));
        command.env("HACTOR_SOCKET", &self.socket);
        command
    }

    fn ha(&self, args: &[&str]) -> Run {
        self.command().args(args).output().unwrap().into()
    }

    /// Runs and expects success with empty stderr; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let run = self.ha(args);
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (0, ""),
            "{} {args:?}: {run:?}",
            self.name
        );
        run.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output-format", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Runs `args` until its output (times masked) passes `check`;
    /// returns that output.
    fn wait_until(&self, args: &[&str], what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SETTLE;
        loop {
            let run = self.ha(args);
            let out = mask_times(&run.stdout);
            if run.code == 0 && check(&out) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {args:?} never showed {what}; last: {run:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `args` prints exactly `expected` (times masked).
    fn wait_text(&self, args: &[&str], expected: &str) {
        let out = self.wait_until(args, &format!("{expected:?}"), |out| out == expected);
        assert_eq!(out, expected);
    }

    /// Waits until `status` shows `line` (times masked).
    fn wait_for_status(&self, line: &str) {
        self.wait_until(&["status"], &format!("the line {line:?}"), |out| {
            out.lines().any(|l| l == line)
        });
    }
}

/// Replaces every C `ctime` time (`Fri Apr 24 10:00:03 2026`) by `<time>`.
fn mask_times(text: &str) -> String {
    let pattern = "AAA AAA dd dd:dd:dd dddd";
    let fits = |window: &[u8]| {
        window.iter().zip(pattern.bytes()).all(|(&c, p)| match p {
            b'A' => c.is_ascii_alphabetic(),
            b'd' => c.is_ascii_digit() || c == b' ',
            other => c == other,
        })
    };
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if i + pattern.len() <= bytes.len() && fits(&bytes[i..i + pattern.len()]) {
            out.push_str("<time>");
            i += pattern.len();
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

#[test]
fn every_command_in_text_and_json() {
    let c = Cluster::start(1);
    assert_eq!(c.nodes[0].name, "node1");

    // status
    assert_eq!(
        mask_times(&c.ok(&["status"])),
        "quorum OK\n\
         master node1 (active, <time>)\n\
         fencing armed (CRM watchdog active)\n\
         lrm node1 (active, watchdog active, <time>)\n\
         service proc:web (node1, started)\n"
    );
    let entries = c.json(&["status"]);
    let kinds: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["quorum", "master", "fencing", "lrm", "service"]);
    assert_eq!(entries[4]["sid"], "proc:web");
    assert_eq!(entries[4]["crm_state"], "started");
    assert_eq!(entries[0]["quorate"], true);
    let verbose = c.ok(&["status", "--verbose"]);
    let (head, full) = verbose.split_once("full cluster state:\n").unwrap();
    assert!(head.ends_with("service proc:web (node1, started)\n"), "{verbose}");
    let full: Value = serde_json::from_str(full).unwrap();
    assert_eq!(full["manager_status"]["master_node"], "node1");
    assert_eq!(full["quorum"]["quorate"], 1);
    assert_eq!(full["lrm_status"]["node1"]["state"], "active");

    // resources
    assert_eq!(c.ok(&["config"]), "proc:web\n\tstate started\n\n");
    assert_eq!(
        c.ok(&[
            "add",
            "vm:100",
            "--state",
            "stopped",
            "--max_restart",
            "3",
            "--comment",
            "db one"
        ]),
        ""
    );
    assert_eq!(c.ok(&["add", "proc:db", "-max_relocate", "2", "--failback", "0"]), "");
    assert_eq!(
        c.ok(&["config"]),
        "proc:db\n\tfailback 0\n\tmax_relocate 2\n\tstate started\n\n\
         proc:web\n\tstate started\n\n\
         vm:100\n\tcomment db one\n\tmax_restart 3\n\tstate stopped\n\n"
    );
    assert_eq!(
        c.ok(&["config", "--type", "vm"]),
        "vm:100\n\tcomment db one\n\tmax_restart 3\n\tstate stopped\n\n"
    );
    let config = c.json(&["config", "--type", "vm"]);
    assert_eq!(config[0]["sid"], "vm:100");
    assert_eq!(config[0]["max_restart"], 3);
    assert_eq!(
        config[0].get("node"),
        None,
        "where it runs is status, not configuration"
    );
    let digest = config[0]["digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);
    assert_eq!(
        c.ok(&["set", "vm:100", "--state", "disabled", "--delete", "comment"]),
        ""
    );
    assert_eq!(
        c.ok(&["config", "--type", "vm"]),
        "vm:100\n\tmax_restart 3\n\tstate disabled\n\n"
    );
    // optimistic locking with a user-given digest
    let stale = c.ha(&["set", "vm:100", "--comment", "x", "--digest", &digest]);
    assert_eq!(
        (stale.code, stale.stderr.as_str()),
        (
            1,
            "detected modified configuration - file changed by other user? Try again.\n"
        )
    );
    let digest = c.json(&["config"])[0]["digest"].as_str().unwrap().to_string();
    assert_eq!(c.ok(&["set", "vm:100", "--comment", "x", "--digest", &digest]), "");
    assert!(c.ok(&["config", "--type", "vm"]).contains("\tcomment x\n"));
    c.wait_for_status("service vm:100 (node1, disabled)");

    // groups
    assert_eq!(c.ok(&["groupconfig"]), "");
    assert_eq!(c.ok(&["groupadd", "g1", "--nodes", "node1:2", "--restricted"]), "");
    assert_eq!(c.ok(&["groupset", "g1", "--comment", "first"]), "");
    assert_eq!(
        c.ok(&["groupconfig"]),
        "group: g1\n\tcomment first\n\tnodes node1:2\n\trestricted 1\n\n"
    );
    let groups = c.json(&["groupconfig"]);
    assert_eq!(groups[0]["group"], "g1");
    assert_eq!(groups[0]["restricted"], 1);
    assert_eq!(c.ok(&["set", "vm:100", "--group", "g1"]), "");
    let used = c.ha(&["groupremove", "g1"]);
    assert_eq!(used.stderr, "ha group is used by service 'vm:100'\n");
    let no_rules = c.ha(&[
        "rules",
        "add",
        "node-affinity",
        "pin",
        "--resources",
        "vm:100",
        "--nodes",
        "node1",
    ]);
    assert_eq!(
        no_rules.stderr,
        "cannot create ha rule: ha groups have not been migrated yet\n"
    );
    assert_eq!(c.ok(&["set", "vm:100", "--delete", "group"]), "");
    assert_eq!(c.ok(&["groupremove", "g1"]), "");
    assert_eq!(c.ok(&["groupconfig"]), "");

    // rules
    assert_eq!(
        c.ok(&[
            "rules",
            "add",
            "resource-affinity",
            "together",
            "--resources",
            "vm:100,proc:web",
            "--affinity",
            "positive"
        ]),
        ""
    );
    assert_eq!(
        c.ok(&[
            "rules",
            "set",
            "resource-affinity",
            "together",
            "--comment",
            "web and db"
        ]),
        ""
    );
    assert_eq!(
        c.ok(&[
            "rules",
            "add",
            "node-affinity",
            "pin",
            "--resources",
            "proc:db",
            "--nodes",
            "node1",
            "--strict"
        ]),
        ""
    );
    assert_eq!(
        c.ok(&["rules", "config"]),
        "enabled state  rule     type              resources       comment\n\
         1       in use together resource-affinity proc:web,vm:100 web and db\n\
         1       in use pin      node-affinity     proc:db\n"
    );
    let rules = c.json(&["rules", "config", "--type", "node-affinity"]);
    assert_eq!(rules.as_array().unwrap().len(), 1);
    assert_eq!(rules[0]["nodes"], "node1");
    assert_eq!(rules[0]["strict"], 1);
    assert_eq!(c.ok(&["rules", "list", "--resource", "vm:100"]).lines().count(), 2);
    let migrated = c.ha(&["groupadd", "g2", "--nodes", "node1"]);
    assert_eq!(
        migrated.stderr,
        "cannot create group: ha groups have been migrated to rules\n"
    );

    // CRM commands
    for args in [
        &["migrate", "proc:web", "node1"][..],
        &["relocate", "proc:web", "node1"],
        &["crm-command", "migrate", "proc:web", "node1"],
        &["crm-command", "relocate", "proc:web", "node1"],
        &["crm-command", "stop", "proc:db", "0"],
        &["crm-command", "node-maintenance", "enable", "node1"],
        &["crm-command", "node-maintenance", "disable", "node1"],
        &["crm-command", "disarm-ha", "freeze"],
        &["crm-command", "arm-ha"],
    ] {
        assert_eq!(c.ok(args), "", "{args:?}");
    }
    assert_eq!(
        c.json(&["migrate", "proc:web", "node1"]),
        serde_json::json!({"messages": []})
    );
    let pretty = c.ok(&["crm-command", "arm-ha", "--output-format", "json-pretty"]);
    assert_eq!(pretty, "{\n  \"messages\": []\n}\n");

    // removal purges rules
    assert_eq!(c.ok(&["remove", "vm:100"]), "");
    assert_eq!(c.ok(&["remove", "proc:db"]), "");
    assert_eq!(
        c.ok(&["rules", "config"]),
        "enabled state               rule     type              resources comment\n\
         1       ignored (conflicts) together resource-affinity proc:web  web and db\n"
    );
    // rules check: upstream's log lines for the configured rules, or for a
    // candidate file, against the cluster's nodes; nothing changes
    assert_eq!(
        c.ok(&["rules", "check"]),
        "Drop rule 'together', because rule is ineffective as there are less than two resources.\n"
    );
    assert_eq!(
        c.json(&["rules", "check"]),
        serde_json::json!({"nodes": ["node1"], "checked": 1, "dropped": [
            {"rule": "together", "messages": ["rule is ineffective as there are less than two resources"]}
        ]})
    );
    let candidate = c.dir.path().join("candidate-rules.cfg");
    std::fs::write(
        &candidate,
        "resource-affinity: apart\n\taffinity negative\n\tresources proc:web,vm:200\n",
    )
    .unwrap();
    assert_eq!(
        c.ok(&["rules", "check", "--file", candidate.to_str().unwrap()]),
        "Drop rule 'apart', because rule defines more resources than available nodes.\n"
    );
    std::fs::write(
        &candidate,
        "resource-affinity: apart\n\taffinity sideways\n\tresources proc:web,vm:200\n",
    )
    .unwrap();
    let bad = c.ha(&["rules", "check", "--file", candidate.to_str().unwrap()]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.starts_with("rules.cfg: line 2: ") && bad.stderr.contains("'affinity'"),
        "{}",
        bad.stderr
    );
    assert_eq!(c.ok(&["rules", "remove", "together"]), "");
    assert_eq!(
        c.ok(&["rules", "config"]),
        "enabled state rule type resources comment\n"
    );
    assert_eq!(
        c.ok(&["rules", "check"]),
        "no rule dropped (0 rules checked against nodes node1)\n"
    );
    assert_eq!(c.ok(&["config"]), "proc:web\n\tstate started\n\n");

    // completions and man page (no daemon needed)
    let bash = c.ok(&["completions", "bash"]);
    assert!(bash.contains("ha-manager") && bash.contains("crm-command"), "{bash}");
    assert!(c.ok(&["completions", "zsh"]).contains("#compdef ha-manager"));
    let man = c.ok(&["man"]);
    assert!(man.contains(".TH ha-manager"), "{man}");
    let page = c.dir.path().join("ha-manager.1");
    assert_eq!(c.ok(&["man", "--output", page.to_str().unwrap()]), "");
    assert_eq!(std::fs::read_to_string(&page).unwrap(), man);
}

/// A reader that went away is no error (it panicked in clap_complete's
/// writer, exit 101).
#[test]
fn a_closed_stdout_is_no_panic() {
    for args in [&["completions", "bash"][..], &["man"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = Command::new(env!("CARGO_BIN_EXE_ha-manager"))
            .args(args)
            .stdout(writer)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.stderr, b"", "{args:?}");
    }
}

#[test]
fn bad_inputs_get_one_line_and_change_nothing() {
    let c = Cluster::start(1);
    let before = c.ok(&["config"]);
    let cases: &[(&[&str], i32, &str)] = &[
        (&["add", "vm100"], 1, "unable to parse service id 'vm100'"),
        (
            &["add", "vm:7"],
            1,
            "invalid resource name '7' in service id 'vm:7' (expected a number of at least two digits)",
        ),
        (
            &["add", "lxc:100"],
            1,
            "unknown resource type 'lxc' in service id 'lxc:100' (expected vm, ct or proc)",
        ),
        (&["add", "proc:web"], 1, "resource ID 'proc:web' already defined"),
        (
            &["add", "vm:101", "--state", "on"],
            1,
            "state: value 'on' does not have a value in the enumeration 'started, stopped, enabled, disabled, ignored'",
        ),
        (
            &["add", "proc:nothere"],
            1,
            "resource 'proc:nothere' does not exist in cluster",
        ),
        (&["add", "vm:101", "--type", "ct"], 1, "types does not match"),
        (&["add", "vm:101", "--group", "g9"], 1, "group 'g9' does not exist"),
        (
            &["add", "vm:101", "--failback", "maybe"],
            1,
            "failback: type check ('boolean') failed - got 'maybe'",
        ),
        (&["set", "vm:999", "--state", "stopped"], 1, "no such resource 'vm:999'"),
        (
            &["set", "proc:web", "--delete", "node"],
            1,
            "delete: cannot delete property 'node'",
        ),
        (
            &["set", "proc:web", "--comment", "x", "--delete", "comment"],
            1,
            "cannot set and delete property 'comment' at the same time",
        ),
        (
            &["remove", "vm:999"],
            1,
            "cannot delete service 'vm:999', not HA managed!",
        ),
        (&["migrate", "proc:web", "node7"], 1, "no such cluster node 'node7'"),
        (
            &["relocate", "vm:999", "node1"],
            1,
            "resource 'vm:999' is not HA managed",
        ),
        (
            &["crm-command", "stop", "vm:999", "0"],
            1,
            "resource 'vm:999' is not HA managed",
        ),
        (
            &["crm-command", "node-maintenance", "enable", "node7"],
            1,
            "no such cluster node 'node7'",
        ),
        (
            &["crm-command", "disarm-ha", "melt"],
            1,
            "resource-mode: value 'melt' does not have a value in the enumeration 'freeze, ignore'",
        ),
        (
            &["groupadd", "g1", "--nodes", "node1:high"],
            1,
            "nodes: invalid priority in 'node1:high' (expected a non-negative integer)",
        ),
        (
            &["groupadd", "g1", "--nodes", "node_1"],
            1,
            "nodes: invalid node name in 'node_1'",
        ),
        (
            &["groupadd", "g1"],
            1,
            "nodes: property is missing and it is not optional",
        ),
        (
            &["groupadd", "1g", "--nodes", "node1"],
            1,
            "group: invalid format - invalid configuration ID '1g'",
        ),
        (&["groupset", "g9", "--comment", "x"], 1, "no such ha group 'g9'"),
        (&["groupremove", "g9"], 1, "no such ha group 'g9'"),
        (
            &[
                "rules",
                "add",
                "node-affinity",
                "pin",
                "--resources",
                "proc:web",
                "--nodes",
                "node7",
            ],
            1,
            "cannot use non-existent node(s) node7.",
        ),
        (
            &[
                "rules",
                "add",
                "node-affinity",
                "pin",
                "--resources",
                "vm:555",
                "--nodes",
                "node1",
            ],
            1,
            "cannot use unmanaged resource(s) vm:555.",
        ),
        (
            &[
                "rules",
                "add",
                "resource-affinity",
                "apart",
                "--resources",
                "proc:web",
                "--affinity",
                "negative",
            ],
            1,
            "Rule 'apart' is invalid - rule is ineffective as there are less than two resources",
        ),
        (
            &["rules", "add", "resource-affinity", "apart", "--resources", "proc:web"],
            1,
            "affinity: property is missing and it is not optional",
        ),
        (
            &["rules", "add", "colocation", "apart", "--resources", "proc:web"],
            1,
            "type: value 'colocation' does not have a value in the enumeration 'node-affinity, resource-affinity'",
        ),
        (&["rules", "remove", "nothing"], 1, "no such ha rule 'nothing'"),
        (
            &["rules", "set", "node-affinity", "nothing", "--strict"],
            1,
            "no such ha rule 'nothing'",
        ),
        (&["frobnicate"], 2, "unrecognized subcommand 'frobnicate'"),
        (
            &["migrate", "proc:web"],
            2,
            "the following required arguments were not provided:",
        ),
        (
            &["crm-command", "stop", "proc:web", "-1"],
            2,
            "unexpected argument '-1' found",
        ),
        // issue 11: accepted, then dropped by the CRM or panicking the agent
        (
            &["crm-command", "stop", "proc:web", "18446744073709551615"],
            2,
            "invalid value '18446744073709551615' for '<TIMEOUT>': 18446744073709551615 is not in 0..=86400",
        ),
        (
            &["crm-command", "stop", "proc:web", "9223372036854775807"],
            2,
            "invalid value '9223372036854775807' for '<TIMEOUT>': 9223372036854775807 is not in 0..=86400",
        ),
        (
            &["config", "--type", "bogus"],
            1,
            "type: value 'bogus' does not have a value in the enumeration 'ct, proc, vm'",
        ),
        (
            &["rules", "config", "--type", "bogus"],
            1,
            "type: value 'bogus' does not have a value in the enumeration 'node-affinity, resource-affinity'",
        ),
        (
            &["rules", "config", "--resource", "vm:abc"],
            1,
            "resource: invalid resource name 'abc' in service id 'vm:abc' (expected a number of at least two digits)",
        ),
        (
            &["set", "proc:web", "--comment", "db\n\tstate stopped"],
            1,
            "comment: contains a line feed",
        ),
        (
            &["add", "vm:101", "--max_restart", "many"],
            2,
            "invalid value 'many' for '--max_restart <N>': invalid digit found in string",
        ),
        (
            &["status", "--verbose", "perhaps"],
            1,
            "verbose: type check ('boolean') failed - got 'perhaps'",
        ),
    ];
    for (args, code, message) in cases {
        let run = c.ha(args);
        assert_eq!(run.code, *code, "{args:?}: {run:?}");
        assert_eq!(run.stdout, "", "{args:?}");
        assert_eq!(run.stderr.lines().count(), 1, "one line: {args:?}: {:?}", run.stderr);
        assert_eq!(run.stderr.trim_end(), *message, "{args:?}");
    }
    assert_eq!(c.ok(&["config"]), before, "nothing changed");
    assert_eq!(
        c.ok(&["rules", "config"]),
        "enabled state rule type resources comment\n"
    );

    // an argument that is not UTF-8: a usage error, not a panic (issue 11)
    let run: Run = c
        .command(0)
        .arg("add")
        .arg(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(
            b"vm:1\xff0",
        ))
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stderr, "invalid argument 'vm:1\u{fffd}0': not valid UTF-8\n");
    // the API refuses what the command line would not send
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(&c.nodes[0].socket).unwrap();
    stream
        .write_all(
            b"{\"version\":1,\"body\":{\"command\":\"stop\",\"sid\":\"proc:web\",\"timeout\":18446744073709551615}}\n",
        )
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer["body"]["error"],
        "timeout: 18446744073709551615 is out of range (0 to 86400 seconds; 0 stops hard)"
    );
    assert_eq!(c.ok(&["config"]), before, "nothing changed");

    // no daemon
    let run: Run = Command::new(env!("CARGO_BIN_EXE_ha-manager"))
        .args(["--socket", "/nonexistent/hactor.sock", "status"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "cannot connect to the HA daemon at /nonexistent/hactor.sock: No such file or directory (os error 2) \
         (is hactor running?)\n"
    );
    // --socket wins over HACTOR_SOCKET
    let run: Run = c
        .command(0)
        .args(["--socket", "/nonexistent/hactor.sock", "config"])
        .output()
        .unwrap()
        .into();
    assert!(run.stderr.contains("/nonexistent/hactor.sock"), "{run:?}");

    // another protocol version
    let mut stream = std::os::unix::net::UnixStream::connect(&c.nodes[0].socket).unwrap();
    stream
        .write_all(b"{\"version\":99,\"body\":{\"command\":\"status\",\"verbose\":false}}\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer["body"]["error"],
        "protocol version mismatch: ha-manager speaks version 99, the daemon version 1 - \
         use an ha-manager of the same release as the daemon"
    );
}

#[test]
fn racing_clients_never_lose_an_update() {
    let c = Cluster::start(1);
    c.ok(&["add", "vm:100"]);
    // Every `rules add` rewrites the whole rules.cfg: a lost update would
    // drop a rule.
    let rules: Vec<String> = (0..8).map(|i| format!("rule{i}")).collect();
    let children: Vec<Child> = rules
        .iter()
        .map(|rule| {
            c.command(0)
                .args([
                    "rules",
                    "add",
                    "resource-affinity",
                    rule,
                    "--resources",
                    "proc:web,vm:100",
                ])
                .args(["--affinity", "positive"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let run: Run = child.wait_with_output().unwrap().into();
        assert_eq!(run.code, 0, "{run:?}");
    }
    let listed = c.json(&["rules", "config"]);
    let mut ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, rules.iter().map(String::as_str).collect::<Vec<_>>());
    // Concurrent edits of different keys of one resource all land.
    let edits: [&[&str]; 4] = [
        &["set", "vm:100", "--max_restart", "5"],
        &["set", "vm:100", "--max_relocate", "4"],
        &["set", "vm:100", "--comment", "raced"],
        &["set", "vm:100", "--failback", "0"],
    ];
    let children: Vec<Child> = edits
        .iter()
        .map(|args| c.command(0).args(*args).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    for child in children {
        let run: Run = child.wait_with_output().unwrap().into();
        assert_eq!(run.code, 0, "{run:?}");
    }
    assert_eq!(
        c.ok(&["config", "--type", "vm"]),
        "vm:100\n\tcomment raced\n\tfailback 0\n\tmax_relocate 4\n\tmax_restart 5\n\tstate started\n\n"
    );
}

#[test]
fn the_socket_serves_only_root_and_the_daemons_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run a client as another uid");
        return;
    }
    let c = Cluster::start(1);
    let socket = &c.nodes[0].socket;
    let mode = std::fs::metadata(socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "owner-only socket");
    let nobody = 65534;
    // A copy of the CLI that the other uid can run wherever the build
    // tree lives.
    let open = |path: &Path, mode| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    open(c.dir.path(), 0o755);
    let cli = c.dir.path().join("ha-manager");
    std::fs::copy(env!("CARGO_BIN_EXE_ha-manager"), &cli).unwrap();
    open(&cli, 0o755);
    let as_nobody = || -> Run {
        Command::new(&cli)
            .arg("status")
            .env("HACTOR_SOCKET", socket)
            .uid(nobody)
            .gid(nobody)
            .output()
            .unwrap()
            .into()
    };
    // The file mode keeps others out ...
    open(socket.parent().unwrap(), 0o755);
    let run = as_nobody();
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("Permission denied") && run.stderr.contains("(root only)"),
        "{run:?}"
    );
    // ... and with the mode opened up, the peer check still does.
    open(socket, 0o666);
    let run = as_nobody();
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "permission denied - uid 65534 may not use the HA manager socket (root only)\n"
    );
    assert_eq!(c.ok(&["config"]), "proc:web\n\tstate started\n\n", "root is served");
}

/// A formed 3-node cluster of real daemons and a client per node.
struct ThreeNodes {
    cluster: multinode::Cluster,
    nodes: Vec<Client>,
    /// Held last: one 3-node cluster at a time on a small machine.
    _serial: MutexGuard<'static, ()>,
}

static THREE_NODES: Mutex<()> = Mutex::new(());

/// Forms a 3-node cluster whose node1 seeds `proc:svc0` … (`services`
/// of them, started), and waits until every node's `status` shows the
/// master, the three LRMs and every service started on node1 (with no
/// services: until every node is quorate).
fn three_nodes(services: usize) -> ThreeNodes {
    let serial = THREE_NODES.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = multinode::Cluster::form(3, services);
    let nodes = (0..3)
        .map(|i| Client::new(&cluster.nodes[i].name, &cluster.socket(i)))
        .collect();
    let t = ThreeNodes {
        cluster,
        nodes,
        _serial: serial,
    };
    for n in &t.nodes {
        t.wait_ready(n, services);
    }
    t
}

impl ThreeNodes {
    fn wait_ready(&self, n: &Client, services: usize) {
        if services == 0 {
            // No service, no active master (upstream's CRM idles).
            n.wait_until(&["status"], "quorum", |out| out.starts_with("quorum OK\n"));
            return;
        }
        n.wait_until(&["status"], "a ready cluster", |out| {
            out.contains("\nmaster node1 (active, <time>)\n")
                && (1..=3).all(|i| out.contains(&format!("\nlrm node{i} (")) && !out.contains("dead?"))
                && (0..services).all(|s| out.contains(&format!("service proc:svc{s} (node1, started)")))
        });
    }

    /// Waits until service `s` runs exactly once, started by `node`'s
    /// agent, and never sees two instances meanwhile.
    fn wait_running_on(&self, s: usize, node: &str) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let nodes = self.cluster.service_nodes(s);
            assert!(nodes.len() <= 1, "two instances of svc{s}: {nodes:?}");
            if nodes == [node] {
                return;
            }
            assert!(Instant::now() < deadline, "svc{s} never ran on {node}: {nodes:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every node's `status` shows `line`.
    fn everywhere(&self, line: &str) {
        for n in &self.nodes {
            n.wait_for_status(line);
        }
    }

    /// Waits until every node's `args` prints `expected`.
    fn everywhere_text(&self, args: &[&str], expected: &str) {
        for n in &self.nodes {
            n.wait_text(args, expected);
        }
    }
}

fn status_kinds(entries: &Value) -> Vec<&str> {
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect()
}

#[test]
fn three_nodes_every_command_on_any_node() {
    let t = three_nodes(2);
    let [n1, n2, n3] = [&t.nodes[0], &t.nodes[1], &t.nodes[2]];

    // status: the same on every node, every LRM and the master
    let initial = "quorum OK\n\
                   master node1 (active, <time>)\n\
                   fencing armed (CRM watchdog active)\n\
                   lrm node1 (active, watchdog active, <time>)\n\
                   lrm node2 (idle, watchdog standby, <time>)\n\
                   lrm node3 (idle, watchdog standby, <time>)\n\
                   service proc:svc0 (node1, started)\n\
                   service proc:svc1 (node1, started)\n";
    t.everywhere_text(&["status"], initial);
    let entries = n2.json(&["status"]);
    assert_eq!(
        status_kinds(&entries),
        ["quorum", "master", "fencing", "lrm", "lrm", "lrm", "service", "service"]
    );
    assert_eq!(entries[0]["node"], "node2", "the quorum entry is the answering node's");
    assert_eq!(entries[0]["quorate"], true);
    assert_eq!(entries[1]["node"], "node1");
    let lrms: Vec<&str> = entries.as_array().unwrap()[3..6]
        .iter()
        .map(|e| e["node"].as_str().unwrap())
        .collect();
    assert_eq!(lrms, ["node1", "node2", "node3"]);
    assert_eq!(entries[6]["sid"], "proc:svc0");
    assert_eq!(entries[6]["crm_state"], "started");
    let verbose = n3.ok(&["status", "--verbose"]);
    let (_, full) = verbose.split_once("full cluster state:\n").unwrap();
    let full: Value = serde_json::from_str(full).unwrap();
    assert_eq!(full["quorum"]["node"], "node3");
    assert_eq!(full["quorum"]["quorate"], 1);
    assert_eq!(full["manager_status"]["master_node"], "node1");
    for node in ["node1", "node2", "node3"] {
        assert_eq!(full["manager_status"]["node_status"][node], "online", "{full}");
        assert!(full["lrm_status"][node]["timestamp"].as_i64().unwrap() > 0, "{full}");
    }

    // resources: edits on one node, visible on the others once replicated
    let seeded = "proc:svc0\n\tstate started\n\nproc:svc1\n\tstate started\n\n";
    for n in &t.nodes {
        assert_eq!(n.ok(&["config"]), seeded, "{}", n.name);
    }
    // (vm:100 stays ignored: there is no vm agent yet)
    assert_eq!(
        n2.ok(&[
            "add",
            "vm:100",
            "--state",
            "ignored",
            "--max_restart",
            "3",
            "--comment",
            "from node2"
        ]),
        ""
    );
    let added = format!("{seeded}vm:100\n\tcomment from node2\n\tmax_restart 3\n\tstate ignored\n\n");
    assert_eq!(n2.ok(&["config"]), added, "a node reads its own write at once");
    t.everywhere_text(&["config"], &added);
    let vm = n1.json(&["config", "--type", "vm"]);
    let status = n1.json(&["status"]);
    let entry = status
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "service:vm:100")
        .unwrap();
    assert_eq!(
        entry["node"], "node2",
        "a new resource's node is the node that answered"
    );
    let digest = vm[0]["digest"].as_str().unwrap().to_string();
    assert_eq!(
        n3.ok(&["set", "vm:100", "--max_relocate", "2", "--delete", "comment"]),
        ""
    );
    let edited = "vm:100\n\tmax_relocate 2\n\tmax_restart 3\n\tstate ignored\n\n";
    assert_eq!(n3.ok(&["config", "--type", "vm"]), edited);
    t.everywhere_text(&["config", "--type", "vm"], edited);
    // node1's digest is stale since node3's edit: refused on node2
    let stale = n2.ha(&["set", "vm:100", "--comment", "x", "--digest", &digest]);
    assert_eq!(
        (stale.code, stale.stderr.as_str()),
        (
            1,
            "detected modified configuration - file changed by other user? Try again.\n"
        )
    );
    let digest = n1.json(&["config", "--type", "vm"])[0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(n2.ok(&["set", "vm:100", "--comment", "x", "--digest", &digest]), "");
    t.everywhere_text(
        &["config", "--type", "vm"],
        "vm:100\n\tcomment x\n\tmax_relocate 2\n\tmax_restart 3\n\tstate ignored\n\n",
    );
    t.everywhere("service vm:100 (node2, ignored)");

    // a state change on node2 stops the service on node1; removed, and
    // added again on node3, it runs there (removal alone leaves it running
    // unmanaged, as upstream)
    assert_eq!(n2.ok(&["set", "proc:svc1", "--state", "stopped"]), "");
    wait_gone(&t, 1);
    t.everywhere("service proc:svc1 (node1, stopped)");
    assert_eq!(n1.ok(&["remove", "proc:svc1"]), "");
    for n in &t.nodes {
        n.wait_until(&["status"], "no proc:svc1", |out| !out.contains("proc:svc1"));
    }
    assert_eq!(n3.ok(&["add", "proc:svc1"]), "");
    t.everywhere("service proc:svc1 (node3, started)");
    t.wait_running_on(1, "node3");

    // groups
    assert_eq!(
        n2.ok(&["groupadd", "g1", "--nodes", "node2:2,node3", "--restricted"]),
        ""
    );
    assert_eq!(n3.ok(&["groupset", "g1", "--comment", "second"]), "");
    t.everywhere_text(
        &["groupconfig"],
        "group: g1\n\tcomment second\n\tnodes node2:2,node3\n\trestricted 1\n\n",
    );
    assert_eq!(n2.json(&["groupconfig"])[0]["nodes"], "node2:2,node3");
    assert_eq!(n1.ok(&["set", "vm:100", "--group", "g1"]), "");
    // node3 plans against its replica; the compare-and-swap keeps it honest
    let used = n3.ha(&["groupremove", "g1"]);
    assert_eq!(used.stderr, "ha group is used by service 'vm:100'\n");
    assert_eq!(n2.ok(&["set", "vm:100", "--delete", "group"]), "");
    assert_eq!(n1.ok(&["groupremove", "g1"]), "");
    t.everywhere_text(&["groupconfig"], "");

    // rules
    assert_eq!(
        n3.ok(&[
            "rules",
            "add",
            "node-affinity",
            "pin",
            "--resources",
            "vm:100",
            "--nodes",
            "node2,node3",
        ]),
        ""
    );
    assert_eq!(
        n1.ok(&[
            "rules",
            "add",
            "resource-affinity",
            "apart",
            "--resources",
            "proc:svc0,proc:svc1",
            "--affinity",
            "negative",
            "--comment",
            "not together",
        ]),
        ""
    );
    let rules = "enabled state  rule  type              resources           comment\n\
                 1       in use pin   node-affinity     vm:100\n\
                 1       in use apart resource-affinity proc:svc0,proc:svc1 not together\n";
    t.everywhere_text(&["rules", "config"], rules);
    assert_eq!(
        n2.ok(&[
            "rules",
            "set",
            "node-affinity",
            "pin",
            "--strict",
            "--comment",
            "pinned"
        ]),
        ""
    );
    let rules = "enabled state  rule  type              resources           comment\n\
                 1       in use pin   node-affinity     vm:100              pinned\n\
                 1       in use apart resource-affinity proc:svc0,proc:svc1 not together\n";
    t.everywhere_text(&["rules", "config"], rules);
    assert_eq!(
        n3.ok(&["rules", "list", "--resource", "vm:100"]),
        "enabled state  rule type          resources comment\n\
         1       in use pin  node-affinity vm:100    pinned\n"
    );
    let listed = n1.json(&["rules", "config", "--type", "node-affinity"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["nodes"], "node2,node3");
    assert_eq!(listed[0]["strict"], 1);
    let pretty = n2.ok(&[
        "rules",
        "config",
        "--type",
        "resource-affinity",
        "--output-format",
        "json-pretty",
    ]);
    let pretty: Value = serde_json::from_str(&pretty).unwrap();
    assert_eq!(pretty[0]["rule"], "apart");
    assert_eq!(pretty[0]["affinity"], "negative");

    // CRM commands from any node move services for real
    // proc:svc1 runs on node3: negative affinity blocks svc0 from going there
    let blocked = n2.ha(&["migrate", "proc:svc0", "node3"]);
    assert_eq!(
        (blocked.code, blocked.stderr.as_str()),
        (
            1,
            "cannot migrate resource 'proc:svc0' to node 'node3':\n\n\
             - resource 'proc:svc1' on target node 'node3' in negative affinity with resource 'proc:svc0'\n"
        )
    );
    assert_eq!(n3.ok(&["migrate", "proc:svc0", "node2"]), "");
    t.everywhere("service proc:svc0 (node2, started)");
    t.wait_running_on(0, "node2");
    assert_eq!(n1.ok(&["relocate", "proc:svc1", "node1"]), "");
    t.everywhere("service proc:svc1 (node1, started)");
    t.wait_running_on(1, "node1");
    assert_eq!(
        n2.json(&["crm-command", "migrate", "proc:svc0", "node3"]),
        serde_json::json!({"messages": []})
    );
    t.everywhere("service proc:svc0 (node3, started)");
    t.wait_running_on(0, "node3");
    assert_eq!(n1.ok(&["rules", "remove", "apart"]), "");
    assert_eq!(n2.ok(&["rules", "remove", "pin"]), "");
    t.everywhere_text(&["rules", "config"], "enabled state rule type resources comment\n");

    // positive affinity: moving one moves its partner
    assert_eq!(
        n3.ok(&[
            "rules",
            "add",
            "resource-affinity",
            "together",
            "--resources",
            "proc:svc0,proc:svc1",
            "--affinity",
            "positive",
        ]),
        ""
    );
    n2.wait_until(&["rules", "config"], "the rule", |out| out.contains("together"));
    // The CRM may already be bringing them together; either way the move
    // ends with both on node2.
    let moved = n2.ok(&["crm-command", "relocate", "proc:svc1", "node2"]);
    assert!(
        moved.is_empty()
            || moved
                == "also relocate resource 'proc:svc0' in positive affinity with resource 'proc:svc1' to target node 'node2'\n",
        "{moved}"
    );
    t.everywhere("service proc:svc0 (node2, started)");
    t.everywhere("service proc:svc1 (node2, started)");
    t.wait_running_on(0, "node2");
    t.wait_running_on(1, "node2");
    assert_eq!(n1.ok(&["rules", "remove", "together"]), "");

    // maintenance of node2 moves its services away, and back after
    assert_eq!(n3.ok(&["crm-command", "node-maintenance", "enable", "node2"]), "");
    for n in &t.nodes {
        n.wait_until(&["status"], "node2 in maintenance, empty", |out| {
            out.contains("\nlrm node2 (maintenance mode, ")
                && !out.contains("(node2, started)")
                && out.matches(", started)").count() == 2
        });
    }
    assert!(t.cluster.service_nodes(0).iter().all(|n| n != "node2"));
    assert_eq!(n1.ok(&["crm-command", "node-maintenance", "disable", "node2"]), "");
    t.everywhere("service proc:svc0 (node2, started)");
    t.everywhere("service proc:svc1 (node2, started)");
    t.wait_running_on(0, "node2");
    t.everywhere("lrm node2 (active, watchdog active, <time>)");

    // disarm and arm
    assert_eq!(n2.ok(&["crm-command", "disarm-ha", "freeze"]), "");
    t.everywhere("fencing disarmed, resource mode: freeze (CRM watchdog released)");
    t.everywhere("service proc:svc0 (node2, freeze)");
    n1.wait_for_status("master node1 (active, <time>) - disarmed, resource mode: freeze");
    assert_eq!(n3.ok(&["crm-command", "arm-ha"]), "");
    t.everywhere("fencing armed (CRM watchdog active)");
    t.everywhere("master node1 (active, <time>)");
    // (a command queued while the services thaw would be dropped by the
    // thaw's state change, as upstream)
    t.everywhere("service proc:svc0 (node2, started)");
    t.everywhere("service proc:svc1 (node2, started)");

    // stop
    assert_eq!(n1.ok(&["crm-command", "stop", "proc:svc1", "0"]), "");
    wait_gone(&t, 1);
    t.everywhere("service proc:svc1 (node2, stopped)");

    // removal everywhere
    assert_eq!(n3.ok(&["remove", "vm:100"]), "");
    assert_eq!(n2.ok(&["remove", "proc:svc1"]), "");
    t.everywhere_text(&["config"], "proc:svc0\n\tstate started\n\n");
    let last = "quorum OK\n\
                master node1 (active, <time>)\n\
                fencing armed (CRM watchdog active)\n\
                lrm node1 (idle, watchdog standby, <time>)\n\
                lrm node2 (active, watchdog active, <time>)\n\
                lrm node3 (idle, watchdog standby, <time>)\n\
                service proc:svc0 (node2, started)\n";
    t.everywhere_text(&["status"], last);

    // names that are no cluster members
    for (n, args, message) in [
        (
            n1,
            &["migrate", "proc:svc0", "node4"][..],
            "no such cluster node 'node4'",
        ),
        (n2, &["relocate", "proc:svc0", "node7"], "no such cluster node 'node7'"),
        (
            n3,
            &["crm-command", "node-maintenance", "enable", "node4"],
            "no such cluster node 'node4'",
        ),
        (
            n1,
            &[
                "rules",
                "add",
                "node-affinity",
                "pin",
                "--resources",
                "proc:svc0",
                "--nodes",
                "node1,node4",
            ],
            "cannot use non-existent node(s) node4.",
        ),
    ] {
        let run = n.ha(args);
        assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{args:?}");
        assert_eq!(run.stderr, format!("{message}\n"), "{args:?}");
    }
}

/// Waits until no instance of service `s` runs.
fn wait_gone(t: &ThreeNodes, s: usize) {
    multinode::wait_for(&format!("svc{s} to stop"), SETTLE, || {
        t.cluster.service_pids(s).is_empty()
    });
}

#[test]
fn three_nodes_no_edits_without_quorum_and_real_membership() {
    let mut t = three_nodes(1);
    let before = t.nodes[0].ok(&["config"]);
    assert_eq!(before, "proc:svc0\n\tstate started\n\n");

    // node3 alone
    t.cluster.partition(2, &[0, 1]);
    t.cluster.wait_view(2, "node3 to lose quorum", SETTLE, |v| !v.quorate);
    let n3 = &t.nodes[2];
    n3.wait_until(&["status"], "no quorum", |out| {
        out.starts_with("quorum No quorum on node 'node3'!\n")
    });
    assert_eq!(n3.json(&["status"])[0]["quorate"], false);
    // Each side judges the timestamps it has: node3's replica stands
    // still, the majority stops hearing from node3's LRM.
    n3.wait_until(&["status"], "a stale master", |out| {
        out.contains("\nmaster node1 (old timestamp - dead?, <time>)\n")
            && out.contains("\nfencing standby (CRM watchdog standby)\n")
    });
    t.nodes[0].wait_until(&["status"], "node3's LRM stale", |out| {
        out.starts_with("quorum OK\nmaster node1 (active, <time>)\n")
            && out.contains("\nlrm node3 (old timestamp - dead?, watchdog standby, <time>)\n")
    });
    let edits: &[&[&str]] = &[
        &["add", "vm:100"],
        &["set", "proc:svc0", "--comment", "isolated"],
        &["remove", "proc:svc0"],
        &["migrate", "proc:svc0", "node3"],
        &["relocate", "proc:svc0", "node2"],
        &["crm-command", "stop", "proc:svc0", "0"],
        &["crm-command", "node-maintenance", "enable", "node3"],
        &["crm-command", "disarm-ha", "freeze"],
        &["crm-command", "arm-ha"],
        &["groupadd", "g1", "--nodes", "node3"],
        &[
            "rules",
            "add",
            "node-affinity",
            "pin",
            "--resources",
            "proc:svc0",
            "--nodes",
            "node3",
        ],
    ];
    for args in edits {
        let run = n3.ha(args);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (1, "", "cluster not quorate\n"),
            "{args:?}"
        );
    }
    assert_eq!(n3.ok(&["config"]), before, "reads still work");
    // The majority goes on.
    let [n1, n2] = [&t.nodes[0], &t.nodes[1]];
    assert_eq!(n1.ha(&["status"]).stdout.lines().next(), Some("quorum OK"));
    assert_eq!(n1.ok(&["set", "proc:svc0", "--comment", "majority"]), "");
    n2.wait_text(&["config"], "proc:svc0\n\tcomment majority\n\tstate started\n\n");
    assert_eq!(n3.ok(&["config"]), before, "the minority does not see it");

    // none of the refused edits landed
    for n in [n1, n2] {
        assert_eq!(n.ok(&["groupconfig"]), "");
        assert_eq!(
            n.ok(&["rules", "config"]),
            "enabled state rule type resources comment\n"
        );
        n.wait_for_status("fencing armed (CRM watchdog active)");
        n.wait_for_status("service proc:svc0 (node1, started)");
    }
    t.wait_running_on(0, "node1");
    // (Healing is in its own test, on a cluster without services: see
    // three_nodes_a_healed_partition_edits_again.)

    // node3, still cut off, dies and is removed: its name is refused from
    // then on, even while the CRM still lists it
    t.cluster.kill(2);
    t.cluster.ok(0, &["cluster", "remove-node", "node3"]);
    for i in 0..2 {
        t.cluster.wait_view(i, "two members", SETTLE, |v| v.members.len() == 2);
    }
    let (n1, n2) = (&t.nodes[0], &t.nodes[1]);
    for (n, args, message) in [
        (
            n1,
            &["migrate", "proc:svc0", "node3"][..],
            "no such cluster node 'node3'",
        ),
        (
            n2,
            &["crm-command", "node-maintenance", "enable", "node3"],
            "no such cluster node 'node3'",
        ),
        (
            n1,
            &[
                "rules",
                "add",
                "node-affinity",
                "pin",
                "--resources",
                "proc:svc0",
                "--nodes",
                "node3",
            ],
            "cannot use non-existent node(s) node3.",
        ),
    ] {
        let run = n.ha(args);
        assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{args:?}");
        assert_eq!(run.stderr, format!("{message}\n"), "{args:?}");
    }
    assert_eq!(n2.ok(&["migrate", "proc:svc0", "node2"]), "");
    n1.wait_for_status("service proc:svc0 (node2, started)");
    t.wait_running_on(0, "node2");
}

/// A healed minority node catches up and edits again. Without services:
/// when the partition heals, the rejoining node's higher Raft term makes
/// the majority's leader step down, and the re-election can outlast the
/// fast profile's watchdog timeout of an armed master (which then fences
/// itself) - an issue of the store, not of the CLI.
#[test]
fn three_nodes_a_healed_partition_edits_again() {
    let t = three_nodes(0);
    t.cluster.partition(2, &[0, 1]);
    t.cluster.wait_view(2, "node3 to lose quorum", SETTLE, |v| !v.quorate);
    let [n1, n2, n3] = [&t.nodes[0], &t.nodes[1], &t.nodes[2]];
    let refused = n3.ha(&["add", "vm:100", "--state", "ignored", "--comment", "isolated"]);
    assert_eq!((refused.code, refused.stderr.as_str()), (1, "cluster not quorate\n"));
    assert_eq!(n1.ok(&["groupadd", "g1", "--nodes", "node1,node2"]), "");
    n2.wait_text(&["groupconfig"], "group: g1\n\tnodes node1,node2\n\n");
    assert_eq!(n3.ok(&["groupconfig"]), "");

    t.cluster.partition(2, &[]);
    t.cluster.wait_view(2, "node3 quorate again", SETTLE, |v| v.quorate);
    n3.wait_text(&["groupconfig"], "group: g1\n\tnodes node1,node2\n\n");
    n3.wait_until(&["status"], "quorum", |out| out.starts_with("quorum OK\n"));
    assert_eq!(
        n3.ok(&["add", "vm:100", "--state", "ignored", "--comment", "healed"]),
        ""
    );
    assert_eq!(n3.ok(&["groupset", "g1", "--nodes", "node1,node2,node3"]), "");
    t.everywhere_text(&["config"], "vm:100\n\tcomment healed\n\tstate ignored\n\n");
    t.everywhere_text(&["groupconfig"], "group: g1\n\tnodes node1,node2,node3\n\n");
    for n in &t.nodes {
        assert_eq!(n.json(&["status"])[0]["quorate"], true, "{}", n.name);
    }
}

#[test]
fn three_nodes_racing_clients_on_different_nodes_never_lose_an_update() {
    let t = three_nodes(1);
    t.nodes[0].ok(&["add", "vm:100", "--state", "stopped"]);
    for n in &t.nodes {
        n.wait_until(&["config"], "vm:100", |out| out.contains("vm:100"));
    }
    // Every `rules add` rewrites the whole rules.cfg: a lost update would
    // drop a rule. Each node plans against its own replica.
    let rules: Vec<String> = (0..9).map(|i| format!("rule{i}")).collect();
    let children: Vec<Child> = rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            t.nodes[i % 3]
                .command()
                .args([
                    "rules",
                    "add",
                    "resource-affinity",
                    rule,
                    "--resources",
                    "proc:svc0,vm:100",
                ])
                .args(["--affinity", "positive"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let run: Run = child.wait_with_output().unwrap().into();
        assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    }
    for n in &t.nodes {
        let out = n.wait_until(&["rules", "config"], "every rule", |out| out.lines().count() == 10);
        for rule in &rules {
            assert!(out.contains(&format!(" {rule} ")), "{}: {rule} lost: {out}", n.name);
        }
    }
    // Concurrent edits of different keys of one resource, on different
    // nodes, all land.
    let edits: [(usize, &[&str]); 6] = [
        (0, &["set", "vm:100", "--max_restart", "5"]),
        (1, &["set", "vm:100", "--max_relocate", "4"]),
        (2, &["set", "vm:100", "--comment", "raced"]),
        (0, &["set", "vm:100", "--failback", "0"]),
        (1, &["set", "proc:svc0", "--comment", "also"]),
        (2, &["set", "proc:svc0", "--max_restart", "2"]),
    ];
    let children: Vec<Child> = edits
        .iter()
        .map(|(i, args)| {
            t.nodes[*i]
                .command()
                .args(*args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let run: Run = child.wait_with_output().unwrap().into();
        assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    }
    t.everywhere_text(
        &["config"],
        "proc:svc0\n\tcomment also\n\tmax_restart 2\n\tstate started\n\n\
         vm:100\n\tcomment raced\n\tfailback 0\n\tmax_relocate 4\n\tmax_restart 5\n\tstate stopped\n\n",
    );
}
