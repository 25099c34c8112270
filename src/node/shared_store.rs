//! Several in-process nodes over one [`MemoryStore`], each through a link
//! its owner can cut: the store of the actor-level simulator
//! (`sim::chaos`). A daemon never builds one.
//!
//! A cut link is a partition from the quorum, as a replica of the Raft
//! store sees it: writes and read barriers fail with
//! [`StoreError::NoQuorum`], and reads return the state as it was when
//! the link was cut (the replica stops applying what the majority
//! commits). Another node counts as online while its last heartbeat in
//! the store is at most the online window old, as with the Raft store.
//!
//! Not modelled here (the simulator's later slices): commit latency,
//! leader changes, lost or duplicated writes, a replica that is behind.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::core::store::{ClusterState, Op, Reply, StoreError};
use crate::core::types::NodeName;

use super::memory_store::MemoryStore;
use crate::net::clock::Clock;

/// One node's handle on the shared store. Clones share the link: cutting
/// one cuts them all (the node's LockActor holds one, the simulator
/// another).
#[derive(Clone)]
pub struct SharedStore {
    store: MemoryStore,
    node: NodeName,
    /// Every node of the cluster, this one included.
    members: Arc<[NodeName]>,
    link: Arc<Link>,
    /// This node's clock (heartbeat ages).
    clock: Clock,
    online_window_ms: u64,
}

/// Whether a node reaches the quorum, and what it saw last when not.
#[derive(Default)]
struct Link {
    cut: AtomicBool,
    /// The state when the link was cut.
    frozen: Mutex<Option<ClusterState>>,
}

impl Link {
    fn frozen(&self) -> MutexGuard<'_, Option<ClusterState>> {
        self.frozen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SharedStore {
    /// `node`'s handle on `store`, with its link up.
    pub fn new(
        store: MemoryStore,
        node: &str,
        members: Arc<[NodeName]>,
        clock: Clock,
        online_window_ms: u64,
    ) -> SharedStore {
        SharedStore {
            store,
            node: node.to_string(),
            members,
            link: Arc::new(Link::default()),
            clock,
            online_window_ms,
        }
    }

    /// Partitions this node from the quorum.
    pub fn cut(&self) {
        let mut frozen = self.link.frozen();
        if frozen.is_none() {
            *frozen = Some(self.store.snapshot());
        }
        self.link.cut.store(true, Ordering::SeqCst);
    }

    /// Ends the partition.
    pub fn heal(&self) {
        self.link.cut.store(false, Ordering::SeqCst);
        *self.link.frozen() = None;
    }

    pub fn is_cut(&self) -> bool {
        self.link.cut.load(Ordering::SeqCst)
    }

    pub fn snapshot(&self) -> ClusterState {
        match &*self.link.frozen() {
            Some(state) => state.clone(),
            None => self.store.snapshot(),
        }
    }

    pub fn quorate(&self) -> bool {
        !self.is_cut()
    }

    pub fn manager_writes(&self) -> u64 {
        match &*self.link.frozen() {
            Some(state) => state.manager_writes,
            None => self.store.manager_writes(),
        }
    }

    /// Every member: this node online while its link is up, the others
    /// while their last heartbeat (in the state this node sees) is fresh.
    pub fn members(&self) -> BTreeMap<NodeName, bool> {
        let now = self.clock.now_ms();
        let state = self.snapshot();
        self.members
            .iter()
            .map(|name| {
                let online = if *name == self.node {
                    self.quorate()
                } else {
                    state.heard_within(name, now, self.online_window_ms)
                };
                (name.clone(), online)
            })
            .collect()
    }

    pub fn apply(&self, ops: Vec<Op>) -> Result<Vec<Reply>, StoreError> {
        if self.is_cut() {
            return Err(StoreError::NoQuorum);
        }
        self.store.apply(ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (SharedStore, SharedStore) {
        let store = MemoryStore::volatile(ClusterState::default());
        let members: Arc<[NodeName]> = vec!["node1".to_string(), "node2".to_string()].into();
        let clock = Clock::from_fn(|| 10_000);
        (
            SharedStore::new(store.clone(), "node1", members.clone(), clock.clone(), 3_000),
            SharedStore::new(store, "node2", members, clock, 3_000),
        )
    }

    fn heartbeat(node: &str, now_ms: u64) -> Vec<Op> {
        vec![Op::Heartbeat {
            node: node.into(),
            now_ms,
        }]
    }

    #[test]
    fn a_cut_node_cannot_write_and_sees_the_state_of_the_cut() {
        let (one, two) = pair();
        one.apply(heartbeat("node1", 9_000)).unwrap();
        two.cut();
        assert_eq!(two.apply(heartbeat("node2", 9_000)), Err(StoreError::NoQuorum));
        one.apply(heartbeat("node1", 9_500)).unwrap();
        assert_eq!(
            two.snapshot().heartbeats.get("node1"),
            Some(&9_000),
            "frozen at the cut"
        );
        assert_eq!(one.snapshot().heartbeats.get("node1"), Some(&9_500));
        assert!(!two.quorate() && one.quorate());
        two.heal();
        assert_eq!(two.snapshot().heartbeats.get("node1"), Some(&9_500));
        assert!(two.apply(heartbeat("node2", 9_900)).is_ok());
    }

    #[test]
    fn members_are_online_while_their_heartbeat_is_fresh() {
        let (one, two) = pair();
        one.apply(heartbeat("node2", 6_000)).unwrap();
        assert_eq!(
            one.members(),
            BTreeMap::from([("node1".into(), true), ("node2".into(), false)]),
            "4 s old, the window is 3 s"
        );
        one.apply(heartbeat("node2", 8_000)).unwrap();
        assert_eq!(one.members().get("node2"), Some(&true));
        two.cut();
        assert_eq!(two.members().get("node2"), Some(&false), "a cut node is not quorate");
    }
}
