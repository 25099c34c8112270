//! Resource agents against real processes: fake `qm`/`pct` scripts that
//! record their calls and keep guest state in files, OCF scripts, proc
//! services with health checks; and a node daemon that hands every start
//! its fencing token, service id and node name.
//!
//! Timing: every wait polls with a generous deadline; nothing assumes a
//! process is quick.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use hactor::actors::lock::GetSnapshot;
use hactor::actors::round::IgnoreExited;
use hactor::actors::{NodeHandle, NodeOptions, start_node};
use hactor::agents::guest::GuestAgent;
use hactor::agents::script::ScriptAgent;
use hactor::agents::{Agent, Agents, Health, StartContext};
use hactor::core::env::DatacenterSettings;
use hactor::core::status::ResourceConfig;
use hactor::core::store::ClusterState;
use hactor::core::types::RequestState;
use hactor::node::config::{GuestAgentConfig, NodeConfig};
use hactor::node::memory_store::MemoryStore;
use hactor::watchdog::RecordingBackend;

/// Generous bound for anything a loaded machine might make slow.
const PATIENCE: Duration = Duration::from_secs(60);

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A fake `qm`/`pct`: appends each call to `$FAKE_STATE/calls`; a guest
/// `<id>` is on this node while `$FAKE_STATE/<id>` exists and holds
/// `running` or `stopped`. Markers: `<id>.ignore-shutdown` (the guest
/// ignores the shutdown request), `<id>.hang-status`.
const FAKE_HYPERVISOR: &str = r#"#!/bin/sh
state="$FAKE_STATE"
echo "$(basename "$0") $*" >> "$state/calls"
action=$1
id=$2
f="$state/$id"
case "$action" in
status)
    [ -e "$state/$id.hang-status" ] && sleep 600
    [ -f "$f" ] || { echo "Configuration file '$id.conf' does not exist" >&2; exit 2; }
    echo "status: $(cat "$f")"
    ;;
start)
    [ -f "$f" ] || { echo "Configuration file '$id.conf' does not exist" >&2; exit 2; }
    env | grep '^HACTOR_' | sort > "$state/$id.env"
    echo running > "$f"
    ;;
shutdown)
    if [ -e "$state/$id.ignore-shutdown" ]; then echo "VM quit/powerdown failed - got timeout" >&2; exit 255; fi
    echo stopped > "$f"
    ;;
stop)
    echo stopped > "$f"
    ;;
migrate)
    echo "$3" > "$state/$id.moved-to"
    rm -f "$f"
    ;;
*)
    exit 1
    ;;
esac
"#;

/// A temp dir with a fake `qm` and `pct`.
struct Hypervisor {
    dir: tempfile::TempDir,
}

