//! The node daemon's actor tree: thin shells around [`crate::core`].
//!
//! ```text
//!            LockActor ◄── snapshot / apply ── CrmActor, LrmActor (rounds on timers)
//!                                                   │           │ jobs
//!            WatchdogActor (own arbiter) ◄── arm/pet/close      ▼
//!                 │ keepalive while every client is fresh    WorkerPool ── agents
//!                 ▼
//!          /dev/watchdog  or  fence guard process
//! ```
//!
//! Every actor but the watchdog runs under a Supervisor: a panic inside a
//! handler is caught ([`guarded`]) and the actor restarts behind the same
//! address. The WatchdogActor is never restarted from under the device.
//!
//! [`NodeRuntime`] says how a node meets time and threads: the daemon's
//! defaults, or the actor-level simulator's (`sim::chaos`) virtual clock,
//! watchdog on the current arbiter and inline agent actions.
//!
//! Owns: timers, mailboxes and supervision; no decisions (a round's
//! outcome is `core::store::outcome`'s). May import: `core`, `config`,
//! `net`, `node`, `agents`, `watchdog`; never `api`, `cli` or `daemon`.

pub mod lock;
pub mod round;
mod sabotage;
pub mod watchdog;
pub mod worker_pool;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, Addr, Arbiter, Context, Message, Recipient, Supervisor};
use tokio::sync::Semaphore;

use crate::agents::Agents;
use crate::agents::guest::GuestAgent;
use crate::agents::proc::ProcAgent;
use crate::agents::script::ScriptAgent;
use crate::core::env::DatacenterSettings;
use crate::net::clock::Clock;
use crate::node::cluster_store::ClusterStore;
use crate::node::config::{NodeConfig, WatchdogBackend};
use crate::watchdog::Backend;

use self::lock::LockActor;
use self::round::{CrmActor, Exited, LrmActor, RoundSettings, Sabotage};
use self::watchdog::{WatchdogActor, WatchdogCmd};
use self::worker_pool::{JobLatency, PoolStats, WorkerPool};

/// Fault injection: make the actor panic inside a handler (tests and
/// chaos drills). The actor restarts.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct InjectPanic;

/// Runs `f`, turning a panic into a logged stop of the actor, which its
/// Supervisor then restarts (an uncaught panic would kill it for good).
pub fn guarded<A, F>(ctx: &mut Context<A>, name: &str, f: F)
where
    A: Actor<Context = Context<A>>,
    F: FnOnce(),
{
    if std::panic::catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!("{name}: handler panicked, restarting actor");
        ctx.stop();
    }
}

/// How to build a node besides its configuration.
pub struct NodeOptions {
    /// The watchdog backend; `None` builds the configured one.
    pub backend: Option<Box<dyn Backend>>,
    /// Program that runs `fence-guard` (the `hactor` binary).
    pub guard_program: PathBuf,
    /// Whether a fence also kills this process (the daemon); tests that
    /// host a node in the test process say no.
    pub fence_kills_daemon: bool,
    /// Extra agents (tests), besides the built-in ones (`proc`, `script`,
    /// and `vm`/`ct` when configured or installed); an extra agent of a
    /// built-in type replaces it.
    pub agents: Agents,
    /// Receives [`Exited`] when the CRM or LRM exits.
    pub exited: Recipient<Exited>,
    pub datacenter: DatacenterSettings,
    /// Clock and threads: the daemon's by default.
    pub runtime: NodeRuntime,
}

/// How a node meets time and threads. The daemon uses the default (the
/// system clock, the watchdog on a thread of its own, agent actions on
/// tokio's blocking pool); the actor-level simulator (`sim::chaos`) runs
/// every node on one paused single-thread runtime, so that virtual time
/// drives every timer and a seed replays.
#[derive(Clone, Default)]
pub struct NodeRuntime {
    /// The wall clock the rounds stamp leases with.
    pub clock: Clock,
    /// Keep the WatchdogActor on the current arbiter instead of a new
    /// one: a separate thread would have its own, unpaused, clock.
    pub watchdog_on_current_arbiter: bool,
    /// Run agent actions inline, each taking the time this says, instead
    /// of on the blocking pool (whose threads a replay cannot order).
    pub inline_jobs: Option<JobLatency>,
    /// A deliberate safety bug (the simulator's checker tests only).
    #[doc(hidden)]
    pub sabotage: Option<Sabotage>,
}

/// The running actors of a node.
#[derive(Clone)]
pub struct NodeHandle {
    pub store: ClusterStore,
    pub lock: Addr<LockActor>,
    pub watchdog: Addr<WatchdogActor>,
    pub pool: Addr<WorkerPool>,
    pub crm: Addr<CrmActor>,
    pub lrm: Addr<LrmActor>,
    pub pool_stats: Arc<PoolStats>,
    pub proc_agent: Arc<ProcAgent>,
    pub script_agent: Arc<ScriptAgent>,
}

