//! `hactor-sim serve`: the simulator in the browser, upstream's
//! `pve-ha-simulator` as a web page.
//!
//! The session ([`Session`]) runs on virtual time: paused, one round per
//! click, or running at a chosen number of rounds per wall-clock second.
//! Every control is a simulator command in cmdlist syntax (`power node1
//! off`, `service vm:101 migrate node2`, `crm node1 disarm-ha freeze`,
//! ...), queued for the next batch slot as a cmdlist line would be, so the
//! session exports as a scenario folder that `hactor-sim run` replays.
//!
//! The server listens on loopback only: it changes the simulation and
//! writes export folders. Requests that change something must carry the
//! `x-hactor: 1` header and a loopback `Host`, which a page from another
//! site cannot send (no cross-site request forgery, no DNS rebinding).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::core::types::ServiceState;
use crate::sim::session::Session;

use super::asset;
use super::board::{self, Board};
use super::http::{self, Counters, Limits, Req, Resp};
use super::lanes::{Lanes, ServiceSeen};

/// Rounds per wall-clock second the run control offers.
pub const SPEEDS: [u32; 7] = [1, 2, 5, 10, 20, 50, 100];

/// How the console serves.
#[derive(Debug, Clone)]
pub struct SimConsoleConfig {
    pub listen: SocketAddr,
    /// Export folder used when the page names none.
    pub export_dir: PathBuf,
    /// Start with virtual time running.
    pub run: bool,
    pub limits: Limits,
}

struct Console {
    session: Session,
    lanes: Lanes,
    running: bool,
    speed: u32,
    /// The answer to the last control or command, shown on the page.
    message: String,
    export_dir: PathBuf,
    board: Rc<RefCell<Board>>,
    /// Log lines of the session already on the board.
    logged: usize,
}

impl Console {
    /// Observes the session, moves new log lines to the board and
    /// publishes the view.
    fn publish(&mut self) {
        let sim = self.session.simulator();
        let world = sim.world();
        let ms = &world.store.manager_status;
        let node_status: BTreeMap<String, String> = world
            .nodes
            .keys()
            .map(|n| {
                let state = ms.node_status.get(n).map_or("-", |s| s.as_str());
                (n.clone(), state.to_string())
            })
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
        self.lanes.observe(world.now as f64, &node_status, &seen);
        let view = self.view();
        let mut board = self.board.borrow_mut();
        for line in &self.session.simulator().log()[self.logged..] {
            board.push_log(line.clone());
        }
        self.logged = self.session.simulator().log().len();
        board.publish(view.to_string());
    }

    fn view(&self) -> Value {
        let sim = self.session.simulator();
        let world = sim.world();
        let ms = &world.store.manager_status;
        let info = world.node_info();
        let nodes: Vec<Value> = world
            .nodes
            .iter()
            .map(|(name, n)| {
                let (lrm, mode) = sim.lrm_state(name).unzip();
                json!({
                    "name": name,
                    "power": n.hw.power,
                    "network": n.hw.network,
                    "shutdown": n.shutdown,
                    "crm": sim.crm_state(name),
                    "lrm": lrm,
                    "mode": mode,
                    "quorum": info.quorate && info.online.get(name).copied().unwrap_or(false),
                    "status": ms.node_status.get(name).map(|s| s.as_str()),
                    "master": ms.master_node.as_deref() == Some(name.as_str()),
                    "maintenance": ms.maintenance_requested(name),
                })
            })
            .collect();
        let mut sids: Vec<&String> = world.store.resources.keys().collect();
        sids.extend(
            ms.service_status
                .keys()
                .filter(|s| !world.store.resources.contains_key(*s)),
        );
        sids.sort();
        let services: Vec<Value> = sids
            .into_iter()
            .map(|sid| {
                let sd = ms.service_status.get(sid);
                let cd = world.store.resources.get(sid);
                let node = sd
                    .map(|sd| sd.node.clone())
                    .or_else(|| cd.and_then(|cd| cd.node.clone()));
                let restarts = node.as_deref().map_or(0, |n| sim.restart_tries(n, sid));
                json!({
                    "sid": sid,
                    "state": sd.map(|sd| sd.state.as_str()),
                    "node": node,
                    "request": cd.map(|cd| cd.state.as_str()),
                    "target": sd.and_then(|sd| sd.target.clone()),
                    "running": sd.is_some_and(|sd| sd.running && sd.state == ServiceState::Started),
                    "failed_nodes": sd.and_then(|sd| sd.failed_nodes.clone()).unwrap_or_default(),
                    "restarts": restarts,
                    "max_restart": cd.map(|cd| cd.max_restart),
                    "max_relocate": cd.map(|cd| cd.max_relocate),
                })
            })
            .collect();
        json!({
            "kind": "sim",
            "clock": "virtual",
            "time": world.now,
            "emitted_ms": board::now_ms() as u64,
            "quorate": info.quorate,
            "master": ms.master_node,
            "disarm": ms.disarm.as_ref().map(|d| format!("{}, resource mode: {}", d.state, d.mode)),
            "nodes": nodes,
            "services": services,
            "timeline": self.lanes,
            "queued": sim.queued_commands().iter().map(|c| c.text.clone()).collect::<Vec<_>>(),
            "running": self.running,
            "speed": self.speed,
            "speeds": SPEEDS,
            "halted": self.session.halted(),
            "message": self.message,
            "export_dir": self.export_dir,
        })
    }

    fn step(&mut self) {
        if let Err(e) = self.session.step() {
            self.running = false;
            self.message = format!("simulation stopped: {e}");
        }
    }
}

