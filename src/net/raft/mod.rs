//! The replicated cluster store's consensus layer: openraft 0.9 with a
//! persistent log ([`log_store`]), the cluster state machine
//! ([`state_machine`]) and Raft RPCs over the QUIC transport
//! ([`network`]). Every openraft type stays inside this module and
//! [`super::cluster`], so a move to another openraft version touches only
//! these files.

pub mod log_store;
pub mod network;
pub mod state_machine;

use std::fmt;
use std::io::Cursor;

use serde::de::{DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::core::store::{Op, Reply};

/// A cluster member as Raft records it: its node name (the name its
/// certificate carries) and QUIC address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.addr)
    }
}

/// A value carried as JSON bytes inside a bincode frame. The HA status
/// types use serde features (optional fields, lenient number/bool
/// decoding) that bincode cannot decode, so they cross the wire and the
/// log as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Json<T>(pub T);

impl<T: Serialize> Serialize for Json<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = serde_json::to_vec(&self.0).map_err(serde::ser::Error::custom)?;
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Json<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes_of(deserializer)?;
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(serde::de::Error::custom)
    }
}

/// A proposal: operations applied in order, atomically, on every replica.
/// It travels and is logged as JSON bytes, like [`Json`]. Clones share
/// one copy of the operations and of their JSON, each made once, when
/// first needed: openraft clones an entry for every follower and every
/// retry, and the leader writes it to its log besides. A proposal that
/// came over the wire or from the log file keeps its bytes, logged as
/// they are, and is decoded when applied: not for a copy sent twice, cut
/// off by a new leader or read back at a restart (decoding every copy on
/// arrival was the largest single cost of a Raft member in the
/// simulator). Bytes that do not decode (a newer version's operation)
/// fail the apply with the reason, which stops the member: a replica
/// cannot skip an entry.
#[derive(Clone)]
pub struct Proposal(std::sync::Arc<Encoded>);

struct Encoded {
    /// Set when made here; decoded from `json` on first use otherwise.
    value: std::sync::OnceLock<Result<Vec<Op>, String>>,
    /// Set when it came as bytes (the wire, the log file); encoded from
    /// `value` on first use otherwise.
    json: std::sync::OnceLock<Vec<u8>>,
}

impl Encoded {
    fn value(&self) -> &Result<Vec<Op>, String> {
        self.value.get_or_init(|| self.decode())
    }

    fn decode(&self) -> Result<Vec<Op>, String> {
        let json = self.json.get().map(Vec::as_slice).unwrap_or_default();
        serde_json::from_slice(json).map_err(|e| format!("a proposal that does not decode: {e}"))
    }
}

impl Proposal {
    pub fn new(ops: Vec<Op>) -> Proposal {
        Proposal(std::sync::Arc::new(Encoded {
            value: std::sync::OnceLock::from(Ok(ops)),
            json: std::sync::OnceLock::new(),
        }))
    }

    pub fn ops(&self) -> Result<&[Op], String> {
        self.0.value().as_deref().map_err(Clone::clone)
    }

    /// The operations, copied only if the proposal is still shared.
    pub fn into_ops(self) -> Result<Vec<Op>, String> {
        match std::sync::Arc::try_unwrap(self.0) {
            Ok(mut encoded) => encoded.value.take().unwrap_or_else(|| encoded.decode()),
            Err(shared) => shared.value().clone(),
        }
    }
}

impl From<Vec<Op>> for Proposal {
    fn from(ops: Vec<Op>) -> Proposal {
        Proposal::new(ops)
    }
}

impl fmt::Debug for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Proposal").field(self.0.value()).finish()
    }
}

impl PartialEq for Proposal {
    fn eq(&self, other: &Proposal) -> bool {
        self.0.value() == other.0.value()
    }
}

impl Serialize for Proposal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let json = match self.0.json.get() {
            Some(json) => json,
            None => {
                let ops = self.0.value().as_ref().map_err(serde::ser::Error::custom)?;
                let bytes = serde_json::to_vec(ops).map_err(serde::ser::Error::custom)?;
                self.0.json.get_or_init(|| bytes)
            }
        };
        serializer.serialize_bytes(json)
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Proposal(std::sync::Arc::new(Encoded {
            value: std::sync::OnceLock::new(),
            json: std::sync::OnceLock::from(serde_bytes_of(deserializer)?),
        })))
    }
}

