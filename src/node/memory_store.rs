//! The in-process store of a single node: the core's [`ClusterState`]
//! behind a mutex, persisted under the node's state directory as a
//! snapshot (`store.json`) and a journal of the batches applied since
//! (`store.journal`, see [`super::journal`]).
//!
//! Why a journal: a batch (a lease renewal, a heartbeat, a status write)
//! is small, the state may be large (100 000 resources are about 15 MB
//! of JSON), and rewriting the whole state with an fsync several times a
//! second costs a core and tens of MB/s. A batch is appended to the
//! journal and fsync'd before it is applied; the journal is folded into
//! a new snapshot only once it is as large as the snapshot (at least
//! [`MIN_COMPACTION`]), so writing costs at most twice what changed.
//!
//! Compaction writes the new snapshot and a new, empty journal (whose
//! header names the new snapshot's digest) under temporary names, fsync'd,
//! then renames the snapshot, syncs the directory, and renames the
//! journal. A crash at any point leaves one of three pairs, each read
//! back to the same state: the old snapshot with the old journal (the
//! temporary files are left over and ignored); the new snapshot with the
//! old journal and the new empty one still under its temporary name (the
//! old journal is already in the snapshot and is dropped); or the new
//! pair. A journal that extends neither the snapshot present nor matches
//! such a left-over is refused with both paths (`store.json` replaced or
//! removed by hand while the daemon was stopped).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::journal;
use crate::core::store::{ClusterState, Op, Reply, StoreError};

/// The journal is folded into the snapshot once it holds this many bytes
/// or as many as the snapshot, whichever is more.
pub const MIN_COMPACTION: u64 = 1 << 20;

/// The in-process store of a single node: a mutex-guarded state persisted
/// (a journal of batches over a snapshot, fsync'd) under the node's state
/// directory.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<StoreInner>>,
}

#[derive(Debug)]
struct StoreInner {
    state: ClusterState,
    files: Option<Files>,
    quorate: bool,
}

/// The store's files and what is known about them.
#[derive(Debug)]
struct Files {
    snapshot: PathBuf,
    journal: PathBuf,
    snapshot_len: u64,
    /// Bytes of the journal: its header and the records appended.
    journal_len: u64,
    /// Compact once the journal is this long.
    compact_at: u64,
    /// [`MIN_COMPACTION`] (smaller in tests).
    min_compaction: u64,
    /// The journal on disk cannot take another append (a failed append
    /// could not be cut off again, or a compaction stopped after renaming
    /// the snapshot): the next batch compacts first.
    dirty: bool,
}

/// Paths beside a store file: `store.json.tmp`, `store.journal.tmp`.
fn tmp_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn with_path(path: &Path, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("{}: {e}", path.display()))
}

fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// Writes `bytes` to a new file at `path`, fsync'd.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Removes a left-over temporary file (best effort; never a directory).
fn remove_tmp(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        let _ = std::fs::remove_file(path);
    }
}

impl Files {
    fn compaction_threshold(&self) -> u64 {
        self.journal_len + self.snapshot_len.max(self.min_compaction)
    }

    /// Appends one batch to the journal, fsync'd. On failure the journal
    /// is cut back to what it held or, if that fails too or the journal
    /// cannot be opened, marked dirty (rewritten before the next batch): a
    /// failed batch is not replayed at the next start.
    fn append(&mut self, ops: &[Op], state: &ClusterState) -> std::io::Result<()> {
        if self.dirty {
            self.compact(state)?;
        }
        let record = journal::encode_record(ops)?;
        // Opened by path for every batch: the file a compaction renamed
        // into place is the one written.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.journal)
            .inspect_err(|_| self.dirty = true)?;
        let written = file.write_all(&record).and_then(|()| file.sync_data());
        if let Err(e) = written {
            if file.set_len(self.journal_len).and_then(|()| file.sync_data()).is_err() {
                self.dirty = true;
            }
            return Err(e);
        }
        self.journal_len += record.len() as u64;
        Ok(())
    }