/// Binds and serves until the process ends.
pub async fn serve(session: Session, config: SimConsoleConfig) -> Result<(), String> {
    if !config.listen.ip().is_loopback() {
        return Err(format!(
            "--listen {}: the simulator console changes the simulation and writes files; it listens on a \
             loopback address only (127.0.0.1 or ::1)",
            config.listen
        ));
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let console = Rc::new(RefCell::new(Console {
        session,
        lanes: Lanes::default(),
        running: config.run,
        speed: 2,
        message: String::new(),
        export_dir: config.export_dir.clone(),
        board: Rc::new(RefCell::new(Board::default())),
        logged: 0,
    }));
    console.borrow_mut().publish();
    let wake = Rc::new(Notify::new());
    tokio::task::spawn_local(drive(console.clone(), wake.clone()));
    let counters = Arc::new(Counters::default());
    let limits = config.limits;
    http::serve(listener, None, limits, counters, move |request| {
        let (console, wake) = (console.clone(), wake.clone());
        async move { handle(request, &console, &wake, limits).await }
    });
    // The address line is what scripts and tests wait for.
    println!("hactor-sim console on http://{addr}/");
    std::future::pending::<()>().await;
    Ok(())
}

/// Runs rounds while the console runs.
async fn drive(console: Rc<RefCell<Console>>, wake: Rc<Notify>) {
    loop {
        let (running, speed) = {
            let c = console.borrow();
            (c.running, c.speed)
        };
        if !running {
            wake.notified().await;
            continue;
        }
        {
            let mut c = console.borrow_mut();
            c.step();
            c.publish();
        }
        let pause = Duration::from_millis(1000 / u64::from(speed.max(1)));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = wake.notified() => {}
        }
    }
}

async fn handle(request: Req, console: &Rc<RefCell<Console>>, wake: &Rc<Notify>, limits: Limits) -> Resp {
    let path = request.uri().path().to_string();
    if request.method() == Method::GET {
        if let Some(response) = asset(&path) {
            return response;
        }
        return match path.as_str() {
            "/events" => {
                let board = console.borrow().board.clone();
                board::subscribe(&board, limits.write_timeout)
            }
            "/api/view" => http::full(StatusCode::OK, "application/json", console.borrow().view().to_string()),
            _ => http::text(StatusCode::NOT_FOUND, "not found"),
        };
    }
    if request.method() != Method::POST {
        return http::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let host_ok = request
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .is_some_and(http::loopback_host);
    let marked = request.headers().get("x-hactor").is_some_and(|v| v == "1");
    if !host_ok || !marked {
        return http::text(
            StatusCode::FORBIDDEN,
            "changes need a loopback Host and the x-hactor: 1 header",
        );
    }
    let body = match http::read_body(request, limits.header_timeout).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return http::text(StatusCode::BAD_REQUEST, "the request body must be UTF-8 text");
    };
    let text = text.trim();
    let mut c = console.borrow_mut();
    let result = match path.as_str() {
        "/api/command" => c.session.command(text).map(|()| format!("queued: {text}")),
        "/api/control" => control(&mut c, text),
        "/api/export" => export(&c, text),
        _ => return http::text(StatusCode::NOT_FOUND, "not found"),
    };
    let (status, message) = match result {
        Ok(message) => (StatusCode::OK, message),
        Err(message) => (StatusCode::BAD_REQUEST, message),
    };
    c.message = message.clone();
    c.publish();
    wake.notify_one();
    http::text(status, &message)
}

fn control(c: &mut Console, text: &str) -> Result<String, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["run"] => {
            c.running = c.session.halted().is_none();
            Ok(if c.running {
                "running"
            } else {
                "the simulation has stopped"
            }
            .to_string())
        }
        ["pause"] => {
            c.running = false;
            Ok("paused".into())
        }
        ["step"] => {
            c.running = false;
            c.step();
            Ok(format!("stepped to {} s", c.session.simulator().world().now))
        }
        ["speed", n] => {
            let speed: u32 = n
                .parse()
                .ok()
                .filter(|s| SPEEDS.contains(s))
                .ok_or_else(|| format!("speed must be one of {SPEEDS:?} rounds per second"))?;
            c.speed = speed;
            Ok(format!("{speed} rounds per second"))
        }
        _ => Err(format!("unknown control '{text}' (run, pause, step, speed <n>)")),
    }
}

fn export(c: &Console, text: &str) -> Result<String, String> {
    let dir = if text.is_empty() {
        c.export_dir.clone()
    } else {
        PathBuf::from(text)
    };
    write_export(&dir, &c.session.export_files())?;
    Ok(format!("exported to {}", dir.display()))
}

/// Writes an export folder. An existing folder is only reused when it
/// holds a scenario (a cmdlist) or nothing, so that an export never mixes
/// into unrelated files.
pub fn write_export(dir: &Path, files: &BTreeMap<String, String>) -> Result<(), String> {
    let shown = dir.display();
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| format!("{shown}: {e}"))?;
        if entries.next().is_some() && !dir.join("cmdlist").is_file() {
            return Err(format!("{shown}: exists and is not a scenario folder; choose another"));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{shown}: {e}"))?;
    for (name, text) in files {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{shown}/{name}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_are_embedded() {
        use super::super::ASSETS;
        assert!(ASSETS.iter().any(|(path, _, _)| *path == "/"));
        assert!(asset("/app.js").is_some());
        assert!(asset("/nope").is_none());
    }

    #[test]
    fn exports_do_not_mix_into_other_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let files = BTreeMap::from([("cmdlist".to_string(), "[]\n".to_string())]);
        write_export(&tmp.path().join("new"), &files).unwrap();
        write_export(&tmp.path().join("new"), &files).expect("a scenario folder is reused");
        std::fs::write(tmp.path().join("other.txt"), "x").unwrap();
        let err = write_export(tmp.path(), &files).unwrap_err();
        assert!(err.contains("not a scenario folder"), "{err}");
    }
}
