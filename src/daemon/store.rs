//! The node's store as the daemon opens it: the in-process store of a
//! single node, or the replicated one of a cluster member with its Raft
//! wiring (transport, timing, bootstrap or promotion, heartbeat, election
//! guard, fault injection); and the seeding of a fresh store with the
//! resources the configuration declares.

use std::time::Duration;

use super::LOG_TARGET;
use super::fault_injection;
use crate::core::store::Op;
use crate::net::cluster::RaftStore;
use crate::net::transport::Transport;
use crate::node::cluster_store::ClusterStore;
use crate::node::config::NodeConfig;
use crate::node::membership;
use crate::node::memory_store::MemoryStore;

/// Seeds a fresh store with the resources the configuration declares.
/// Whether the store is fresh is decided where the seed commits
/// ([`Op::ExpectNoResources`]), not from this node's replica, which may
/// be behind: a seed decided from it would undo every change since.
async fn seed(store: &ClusterStore, config: &NodeConfig) -> Result<(), String> {
    if !store.snapshot().resources.is_empty() {
        return Ok(());
    }
    let ops = Op::seed(
        config
            .resources
            .iter()
            .map(|(sid, r)| (sid.clone(), r.resource(&config.node))),
    );
    if ops.is_empty() {
        return Ok(());
    }
    // A refused guard means the store was seeded already: nothing to do.
    store.apply(ops).await.map(|_| ()).map_err(|e| e.to_string())
}

/// Opens the node's store: the replicated one if the node is in a
/// cluster, the in-process one otherwise.
pub async fn open_store(config: &NodeConfig) -> Result<(ClusterStore, Option<RaftStore>), String> {
    let Some((info, identity)) = membership::load(config)? else {
        if config.listen.is_some() {
            return Err(format!(
                "listen is set but {} holds no cluster membership: run `hactor cluster init` \
                 (first node) or `hactor cluster join` first",
                config.state_dir.display()
            ));
        }
        let store = MemoryStore::open(&config.state_dir)
            .map_err(|e| format!("state_dir: {}: {e}", config.state_dir.display()))?;
        return Ok((ClusterStore::Local(store), None));
    };
    let listen = membership::listen_addr(config)?;
    let transport = Transport::bind(listen, &identity).map_err(|e| format!("listen {listen}: {e}"))?;
    let t = &config.timings;
    let timing = t.store();
    membership::check_raft_state(config)?;
    let raft = RaftStore::start(&info.cluster, info.id, &config.state_dir, transport.clone(), timing).await?;
    raft.serve();
    if info.bootstrap {
        raft.bootstrap(listen).await?;
    } else {
        raft.spawn_promotion();
    }
    raft.spawn_heartbeat();
    // A restarted member holds its elections until the leader (if any)
    // had a chance to reach it.
    let hold = if info.bootstrap && raft.view().members.len() <= 1 {
        Duration::ZERO
    } else {
        Duration::from_millis(t.raft_election_ms.saturating_mul(4))
    };
    raft.spawn_election_guard(hold);
    if config.fault_injection {
        fault_injection::spawn_fault_injection(transport, raft.clone(), config.state_dir.clone());
    }
    tracing::info!(target: LOG_TARGET, cluster = %info.cluster, id = info.id, %listen, "replicated store started");
    Ok((ClusterStore::Replicated(raft.clone()), Some(raft)))
}

/// Seeds the store once it is writable (a cluster's first start waits
/// for its first election).
pub async fn seed_when_ready(store: ClusterStore, config: NodeConfig) {
    for _ in 0..100 {
        match seed(&store, &config).await {
            Ok(()) => return,
            Err(e) => tracing::debug!(target: LOG_TARGET, "seeding the store: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::warn!(target: LOG_TARGET, "could not seed the store with the configured resources");
}