    /// Writes `state` as the new snapshot with an empty journal (see the
    /// module doc for the order and what a crash leaves).
    fn compact(&mut self, state: &ClusterState) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        let base = journal::digest(&bytes);
        let (snapshot_tmp, journal_tmp) = (tmp_of(&self.snapshot), tmp_of(&self.journal));
        let staged = write_synced(&snapshot_tmp, &bytes)
            .and_then(|()| write_synced(&journal_tmp, &journal::header(&base)))
            .and_then(|()| std::fs::rename(&snapshot_tmp, &self.snapshot));
        if let Err(e) = staged {
            // The old pair stands.
            remove_tmp(&snapshot_tmp);
            remove_tmp(&journal_tmp);
            return Err(e);
        }
        // From here on the old journal may no longer extend the snapshot
        // on disk: no more appends to it.
        self.dirty = true;
        sync_dir(&self.snapshot)?;
        std::fs::rename(&journal_tmp, &self.journal)?;
        sync_dir(&self.journal)?;
        self.snapshot_len = bytes.len() as u64;
        self.journal_len = journal::HEADER_LEN as u64;
        self.compact_at = self.compaction_threshold();
        self.dirty = false;
        Ok(())
    }
}

/// Reads the snapshot and journal under `dir`: the state they give, and
/// whether the journal must be rewritten (records to fold in, a torn
/// tail, a left-over of an interrupted compaction, or no journal yet).
fn load(snapshot: &Path, journal_path: &Path) -> std::io::Result<(ClusterState, bool)> {
    let snapshot_bytes = read_optional(snapshot)?;
    let mut state = match &snapshot_bytes {
        Some(bytes) => {
            let bytes = upgrade_rules_text(snapshot, bytes.clone()).map_err(std::io::Error::other)?;
            crate::core::store::check::decode(snapshot, &bytes).map_err(std::io::Error::other)?
        }
        None => ClusterState::default(),
    };
    let Some(bytes) = read_optional(journal_path)? else {
        return Ok((state, true));
    };
    let replayed = journal::replay(&bytes).map_err(|e| with_path(journal_path, e))?;
    let base = snapshot_bytes.as_deref().map(journal::digest);
    if base != Some(replayed.base) {
        // An interrupted compaction: the snapshot was renamed into place,
        // its empty journal was not. The old journal is in the snapshot.
        let tmp = tmp_of(journal_path);
        let left_over = read_optional(&tmp)?.and_then(|b| journal::replay(&b).ok());
        if let Some(left_over) = left_over
            && Some(left_over.base) == base
            && left_over.batches.is_empty()
        {
            return Ok((state, true));
        }
        return Err(with_path(
            journal_path,
            format!(
                "extends another {} than the one there (replaced or removed while the daemon was stopped?);                  move the journal aside to start from {} alone",
                snapshot.display(),
                snapshot.display()
            ),
        ));
    }
    let rewrite = !replayed.batches.is_empty() || replayed.valid_len != bytes.len();
    for ops in replayed.batches {
        state.apply_proposal(ops);
    }
    if rewrite {
        crate::core::store::check::validate(&state).map_err(|e| {
            with_path(
                journal_path,
                format!("refused store record after replaying the journal: {e}"),
            )
        })?;
    }
    // Counted since this process started, as after a plain load.
    state.manager_writes = 0;
    Ok((state, rewrite))
}

impl MemoryStore {
    /// A store persisted under `dir`: `store.json` (the snapshot, loaded
    /// when present) and `store.journal` (the batches since, replayed). A
    /// file that is not a valid store, holds a record the API would have
    /// refused (see [`crate::core::store::check`]), or a journal that is
    /// damaged before its last record or extends another snapshot, is
    /// refused with its path and the line, key or byte offset. A journal
    /// with records (or a torn last record) is folded into a new snapshot
    /// at once.
    pub fn open(dir: &Path) -> std::io::Result<MemoryStore> {
        MemoryStore::open_compacting_at(dir, MIN_COMPACTION)
    }

    /// [`MemoryStore::open`] with another least journal size to compact at.
    fn open_compacting_at(dir: &Path, min_compaction: u64) -> std::io::Result<MemoryStore> {
        std::fs::create_dir_all(dir).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        let snapshot = dir.join("store.json");
        let journal_path = dir.join("store.journal");
        let (state, rewrite) = load(&snapshot, &journal_path)?;
        let mut files = Files {
            snapshot_len: std::fs::metadata(&snapshot).map(|m| m.len()).unwrap_or(0),
            journal_len: std::fs::metadata(&journal_path).map(|m| m.len()).unwrap_or(0),
            snapshot,
            journal: journal_path,
            compact_at: 0,
            min_compaction,
            dirty: false,
        };
        if rewrite {
            files.compact(&state).map_err(|e| with_path(&files.snapshot, e))?;
        } else {
            remove_tmp(&tmp_of(&files.snapshot));
            remove_tmp(&tmp_of(&files.journal));
        }
        files.compact_at = files.compaction_threshold();
        Ok(MemoryStore {
            inner: Arc::new(Mutex::new(StoreInner {
                state,
                files: Some(files),
                quorate: true,
            })),
        })
    }

