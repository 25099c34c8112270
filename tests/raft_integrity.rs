//! Integrity of the replicated store: replicas never diverge across
//! faults (restarts, a leader kill, a member that lost its Raft state and
//! was admitted again), a member with a damaged log refuses to start, and
//! the daemon-level recovery (`hactor cluster reset-local`) and fail-stop
//! on real daemons.

mod multinode;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hactor::core::store::Op;
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

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Replica {
    name: String,
    identity: NodeIdentity,
    dir: PathBuf,
    addr: SocketAddr,
    id: u64,
    store: Option<RaftStore>,
}

/// Replicas in one process, each with its own QUIC endpoint and state
/// directory; no heartbeats, so the log is quiet once the test stops
/// writing.
struct Replicas {
    tmp: tempfile::TempDir,
    replicas: Vec<Replica>,
}

async fn bind(addr: SocketAddr, identity: &NodeIdentity) -> Transport {
    let start = Instant::now();
    loop {
        match Transport::bind(addr, identity) {
            Ok(t) => return t,
            Err(_) if start.elapsed() < Duration::from_secs(5) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("binding {addr}: {e}"),
        }
    }
}

impl Replicas {
    async fn start(n: usize) -> Replicas {
        let tmp = tempfile::tempdir().unwrap();
        let ca = ClusterCa::generate("test").unwrap();
        let mut replicas: Vec<Replica> = Vec::new();
        for i in 1..=n {
            let name = format!("node{i}");
            let identity = ca.issue(&name).unwrap();
            let dir = tmp.path().join(&name);
            let transport = Transport::bind("127.0.0.1:0".parse().unwrap(), &identity).unwrap();
            let addr = transport.local_addr().unwrap();
            let id = if i == 1 {
                1
            } else {
                join(&transport, &name, addr, &replicas[0]).await
            };
            let store = RaftStore::start("test", id, &dir, transport, timing()).await.unwrap();
            store.serve();
            if i == 1 {
                store.bootstrap(addr).await.unwrap();
                let s = store.clone();
                wait_for("the first leader", Duration::from_secs(10), || {
                    s.view().leader.is_some()
                })
                .await;
            } else {
                store.spawn_promotion();
            }
            replicas.push(Replica {
                name,
                identity,
                dir,
                addr,
                id,
                store: Some(store),
            });
        }
        let cluster = Replicas { tmp, replicas };
        cluster.wait_voters(n).await;
        cluster
    }

    async fn wait_voters(&self, n: usize) {
        wait_for("every member a voter on every replica", Duration::from_secs(30), || {
            self.running().iter().all(|i| {
                let view = self.store(*i).view();
                view.settled && view.members.len() == n && view.members.iter().all(|(_, _, voter)| *voter)
            })
        })
        .await;
    }

