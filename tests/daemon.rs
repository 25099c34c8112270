//! The node daemon with real actors: supervision under injected panics,
//! the worker pool's bound, and fencing by the process watchdog backend
//! (real guard process, real service processes, a real daemon process).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Context, Handler};
use hactor::actors::lock::GetSnapshot;
use hactor::actors::round::{GetRoleState, IgnoreExited};
use hactor::actors::watchdog::GetWatchdogState;
use hactor::actors::{InjectPanic, NodeHandle, NodeOptions, start_node};
use hactor::agents::{Agent, Agents, StartContext};
use hactor::core::env::DatacenterSettings;
use hactor::core::status::ResourceConfig;
use hactor::core::store::ClusterState;
use hactor::core::types::{RequestState, ServiceState};
use hactor::node::config::NodeConfig;
use hactor::node::memory_store::MemoryStore;
use hactor::watchdog::{Backend, RecordingBackend};

/// An in-memory agent that counts starts and concurrent actions.
#[derive(Default)]
struct TestAgent {
    running: Mutex<BTreeSet<String>>,
    starts: AtomicUsize,
    active: AtomicUsize,
    max_active: AtomicUsize,
    delay: Duration,
}

impl Agent for TestAgent {
    fn running(&self, name: &str) -> bool {
        self.running.lock().unwrap().contains(name)
    }

    fn start(&self, name: &str, _ctx: &StartContext) -> Result<(), String> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        self.starts.fetch_add(1, Ordering::SeqCst);
        self.running.lock().unwrap().insert(name.to_string());
        self.active.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }

    fn stop(&self, name: &str, _timeout: Option<Duration>) -> Result<(), String> {
        self.running.lock().unwrap().remove(name);
        Ok(())
    }

    fn migrate(&self, name: &str, _target: &str, _online: bool) -> Result<bool, String> {
        self.stop(name, None).map(|()| true)
    }
}

fn config(state_dir: &Path, extra: &str) -> NodeConfig {
    let text = format!(
        "node = \"node1\"\nstate_dir = \"{}\"\nmax_worker = 2\n[watchdog]\nbackend = \"process\"\n{extra}",
        state_dir.display()
    );
    NodeConfig::parse(&text).unwrap()
}

fn resource() -> ResourceConfig {
    ResourceConfig::new("node1", RequestState::Started)
}

fn store_with(sids: &[&str]) -> MemoryStore {
    let mut state = ClusterState::default();
    for sid in sids {
        state.resources.insert(sid.to_string(), resource());
    }
    MemoryStore::volatile(state)
}

fn start(
    config: &NodeConfig,
    store: MemoryStore,
    agent: Arc<TestAgent>,
    backend: Option<Box<dyn Backend>>,
) -> NodeHandle {
    let mut agents = Agents::new();
    agents.register("test", agent);
    let options = NodeOptions {
        backend,
        guard_program: PathBuf::from(env!("CARGO_BIN_EXE_hactor")),
        fence_kills_daemon: false,
        agents,
        exited: IgnoreExited.start().recipient(),
        datacenter: DatacenterSettings::default(),
        runtime: Default::default(),
    };
    start_node(config, store, options).unwrap()
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn role_state<A>(addr: &Addr<A>) -> Option<&'static str>
where
    A: Actor<Context = Context<A>> + Handler<GetRoleState>,
{
    addr.send(GetRoleState).await.ok().flatten()
}

async fn service_state(node: &NodeHandle, sid: &str) -> Option<ServiceState> {
    let snapshot = node.lock.send(GetSnapshot).await.ok()?;
    snapshot.state.manager_status.service_status.get(sid).map(|sd| sd.state)
}

#[actix_rt::test]
async fn repeated_panics_never_miss_a_watchdog_feed() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let agent = Arc::new(TestAgent::default());
    let backend = RecordingBackend::new();
    let node = start(
        &config,
        store_with(&["test:a"]),
        agent.clone(),
        Some(Box::new(backend.clone())),
    );
    wait_until("service started and LRM active", Duration::from_secs(10), || async {
        role_state(&node.lrm).await == Some("active") && agent.running("a")
    })
    .await;
    let since = Instant::now();
    let mut restart_latency = Duration::ZERO;
    for _ in 0..100 {
        node.crm.do_send(InjectPanic);
        node.lrm.do_send(InjectPanic);
        node.pool.do_send(InjectPanic);
        node.lock.do_send(InjectPanic);
        let injected = Instant::now();
        // every actor answers again behind the same address
        node.lock.send(GetSnapshot).await.expect("LockActor back");
        node.crm.send(GetRoleState).await.expect("CrmActor back");
        node.lrm.send(GetRoleState).await.expect("LrmActor back");
        restart_latency = restart_latency.max(injected.elapsed());
        actix_rt::time::sleep(Duration::from_millis(30)).await;
    }
    wait_until("master and active LRM again", Duration::from_secs(10), || async {
        role_state(&node.crm).await == Some("master") && role_state(&node.lrm).await == Some("active")
    })
    .await;
    let state = node.watchdog.send(GetWatchdogState).await.unwrap();
    assert_eq!(state.expired, None, "a client expired during the restarts: {state:?}");
    let gap = backend.max_gap(since);
    let device_timeout = Duration::from_millis(config.timings.watchdog_device_timeout_ms);
    assert!(gap < device_timeout, "watchdog starved for {gap:?}");
    assert!(backend.feed_count() > 10);
    assert_eq!(
        agent.starts.load(Ordering::SeqCst),
        1,
        "the service was never restarted"
    );
    assert!(agent.running("a"));
    assert_eq!(service_state(&node, "test:a").await, Some(ServiceState::Started));
    println!("max restart latency over 100 rounds of 4 injected panics: {restart_latency:?}; longest feed gap {gap:?}");
}

