//! The Raft log, vote and commit index, persisted under the node's state
//! directory (`<state_dir>/raft/`).
//!
//! - `log`: a magic header ([`LOG_MAGIC`]) then an append-only series of
//!   checksummed records (an entry, a truncation, a purge), fsync'd before
//!   openraft is told an append is durable. Replaying it rebuilds the log.
//!   Each record is `[u32 length][u32 crc32c of the body][u32 crc32c of
//!   those 8 header bytes][body: one codec frame]`, so a flipped bit
//!   anywhere is noticed, including in a length. Only a bad or incomplete
//!   record after which no valid record follows counts as a torn tail (a
//!   crash in the middle of an append, never acknowledged) and is cut off;
//!   a bad record with valid records after it is corruption, and the log
//!   is refused with the file and byte offset named, never truncated.
//!   After purges the file is rewritten with only what remains.
//! - `vote`: a small file replaced atomically, a crc32c then a codec
//!   frame.
//! - The commit index is a record of the log (`Record::Committed`,
//!   after the entries it covers), written ahead of the next write's
//!   records, in that write and its `fdatasync`: openraft saves it at
//!   every commit, and a write and a sync of its own each time cost about
//!   5 % of a Raft chaos seed. openraft treats a saved commit index as an
//!   optional hint (a restart with a lower one re-learns the rest from
//!   the leader), so the record may lag: a torn or not yet written one
//!   leaves the previous, lower value. Nothing may therefore be decided
//!   from a restarted replica's state before it caught up (rounds read
//!   behind a read barrier, the resource seed behind
//!   `Op::ExpectNoResources`).
//! - `committed`: a checkpoint of the commit index, replaced atomically
//!   every [`COMMITTED_CHECKPOINT`] indexes. It survives the log file, so
//!   a log lost or replaced by an older copy is still noticed at start
//!   (`super::open_storage`); the index used is the higher of the two.
//!   A log file missing while a `vote` file exists is refused outright.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogId, RaftLogReader};
use serde::{Deserialize, Serialize};

use super::{Entry, LogId, StorageError, TypeConfig, Vote, io_error, write_atomic};
use crate::net::codec;
use crate::net::record::{self, Flaw, be32};

/// One record of the log file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Record {
    Entry(Entry),
    /// Every entry from this index on is gone.
    Truncate(u64),
    /// Every entry up to this log id is gone (it is in a snapshot).
    Purge(LogId),
    /// The commit index openraft saved (the last such record counts).
    /// Last of the variants, so logs written before it decode as before.
    Committed(Option<LogId>),
}

/// First bytes of a log file of this format (version 2: checksummed
/// records; version 3: rules stored parsed, not as rules.cfg text). A file
/// without them is refused, never reinterpreted.
pub const LOG_MAGIC: &[u8; 8] = b"HACTLOG3";

/// Largest record body (a codec frame).
const MAX_RECORD: usize = codec::MAX_FRAME_BYTES + 6;

/// How far the commit index moves before its checkpoint file is
/// rewritten (the first commit always writes it).
pub const COMMITTED_CHECKPOINT: u64 = 256;

/// Rewrite the log file once it holds this many records more than live
/// entries.
const COMPACT_SLACK: usize = 2_000;

/// Why the bytes of a log file cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error(
        "not a Raft log of this version (no '{}' header; the log format changed: move it aside with `hactor cluster reset-local` and join again)",
        String::from_utf8_lossy(LOG_MAGIC)
    )]
    Format,
    #[error("corrupt record at byte offset {offset}: {reason} (valid records follow it, so it is not a torn tail)")]
    Corrupt { offset: usize, reason: String },
    #[error("record at byte offset {offset} has a valid checksum but does not decode: {reason}")]
    Undecodable { offset: usize, reason: String },
}

/// What replaying a log file gave.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Replayed {
    pub records: Vec<Record>,
    /// Bytes of valid records (with the header); a torn tail starts here.
    pub valid_len: usize,
    /// Whether the file needs its header written (empty or a torn header).
    pub fresh: bool,
}

/// Frames one record: header and body.
pub(crate) fn encode_record(record: &Record) -> std::io::Result<Vec<u8>> {
    let body = codec::encode(record).map_err(std::io::Error::other)?;
    record::frame(&body)
}

