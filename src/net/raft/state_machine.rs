//! The replicated state machine: [`ClusterState`] plus Raft's bookkeeping
//! (last applied log id, membership). `apply` is deterministic: it only
//! runs [`ClusterState::apply`], whose lock times come from the proposer.
//!
//! The state itself lives in memory; durability comes from the log plus
//! snapshots: every snapshot (built here or installed from the leader) is
//! written to `<state_dir>/raft/snapshot` before openraft is told about it,
//! and a restart loads it and lets openraft re-apply the committed log
//! after it. The snapshot file is checksummed (see [`encode_snapshot`]):
//! a damaged one is refused with its path, never half-read.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use super::{Entry, Json, LogId, Outcome, SnapshotMeta, StorageError, StoredMembership, TypeConfig, io_error};
use crate::core::store::ClusterState;

/// What a snapshot holds (JSON, like the proposals).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub state: ClusterState,
}

impl Applied {
    /// A digest (hex) of the applied state: replicas at the same applied
    /// log id must have the same one (the simulator checks it after every
    /// step, on every replica, so it must be cheap). The state's bincode
    /// encoding is fed straight into a 64-bit SipHash with fixed keys: no
    /// buffer, no JSON; the same in every process of one build.
    pub fn digest(&self) -> String {
        struct Feed(std::hash::DefaultHasher);
        impl std::io::Write for Feed {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                std::hash::Hasher::write(&mut self.0, bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut feed = Feed(std::hash::DefaultHasher::new());
        if let Err(e) = bincode::serde::encode_into_std_write(&self.state, &mut feed, bincode::config::standard()) {
            return format!("unencodable state: {e}");
        }
        format!("{:016x}", std::hash::Hasher::finish(&feed.0))
    }
}

/// The snapshot file: openraft's metadata and the state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SnapshotFile {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// First bytes of a snapshot file of this format (version 3: rules stored
/// parsed). An older snapshot is refused, never read with a field missing.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"HACTSNP3";

/// `[magic][u32 crc32c of the rest][u32 metadata length][metadata JSON][data]`.
pub(crate) fn encode_snapshot(file: &SnapshotFile) -> std::io::Result<Vec<u8>> {
    let meta = serde_json::to_vec(&file.meta).map_err(std::io::Error::other)?;
    let meta_len = u32::try_from(meta.len()).map_err(std::io::Error::other)?;
    let mut rest = Vec::with_capacity(4 + meta.len() + file.data.len());
    rest.extend_from_slice(&meta_len.to_be_bytes());
    rest.extend_from_slice(&meta);
    rest.extend_from_slice(&file.data);
    let mut out = SNAPSHOT_MAGIC.to_vec();
    out.extend_from_slice(&crc32c::crc32c(&rest).to_be_bytes());
    out.extend_from_slice(&rest);
    Ok(out)
}

/// Decodes a snapshot file; every flaw is an error, never a panic.
pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<SnapshotFile, String> {
    let head = SNAPSHOT_MAGIC.len() + 4;
    if bytes.len() < head + 4 || &bytes[..SNAPSHOT_MAGIC.len()] != SNAPSHOT_MAGIC {
        return Err(format!(
            "not a snapshot of this version (no '{}' header)",
            String::from_utf8_lossy(SNAPSHOT_MAGIC)
        ));
    }
    let crc = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let rest = &bytes[head..];
    if crc32c::crc32c(rest) != crc {
        return Err("checksum mismatch".into());
    }
    let meta_len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let Some(meta) = rest.get(4..4 + meta_len) else {
        return Err(format!("metadata length {meta_len} runs past the end"));
    };
    let meta: SnapshotMeta = serde_json::from_slice(meta).map_err(|e| format!("metadata: {e}"))?;
    Ok(SnapshotFile {
        meta,
        data: rest[4 + meta_len..].to_vec(),
    })
}

/// Decodes the state a snapshot carries, checked against its metadata.
pub(crate) fn decode_applied(file: &SnapshotFile) -> Result<Applied, String> {
    let applied: Applied = serde_json::from_slice(&file.data).map_err(|e| format!("state: {e}"))?;
    if applied.last_applied != file.meta.last_log_id {
        return Err(format!(
            "state applied up to {:?} but the metadata says {:?}",
            applied.last_applied, file.meta.last_log_id
        ));
    }
    Ok(applied)
}

/// The state machine; clones share it, so the node reads the state the
/// store applies.
#[derive(Debug, Clone)]
pub struct StateMachine {
    applied: Arc<RwLock<Applied>>,
    dir: PathBuf,
    built: Arc<AtomicU64>,
    /// Bytes of the state in the last snapshot (built, installed or
    /// loaded): how much log is worth keeping before the next one.
    snapshot_len: Arc<AtomicU64>,
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
        let snapshot = read_snapshot(dir)?;
        let snapshot_len = snapshot.as_ref().map_or(0, |f| f.data.len() as u64);
        let applied = match snapshot {
            Some(file) => decode_applied(&file).map_err(|e| {
                std::io::Error::other(format!("{}: corrupt snapshot: {e}", dir.join("snapshot").display()))
            })?,
            None => Applied::default(),
        };
        // Records the API would have refused (edited by hand) are refused
        // here too, by key (see `core::store::check`).
        crate::core::store::check::validate(&applied.state).map_err(|e| {
            let path = dir.join("snapshot");
            std::io::Error::other(format!("{}: refused store record: {e}", path.display()))
        })?;
        Ok(StateMachine {
            applied: Arc::new(RwLock::new(applied)),
            dir: dir.to_path_buf(),
            built: Arc::new(AtomicU64::new(0)),
            snapshot_len: Arc::new(AtomicU64::new(snapshot_len)),
        })
    }

    /// The last log id of the snapshot on disk, if there is one (for the
    /// trust check at start).
    pub fn snapshot_last_log_id(&self) -> std::io::Result<Option<Option<LogId>>> {
        Ok(read_snapshot(&self.dir)?.map(|f| f.meta.last_log_id))
    }

    /// Bytes of the state in the last snapshot.
    pub fn snapshot_len(&self) -> u64 {
        self.snapshot_len.load(Ordering::Relaxed)
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
        Ok(bytes) => decode_snapshot(&bytes)
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
    super::write_atomic(&dir.join("snapshot"), &encode_snapshot(&file)?)
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
        self.snapshot_len.store(data.len() as u64, Ordering::Relaxed);
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
            let replies = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(proposal) => {
                    let ops = (proposal.into_ops())
                        .map_err(|e| io_error(ErrorSubject::Apply(entry.log_id), ErrorVerb::Read, e))?;
                    applied.state.apply_proposal(ops)
                }
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Vec::new()
                }
            };
            applied.last_applied = Some(entry.log_id);
            outcomes.push(Json(replies));
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
        self.snapshot_len.store(data.len() as u64, Ordering::Relaxed);
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
    use crate::core::store::{Op, Reply};
    use crate::net::raft::Proposal;
    use openraft::{CommittedLeaderId, EntryPayload};

