//! The daemon's live view (`[web] listen = "127.0.0.1:8006"`): the
//! cluster's nodes, services, a timeline and the recent HA decisions in a
//! browser, read-only.
//!
//! - One poller reads a snapshot from the LockActor every
//!   [`LiveConfig::poll`] through the same message `ha-manager status`
//!   uses (`GetSnapshot`), with a timeout, and never asks again while an
//!   answer is outstanding. Clients never reach the actor: a thousand
//!   browsers cost the actor what one does, and a slow one costs nothing
//!   (see [`super::board`] and [`super::http`] for the bounds).
//! - The decision log is derived from successive snapshots: node and
//!   service state changes in upstream's wording, a new master.
//! - No endpoint changes anything (only GET is answered); edits stay with
//!   `ha-manager` and its socket's access rules.
//! - Loopback by default. Any other address needs TLS and a token
//!   (checked when the configuration is loaded); the token goes in an
//!   `Authorization: Bearer` header or a `token=` query parameter (the
//!   page passes its own on to the event stream).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::Addr;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::actors::lock::{GetSnapshot, LockActor, Snapshot};
use crate::api::status::{self, StatusContext};
use crate::core::store::lock_name::LockName;
use crate::core::types::NodeState;

use super::asset;
use super::board::{self, Board};
use super::http::{self, Counters, Limits, Req, Resp};
use super::lanes::{Lanes, ServiceSeen};

/// Decision lines kept in memory.
pub const MAX_DECISIONS: usize = 2_000;

/// The `[web]` settings, resolved.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub listen: SocketAddr,
    /// PEM files of the server certificate (chain) and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The access token (the first line of the token file).
    pub token: Option<String>,
    pub poll: Duration,
    pub limits: Limits,
    /// This node (the quorum line is its view).
    pub node: String,
    pub fresh_secs: i64,
}

/// A running live view.
pub struct LiveServer {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    /// Snapshots asked of the LockActor so far (for tests: clients do not
    /// add to it).
    pub polls: Arc<AtomicU64>,
}

struct Live {
    board: Rc<RefCell<Board>>,
    lanes: Lanes,
    started: Instant,
    /// The view without its clock parts, to publish on change only.
    last_core: String,
    last_publish: Instant,
    previous: Option<Snapshot>,
}

fn wall_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn clock() -> String {
    let secs = wall_secs().rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Fence acknowledgements between two snapshots: a node's agent lease
/// taken over by another node (the master), as `(node, new holder)`.
pub fn fence_acks(before: &Snapshot, after: &Snapshot) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, lease) in &after.state.leases {
        let LockName::Agent(node) = name else {
            continue;
        };
        let was = before.state.leases.get(name).map(|l| l.holder.as_str());
        if lease.holder != *node && was != Some(lease.holder.as_str()) {
            out.push((node.clone(), lease.holder.clone()));
        }
    }
    out
}

/// The decision lines between two snapshots, in upstream's wording.
pub fn decisions(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let (old, new) = (&before.state.manager_status, &after.state.manager_status);
    let mut out = Vec::new();
    if new.master_node != old.master_node
        && let Some(master) = &new.master_node
    {
        out.push(format!("{master}/crm: status change => master"));
    }
    let master = new.master_node.as_deref().unwrap_or("-");
    for (node, holder) in fence_acks(before, after) {
        out.push(format!(
            "{holder}/crm: fencing: acknowledged - got agent lock for node '{node}'"
        ));
    }
    for (node, state) in &new.node_status {
        if let Some(was) = old.node_status.get(node).filter(|was| *was != state) {
            out.push(format!(
                "{master}/crm: node '{node}': state changed from '{was}' => '{state}'"
            ));
        }
    }
    for (sid, sd) in &new.service_status {
        match old.service_status.get(sid) {
            Some(was) if was.state != sd.state => out.push(format!(
                "{master}/crm: service '{sid}': state changed from '{}' to '{}'{}",
                was.state,
                sd.state,
                if sd.node != was.node {
                    format!("  (node = {})", sd.node)
                } else {
                    String::new()
                }
            )),
            Some(was) if was.node != sd.node => {
                let lost = new
                    .node_status
                    .get(&was.node)
                    .is_some_and(|s| matches!(s, NodeState::Unknown | NodeState::Fence));
                out.push(if lost {
                    format!(
                        "{master}/crm: recover service '{sid}' from fenced node '{}' to node '{}'",
                        was.node, sd.node
                    )
                } else {
                    format!(
                        "{master}/crm: service '{sid}': moved from '{}' to '{}'",
                        was.node, sd.node
                    )
                });
            }
            None => out.push(format!(
                "{master}/crm: adding new service '{sid}' on node '{}'",
                sd.node
            )),
            _ => {}
        }
    }
    for sid in old
        .service_status
        .keys()
        .filter(|s| !new.service_status.contains_key(*s))
    {
        out.push(format!("{master}/crm: removing stale service '{sid}'"));
    }
    if before.quorate != after.quorate {
        out.push(format!("quorum: {}", if after.quorate { "OK" } else { "lost" }));
    }
    out
}

