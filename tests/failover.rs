//! End to end: real daemons on loopback (real QUIC, the replicated store,
//! process watchdogs), real service processes, and an invariant observer
//! that is also the services' shared storage. Each test breaks a node in
//! one way — SIGKILL, SIGSTOP of the daemon, a frozen node, a partition —
//! or restarts or shuts nodes down, and checks:
//! - never two live, unfrozen instances of a service at once (sampled);
//! - the storage accepts no write carrying a stale fencing token;
//! - every service requested `started` runs again within the bound;
//! - fencing is acknowledged before recovery.

mod observer;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hactor::node::local_cluster::pids;
use nix::sys::signal::Signal;
use observer::*;

#[test]
fn sigkill_of_a_service_node_recovers_it_after_the_fence() {
    let mut t = setup(3, 2, "");
    let victim = t.home(1);
    let name = t.cluster.nodes[victim].name.clone();
    let token = t.token(1);
    let killed = Instant::now();
    t.cluster.kill(victim);
    let (node, took) = t.wait_running(1, Some(&name), RECOVERY_BOUND);
    println!(
        "SIGKILL of {name}: proc:svc1 running on {node} after {:?}",
        killed.elapsed()
    );
    assert!(took < RECOVERY_BOUND);
    assert!(t.token(1) > token, "the new placement has a newer fencing token");
    let master = (0..3).filter(|i| *i != victim).find(|i| {
        std::fs::read_to_string(t.cluster.log_path(*i))
            .unwrap_or_default()
            .contains("recover service 'proc:svc1'")
    });
    let log = std::fs::read_to_string(t.cluster.log_path(master.expect("a master recovered it"))).unwrap();
    assert!(
        log.find(&format!("fencing: acknowledged - got agent lock for node '{name}'"))
            .unwrap()
            < log.find("recover service 'proc:svc1'").unwrap(),
        "recovered before the fence was acknowledged"
    );
    t.wait_running(0, None, Duration::from_secs(5));
    t.observer.check();
}

#[test]
fn a_hung_daemon_is_fenced_by_its_guard_before_its_services_move() {
    let mut t = setup(3, 2, "");
    let victim = t.home(1);
    let name = t.cluster.nodes[victim].name.clone();
    let old = t.cluster.service_pids(1);
    let daemon = t.cluster.pid(victim).unwrap();
    t.cluster.signal(victim, Signal::SIGSTOP);
    let stopped = Instant::now();
    // The guard kills the services (and the daemon) when the feeding stops.
    let fenced = wait(Duration::from_secs(10), "the guard to kill the old instance", || {
        old.iter().all(|p| zombie(*p))
    });
    let (node, _) = t.wait_running(1, Some(&name), RECOVERY_BOUND);
    println!(
        "SIGSTOP of {name}'s daemon: its guard killed proc:svc1 after {fenced:?}; running on {node} after {:?}",
        stopped.elapsed()
    );
    let fence_log = std::fs::read_to_string(t.cluster.nodes[victim].dir.join("fence.log")).unwrap_or_default();
    assert!(fence_log.contains("fencing node"), "{fence_log}");
    wait(Duration::from_secs(5), "the hung daemon killed by its guard", || {
        !Path::new(&format!("/proc/{daemon}/cmdline")).exists() || zombie(daemon)
    });
    // The node comes back (as its service manager would restart it).
    t.cluster.kill(victim);
    t.cluster.start(victim).unwrap();
    t.cluster.wait_settled(Duration::from_secs(30)).unwrap();
    t.wait_running(1, None, Duration::from_secs(5));
    t.observer.check();
}

#[test]
fn a_frozen_node_is_recovered_elsewhere_and_its_stale_instance_is_refused_and_killed_on_thaw() {
    let mut t = setup(3, 2, "");
    let victim = t.home(1);
    let name = t.cluster.nodes[victim].name.clone();
    let frozen = node_processes(&t.cluster, victim);
    let old_token = t.token(1);
    signal_all(&frozen, Signal::SIGSTOP);
    let at = Instant::now();
    let (node, _) = t.wait_running(1, Some(&name), RECOVERY_BOUND);
    println!("frozen {name}: proc:svc1 running on {node} after {:?}", at.elapsed());
    assert!(t.token(1) > old_token);
    // Thaw: for the moment until its guard kills it, the old instance runs
    // beside the new one (no fencing can act inside a frozen node); what
    // it writes then carries its stale token. So the double-run sampler
    // stops here, and the storage's refusal is what protects the data.
    t.observer.check();
    t.observer.stop.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(50));
    t.observer.doubles.lock().unwrap().clear();
    signal_all(&frozen, Signal::SIGCONT);
    let old_instances = |t: &Setup| {
        pids(&format!("{}1 ", t.cluster.spec.marker), true)
            .into_iter()
            .filter(|p| frozen.contains(p))
            .count()
    };
    let killed = wait(
        Duration::from_secs(5),
        "the thawed node's stale instance killed",
        || old_instances(&t) == 0,
    );
    println!("on thaw the stale instance was killed after {killed:?}");
    std::thread::sleep(Duration::from_millis(300));
    let refused = t
        .observer
        .storage
        .lock()
        .unwrap()
        .refused
        .iter()
        .filter(|r| r.2 == old_token)
        .count();
    println!("stale writes refused by the storage: {refused}");
    t.cluster.kill(victim);
    t.observer.check();
}