/// The record body at `offset` if its header and checksums hold (the
/// body is not decoded), with the offset after it.
fn checked_body(bytes: &[u8], offset: usize) -> Result<(&[u8], usize), Flaw> {
    record::checked_body(bytes, offset, MAX_RECORD)
}

/// Replays the bytes of a log file. A bad record is a torn tail only if
/// no valid record starts anywhere after it.
pub(crate) fn replay(bytes: &[u8]) -> Result<Replayed, LogError> {
    if bytes.len() < LOG_MAGIC.len() {
        return if LOG_MAGIC.starts_with(bytes) {
            Ok(Replayed {
                fresh: true,
                ..Replayed::default()
            })
        } else {
            Err(LogError::Format)
        };
    }
    if &bytes[..LOG_MAGIC.len()] != LOG_MAGIC {
        return Err(LogError::Format);
    }
    let mut offset = LOG_MAGIC.len();
    let mut records = Vec::new();
    while offset < bytes.len() {
        match checked_body(bytes, offset) {
            Ok((body, next)) => {
                let record = codec::decode::<Record>(body).map_err(|e| LogError::Undecodable {
                    offset,
                    reason: e.to_string(),
                })?;
                records.push(record);
                offset = next;
            }
            Err(bad) => {
                if (offset + 1..bytes.len()).any(|o| checked_body(bytes, o).is_ok()) {
                    let reason = bad.describe();
                    return Err(LogError::Corrupt {
                        offset,
                        reason: reason.into(),
                    });
                }
                break;
            }
        }
    }
    Ok(Replayed {
        records,
        valid_len: offset,
        fresh: false,
    })
}

/// Every record that is intact anywhere in a (possibly damaged) log
/// file, resynchronising byte by byte after a bad one: what a member can
/// still learn from a log it no longer trusts (where its peers are).
pub(crate) fn salvage(bytes: &[u8]) -> Vec<Record> {
    let mut records = Vec::new();
    let mut offset = LOG_MAGIC.len().min(bytes.len());
    while offset < bytes.len() {
        match checked_body(bytes, offset).map(|(body, next)| (codec::decode::<Record>(body), next)) {
            Ok((Ok(record), next)) => {
                records.push(record);
                offset = next;
            }
            _ => offset += 1,
        }
    }
    records
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    /// What the `committed` checkpoint file holds.
    checkpoint: Option<LogId>,
    /// `committed` moved since its last record: the record goes out with
    /// the next write (see [`LogStore::save_committed`]).
    committed_unsaved: bool,
    /// Records in the file (for compaction).
    records: usize,
    disk: DiskFaults,
}

/// The persistent log; clones share it (openraft's log reader is a clone).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

/// Decodes a small file: `[u32 crc32c of the frame][codec frame]`.
pub(crate) fn decode_small<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    if bytes.len() < 4 {
        return Err(format!("too short ({} bytes)", bytes.len()));
    }
    let (crc, frame) = bytes.split_at(4);
    if crc32c::crc32c(frame) != be32(crc, 0) {
        return Err("checksum mismatch (corrupt, or written by an older version)".into());
    }
    codec::decode(frame).map_err(|e| e.to_string())
}

pub(crate) fn encode_small<T: Serialize>(value: &T) -> std::io::Result<Vec<u8>> {
    let frame = codec::encode(value).map_err(std::io::Error::other)?;
    let mut out = crc32c::crc32c(&frame).to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    Ok(out)
}

fn read_small<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => decode_small(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_small<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    write_atomic(path, &encode_small(value)?)
}

