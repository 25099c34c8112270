//! The replicated state machine: [`ClusterState`] plus Raft's bookkeeping
//! (last applied log id, membership). `apply` is deterministic: it only
//! runs [`ClusterState::apply`], whose lock times come from the proposer.
//!
//! The state itself lives in memory; durability comes from the log plus
//! snapshots: every snapshot (built here or installed from the leader) is
//! written to `<state_dir>/raft/snapshot` before openraft is told about it,
//! and a restart loads it and lets openraft re-apply the committed log
//! after it.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use super::{Entry, Json, LogId, Outcome, SnapshotMeta, StorageError, StoredMembership, TypeConfig, io_error};
use crate::node::store::ClusterState;

/// What a snapshot holds (JSON, like the proposals).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub state: ClusterState,
}

/// The snapshot file: openraft's metadata and the state.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The state machine; clones share it, so the node reads the state the
/// store applies.
#[derive(Debug, Clone)]
pub struct StateMachine {
    applied: Arc<RwLock<Applied>>,
    dir: PathBuf,
    built: Arc<AtomicU64>,
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    io_error(ErrorSubject::StateMachine, verb, e)
}

fn snap_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    io_error(ErrorSubject::Snapshot(None), verb, e)
}

impl StateMachine {
    /// Opens the state machine under `dir`, from its last snapshot.
    pub fn open(dir: &Path) -> std::io::Result<StateMachine> {
        std::fs::create_dir_all(dir)?;
        let applied = match read_snapshot(dir)? {
            Some(file) => serde_json::from_slice(&file.data)
                .map_err(|e| std::io::Error::other(format!("{}: corrupt snapshot: {e}", dir.display())))?,
            None => Applied::default(),
        };
        // Records the API would have refused (edited by hand) are refused
        // here too, by key (see `node::store_check`).
        crate::node::store_check::validate(&applied.state).map_err(|e| {
            let path = dir.join("snapshot");
            std::io::Error::other(format!("{}: refused store record: {e}", path.display()))
        })?;
        Ok(StateMachine {
            applied: Arc::new(RwLock::new(applied)),
            dir: dir.to_path_buf(),
            built: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.applied.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Applied> {
        self.applied.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn read_snapshot(dir: &Path) -> std::io::Result<Option<SnapshotFile>> {
    let path = dir.join("snapshot");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("{}: corrupt snapshot: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn save_snapshot(dir: &Path, meta: &SnapshotMeta, data: &[u8]) -> std::io::Result<()> {
    let file = SnapshotFile {
        meta: meta.clone(),
        data: data.to_vec(),
    };
    let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    super::write_atomic(&dir.join("snapshot"), &bytes)
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (data, last_applied, membership) = {
            let applied = self.read();
            let data = serde_json::to_vec(&*applied).map_err(|e| snap_err(ErrorVerb::Write, e))?;
            (data, applied.last_applied, applied.membership.clone())
        };
        let n = self.built.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{n}", id.leader_id, id.index),
            None => format!("0-0-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        save_snapshot(&self.dir, &meta, &data).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.read();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut applied = self.write();
        let mut outcomes = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => outcomes.push(Json(Vec::new())),
                EntryPayload::Normal(Json(ops)) => {
                    let replies = applied.state.apply_proposal(ops);
                    outcomes.push(Json(replies));
                }
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    outcomes.push(Json(Vec::new()));
                }
            }
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> StateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let mut installed: Applied = serde_json::from_slice(&data).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        installed.last_applied = meta.last_log_id;
        installed.membership = meta.last_membership.clone();
        save_snapshot(&self.dir, meta, &data).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        *self.write() = installed;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let file = read_snapshot(&self.dir).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(file.map(|f| Snapshot {
            meta: f.meta,
            snapshot: Box::new(Cursor::new(f.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::store::{Op, Reply};
    use openraft::{CommittedLeaderId, EntryPayload};

    #[test]
    fn applies_proposals_and_restores_from_its_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
            payload: EntryPayload::Normal(Json(vec![Op::Acquire {
                lock: "ha_manager_lock".into(),
                holder: "node1".into(),
                now_ms: 1000,
                lease_ms: 6000,
            }])),
        };
        let out = rt.block_on(sm.apply(vec![entry])).unwrap();
        assert_eq!(out[0].0, vec![Reply::Granted { expires_ms: 7000 }]);
        rt.block_on(sm.build_snapshot()).unwrap();
        let mut reopened = StateMachine::open(dir.path()).unwrap();
        let (last, _) = rt.block_on(reopened.applied_state()).unwrap();
        assert_eq!(last.map(|l| l.index), Some(1));
        assert_eq!(reopened.read().state.leases["ha_manager_lock"].expires_ms, 7000);
    }

    #[test]
    fn a_snapshot_with_a_bad_record_is_refused_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        let mut resource = crate::node::store::StoredResource::new("node1", crate::core::types::RequestState::Started);
        resource.group = Some("gone".into());
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
            payload: EntryPayload::Normal(Json(vec![Op::PutResource {
                sid: "vm:100".into(),
                resource,
            }])),
        };
        rt.block_on(sm.apply(vec![entry])).unwrap();
        rt.block_on(sm.build_snapshot()).unwrap();
        let err = StateMachine::open(dir.path()).unwrap_err().to_string();
        let path = dir.path().join("snapshot");
        assert!(
            err.starts_with(&format!(
                "{}: refused store record: resources.\"vm:100\".group: unknown group 'gone'",
                path.display()
            )),
            "{err}"
        );
    }
}