    /// A volatile store (tests).
    pub fn volatile(state: ClusterState) -> MemoryStore {
        MemoryStore {
            inner: Arc::new(Mutex::new(StoreInner {
                state,
                files: None,
                quorate: true,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, StoreInner> {
        // A panic while holding the lock leaves a consistent state: apply
        // mutates only through whole-value assignments.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn snapshot(&self) -> ClusterState {
        self.lock().state.clone()
    }

    pub fn quorate(&self) -> bool {
        self.lock().quorate
    }

    pub fn manager_writes(&self) -> u64 {
        self.lock().state.manager_writes
    }

    /// Fault injection: a single-node store is always quorate unless told.
    pub fn set_quorate(&self, quorate: bool) {
        self.lock().quorate = quorate;
    }

    /// Applies a batch; fails without changing anything when not quorate
    /// or when the batch cannot be persisted. The batch is appended to the
    /// journal (fsync'd) before it is applied: a failed write (read-only
    /// or full disk) leaves nothing visible, not even after a restart.
    pub fn apply(&self, ops: Vec<Op>) -> Result<Vec<Reply>, StoreError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if !inner.quorate {
            return Err(StoreError::NoQuorum);
        }
        if let Some(files) = &mut inner.files {
            files
                .append(&ops, &inner.state)
                .map_err(|e| StoreError::Io(format!("{}: {e}", files.journal.display())))?;
        }
        let replies = inner.state.apply_proposal(ops);
        if let Some(files) = &mut inner.files
            && files.journal_len >= files.compact_at
            && let Err(e) = files.compact(&inner.state)
        {
            // The batch is safe in the journal; try again once it grew
            // by as much again.
            files.compact_at = files.compaction_threshold();
            tracing::warn!("{}: store compaction failed - {e}", files.snapshot.display());
        }
        Ok(replies)
    }
}

/// A `store.json` written before rules were stored parsed keeps them as
/// rules.cfg text under `rules_cfg`: parse it into `rules` (an error names
/// the file and the line) instead of dropping the rules as an unknown key.
fn upgrade_rules_text(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Ok(bytes); // the decoder names what is wrong
    };
    let Some(legacy) = object.remove("rules_cfg") else {
        return Ok(bytes);
    };
    let text = legacy.as_str().ok_or_else(|| {
        format!(
            "{}: refused store record: rules_cfg: expected rules.cfg text",
            path.display()
        )
    })?;
    let rules = crate::config::rules::parse_rules(text)
        .map_err(|e| format!("{}: refused store record: rules_cfg: {e}", path.display()))?;
    if object
        .get("rules")
        .is_some_and(|r| r.as_array().is_some_and(|a| !a.is_empty()))
    {
        return Err(format!(
            "{}: refused store record: both rules and rules_cfg are set",
            path.display()
        ));
    }
    object.insert("rules".into(), serde_json::to_value(rules).map_err(|e| e.to_string())?);
    serde_json::to_vec(&object).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::core::crm_command::CrmCommand;
    use crate::core::status::ResourceConfig;
    use crate::core::types::RequestState;

    fn stored(state: RequestState) -> ResourceConfig {
        ResourceConfig::new("node1", state)
    }

    fn put(sid: &str) -> Op {
        Op::PutResource {
            sid: sid.into(),
            resource: stored(RequestState::Started),
        }
    }

    /// A few batches of every kind a daemon writes: leases, heartbeats,
    /// configuration, commands.
    fn batches() -> Vec<Vec<Op>> {
        let mut batches = Vec::new();
        for round in 0..6u64 {
            batches.push(vec![
                Op::Acquire {
                    lock: crate::core::store::lock_name::LockName::Agent("node1".into()),
                    holder: "node1".into(),
                    now_ms: 1000 * round,
                    lease_ms: 6000,
                },
                Op::Heartbeat {
                    node: "node1".into(),
                    now_ms: 1000 * round,
                },
            ]);
            batches.push(vec![put(&format!("vm:{}", 100 + round))]);
        }
        batches.push(vec![Op::QueueCrmCommand(CrmCommand::ArmHa)]);
        batches.push(vec![Op::RemoveResource { sid: "vm:101".into() }]);
        batches
    }

    /// The state as a fresh open gives it (no writes counted yet).
    fn as_loaded(mut state: ClusterState) -> ClusterState {
        state.manager_writes = 0;
        state
    }

    fn apply_all(store: &MemoryStore, batches: Vec<Vec<Op>>) {
        for ops in batches {
            store.apply(ops).unwrap();
        }
    }

    #[test]
    fn store_refuses_writes_without_quorum_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::open(dir.path()).unwrap();
        store.apply(vec![Op::QueueCrmCommand(CrmCommand::ArmHa)]).unwrap();
        store.set_quorate(false);
        assert_eq!(store.apply(vec![Op::TakeCrmCommands]), Err(StoreError::NoQuorum));
        let reopened = MemoryStore::open(dir.path()).unwrap();
        assert_eq!(reopened.snapshot().crm_commands, VecDeque::from([CrmCommand::ArmHa]));
    }

    #[test]
    fn a_batch_appends_to_the_journal_and_reopening_gives_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::open(dir.path()).unwrap();
        let snapshot = std::fs::read(dir.path().join("store.json")).unwrap();
        let journal_len = |d: &Path| std::fs::metadata(d.join("store.journal")).unwrap().len();
        let mut last = journal_len(dir.path());
        assert_eq!(
            last,
            journal::HEADER_LEN as u64,
            "a fresh store starts an empty journal"
        );
        for ops in batches() {
            store.apply(ops).unwrap();
            let now = journal_len(dir.path());
            assert!(now > last, "every batch is appended");
            last = now;
        }
        assert_eq!(
            std::fs::read(dir.path().join("store.json")).unwrap(),
            snapshot,
            "a batch does not rewrite the snapshot"
        );
        let state = store.snapshot();
        assert_eq!(state.crm_commands, [CrmCommand::ArmHa]);
        assert!(!state.resources.contains_key("vm:101") && state.resources.contains_key("vm:105"));
        drop(store);
        let reopened = MemoryStore::open(dir.path()).unwrap();
        assert_eq!(reopened.snapshot(), as_loaded(state.clone()));
        // The journal was folded into the snapshot at the open.
        assert_eq!(journal_len(dir.path()), journal::HEADER_LEN as u64);
        assert_eq!(MemoryStore::open(dir.path()).unwrap().snapshot(), as_loaded(state));
    }

    #[test]
    fn the_journal_is_compacted_once_it_is_as_large_as_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::open_compacting_at(dir.path(), 0).unwrap();
        let mut compactions = 0;
        let mut last = std::fs::read(dir.path().join("store.json")).unwrap();
        for round in 0..40 {
            store.apply(batches()[round % 8].clone()).unwrap();
            let now = std::fs::read(dir.path().join("store.json")).unwrap();
            if now != last {
                compactions += 1;
                let journal = std::fs::metadata(dir.path().join("store.journal")).unwrap().len();
                assert_eq!(journal, journal::HEADER_LEN as u64, "a compaction starts a new journal");
                last = now;
            }
        }
        assert!((2..40).contains(&compactions), "{compactions} compactions");
        let state = store.snapshot();
        drop(store);
        assert_eq!(MemoryStore::open(dir.path()).unwrap().snapshot(), as_loaded(state));
    }

