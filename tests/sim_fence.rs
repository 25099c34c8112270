//! Hardware fencing in the simulator (issue 16): the scenarios in
//! `tests/sim_fence/` give node3 fence devices that confirm, fail or hang
//! while node3 is cut off (alive, running its services).
//!
//! * every log equals its `log.expect` (`UPDATE_EXPECT=1` rewrites them;
//!   review the diff);
//! * node3's services are recovered elsewhere only after node3 is off
//!   (powered off by the device or by its own watchdog);
//! * a confirmed power-off acknowledges the fence before node3's agent lock
//!   could have expired; a failed or hung device leaves the acknowledgement
//!   to the lock, no earlier than its expiry.

use std::path::{Path, PathBuf};

/// Lifetime of a cluster lock in the simulator (spec §1.3).
const LOCK_TIMEOUT: i64 = 120;

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sim_fence").join(name)
}

fn run(name: &str) -> Vec<String> {
    let dir = scenario(name);
    let log = hactor::sim::run_scenario(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
    let expect = dir.join("log.expect");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&expect, log.join("\n") + "\n").unwrap();
    }
    let expected = std::fs::read_to_string(&expect).unwrap_or_else(|e| panic!("{}: {e}", expect.display()));
    for (i, (want, got)) in expected.lines().zip(&log).enumerate() {
        assert_eq!(want, got, "{name}: log line {} differs", i + 1);
    }
    assert_eq!(expected.lines().count(), log.len(), "{name}: log length differs");
    log
}

/// The time of the first line containing `needle`.
fn time_of(log: &[String], needle: &str) -> Option<i64> {
    log.iter()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// The last time node3's LRM held its lock: its last renewal is at most
/// a round before it lost it.
fn node3_lost_lock(log: &[String]) -> i64 {
    time_of(log, "node3/lrm: status change active => lost_agent_lock").expect("node3 loses its lock")
}

/// node3's services start elsewhere only after node3 was powered off.
fn recovered_after_power_off(name: &str, log: &[String]) -> i64 {
    let off = time_of(log, "node3/lrm: killed by poweroff").unwrap_or_else(|| panic!("{name}: node3 never off"));
    let first_recovery = log
        .iter()
        .position(|l| l.contains("recover service"))
        .unwrap_or_else(|| panic!("{name}: nothing recovered"));
    let off_line = log
        .iter()
        .position(|l| l.contains("node3/lrm: killed by poweroff"))
        .unwrap();
    assert!(off_line < first_recovery, "{name}: recovery before node3 was off");
    for sid in ["vm:103", "ct:104"] {
        let start = time_of(log, &format!("lrm: starting service {sid}"));
        let elsewhere = log
            .iter()
            .filter(|l| l.contains(&format!("starting service {sid}")) && !l.contains("node3/"))
            .count();
        assert!(
            start.is_some() && elsewhere == 1,
            "{name}: {sid} recovered once elsewhere"
        );
    }
    off
}

#[test]
fn a_confirmed_power_off_acknowledges_before_the_lease_ends() {
    for name in ["device-confirms-off", "parallel-fallback"] {
        let log = run(name);
        let off = recovered_after_power_off(name, &log);
        let ack = time_of(&log, "fencing: acknowledged - fence device confirmed node 'node3' off")
            .unwrap_or_else(|| panic!("{name}: no device acknowledgement"));
        assert!(
            !log.iter().any(|l| l.contains("got agent lock for node 'node3'")),
            "{name}: the lease did not get the chance"
        );
        assert!(off <= ack, "{name}: acknowledged before the power-off");
        let power_off_by_device = log
            .iter()
            .any(|l| l.contains("fence_") && l.contains("execute power node3 off"));
        assert!(power_off_by_device, "{name}: the device powered node3 off");
        assert!(
            ack < node3_lost_lock(&log) + LOCK_TIMEOUT - 20,
            "{name}: acknowledged at {ack}, not before the lock could expire"
        );
    }
    let log = run("parallel-fallback");
    let tried: Vec<&String> = log.iter().filter(|l| l.contains("execute cmd:")).collect();
    assert_eq!(tried.len(), 3, "one failing device, then two parallel ones: {tried:?}");
}

#[test]
fn a_failing_or_hanging_device_leaves_it_to_the_lease() {
    for name in ["device-fails-lease-protects", "device-hangs-lease-protects"] {
        let log = run(name);
        recovered_after_power_off(name, &log);
        assert!(
            !log.iter().any(|l| l.contains("fence device confirmed")),
            "{name}: no device acknowledgement"
        );
        assert!(
            log.iter().any(|l| l.contains("watchdog: execute power node3 off")),
            "{name}: node3's own watchdog fenced it"
        );
        let ack = time_of(&log, "fencing: acknowledged - got agent lock for node 'node3'")
            .unwrap_or_else(|| panic!("{name}: no lock acknowledgement"));
        assert!(
            ack >= node3_lost_lock(&log) - 20 + LOCK_TIMEOUT,
            "{name}: lock taken at {ack}, before it could have expired"
        );
    }
    let log = run("device-fails-lease-protects");
    assert!(
        log.iter()
            .any(|l| l.ends_with("tried all fence devices for node 'node3'"))
    );
}
