//! Hardware fencing end to end (issue 16): three real daemons on loopback
//! with a fake fence device (`tests/fence/fake-fence-agent`: it speaks the
//! fence-agent interface, records its calls and "powers off" a node by
//! killing its daemon and services), and the invariant observer (never
//! two live instances of a service, no stale fencing token accepted).
//!
//! The lease is made long (15 s) so that the two ways to acknowledge a
//! fence are far apart: a device that confirms the node off acknowledges
//! within seconds; a device that fails leaves it to the lease.

mod observer;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use observer::*;

/// Lease of these clusters: long, so that a device acknowledgement is
/// told apart from a lease one by its timing alone.
const TIMING: &str = "[timing]\nlease_ms = 15000\n";

/// One cluster at a time: two at once on a small machine slow the
/// daemons down to missed watchdog deadlines.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A service, and the node running it, that is not the master's: a new
/// master would first wait for the old one's manager lock, whatever the
/// fence device does.
fn victim(t: &Setup) -> (usize, usize) {
    t.cluster.wait_settled(Duration::from_secs(60)).unwrap();
    let master = (0..3)
        .find_map(|i| t.cluster.view(i).and_then(|v| v.master))
        .and_then(|m| t.cluster.index(&m))
        .expect("a master");
    if let Some(found) = (0..2).map(|s| (s, t.home(s))).find(|(_, node)| *node != master) {
        return found;
    }
    // Both run on the master's node (an early fence moved them): move one.
    let target = (0..3).find(|i| *i != master).unwrap();
    let target_name = t.cluster.nodes[target].name.clone();
    let socket = t.cluster.nodes[master].dir.join("hactor.sock");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ha-manager"))
        .arg("--socket")
        .arg(&socket)
        .args(["migrate", "proc:svc1", &target_name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let master_name = t.cluster.nodes[master].name.clone();
    let (node, _) = t.wait_running(1, Some(&master_name), Duration::from_secs(30));
    assert_eq!(node, target_name);
    (1, target)
}

fn calls(fence: &hactor::node::local_fence::FakeFence) -> String {
    std::fs::read_to_string(&fence.calls).unwrap_or_default()
}

#[test]
fn a_fence_device_powers_a_hung_node_off_and_recovery_starts_before_its_lease_ends() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fence_dir = tempfile::tempdir().unwrap();
    let config = fence_dir.path().join("fence.cfg");
    let extra = format!(
        "[fence]\nconfig = \"{}\"\ntimeout_secs = 10\n{TIMING}",
        config.display()
    );
    let mut t = setup(3, 2, &extra);
    // The cluster directory exists only now; fence.cfg is read when a
    // fence runs.
    let fence = hactor::node::local_fence::setup(fence_dir.path(), &t.cluster.dir, 3, "ok").unwrap();
    assert_eq!(fence.config, config);

    // A hung daemon: alive, its lease valid, its services running.
    let (svc, victim) = victim(&t);
    let name = t.cluster.nodes[victim].name.clone();
    let daemon = t.cluster.pid(victim).unwrap();
    t.cluster.signal(victim, Signal::SIGSTOP);
    let stopped = Instant::now();
    let (node, _) = t.wait_running(svc, Some(&name), RECOVERY_BOUND);
    let took = stopped.elapsed();
    println!("SIGSTOP of {name}: proc:svc{svc} running on {node} after {took:?}");
    assert!(
        took < Duration::from_secs(12),
        "recovered after {took:?}: not before the 15 s lease could end"
    );
    // From this fence on (a node slow to start may have been fenced by
    // the lease before).
    let log = t.master_log();
    let request = format!("FENCE: Try to fence node '{name}'");
    let log = log[log.rfind(&request).expect("a fence request")..].to_string();
    let ack = format!("fencing: acknowledged - fence device confirmed node '{name}' off");
    let ack_at = log.find(&ack).unwrap_or_else(|| {
        t.dump();
        panic!("no device acknowledgement")
    });
    assert!(!log.contains(&format!("got agent lock for node '{name}'")));
    assert!(ack_at < log.find(&format!("recover service 'proc:svc{svc}'")).unwrap());
    assert!(log.contains(&format!("Start fencing node '{name}'")));
    // The agent was called with the device's and the node's options, off
    // then status, for the victim only.
    let calls = calls(&fence);
    let lines: Vec<&str> = calls.lines().collect();
    assert!(lines.len() >= 2, "{calls}");
    assert!(lines[0].ends_with(&format!(
        "--plug={name} --state-dir={}/{name} --action=off",
        t.cluster.dir.display()
    )));
    assert!(lines[1].ends_with("--action=status"), "{calls}");
    assert!(lines.iter().all(|l| l.contains(&format!("--plug={name} "))), "{calls}");
    // The node is off: no daemon, no service of it.
    assert!(
        !std::path::Path::new(&format!("/proc/{daemon}/cmdline")).exists() || {
            let stat = std::fs::read_to_string(format!("/proc/{daemon}/stat")).unwrap_or_default();
            stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'))
        }
    );
    t.cluster.kill(victim);
    t.wait_running(1 - svc, None, Duration::from_secs(10));
    t.observer.check();
}

#[test]
fn a_failing_fence_device_leaves_the_fence_to_the_lease() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fence_dir = tempfile::tempdir().unwrap();
    let config = fence_dir.path().join("fence.cfg");
    let extra = format!(
        "[fence]\nconfig = \"{}\"\ntimeout_secs = 10\n{TIMING}",
        config.display()
    );
    let mut t = setup(3, 2, &extra);
    let fence = hactor::node::local_fence::setup(fence_dir.path(), &t.cluster.dir, 3, "fail").unwrap();

    let (svc, victim) = victim(&t);
    let name = t.cluster.nodes[victim].name.clone();
    let killed = Instant::now();
    t.cluster.kill(victim);
    let (node, _) = t.wait_running(svc, Some(&name), Duration::from_secs(60));
    let took = killed.elapsed();
    println!("SIGKILL of {name} (failing device): proc:svc{svc} running on {node} after {took:?}");
    assert!(
        took >= Duration::from_secs(10),
        "recovered after {took:?}, before the 15 s lease ended"
    );
    let log = t.master_log();
    let request = format!("FENCE: Try to fence node '{name}'");
    let log = log[log.rfind(&request).expect("a fence request")..].to_string();
    assert!(
        log.contains(&format!("tried all fence devices for node '{name}'")),
        "no failure logged"
    );
    assert!(!log.contains("fence device confirmed"));
    let ack = log
        .find(&format!("fencing: acknowledged - got agent lock for node '{name}'"))
        .expect("the lease acknowledged");
    assert!(ack < log.find(&format!("recover service 'proc:svc{svc}'")).unwrap());
    assert!(calls(&fence).contains("--mode=fail") && calls(&fence).contains("--action=off"));
    t.observer.check();
}
