//! The node's life as a daemon: the state directory's lock and pid file,
//! startup (API socket, live view, store, actors), the signal loop
//! (SIGHUP reloads, SIGTERM or SIGINT stop), and the shutdown
//! choreography: the LRM first, then the CRM, bounded by a deadline past
//! which the daemon exits anyway and an armed watchdog fences the node.
//! A Raft core that stops under the daemon fails it stop.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use actix::{Actor, Context, Handler};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::LOG_TARGET;
use super::node_shutdown::node_shutdown;
use super::server_config::{api_config, live_config};
use super::store::{open_store, seed_when_ready};
use crate::actors::round::{Exited, ShutdownRequest};
use crate::actors::watchdog::WatchdogShutdown;
use crate::actors::{NodeOptions, start_node};
use crate::core::env::DatacenterSettings;
use crate::core::watchdog::Client;
use crate::node::config::NodeConfig;
use crate::node::membership;
use crate::node::state_lock::StateDirLock;

/// Runs the node until it is stopped and exits the process with the
/// daemon's exit code (0, or 1 when it failed or its shutdown did not
/// finish in time; 70 when its Raft core stopped). Returns only when the
/// state directory's lock or pid file cannot be had.
pub fn run_daemon(config_path: PathBuf, config: NodeConfig) -> ExitCode {
    // Before anything else touches the state directory; held (and the pid
    // file kept) until the daemon exits.
    let state_lock = StateDirLock::acquire(&config.state_dir).and_then(|mut lock| {
        lock.write_pid_file()?;
        Ok(lock)
    });
    let state_lock = match state_lock {
        Ok(lock) => lock,
        Err(e) => {
            tracing::error!(target: LOG_TARGET, "{e}");
            eprintln!("hactor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let system = actix::System::new();
    let code = match system.block_on(run(config_path, config)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(target: LOG_TARGET, "{e}");
            eprintln!("hactor: {e}");
            1
        }
    };
    // The pid file goes and the lock is released; then exit at once rather
    // than drop the runtime, which would wait for its blocking threads (an
    // agent job or a write stuck on the disk after a missed deadline).
    drop(state_lock);
    std::process::exit(code)
}

/// Collects the exits of the CRM and LRM.
struct ExitWatcher(mpsc::UnboundedSender<Client>);

impl Actor for ExitWatcher {
    type Context = Context<Self>;
}

impl Handler<Exited> for ExitWatcher {
    type Result = ();

    fn handle(&mut self, msg: Exited, _ctx: &mut Context<Self>) {
        let _ = self.0.send(msg.0);
    }
}

/// The node from startup to a finished shutdown; an error stops it
/// before it serves, or names a shutdown that ran out of time.
async fn run(config_path: PathBuf, config: NodeConfig) -> Result<(), String> {
    if std::process::id() == 1 && config.watchdog == crate::node::config::WatchdogBackend::Process {
        return Err(
            "running as PID 1: the process watchdog could not fence this daemon (PID 1 ignores \
                    SIGKILL); in a container, start it under an init (docker run --init)"
                .into(),
        );
    }
    // Bound before anything is armed or joined: a socket problem stops the
    // daemon before it holds a lease or a watchdog.
    let listener = crate::api::server::bind(&config.socket).map_err(|e| format!("api socket: {e}"))?;
    let web = match &config.web {
        Some(web) => match crate::web::live::bind(live_config(&config, web)?).await {
            Ok(bound) => Some(bound),
            Err(e) => {
                let _ = std::fs::remove_file(&config.socket);
                return Err(e);
            }
        },
        None => None,
    };
    let (store, raft) = match open_store(&config).await {
        Ok(opened) => opened,
        Err(e) => {
            let _ = std::fs::remove_file(&config.socket);
            return Err(e.replace("<node config>", &config_path.display().to_string()));
        }
    };
    let bootstrap = membership::load(&config)?.is_none_or(|(info, _)| info.bootstrap);
    if bootstrap {
        actix::spawn(seed_when_ready(store.clone(), config.clone()));
    }
    let (exit_tx, mut exit_rx) = mpsc::unbounded_channel();
    let watcher = ExitWatcher(exit_tx).start();
    let guard_program = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let options = NodeOptions {
        backend: None,
        guard_program,
        fence_kills_daemon: true,
        agents: crate::agents::Agents::new(),
        exited: watcher.recipient(),
        datacenter: DatacenterSettings {
            shutdown_policy: config.shutdown_policy,
            ..DatacenterSettings::default()
        },
        runtime: Default::default(),
    };
    let node = start_node(&config, store, options).map_err(|e| {
        let _ = std::fs::remove_file(&config.socket);
        e.to_string()
    })?;
    crate::api::server::start(listener, super::LockStore(node.lock.clone()), api_config(&config));
    if let Some(bound) = web {
        let addr = bound.addr;
        bound.start(node.lock.clone());
        // With port 0 this file tells tools where the view is.
        let _ = std::fs::write(config.state_dir.join("web.addr"), format!("{addr}\n"));
        tracing::info!(target: LOG_TARGET, %addr, "web live view listening");
    }
    tracing::info!(target: LOG_TARGET, node = %config.node, profile = ?config.profile, socket = %config.socket.display(), "hactor started");
    // Type=notify: dependents start once the socket serves. Without
    // systemd (no NOTIFY_SOCKET) this does nothing.
    let status = format!("node {} serving on {}", config.node, config.socket.display());
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(&status)]);

    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let core_stopped = {
        let raft = raft.clone();
        async move {
            match raft {
                Some(raft) => raft.core_stopped().await,
                None => std::future::pending().await,
            }
        }
    };
    tokio::pin!(core_stopped);
    loop {
        tokio::select! {
            reason = &mut core_stopped => fail_stop(&reason),
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => match NodeConfig::load(&config_path) {
                Ok(new) => {
                    node.proc_agent.set_services(new.proc_services.clone());
                    node.script_agent.set_services(new.script_services.clone());
                    if new.timings != config.timings || new.node != config.node || new.watchdog != config.watchdog {
                        tracing::warn!(target: LOG_TARGET, "configuration reloaded; timing, node name and watchdog changes need a restart");
                    } else {
                        tracing::info!(target: LOG_TARGET, "configuration reloaded");
                    }
                }
                Err(e) => tracing::error!(target: LOG_TARGET, "configuration reload refused, keeping the old one - {e}"),
            },
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let going_down = node_shutdown(&config);
    let guests = crate::node::shutdown::guest_agents(&config, crate::node::shutdown::program_installed);
    let deadline = crate::node::shutdown::deadline(&config, &guests);
    tracing::info!(target: LOG_TARGET, shutdown = going_down.goes_down(),
        reboot = going_down.is_reboot(),
        deadline_secs = deadline.as_secs(),
        "shutdown requested"
    );
    // The LRM goes first: it needs the master to freeze or move its
    // services (upstream orders its units the same way; the other order
    // deadlocks a single node).
    node.lrm.do_send(ShutdownRequest(going_down));
    let nagging = actix::spawn(async move {
        while terminate.recv().await.is_some() {
            tracing::warn!(target: LOG_TARGET, "still shutting down (services are being stopped or frozen)");
        }
    });
    // Whatever the disk or the store does, the daemon exits: past the
    // deadline an LRM that has not exited is still armed, and the
    // watchdog fences the node once the daemon is gone.
    // The Raft core stopping meanwhile fails stop here too.
    let finished = tokio::select! {
        finished = crate::node::shutdown::wait_for_exits(&mut exit_rx, deadline, || {
            node.crm.do_send(ShutdownRequest(going_down))
        }) => finished,
        reason = &mut core_stopped => fail_stop(&reason),
    };
    nagging.abort();
    if !finished {
        tracing::error!(target: LOG_TARGET, "shutdown did not finish within {deadline:?} (is the store failing to write?); exiting anyway, \
             an armed watchdog fences this node"
        );
    }
    let _ = std::fs::remove_file(&config.socket);
    let disarmed = tokio::time::timeout(SHUTDOWN_STEP, node.watchdog.send(WatchdogShutdown))
        .await
        .is_ok_and(|reply| reply.unwrap_or(false));
    if let Some(raft) = raft
        && tokio::time::timeout(SHUTDOWN_STEP, raft.shutdown()).await.is_err()
    {
        tracing::error!(target: LOG_TARGET, "the replicated store did not stop within {SHUTDOWN_STEP:?}");
    }
    tracing::info!(target: LOG_TARGET, disarmed, "hactor stopped");
    tokio::time::sleep(Duration::from_millis(50)).await;
    if finished {
        Ok(())
    } else {
        Err(format!("shutdown did not finish within {deadline:?}"))
    }
}

/// Exit code of a daemon whose Raft core stopped under it.
const FAIL_STOP_EXIT: i32 = 70;

/// The Raft core stopped while the daemon runs (a storage error, a lost
/// or damaged Raft directory): this replica will never change again, so
/// serving its frozen view or renewing leases from it would be wrong.
/// Exit at once, without disarming the watchdog: its fencing (the device
/// resets the node, the fence guard kills the services) is what makes the
/// others' recovery of this node's services safe.
fn fail_stop(reason: &str) -> ! {
    let message = format!(
        "the Raft core stopped ({reason}): failing stop, the watchdog fences this node; \
         if the Raft state is damaged, restart refuses and names the recovery"
    );
    tracing::error!(target: LOG_TARGET, "{message}");
    eprintln!("hactor: {message}");
    std::process::exit(FAIL_STOP_EXIT)
}

/// Limit of each last step of a shutdown (watchdog close, store stop).
const SHUTDOWN_STEP: Duration = Duration::from_secs(5);
