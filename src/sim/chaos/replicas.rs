//! The harness's Raft mode: every node's store is the daemon's own
//! replicated store ([`RaftStore`]: openraft, the log and the state
//! machine on files, the heartbeat and the election guard), its members
//! talking over one seeded in-process [`MemoryNet`] instead of QUIC.
//!
//! The files of a run live in a directory of their own (on `/dev/shm`
//! where there is one: the log's fsyncs cost nothing there), removed when
//! the run ends. A crash closes the member's endpoint at once (nothing
//! it sends any more arrives) and shuts its core down in the background;
//! the next incarnation waits for that before it opens the same files,
//! as a rebooted machine finds its disk.
//!
//! Seeded: openraft's election timeout and the guard's retry delays are
//! drawn from the virtual clock and the member id
//! ([`RaftRuntime::seeded`]), so a seed replays exactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::core::store::{ClusterState, Op};
use crate::core::types::NodeName;
use crate::net::clock::Clock;
use crate::net::cluster::{RaftRuntime, RaftStore};
use crate::net::memory::MemoryNet;
use crate::net::raft::log_store::DiskFaults;
use crate::net::raft::{Member, NodeId};
use crate::net::transport::Transport;
use crate::node::config::Timings;

use super::disk;

/// The cluster name the members share.
const CLUSTER: &str = "chaos";

/// A run's directory, removed with it.
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The replicated stores of one run.
pub struct Replicas {
    net: MemoryNet,
    dir: RunDir,
    voters: BTreeMap<NodeId, Member>,
    names: Vec<NodeName>,
    /// Each node's disk faults, kept across its incarnations.
    disks: Vec<DiskFaults>,
    /// Each node's last incarnation's hold on its disk
    /// ([`DiskFaults::incarnation`]).
    lives: Mutex<Vec<DiskFaults>>,
}

/// A node incarnation's replica, set once its store is open (the node's
/// actors start after that, inside the node's task).
pub type ReplicaSlot = Arc<Mutex<Option<RaftStore>>>;

impl Replicas {
    /// A run's network (its delays and losses drawn from `seed`) and its
    /// directory, for the nodes `names` (member ids 1..).
    pub fn new(seed: u64, names: &[NodeName]) -> Result<Replicas, String> {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        // Unique per run: runs of one seed may go on at once (tests).
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("hactor-chaos-{}-{run}-{seed}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let net = MemoryNet::new(seed ^ 0x006e_6574_776f_726b);
        let voters = names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let addr = net.endpoint(name).addr();
                (
                    member_id(index),
                    Member {
                        name: name.clone(),
                        addr: addr.to_string(),
                    },
                )
            })
            .collect();
        Ok(Replicas {
            net,
            dir: RunDir(dir),
            voters,
            names: names.to_vec(),
            disks: names.iter().map(|_| DiskFaults::default()).collect(),
            lives: Mutex::new(names.iter().map(|_| DiskFaults::default()).collect()),
        })
    }

    pub fn net(&self) -> &MemoryNet {
        &self.net
    }

    /// Node `index`'s disk: its writes fail while a fault is set.
    pub fn disk(&self, index: usize) -> &DiskFaults {
        &self.disks[index]
    }

    /// Node `index`'s last incarnation is gone: a write of its member's
    /// core still under way ends now, and none lands after (fault model
    /// 4: on a slow disk such a core went on writing for seconds, and
    /// its late shutdown overlapped the next incarnation).
    pub fn end_writes(&self, index: usize) {
        self.lives.lock().unwrap_or_else(|p| p.into_inner())[index].crash();
    }

    /// Opens node `index`'s replica from its files, first waiting for the
    /// shutdown of its previous incarnation (`previous`), and starts its
    /// background tasks as the daemon does. The first incarnation of the
    /// first node makes the cluster, with every node a voter, and seeds
    /// the resources of `initial`.
    pub async fn open(
        &self,
        index: usize,
        clock: Clock,
        timings: &Timings,
        previous: Option<JoinHandle<()>>,
        initial: &ClusterState,
        torn: Option<Vec<u8>>,
    ) -> Result<RaftStore, String> {
        if let Some(shutdown) = previous {
            let _ = shutdown.await;
        }
        let name = &self.names[index];
        let dir = self.dir.0.join(name);
        if let Some(torn) = torn {
            disk::append_torn(&dir.join("raft"), &torn).map_err(|e| format!("torn write: {e}"))?;
        }
        let transport = Transport::Memory(self.net.endpoint(name));
        let disk = self.disks[index].incarnation();
        self.lives.lock().unwrap_or_else(|p| p.into_inner())[index] = disk.clone();
        let runtime = RaftRuntime {
            clock,
            seeded: true,
            disk,
        };
        let raft = RaftStore::start_with(CLUSTER, member_id(index), &dir, transport, timings.store(), runtime).await?;
        raft.serve();
        if index == 0 {
            raft.bootstrap_voters(self.voters.clone()).await?;
        }
        raft.spawn_heartbeat();
        raft.spawn_election_guard(Duration::from_millis(timings.raft_election_ms.saturating_mul(4)));
        if index == 0 && raft.snapshot().resources.is_empty() {
            tokio::spawn(seed_resources(raft.clone(), initial.clone()));
        }
        Ok(raft)
    }

    /// Node `name`'s links to every other node cut (both ways) or healed.
    pub fn isolate(&self, name: &str, cut: bool) {
        if cut {
            self.partition(name, Way::Both);
        } else {
            for other in self.names.iter().filter(|o| *o != name) {
                self.net.heal(name, other);
                self.net.heal(other, name);
            }
        }
    }

    /// Node `name` cut off from every other node `way` (healed by
    /// [`Replicas::isolate`]).
    pub fn partition(&self, name: &str, way: Way) {
        for other in self.names.iter().filter(|o| *o != name) {
            if way != Way::Inbound {
                self.net.cut(name, other);
            }
            if way != Way::Outbound {
                self.net.cut(other, name);
            }
        }
    }
}

