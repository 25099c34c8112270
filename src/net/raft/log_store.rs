//! The Raft log, vote and commit index, persisted under the node's state
//! directory (`<state_dir>/raft/`).
//!
//! - `log`: an append-only file of framed records (an entry, a
//!   truncation, a purge), fsync'd before openraft is told an append is
//!   durable. Replaying it rebuilds the log; a torn record at the end (a
//!   crash in the middle of a write, never acknowledged) is cut off.
//!   After purges the file is rewritten with only what remains.
//! - `vote`, `committed`: small files replaced atomically.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogId, RaftLogReader};
use serde::{Deserialize, Serialize};

use super::{Entry, LogId, StorageError, TypeConfig, Vote, io_error, write_atomic};
use crate::net::codec;

/// One record of the log file.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Entry(Entry),
    /// Every entry from this index on is gone.
    Truncate(u64),
    /// Every entry up to this log id is gone (it is in a snapshot).
    Purge(LogId),
}

/// Rewrite the log file once it holds this many records more than live
/// entries.
const COMPACT_SLACK: usize = 2_000;

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    /// Records in the file (for compaction).
    records: usize,
}

/// The persistent log; clones share it (openraft's log reader is a clone).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn read_small<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => codec::decode(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_small<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = codec::encode(value).map_err(std::io::Error::other)?;
    write_atomic(path, &bytes)
}

fn frame(record: &Record) -> std::io::Result<Vec<u8>> {
    codec::encode(record).map_err(std::io::Error::other)
}

impl LogStore {
    /// Opens (or creates) the log under `dir`.
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path)?.read_to_end(&mut bytes)?;
        }
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        let mut offset = 0;
        let mut records = 0;
        while offset < bytes.len() {
            let rest = &bytes[offset..];
            let Ok(len) = codec::declared_len(rest) else { break };
            if len > rest.len() {
                break;
            }
            let Ok(record) = codec::decode::<Record>(&rest[..len]) else {
                break;
            };
            match record {
                Record::Entry(entry) => {
                    entries.insert(entry.log_id.index, entry);
                }
                Record::Truncate(index) => {
                    entries.split_off(&index);
                }
                Record::Purge(log_id) => {
                    entries = entries.split_off(&(log_id.index + 1));
                    last_purged = Some(log_id);
                }
            }
            offset += len;
            records += 1;
        }
        if offset < bytes.len() {
            tracing::warn!(
                "{}: cutting off {} bytes of a torn record at the end",
                path.display(),
                bytes.len() - offset
            );
            let file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(offset as u64)?;
            file.sync_all()?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let vote = read_small(&dir.join("vote"))?;
        let committed = read_small::<Option<LogId>>(&dir.join("committed"))?.flatten();
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                file,
                entries,
                last_purged,
                vote,
                committed,
                records,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of live entries (tests).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn write_records(&mut self, records: &[Record]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for record in records {
            buf.extend_from_slice(&frame(record)?);
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.records += records.len();
        Ok(())
    }

    /// Rewrites the file with only the live entries.
    fn compact(&mut self) -> std::io::Result<()> {
        let path = self.dir.join("log");
        let mut buf = Vec::new();
        if let Some(purged) = self.last_purged {
            buf.extend_from_slice(&frame(&Record::Purge(purged))?);
        }
        for entry in self.entries.values() {
            buf.extend_from_slice(&frame(&Record::Entry(entry.clone()))?);
        }
        write_atomic(&path, &buf)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        self.records = self.entries.len() + usize::from(self.last_purged.is_some());
        Ok(())
    }
}

fn log_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    io_error(ErrorSubject::Logs, verb, e)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self.lock().entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        let last = inner.entries.values().next_back().map(|e| *e.get_log_id());
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = self.lock();
        write_small(&inner.dir.join("vote"), vote).map_err(|e| io_error(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        write_small(&inner.dir.join("committed"), &committed).map_err(|e| log_err(ErrorVerb::Write, e))?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.lock();
        let entries: Vec<Entry> = entries.into_iter().collect();
        let records: Vec<Record> = entries.iter().cloned().map(Record::Entry).collect();
        let result = inner.write_records(&records);
        if result.is_ok() {
            for entry in entries {
                inner.entries.insert(entry.log_id.index, entry);
            }
        }
        let outcome = result
            .as_ref()
            .map(|_| ())
            .map_err(|e| std::io::Error::new(e.kind(), e.to_string()));
        callback.log_io_completed(outcome);
        result.map_err(|e| log_err(ErrorVerb::Write, e))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner
            .write_records(&[Record::Truncate(log_id.index)])
            .map_err(|e| log_err(ErrorVerb::Delete, e))?;
        inner.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner
            .write_records(&[Record::Purge(log_id)])
            .map_err(|e| log_err(ErrorVerb::Delete, e))?;
        inner.entries = inner.entries.split_off(&(log_id.index + 1));
        inner.last_purged = Some(log_id);
        if inner.records > inner.entries.len() + COMPACT_SLACK {
            inner.compact().map_err(|e| log_err(ErrorVerb::Write, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn append(store: &mut LogStore, entries: Vec<Entry>) {
        let mut inner = store.lock();
        let records: Vec<Record> = entries.iter().cloned().map(Record::Entry).collect();
        inner.write_records(&records).unwrap();
        for e in entries {
            inner.entries.insert(e.log_id.index, e);
        }
    }

    #[test]
    fn log_survives_reopen_with_truncate_purge_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        {
            let mut store = LogStore::open(dir.path()).unwrap();
            append(&mut store, (1..=10).map(|i| entry(1, i)).collect());
            rt.block_on(store.truncate(LogId::new(CommittedLeaderId::new(1, 1), 8)))
                .unwrap();
            rt.block_on(store.purge(LogId::new(CommittedLeaderId::new(1, 1), 3)))
                .unwrap();
            let vote = Vote::new(2, 1);
            rt.block_on(store.save_vote(&vote)).unwrap();
        }
        // A torn record at the end: a crash mid-write.
        let mut file = OpenOptions::new().append(true).open(dir.path().join("log")).unwrap();
        file.write_all(&[0, 0, 0, 40, 0, 1, 7]).unwrap();
        drop(file);
        let mut store = LogStore::open(dir.path()).unwrap();
        let indexes: Vec<u64> = store.lock().entries.keys().copied().collect();
        assert_eq!(indexes, vec![4, 5, 6, 7]);
        let state = rt.block_on(store.get_log_state()).unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(3));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(7));
        assert_eq!(rt.block_on(store.read_vote()).unwrap(), Some(Vote::new(2, 1)));
        // Appends after the cut land cleanly.
        append(&mut store, vec![entry(2, 8)]);
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.len(), 5);
    }

    #[test]
    fn compaction_keeps_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        append(&mut store, (1..=3000).map(|i| entry(1, i)).collect());
        rt.block_on(store.purge(LogId::new(CommittedLeaderId::new(1, 1), 2990)))
            .unwrap();
        assert!(store.lock().records < 20, "the file was rewritten");
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.len(), 10);
    }
}
