//! `ha-manager` against running daemons: real `hactor` processes with a
//! temp state dir and a `proc:` service, the real socket, the real CLI
//! binary. Every command in text and JSON, a table of bad inputs, racing
//! clients, the socket's permissions.
//!
//! [`Cluster`] starts N daemons; with the in-process store N is 1. Once
//! the replicated store lands, `Cluster::start(3)` gives each daemon its
//! peers and the same tests run against any node.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

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
    /// runs.
    fn start(n: usize) -> Cluster {
        assert_eq!(n, 1, "multi-node clusters need the replicated store");
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

    /// Waits until `status` shows `line`.
    fn wait_for_status(&self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.ok(&["status"]);
            if status.lines().any(|l| l == line) {
                return;
            }
            assert!(Instant::now() < deadline, "no '{line}' in:\n{status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn command(&self, node: usize) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ha-manager"));
        command.env("HACTOR_SOCKET", &self.nodes[node].socket);
        command
    }

    /// `ha-manager <args>` on node1.
    fn ha(&self, args: &[&str]) -> Run {
        self.command(0).args(args).output().unwrap().into()
    }

    /// Runs and expects success with empty stderr; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let run = self.ha(args);
        assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{args:?}: {run:?}");
        run.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output-format", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
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
    assert_eq!(config[0]["node"], "node1");
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
    assert_eq!(c.ok(&["rules", "remove", "together"]), "");
    assert_eq!(
        c.ok(&["rules", "config"]),
        "enabled state rule type resources comment\n"
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
    use std::io::{Read, Write};
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