/// Which of a node's frames a partition drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Both,
    /// What it sends is lost; it still hears the others.
    Outbound,
    /// What is sent to it is lost; the others still hear it.
    Inbound,
}

impl Way {
    /// One of the three, from a draw (both ways half the time).
    pub fn drawn(draw: u64) -> Way {
        match draw % 4 {
            0 => Way::Outbound,
            1 => Way::Inbound,
            _ => Way::Both,
        }
    }

    /// How the journal names it.
    pub fn describe(self) -> &'static str {
        match self {
            Way::Both => "",
            Way::Outbound => " (outbound only)",
            Way::Inbound => " (inbound only)",
        }
    }
}

/// Node `index`'s member id.
fn member_id(index: usize) -> NodeId {
    index as NodeId + 1
}

/// The node crashed: its endpoint closes now (nothing more arrives from
/// it or reaches it) and its core stops in the background; the handle
/// ends when it has.
pub fn crash(replica: RaftStore) -> JoinHandle<()> {
    replica.transport().close();
    tokio::spawn(async move { replica.shutdown().await })
}

/// Writes the run's resources once the new cluster has a leader.
async fn seed_resources(raft: RaftStore, initial: ClusterState) {
    // Behind the daemon's guard: the seed commits only into a store that
    // holds no resources yet, whatever this replica shows.
    let ops = Op::seed(initial.resources.iter().map(|(sid, r)| (sid.clone(), r.clone())));
    while raft.apply(ops.clone()).await.is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The most advanced replica's state among `replicas` (the cluster's
/// view for the checkers), with its applied index, if any is open. When
/// the most advanced replica closes (a crash) the next one may be behind:
/// the index tells such a step back.
pub fn freshest(replicas: impl Iterator<Item = RaftStore>) -> Option<(u64, ClusterState)> {
    replicas
        .max_by_key(RaftStore::applied_index)
        .map(|r| (r.applied_index().unwrap_or(0), r.snapshot()))
}

/// Every committed index seen so far, with the digest of the state the
/// first replica seen there had: two replicas at one index must agree.
#[derive(Default)]
pub struct Agreement {
    seen: BTreeMap<u64, (NodeName, String)>,
    /// Each node's applied index at its last look: the digest (a hash of
    /// the whole state) is taken only when it moved.
    last: BTreeMap<NodeName, u64>,
}

impl Agreement {
    /// Records `node`'s replica; describes a disagreement, if any.
    pub fn check(&mut self, node: &str, replica: &RaftStore) -> Option<String> {
        let index = replica.applied_index()?;
        if self.last.insert(node.to_string(), index) == Some(index) {
            return None;
        }
        let (Some(index), digest) = replica.applied_digest() else {
            return None;
        };
        match self.seen.get(&index) {
            Some((first, known)) if *known != digest => Some(format!(
                "replicas disagree at index {index}: {first} has {known}, {node} has {digest}"
            )),
            Some(_) => None,
            None => {
                self.seen.insert(index, (node.to_string(), digest));
                None
            }
        }
    }
}
