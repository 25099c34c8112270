//! The in-process store of a single node: the core's [`ClusterState`]
//! behind a mutex, persisted under the node's state directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::core::store::{ClusterState, Op, Reply, StoreError};

/// The in-process store of a single node: a mutex-guarded state persisted
/// (atomically, as JSON) under the node's state directory after every
/// batch of changes.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<StoreInner>>,
}

#[derive(Debug)]
struct StoreInner {
    state: ClusterState,
    path: Option<PathBuf>,
    quorate: bool,
}

impl MemoryStore {
    /// A store persisted to `dir/store.json` (loaded when present). A
    /// file that is not a valid store, or holds a record the API would
    /// have refused (see [`crate::core::store::check`]), is refused with its path
    /// and the line or key.
    pub fn open(dir: &Path) -> std::io::Result<MemoryStore> {
        std::fs::create_dir_all(dir).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        let path = dir.join("store.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let bytes = upgrade_rules_text(&path, bytes).map_err(std::io::Error::other)?;
                crate::core::store::check::decode(&path, &bytes).map_err(std::io::Error::other)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ClusterState::default(),
            Err(e) => return Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        Ok(MemoryStore {
            inner: Arc::new(Mutex::new(StoreInner {
                state,
                path: Some(path),
                quorate: true,
            })),
        })
    }

    /// A volatile store (tests).
    pub fn volatile(state: ClusterState) -> MemoryStore {
        MemoryStore {
            inner: Arc::new(Mutex::new(StoreInner {
                state,
                path: None,
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
    /// or when the new state cannot be persisted. The batch is applied to
    /// a copy, which replaces the state only once it is on disk: a failed
    /// write (read-only or full disk) leaves nothing visible, not even
    /// until the next restart.
    pub fn apply(&self, ops: Vec<Op>) -> Result<Vec<Reply>, StoreError> {
        let mut inner = self.lock();
        if !inner.quorate {
            return Err(StoreError::NoQuorum);
        }
        let mut next = inner.state.clone();
        let replies = next.apply_proposal(ops);
        if let Some(path) = &inner.path {
            persist(path, &next).map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))?;
        }
        inner.state = next;
        Ok(replies)
    }
}

/// Writes `state` to `path` atomically: a temporary file, fsync'd, then
/// renamed over the old one. A failure removes the temporary file (best
/// effort) and leaves the old file as it was.
fn persist(path: &Path, state: &ClusterState) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    let written = (|| {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() && std::fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_file()) {
        let _ = std::fs::remove_file(&tmp);
    }
    written
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
    use crate::core::store::StoredResource;
    use crate::core::types::RequestState;

    fn stored(state: RequestState) -> StoredResource {
        StoredResource::new("node1", state)
    }

    #[test]
    fn store_refuses_writes_without_quorum_and_persists_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::open(dir.path()).unwrap();
        store.apply(vec![Op::QueueCrmCommand("arm-ha".into())]).unwrap();
        store.set_quorate(false);
        assert_eq!(store.apply(vec![Op::TakeCrmCommands]), Err(StoreError::NoQuorum));
        let reopened = MemoryStore::open(dir.path()).unwrap();
        assert_eq!(reopened.snapshot().crm_commands, VecDeque::from(["arm-ha".to_string()]));
    }

    #[test]
    fn a_failed_write_leaves_nothing_visible() {
        // Tests run as root, which ignores file modes: a directory where
        // the temporary file or the store goes makes the write fail.
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::open(dir.path()).unwrap();
        store.apply(vec![Op::QueueCrmCommand("arm-ha".into())]).unwrap();
        let before = store.snapshot();
        let put = || Op::PutResource {
            sid: "vm:100".into(),
            resource: stored(RequestState::Started),
        };
        let tmp = dir.path().join("store.json.tmp");
        std::fs::create_dir(&tmp).unwrap();
        let err = store.apply(vec![put(), Op::TakeCrmCommands]).unwrap_err();
        assert!(
            matches!(&err, StoreError::Io(e) if e.contains(&dir.path().join("store.json").display().to_string())),
            "{err:?}"
        );
        assert_eq!(store.snapshot(), before, "a failed write changes nothing");
        std::fs::remove_dir(&tmp).unwrap();
        // The rename fails: the store's path is a non-empty directory.
        let path = dir.path().join("store.json");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir_all(path.join("x")).unwrap();
        assert!(store.apply(vec![put()]).is_err());
        assert_eq!(store.snapshot(), before);
        assert!(!tmp.exists(), "the temporary file is cleaned up");
        std::fs::remove_dir_all(&path).unwrap();
        store.apply(vec![put()]).unwrap();
        let reopened = MemoryStore::open(dir.path()).unwrap().snapshot();
        assert!(reopened.resources.contains_key("vm:100"));
        assert_eq!(reopened.crm_commands, VecDeque::from(["arm-ha".to_string()]));
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

        use super::super::MemoryStore;
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
        }
    }
}
