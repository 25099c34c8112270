//! The API server's way into the store: the node's LockActor.

use actix::Addr;

use crate::actors::lock::{ApplyOps, GetSnapshot, LockActor};
use crate::api::server::{StoreAccess, StoreFuture};
use crate::core::store::{Op, Reply, Snapshot, StoreError};

/// The LockActor as the API server's store.
#[derive(Clone)]
pub struct LockStore(pub Addr<LockActor>);

impl StoreAccess for LockStore {
    fn snapshot(&self) -> StoreFuture<Result<Snapshot, String>> {
        let request = self.0.send(GetSnapshot);
        Box::pin(async move { request.await.map_err(|e| e.to_string()) })
    }

    fn apply(&self, ops: Vec<Op>) -> StoreFuture<Result<Result<Vec<Reply>, StoreError>, String>> {
        let request = self.0.send(ApplyOps(ops));
        Box::pin(async move { request.await.map_err(|e| e.to_string()) })
    }
}
