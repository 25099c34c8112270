//! The replicated store in one process: several replicas, each with its
//! own QUIC endpoint on loopback, state directory and Raft instance.
//! Leases, leader changes, partitions (transport fault injection),
//! restarts from disk, and the authentication of peers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hactor::core::crm_command::CrmCommand;
use hactor::core::store::{LockName, Op, Reply, StoreError};
use hactor::net::cluster::{RaftStore, StoreTiming, ask};
use hactor::net::peer::{PeerReply, PeerRequest, Refusal};
use hactor::net::tls::{ClusterCa, NodeIdentity};
use hactor::net::transport::Transport;

fn timing() -> StoreTiming {
    StoreTiming::for_round(
        Duration::from_millis(1000),
        Duration::from_millis(100),
        Duration::from_millis(400),
    )
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

struct Replica {
    name: String,
    identity: NodeIdentity,
    dir: PathBuf,
    addr: SocketAddr,
    id: u64,
    store: Option<RaftStore>,
}

struct Cluster {
    _tmp: tempfile::TempDir,
    ca: ClusterCa,
    replicas: Vec<Replica>,
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

impl Cluster {
    async fn start(n: usize) -> Cluster {
        // `TEST_LOG=openraft=info cargo test ...` to see the consensus.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("TEST_LOG"))
            .with_test_writer()
            .try_init();
        let tmp = tempfile::tempdir().unwrap();
        let ca = ClusterCa::generate("test").unwrap();
        let mut replicas = Vec::new();
        for i in 1..=n {
            let name = format!("node{i}");
            let identity = ca.issue(&name).unwrap();
            let dir = tmp.path().join(&name);
            let transport = Transport::bind(loopback(), &identity).unwrap();
            let addr = transport.local_addr().unwrap();
            let id = if i == 1 {
                1
            } else {
                let seed = &replicas[0];
                let seed: &Replica = seed;
                match ask(
                    &transport,
                    &seed.name,
                    seed.addr,
                    PeerRequest::Join {
                        name: name.clone(),
                        addr: addr.to_string(),
                    },
                )
                .await
                .unwrap()
                {
                    PeerReply::Joined(Ok(id)) => id,
                    other => panic!("join refused: {other:?}"),
                }
            };
            let store = RaftStore::start("test", id, &dir, transport, timing()).await.unwrap();
            store.serve();
            if i == 1 {
                store.bootstrap(addr).await.unwrap();
            } else {
                store.spawn_promotion();
            }
            store.spawn_heartbeat();
            replicas.push(Replica {
                name,
                identity,
                dir,
                addr,
                id,
                store: Some(store),
            });
            if i == 1 {
                let s = replicas[0].store.clone().unwrap();
                wait_for("the first leader", Duration::from_secs(10), || {
                    s.view().leader.is_some()
                })
                .await;
            }
        }
        let cluster = Cluster {
            _tmp: tmp,
            ca,
            replicas,
        };
        // Every replica must know every voter (a membership change the
        // leader made but not yet replicated does not count).
        wait_for("every member a voter on every replica", Duration::from_secs(20), || {
            (0..n).all(|i| {
                let view = cluster.store(i).view();
                view.settled && view.members.len() == n && view.members.iter().all(|(_, _, voter)| *voter)
            })
        })
        .await;
        cluster
    }

    fn store(&self, i: usize) -> RaftStore {
        self.replicas[i].store.clone().expect("replica running")
    }

    fn leader(&self) -> Option<usize> {
        let running: Vec<usize> = (0..self.replicas.len())
            .filter(|i| self.replicas[*i].store.is_some())
            .collect();
        let name = self.store(running[0]).view().leader?;
        self.replicas.iter().position(|r| r.name == name && r.store.is_some())
    }

    async fn stop(&mut self, i: usize) {
        if let Some(store) = self.replicas[i].store.take() {
            store.shutdown().await;
        }
    }

    async fn restart(&mut self, i: usize) {
        let r = &self.replicas[i];
        // The old endpoint's socket goes once its last handle drops.
        let start = Instant::now();
        let transport = loop {
            match Transport::bind(r.addr, &r.identity) {
                Ok(t) => break t,
                Err(_) if start.elapsed() < Duration::from_secs(5) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("rebinding {}: {e}", r.addr),
            }
        };
        let store = RaftStore::start("test", r.id, &r.dir, transport, timing())
            .await
            .unwrap();
        store.serve();
        store.spawn_heartbeat();
        self.replicas[i].store = Some(store);
    }

    /// Cuts replica `i` off from every other replica (both directions).
    fn isolate(&self, i: usize, on: bool) {
        for (j, other) in self.replicas.iter().enumerate() {
            if j == i {
                continue;
            }
            let me = self.store(i);
            if on {
                me.transport().block(&other.name);
            } else {
                me.transport().unblock(&other.name);
            }
            if let Some(store) = &other.store {
                if on {
                    store.transport().block(&self.replicas[i].name);
                } else {
                    store.transport().unblock(&self.replicas[i].name);
                }
            }
        }
    }
}

fn acquire(lock: &str, holder: &str, now_ms: u64, lease_ms: u64) -> Op {
    Op::Acquire {
        lock: lock.parse().expect("a lock name"),
        holder: holder.into(),
        now_ms,
        lease_ms,
    }
}

/// A queued command told apart by `n`.
fn command(n: usize) -> CrmCommand {
    CrmCommand::Stop {
        sid: format!("vm:{n}"),
        timeout: 0,
    }
}

#[actix_rt::test]
async fn writes_on_any_member_are_applied_everywhere_in_order() {
    let cluster = Cluster::start(3).await;
    for i in 0..3 {
        let replies = cluster
            .store(i)
            .apply(vec![Op::QueueCrmCommand(command(i))])
            .await
            .unwrap();
        assert_eq!(replies, vec![Reply::Done]);
    }
    wait_for("all replicas to apply", Duration::from_secs(5), || {
        (0..3).all(|i| cluster.store(i).snapshot().crm_commands.len() == 3)
    })
    .await;
    let orders: Vec<_> = (0..3).map(|i| cluster.store(i).snapshot().crm_commands).collect();
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[1], orders[2]);
    // Every member sees the others online through their heartbeats.
    wait_for("members online", Duration::from_secs(5), || {
        cluster.store(2).members().values().all(|online| *online)
    })
    .await;
}

#[actix_rt::test]
async fn a_lease_is_exclusive_until_it_expires_even_across_a_leader_change() {
    let mut cluster = Cluster::start(3).await;
    let t0 = 1_000_000;
    let lock = "ha_agent_node3_lock";
    let follower = (0..3).find(|i| Some(*i) != cluster.leader()).unwrap();
    let granted = cluster
        .store(follower)
        .apply(vec![acquire(lock, "node3", t0, 6000)])
        .await
        .unwrap();
    assert_eq!(granted, vec![Reply::Granted { expires_ms: t0 + 6000 }]);
    // The leader goes away; the new one must honour the lease as is.
    let old = cluster.leader().unwrap();
    cluster.stop(old).await;
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let elected = wait_for("a new leader", Duration::from_secs(10), || {
        let view = cluster.store(others[0]).view();
        view.leader.is_some() && view.leader.as_deref() != Some(cluster.replicas[old].name.as_str())
    })
    .await;
    println!("new leader elected {elected:?} after the old one stopped");
    let taker = cluster.store(others[0]);
    let refused = loop {
        match taker.apply(vec![acquire(lock, "node1", t0 + 5999, 6000)]).await {
            Ok(replies) => break replies,
            Err(StoreError::NoQuorum) => continue, // the election is still settling
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        refused,
        vec![Reply::Held {
            holder: "node3".into(),
            expires_ms: t0 + 6000
        }],
        "not before expiry"
    );
    let taken = taker
        .apply(vec![acquire(lock, "node1", t0 + 6001, 6000)])
        .await
        .unwrap();
    assert_eq!(
        taken,
        vec![Reply::Granted {
            expires_ms: t0 + 12_001
        }],
        "taken over once expired"
    );
}

#[actix_rt::test]
async fn an_isolated_member_loses_quorum_within_a_round_and_the_majority_goes_on() {
    let cluster = Cluster::start(3).await;
    let victim = cluster.leader().unwrap(); // the hardest case: the leader itself
    cluster.isolate(victim, true);
    let noticed = wait_for("the isolated member to lose quorum", Duration::from_secs(5), || {
        !cluster.store(victim).quorate()
    })
    .await;
    println!("isolated member noticed quorum loss after {noticed:?}");
    assert!(
        noticed <= Duration::from_millis(1500),
        "quorum loss noticed in {noticed:?}"
    );
    assert_eq!(
        cluster
            .store(victim)
            .apply(vec![Op::QueueCrmCommand(command(1000))])
            .await,
        Err(StoreError::NoQuorum)
    );
    let others: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let victim_name = cluster.replicas[victim].name.clone();
    let new_leader = |c: &Cluster| c.store(others[0]).view().leader.is_some_and(|l| l != victim_name);
    wait_for("the majority to elect a leader", Duration::from_secs(10), || {
        new_leader(&cluster)
    })
    .await;
    let start = Instant::now();
    let mut committed = None;
    while committed.is_none() && start.elapsed() < Duration::from_secs(5) {
        committed = cluster
            .store(others[1])
            .apply(vec![Op::QueueCrmCommand(command(2000))])
            .await
            .ok();
    }
    assert!(committed.is_some(), "the majority keeps committing");
    wait_for(
        "the majority to see the isolated member offline",
        Duration::from_secs(5),
        || !cluster.store(others[0]).members()[&cluster.replicas[victim].name],
    )
    .await;
    // Healing: the member catches up and is quorate again.
    cluster.isolate(victim, false);
    wait_for("the healed member to be quorate", Duration::from_secs(10), || {
        cluster.store(victim).quorate()
    })
    .await;
    wait_for("the healed member to catch up", Duration::from_secs(10), || {
        cluster.store(victim).snapshot().crm_commands.contains(&command(2000))
    })
    .await;
    assert!(
        !cluster.store(victim).snapshot().crm_commands.contains(&command(1000)),
        "the refused write never applied"
    );
}

#[actix_rt::test]
async fn every_member_restarting_loses_nothing() {
    let mut cluster = Cluster::start(3).await;
    let ops: Vec<Op> = (0..50).map(|i| Op::QueueCrmCommand(command(i))).collect();
    cluster.store(1).apply(ops).await.unwrap();
    cluster
        .store(2)
        .apply(vec![acquire("ha_manager_lock", "node2", 5, 6000)])
        .await
        .unwrap();
    let before = cluster.store(0).snapshot();
    wait_for("replication", Duration::from_secs(5), || {
        (0..3).all(|i| cluster.store(i).snapshot().crm_commands.len() == 50)
    })
    .await;
    for i in 0..3 {
        cluster.stop(i).await;
    }
    for i in 0..3 {
        cluster.restart(i).await;
    }
    wait_for("a leader after the restart", Duration::from_secs(10), || {
        cluster.store(0).view().leader.is_some()
    })
    .await;
    wait_for("every replica to re-apply its log", Duration::from_secs(10), || {
        (0..3).all(|i| {
            let s = cluster.store(i).snapshot();
            s.crm_commands == before.crm_commands && s.leases.contains_key(&LockName::Manager)
        })
    })
    .await;
    // The restored leader reaches the restarted followers only after its
    // replication's first retries: wait for a committed heartbeat before
    // a write that must not be retried.
    wait_for("a commit after the restart", Duration::from_secs(10), || {
        cluster.store(0).quorate()
    })
    .await;
    let after = cluster.store(0).apply(vec![Op::TakeCrmCommands]).await.unwrap();
    assert!(matches!(&after[0], Reply::Commands(c) if c.len() == 50));
}

#[actix_rt::test]
async fn joins_are_checked_and_foreign_certificates_refused() {
    let cluster = Cluster::start(1).await;
    let seed = &cluster.replicas[0];
    // A duplicate name.
    let twin = Transport::bind(loopback(), &cluster.ca.issue("node1").unwrap()).unwrap();
    let reply = ask(
        &twin,
        "node1",
        seed.addr,
        PeerRequest::Join {
            name: "node1".into(),
            addr: "127.0.0.1:1".into(),
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(reply, PeerReply::Joined(Err(Refusal::Failed(ref e))) if e.contains("already a cluster member")),
        "{reply:?}"
    );
    // A node claiming another's name.
    let liar = Transport::bind(loopback(), &cluster.ca.issue("node7").unwrap()).unwrap();
    let reply = ask(
        &liar,
        "node1",
        seed.addr,
        PeerRequest::Join {
            name: "node8".into(),
            addr: "127.0.0.1:1".into(),
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(reply, PeerReply::Joined(Err(Refusal::Failed(ref e))) if e.contains("certificate names 'node7'")),
        "{reply:?}"
    );
    // A certificate from another cluster's CA never gets an answer.
    let foreign = ClusterCa::generate("other").unwrap().issue("node9").unwrap();
    let stranger = Transport::bind(loopback(), &foreign).unwrap();
    let reply = ask(&stranger, "node1", seed.addr, PeerRequest::Status).await;
    assert!(reply.is_err(), "a foreign certificate was answered: {reply:?}");
}

#[actix_rt::test]
async fn malformed_frames_are_answered_with_an_error_and_the_member_keeps_serving() {
    use hactor::net::codec;
    use hactor::net::quic::RemoteError;
    let cluster = Cluster::start(1).await;
    let seed = &cluster.replicas[0];
    let client = Transport::bind(loopback(), &cluster.ca.issue("node2").unwrap()).unwrap();
    let mut bad_version = codec::encode(&"x").unwrap();
    bad_version[5] = 99;
    for garbage in [vec![0u8; 3], vec![0, 0, 0, 9, 0, 1, 1, 2, 3, 4, 5, 6, 7], bad_version] {
        let answer = client.call_raw("node1", seed.addr, &garbage).await.unwrap();
        let reply: Result<PeerReply, RemoteError> = codec::decode(&answer).unwrap();
        assert!(matches!(reply, Err(RemoteError::Malformed(_))), "{reply:?}");
    }
    // An oversized frame: the stream is closed, not the node.
    let huge = vec![7u8; codec::MAX_FRAME_BYTES + 64];
    assert!(client.call_raw("node1", seed.addr, &huge).await.is_err());
    let reply = ask(&client, "node1", seed.addr, PeerRequest::Status).await.unwrap();
    assert!(matches!(reply, PeerReply::Status(_)), "still serving: {reply:?}");
}

#[actix_rt::test]
async fn lease_renewal_commit_latency() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().unwrap();
    let follower = (0..3).find(|i| *i != leader).unwrap();
    for (who, i) in [("leader", leader), ("follower", follower)] {
        let store = cluster.store(i);
        let mut samples = Vec::new();
        for n in 0..100u64 {
            let started = Instant::now();
            let replies = store
                .apply(vec![acquire("ha_agent_x_lock", "x", 1_000 + n, 6000)])
                .await
                .unwrap();
            samples.push(started.elapsed());
            assert!(matches!(replies[0], Reply::Granted { .. }));
        }
        samples.sort();
        println!(
            "lease renewal committed from the {who}: median {:?}, p99 {:?} (3 replicas, loopback, fsync)",
            samples[50], samples[98]
        );
    }
}

#[actix_rt::test]
async fn concurrent_compare_and_swap_edits_on_different_members_lose_no_update() {
    use hactor::core::status::ResourceConfig;
    use hactor::core::types::RequestState;
    let cluster = Cluster::start(3).await;
    let resource = || ResourceConfig::new("node1", RequestState::Started);
    // Four editors per member, each adding its own resource with a
    // read-digest-then-CAS loop, as ha-manager does.
    let mut editors = Vec::new();
    for member in 0..3 {
        for k in 0..4 {
            let store = cluster.store(member);
            let sid = format!("vm:{}", 100 + member * 10 + k);
            let resource = resource();
            editors.push(actix_rt::spawn(async move {
                let mut conflicts = 0;
                loop {
                    let digest = store.snapshot().config_digest();
                    let op = Op::Cas {
                        digest,
                        ops: vec![Op::PutResource {
                            sid: sid.clone(),
                            resource: resource.clone(),
                        }],
                    };
                    match store.apply(vec![op]).await {
                        Ok(replies) if matches!(replies[0], Reply::Batch(_)) => return conflicts,
                        Ok(replies) if matches!(replies[0], Reply::DigestMismatch { .. }) => conflicts += 1,
                        Ok(other) => panic!("unexpected {other:?}"),
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                    // Let the replica catch up with the write that won.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }));
        }
    }
    let mut conflicts = 0;
    for editor in editors {
        conflicts += editor.await.unwrap();
    }
    wait_for("every edit on every replica", Duration::from_secs(10), || {
        (0..3).all(|i| cluster.store(i).snapshot().resources.len() == 12)
    })
    .await;
    println!("12 concurrent CAS edits on 3 members: {conflicts} digest conflicts retried, no update lost");
    assert!(conflicts > 0, "the edits did race");
}