    #[test]
    fn a_torn_last_record_is_dropped() {
        let record = journal::encode_record(&[Op::QueueCrmCommand(CrmCommand::EnableNodeMaintenance {
            node: "never-acknowledged".into(),
        })])
        .unwrap();
        for cut in [1, 11, 12, record.len() - 1] {
            let dir = tempfile::tempdir().unwrap();
            let store = MemoryStore::open(dir.path()).unwrap();
            apply_all(&store, batches());
            let state = store.snapshot();
            drop(store);
            // A crash in the middle of appending one more batch.
            let path = dir.path().join("store.journal");
            let mut torn = std::fs::read(&path).unwrap();
            torn.extend_from_slice(&record[..cut]);
            std::fs::write(&path, &torn).unwrap();
            let reopened = MemoryStore::open(dir.path()).unwrap();
            assert_eq!(reopened.snapshot(), as_loaded(state), "cut at {cut}");
            let journal = std::fs::read(&path).unwrap();
            assert_eq!(journal.len(), journal::HEADER_LEN, "the torn tail is gone");
            // Batches after the cut are read back.
            reopened
                .apply(vec![Op::QueueCrmCommand(CrmCommand::DisableNodeMaintenance {
                    node: "after".into(),
                })])
                .unwrap();
            let after = reopened.snapshot();
            drop(reopened);
            assert_eq!(MemoryStore::open(dir.path()).unwrap().snapshot(), as_loaded(after));
        }
    }