/// The bytes of a `serialize_bytes` value, whichever way the format hands
/// them over (bincode as bytes, self-describing formats as a sequence).
fn serde_bytes_of<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct Bytes;
    impl<'de> Visitor<'de> for Bytes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("JSON bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut bytes = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                bytes.push(b);
            }
            Ok(bytes)
        }
    }
    deserializer.deserialize_byte_buf(Bytes)
}
/// What applying a proposal gave, one reply per operation.
pub type Outcome = Json<Vec<Reply>>;

openraft::declare_raft_types!(
    /// hactor's Raft type configuration.
    pub TypeConfig:
        D = Proposal,
        R = Outcome,
        NodeId = u64,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;

/// What a member whose Raft state cannot be trusted is told to do;
/// `<node config>` stands for its configuration file (the daemon names it).
pub const RESET_HINT: &str = "this member cannot trust its Raft state: rebuild it from the other members with \
     `hactor --config <node config> cluster reset-local` (see README, Cluster)";

/// Opens a member's log and state machine under `dir` (its
/// `<state_dir>/raft`) and checks that they fit together: a snapshot that
/// is missing or older than the log's purge point, or a log that ends
/// before what this member knows was committed, means entries are lost.
/// Every refusal names the file and ends with [`RESET_HINT`].
pub fn open_storage(dir: &std::path::Path) -> Result<(log_store::LogStore, state_machine::StateMachine), String> {
    open_storage_with(dir, log_store::DiskFaults::default())
}

/// [`open_storage`], the log's later writes failing as `disk` says.
pub fn open_storage_with(
    dir: &std::path::Path,
    disk: log_store::DiskFaults,
) -> Result<(log_store::LogStore, state_machine::StateMachine), String> {
    let refuse = |what: String| format!("{what}; {RESET_HINT}");
    let log = log_store::LogStore::open_with(dir, disk).map_err(|e| refuse(e.to_string()))?;
    let sm = state_machine::StateMachine::open(dir).map_err(|e| refuse(e.to_string()))?;
    let snapshot = sm.snapshot_last_log_id().map_err(|e| refuse(e.to_string()))?;
    let (purged, last, committed) = log.bounds();
    let snapshot_index = snapshot.flatten().map(|l| l.index);
    if let Some(purged) = purged
        && snapshot_index.is_none_or(|s| s < purged.index)
    {
        return Err(refuse(format!(
            "{}: missing or older than the log's purge point (index {}): the entries up to it are lost",
            dir.join("snapshot").display(),
            purged.index
        )));
    }
    if let Some((before, after)) = log.gap() {
        return Err(refuse(format!(
            "{}: entries {before} and {after} follow each other with a gap between them",
            dir.join("log").display()
        )));
    }
    let held = last.map(|l| l.index).max(snapshot_index);
    if let Some(committed) = committed
        && held.is_none_or(|h| h < committed.index)
    {
        return Err(refuse(format!(
            "{}: ends at index {} but index {} was committed: committed entries are lost",
            dir.join("log").display(),
            held.unwrap_or(0),
            committed.index
        )));
    }
    Ok((log, sm))
}

/// Every member named by whatever is still intact in the Raft state under
/// `dir` (the snapshot's membership, membership entries of the log),
/// however damaged the rest: where `cluster reset-local` finds the other
/// members.
pub fn known_members(dir: &std::path::Path) -> Vec<Member> {
    let mut members: Vec<Member> = Vec::new();
    let mut add = |m: &Member| {
        if !members.contains(m) {
            members.push(m.clone());
        }
    };
    if let Ok(bytes) = std::fs::read(dir.join("snapshot"))
        && let Ok(file) = state_machine::decode_snapshot(&bytes)
    {
        file.meta.last_membership.membership().nodes().for_each(|(_, m)| add(m));
    }
    if let Ok(bytes) = std::fs::read(dir.join("log")) {
        for record in log_store::salvage(&bytes) {
            if let log_store::Record::Entry(Entry {
                payload: openraft::EntryPayload::Membership(membership),
                ..
            }) = record
            {
                membership.nodes().for_each(|(_, m)| add(m));
            }
        }
    }
    members
}

/// Turns an I/O failure into openraft's storage error.
pub(crate) fn io_error(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    e: impl fmt::Display,
) -> StorageError {
    let error = std::io::Error::other(e.to_string());
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(&error)).into()
}

