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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::Addr;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::actors::lock::{GetSnapshot, LockActor, Snapshot};
use crate::api::status::{self, StatusContext};

use super::board::{self, Board};
use super::http::{self, Counters, Limits, Req, Resp};
use super::lanes::{Lanes, ServiceSeen};
use super::asset;

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
    pub polls: Rc<std::cell::Cell<u64>>,
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
    for (node, state) in &new.node_status {
        if let Some(was) = old.node_status.get(node).filter(|was| *was != state) {
            out.push(format!("{master}/crm: node '{node}': state changed from '{was}' => '{state}'"));
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
                out.push(format!("{master}/crm: service '{sid}': moved from '{}' to '{}'", was.node, sd.node));
            }
            None => out.push(format!("{master}/crm: adding new service '{sid}' on node '{}'", sd.node)),
            _ => {}
        }
    }
    for sid in old.service_status.keys().filter(|s| !new.service_status.contains_key(*s)) {
        out.push(format!("{master}/crm: removing stale service '{sid}'"));
    }
    if before.quorate != after.quorate {
        out.push(format!("quorum: {}", if after.quorate { "OK" } else { "lost" }));
    }
    out
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
    listener: tokio::net::TcpListener,
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
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
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
    /// Starts the poller and the server on the current actix system.
    pub fn start(self, lock: Addr<LockActor>) -> LiveServer {
        let BoundLive {
            config,
            listener,
            tls,
            addr,
        } = self;
        let board = Rc::new(RefCell::new(Board::default()));
        let live = Rc::new(RefCell::new(Live {
            board: board.clone(),
            lanes: Lanes::default(),
            started: Instant::now(),
            last_core: String::new(),
            last_publish: Instant::now(),
            previous: None,
        }));
        let polls = Rc::new(std::cell::Cell::new(0));
        let config = Rc::new(config);
        {
            let (config, polls) = (config.clone(), polls.clone());
            tokio::task::spawn_local(async move {
                let mut ticker = tokio::time::interval(config.poll);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    polls.set(polls.get() + 1);
                    // One request at a time, and not for long: a busy
                    // actor answers the next tick instead.
                    let wait = config.poll.max(Duration::from_millis(500));
                    match tokio::time::timeout(wait, lock.send(GetSnapshot)).await {
                        Ok(Ok(snap)) => live.borrow_mut().observe(snap, &config),
                        Ok(Err(_)) => return, // the actor is gone: the daemon stops
                        Err(_) => tracing::debug!("web: snapshot timed out"),
                    }
                }
            });
        }
        let counters = Arc::new(Counters::default());
        let limits = config.limits;
        let loopback = config.listen.ip().is_loopback();
        http::serve(listener, tls, limits, counters.clone(), move |request| {
            let (board, config) = (board.clone(), config.clone());
            async move { handle(request, &board, &config, loopback) }
        });
        LiveServer { addr, counters, polls }
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
        return http::text(StatusCode::UNAUTHORIZED, "a valid token is needed (?token=... or Bearer)");
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
