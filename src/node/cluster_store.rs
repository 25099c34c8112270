//! The store behind a node's LockActor: the in-process [`MemoryStore`] of
//! a single node, the Raft-replicated [`RaftStore`] of a cluster, or the
//! [`SharedStore`] the actor-level simulator's nodes share. All apply the
//! same [`Op`]s to the same [`ClusterState`].

use std::collections::BTreeMap;

use crate::core::types::NodeName;
use crate::net::cluster::RaftStore;

use super::memory_store::MemoryStore;
use super::shared_store::SharedStore;
use crate::core::store::{ClusterState, Op, Reply, StoreError};

#[derive(Clone)]
pub enum ClusterStore {
    Local(MemoryStore),
    Replicated(RaftStore),
    /// One of several simulated nodes over one store (`sim::chaos`).
    Shared(SharedStore),
}

impl ClusterStore {
    /// The state as this node sees it now.
    pub fn snapshot(&self) -> ClusterState {
        match self {
            ClusterStore::Local(store) => store.snapshot(),
            ClusterStore::Replicated(store) => store.snapshot(),
            ClusterStore::Shared(store) => store.snapshot(),
        }
    }

    /// Waits until this replica holds everything the cluster committed
    /// before the call (see [`RaftStore::read_barrier`]); a single node's
    /// store is always current.
    pub async fn read_barrier(&self) -> Result<(), StoreError> {
        match self {
            ClusterStore::Local(store) if store.quorate() => Ok(()),
            ClusterStore::Local(_) => Err(StoreError::NoQuorum),
            ClusterStore::Replicated(store) => store.read_barrier().await,
            ClusterStore::Shared(store) if store.quorate() => Ok(()),
            ClusterStore::Shared(_) => Err(StoreError::NoQuorum),
        }
    }

    /// Whether this node can commit writes.
    pub fn quorate(&self) -> bool {
        match self {
            ClusterStore::Local(store) => store.quorate(),
            ClusterStore::Replicated(store) => store.quorate(),
            ClusterStore::Shared(store) => store.quorate(),
        }
    }

    /// How many manager status writes this replica applied (see
    /// [`ClusterState::manager_writes`]).
    pub fn manager_writes(&self) -> u64 {
        match self {
            ClusterStore::Local(store) => store.manager_writes(),
            ClusterStore::Replicated(store) => store.manager_writes(),
            ClusterStore::Shared(store) => store.manager_writes(),
        }
    }

    /// Cluster members and whether each is online (`node` is this one).
    pub fn members(&self, node: &str) -> BTreeMap<NodeName, bool> {
        match self {
            ClusterStore::Local(store) => BTreeMap::from([(node.to_string(), store.quorate())]),
            ClusterStore::Replicated(store) => store.members(),
            ClusterStore::Shared(store) => store.members(),
        }
    }

    /// Applies `ops` in order (through consensus when replicated).
    pub async fn apply(&self, ops: Vec<Op>) -> Result<Vec<Reply>, StoreError> {
        match self {
            ClusterStore::Local(store) => store.apply(ops),
            ClusterStore::Replicated(store) => store.apply(ops).await,
            ClusterStore::Shared(store) => store.apply(ops),
        }
    }
}

impl From<SharedStore> for ClusterStore {
    fn from(store: SharedStore) -> ClusterStore {
        ClusterStore::Shared(store)
    }
}

impl From<MemoryStore> for ClusterStore {
    fn from(store: MemoryStore) -> ClusterStore {
        ClusterStore::Local(store)
    }
}