/// Whether two snapshots show the same view (timestamps aside, which
/// change every round): most reads change nothing, and comparing is far
/// cheaper than rendering.
fn same_view(a: &Snapshot, b: &Snapshot, now: i64, fresh_secs: i64) -> bool {
    let (x, y) = (&a.state.manager_status, &b.state.manager_status);
    let lrm = |s: &Snapshot| -> Vec<(String, String, String, bool)> {
        s.state
            .lrm_status
            .iter()
            .map(|(n, l)| {
                (
                    n.clone(),
                    l.state.clone(),
                    l.mode.to_string(),
                    now - l.timestamp <= fresh_secs,
                )
            })
            .collect()
    };
    let holders = |s: &Snapshot| -> Vec<(String, String)> {
        s.state
            .leases
            .iter()
            .map(|(k, l)| (k.to_string(), l.holder.clone()))
            .collect()
    };
    a.quorate == b.quorate
        && a.members == b.members
        && x.master_node == y.master_node
        && x.node_status == y.node_status
        && x.service_status == y.service_status
        && x.node_request == y.node_request
        && x.disarm == y.disarm
        && a.state.resources == b.state.resources
        && lrm(a) == lrm(b)
        && holders(a) == holders(b)
}

impl Live {
    fn core_view(&self, snap: &Snapshot, config: &LiveConfig) -> Value {
        let state = &snap.state;
        let ms = &state.manager_status;
        let now = wall_secs();
        let mut names: Vec<&String> = ms.node_status.keys().collect();
        for n in snap.members.keys().chain(state.lrm_status.keys()) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names.sort();
        let nodes: Vec<Value> = names
            .into_iter()
            .map(|name| {
                let lrm = state.lrm_status.get(name).filter(|l| l.timestamp != 0);
                let fresh = lrm.is_some_and(|l| now - l.timestamp <= config.fresh_secs);
                let master = ms.master_node.as_deref() == Some(name.as_str());
                json!({
                    "name": name,
                    "power": Value::Null,
                    "network": snap.members.get(name),
                    "crm": if master { Some("master") } else { None },
                    "lrm": lrm.map(|l| if fresh { l.state.clone() } else { format!("{} (old timestamp - dead?)", l.state) }),
                    "mode": lrm.map(|l| l.mode.to_string()),
                    "quorum": if *name == config.node { Some(snap.quorate) } else { None },
                    "status": ms.node_status.get(name).map(|s| s.as_str()),
                    "master": master,
                    "maintenance": ms.maintenance_requested(name),
                })
            })
            .collect();
        let mut sids: Vec<&String> = state.resources.keys().collect();
        sids.extend(ms.service_status.keys().filter(|s| !state.resources.contains_key(*s)));
        sids.sort();
        let services: Vec<Value> = sids
            .into_iter()
            .map(|sid| {
                let sd = ms.service_status.get(sid);
                let cd = state.resources.get(sid);
                json!({
                    "sid": sid,
                    "state": sd.map(|sd| sd.state.as_str()),
                    "node": sd.map(|sd| sd.node.clone()).or_else(|| cd.and_then(|cd| cd.node.clone())),
                    "request": cd.map(|cd| cd.state.as_str()),
                    "target": sd.and_then(|sd| sd.target.clone()),
                    "running": sd.is_some_and(|sd| sd.running),
                    "failed_nodes": sd.and_then(|sd| sd.failed_nodes.clone()).unwrap_or_default(),
                    "restarts": Value::Null,
                    "max_restart": cd.map(|cd| cd.max_restart),
                    "max_relocate": cd.map(|cd| cd.max_relocate),
                })
            })
            .collect();
        let ctx = StatusContext {
            local: &config.node,
            quorate: snap.quorate,
            now,
            fresh_secs: config.fresh_secs,
            crs: "basic",
        };
        let status_lines: Vec<String> = status::entries(state, &ctx)
            .into_iter()
            .map(|e| format!("{} {}", e.kind, e.status))
            .collect();
        json!({
            "kind": "live",
            "clock": "wall",
            "node": config.node,
            "quorate": snap.quorate,
            "master": ms.master_node,
            "disarm": ms.disarm.as_ref().map(|d| format!("{}, resource mode: {}", d.state, d.mode)),
            "nodes": nodes,
            "services": services,
            "status": status_lines,
        })
    }