/// Writes `bytes` to `path` atomically and durably (temp file, fsync,
/// rename, fsync of the directory).
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::codec;

    #[test]
    fn json_payloads_survive_bincode_frames() {
        let ops = vec![
            Op::QueueCrmCommand("migrate vm:100 node2".parse().unwrap()),
            Op::Release {
                lock: crate::core::store::LockName::Manager,
                holder: "node1".into(),
            },
        ];
        let proposal = Proposal::new(ops.clone());
        let frame = codec::encode(&proposal).unwrap();
        assert_eq!(codec::encode(&proposal).unwrap(), frame, "encoded once, the same bytes");
        let back: Proposal = codec::decode(&frame).unwrap();
        assert_eq!(back.ops().unwrap(), ops);
        assert_eq!(
            codec::encode(&back).unwrap(),
            frame,
            "a decoded proposal sends the bytes it came in"
        );
        let legacy: Json<Vec<Op>> = codec::decode(&frame).unwrap();
        assert_eq!(legacy.0, ops, "the wire format is the JSON one");
    }

    fn blank(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: openraft::EntryPayload::Blank,
        }
    }

    /// A member that lost its snapshot (after the log was purged into it)
    /// or lost committed log entries is refused with the file named and
    /// the recovery command.
    #[test]
    fn lost_snapshots_and_lost_committed_entries_are_refused() {
        use openraft::storage::{RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        {
            let (mut log, mut sm) = open_storage(dir.path()).unwrap();
            let entries: Vec<Entry> = (1..=5).map(blank).collect();
            rt.block_on(async {
                log.append_for_test(entries.clone());
                sm.apply(entries[..3].to_vec()).await.unwrap();
                sm.build_snapshot().await.unwrap();
                sm.apply(entries[3..].to_vec()).await.unwrap();
                log.purge(blank(3).log_id).await.unwrap();
                log.save_committed(Some(blank(5).log_id)).await.unwrap();
            });
        }
        assert!(open_storage(dir.path()).is_ok());
        std::fs::rename(dir.path().join("snapshot"), dir.path().join("snapshot.away")).unwrap();
        let err = open_storage(dir.path()).err().unwrap();
        assert!(
            err.contains("snapshot: missing") && err.contains("cluster reset-local"),
            "{err}"
        );
        std::fs::rename(dir.path().join("snapshot.away"), dir.path().join("snapshot")).unwrap();
        // The log file lost: it ends before the committed index.
        std::fs::remove_file(dir.path().join("log")).unwrap();
        let err = open_storage(dir.path()).err().unwrap();
        assert!(
            err.contains("index 5 was committed") && err.contains("cluster reset-local"),
            "{err}"
        );
    }

    #[test]
    fn a_log_with_a_gap_is_refused_and_members_are_salvaged_from_a_damaged_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = log_store::LogStore::open(dir.path()).unwrap();
            let member = Member {
                name: "node2".into(),
                addr: "127.0.0.1:7402".into(),
            };
            let membership = openraft::Membership::new(
                vec![std::collections::BTreeSet::from([2])],
                std::collections::BTreeMap::from([(2, member)]),
            );
            let mut entries = vec![
                blank(1),
                Entry {
                    log_id: blank(2).log_id,
                    payload: openraft::EntryPayload::Membership(membership),
                },
            ];
            entries.extend((3..=6).map(blank));
            log.append_for_test(entries);
            log.append_for_test(vec![blank(9)]);
        }
        let err = open_storage(dir.path()).err().unwrap();
        assert!(
            err.contains("entries 6 and 9") && err.contains("cluster reset-local"),
            "{err}"
        );
        // Damage the middle of the log: members are still found.
        let path = dir.path().join("log");
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() * 3 / 4;
        bytes[at] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(log_store::LogStore::open(dir.path()).is_err());
        let members = known_members(dir.path());
        assert_eq!(members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["node2"]);
    }
}
