//! The state directory as real `hactor` processes use it: one daemon (or
//! lifecycle command) at a time, the daemon's own pid file, store writes
//! that fail without leaving anything half applied, and `local-cluster`
//! stopping a node that was restarted by hand.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hactor::node::local_cluster::{LocalCluster, LocalSpec, pids};

const HACTOR: &str = env!("CARGO_BIN_EXE_hactor");
const HA_MANAGER: &str = env!("CARGO_BIN_EXE_ha-manager");

/// A daemon started by a test; killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A single node's directory with its configuration (a `proc:web` service
/// whose command line carries `marker`).
fn single_node(marker: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("node1");
    std::fs::create_dir_all(&state).unwrap();
    let config = tmp.path().join("node1.toml");
    std::fs::write(
        &config,
        format!(
            "node = \"node1\"\nstate_dir = \"{dir}\"\nsocket = \"{dir}/hactor.sock\"\n\
             [watchdog]\nbackend = \"process\"\n\
             [proc.web]\ncommand = \"sleep\"\nargs = [\"{marker}1\"]\nstop_timeout_secs = 1\n\
             [proc.db]\ncommand = \"sleep\"\nargs = [\"{marker}2\"]\nstop_timeout_secs = 1\n\
             [resource.\"proc:web\"]\n",
            dir = state.display()
        ),
    )
    .unwrap();
    (tmp, state, config)
}

fn start(config: &Path) -> Daemon {
    Daemon(
        Command::new(HACTOR)
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn ha(state: &Path, args: &[&str]) -> Output {
    Command::new(HA_MANAGER)
        .arg("--socket")
        .arg(state.join("hactor.sock"))
        .args(args)
        .output()
        .unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pid_file(state: &Path) -> Option<u32> {
    std::fs::read_to_string(state.join("hactor.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn wait_ready(state: &Path) {
    wait_until("the daemon to run proc:web", Duration::from_secs(30), || {
        String::from_utf8_lossy(&ha(state, &["status"]).stdout).contains("service proc:web (node1, started)")
    });
}

fn sigterm(daemon: &Daemon) {
    let pid = nix::unistd::Pid::from_raw(daemon.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
}

fn wait_exit(daemon: &mut Daemon, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the daemon did not exit within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_daemon_or_lifecycle_command_on_a_state_dir_is_refused() {
    let (_tmp, state, config) = single_node("41000017");
    let mut first = start(&config);
    wait_ready(&state);
    assert_eq!(
        pid_file(&state),
        Some(first.0.id()),
        "the daemon writes its own pid file"
    );

    let second = Command::new(HACTOR).arg("--config").arg(&config).output().unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("state_dir {} is in use", state.display())),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("(pid {})", first.0.id())), "{stderr}");
    for args in [
        &["cluster", "init"][..],
        &["cluster", "join", "--bundle", "/nonexistent"],
    ] {
        let out = Command::new(HACTOR)
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("is in use by another hactor process"),
            "{args:?}: {stderr}"
        );
    }
    // The first daemon goes on, its pid file untouched.
    assert!(first.0.try_wait().unwrap().is_none());
    assert_eq!(pid_file(&state), Some(first.0.id()));
    wait_ready(&state);

    sigterm(&first);
    assert!(wait_exit(&mut first, Duration::from_secs(60)).success());
    assert_eq!(pid_file(&state), None, "the daemon removes its pid file");
    // The lock went with it.
    let third = start(&config);
    wait_ready(&state);
    assert_eq!(pid_file(&state), Some(third.0.id()));
}

#[test]
fn a_failed_store_write_leaves_nothing_visible_and_sigterm_still_exits() {
    let (_tmp, state, config) = single_node("41000018");
    let mut daemon = start(&config);
    wait_ready(&state);
    // Root ignores file modes: a directory where the store's journal goes
    // makes every write fail, like a read-only or full disk (the store
    // then tries to rewrite its snapshot and journal before each batch,
    // and that fails too).
    let journal = state.join("store.journal");
    wait_until("a moment between two writes", Duration::from_secs(10), || {
        std::fs::remove_file(&journal).is_ok() && std::fs::create_dir(&journal).is_ok()
    });
    let add = ha(&state, &["add", "proc:db"]);
    assert_ne!(add.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&add.stderr);
    assert!(stderr.contains("store write failed"), "{stderr}");
    let config_out = String::from_utf8_lossy(&ha(&state, &["config"]).stdout).into_owned();
    assert!(config_out.contains("proc:web"), "{config_out}");
    assert!(
        !config_out.contains("proc:db"),
        "a failed add is not visible: {config_out}"
    );

    sigterm(&daemon);
    wait_exit(&mut daemon, Duration::from_secs(90));
    std::fs::remove_dir(&journal).unwrap();
    let store = std::fs::read_to_string(state.join("store.json")).unwrap();
    assert!(!store.contains("proc:db"), "nor after a restart");
}

fn free_base_port() -> u16 {
    for _ in 0..100 {
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = port.saturating_sub(1);
        if base > 20_000 && UdpSocket::bind(("127.0.0.1", base + 1)).is_ok() {
            return base;
        }
    }
    panic!("no free port");
}

#[test]
fn local_cluster_stops_a_node_restarted_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let base_port = free_base_port();
    let marker = format!("8{base_port}{}", std::process::id() % 1000);
    let spec = LocalSpec {
        nodes: 1,
        services: 1,
        base_port,
        marker: marker.clone(),
        ..LocalSpec::default()
    };
    let mut cluster = LocalCluster::create(&tmp.path().join("cluster"), Path::new(HACTOR), spec).unwrap();
    let dir = cluster.nodes[0].dir.clone();
    assert_eq!(cluster.daemon_pid(0), cluster.pid(0), "the daemon wrote its pid file");
    cluster.kill(0);
    // Restarted by hand, as the README says.
    let mut by_hand = Command::new(HACTOR)
        .arg("--config")
        .arg(&cluster.nodes[0].config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = by_hand.id() as i32;
    wait_until("the restarted daemon's pid file", Duration::from_secs(10), || {
        pid_file(&dir) == Some(pid as u32)
    });
    assert_eq!(cluster.daemon_pid(0), Some(pid));
    wait_until("the service to run again", Duration::from_secs(30), || {
        cluster.service_pids(0).len() == 1
    });
    let guard = format!("--daemon-pid {pid} ");
    assert_eq!(pids(&guard, true).len(), 1, "the restarted daemon's fence guard runs");

    cluster.shutdown();
    let status = by_hand.try_wait().unwrap();
    assert!(status.is_some(), "the hand-restarted daemon was stopped");
    wait_until("its fence guard to exit", Duration::from_secs(10), || {
        pids(&guard, true).is_empty()
    });
    assert!(cluster.service_pids(0).is_empty(), "its service was stopped");
    assert!(pid_file(&dir).is_none());
}