    /// The agreement checker's digest: equal states agree, any change
    /// (here one lease) shows, and a real state encodes.
    #[test]
    fn digests_tell_states_apart() {
        let mut one = Applied::default();
        one.state.apply_proposal(vec![Op::Acquire {
            lock: crate::core::store::LockName::Manager,
            holder: "node1".into(),
            now_ms: 1000,
            lease_ms: 6000,
        }]);
        let two = one.clone();
        assert_eq!(one.digest(), two.digest());
        assert_eq!(one.digest().len(), 16, "{}", one.digest());
        let mut three = one.clone();
        three.state.apply_proposal(vec![Op::Acquire {
            lock: crate::core::store::LockName::Manager,
            holder: "node1".into(),
            now_ms: 2000,
            lease_ms: 6000,
        }]);
        assert_ne!(one.digest(), three.digest());
        assert_ne!(one.digest(), Applied::default().digest());
    }

    #[test]
    fn applies_proposals_and_restores_from_its_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
            payload: EntryPayload::Normal(Proposal::new(vec![Op::Acquire {
                lock: crate::core::store::LockName::Manager,
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
        assert_eq!(
            reopened.read().state.leases[&crate::core::store::LockName::Manager].expires_ms,
            7000
        );
    }

    /// A proposal is decoded when applied; one that does not decode (an
    /// operation of a newer version) fails the apply with the reason and
    /// leaves the replica where it was, for openraft to stop the member.
    #[test]
    fn a_proposal_that_does_not_decode_fails_the_apply() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        let unknown: Proposal = serde_json::from_slice(br#"[91,123,34,78,101,119,79,112,34,58,49,125,93]"#).unwrap();
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
            payload: EntryPayload::Normal(unknown),
        };
        let err = rt.block_on(sm.apply(vec![entry])).unwrap_err().to_string();
        assert!(
            err.contains("a proposal that does not decode") && err.contains("NewOp"),
            "{err}"
        );
        assert_eq!(rt.block_on(sm.applied_state()).unwrap().0, None);
    }

    #[test]
    fn a_damaged_snapshot_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        rt.block_on(sm.build_snapshot()).unwrap();
        let path = dir.path().join("snapshot");
        let clean = std::fs::read(&path).unwrap();
        for at in [0, 9, 13, clean.len() / 2, clean.len() - 1] {
            let mut bytes = clean.clone();
            bytes[at] ^= 0x20;
            std::fs::write(&path, &bytes).unwrap();
            let err = StateMachine::open(dir.path()).unwrap_err().to_string();
            assert!(
                err.contains(&path.display().to_string()) && err.contains("corrupt snapshot"),
                "{err}"
            );
        }
        // The first format (plain JSON) is refused the same way.
        std::fs::write(&path, br#"{"meta":{},"data":[]}"#).unwrap();
        assert!(
            StateMachine::open(dir.path())
                .unwrap_err()
                .to_string()
                .contains("not a snapshot of this version")
        );
    }

    #[test]
    fn a_snapshot_with_a_bad_record_is_refused_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        let mut resource = crate::core::status::ResourceConfig::new("node1", crate::core::types::RequestState::Started);
        resource.group = Some("gone".into());
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
            payload: EntryPayload::Normal(Proposal::new(vec![Op::PutResource {
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

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn file(index: Option<u64>, id: String, data: Vec<u8>) -> SnapshotFile {
            SnapshotFile {
                meta: SnapshotMeta {
                    last_log_id: index.map(|i| LogId::new(CommittedLeaderId::new(1, 1), i)),
                    last_membership: StoredMembership::default(),
                    snapshot_id: id,
                },
                data,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn snapshots_round_trip(index: Option<u64>, id in ".{0,20}", data in proptest::collection::vec(any::<u8>(), 0..200)) {
                let f = file(index, id, data);
                let bytes = encode_snapshot(&f).unwrap();
                let back = decode_snapshot(&bytes).unwrap();
                prop_assert_eq!(&back, &f);
                prop_assert_eq!(encode_snapshot(&back).unwrap(), bytes);
            }

            /// A changed or cut snapshot file is always an error.
            #[test]
            fn mutated_snapshots_are_refused(
                data in proptest::collection::vec(any::<u8>(), 0..100),
                at in any::<prop::sample::Index>(),
                x in 1u8..=255,
                cut: bool,
            ) {
                let mut bytes = encode_snapshot(&file(Some(3), "1-3-1".into(), data)).unwrap();
                let i = at.index(bytes.len());
                if cut {
                    bytes.truncate(i);
                } else {
                    bytes[i] ^= x;
                }
                prop_assert!(decode_snapshot(&bytes).is_err());
            }

            #[test]
            fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..200), magic: bool) {
                let mut bytes = if magic { SNAPSHOT_MAGIC.to_vec() } else { Vec::new() };
                if magic && tail.len() > 4 {
                    bytes.extend_from_slice(&crc32c::crc32c(&tail[4..]).to_be_bytes());
                }
                bytes.extend_from_slice(&tail);
                if let Ok(f) = decode_snapshot(&bytes) {
                    let _ = decode_applied(&f);
                }
            }
        }
    }
}
