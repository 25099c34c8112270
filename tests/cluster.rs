//! Multi-process clusters on loopback: real `hactor` daemons, real QUIC
//! with mutual TLS, the replicated store, process fencing. Leader loss,
//! minority partitions, whole-cluster restarts and the lifecycle commands'
//! refusals.

mod multinode;

use std::time::{Duration, Instant};

use multinode::{Cluster, wait_for};

fn leader_index(cluster: &Cluster, asking: usize) -> usize {
    let view = cluster.view(asking).expect("a running member answers");
    let name = view.leader.expect("a leader");
    cluster.nodes.iter().position(|n| n.name == name).unwrap()
}

fn started_on(cluster: &Cluster, asking: usize, sid: &str) -> Option<String> {
    cluster
        .placement(asking)
        .into_iter()
        .find(|(s, _, state)| s == sid && state == "started")
        .map(|(_, node, _)| node)
}

#[test]
fn three_nodes_fail_over_the_leader_node_and_refuse_joins_without_quorum() {
    let mut cluster = Cluster::form_of(4, 3, 1);
    // A join bundle made while all members run names them all as seeds.
    let bundle = cluster.dir().join("bundle-node4.json");
    cluster.ok(0, &["cluster", "add-node", "node4", "--out", bundle.to_str().unwrap()]);
    wait_for("svc0 running", Duration::from_secs(20), || {
        cluster.service_pids(0).len() == 1
    });
    let first = started_on(&cluster, 0, "proc:svc0").expect("svc0 placed");
    let victim = cluster.nodes.iter().position(|n| n.name == first).unwrap();
    assert_eq!(leader_index(&cluster, 1), 0, "node1 bootstrapped and leads");

    let killed = Instant::now();
    cluster.kill(victim);
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let elected = cluster.wait_view(survivors[0], "a new leader", Duration::from_secs(10), |v| {
        v.leader.as_deref().is_some_and(|l| l != first) && v.quorate
    });
    // Never two instances: sample until the service runs elsewhere.
    let mut moved = None;
    while killed.elapsed() < Duration::from_secs(30) {
        let pids = cluster.service_pids(0);
        assert!(pids.len() <= 1, "two instances of svc0 at once: {pids:?}");
        if let Some(node) = started_on(&cluster, survivors[0], "proc:svc0")
            && node != first
            && pids.len() == 1
        {
            moved = Some((node, killed.elapsed()));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (node, failover) = moved.expect("svc0 recovered on a surviving node");
    let fence_log = std::fs::read_to_string(cluster.nodes[victim].dir.join("fence.log")).unwrap_or_default();
    assert!(
        fence_log.contains("fencing node"),
        "the dead node's guard fenced it: {fence_log}"
    );
    println!(
        "leader kill: new leader after {elapsed:?}; svc0 running on {node} {failover:?} after the kill",
        elapsed = elected
    );

    // Down to one of three: no quorum, and no node may join.
    let last = survivors[1];
    cluster.kill(survivors[0]);
    let noticed = cluster.wait_view(last, "quorum loss", Duration::from_secs(5), |v| !v.quorate);
    println!("last member noticed quorum loss after {noticed:?}");
    let out = cluster.hactor(3, &["cluster", "join", "--bundle", bundle.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "joining a cluster without quorum must fail");
    assert!(
        err.contains("could not join cluster 'test'") && err.contains("quorum"),
        "{err}"
    );
    assert!(
        !cluster.nodes[3].dir.join("cluster/cluster.json").exists(),
        "a refused join leaves nothing behind"
    );
}

#[test]
fn five_nodes_a_minority_partition_loses_quorum_and_heals() {
    let mut cluster = Cluster::form(5, 0);
    // node4 and node5 on one side, node1-3 on the other.
    cluster.partition(3, &[0, 1, 2]);
    cluster.partition(4, &[0, 1, 2]);
    let lost = cluster.wait_view(3, "the minority to lose quorum", Duration::from_secs(5), |v| !v.quorate);
    cluster.wait_view(4, "the minority to lose quorum", Duration::from_secs(5), |v| !v.quorate);
    for i in 0..3 {
        cluster.wait_view(i, "the majority to stay quorate", Duration::from_secs(5), |v| {
            v.quorate
                && v.leader
                    .as_deref()
                    .is_some_and(|l| ["node1", "node2", "node3"].contains(&l))
        });
    }
    println!("5 nodes: the minority noticed quorum loss after {lost:?}");
    cluster.partition(3, &[]);
    cluster.partition(4, &[]);
    for i in 0..5 {
        cluster.wait_view(i, "everybody quorate after healing", Duration::from_secs(10), |v| {
            v.quorate
        });
    }
    // Leader kill in a five-node cluster.
    let leader = leader_index(&cluster, 0);
    cluster.kill(leader);
    let other = (0..5).find(|i| *i != leader).unwrap();
    let old = cluster.nodes[leader].name.clone();
    let elected = cluster.wait_view(other, "a new leader", Duration::from_secs(10), |v| {
        v.quorate && v.leader.as_deref().is_some_and(|l| l != old)
    });
    println!("5 nodes: new leader {elected:?} after the leader was killed");
    // The dead member is removed explicitly; the other four go on.
    cluster.ok(other, &["cluster", "remove-node", &old]);
    cluster.wait_view(other, "four members", Duration::from_secs(10), |v| {
        v.quorate && v.members.len() == 4 && v.members.iter().all(|m| m.0 != old)
    });
}

#[test]
fn restarting_every_daemon_keeps_the_store_and_the_services() {
    let mut cluster = Cluster::form(3, 2);
    wait_for("both services running", Duration::from_secs(20), || {
        cluster.service_pids(0).len() == 1 && cluster.service_pids(1).len() == 1
    });
    let before = cluster.view(0).unwrap();
    let pids = (cluster.service_pids(0), cluster.service_pids(1));
    // The node running the services first, while the others keep quorum
    // for it to freeze them; then the rest at once. (All at once, the
    // service node would lose quorum while freezing and fence itself,
    // as it must.)
    let home = started_on(&cluster, 0, "proc:svc0").unwrap();
    let home = cluster.nodes.iter().position(|n| n.name == home).unwrap();
    cluster.stop(home);
    let rest: Vec<usize> = (0..3).filter(|i| *i != home).collect();
    for i in &rest {
        cluster.signal(*i, nix::sys::signal::Signal::SIGTERM);
    }
    for i in rest {
        cluster.stop(i);
    }
    assert_eq!(
        (cluster.service_pids(0), cluster.service_pids(1)),
        pids,
        "a daemon restart keeps services running"
    );
    for i in 0..3 {
        cluster.start(i);
    }
    for i in 0..3 {
        cluster.wait_view(i, "quorum after the restart", Duration::from_secs(20), |v| v.quorate);
    }
    let after = cluster.view(0).unwrap();
    assert!(
        after.last_applied >= before.last_applied,
        "{:?} < {:?}",
        after.last_applied,
        before.last_applied
    );
    let sids = |v: &hactor::net::peer::ClusterView| v.services.iter().map(|s| s.0.clone()).collect::<Vec<_>>();
    assert_eq!(sids(&after), sids(&before));
    assert_eq!(after.members, before.members);
    wait_for("services active again", Duration::from_secs(20), || {
        let placement = cluster.placement(0);
        placement.len() == 2 && placement.iter().all(|(_, _, state)| state == "started")
    });
    assert_eq!(
        (cluster.service_pids(0), cluster.service_pids(1)),
        pids,
        "the restarted daemons adopted them"
    );
}

#[test]
fn lifecycle_commands_refuse_what_would_break_the_cluster() {
    let mut cluster = Cluster::form_of(2, 1, 0);
    // Initialising twice.
    let out = cluster.hactor(0, &["cluster", "init"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already a member of cluster 'test'"));
    // A bundle for another node.
    let bundle = cluster.dir().join("b.json");
    cluster.ok(0, &["cluster", "add-node", "node3", "--out", bundle.to_str().unwrap()]);
    let out = cluster.hactor(1, &["cluster", "join", "--bundle", bundle.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("issued for node 'node3', this node is 'node2'"));
    // A bundle from another cluster's CA, pointed at this cluster.
    let other = Cluster::configure(2, 0);
    other.ok(0, &["cluster", "init", "--name", "other"]);
    let foreign = other.dir().join("foreign.json");
    other.ok(0, &["cluster", "add-node", "node2", "--out", foreign.to_str().unwrap()]);
    let mut text: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&foreign).unwrap()).unwrap();
    text["seeds"] = serde_json::json!({ "node1": format!("127.0.0.1:{}", cluster.nodes[0].port) });
    std::fs::write(&foreign, text.to_string()).unwrap();
    let out = cluster.hactor(1, &["cluster", "join", "--bundle", foreign.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("could not join"), "{err}");
    assert!(
        err.contains("certificate") || err.contains("timed out") || err.contains("cannot reach"),
        "{err}"
    );
    // The right bundle works, then the node can be removed again.
    let good = cluster.dir().join("good.json");
    cluster.ok(0, &["cluster", "add-node", "node2", "--out", good.to_str().unwrap()]);
    cluster.ok(1, &["cluster", "join", "--bundle", good.to_str().unwrap()]);
    cluster.start(1);
    cluster.wait_view(0, "node2 a voter", Duration::from_secs(20), |v| {
        v.members.len() == 2 && v.members.iter().all(|m| m.2)
    });
    cluster.kill(1);
    let out = cluster.hactor(0, &["cluster", "remove-node", "node1"]);
    assert!(
        !out.status.success(),
        "removing a member that leaves no quorum must not hang or succeed silently"
    );
    cluster.start(1);
    cluster.wait_view(0, "quorum with node2 back", Duration::from_secs(45), |v| v.quorate);
    cluster.kill(1);
    std::thread::sleep(Duration::from_millis(200));
    let _ = other;
}
