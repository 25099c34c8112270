//! The API server: a Unix socket on the daemon's actix system.
//!
//! - The socket is created owner-only (0600; its directory is created
//!   0700 when missing) and every connection's peer is checked with
//!   SO_PEERCRED: only root and the daemon's own uid are served, anybody
//!   else gets one error line.
//! - Reads take one snapshot from the LockActor. Edits are planned
//!   against a snapshot and applied as one [`Op::Cas`] on the digest of
//!   that snapshot's configuration; when another writer got in between,
//!   the edit is planned again against the new state (its checks run
//!   again), so two racing clients never lose an update. An edit with a
//!   user-given `--digest` is not retried: a mismatch is the user's error.
//! - Edits are refused without quorum ("cluster not quorate"), never
//!   queued.
//! - Over the replicated store, reads come from this node's replica,
//!   which applies a committed change a moment after the leader. An edit
//!   returns once the replica has it (a client reads its own writes), and
//!   a lost race is planned again once the replica has the winner's
//!   change.
//!
//! The LockActor may answer slowly (consensus): every call has a timeout.
//!
//! The server shares the daemon's actix thread with the rounds, whose
//! lease renewals must not wait: everything that grows with the store
//! (status entries, config views, planning an edit, configuration
//! digests, encoding the reply) runs on tokio's blocking pool, never on
//! that thread. A status of 100 000 resources takes a few hundred
//! milliseconds of CPU; on the actix thread it delayed lease renewals
//! past the watchdog's timeout and fenced the node.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::core::store::{Op, Reply, Snapshot, StoreError};

use super::plan::{self, PlanContext};
use super::protocol::{self, MAX_REQUEST, Outcome, Request, Response};
use super::status::{self, StatusContext};

/// How the server answers.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub socket: PathBuf,
    pub plan: PlanContext,
    /// See [`StatusContext::fresh_secs`].
    pub fresh_secs: i64,
    /// The CRS mode shown by `status`.
    pub crs: String,
    /// Longest wait for the store.
    pub store_timeout: Duration,
}

/// A call into the store, run on the daemon's actix system.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// How the API server reaches this node's store: the daemon hands in its
/// LockActor behind this, a test a store of its own. The outer `Err` says
/// the store could not be reached; the server bounds every call with
/// [`ServerConfig::store_timeout`].
pub trait StoreAccess: Clone + 'static {
    fn snapshot(&self) -> StoreFuture<Result<Snapshot, String>>;
    fn apply(&self, ops: Vec<Op>) -> StoreFuture<Result<Result<Vec<Reply>, StoreError>, String>>;
}

/// A single node's in-process store as the server's store, answering at
/// once (tests and benchmarks serve one without the actor tree).
#[derive(Clone)]
pub struct DirectStore {
    pub store: crate::node::memory_store::MemoryStore,
    /// The one member, always online.
    pub node: String,
}

impl StoreAccess for DirectStore {
    fn snapshot(&self) -> StoreFuture<Result<Snapshot, String>> {
        let snapshot = Snapshot {
            state: self.store.snapshot(),
            quorate: self.store.quorate(),
            members: [(self.node.clone(), true)].into(),
        };
        Box::pin(async move { Ok(snapshot) })
    }

    fn apply(&self, ops: Vec<Op>) -> StoreFuture<Result<Result<Vec<Reply>, StoreError>, String>> {
        let result = self.store.apply(ops);
        Box::pin(async move { Ok(result) })
    }
}

/// How often an edit is planned again after losing a race.
const MAX_ATTEMPTS: usize = 16;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the socket owner-only. A stale socket file (nobody listening) is
/// replaced; a live one is an error (another daemon runs).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{}: another daemon is listening", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{}: exists and is not a socket", path.display()),
            ));
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display())))?;
    // The peer check below also covers the moment before this chmod.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Whether a peer uid may use the API: root and the daemon's own uid.
pub fn peer_allowed(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == own_uid
}