#[test]
fn a_partitioned_node_fences_itself_the_majority_recovers_and_it_rejoins() {
    let mut t = setup(3, 2, "");
    let victim = t.home(1);
    let name = t.cluster.nodes[victim].name.clone();
    let others: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    t.cluster.partition(victim, &others);
    let at = Instant::now();
    let (node, _) = t.wait_running(1, Some(&name), RECOVERY_BOUND);
    println!(
        "partitioned {name}: proc:svc1 running on {node} after {:?}",
        at.elapsed()
    );
    let fence_log = std::fs::read_to_string(t.cluster.nodes[victim].dir.join("fence.log")).unwrap_or_default();
    assert!(
        fence_log.contains("fencing node"),
        "the minority node fenced itself: {fence_log}"
    );
    // Heal and bring the node back: it rejoins, nothing runs twice.
    t.cluster.partition(victim, &[]);
    t.cluster.kill(victim);
    t.cluster.start(victim).unwrap();
    t.cluster.wait_settled(Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    t.wait_running(1, None, Duration::from_secs(5));
    t.wait_running(0, None, Duration::from_secs(5));
    t.observer.check();
}

#[test]
fn a_rolling_restart_of_every_daemon_moves_and_stops_nothing() {
    let mut t = setup(3, 3, "");
    let pids_before: Vec<Vec<i32>> = (0..3).map(|s| t.cluster.service_pids(s)).collect();
    let homes: Vec<usize> = (0..3).map(|s| t.home(s)).collect();
    for i in 0..3 {
        t.cluster.stop(i, Duration::from_secs(30)).unwrap();
        t.cluster.start(i).unwrap();
        t.cluster.wait_settled(Duration::from_secs(30)).unwrap();
        let any = t.cluster.any_running().unwrap();
        t.cluster
            .wait_view(any, Duration::from_secs(30), |v| {
                v.services.iter().all(|s| s.2 == "started")
            })
            .unwrap();
    }
    let pids_after: Vec<Vec<i32>> = (0..3).map(|s| t.cluster.service_pids(s)).collect();
    assert_eq!(
        pids_after, pids_before,
        "a daemon restart neither stops nor restarts services"
    );
    assert_eq!((0..3).map(|s| t.home(s)).collect::<Vec<_>>(), homes, "nothing moved");
    t.observer.check();
}

#[test]
fn node_shutdown_with_the_migrate_policy_moves_the_services_first() {
    let mut t = setup(3, 2, "shutdown_policy = \"migrate\"\n");
    let victim = t.home(1);
    let name = t.cluster.nodes[victim].name.clone();
    std::fs::write(t.cluster.nodes[victim].dir.join("node-shutdown"), "shutdown").unwrap();
    let at = Instant::now();
    t.cluster.signal(victim, Signal::SIGTERM);
    let (node, _) = t.wait_running(1, Some(&name), RECOVERY_BOUND);
    println!(
        "shutdown of {name} (migrate): proc:svc1 on {node} after {:?}",
        at.elapsed()
    );
    t.cluster.stop(victim, Duration::from_secs(30)).unwrap();
    assert!(t.master_log().contains("proc:svc1"), "migration logged");
    t.observer.check();
}

#[test]
fn node_shutdown_with_the_failover_policy_recovers_the_services_after_it_is_gone() {
    let mut t = setup(3, 2, "shutdown_policy = \"failover\"\n");
    let victim = t.home(1);
    let name = t.cluster.nodes[victim].name.clone();
    std::fs::write(t.cluster.nodes[victim].dir.join("node-shutdown"), "shutdown").unwrap();
    let at = Instant::now();
    t.cluster.stop(victim, Duration::from_secs(30)).unwrap();
    assert!(
        t.cluster.service_pids(1).is_empty(),
        "a shutting down node stops its services"
    );
    let (node, _) = t.wait_running(1, Some(&name), RECOVERY_BOUND);
    println!(
        "shutdown of {name} (failover): proc:svc1 on {node} after {:?}",
        at.elapsed()
    );
    t.observer.check();
}