    #[test]
    fn a_crash_at_any_step_of_a_compaction_reopens_to_the_same_state() {
        for step in ["staged", "snapshot renamed", "journal renamed"] {
            let dir = tempfile::tempdir().unwrap();
            let store = MemoryStore::open(dir.path()).unwrap();
            apply_all(&store, batches());
            let state = store.snapshot();
            drop(store);
            // What a compaction writes, stopped after `step`.
            let (snapshot, journal_path) = (dir.path().join("store.json"), dir.path().join("store.journal"));
            let bytes = serde_json::to_vec(&state).unwrap();
            std::fs::write(tmp_of(&snapshot), &bytes).unwrap();
            std::fs::write(tmp_of(&journal_path), journal::header(&journal::digest(&bytes))).unwrap();
            if step != "staged" {
                std::fs::rename(tmp_of(&snapshot), &snapshot).unwrap();
            }
            if step == "journal renamed" {
                std::fs::rename(tmp_of(&journal_path), &journal_path).unwrap();
            }
            let reopened = MemoryStore::open(dir.path()).unwrap();
            assert_eq!(
                reopened.snapshot(),
                as_loaded(state.clone()),
                "{step}: nothing lost, nothing applied twice"
            );
            assert_eq!(reopened.snapshot().crm_commands, [CrmCommand::ArmHa], "{step}");
            assert!(!tmp_of(&snapshot).exists() && !tmp_of(&journal_path).exists(), "{step}");
            reopened.apply(vec![put("vm:200")]).unwrap();
            let after = reopened.snapshot();
            drop(reopened);
            assert_eq!(
                MemoryStore::open(dir.path()).unwrap().snapshot(),
                as_loaded(after),
                "{step}"
            );
        }
    }