impl LogStore {
    /// Opens (or creates) the log under `dir`. A corrupt log, vote or
    /// commit file is an error naming the file (and the byte offset);
    /// only a torn tail is cut off.
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        LogStore::open_with(dir, DiskFaults::default())
    }

    /// [`LogStore::open`], its later writes failing as `disk` says.
    pub fn open_with(dir: &Path, disk: DiskFaults) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path)?.read_to_end(&mut bytes)?;
        } else if dir.join("vote").exists() {
            return Err(std::io::Error::other(format!(
                "{}: missing, but this member has voted ({} exists): the entries it held are lost",
                path.display(),
                dir.join("vote").display()
            )));
        }
        let replayed = replay(&bytes).map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        let mut committed_in_log = None;
        let records = replayed.records.len();
        for record in replayed.records {
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
                Record::Committed(log_id) => committed_in_log = Some(log_id),
            }
        }
        if replayed.fresh {
            write_atomic(&path, LOG_MAGIC)?;
        } else if replayed.valid_len < bytes.len() {
            tracing::warn!(
                "{}: cutting off {} bytes of a torn record at the end (offset {})",
                path.display(),
                bytes.len() - replayed.valid_len,
                replayed.valid_len
            );
            let file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(replayed.valid_len as u64)?;
            file.sync_all()?;
        }
        let file = OpenOptions::new().append(true).open(&path)?;
        let vote = read_small(&dir.join("vote"))?;
        let checkpoint = read_small::<Option<LogId>>(&dir.join("committed"))?.flatten();
        let committed = (committed_in_log.flatten().into_iter())
            .chain(checkpoint)
            .max_by_key(|l| l.index);
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                file,
                entries,
                last_purged,
                vote,
                committed,
                checkpoint,
                committed_unsaved: false,
                records,
                disk,
            })),
        })
    }

    /// Creates an empty log under `dir` unless one exists: a member's
    /// Raft state from its first day, so a later start can tell a lost
    /// Raft directory from a new one.
    pub fn create(dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log");
        if !path.exists() {
            write_atomic(&path, LOG_MAGIC)?;
        }
        Ok(())
    }

    /// What the log holds beyond its entries: the last purged log id, the
    /// last log id, the committed log id (for the trust check at start).
    pub fn bounds(&self) -> (Option<LogId>, Option<LogId>, Option<LogId>) {
        let inner = self.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id);
        (inner.last_purged, last.or(inner.last_purged), inner.committed)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Two consecutive live entries whose indexes are not adjacent, if
    /// any (the log must be contiguous).
    pub fn gap(&self) -> Option<(u64, u64)> {
        let inner = self.lock();
        let keys: Vec<u64> = inner.entries.keys().copied().collect();
        keys.windows(2).find(|w| w[1] != w[0] + 1).map(|w| (w[0], w[1]))
    }

    /// Number of live entries (tests).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
impl LogStore {
    /// Appends durably without openraft's flush callback (tests).
    pub(crate) fn append_for_test(&mut self, entries: Vec<Entry>) {
        let mut inner = self.lock();
        let records: Vec<Record> = entries.iter().cloned().map(Record::Entry).collect();
        inner.write_records(&records).unwrap();
        for e in entries {
            inner.entries.insert(e.log_id.index, e);
        }
    }
}

/// Fault injection (the daemon's `fault_injection`, for tests): while set,
/// every log write of this process fails as on a full disk.
pub static FAULT_DISK_FULL: AtomicBool = AtomicBool::new(false);

/// How one member's disk fails its writes ([`DiskFaults`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFault {
    /// `ENOSPC`: a write gets half its bytes out, then fails (a short
    /// write, as a filling disk gives), so the file ends in a torn record.
    Full,
    /// `EIO`: a write fails before any byte lands.
    Broken,
}

/// Write failures injected into one member's log, vote and commit files
/// (the simulator's disk faults; one handle per member, kept across its
/// restarts as its disk is). Clones share the setting. The process-wide
/// [`FAULT_DISK_FULL`] fails every member's writes besides.
///
/// A disk can also be slow: every durable write (an append, a vote)
/// then takes this long before it completes, and the Raft core, which
/// awaits its storage in line, waits with it, as it would on an
/// `fdatasync` that takes seconds.
///
/// [`DiskFaults::incarnation`] gives one run of the member its own handle
/// on the same disk, which [`DiskFaults::crash`] ends: a member's core
/// that is still in a write when the harness crashes its node (a real
/// crash ends the process) writes nothing more and stops at once.
#[derive(Debug, Clone, Default)]
pub struct DiskFaults {
    disk: Arc<DiskState>,
    life: Arc<Life>,
}

#[derive(Debug, Default)]
struct DiskState {
    fault: AtomicU8,
    slow_ms: AtomicU64,
}

/// One incarnation's hold on the disk.
#[derive(Debug, Default)]
struct Life {
    crashed: AtomicBool,
    woken: tokio::sync::Notify,
}