#[actix_rt::test]
async fn worker_pool_runs_at_most_max_worker_actions() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let agent = Arc::new(TestAgent {
        delay: Duration::from_millis(150),
        ..TestAgent::default()
    });
    let sids: Vec<String> = (0..8).map(|i| format!("test:s{i}")).collect();
    let sid_refs: Vec<&str> = sids.iter().map(String::as_str).collect();
    let node = start(
        &config,
        store_with(&sid_refs),
        agent.clone(),
        Some(Box::new(RecordingBackend::new())),
    );
    wait_until("all eight services running", Duration::from_secs(15), || async {
        agent.starts.load(Ordering::SeqCst) == 8
    })
    .await;
    assert_eq!(
        agent.max_active.load(Ordering::SeqCst),
        2,
        "max_worker = 2 must bound concurrent actions"
    );
    assert_eq!(node.pool_stats.max_seen.load(Ordering::SeqCst), 2);
    wait_until("every service confirmed started", Duration::from_secs(10), || async {
        let snapshot = node.lock.send(GetSnapshot).await.unwrap();
        let ms = snapshot.state.manager_status;
        sids.iter()
            .all(|sid| ms.service_status.get(sid).is_some_and(|sd| sd.running))
    })
    .await;
}

fn proc_config(dir: &Path) -> String {
    format!(
        "node = \"node1\"\nstate_dir = \"{0}\"\nsocket = \"{0}/hactor.sock\"\n[watchdog]\nbackend = \"process\"\n\
         [proc.sleeper]\ncommand = \"sleep\"\nargs = [\"1000\"]\n[resource.\"proc:sleeper\"]\n",
        dir.display()
    )
}

fn pid_of(dir: &Path) -> Option<i32> {
    // `<pgid> <identity>`: the leader's pid comes first.
    std::fs::read_to_string(dir.join("proc/sleeper.pid"))
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

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

#[actix_rt::test]
async fn lease_loss_stops_the_feeding_and_the_guard_kills_the_services() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig::parse(&proc_config(dir.path())).unwrap();
    let store = MemoryStore::volatile(ClusterState::default());
    store
        .apply(vec![hactor::core::store::Op::PutResource {
            sid: "proc:sleeper".into(),
            resource: resource(),
        }])
        .unwrap();
    let node = start(&config, store.clone(), Arc::new(TestAgent::default()), None);
    wait_until("the proc service running", Duration::from_secs(10), || async {
        pid_of(dir.path()).is_some()
    })
    .await;
    let pid = pid_of(dir.path()).unwrap();
    assert!(alive(pid));
    // The LRM can no longer renew its lease.
    store.set_quorate(false);
    let lost = Instant::now();
    wait_until("the LRM to notice", Duration::from_secs(5), || async {
        role_state(&node.lrm).await == Some("lost_agent_lock")
    })
    .await;
    let timings = config.timings;
    let bound = Duration::from_millis(
        timings.round_ms + timings.watchdog_client_timeout_ms + timings.watchdog_device_timeout_ms + 2000,
    );
    while alive(pid) && lost.elapsed() < bound {
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        !alive(pid),
        "service process survived lease loss for {:?}",
        lost.elapsed()
    );
    let state = node.watchdog.send(GetWatchdogState).await.unwrap();
    assert!(
        state.expired.is_some(),
        "the watchdog must have stopped feeding: {state:?}"
    );
    let log = std::fs::read_to_string(dir.path().join("fence.log")).unwrap();
    assert!(log.contains("fencing node: no keepalive"), "{log}");
    println!("lease lost -> services killed in {:?}", lost.elapsed());
}