    fn observe(&mut self, snap: Snapshot, config: &LiveConfig) {
        let at = self.started.elapsed().as_secs_f64();
        let unchanged = self
            .previous
            .as_ref()
            .is_some_and(|before| same_view(before, &snap, wall_secs(), config.fresh_secs));
        if unchanged && self.last_publish.elapsed() < Duration::from_secs(1) {
            self.lanes.end = at;
            return;
        }
        let ms = &snap.state.manager_status;
        let node_status: BTreeMap<String, String> = ms
            .node_status
            .iter()
            .map(|(n, s)| (n.clone(), s.as_str().to_string()))
            .collect();
        let seen: Vec<ServiceSeen> = ms
            .service_status
            .iter()
            .map(|(sid, sd)| ServiceSeen {
                sid: sid.clone(),
                node: sd.node.clone(),
                state: sd.state.as_str().to_string(),
            })
            .collect();
        self.lanes.observe(at, &node_status, &seen);
        if let Some(before) = &self.previous {
            for (node, holder) in fence_acks(before, &snap) {
                let label = format!("{holder} got the agent lock of {node}");
                self.lanes.mark(at, &node, "fence acknowledged", label);
            }
        }
        let lines = match &self.previous {
            Some(before) => decisions(before, &snap),
            None => vec![format!("live view of node '{}' started", config.node)],
        };
        let core = self.core_view(&snap, config);
        let core_text = core.to_string();
        let changed = core_text != self.last_core || !lines.is_empty();
        self.previous = Some(snap);
        if !changed && self.last_publish.elapsed() < Duration::from_secs(1) {
            return;
        }
        let mut board = self.board.borrow_mut();
        let stamp = clock();
        for line in lines {
            board.push_log(format!("{stamp} {line}"));
        }
        let mut view = core;
        view["time"] = json!(at);
        view["emitted_ms"] = json!(board::now_ms() as u64);
        view["timeline"] = serde_json::to_value(&self.lanes).unwrap_or(Value::Null);
        board.publish(view.to_string());
        self.last_core = core_text;
        self.last_publish = Instant::now();
    }
}