    #[test]
    fn a_journal_of_another_snapshot_or_damaged_before_its_end_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::open(dir.path()).unwrap();
        apply_all(&store, batches());
        drop(store);
        // Records behind the journal's start, kept by appending after the
        // fold at open.
        let store = MemoryStore::open(dir.path()).unwrap();
        apply_all(&store, batches());
        drop(store);
        let journal_path = dir.path().join("store.journal");
        let good = std::fs::read(&journal_path).unwrap();
        let mut bad = good.clone();
        bad[journal::HEADER_LEN + 14] ^= 0x20;
        std::fs::write(&journal_path, &bad).unwrap();
        let err = MemoryStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&journal_path.display().to_string()) && err.contains("byte offset 44"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(&journal_path).unwrap(),
            bad,
            "a refused journal is left as it is"
        );
        std::fs::write(&journal_path, &good).unwrap();
        // store.json replaced by hand while the journal still has records.
        let snapshot = dir.path().join("store.json");
        let saved = std::fs::read(&snapshot).unwrap();
        std::fs::write(&snapshot, serde_json::to_vec(&ClusterState::default()).unwrap()).unwrap();
        let err = MemoryStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&journal_path.display().to_string()) && err.contains("extends another"),
            "{err}"
        );
        std::fs::remove_file(&snapshot).unwrap();
        assert!(
            MemoryStore::open(dir.path())
                .unwrap_err()
                .to_string()
                .contains("extends another")
        );
        std::fs::write(&snapshot, saved).unwrap();
        MemoryStore::open(dir.path()).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_nothing_visible() {
        // Tests run as root, which ignores file modes: a directory where
        // the journal goes makes the write fail.
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::open(dir.path()).unwrap();
        store.apply(vec![Op::QueueCrmCommand(CrmCommand::ArmHa)]).unwrap();
        let before = store.snapshot();
        let journal_path = dir.path().join("store.journal");
        std::fs::remove_file(&journal_path).unwrap();
        std::fs::create_dir(&journal_path).unwrap();
        let err = store.apply(vec![put("vm:100"), Op::TakeCrmCommands]).unwrap_err();
        assert!(
            matches!(&err, StoreError::Io(e) if e.contains(&journal_path.display().to_string())),
            "{err:?}"
        );
        assert_eq!(store.snapshot(), before, "a failed write changes nothing");
        // The next batch rewrites snapshot and journal first; while the
        // journal cannot be replaced that fails too.
        assert!(store.apply(vec![put("vm:100")]).is_err());
        assert_eq!(store.snapshot(), before);
        let snapshot = dir.path().join("store.json");
        assert!(!tmp_of(&snapshot).exists(), "the snapshot was renamed into place");
        assert_eq!(
            MemoryStore::open_compacting_at(dir.path(), 0)
                .map(|_| ())
                .unwrap_err()
                .kind(),
            std::io::ErrorKind::IsADirectory,
            "nothing reads a journal that is not a file"
        );
        std::fs::remove_dir(&journal_path).unwrap();
        store.apply(vec![put("vm:100")]).unwrap();
        let reopened = MemoryStore::open(dir.path()).unwrap().snapshot();
        assert!(reopened.resources.contains_key("vm:100"));
        assert_eq!(reopened.crm_commands, VecDeque::from([CrmCommand::ArmHa]));
    }

    #[test]
    fn rules_kept_as_text_by_an_older_version_are_parsed_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.json");
        let mut old = serde_json::to_value(ClusterState::default()).unwrap();
        let object = old.as_object_mut().unwrap();
        object.remove("rules");
        object.insert(
            "rules_cfg".into(),
            "resource-affinity: apart\n\taffinity negative\n\tresources vm:100,vm:101\n\n".into(),
        );
        std::fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
        let rules = MemoryStore::open(dir.path()).unwrap().snapshot().rules;
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].id, "apart");

        object_with_bad_rules(&path);
        let err = MemoryStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("store.json: refused store record: rules_cfg: line 1"),
            "{err}"
        );
    }

    fn object_with_bad_rules(path: &Path) {
        let mut old = serde_json::to_value(ClusterState::default()).unwrap();
        let object = old.as_object_mut().unwrap();
        object.insert("rules_cfg".into(), "bogus: r1\n".into());
        std::fs::write(path, serde_json::to_vec(&old).unwrap()).unwrap();
    }

    mod file {
        use proptest::prelude::*;

        use super::super::{MemoryStore, journal};
        use super::{as_loaded, batches};
        use crate::core::store::check::validate;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

            /// `MemoryStore::open` refuses a bad file with its path or opens
            /// a state that passes the store's checks.
            #[test]
            fn open_refuses_with_the_path_or_loads(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("store.json");
                std::fs::write(&path, &bytes).unwrap();
                match MemoryStore::open(dir.path()) {
                    Err(e) => prop_assert!(e.to_string().contains(&path.display().to_string()), "{}", e),
                    Ok(store) => prop_assert_eq!(validate(&store.snapshot()), Ok(())),
                }
            }

            /// A journal with a byte changed is refused with its path, or
            /// gives the state of some first batches: never a misread one.
            #[test]
            fn a_mutated_journal_is_refused_or_gives_a_prefix(at in any::<prop::sample::Index>(), bit in 0u8..8) {
                let dir = tempfile::tempdir().unwrap();
                let store = MemoryStore::open(dir.path()).unwrap();
                let mut prefixes = vec![as_loaded(store.snapshot())];
                for ops in batches() {
                    store.apply(ops).unwrap();
                    prefixes.push(as_loaded(store.snapshot()));
                }
                drop(store);
                let path = dir.path().join("store.journal");
                let mut bytes = std::fs::read(&path).unwrap();
                let at = at.index(bytes.len());
                bytes[at] ^= 1 << bit;
                std::fs::write(&path, &bytes).unwrap();
                match MemoryStore::open(dir.path()) {
                    Err(e) => prop_assert!(e.to_string().starts_with(&path.display().to_string()), "{}", e),
                    Ok(store) => {
                        prop_assert!(at >= journal::HEADER_LEN);
                        prop_assert!(prefixes.contains(&store.snapshot()), "flip at {}", at);
                    }
                }
            }
        }
    }
}