impl Hypervisor {
    fn new() -> Hypervisor {
        let dir = tempfile::tempdir().unwrap();
        for program in ["qm", "pct"] {
            write_script(&dir.path().join(program), FAKE_HYPERVISOR);
        }
        Hypervisor { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A guest `id` configured on this node, in `state`.
    fn guest(&self, id: &str, state: &str) {
        std::fs::write(self.path(id), format!("{state}\n")).unwrap();
    }

    fn state(&self, id: &str) -> Option<String> {
        std::fs::read_to_string(self.path(id))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.path("calls"));
    }

    /// `[agent.<kind>]` pointing at the fake.
    fn section(&self, kind: &str, extra: &str) -> String {
        let program = if kind == "vm" { "qm" } else { "pct" };
        format!(
            "[agent.{kind}]\ncommand = \"{}\"\nenv = {{ FAKE_STATE = \"{}\" }}\n{extra}",
            self.path(program).display(),
            self.dir.path().display()
        )
    }

    fn agent(&self, kind: &str, extra: &str) -> GuestAgent {
        let config = parse(&self.section(kind, extra));
        let guest: GuestAgentConfig = if kind == "vm" { config.vm_agent } else { config.ct_agent }.unwrap();
        GuestAgent::new(guest, "node1")
    }
}

const BASE: &str = "node = \"node1\"\nstate_dir = \"/tmp/hactor-agents-unused\"\n[watchdog]\nbackend = \"process\"\n";

fn parse(sections: &str) -> NodeConfig {
    NodeConfig::parse(&format!("{BASE}{sections}")).unwrap()
}

fn parse_err(sections: &str) -> String {
    NodeConfig::parse(&format!("{BASE}{sections}")).unwrap_err()
}

fn ctx(sid: &str, token: u64) -> StartContext {
    StartContext {
        sid: sid.into(),
        node: "node1".into(),
        fencing_token: token,
    }
}

fn read_env(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---- vm / ct ----------------------------------------------------------

#[test]
fn vm_agent_drives_qm_start_status_shutdown_and_live_migration() {
    let hv = Hypervisor::new();
    let vm = hv.agent("vm", "");
    assert!(!vm.exists("100"), "no such guest yet");
    assert!(!vm.running("100"));
    hv.guest("100", "stopped");
    assert!(vm.exists("100"));
    assert_eq!(vm.monitor("100"), Health::Stopped);

    vm.start("100", &ctx("vm:100", 42)).unwrap();
    assert_eq!(vm.monitor("100"), Health::Running);
    let env = read_env(&hv.path("100.env"));
    assert_eq!(env["HACTOR_FENCING_TOKEN"], "42");
    assert_eq!(env["HACTOR_SID"], "vm:100");
    assert_eq!(env["HACTOR_NODE"], "node1");

    vm.stop("100", None).unwrap();
    assert_eq!(hv.state("100").as_deref(), Some("stopped"));
    vm.start("100", &ctx("vm:100", 43)).unwrap();
    hv.clear_calls();
    assert!(vm.migrate("100", "node2", true).unwrap(), "the guest left this node");
    assert_eq!(hv.state("100"), None);
    assert_eq!(
        hv.calls(),
        [
            "qm status 100",
            "qm migrate 100 node2 --online --with-local-disks",
            "qm status 100"
        ]
    );
    assert!(!vm.exists("100"));
}

#[test]
fn vm_stop_shuts_down_with_the_timeout_then_stops_hard() {
    let hv = Hypervisor::new();
    let vm = hv.agent("vm", "shutdown_timeout_secs = 7\n");
    hv.guest("101", "running");
    vm.stop("101", None).unwrap();
    assert_eq!(hv.calls(), ["qm shutdown 101 --timeout 7", "qm status 101"]);
    assert!(!vm.running("101"));

    // A guest that ignores the shutdown is stopped hard.
    hv.guest("101", "running");
    std::fs::write(hv.path("101.ignore-shutdown"), "").unwrap();
    hv.clear_calls();
    vm.stop("101", Some(Duration::from_secs(3))).unwrap();
    assert_eq!(hv.calls(), ["qm shutdown 101 --timeout 3", "qm stop 101"]);
    assert!(!vm.running("101"));

    // Timeout 0: straight to a hard stop.
    hv.guest("101", "running");
    hv.clear_calls();
    vm.stop("101", Some(Duration::ZERO)).unwrap();
    assert_eq!(hv.calls(), ["qm stop 101"]);
}

#[test]
fn a_relocated_vm_is_shut_down_before_an_offline_migration() {
    let hv = Hypervisor::new();
    let vm = hv.agent("vm", "");
    hv.guest("102", "running");
    assert!(vm.migrate("102", "node3", false).unwrap());
    assert_eq!(
        hv.calls(),
        [
            "qm status 102",
            "qm shutdown 102 --timeout 60",
            "qm status 102",
            "qm migrate 102 node3",
            "qm status 102"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(hv.path("102.moved-to")).unwrap().trim(),
        "node3"
    );
}

#[test]
fn a_running_container_migrates_in_restart_mode_and_a_stopped_one_plainly() {
    let hv = Hypervisor::new();
    let ct = hv.agent("ct", "shutdown_timeout_secs = 30\n");
    hv.guest("200", "running");
    assert!(ct.migrate("200", "node2", true).unwrap());
    assert!(
        hv.calls()
            .contains(&"pct migrate 200 node2 --restart --timeout 30".to_string())
    );
    hv.guest("201", "stopped");
    hv.clear_calls();
    assert!(ct.migrate("201", "node2", false).unwrap());
    assert_eq!(
        hv.calls(),
        ["pct status 201", "pct migrate 201 node2", "pct status 201"]
    );
    // A guest that is not here cannot be migrated.
    let err = ct.migrate("299", "node2", false).unwrap_err();
    assert!(err.contains("ct:299 is not on this node"), "{err}");
}

#[test]
fn custom_templates_and_running_pattern() {
    let hv = Hypervisor::new();
    let fake = hv.path("qm").display().to_string();
    let ct = hv.agent(
        "ct",
        &format!(
            "start = [\"{fake}\", \"start\", \"{{id}}\", \"--for\", \"{{sid}}@{{node}}\"]\nrunning_pattern = \"status: up\"\n"
        ),
    );
    hv.guest("300", "stopped");
    ct.start("300", &ctx("ct:300", 1)).unwrap();
    assert_eq!(hv.calls(), ["qm start 300 --for ct:300@node1"]);
    // `status: running` is not the configured pattern.
    assert_eq!(ct.monitor("300"), Health::Stopped);
    hv.guest("300", "up");
    assert_eq!(ct.monitor("300"), Health::Running);
}

#[test]
fn a_hanging_status_times_out_and_counts_as_running_for_a_stop() {
    let hv = Hypervisor::new();
    let vm = hv.agent("vm", "timeout_secs = 1\n");
    hv.guest("103", "stopped");
    std::fs::write(hv.path("103.hang-status"), "").unwrap();
    let started = Instant::now();
    assert!(vm.running("103"), "unknown must not read as stopped");
    match vm.monitor("103") {
        Health::Failed(why) => assert!(why.contains("timed out after 1s"), "{why}"),
        other => panic!("expected a failed monitor, got {other:?}"),
    }
    assert!(
        started.elapsed() < PATIENCE,
        "the deadline must cut the status call short"
    );
    let err = vm.migrate("103", "node2", true).unwrap_err();
    assert!(err.contains("cannot tell whether it runs"), "{err}");
}

#[test]
fn a_failing_start_reports_the_command_and_its_stderr() {
    let hv = Hypervisor::new();
    let vm = hv.agent("vm", "");
    let err = vm.start("104", &ctx("vm:104", 1)).unwrap_err();
    assert!(
        err.contains("exited with 2: Configuration file '104.conf' does not exist"),
        "{err}"
    );
    assert!(err.contains("qm start 104"), "{err}");
}

// ---- script (OCF) -------------------------------------------------------

/// An OCF script keeping its state in `$STATE_DIR/state`; markers
/// `broken` (monitor says OCF_ERR_GENERIC), `no-migrate` (migrate is
/// OCF_ERR_UNIMPLEMENTED), `bad-config` (start exits OCF_ERR_CONFIGURED),
/// `hang` (start never returns).
const OCF_SCRIPT: &str = r#"#!/bin/sh
d="$STATE_DIR"
echo "$*" >> "$d/calls"
case "$1" in
monitor)
    [ -e "$d/broken" ] && exit 1
    [ -e "$d/state" ] && exit 0
    exit 7
    ;;
start)
    [ -e "$d/bad-config" ] && { echo "no database configured" >&2; exit 6; }
    [ -e "$d/hang" ] && sleep 600
    env | grep -E '^(HACTOR_|OCF_)' | sort > "$d/start.env"
    touch "$d/state"
    exit 0
    ;;
stop)
    echo "$HACTOR_STOP_TIMEOUT" > "$d/stop-timeout"
    rm -f "$d/state" "$d/broken"
    exit 0
    ;;