/// Loads the TLS acceptor from PEM files; errors name the file.
fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("web.tls_cert: {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("web.tls_cert: {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("web.tls_cert: {}: no certificate in the file", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("web.tls_key: {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("web: TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("web.tls_cert/tls_key: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

/// The first line of a token file: at least [`MIN_TOKEN_LEN`] characters.
pub fn read_token(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("web.token_file: {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.len() < MIN_TOKEN_LEN || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "web.token_file: {}: the token must be at least {MIN_TOKEN_LEN} printable characters on the first line",
            path.display()
        ));
    }
    Ok(token)
}

/// Shortest accepted token.
pub const MIN_TOKEN_LEN: usize = 16;

/// A live view bound to its address, not serving yet: binding comes
/// before the node arms anything, so a bad address or certificate stops
/// the daemon early.
pub struct BoundLive {
    config: LiveConfig,
    listener: std::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    pub addr: SocketAddr,
}

/// Loads TLS, checks the access rules and binds.
pub async fn bind(config: LiveConfig) -> Result<BoundLive, String> {
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    if !config.listen.ip().is_loopback() && (tls.is_none() || config.token.is_none()) {
        return Err(format!(
            "web.listen: {} is not a loopback address: a remote live view needs tls_cert, tls_key and token_file",
            config.listen
        ));
    }
    let listener = std::net::TcpListener::bind(config.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("web.listen: cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    Ok(BoundLive {
        config,
        listener,
        tls,
        addr,
    })
}

impl BoundLive {
    /// Starts the view on a thread of its own (its own single-threaded
    /// runtime): rendering views and writing to clients never takes time
    /// from the actors; the only contact is one `GetSnapshot` per poll.
    pub fn start(self, lock: Addr<LockActor>) -> LiveServer {
        let counters = Arc::new(Counters::default());
        let polls = Arc::new(AtomicU64::new(0));
        let server = LiveServer {
            addr: self.addr,
            counters: counters.clone(),
            polls: polls.clone(),
        };
        let spawned = std::thread::Builder::new().name("hactor-web".into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::error!("web: cannot start the live view's runtime: {e}");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, self.serve(lock, counters, polls));
        });
        if let Err(e) = spawned {
            tracing::error!("web: cannot start the live view's thread: {e}");
        }
        server
    }

    async fn serve(self, lock: Addr<LockActor>, counters: Arc<Counters>, polls: Arc<AtomicU64>) {
        let BoundLive {
            config, listener, tls, ..
        } = self;
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!("web: {e}");
                return;
            }
        };
        let board = Rc::new(RefCell::new(Board::default()));
        let live = Rc::new(RefCell::new(Live {
            board: board.clone(),
            lanes: Lanes::default(),
            started: Instant::now(),
            last_core: String::new(),
            last_publish: Instant::now(),
            previous: None,
        }));
        let config = Rc::new(config);
        let limits = config.limits;
        let loopback = config.listen.ip().is_loopback();
        {
            let (board, config) = (board.clone(), config.clone());
            http::serve(listener, tls, limits, counters, move |request| {
                let (board, config) = (board.clone(), config.clone());
                async move { handle(request, &board, &config, loopback) }
            });
        }
        let mut ticker = tokio::time::interval(config.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            polls.fetch_add(1, Ordering::Relaxed);
            // One request at a time, and not for long: a busy actor
            // answers the next tick instead.
            let wait = config.poll.max(Duration::from_millis(500));
            match tokio::time::timeout(wait, lock.send(GetSnapshot)).await {
                Ok(Ok(snap)) => live.borrow_mut().observe(snap, &config),
                Ok(Err(_)) => return, // the actor is gone: the daemon stops
                Err(_) => tracing::debug!("web: snapshot timed out"),
            }
        }
    }
}

fn authorized(request: &Req, token: &str) -> bool {
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let given = bearer.or_else(|| http::query_param(request.uri().query(), "token"));
    given.is_some_and(|g| http::same_secret(g.as_bytes(), token.as_bytes()))
}

fn handle(request: Req, board: &Rc<RefCell<Board>>, config: &LiveConfig, loopback: bool) -> Resp {
    if request.method() != Method::GET {
        return http::text(StatusCode::METHOD_NOT_ALLOWED, "the live view is read-only");
    }
    if loopback {
        let host_ok = request
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .is_some_and(http::loopback_host);
        if !host_ok {
            return http::text(StatusCode::FORBIDDEN, "this live view answers loopback names only");
        }
    }
    if let Some(token) = &config.token
        && !authorized(&request, token)
    {
        return http::text(
            StatusCode::UNAUTHORIZED,
            "a valid token is needed (?token=... or Bearer)",
        );
    }
    let path = request.uri().path();
    if let Some(response) = asset(path) {
        return response;
    }
    match path {
        "/events" => board::subscribe(board, config.limits.write_timeout),
        "/api/view" => http::full(StatusCode::OK, "application/json", board.borrow().view().to_string()),
        _ => http::text(StatusCode::NOT_FOUND, "not found"),
    }
}