/// Serves connections until the system stops.
pub fn start<S: StoreAccess>(listener: UnixListener, lock: S, config: ServerConfig) {
    let own_uid = nix::unistd::geteuid().as_raw();
    let config = std::sync::Arc::new(config);
    actix_rt::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let (lock, config) = (lock.clone(), config.clone());
                    actix_rt::spawn(async move {
                        if let Err(e) = serve(stream, own_uid, &lock, &config).await {
                            tracing::debug!("api connection: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("api socket accept failed: {e}");
                    actix_rt::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
}

async fn serve<S: StoreAccess>(
    mut stream: UnixStream,
    own_uid: u32,
    lock: &S,
    config: &ServerConfig,
) -> std::io::Result<()> {
    let uid = stream.peer_cred()?.uid();
    if !peer_allowed(uid, own_uid) {
        tracing::warn!(uid, "api: refused a connection from an unprivileged user");
        let message = format!("permission denied - uid {uid} may not use the HA manager socket (root only)");
        stream.write_all(&protocol::encode(&Outcome::Error(message))).await?;
        return stream.shutdown().await;
    }
    let (read, mut write) = stream.split();
    let mut line = Vec::new();
    let limit = u64::try_from(MAX_REQUEST).unwrap_or(u64::MAX) + 1;
    let mut reader = BufReader::new(read).take(limit);
    let outcome = match tokio::time::timeout(READ_TIMEOUT, reader.read_until(b'\n', &mut line)).await {
        Err(_) => Outcome::Error("timeout reading the request".into()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(_)) if line.len() > MAX_REQUEST => {
            Outcome::Error(format!("request too large (at most {MAX_REQUEST} bytes)"))
        }
        Ok(Ok(_)) => match protocol::decode_request(&line) {
            Err(message) => Outcome::Error(message),
            Ok(request) => match handle(lock, config, request).await {
                Ok(response) => Outcome::Ok(response),
                Err(message) => Outcome::Error(message),
            },
        },
    };
    let reply = off_thread(move || protocol::encode(&outcome))
        .await
        .unwrap_or_else(|e| protocol::encode(&Outcome::Error(e)));
    write.write_all(&reply).await?;
    write.shutdown().await
}

/// Runs `work` on the blocking pool (see the module doc).
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    actix_rt::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("internal error - {e}"))
}

async fn snapshot<S: StoreAccess>(lock: &S, config: &ServerConfig) -> Result<Snapshot, String> {
    match tokio::time::timeout(config.store_timeout, lock.snapshot()).await {
        Ok(Ok(snapshot)) => Ok(snapshot),
        Ok(Err(e)) => Err(format!("cluster store unavailable - {e}")),
        Err(_) => Err("timeout waiting for the cluster store".into()),
    }
}

/// Longest wait for this node's replica to apply a committed change.
const CATCH_UP: Duration = Duration::from_secs(5);

/// Waits until this node's replica has moved past the configuration with
/// `digest` (at most [`CATCH_UP`]; a replica that lags further is planned
/// against anyway, and the compare-and-swap stays the judge).
async fn catch_up<S: StoreAccess>(lock: &S, config: &ServerConfig, digest: &str) {
    let deadline = tokio::time::Instant::now() + CATCH_UP.min(config.store_timeout);
    while tokio::time::Instant::now() < deadline {
        let Ok(snap) = snapshot(lock, config).await else {
            return;
        };
        if off_thread(move || snap.state.config_digest()).await.ok().as_deref() != Some(digest) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn now_secs() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Answers one request.
pub async fn handle<S: StoreAccess>(lock: &S, config: &ServerConfig, request: Request) -> Result<Response, String> {
    if let Request::Status { verbose } = request {
        let snap = snapshot(lock, config).await?;
        let (local, fresh_secs, crs) = (config.plan.node.clone(), config.fresh_secs, config.crs.clone());
        return off_thread(move || {
            let ctx = StatusContext {
                local: &local,
                quorate: snap.quorate,
                now: now_secs(),
                fresh_secs,
                crs: &crs,
            };
            let entries = status::entries(&snap.state, &ctx);
            let full = verbose.then(|| status::full_state(&snap.state, &ctx));
            Response::Status { entries, full }
        })
        .await;
    }
    if !request.is_edit() {
        let snap = snapshot(lock, config).await?;
        return off_thread(move || plan::read(&request, &snap)).await?;
    }
    let request = std::sync::Arc::new(request);
    for _ in 0..MAX_ATTEMPTS {
        let snap = snapshot(lock, config).await?;
        if !snap.quorate {
            return Err("cluster not quorate".into());
        }
        let (request, context) = (request.clone(), config.plan.clone());
        let (plan, digest, op, changes_config) = off_thread(move || {
            let plan = plan::plan(&request, &snap, &context)?;
            let digest = plan.digest.clone().unwrap_or_else(|| snap.state.config_digest());
            let op = Op::Cas {
                digest: digest.clone(),
                ops: plan.ops.clone(),
            };
            let mut next = snap.state;
            let changes_config = matches!(next.apply(op.clone()), Reply::Batch(_)) && next.config_digest() != digest;
            Ok::<_, String>((plan, digest, op, changes_config))
        })
        .await??;
        let replies = match tokio::time::timeout(config.store_timeout, lock.apply(vec![op])).await {
            Ok(Ok(Ok(replies))) => replies,
            Ok(Ok(Err(e))) => return Err(e.to_string()),
            Ok(Err(e)) => return Err(format!("cluster store unavailable - {e}")),
            Err(_) => return Err("timeout waiting for the cluster store (the change may still be applied)".into()),
        };
        match replies.first() {
            Some(Reply::Batch(_)) => {
                if changes_config {
                    // Read your own writes: the next command on this node
                    // sees the change.
                    catch_up(lock, config, &digest).await;
                }
                return match plan.error_after {
                    Some(message) => Err(message),
                    None => Ok(Response::Done {
                        messages: plan.messages,
                    }),
                };
            }
            Some(Reply::DigestMismatch { .. }) if plan.digest.is_some() => {
                return Err("detected modified configuration - file changed by other user? Try again.".into());
            }
            Some(Reply::DigestMismatch { .. }) => {
                // Somebody else's change committed first: plan again once
                // this replica has it (a follower applies a moment after
                // the leader).
                catch_up(lock, config, &digest).await;
            }
            other => return Err(format!("unexpected store reply {other:?}")),
        }
    }
    Err("the configuration kept changing concurrently - try again".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_the_daemons_uid_are_served() {
        assert!(peer_allowed(0, 1000));
        assert!(peer_allowed(1000, 1000));
        assert!(!peer_allowed(1001, 1000));
        assert!(!peer_allowed(65534, 0));
    }

    #[actix_rt::test]
    async fn edits_without_quorum_are_refused_not_queued() {
        use crate::core::store::ClusterState;
        use crate::node::memory_store::MemoryStore;

        let store = MemoryStore::volatile(ClusterState::default());
        let lock = DirectStore {
            store: store.clone(),
            node: "node1".into(),
        };
        let config = ServerConfig {
            socket: PathBuf::new(),
            plan: PlanContext {
                node: "node1".into(),
                ..PlanContext::default()
            },
            fresh_secs: 30,
            crs: "basic".into(),
            store_timeout: Duration::from_secs(5),
        };
        assert_eq!(
            handle(&lock, &config, Request::ArmHa).await,
            Ok(Response::Done { messages: vec![] })
        );
        store.set_quorate(false);
        assert_eq!(
            handle(&lock, &config, Request::DisarmHa { mode: "freeze".into() }).await,
            Err("cluster not quorate".into())
        );
        assert_eq!(
            store.snapshot().crm_commands,
            [crate::core::crm_command::CrmCommand::ArmHa],
            "nothing queued"
        );
        let Ok(Response::Status { entries, .. }) = handle(&lock, &config, Request::Status { verbose: false }).await
        else {
            panic!()
        };
        assert_eq!(entries[0].status, "No quorum on node 'node1'!", "reads still work");
    }

    #[actix_rt::test]
    async fn the_socket_is_owner_only_and_a_stale_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/hactor.sock");
        let listener = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let err = bind(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
        drop(listener);
        bind(&path).expect("a stale socket is replaced");
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        assert!(bind(&file).unwrap_err().to_string().contains("not a socket"));
    }
}