impl DiskFaults {
    pub fn set(&self, fault: Option<DiskFault>) {
        let code = match fault {
            None => 0,
            Some(DiskFault::Full) => 1,
            Some(DiskFault::Broken) => 2,
        };
        self.disk.fault.store(code, Ordering::Relaxed);
    }

    /// A handle for one incarnation of the member: the same disk, a life
    /// of its own.
    pub fn incarnation(&self) -> DiskFaults {
        DiskFaults {
            disk: Arc::clone(&self.disk),
            life: Arc::default(),
        }
    }

    /// The incarnation's process is gone: its writes fail from now on
    /// (nothing it did not finish lands) and a slow one ends now.
    pub fn crash(&self) {
        self.life.crashed.store(true, Ordering::SeqCst);
        self.life.woken.notify_waiters();
    }

    /// Makes every durable write take `delay` (none: as fast as the disk
    /// is).
    pub fn set_slow(&self, delay: Option<std::time::Duration>) {
        let ms = delay.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.disk.slow_ms.store(ms, Ordering::Relaxed);
    }

    /// Waits as long as a durable write takes on this disk (a slow one's
    /// delay; nothing otherwise). A crash of the incarnation ends the wait
    /// with an error: the write is never acknowledged.
    async fn sync_delay(&self) -> std::io::Result<()> {
        let ms = self.disk.slow_ms.load(Ordering::Relaxed);
        if ms > 0 {
            let crashed = self.life.woken.notified();
            tokio::pin!(crashed);
            crashed.as_mut().enable();
            if !self.life.crashed.load(Ordering::SeqCst) {
                tokio::select! {
                    biased;
                    () = crashed => {}
                    () = tokio::time::sleep(std::time::Duration::from_millis(ms)) => {}
                }
            }
        }
        match self.life.crashed.load(Ordering::SeqCst) {
            true => Err(std::io::Error::from_raw_os_error(libc::EIO)),
            false => Ok(()),
        }
    }

    /// Whether a fault is set (the simulator tells a failure of its
    /// disk from a refusal of the files).
    pub fn is_failing(&self) -> bool {
        self.current().is_some()
    }

    fn current(&self) -> Option<DiskFault> {
        if FAULT_DISK_FULL.load(Ordering::Relaxed) {
            return Some(DiskFault::Full);
        }
        if self.life.crashed.load(Ordering::SeqCst) {
            return Some(DiskFault::Broken);
        }
        match self.disk.fault.load(Ordering::Relaxed) {
            1 => Some(DiskFault::Full),
            2 => Some(DiskFault::Broken),
            _ => None,
        }
    }

    /// Whether this member's own disk is full: its log writes get half
    /// their bytes out before failing. (The process-wide switch fails them
    /// before any byte lands, as it always did.)
    fn tears_writes(&self) -> bool {
        self.disk.fault.load(Ordering::Relaxed) == 1 && !self.life.crashed.load(Ordering::SeqCst)
    }

    /// Fails a write of a whole small file (written aside and renamed, so
    /// nothing is torn) while a fault is set.
    fn check(&self) -> std::io::Result<()> {
        match self.current() {
            None => Ok(()),
            Some(DiskFault::Full) => Err(std::io::Error::from_raw_os_error(libc::ENOSPC)),
            Some(DiskFault::Broken) => Err(std::io::Error::from_raw_os_error(libc::EIO)),
        }
    }
}

