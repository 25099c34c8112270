//! `hactor`: the per-node HA daemon.
//!
//! - `hactor --config <file>`: run the node (CRM, LRM, worker pool,
//!   watchdog, store) until SIGTERM; SIGHUP re-reads the configuration.
//! - `hactor cluster init|add-node|join|remove-node|status|reset-local
//!   --config <file>`: cluster membership (see `hactor::node::membership`).
//! - `hactor fence-guard ...`: the separate fence guard process of the
//!   `process` watchdog backend (started by the daemon itself).
//! - `hactor check-config [--config <file>] [--fence <fence.cfg>]`:
//!   validate a node configuration (and fence.cfg) without starting.
//! - `hactor man`, `hactor completions <shell>`: the manual page and shell
//!   completions (the Debian package ships both).
//!
//! Without `--config`, the host's `/etc/hactor/hactor.toml` is used.
//! Under systemd (`Type=notify`) the daemon reports readiness once its
//! API socket serves and its actors run.
//!
//! A node whose state directory holds cluster membership runs on the
//! replicated store; otherwise on the in-process store of a single node.
//! The daemon, `cluster init` and `cluster join` hold the state
//! directory's lock (`hactor::node::state_lock`) while they run; the
//! daemon writes `<state_dir>/hactor.pid` and removes it when it exits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use actix::{Actor, Context, Handler};
use clap::{CommandFactory, Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use hactor::actors::round::{Exited, ShutdownRequest};
use hactor::actors::watchdog::WatchdogShutdown;
use hactor::actors::{NodeOptions, start_node};
use hactor::core::env::{DatacenterSettings, NodeShutdown};
use hactor::core::store::Op;
use hactor::core::watchdog::Client;
use hactor::net::cluster::{RaftStore, StoreTiming};
use hactor::net::quic::Transport;
use hactor::net::raft::log_store::FAULT_DISK_FULL;
use hactor::node::cluster_store::ClusterStore;
use hactor::node::config::{LogFormat, NodeConfig};
use hactor::node::membership;
use hactor::node::memory_store::MemoryStore;
use hactor::node::state_lock::StateDirLock;
use std::sync::atomic::Ordering;

#[derive(Parser)]
#[command(
    name = "hactor",
    version,
    about = "High-availability cluster resource manager: the node daemon"
)]
struct Cli {
    /// Node configuration file (TOML) [default: /etc/hactor/hactor.toml].
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Override the configured log format.
    #[arg(long, value_parser = ["plain", "json"])]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a demo cluster of N daemons on this machine's loopback (each
    /// its own process, state dir, socket and process watchdog) with a few
    /// `proc:` services, until Ctrl-C.
    LocalCluster {
        /// Where the nodes keep their state (wiped when it holds an
        /// earlier local cluster; refused when it holds anything else).
        #[arg(long, default_value = "/tmp/hactor-local")]
        dir: PathBuf,
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
        nodes: u16,
        /// `proc:` services to seed (at most 1000).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=1000))]
        services: u64,
        /// node N listens on 127.0.0.1:<port + N> (port at most 65525, so
        /// the ninth node's port exists).
        #[arg(long, default_value_t = 7400, value_parser = clap::value_parser!(u16).range(1..=65525))]
        port: u16,
        #[arg(long, default_value = "fast", value_parser = ["fast", "pve"])]
        profile: String,
        /// Serve every node's read-only live view (`[web]`) on a free
        /// loopback port; the addresses are printed.
        #[arg(long)]
        web: bool,
    },
    /// Cluster membership: create, grow, shrink, inspect.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Validate the node configuration and print the timing inequalities
    /// with their figures; on a running node also check the HA
    /// configuration. With --fence, print what each node's hardware fence
    /// would run, try by try. Exit code 1 when anything is refused.
    CheckConfig {
        /// A fence.cfg to check instead of the node configuration.
        #[arg(long, value_name = "FENCE_CFG")]
        fence: Option<PathBuf>,
        /// The nodes to show fence commands for (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "node1,node2,node3")]
        nodes: Vec<String>,
    },
    /// Print the manual page (roff), or write it to a file.
    Man {
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Internal: the fence guard of the `process` watchdog backend.
    #[command(hide = true)]
    FenceGuard {
        #[arg(long)]
        timeout_ms: u64,
        #[arg(long)]
        daemon_pid: i32,
        #[arg(long)]
        log: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Create a new cluster with this node as its first member.
    Init {
        /// Cluster name.
        #[arg(long, default_value = "hactor")]
        name: String,
    },
    /// Issue a certificate for a new node and write its join bundle
    /// (run on the node holding the cluster CA key).
    AddNode {
        /// The new node's name.
        node: String,
        /// Where to write the bundle (it holds the new node's key).
        #[arg(long)]
        out: PathBuf,
    },
    /// Join the cluster a bundle is from.
    Join {
        #[arg(long)]
        bundle: PathBuf,
    },
    /// Remove a member (stop its daemon first).
    RemoveNode { node: String },
    /// Rebuild this member's damaged or lost Raft state from the other
    /// members (stop its daemon first).
    ///
    /// For a daemon that refuses to start because its Raft state cannot be
    /// trusted: moves <state_dir>/raft aside, has the cluster remove this
    /// node and admit it again as a learner (same name and certificate,
    /// new Raft id). Start the daemon after it: it catches up from the
    /// others and becomes a voter. The cluster's data is not changed.
    ResetLocal {
        /// Another member as NAME=ADDRESS (repeatable), if neither the
        /// configuration's [peers] nor the damaged Raft state name one.
        #[arg(long = "peer", value_name = "NAME=ADDRESS")]
        peers: Vec<String>,
    },
    /// This node's view of the cluster.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
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

/// Log filter unless `HACTOR_LOG` says otherwise: HA decisions at info;
/// openraft only when something is wrong, and not the per-retry noise of
/// replicating to a member that is down (the CRM reports dead nodes).
const DEFAULT_LOG_FILTER: &str =
    "info,openraft=warn,openraft::replication=off,openraft::engine::handler::replication_handler=off";

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HACTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Under systemd the journal stamps every line itself (and colours
    // would be stored as escape codes): plain lines without a timestamp.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Plain if journal => builder.with_ansi(false).without_time().init(),
        LogFormat::Plain => builder.with_ansi(false).init(),
    }
}

/// Whether the node itself is going down, from the service manager's
/// queued jobs (as upstream does); `StaysUp` without systemd, which makes
/// SIGTERM a daemon restart.
///
/// With `fault_injection`, `<state_dir>/node-shutdown` holding `shutdown`
/// or `reboot` says the same (tests of the shutdown policies).
fn node_shutdown(config: &NodeConfig) -> NodeShutdown {
    if config.fault_injection
        && let Ok(text) = std::fs::read_to_string(config.state_dir.join("node-shutdown"))
    {
        match text.trim() {
            "shutdown" => return NodeShutdown::PowerOff,
            "reboot" => return NodeShutdown::Reboot,
            _ => {}
        }
    }
    let output = std::process::Command::new("systemctl")
        .args(["--full", "--no-legend", "list-jobs"])
        .output();
    let Ok(output) = output else {
        return NodeShutdown::StaysUp;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let has = |target: &str| text.lines().any(|l| l.split_whitespace().nth(1) == Some(target));
    if has("reboot.target") {
        NodeShutdown::Reboot
    } else if has("shutdown.target") {
        NodeShutdown::PowerOff
    } else {
        NodeShutdown::StaysUp
    }
}

/// Seeds a fresh store with the resources the configuration declares.
async fn seed(store: &ClusterStore, config: &NodeConfig) -> Result<(), String> {
    if !store.snapshot().resources.is_empty() {
        return Ok(());
    }
    let ops = config
        .resources
        .iter()
        .map(|(sid, r)| Op::PutResource {
            sid: sid.clone(),
            resource: r.resource(&config.node),
        })
        .collect::<Vec<_>>();
    if ops.is_empty() {
        return Ok(());
    }
    store.apply(ops).await.map(|_| ()).map_err(|e| e.to_string())
}

/// Opens the node's store: the replicated one if the node is in a
/// cluster, the in-process one otherwise.
async fn open_store(config: &NodeConfig) -> Result<(ClusterStore, Option<RaftStore>), String> {
    let Some((info, identity)) = membership::load(config)? else {
        if config.listen.is_some() {
            return Err(format!(
                "listen is set but {} holds no cluster membership: run `hactor cluster init` \
                 (first node) or `hactor cluster join` first",
                config.state_dir.display()
            ));
        }
        let store = MemoryStore::open(&config.state_dir)
            .map_err(|e| format!("state_dir: {}: {e}", config.state_dir.display()))?;
        return Ok((ClusterStore::Local(store), None));
    };
    let listen = membership::listen_addr(config)?;
    let transport = Transport::bind(listen, &identity).map_err(|e| format!("listen {listen}: {e}"))?;
    let t = &config.timings;
    let timing = StoreTiming {
        online_window: Duration::from_millis(t.online_window_ms),
        ..StoreTiming::for_round(
            t.round(),
            Duration::from_millis(t.raft_heartbeat_ms),
            Duration::from_millis(t.raft_election_ms),
        )
    };
    membership::check_raft_state(config)?;
    let raft = RaftStore::start(&info.cluster, info.id, &config.state_dir, transport.clone(), timing).await?;
    raft.serve();
    if info.bootstrap {
        raft.bootstrap(listen).await?;
    } else {
        raft.spawn_promotion();
    }
    raft.spawn_heartbeat();
    // A restarted member holds its elections until the leader (if any)
    // had a chance to reach it.
    let hold = if info.bootstrap && raft.view().members.len() <= 1 {
        Duration::ZERO
    } else {
        Duration::from_millis(t.raft_election_ms.saturating_mul(4))
    };
    raft.spawn_election_guard(hold);
    if config.fault_injection {
        spawn_fault_injection(transport, raft.clone(), config.state_dir.clone());
    }
    tracing::info!(cluster = %info.cluster, id = info.id, %listen, "replicated store started");
    Ok((ClusterStore::Replicated(raft.clone()), Some(raft)))
}

/// Testing only: `<state_dir>/fault-block` cuts this node off from the
/// peers it lists; `<state_dir>/fault-elect` (removed when seen) makes this
/// node start an election at once; while `<state_dir>/fault-disk-full`
/// exists, Raft log writes fail with ENOSPC.
fn spawn_fault_injection(transport: Transport, raft: RaftStore, dir: PathBuf) {
    let path = dir.join("fault-block");
    let elect = dir.join("fault-elect");
    tracing::warn!(
        "fault injection enabled: {} cuts this node off from the peers it lists",
        path.display()
    );
    actix::spawn(async move {
        let mut blocked = std::collections::BTreeSet::<String>::new();
        loop {
            let wanted: std::collections::BTreeSet<String> = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            for peer in wanted.difference(&blocked) {
                tracing::warn!(peer = %peer, "fault injection: blocking traffic");
                transport.block(peer);
            }
            for peer in blocked.difference(&wanted) {
                tracing::warn!(peer = %peer, "fault injection: unblocking traffic");
                transport.unblock(peer);
            }
            blocked = wanted;
            let disk_full = dir.join("fault-disk-full").exists();
            if disk_full != FAULT_DISK_FULL.swap(disk_full, Ordering::Relaxed) {
                tracing::warn!(disk_full, "fault injection: Raft log writes fail as on a full disk");
            }
            if std::fs::remove_file(&elect).is_ok() {
                tracing::warn!("fault injection: starting an election");
                raft.trigger_election().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// Seeds the store once it is writable (a cluster's first start waits
/// for its first election).
async fn seed_when_ready(store: ClusterStore, config: NodeConfig) {
    for _ in 0..100 {
        match seed(&store, &config).await {
            Ok(()) => return,
            Err(e) => tracing::debug!("seeding the store: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::warn!("could not seed the store with the configured resources");
}

/// How the API answers on this node.
fn api_config(config: &NodeConfig) -> hactor::api::server::ServerConfig {
    // Upstream calls a status stale after 30 s, three of its rounds.
    let round_secs = i64::try_from(config.timings.round_ms.div_ceil(1000)).unwrap_or(i64::MAX);
    hactor::api::server::ServerConfig {
        socket: config.socket.clone(),
        plan: hactor::api::plan::PlanContext {
            node: config.node.clone(),
            proc_services: config.proc_services.keys().cloned().collect(),
        },
        fresh_secs: round_secs.saturating_mul(3).max(5),
        crs: "basic".into(),
        store_timeout: Duration::from_secs(30),
    }
}

/// The live view's settings (`[web]`): the token file is read here, so
/// that a missing or short token stops the daemon at start.
fn live_config(
    config: &NodeConfig,
    web: &hactor::node::config::WebConfig,
) -> Result<hactor::web::live::LiveConfig, String> {
    let api = api_config(config);
    Ok(hactor::web::live::LiveConfig {
        listen: web.listen,
        tls: web.tls.clone(),
        token: web
            .token_file
            .as_deref()
            .map(hactor::web::live::read_token)
            .transpose()?,
        poll: Duration::from_millis(web.poll_ms),
        limits: hactor::web::http::Limits::default(),
        node: config.node.clone(),
        fresh_secs: api.fresh_secs,
    })
}

async fn run(config_path: PathBuf, config: NodeConfig) -> Result<(), String> {
    if std::process::id() == 1 && config.watchdog == hactor::node::config::WatchdogBackend::Process {
        return Err(
            "running as PID 1: the process watchdog could not fence this daemon (PID 1 ignores \
                    SIGKILL); in a container, start it under an init (docker run --init)"
                .into(),
        );
    }
    // Bound before anything is armed or joined: a socket problem stops the
    // daemon before it holds a lease or a watchdog.
    let listener = hactor::api::server::bind(&config.socket).map_err(|e| format!("api socket: {e}"))?;
    let web = match &config.web {
        Some(web) => match hactor::web::live::bind(live_config(&config, web)?).await {
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
        agents: hactor::agents::Agents::new(),
        exited: watcher.recipient(),
        datacenter: DatacenterSettings {
            shutdown_policy: config.shutdown_policy,
            ..DatacenterSettings::default()
        },
    };
    let node = start_node(&config, store, options).map_err(|e| {
        let _ = std::fs::remove_file(&config.socket);
        e.to_string()
    })?;
    hactor::api::server::start(
        listener,
        hactor::daemon::LockStore(node.lock.clone()),
        api_config(&config),
    );
    if let Some(bound) = web {
        let addr = bound.addr;
        bound.start(node.lock.clone());
        // With port 0 this file tells tools where the view is.
        let _ = std::fs::write(config.state_dir.join("web.addr"), format!("{addr}\n"));
        tracing::info!(%addr, "web live view listening");
    }
    tracing::info!(node = %config.node, profile = ?config.profile, socket = %config.socket.display(), "hactor started");
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
                        tracing::warn!("configuration reloaded; timing, node name and watchdog changes need a restart");
                    } else {
                        tracing::info!("configuration reloaded");
                    }
                }
                Err(e) => tracing::error!("configuration reload refused, keeping the old one - {e}"),
            },
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let going_down = node_shutdown(&config);
    let guests = hactor::node::shutdown::guest_agents(&config, hactor::node::shutdown::program_installed);
    let deadline = hactor::node::shutdown::deadline(&config, &guests);
    tracing::info!(
        shutdown = going_down.goes_down(),
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
            tracing::warn!("still shutting down (services are being stopped or frozen)");
        }
    });
    // Whatever the disk or the store does, the daemon exits: past the
    // deadline an LRM that has not exited is still armed, and the
    // watchdog fences the node once the daemon is gone.
    // The Raft core stopping meanwhile fails stop here too.
    let finished = tokio::select! {
        finished = hactor::node::shutdown::wait_for_exits(&mut exit_rx, deadline, || {
            node.crm.do_send(ShutdownRequest(going_down))
        }) => finished,
        reason = &mut core_stopped => fail_stop(&reason),
    };
    nagging.abort();
    if !finished {
        tracing::error!(
            "shutdown did not finish within {deadline:?} (is the store failing to write?); exiting anyway, \
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
        tracing::error!("the replicated store did not stop within {SHUTDOWN_STEP:?}");
    }
    tracing::info!(disarmed, "hactor stopped");
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
    tracing::error!("{message}");
    eprintln!("hactor: {message}");
    std::process::exit(FAIL_STOP_EXIT)
}

/// Limit of each last step of a shutdown (watchdog close, store stop).
const SHUTDOWN_STEP: Duration = Duration::from_secs(5);

/// `hactor local-cluster`: forms the cluster, tells how to use it, and
/// reports daemons that die until Ctrl-C.
fn local_cluster(dir: &std::path::Path, spec: hactor::node::local_cluster::LocalSpec) -> Result<(), String> {
    use hactor::node::local_cluster::LocalCluster;
    let program = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let ha_manager = program.with_file_name("ha-manager");
    println!("forming a {}-node cluster under {} ...", spec.nodes, dir.display());
    let mut cluster = LocalCluster::create(dir, &program, spec)?;
    let services = cluster.spec.services;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline && (0..services).any(|s| cluster.service_pids(s).len() != 1) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!();
    for node in &cluster.nodes {
        println!(
            "{}  127.0.0.1:{}  pid {}  log {}",
            node.name,
            node.port,
            node.child.as_ref().map(|c| c.id()).unwrap_or(0),
            cluster.dir.join(format!("{}.log", node.name)).display()
        );
        if let Ok(addr) = std::fs::read_to_string(node.dir.join("web.addr")) {
            println!("       live view: http://{}/", addr.trim());
        }
    }
    let socket = cluster.nodes[0].dir.join("hactor.sock");
    println!(
        "\nwatch it:     watch -n1 {} --socket {} status\n\
         fail a node:  kill -9 $(cat {dir}/node2/hactor.pid)   (or kill -STOP: its fence guard kills it ~1 s later)\n\
         restart it:   {} --config {dir}/node2.toml >> {dir}/node2.log 2>&1 &\n\
         stop:         Ctrl-C (kills every node's daemon, restarted ones too; their fence guards stop the services)\n",
        ha_manager.display(),
        socket.display(),
        program.display(),
        dir = cluster.dir.display()
    );
    actix::System::new().block_on(async {
        let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
        else {
            return;
        };
        loop {
            tokio::select! {
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            for node in &mut cluster.nodes {
                if let Some(child) = node.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    println!(
                        "{} stopped ({status}); start it again with: {} --config {} >> {} 2>&1 &",
                        node.name,
                        program.display(),
                        node.config.display(),
                        cluster.dir.join(format!("{}.log", node.name)).display()
                    );
                    node.child = None;
                }
            }
        }
    });
    println!("stopping the cluster");
    cluster.shutdown();
    Ok(())
}

fn cluster_command(config: &NodeConfig, command: ClusterCommand) -> Result<(), String> {
    match command {
        ClusterCommand::Init { name } => {
            let info = membership::init(config, &name)?;
            println!(
                "created cluster '{}' with node '{}' (id {})",
                info.cluster, info.node, info.id
            );
            Ok(())
        }
        ClusterCommand::AddNode { node, out } => {
            membership::add_node(config, &node, &out)?;
            println!(
                "join bundle for '{node}' written to {} (it holds a private key)",
                out.display()
            );
            Ok(())
        }
        ClusterCommand::Join { bundle } => {
            let text = std::fs::read_to_string(&bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
            let bundle: membership::JoinBundle =
                serde_json::from_str(&text).map_err(|e| format!("{}: not a join bundle: {e}", bundle.display()))?;
            let info = actix::System::new().block_on(membership::join(config, &bundle))?;
            println!("joined cluster '{}' as '{}' (id {})", info.cluster, info.node, info.id);
            Ok(())
        }
        ClusterCommand::RemoveNode { node } => {
            actix::System::new().block_on(membership::remove_node(config, &node))?;
            println!("removed '{node}' from the cluster");
            Ok(())
        }
        ClusterCommand::ResetLocal { peers } => {
            let peers = peers
                .iter()
                .map(|p| membership::parse_peer(p))
                .collect::<Result<Vec<_>, String>>()?;
            let outcome = actix::System::new().block_on(membership::reset_local(config, &peers))?;
            if let Some(moved) = &outcome.moved_to {
                println!("moved the old Raft state to {} (delete it when done)", moved.display());
            }
            println!(
                "'{}' rejoined cluster '{}' as a learner (new Raft id {}); start its daemon: it catches up \
                 from the other members and becomes a voter",
                outcome.info.node, outcome.info.cluster, outcome.info.id
            );
            Ok(())
        }
        ClusterCommand::Status { json } => {
            let view = actix::System::new().block_on(membership::status(config))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view).map_err(|e| e.to_string())?);
            } else {
                print!("{}", membership::render(&view));
            }
            Ok(())
        }
    }
}

/// Writes `bytes` to stdout; a reader that went away is no error.
fn write_out(bytes: &[u8]) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("hactor: cannot write the output: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

/// `hactor man`: the manual page from the argument definitions.
fn man(output: Option<&std::path::Path>) -> ExitCode {
    let mut page = Vec::new();
    if let Err(e) = clap_mangen::Man::new(Cli::command()).render(&mut page) {
        eprintln!("hactor: cannot render the man page: {e}");
        return ExitCode::FAILURE;
    }
    match output {
        Some(path) => match std::fs::write(path, page) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hactor: cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
        None => write_out(&page),
    }
}

/// `hactor check-config`: the node configuration (or, with `fence`, a
/// fence.cfg) checked as the daemon would read it.
fn check_config(config: Option<&std::path::Path>, fence: Option<&std::path::Path>, nodes: &[String]) -> ExitCode {
    if let Some(fence) = fence {
        let text = match std::fs::read_to_string(fence) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("hactor: {}: cannot read: {e}", fence.display());
                return ExitCode::FAILURE;
            }
        };
        let (report, ok) = hactor::config::fence::check_report(&fence.display().to_string(), &text, nodes);
        print!("{report}");
        return if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let path = config.map_or_else(|| PathBuf::from(hactor::node::config::DEFAULT_CONFIG), PathBuf::from);
    let config = match NodeConfig::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hactor: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}: valid", path.display());
    print!("{}", hactor::node::check_config::report(&config));
    let mut failed = hactor::node::check_config::inequalities(&config.timings)
        .iter()
        .any(|i| !i.holds);
    if let Some(fence) = &config.fence_config {
        let parsed = std::fs::read_to_string(fence)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|text| {
                hactor::config::fence::FenceConfig::parse(&text).map_err(|errors| {
                    let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                    lines.join("; ")
                })
            });
        match parsed {
            Ok(devices) => println!(
                "hardware fencing: {} ({} devices: {}; see check-config --fence)",
                fence.display(),
                devices.devices().len(),
                devices.devices().join(", ")
            ),
            Err(e) => {
                failed = true;
                eprintln!("hactor: {}: {e}", fence.display());
            }
        }
    }
    if !config.socket.exists() {
        println!(
            "HA configuration: no daemon at {} (not checked)",
            config.socket.display()
        );
    } else {
        match ha_config_summary(&config.socket) {
            Ok(summary) => print!("{summary}"),
            Err(e) => println!("HA configuration: not checked - {e}"),
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// The running daemon's HA configuration as `check-config` reports it:
/// counts, and the rules the feasibility checks drop.
fn ha_config_summary(socket: &std::path::Path) -> Result<String, String> {
    use hactor::api::protocol::{Request, Response};
    use hactor::cli::client::call_within;
    let timeout = Duration::from_secs(5);
    let mut out = format!("HA configuration (daemon at {}):\n", socket.display());
    if let Response::Resources { resources, .. } = call_within(socket, &Request::Config { kind: None }, timeout)? {
        out.push_str(&format!("  {} resources\n", resources.len()));
    }
    if let Response::Groups { groups, .. } = call_within(socket, &Request::GroupConfig, timeout)? {
        out.push_str(&format!("  {} groups\n", groups.len()));
    }
    if let Response::RulesCheck {
        checked,
        dropped,
        nodes,
    } = call_within(socket, &Request::RulesCheck { rules_cfg: None }, timeout)?
    {
        out.push_str(&format!(
            "  {checked} rules checked against nodes {}; {} dropped\n",
            nodes.join(","),
            dropped.len()
        ));
        for rule in dropped {
            for message in rule.messages {
                out.push_str(&format!("  rule '{}': {message}\n", rule.rule));
            }
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::FenceGuard {
        timeout_ms,
        daemon_pid,
        log,
    }) = cli.command
    {
        let options = hactor::watchdog::guard::GuardOptions {
            timeout: Duration::from_millis(timeout_ms),
            daemon_pid,
            log,
        };
        return ExitCode::from(u8::try_from(hactor::watchdog::guard::main(options)).unwrap_or(1));
    }
    if let Some(Command::LocalCluster {
        dir,
        nodes,
        services,
        port,
        profile,
        web,
    }) = cli.command
    {
        let spec = hactor::node::local_cluster::LocalSpec {
            nodes: nodes as usize,
            services: usize::try_from(services).unwrap_or(0),
            profile,
            base_port: port,
            marker: format!("{port}000"),
            extra: if web {
                "[web]\nlisten = \"127.0.0.1:0\"\n".into()
            } else {
                String::new()
            },
            script: None,
        };
        return match local_cluster(&dir, spec) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hactor: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match &cli.command {
        Some(Command::Man { output }) => return man(output.as_deref()),
        Some(Command::Completions { shell }) => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "hactor", &mut script);
            return write_out(&script);
        }
        Some(Command::CheckConfig { fence, nodes }) => {
            return check_config(cli.config.as_deref(), fence.as_deref(), nodes);
        }
        _ => {}
    }
    let config_path = cli
        .config
        .unwrap_or_else(|| PathBuf::from(hactor::node::config::DEFAULT_CONFIG));
    let config = match NodeConfig::load(&config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hactor: {e}");
            if cli.command.is_none() && !config_path.exists() {
                eprintln!("hactor: give --config <file> (see config/hactor.example.toml)");
            }
            return ExitCode::from(2);
        }
    };
    if let Err(e) = hactor::node::config::prepare_state_dir(&config.state_dir) {
        eprintln!("hactor: {}: {e}", config_path.display());
        return ExitCode::FAILURE;
    }
    if let Some(Command::Cluster(command)) = cli.command {
        // The commands that write the state directory never run beside a
        // daemon (or another such command) on it.
        let _lock = match command {
            ClusterCommand::Init { .. } | ClusterCommand::Join { .. } => {
                match StateDirLock::acquire(&config.state_dir) {
                    Ok(lock) => Some(lock),
                    // A member's init or join is refused below for that
                    // reason before it writes anything: say so rather than
                    // that its daemon runs.
                    Err(_) if matches!(membership::load(&config), Ok(Some(_))) => None,
                    Err(e) => {
                        eprintln!("hactor: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            _ => None,
        };
        return match cluster_command(&config, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hactor: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let format = match cli.log_format.as_deref() {
        Some("json") => LogFormat::Json,
        Some(_) => LogFormat::Plain,
        None => config.log_format,
    };
    init_logging(format);
    // Before anything else touches the state directory; held (and the pid
    // file kept) until the daemon exits.
    let state_lock = StateDirLock::acquire(&config.state_dir).and_then(|mut lock| {
        lock.write_pid_file()?;
        Ok(lock)
    });
    let state_lock = match state_lock {
        Ok(lock) => lock,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("hactor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let system = actix::System::new();
    let code = match system.block_on(run(config_path, config)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
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
