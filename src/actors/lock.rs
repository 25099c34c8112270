//! LockActor: the node's face of the cluster store. Hands out snapshots
//! (with quorum and membership) and applies batches of operations (lease
//! acquisitions and renewals, status writes). Leases live in the store,
//! not in the actor, so a restart of the actor loses nothing. Reads are
//! local; writes may go through consensus, so `ApplyOps` answers
//! asynchronously and never blocks the actor.

use actix::{Actor, Context, Handler, Message, MessageResult, ResponseFuture, Supervised};

pub use crate::core::store::Snapshot;
use crate::core::store::{Op, Reply, StoreError};
use crate::core::types::NodeName;
use crate::node::cluster_store::ClusterStore;

use super::{InjectPanic, guarded};

/// Asks for a [`Snapshot`].
#[derive(Message)]
#[rtype(result = "Snapshot")]
pub struct GetSnapshot;

/// Asks for a [`Snapshot`] to decide a CRM or LRM round from: taken only
/// after the store's read barrier, so it holds everything the cluster had
/// committed when the round began. When the barrier fails (no leader, a
/// replica still catching up) the snapshot counts as not quorate: the
/// round then takes no lock and writes nothing.
#[derive(Message)]
#[rtype(result = "Snapshot")]
pub struct GetRoundSnapshot;

/// Asks how many manager status writes the store applied (cheap: no
/// snapshot).
#[derive(Message)]
#[rtype(result = "u64")]
pub struct GetManagerWrites;

/// Applies operations in order.
#[derive(Message)]
#[rtype(result = "Result<Vec<Reply>, StoreError>")]
pub struct ApplyOps(pub Vec<Op>);

/// Holds the store handle.
pub struct LockActor {
    node: NodeName,
    store: ClusterStore,
}

impl LockActor {
    pub fn new(node: NodeName, store: ClusterStore) -> LockActor {
        LockActor { node, store }
    }
}

impl Actor for LockActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(256);
    }
}

impl Supervised for LockActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(node = %self.node, "LockActor restarting");
    }
}

impl Handler<GetSnapshot> for LockActor {
    type Result = MessageResult<GetSnapshot>;

    fn handle(&mut self, _msg: GetSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        let quorate = self.store.quorate();
        let members = self.store.members(&self.node);
        MessageResult(Snapshot {
            state: self.store.snapshot(),
            quorate,
            members,
        })
    }
}

impl Handler<GetRoundSnapshot> for LockActor {
    type Result = ResponseFuture<Snapshot>;

    fn handle(&mut self, _msg: GetRoundSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let node = self.node.clone();
        Box::pin(async move {
            let current = match store.read_barrier().await {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(node = %node, "read barrier failed: {e}");
                    false
                }
            };
            Snapshot {
                quorate: current && store.quorate(),
                members: store.members(&node),
                state: store.snapshot(),
            }
        })
    }
}

impl Handler<ApplyOps> for LockActor {
    type Result = ResponseFuture<Result<Vec<Reply>, StoreError>>;

    fn handle(&mut self, msg: ApplyOps, _ctx: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { store.apply(msg.0).await })
    }
}

impl Handler<GetManagerWrites> for LockActor {
    type Result = u64;

    fn handle(&mut self, _msg: GetManagerWrites, _ctx: &mut Context<Self>) -> u64 {
        self.store.manager_writes()
    }
}

impl Handler<InjectPanic> for LockActor {
    type Result = ();

    fn handle(&mut self, _msg: InjectPanic, ctx: &mut Context<Self>) {
        guarded(ctx, "LockActor", || {
            std::panic::resume_unwind(Box::new("injected fault"))
        });
    }
}