impl Inner {
    fn write_records(&mut self, records: &[Record]) -> std::io::Result<()> {
        // Appends to a log file someone deleted would succeed and vanish
        // with the process: refuse them (the core stops, the daemon fails
        // stop). Replacing the commit file at every commit used to notice
        // a lost directory; one `fstat` notices it now.
        if std::os::unix::fs::MetadataExt::nlink(&self.file.metadata()?) == 0 {
            return Err(std::io::Error::other(format!(
                "{}: deleted while in use (was the Raft state directory removed?)",
                self.dir.join("log").display()
            )));
        }
        let mut buf = Vec::new();
        if self.committed_unsaved {
            buf.extend_from_slice(&encode_record(&Record::Committed(self.committed))?);
        }
        for record in records {
            buf.extend_from_slice(&encode_record(record)?);
        }
        if self.disk.current().is_some() {
            if self.disk.tears_writes() {
                self.file.write_all(&buf[..buf.len() / 2])?;
            }
            return self.disk.check();
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.records += records.len();
        self.committed_unsaved = false;
        Ok(())
    }

    /// Rewrites the file with only the live entries.
    fn compact(&mut self) -> std::io::Result<()> {
        self.disk.check()?;
        let path = self.dir.join("log");
        let mut buf = LOG_MAGIC.to_vec();
        if let Some(purged) = self.last_purged {
            buf.extend_from_slice(&encode_record(&Record::Purge(purged))?);
        }
        for entry in self.entries.values() {
            buf.extend_from_slice(&encode_record(&Record::Entry(entry.clone()))?);
        }
        buf.extend_from_slice(&encode_record(&Record::Committed(self.committed))?);
        write_atomic(&path, &buf)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        self.records = self.entries.len() + usize::from(self.last_purged.is_some()) + 1;
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
        let disk = {
            let mut inner = self.lock();
            inner
                .disk
                .check()
                .map_err(|e| io_error(ErrorSubject::Vote, ErrorVerb::Write, e))?;
            write_small(&inner.dir.join("vote"), vote)
                .map_err(|e| io_error(ErrorSubject::Vote, ErrorVerb::Write, e))?;
            inner.vote = Some(*vote);
            inner.disk.clone()
        };
        disk.sync_delay()
            .await
            .map_err(|e| io_error(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    /// Keeps the commit index; its record goes out with the next write
    /// (an append, truncation or purge), so a commit costs no write and
    /// no sync of its own. Until then a restart sees the previous value.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.committed = committed;
        inner.committed_unsaved = true;
        let stale = |c: LogId| (inner.checkpoint).is_none_or(|p| c.index >= p.index + COMMITTED_CHECKPOINT);
        if let Some(c) = committed.filter(|c| stale(*c)) {
            write_small(&inner.dir.join("committed"), &committed).map_err(|e| log_err(ErrorVerb::Write, e))?;
            inner.checkpoint = Some(c);
        }
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
        let entries: Vec<Entry> = entries.into_iter().collect();
        let records: Vec<Record> = entries.iter().cloned().map(Record::Entry).collect();
        let (result, disk) = {
            let mut inner = self.lock();
            let result = inner.write_records(&records);
            if result.is_ok() {
                for entry in entries {
                    inner.entries.insert(entry.log_id.index, entry);
                }
            }
            (result, inner.disk.clone())
        };
        let result = match result {
            Ok(()) => disk.sync_delay().await,
            failed => failed,
        };
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
    use crate::net::record::RECORD_HEADER;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn append(store: &mut LogStore, entries: Vec<Entry>) {
        store.append_for_test(entries);
    }

    /// The simulator's disk faults: a full disk writes half a record then
    /// fails (`ENOSPC`), a broken one fails before writing (`EIO`); the
    /// next open cuts the torn half off and keeps every whole record.
    #[test]
    fn injected_write_failures_leave_at_most_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskFaults::default();
        let store = LogStore::open_with(dir.path(), disk.clone()).unwrap();
        let write = |index| store.lock().write_records(&[Record::Entry(entry(1, index))]);
        write(1).unwrap();
        let len = || std::fs::metadata(dir.path().join("log")).unwrap().len();
        let whole = len();
        disk.set(Some(DiskFault::Broken));
        assert_eq!(write(2).unwrap_err().raw_os_error(), Some(libc::EIO));
        assert_eq!(len(), whole, "nothing written");
        disk.set(Some(DiskFault::Full));
        assert_eq!(write(2).unwrap_err().raw_os_error(), Some(libc::ENOSPC));
        assert!(len() > whole, "a short write");
        drop(store);
        let reopened = LogStore::open(dir.path()).unwrap();
        assert_eq!(reopened.len(), 1, "the torn half is cut off, the whole record kept");
        assert_eq!(std::fs::metadata(dir.path().join("log")).unwrap().len(), whole);
    }

    /// A slow disk makes every durable write take its delay (on virtual
    /// time here); a crashed incarnation's slow write ends at once and
    /// its later writes fail, while the next incarnation on the same
    /// disk writes as the disk allows.
    #[tokio::test(start_paused = true)]
    async fn a_slow_disk_delays_writes_until_its_incarnation_crashes() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskFaults::default();
        let life = disk.incarnation();
        let mut store = LogStore::open_with(dir.path(), life.clone()).unwrap();
        let vote = Vote::new(1, 1);
        disk.set_slow(Some(std::time::Duration::from_millis(700)));
        let started = tokio::time::Instant::now();
        store.save_vote(&vote).await.unwrap();
        assert_eq!(started.elapsed(), std::time::Duration::from_millis(700));
        let mut slow = store.clone();
        let write = tokio::spawn(async move { slow.save_vote(&Vote::new(2, 1)).await });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        life.crash();
        assert!(write.await.unwrap().is_err(), "never acknowledged");
        assert_eq!(
            started.elapsed(),
            std::time::Duration::from_millis(800),
            "ended by the crash"
        );
        assert!(
            store.save_vote(&Vote::new(3, 1)).await.is_err(),
            "nothing lands after the crash"
        );
        disk.set_slow(None);
        let mut next = LogStore::open_with(dir.path(), disk.incarnation()).unwrap();
        // Written before the crash, never acknowledged: it may be there.
        assert_eq!(next.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
        next.save_vote(&Vote::new(4, 1)).await.unwrap();
        assert_eq!(started.elapsed(), std::time::Duration::from_millis(800), "fast again");
    }

    /// The commit index lives in the log: the last record counts, a torn
    /// one leaves the previous value, compaction keeps it, and a
    /// `committed` file of an earlier version is read while the log holds
    /// none.
    #[test]
    fn the_commit_index_is_a_log_record() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let id = |index| Some(LogId::new(CommittedLeaderId::new(1, 1), index));
        let committed = || LogStore::open(dir.path()).unwrap().bounds().2;
        // An earlier version's file, and a log without the record.
        {
            let mut store = LogStore::open(dir.path()).unwrap();
            append(&mut store, (1..=6).map(|i| entry(1, i)).collect());
        }
        write_small(&dir.path().join("committed"), &id(2)).unwrap();
        assert_eq!(committed(), id(2));
        {
            let mut store = LogStore::open(dir.path()).unwrap();
            rt.block_on(store.save_committed(id(4))).unwrap();
        }
        assert_eq!(
            committed(),
            id(2),
            "a commit index not yet written lags, it is not lost"
        );
        {
            let mut store = LogStore::open(dir.path()).unwrap();
            rt.block_on(store.save_committed(id(4))).unwrap();
            rt.block_on(store.save_committed(id(5))).unwrap();
            append(&mut store, vec![entry(1, 7)]);
        }
        assert_eq!(
            committed(),
            id(5),
            "written with the next append; the last record counts, not the old file"
        );
        let whole = std::fs::metadata(dir.path().join("log")).unwrap().len();
        {
            let mut store = LogStore::open(dir.path()).unwrap();
            store.lock().disk.set(Some(DiskFault::Full));
            rt.block_on(store.save_committed(id(6))).unwrap();
            assert!(
                rt.block_on(store.truncate(LogId::new(CommittedLeaderId::new(1, 1), 7)))
                    .is_err()
            );
        }
        assert!(std::fs::metadata(dir.path().join("log")).unwrap().len() > whole);
        assert_eq!(committed(), id(5), "a torn record leaves the previous value");
        {
            let store = LogStore::open(dir.path()).unwrap();
            store.lock().compact().unwrap();
        }
        assert_eq!(committed(), id(5), "compaction keeps it");
        assert_eq!(LogStore::open(dir.path()).unwrap().len(), 7);
        // The checkpoint file: rewritten once the index moved far enough,
        // and what counts if the log goes back to an older copy.
        let checkpoint = || {
            read_small::<Option<LogId>>(&dir.path().join("committed"))
                .unwrap()
                .flatten()
        };
        assert_eq!(checkpoint(), id(2), "not rewritten for a small step");
        let older_log = std::fs::read(dir.path().join("log")).unwrap();
        {
            let mut store = LogStore::open(dir.path()).unwrap();
            rt.block_on(store.save_committed(id(2 + COMMITTED_CHECKPOINT))).unwrap();
        }
        assert_eq!(checkpoint(), id(2 + COMMITTED_CHECKPOINT));
        std::fs::write(dir.path().join("log"), older_log).unwrap();
        assert_eq!(
            committed(),
            id(2 + COMMITTED_CHECKPOINT),
            "the higher of log and checkpoint"
        );
        // A log lost while a vote exists is refused, not started afresh.
        {
            let mut store = LogStore::open(dir.path()).unwrap();
            rt.block_on(store.save_vote(&Vote::new(2, 1))).unwrap();
        }
        std::fs::remove_file(dir.path().join("log")).unwrap();
        let err = LogStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("missing, but this member has voted"), "{err}");
    }

    #[test]
    fn writes_to_a_deleted_log_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.lock().write_records(&[Record::Entry(entry(1, 1))]).unwrap();
        std::fs::remove_file(dir.path().join("log")).unwrap();
        let err = store.lock().write_records(&[Record::Entry(entry(1, 2))]).unwrap_err();
        assert!(err.to_string().contains("deleted while in use"), "{err}");
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

    /// A log of `n` blank entries written through the store; the file's bytes.
    fn written_log(dir: &Path, n: u64) -> Vec<u8> {
        let mut store = LogStore::open(dir).unwrap();
        append(&mut store, (1..=n).map(|i| entry(1, i)).collect());
        std::fs::read(dir.join("log")).unwrap()
    }

    fn open_err(dir: &Path) -> String {
        LogStore::open(dir).unwrap_err().to_string()
    }

    #[test]
    fn a_damaged_record_in_the_middle_is_refused_with_the_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let clean = written_log(dir.path(), 100);
        let path = dir.path().join("log");
        let record_len = (clean.len() - LOG_MAGIC.len()) / 100;
        // Same-length changes: a flipped byte in a body, 8 flipped bytes
        // in the middle, a changed length field.
        let tenth = LOG_MAGIC.len() + 10 * record_len;
        for (at, width) in [(tenth + RECORD_HEADER + 3, 1), (clean.len() / 2, 8), (tenth + 2, 1)] {
            let mut bytes = clean.clone();
            for b in &mut bytes[at..at + width] {
                *b ^= 0x5a;
            }
            std::fs::write(&path, &bytes).unwrap();
            let err = open_err(dir.path());
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains("corrupt record at byte offset"), "{err}");
            assert!(err.contains("not a torn tail"), "{err}");
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "never truncated");
        }
        let mut bytes = clean.clone();
        bytes[tenth + RECORD_HEADER + 3] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(open_err(dir.path()).contains(&format!("offset {tenth}:")));
    }

    #[test]
    fn only_a_bad_final_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let clean = written_log(dir.path(), 5);
        let path = dir.path().join("log");
        let record_len = (clean.len() - LOG_MAGIC.len()) / 5;
        // The last record damaged or cut: cut off, the four before kept.
        for cut in [1, record_len / 2, record_len - 1] {
            let mut bytes = clean.clone();
            bytes.truncate(clean.len() - cut);
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(LogStore::open(dir.path()).unwrap().len(), 4);
            assert_eq!(std::fs::read(&path).unwrap().len(), clean.len() - record_len);
        }
        let mut bytes = clean.clone();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(LogStore::open(dir.path()).unwrap().len(), 4);
        // Zeros after the last record (a torn append on some filesystems).
        let mut bytes = clean.clone();
        bytes.extend_from_slice(&[0; 300]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(LogStore::open(dir.path()).unwrap().len(), 5);
        assert_eq!(std::fs::read(&path).unwrap(), clean);
    }

    #[test]
    fn old_formats_and_damaged_small_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        // A log of the first format: bare codec frames.
        std::fs::write(&path, codec::encode(&Record::Truncate(3)).unwrap()).unwrap();
        let err = open_err(dir.path());
        assert!(err.contains("format changed") && err.contains("log"), "{err}");
        std::fs::remove_file(&path).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        {
            let mut store = LogStore::open(dir.path()).unwrap();
            rt.block_on(store.save_vote(&Vote::new(4, 2))).unwrap();
        }
        let vote = dir.path().join("vote");
        let mut bytes = std::fs::read(&vote).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&vote, &bytes).unwrap();
        let err = open_err(dir.path());
        assert!(err.contains("vote") && err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn a_torn_header_of_a_new_file_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("log"), &LOG_MAGIC[..3]).unwrap();
        assert!(LogStore::open(dir.path()).unwrap().is_empty());
        assert_eq!(std::fs::read(dir.path().join("log")).unwrap(), LOG_MAGIC);
    }

    mod fuzz {
        use super::*;
        use openraft::{EntryPayload, Membership};
        use proptest::prelude::*;
        use std::collections::{BTreeMap, BTreeSet};

        use crate::core::store::Op;
        use crate::net::raft::Member;

        fn arb_log_id() -> impl Strategy<Value = LogId> {
            (0u64..50, 0u64..5, 0u64..10_000).prop_map(|(t, n, i)| LogId::new(CommittedLeaderId::new(t, n), i))
        }

        fn arb_record() -> impl Strategy<Value = Record> {
            let payload = prop_oneof![
                Just(EntryPayload::Blank),
                crate::core::crm_command::any_command()
                    .prop_map(|c| EntryPayload::Normal(vec![Op::QueueCrmCommand(c)].into())),
                (1u64..4, "[a-z0-9]{1,8}").prop_map(|(id, name)| {
                    let nodes = BTreeMap::from([(
                        id,
                        Member {
                            name,
                            addr: "127.0.0.1:7400".into(),
                        },
                    )]);
                    EntryPayload::Membership(Membership::new(vec![BTreeSet::from([id])], nodes))
                }),
            ];
            prop_oneof![
                (arb_log_id(), payload).prop_map(|(log_id, payload)| Record::Entry(Entry { log_id, payload })),
                any::<u64>().prop_map(Record::Truncate),
                arb_log_id().prop_map(Record::Purge),
                proptest::option::of(arb_log_id()).prop_map(Record::Committed),
            ]
        }

        fn file_of(records: &[Record]) -> Vec<u8> {
            let mut bytes = LOG_MAGIC.to_vec();
            for r in records {
                bytes.extend_from_slice(&encode_record(r).unwrap());
            }
            bytes
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            /// Valid records round-trip: replayed as written, and each
            /// decoded record encodes to the same bytes.
            #[test]
            fn records_round_trip(records in proptest::collection::vec(arb_record(), 0..8)) {
                let bytes = file_of(&records);
                let replayed = replay(&bytes).unwrap();
                prop_assert_eq!(replayed.valid_len, bytes.len());
                prop_assert_eq!(file_of(&replayed.records), bytes);
                prop_assert_eq!(replayed.records, records);
            }

            /// Any change to a valid file is either noticed (an error), or
            /// leaves a prefix of the records (a torn tail cut off), never
            /// a different record.
            #[test]
            fn mutated_logs_never_yield_a_changed_record(
                records in proptest::collection::vec(arb_record(), 1..6),
                flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
                cut in proptest::option::of(any::<prop::sample::Index>()),
            ) {
                let mut bytes = file_of(&records);
                for (at, x) in &flips {
                    let i = at.index(bytes.len());
                    bytes[i] ^= x;
                }
                if let Some(cut) = cut {
                    bytes.truncate(cut.index(bytes.len()));
                }
                if let Ok(replayed) = replay(&bytes) {
                    prop_assert!(replayed.records.len() <= records.len());
                    prop_assert_eq!(&replayed.records[..], &records[..replayed.records.len()]);
                }
            }

            /// Arbitrary bytes, with or without the header: no panic.
            #[test]
            fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..256), magic: bool) {
                let mut bytes = if magic { LOG_MAGIC.to_vec() } else { Vec::new() };
                bytes.extend_from_slice(&tail);
                let _ = replay(&bytes);
                let _ = decode_small::<Option<LogId>>(&tail);
                let _ = decode_small::<Vote>(&tail);
            }

            #[test]
            fn small_files_round_trip(vote_term in any::<u64>(), node in any::<u64>(), committed in proptest::option::of(arb_log_id())) {
                let vote = Vote::new(vote_term, node);
                prop_assert_eq!(decode_small::<Vote>(&encode_small(&vote).unwrap()).unwrap(), vote);
                let bytes = encode_small(&committed).unwrap();
                let back: Option<LogId> = decode_small(&bytes).unwrap();
                prop_assert_eq!(back, committed);
                prop_assert_eq!(encode_small(&back).unwrap(), bytes);
            }
        }
    }
}
