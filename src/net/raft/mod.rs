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
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::node::store::{Op, Reply};

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
        struct Bytes<T>(PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for Bytes<T> {
            type Value = Json<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Json<T>, E> {
                serde_json::from_slice(v).map(Json).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<T>, A::Error> {
                let mut bytes = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                serde_json::from_slice(&bytes)
                    .map(Json)
                    .map_err(serde::de::Error::custom)
            }
        }
        deserializer.deserialize_byte_buf(Bytes(PhantomData))
    }
}

/// A proposal: operations applied in order, atomically, on every replica.
pub type Proposal = Json<Vec<Op>>;
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
            Op::QueueCrmCommand("migrate vm:100 node2".into()),
            Op::Release {
                lock: "ha_manager_lock".into(),
                holder: "node1".into(),
            },
        ];
        let frame = codec::encode(&Json(ops.clone())).unwrap();
        let back: Proposal = codec::decode(&frame).unwrap();
        assert_eq!(back.0, ops);
    }
}