#[cfg(test)]
mod tests {
    use actix::Actor;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;
    use crate::actors::lock::ApplyOps;
    use crate::core::status::ResourceConfig;
    use crate::core::status::{ManagerStatus, ServiceStatus};
    use crate::core::store::{ClusterState, Op};
    use crate::core::types::{RequestState, ServiceState};
    use crate::node::memory_store::MemoryStore;

    /// A cluster with many services, so that every view is large and a
    /// client that does not read fills its socket buffers quickly.
    fn big_state(services: usize) -> ClusterState {
        let mut state = ClusterState::default();
        for node in ["node1", "node2", "node3"] {
            state.manager_status.node_status.insert(node.into(), NodeState::Online);
        }
        for i in 0..services {
            let sid = format!("vm:{}", 1000 + i);
            state
                .resources
                .insert(sid.clone(), ResourceConfig::new("node1", RequestState::Started));
            let sd = ServiceStatus::new(ServiceState::Started, "node1", format!("u{i}"));
            state.manager_status.service_status.insert(sid, sd);
        }
        state.manager_status.master_node = Some("node1".into());
        state
    }

    fn config(limits: Limits) -> LiveConfig {
        LiveConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: None,
            token: None,
            poll: Duration::from_millis(20),
            limits,
            node: "node1".into(),
            fresh_secs: 30,
        }
    }

    fn get(addr: SocketAddr, path: &str) -> TcpStream {
        try_get(addr, path).unwrap()
    }

    /// [`get`], or the error of a server that closed the connection
    /// before the request was out (a full server drops new ones at once:
    /// the write then fails with a broken pipe or a reset).
    fn try_get(addr: SocketAddr, path: &str) -> std::io::Result<TcpStream> {
        let mut stream = TcpStream::connect(addr)?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
        Ok(stream)
    }

    /// Clients that never read their event stream, clients that never
    /// finish their request, and more clients than allowed: the LockActor
    /// keeps answering at once, the view reads the store at its own pace
    /// whatever the clients, a reading client still gets fresh views, and
    /// the stuck connections are dropped after the timeouts.
    #[actix_rt::test]
    async fn slow_and_hostile_clients_cannot_block_the_actor() {
        let store = MemoryStore::volatile(big_state(600));
        let lock = LockActor::new("node1".into(), store.clone().into()).start();
        let limits = Limits {
            max_connections: 12,
            send_buffer: 64 * 1024,
            header_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(2),
        };
        let server = bind(config(limits)).await.unwrap().start(lock.clone());
        let addr = server.addr;
        // Six event streams nobody reads, four requests never finished,
        // then more connections than the server takes.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let hostile = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = (0..6).map(|_| get(addr, "/events")).collect();
            for _ in 0..4 {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(b"GET /events HTTP/1.1\r\nHo").unwrap();
                held.push(stream);
            }
            for _ in 0..20 {
                held.push(TcpStream::connect(addr).unwrap());
            }
            // Held until the checks below are done: the server must drop
            // them on its own.
            let _ = released.recv_timeout(Duration::from_secs(30));
            drop(held);
        });
        // A client that reads: it must see the master change below. While
        // the stuck clients hold every slot its connection is closed at
        // once; it gets one once the timeouts freed them.
        let reader = std::thread::spawn(move || {
            let started = Instant::now();
            let mut seen = Vec::new();
            let mut chunk = vec![0u8; 1 << 16];
            while started.elapsed() < Duration::from_secs(5) {
                // Closed at once while every slot is held: try again.
                let Ok(mut stream) = try_get(addr, "/events") else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                loop {
                    match stream.read(&mut chunk) {
                        Ok(n) if n > 0 => seen.extend_from_slice(&chunk[..n]),
                        _ => break,
                    }
                    if seen.windows(16).any(|w| w == b"\"master\":\"node2\"") {
                        return true;
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        });
        // Meanwhile the state changes every 10 ms (each view is new, and
        // large), and every request to the actor is timed.
        let mut slowest = Duration::ZERO;
        let started = Instant::now();
        let mut round = 0u64;
        // Until the stuck connections are gone (at most 8 s): a stream
        // stalls once its socket buffers (megabytes) are full.
        while started.elapsed() < Duration::from_millis(1200)
            || (server.counters.open.load(Ordering::Relaxed) > 1 && started.elapsed() < Duration::from_secs(8))
        {
            round += 1;
            let mut ms: ManagerStatus = (*store.snapshot().manager_status).clone();
            ms.master_node = Some(
                if started.elapsed() > Duration::from_millis(600) {
                    "node2"
                } else {
                    "node1"
                }
                .into(),
            );
            ms.timestamp = Some(round as i64);
            // A visible change each round: every read makes a new view.
            let moving = ms.service_status.get_mut("vm:1000").unwrap();
            moving.node = if round.is_multiple_of(2) { "node1" } else { "node3" }.into();
            let asked = Instant::now();
            lock.send(ApplyOps(vec![Op::WriteManagerStatus(ms)]))
                .await
                .unwrap()
                .unwrap();
            lock.send(GetSnapshot).await.unwrap();
            slowest = slowest.max(asked.elapsed());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Served on the actor's thread, the views had held it for seconds
        // (1.1 s measured before the view got its own thread); a loaded
        // two-core machine running a debug build may take a tenth of that
        // just to schedule.
        assert!(slowest < Duration::from_millis(500), "the actor took {slowest:?}");
        let polls = server.polls.load(Ordering::Relaxed);
        let expected = started.elapsed().as_millis() as u64 / 20;
        assert!(
            polls <= expected + 2,
            "{polls} snapshot reads in {:?}: clients must not add reads",
            started.elapsed()
        );
        let refused = server.counters.refused.load(Ordering::Relaxed);
        assert!(refused >= 10, "only {refused} connections past the limit were refused");
        // The stuck streams and requests were dropped after the timeouts,
        // while their clients still held the sockets open.
        let open = server.counters.open.load(Ordering::Relaxed);
        assert!(open <= 1, "{open} connections still open after {:?}", started.elapsed());
        let got_update = tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap();
        assert!(got_update, "a reading client saw the new master");
        release.send(()).unwrap();
        tokio::task::spawn_blocking(move || hostile.join().unwrap())
            .await
            .unwrap();
    }

    #[actix_rt::test]
    async fn remote_views_need_tls_and_a_token_and_nothing_changes_state() {
        let mut remote = config(Limits::default());
        remote.listen = "0.0.0.0:0".parse().unwrap();
        let err = bind(remote).await.err().unwrap();
        assert!(err.contains("is not a loopback address"), "{err}");

        let store = MemoryStore::volatile(big_state(1));
        let lock = LockActor::new("node1".into(), store.into()).start();
        let mut guarded = config(Limits::default());
        guarded.token = Some("0123456789abcdef-token".into());
        let addr = bind(guarded).await.unwrap().start(lock).addr;
        let status = |request: String| {
            tokio::task::spawn_blocking(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(request.as_bytes()).unwrap();
                let mut answer = String::new();
                stream.read_to_string(&mut answer).unwrap();
                answer.split(' ').nth(1).unwrap_or("").to_string()
            })
        };
        let req = |method: &str, path: &str, extra: &str| {
            format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}Content-Length: 0\r\n\r\n"
            )
        };
        assert_eq!(status(req("GET", "/api/view", "")).await.unwrap(), "401");
        assert_eq!(status(req("GET", "/api/view?token=wrong", "")).await.unwrap(), "401");
        assert_eq!(
            status(req("GET", "/api/view?token=0123456789abcdef-token", ""))
                .await
                .unwrap(),
            "200"
        );
        let bearer = "Authorization: Bearer 0123456789abcdef-token\r\n";
        assert_eq!(status(req("GET", "/", bearer)).await.unwrap(), "200");
        assert_eq!(status(req("POST", "/api/command", bearer)).await.unwrap(), "405");
        let rebinding = "GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".to_string();
        assert_eq!(status(rebinding).await.unwrap(), "403");
    }
}