migrate)
    [ -e "$d/no-migrate" ] && exit 3
    echo "$2 $HACTOR_MIGRATE_ONLINE" > "$d/migrated-to"
    rm -f "$d/state"
    exit 0
    ;;
esac
exit 3
"#;

struct Ocf {
    dir: tempfile::TempDir,
    agent: ScriptAgent,
}

impl Ocf {
    fn new(extra: &str) -> Ocf {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("db.sh");
        write_script(&script, OCF_SCRIPT);
        let config = parse(&format!(
            "[script.db]\npath = \"{}\"\nenv = {{ STATE_DIR = \"{}\" }}\n{extra}",
            script.display(),
            dir.path().display()
        ));
        let agent = ScriptAgent::new(config.script_services, "node1");
        Ocf { dir, agent }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn mark(&self, name: &str) {
        std::fs::write(self.path(name), "").unwrap();
    }

    fn calls(&self) -> Vec<String> {
        let calls = std::fs::read_to_string(self.path("calls")).unwrap_or_default();
        let _ = std::fs::remove_file(self.path("calls"));
        calls.lines().map(str::to_string).collect()
    }
}

#[test]
fn ocf_script_start_monitor_stop_and_migrate() {
    let ocf = Ocf::new("");
    let a = &ocf.agent;
    assert!(a.exists("db") && !a.exists("other"));
    assert_eq!(a.monitor("db"), Health::Stopped);
    a.start("db", &ctx("script:db", 9)).unwrap();
    assert_eq!(a.monitor("db"), Health::Running);
    assert_eq!(ocf.calls(), ["monitor", "monitor", "start", "monitor"]);
    let env = read_env(&ocf.path("start.env"));
    assert_eq!(env["HACTOR_FENCING_TOKEN"], "9");
    assert_eq!(env["HACTOR_SID"], "script:db");
    assert_eq!(env["HACTOR_NODE"], "node1");
    assert_eq!(env["OCF_RESOURCE_INSTANCE"], "db");

    a.stop("db", Some(Duration::from_secs(12))).unwrap();
    assert_eq!(std::fs::read_to_string(ocf.path("stop-timeout")).unwrap().trim(), "12");
    assert!(!a.running("db"));

    a.start("db", &ctx("script:db", 10)).unwrap();
    assert!(a.migrate("db", "node2", true).unwrap());
    assert_eq!(
        std::fs::read_to_string(ocf.path("migrated-to")).unwrap().trim(),
        "node2 1"
    );
    assert!(!a.running("db"));
    let err = a.start("other", &ctx("script:other", 1)).unwrap_err();
    assert!(err.contains("no script service 'other'"), "{err}");
}

#[test]
fn ocf_monitor_error_is_a_failure_that_a_start_cleans_up_first() {
    let ocf = Ocf::new("");
    let a = &ocf.agent;
    a.start("db", &ctx("script:db", 1)).unwrap();
    ocf.mark("broken");
    match a.monitor("db") {
        Health::Failed(why) => assert!(why.contains("exited with 1 (OCF_ERR_GENERIC)"), "{why}"),
        other => panic!("expected failed, got {other:?}"),
    }
    assert!(a.running("db"), "a failed resource still needs a stop");
    ocf.calls();
    a.start("db", &ctx("script:db", 2)).unwrap();
    assert_eq!(ocf.calls(), ["monitor", "stop", "start"]);
    assert_eq!(a.monitor("db"), Health::Running);
}

#[test]
fn ocf_migrate_unimplemented_becomes_a_relocation() {
    let ocf = Ocf::new("");
    let a = &ocf.agent;
    a.start("db", &ctx("script:db", 1)).unwrap();
    ocf.mark("no-migrate");
    ocf.calls();
    assert!(a.migrate("db", "node2", false).unwrap());
    assert_eq!(ocf.calls(), ["migrate node2", "stop", "monitor"]);
}

#[test]
fn ocf_start_errors_and_timeouts() {
    let ocf = Ocf::new("timeout_secs = 1\n");
    let a = &ocf.agent;
    ocf.mark("bad-config");
    let err = a.start("db", &ctx("script:db", 1)).unwrap_err();
    assert!(err.contains("exited with 6"), "{err}");
    assert!(err.contains("no database configured (OCF_ERR_CONFIGURED)"), "{err}");
    std::fs::remove_file(ocf.path("bad-config")).unwrap();
    ocf.mark("hang");
    let started = Instant::now();
    let err = a.start("db", &ctx("script:db", 1)).unwrap_err();
    assert!(err.contains("timed out after 1s"), "{err}");
    assert!(started.elapsed() < PATIENCE);
    assert_eq!(a.monitor("db"), Health::Stopped);
}

#[test]
fn agent_config_errors_name_the_key() {
    let cases = [
        (
            "[agent.vm]\nstart = [\"qm\", \"start\", \"{vmid}\"]\n",
            "agent.vm.start: unknown placeholder '{vmid}'",
        ),
        (
            "[agent.ct]\nmigrate_running = [\"pct\", \"migrate\", \"{id}\"]\n",
            "agent.ct.migrate_running: must contain {target}",
        ),
        ("[agent.vm]\nstatus = \"qm status\"\n", "invalid type"),
        ("[agent.vm]\nonline = true\n", "unknown field `online`"),
        (
            "[script.db]\npath = \"relative.sh\"\n",
            "script.db.path: must be an absolute path",
        ),
        (
            "[script.db]\npath = \"/x\"\nmonitor_timeout_secs = 0\n",
            "script.db.monitor_timeout_secs: must be at least 1",
        ),
        (
            "[proc.web]\ncommand = \"web\"\nstop_signal = \"TERMINATE\"\n",
            "proc.web.stop_signal: unknown signal 'TERMINATE'",
        ),
        ("[resource.\"script:db\"]\n", "no [script.db] section"),
    ];
    for (text, expected) in cases {
        let err = parse_err(text);
        assert!(err.contains(expected), "expected '{expected}' in '{err}'");
    }
    let err = parse_err("[agent.vm]\n\ntimeout_secs = -1\n");
    assert!(err.starts_with("line 7:"), "{err}");
}

// ---- through the node daemon -------------------------------------------

fn resource() -> ResourceConfig {
    ResourceConfig::new("node1", RequestState::Started)
}

fn start_daemon(state_dir: &Path, sections: &str, sids: &[&str]) -> (NodeConfig, NodeHandle) {
    let text = format!(
        "node = \"node1\"\nstate_dir = \"{}\"\nmax_worker = 2\n[watchdog]\nbackend = \"process\"\n{sections}",
        state_dir.display()
    );
    let config = NodeConfig::parse(&text).unwrap();
    let mut state = ClusterState::default();
    for sid in sids {
        state.resources.insert(sid.to_string(), resource());
    }
    let options = NodeOptions {
        backend: Some(Box::new(RecordingBackend::new())),
        guard_program: PathBuf::from(env!("CARGO_BIN_EXE_hactor")),
        fence_kills_daemon: false,
        agents: Agents::new(),
        exited: IgnoreExited.start().recipient(),
        datacenter: DatacenterSettings::default(),
        runtime: Default::default(),
    };
    let node = start_node(&config, MemoryStore::volatile(state), options).unwrap();
    (config, node)
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pid_file(state_dir: &Path, name: &str) -> Option<i32> {
    // `<pgid> <identity>`: the leader's pid comes first.
    std::fs::read_to_string(state_dir.join(format!("proc/{name}.pid")))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty()
        && !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

#[actix_rt::test]
async fn every_started_service_sees_its_fencing_token_sid_and_node() {
    let dir = tempfile::tempdir().unwrap();
    let hv = Hypervisor::new();
    hv.guest("100", "stopped");
    // The script's state lives apart from the daemon's `state` directory.
    let ocf_dir = dir.path().join("ocf");
    std::fs::create_dir(&ocf_dir).unwrap();
    let script = ocf_dir.join("db.sh");
    write_script(&script, OCF_SCRIPT);
    let proc_env = dir.path().join("proc.env");
    let sections = format!(
        "[proc.envdump]\ncommand = \"sh\"\nargs = [\"-c\", \"env | grep ^HACTOR_ | sort > {}; exec sleep 1000\"]\n\
         [script.db]\npath = \"{}\"\nenv = {{ STATE_DIR = \"{}\" }}\n{}",
        proc_env.display(),
        script.display(),
        ocf_dir.display(),
        hv.section("vm", "")
    );
    let (_config, node) = start_daemon(
        &dir.path().join("state"),
        &sections,
        &["proc:envdump", "script:db", "vm:100"],
    );
    let files = [
        ("proc:envdump", proc_env.clone()),
        ("script:db", ocf_dir.join("start.env")),
        ("vm:100", hv.path("100.env")),
    ];
    let started = |files: &[(&str, PathBuf)]| -> Vec<String> {
        files
            .iter()
            .filter(|(_, file)| !read_env(file).contains_key("HACTOR_FENCING_TOKEN"))
            .map(|(sid, _)| sid.to_string())
            .collect()
    };
    let deadline = Instant::now() + PATIENCE;
    while !started(&files).is_empty() {
        let snapshot = node.lock.send(GetSnapshot).await.unwrap();
        assert!(
            Instant::now() < deadline,
            "not started: {:?}; service status {:?}",
            started(&files),
            snapshot.state.manager_status.service_status
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let epochs = node.lock.send(GetSnapshot).await.unwrap().state.epochs;
    for (sid, file) in &files {
        let env = read_env(file);
        assert_eq!(env["HACTOR_SID"], *sid);
        assert_eq!(env["HACTOR_NODE"], "node1");
        let token: u64 = env["HACTOR_FENCING_TOKEN"].parse().unwrap();
        assert!(token >= 1, "{sid}: a placement has a positive epoch");
        assert_eq!(Some(&token), epochs.get(*sid), "{sid}: the token is the store's epoch");
    }
    assert_eq!(hv.state("100").as_deref(), Some("running"));
    node.proc_agent.stop("envdump", Some(Duration::from_secs(5))).unwrap();
}

#[actix_rt::test]
async fn the_lrm_restarts_a_crashed_or_unhealthy_proc_service() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let healthy = dir.path().join("healthy");
    std::fs::write(&healthy, "").unwrap();
    let sections = format!(
        "[proc.web]\ncommand = \"sleep\"\nargs = [\"1000\"]\nstop_timeout_secs = 5\n\
         health_check = [\"test\", \"-e\", \"{}\"]\nstart_timeout_secs = 60\n",
        healthy.display()
    );
    let (_config, node) = start_daemon(&state_dir, &sections, &["proc:web"]);
    let running_pid = |state_dir: &Path| pid_file(state_dir, "web").filter(|pid| alive(*pid));
    wait_until("proc:web started", || running_pid(&state_dir).is_some()).await;
    let first = running_pid(&state_dir).unwrap();

    // Crash: the next round starts it again.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_until("a restart after the crash", || {
        running_pid(&state_dir).is_some_and(|pid| pid != first)
    })
    .await;
    let second = running_pid(&state_dir).unwrap();

    // Failing health check: the process is replaced.
    std::fs::remove_file(&healthy).unwrap();
    wait_until("the unhealthy process to be stopped", || !alive(second)).await;
    std::fs::write(&healthy, "").unwrap();
    wait_until("a healthy replacement", || {
        running_pid(&state_dir).is_some_and(|pid| pid != second)
    })
    .await;
    assert_eq!(node.proc_agent.monitor("web"), Health::Running);
    let agent: Arc<hactor::agents::proc::ProcAgent> = node.proc_agent.clone();
    agent.stop("web", Some(Duration::from_secs(5))).unwrap();
}