/// Builds the configured watchdog backend; a missing device is an error,
/// never a silent fallback.
pub fn build_backend(
    config: &NodeConfig,
    guard_program: &std::path::Path,
    fence_kills_daemon: bool,
) -> std::io::Result<Box<dyn Backend>> {
    let timeout = Duration::from_millis(config.timings.watchdog_device_timeout_ms);
    match config.watchdog {
        WatchdogBackend::Device => {
            let device = crate::watchdog::device::Device::open(&config.watchdog_device, timeout.as_secs().max(1))?;
            Ok(Box::new(device))
        }
        WatchdogBackend::Process => {
            let log = Some(config.state_dir.join("fence.log"));
            let guard = crate::watchdog::process::GuardProcess::spawn(guard_program, timeout, log, fence_kills_daemon)?;
            Ok(Box::new(guard))
        }
    }
}

/// Starts the actor tree of one node (inside a running actix System).
pub fn start_node(
    config: &NodeConfig,
    store: impl Into<ClusterStore>,
    options: NodeOptions,
) -> std::io::Result<NodeHandle> {
    let store: ClusterStore = store.into();
    let backend = match options.backend {
        Some(backend) => backend,
        None => build_backend(config, &options.guard_program, options.fence_kills_daemon)?,
    };
    let timings = config.timings;
    let runtime = options.runtime;
    let client_timeout = Duration::from_millis(timings.watchdog_client_timeout_ms);
    let tick = Duration::from_millis(timings.watchdog_tick_ms);
    let watchdog = if runtime.watchdog_on_current_arbiter {
        WatchdogActor::new(backend, client_timeout, tick).start()
    } else {
        let watchdog_arbiter = Arbiter::new();
        let watchdog = WatchdogActor::start_in_arbiter(&watchdog_arbiter.handle(), move |_| {
            WatchdogActor::new(backend, client_timeout, tick)
        });
        // The arbiter lives as long as the system; its handle is kept by actix.
        std::mem::forget(watchdog_arbiter);
        watchdog
    };

    let node = config.node.clone();
    let lock = {
        let (node, store) = (node.clone(), store.clone());
        Supervisor::start(move |_| LockActor::new(node, store))
    };
    let watchdog_for_groups = watchdog.clone();
    let proc_agent = Arc::new(
        ProcAgent::new(
            config.proc_services.clone(),
            Some(config.state_dir.join("proc")),
            Arc::new(move |pgid, started| {
                let cmd = if started {
                    WatchdogCmd::Track(pgid)
                } else {
                    WatchdogCmd::Untrack(pgid)
                };
                watchdog_for_groups.do_send(cmd);
            }),
        )
        .with_node(&node),
    );
    let script_agent = Arc::new(ScriptAgent::new(config.script_services.clone(), &node));
    let mut agents = Agents::new();
    agents.register("proc", proc_agent.clone());
    agents.register("script", script_agent.clone());
    for guest in crate::node::shutdown::guest_agents(config, crate::node::shutdown::program_installed) {
        agents.register(guest.kind.as_str(), Arc::new(GuestAgent::new(guest, &node)));
    }
    agents.extend(options.agents);

    let settings = |max_workers| RoundSettings {
        node: node.clone(),
        round: timings.round(),
        lease_ms: timings.lease_ms,
        timing: timings.core(),
        max_workers,
        datacenter: options.datacenter.clone(),
        clock: runtime.clock.clone(),
        sabotage: runtime.sabotage,
    };
    let slots = Arc::new(Semaphore::new(config.max_worker));
    let pool_stats = Arc::new(PoolStats::default());
    let exited = options.exited;

    // The LRM and the pool refer to each other: the pool learns the LRM's
    // address at creation, the LRM the pool's right after.
    let lrm = {
        let (settings, lock, watchdog, exited) = (
            settings(config.max_worker),
            lock.clone(),
            watchdog.clone(),
            exited.clone(),
        );
        Supervisor::start(move |_| LrmActor::new(settings, lock, watchdog, None, exited))
    };
    let pool = {
        let (node, agents, slots, stats) = (node.clone(), agents.clone(), slots.clone(), pool_stats.clone());
        let results = lrm.clone().recipient();
        let inline = runtime.inline_jobs.clone();
        Supervisor::start(move |_| WorkerPool::new(node, agents, slots, results, stats).inline(inline))
    };
    lrm.do_send(round::SetPool(pool.clone()));
    let crm = {
        let (settings, lock, watchdog) = (settings(0), lock.clone(), watchdog.clone());
        Supervisor::start(move |_| CrmActor::new(settings, lock, watchdog, None, exited))
    };
    if let Some(path) = &config.fence_config {
        let timeout = Duration::from_secs(config.fence_timeout_secs);
        crm.do_send(round::SetFence(crate::agents::fence::FenceRunner::new(
            path.clone(),
            timeout,
        )));
    }
    Ok(NodeHandle {
        store,
        lock,
        watchdog,
        pool,
        crm,
        lrm,
        pool_stats,
        proc_agent,
        script_agent,
    })
}