    fn running(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|i| self.replicas[*i].store.is_some())
            .collect()
    }

    fn store(&self, i: usize) -> RaftStore {
        self.replicas[i].store.clone().expect("replica running")
    }

    fn leader(&self) -> Option<usize> {
        let name = self.store(self.running()[0]).view().leader?;
        self.replicas.iter().position(|r| r.name == name && r.store.is_some())
    }

    async fn stop(&mut self, i: usize) {
        if let Some(store) = self.replicas[i].store.take() {
            store.shutdown().await;
        }
    }

    async fn restart(&mut self, i: usize) -> Result<(), String> {
        let r = &self.replicas[i];
        let transport = bind(r.addr, &r.identity).await;
        let store = RaftStore::start("test", r.id, &r.dir, transport, timing()).await?;
        store.serve();
        store.spawn_promotion();
        self.replicas[i].store = Some(store);
        Ok(())
    }

    /// Writes `n` operations, a few at a time, through replica `via`.
    async fn write(&self, via: usize, tag: &str, n: usize) {
        let store = self.store(via);
        let mut tasks = tokio::task::JoinSet::new();
        for k in 0..n {
            let store = store.clone();
            let op = Op::QueueCrmCommand(hactor::core::crm_command::CrmCommand::EnableNodeMaintenance {
                node: format!("{tag}-{k}"),
            });
            tasks.spawn(async move {
                for _ in 0..50 {
                    if store.apply(vec![op.clone()]).await.is_ok() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                panic!("write never committed");
            });
            if tasks.len() >= 16 {
                tasks.join_next().await.unwrap().unwrap();
            }
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    }

    /// Waits until every running replica applied the same log index and
    /// asserts they all hold the same state there.
    async fn assert_converged(&self) -> (u64, String) {
        let running = self.running();
        let mut last = Vec::new();
        wait_for(
            "every replica at the same applied index",
            Duration::from_secs(30),
            || {
                last = running.iter().map(|i| self.store(*i).applied_digest()).collect();
                last.iter().all(|(index, _)| index.is_some() && *index == last[0].0)
            },
        )
        .await;
        for (i, (index, digest)) in running.iter().zip(&last) {
            assert_eq!(
                digest, &last[0].1,
                "{} diverged at index {index:?}",
                self.replicas[*i].name
            );
        }
        (last[0].0.unwrap(), last[0].1.clone())
    }
}

async fn join(transport: &Transport, name: &str, addr: SocketAddr, seed: &Replica) -> u64 {
    let (mut peer, mut peer_addr) = (seed.name.clone(), seed.addr);
    for _ in 0..50 {
        let request = PeerRequest::Join {
            name: name.to_string(),
            addr: addr.to_string(),
        };
        match ask(transport, &peer, peer_addr, request).await {
            Ok(PeerReply::Joined(Ok(id))) => return id,
            Ok(PeerReply::Joined(Err(Refusal::NotLeader(Some(hint))))) => {
                peer = hint.name;
                peer_addr = hint.addr.parse().unwrap();
            }
            other => {
                eprintln!("join not yet admitted: {other:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    panic!("{name} was never admitted");
}

/// Flips 8 bytes in the middle of a file (same length).
fn damage(path: &std::path::Path) -> usize {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() / 2;
    for b in &mut bytes[at..at + 8] {
        *b ^= 0xa5;
    }
    std::fs::write(path, &bytes).unwrap();
    bytes.len()
}

#[actix_rt::test]
async fn replicas_never_diverge_across_restarts_a_leader_kill_and_a_rebuilt_member() {
    let mut cluster = Replicas::start(3).await;
    cluster.write(1, "a", 60).await;
    let (first, _) = cluster.assert_converged().await;

    // A follower restarts from its own disk.
    let follower = (0..3).find(|i| Some(*i) != cluster.leader()).unwrap();
    cluster.stop(follower).await;
    cluster.write(cluster.running()[0], "b", 40).await;
    cluster.restart(follower).await.unwrap();
    cluster.assert_converged().await;

    // The leader is killed; the others elect a new one and go on.
    let leader = cluster.leader().expect("a leader");
    cluster.stop(leader).await;
    let survivor = cluster.running()[0];
    wait_for("a new leader", Duration::from_secs(10), || {
        cluster.leader().is_some_and(|l| l != leader)
    })
    .await;
    cluster.write(survivor, "c", 40).await;
    cluster.restart(leader).await.unwrap();
    let (index, _) = cluster.assert_converged().await;
    assert!(index > first);

    // A member whose log was damaged refuses to start, naming the file,
    // the byte offset and the recovery; the file is left as it was.
    let victim = (0..3).find(|i| Some(*i) != cluster.leader()).unwrap();
    cluster.stop(victim).await;
    let log = cluster.replicas[victim].dir.join("raft/log");
    let len = damage(&log);
    let err = cluster.restart(victim).await.expect_err("a damaged log is refused");
    assert!(err.contains(&log.display().to_string()), "{err}");
    assert!(
        err.contains("corrupt record at byte offset") && err.contains("cluster reset-local"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&log).unwrap().len() as usize, len, "never truncated");

    // What reset-local does: the cluster removes the member and admits it
    // again under a new id with an empty Raft state. Enough writes first
    // that the leader has purged its log into a snapshot, so the member
    // catches up by snapshot installation and then by log.
    let via = cluster.running()[0];
    cluster.write(via, "d", 1100).await;
    let r = &cluster.replicas[victim];
    let transport = bind(r.addr, &r.identity).await;
    match ask(
        &transport,
        &cluster.replicas[via].name,
        cluster.replicas[via].addr,
        PeerRequest::Remove { name: r.name.clone() },
    )
    .await
    {
        Ok(PeerReply::Done(Ok(()))) => {}
        other => panic!("removal refused: {other:?}"),
    }
    let seed = &cluster.replicas[via];
    let id = join(&transport, &r.name, r.addr, seed).await;
    assert_ne!(id, r.id, "a new Raft id");
    let dir = cluster.tmp.path().join(format!("{}-rebuilt", r.name));
    let store = RaftStore::start("test", id, &dir, transport, timing()).await.unwrap();
    store.serve();
    store.spawn_promotion();
    cluster.replicas[victim].store = Some(store);
    cluster.replicas[victim].id = id;
    cluster.replicas[victim].dir = dir;
    cluster.wait_voters(3).await;
    cluster.write(victim, "e", 20).await;
    let (index, digest) = cluster.assert_converged().await;
    let state = cluster.store(victim).snapshot();
    assert_eq!(
        state.crm_commands.len(),
        60 + 40 + 40 + 1100 + 20,
        "nothing lost, nothing doubled"
    );
    println!("3 replicas converged at index {index}, state digest {digest}");
    for i in 0..3 {
        cluster.stop(i).await;
    }
}

mod daemons {
    use super::multinode::{Cluster, wait_for};
    use std::time::Duration;

    fn config_json(cluster: &Cluster, i: usize) -> serde_json::Value {
        let out = cluster
            .ha_manager(i)
            .args(["config", "--output-format", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Waits for the daemon of node `i` to exit by itself; its exit code.
    fn exit_code(cluster: &mut Cluster, i: usize, within: Duration) -> Option<i32> {
        let child = cluster.nodes[i].child.as_mut().unwrap();
        let mut status = None;
        wait_for("the daemon to exit", within, || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        cluster.nodes[i].child = None;
        status.unwrap().code()
    }

    fn set_comment(cluster: &Cluster, i: usize, comment: &str) {
        let out = cluster
            .ha_manager(i)
            .args(["set", "proc:svc0", "--comment", comment])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// Starts node `i` after a reset and waits until it is a voter again
    /// and serves the cluster's configuration `expected`.
    fn rejoin(cluster: &mut Cluster, i: usize, expected: &serde_json::Value) {
        cluster.start(i);
        for j in [0, i] {
            cluster.wait_view(j, "the member a voter again", Duration::from_secs(30), |v| {
                v.settled && v.members.len() == 3 && v.members.iter().all(|m| m.2)
            });
        }
        wait_for(
            "the member to serve the cluster's configuration",
            Duration::from_secs(20),
            || &config_json(cluster, i) == expected,
        );
    }

    #[test]
    fn a_member_with_damaged_raft_state_refuses_to_start_and_reset_local_rebuilds_it() {
        let mut cluster = Cluster::form(3, 1);
        set_comment(&cluster, 0, "before the damage");
        wait_for("the comment on node3", Duration::from_secs(10), || {
            config_json(&cluster, 2).to_string().contains("before the damage")
        });
        cluster.stop(2);
        let config = cluster.nodes[2].config.display().to_string();

        // 8 bytes flipped in the middle of the log: refused, not truncated.
        let log = cluster.nodes[2].dir.join("raft/log");
        let len = super::damage(&log);
        cluster.start(2);
        assert_eq!(exit_code(&mut cluster, 2, Duration::from_secs(20)), Some(1));
        let text = std::fs::read_to_string(cluster.log(2)).unwrap();
        assert!(
            text.contains(&format!("{}: corrupt record at byte offset", log.display())),
            "{text}"
        );
        assert!(
            text.contains(&format!("hactor --config {config} cluster reset-local")),
            "{text}"
        );
        assert_eq!(std::fs::metadata(&log).unwrap().len() as usize, len);

        // While node3 is down the cluster changes; reset-local does not
        // (it finds the other members in what is intact of its log).
        set_comment(&cluster, 1, "while node3 was down");
        let before = config_json(&cluster, 0);
        let out = cluster.ok(2, &["cluster", "reset-local"]);
        assert!(out.contains("rejoined cluster 'test' as a learner"), "{out}");
        assert_eq!(config_json(&cluster, 0), before, "the cluster's data is unchanged");
        rejoin(&mut cluster, 2, &before);
        assert!(before.to_string().contains("while node3 was down"));
        // And it takes part: an edit through it shows everywhere.
        set_comment(&cluster, 2, "after the reset");
        wait_for("the edit on node1", Duration::from_secs(10), || {
            config_json(&cluster, 0).to_string().contains("after the reset")
        });
        // Running it while the daemon runs is refused.
        let out = cluster.hactor(2, &["cluster", "reset-local"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("still running"));

        // The whole Raft directory lost: refused too (never an empty voter).
        cluster.stop(2);
        for entry in std::fs::read_dir(&cluster.nodes[2].dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().starts_with("raft") {
                std::fs::remove_dir_all(path).unwrap();
            }
        }
        cluster.start(2);
        assert_eq!(exit_code(&mut cluster, 2, Duration::from_secs(20)), Some(1));
        let text = std::fs::read_to_string(cluster.log(2)).unwrap();
        assert!(
            text.contains("its Raft state was lost") && text.contains("cluster reset-local"),
            "{text}"
        );
        // Nothing local names the other members now: refused, unchanged.
        let out = cluster.hactor(2, &["cluster", "reset-local"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("--peer NAME=ADDRESS"), "{err}");
        let peer = format!("node1=127.0.0.1:{}", cluster.nodes[0].port);
        cluster.ok(2, &["cluster", "reset-local", "--peer", &peer]);
        let before = config_json(&cluster, 0);
        rejoin(&mut cluster, 2, &before);
    }

    #[test]
    fn a_daemon_whose_raft_directory_is_deleted_fails_stop() {
        let mut cluster = Cluster::form(3, 0);
        let raft = cluster.nodes[1].dir.join("raft");
        std::fs::remove_dir_all(&raft).unwrap();
        let code = exit_code(&mut cluster, 1, Duration::from_secs(15));
        assert_eq!(code, Some(70), "exits with the fail-stop code");
        let text = std::fs::read_to_string(cluster.log(1)).unwrap();
        assert!(text.contains("the Raft core stopped"), "{text}");
        // Without disarming: its watchdog (here the fence guard) fenced it.
        let fence_log = cluster.nodes[1].dir.join("fence.log");
        wait_for("the fence guard to fence node2", Duration::from_secs(10), || {
            std::fs::read_to_string(&fence_log).is_ok_and(|t| t.contains("fencing node"))
        });
        // The others go on without it.
        cluster.wait_view(0, "quorum without node2", Duration::from_secs(10), |v| v.quorate);
    }
}