fn spawn_daemon(dir: &Path) -> Child {
    let config = dir.join("node.toml");
    std::fs::write(&config, proc_config(dir)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_hactor"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

#[test]
fn killed_or_stopped_daemons_are_fenced_by_their_guard() {
    use nix::sys::signal::Signal;
    for (what, sig) in [("SIGKILL", Signal::SIGKILL), ("SIGSTOP", Signal::SIGSTOP)] {
        let dir = tempfile::tempdir().unwrap();
        let mut daemon = spawn_daemon(dir.path());
        wait_for("the daemon to start its service", Duration::from_secs(15), || {
            pid_of(dir.path()).is_some()
        });
        let pid = pid_of(dir.path()).unwrap();
        wait_for("the service process", Duration::from_secs(5), || alive(pid));
        signal(&daemon, sig);
        let took = wait_for(
            &format!("the service to die after {what}"),
            Duration::from_secs(6),
            || !alive(pid),
        );
        let status = daemon.wait().unwrap();
        assert!(
            !status.success(),
            "{what}: the daemon must have been killed, got {status:?}"
        );
        let log = std::fs::read_to_string(dir.path().join("fence.log")).unwrap_or_default();
        assert!(log.contains("fencing node"), "{what}: guard log: {log}");
        println!("{what}: service killed {took:?} after the signal");
    }
}

#[test]
fn graceful_restart_keeps_services_running_and_adopts_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = spawn_daemon(dir.path());
    wait_for("the service", Duration::from_secs(15), || pid_of(dir.path()).is_some());
    let pid = pid_of(dir.path()).unwrap();
    signal(&daemon, nix::sys::signal::Signal::SIGTERM);
    let status = daemon.wait().unwrap();
    assert!(status.success(), "graceful exit: {status:?}");
    assert!(alive(pid), "a daemon restart freezes services; it must not stop them");
    let log = std::fs::read_to_string(dir.path().join("fence.log")).unwrap_or_default();
    assert!(!log.contains("fencing node"), "{log}");
    let mut second = spawn_daemon(dir.path());
    std::thread::sleep(Duration::from_secs(3));
    assert!(alive(pid), "the restarted daemon adopts the running service");
    assert_eq!(pid_of(dir.path()), Some(pid), "no second instance");
    signal(&second, nix::sys::signal::Signal::SIGKILL);
    second.wait().unwrap();
    wait_for("the fence after SIGKILL", Duration::from_secs(5), || !alive(pid));
}

#[test]
fn a_missing_watchdog_device_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    let text = format!(
        "node = \"node1\"\nstate_dir = \"{0}\"\nsocket = \"{0}/hactor.sock\"\n\
         [watchdog]\nbackend = \"device\"\ndevice = \"{0}/no-watchdog\"\n",
        dir.path().display()
    );
    std::fs::write(&config, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hactor"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot open watchdog device") && stderr.contains("no-watchdog"),
        "{stderr}"
    );
}

#[test]
fn bad_configurations_stop_the_daemon_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        "node = \"node1\"\nstate_dir = \"/tmp/x\"\n[watchdog]\nbackend = \"process\"\n[timing]\nlease_ms = 100\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hactor"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("node.toml") && stderr.contains("unsafe timing"),
        "{stderr}"
    );
}
