//! CrmActor and LrmActor: thin shells that run the core's CRM or LRM round
//! on a timer. Each round: take a snapshot from the LockActor, run the
//! core over a [`RoundEnv`], apply the outbox to the store, then forward
//! the watchdog operations the store confirmed and the worker jobs.
//!
//! A panic inside a round is caught; the actor stops and its Supervisor
//! restarts it with fresh core state (as a daemon restart would), while
//! the watchdog registration survives in the WatchdogActor.

use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient, SpawnHandle, Supervised,
    WrapFuture,
};

use crate::core::crm::{Crm, CrmState};
use crate::core::env::{DatacenterSettings, NodeShutdown};
use crate::core::event::{Event, Level};
use crate::core::lrm::Lrm;
use crate::core::store::outcome::{Answer, Retry, RoundClock, WatchdogOp, proposal, round_outcome};
use crate::core::store::{Op, Outgoing, RoundContext, RoundEnv};
use crate::core::timing::Timing;
use crate::core::types::{ExitCode, NodeName};
use crate::core::watchdog::Client;
use crate::net::clock::Clock;

use super::lock::{ApplyOps, GetManagerWrites, GetRoundSnapshot, GetSnapshot, LockActor};
use super::watchdog::{WatchdogActor, WatchdogCmd};
use super::worker_pool::{JobDone, RunJob, WorkerPool};
use super::{InjectPanic, guarded};

/// The part of the core a round actor drives.
pub trait Role: Unpin + 'static {
    const CLIENT: Client;
    const NAME: &'static str;
    /// Runs a round as soon as the manager status changes (the LRM: a new
    /// command for this node is carried out at once, not a round later).
    const FOLLOWS_MANAGER: bool = false;
    fn create(env: &mut RoundEnv<'_>) -> Self;
    /// One iteration; `false` when the daemon part exited.
    fn iterate(&mut self, env: &mut RoundEnv<'_>) -> bool;
    fn shutdown_request(&mut self, env: &mut RoundEnv<'_>);
    fn job_finished(&mut self, _env: &mut RoundEnv<'_>, _sid: &str, _uid: Option<&str>, _code: ExitCode) {}
    fn describe(&self) -> &'static str;
    /// Run again after this, if sooner than the next regular round.
    fn eager(&self) -> Option<Duration> {
        None
    }
}

/// How often a CRM slave tries for the manager lock: upstream's slave loop
/// has no sleep and is paced by its lock attempts, one a second, so a new
/// master takes over about a second after the old one's lock expired, not
/// up to a round later.
const SLAVE_POLL: Duration = Duration::from_secs(1);

impl Role for Crm {
    const CLIENT: Client = Client::Crm;
    const NAME: &'static str = "crm";

    fn create(env: &mut RoundEnv<'_>) -> Self {
        Crm::new(env)
    }

    fn iterate(&mut self, env: &mut RoundEnv<'_>) -> bool {
        Crm::iterate(self, env)
    }

    fn shutdown_request(&mut self, env: &mut RoundEnv<'_>) {
        Crm::shutdown_request(self, env);
    }

    fn describe(&self) -> &'static str {
        self.state().as_str()
    }

    fn eager(&self) -> Option<Duration> {
        (self.state() == CrmState::Slave).then_some(SLAVE_POLL)
    }
}

impl Role for Lrm {
    const CLIENT: Client = Client::Lrm;
    const NAME: &'static str = "lrm";
    const FOLLOWS_MANAGER: bool = true;

    fn create(env: &mut RoundEnv<'_>) -> Self {
        Lrm::new(env)
    }

    fn iterate(&mut self, env: &mut RoundEnv<'_>) -> bool {
        Lrm::iterate(self, env)
    }

    fn shutdown_request(&mut self, env: &mut RoundEnv<'_>) {
        Lrm::shutdown_request(self, env);
    }

    fn job_finished(&mut self, env: &mut RoundEnv<'_>, sid: &str, uid: Option<&str>, code: ExitCode) {
        Lrm::job_finished(self, env, sid, uid, code);
    }

    fn describe(&self) -> &'static str {
        self.state().as_str()
    }
}

/// Settings a round actor needs.
#[derive(Debug, Clone)]
pub struct RoundSettings {
    pub node: NodeName,
    pub round: Duration,
    pub lease_ms: u64,
    pub timing: Timing,
    pub max_workers: usize,
    pub datacenter: DatacenterSettings,
    /// The wall clock the round stamps leases with (the system's in the
    /// daemon, virtual time in `sim::chaos`).
    pub clock: Clock,
    /// A deliberate safety bug, so that the simulator's checkers can be
    /// shown to catch one; `None` everywhere but those tests.
    #[doc(hidden)]
    pub sabotage: Option<Sabotage>,
}

/// Safety rules the simulator's tests break on purpose ([`RoundSettings::sabotage`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sabotage {
    /// Pet the watchdog after every round, renewed lease or not: a node
    /// cut from the quorum is then never fenced.
    PetWithoutRenewal,
    /// Hand agents the fencing tokens of the actor's first round for
    /// good: a service that comes back to this node starts under an older
    /// token than its last placement's.
    KeepFirstEpochs,
    /// Wave 1's hole ("a fenced node restarted 15-60 s later started its
    /// old services again"): the LRM's first round after a (re)start
    /// starts every service its own last published status had started,
    /// from that old view, bypassing the manager's current commands and
    /// the placement claim.
    RestartOldServices,
    /// The master takes a node's agent lock a lease early: as soon as it
    /// sees the node offline, while the node may still run its services
    /// under its lease ([`super::sabotage::bend_view`]).
    TakeLockEarly,
    /// Rounds decide from the local replica as it is, without a read
    /// barrier, and propose without the guards that make the store refuse
    /// a decision taken from an old view ([`super::sabotage::bend_outbox`]).
    StaleReplica,
    /// The disarm hole this harness found: a disarmed LRM releases its
    /// agent lock while its services go on running unwatched, so a master
    /// that sees the node offline after the `arm-ha` takes the free lock,
    /// counts the node fenced and starts its services elsewhere
    /// ([`super::sabotage::bend_outbox`]).
    ReleaseOnDisarm,
}

impl Sabotage {
    pub const ALL: [Sabotage; 6] = [
        Sabotage::PetWithoutRenewal,
        Sabotage::KeepFirstEpochs,
        Sabotage::RestartOldServices,
        Sabotage::TakeLockEarly,
        Sabotage::StaleReplica,
        Sabotage::ReleaseOnDisarm,
    ];

    /// Its name on the simulator's command line.
    pub fn name(self) -> &'static str {
        match self {
            Sabotage::PetWithoutRenewal => "pet-without-renewal",
            Sabotage::KeepFirstEpochs => "keep-first-epochs",
            Sabotage::RestartOldServices => "restart-old-services",
            Sabotage::TakeLockEarly => "take-lock-early",
            Sabotage::StaleReplica => "stale-replica",
            Sabotage::ReleaseOnDisarm => "release-on-disarm",
        }
    }

    pub fn from_name(name: &str) -> Option<Sabotage> {
        Sabotage::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The daemon part `NAME` exited (after a shutdown request).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Exited(pub Client);

/// Drops [`Exited`]: for hosts of a node that decide its life themselves
/// (the actor-level simulator, tests).
pub struct IgnoreExited;

impl Actor for IgnoreExited {
    type Context = Context<Self>;
}

impl Handler<Exited> for IgnoreExited {
    type Result = ();
    fn handle(&mut self, _msg: Exited, _ctx: &mut Context<Self>) {}
}

/// SIGTERM, with whether the node itself goes down.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ShutdownRequest(pub NodeShutdown);

/// Where an LRM sends its jobs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPool(pub Addr<WorkerPool>);

impl<R: Role> Handler<SetPool> for RoundActor<R> {
    type Result = ();

    fn handle(&mut self, msg: SetPool, _ctx: &mut Context<Self>) {
        self.pool = Some(msg.0);
    }
}

/// Hardware fencing for a CRM: the runner of fence-device runs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetFence(pub std::sync::Arc<crate::agents::fence::FenceRunner>);

impl<R: Role> Handler<SetFence> for RoundActor<R> {
    type Result = ();

    fn handle(&mut self, msg: SetFence, _ctx: &mut Context<Self>) {
        self.fence = Some(msg.0);
    }
}

/// The core state's name (`master`, `active`, ...), for status and tests.
#[derive(Message)]
#[rtype(result = "Option<&'static str>")]
pub struct GetRoleState;

/// Runs one role's rounds.
pub struct RoundActor<R: Role> {
    settings: RoundSettings,
    lock: Addr<LockActor>,
    watchdog: Addr<WatchdogActor>,
    pool: Option<Addr<WorkerPool>>,
    /// Fence-device runs (a CRM on a node with hardware fencing).
    fence: Option<std::sync::Arc<crate::agents::fence::FenceRunner>>,
    exited: Recipient<Exited>,
    role: Option<R>,
    /// A shutdown request not yet handed to the core.
    pending_shutdown: Option<NodeShutdown>,
    /// The core was told to shut down (survives restarts).
    shutting_down: Option<NodeShutdown>,
    finished_jobs: Vec<JobDone>,
    /// Migrations and relocations done whose move of the service's home
    /// node has not committed yet (survives restarts): their results are
    /// reported only after it has.
    unmoved_jobs: Vec<JobDone>,
    /// A move of `unmoved_jobs` is on its way to the store (its number:
    /// an answer to a send from before a restart is ignored).
    moving: Option<u64>,
    moves_sent: u64,
    /// Fencing tokens of the last snapshot, handed to started agents.
    epochs: std::collections::BTreeMap<String, u64>,
    /// [`Sabotage::RestartOldServices`]: the old view was acted on
    /// (`None`), or the starts it asks for, not yet sent (`Some`).
    old_view: Option<Option<Vec<RunJob>>>,
    busy: bool,
    done: bool,
    /// Manager status writes seen (for [`Role::FOLLOWS_MANAGER`]).
    manager_writes: u64,
    /// When to look again after failed rounds.
    retry: Retry,
    /// A quick retry is scheduled (at most one at a time).
    retry_pending: bool,
    /// A [`Role::eager`] round is scheduled (at most one at a time).
    eager_pending: bool,
    /// The regular rounds' timer.
    ticks: Option<SpawnHandle>,
    _role: PhantomData<R>,
}

/// How often a CRM looks whether a fence-device run finished.
const FENCE_POLL: Duration = Duration::from_millis(50);

/// How often a manager-following role checks for a new manager status:
/// ten times a round (100 ms under `fast`, 1 s under `pve`), so a command
/// of the master is taken up well within the round it was written in.
fn manager_poll(round: Duration) -> Duration {
    (round / 10).max(Duration::from_millis(1))
}

pub type CrmActor = RoundActor<Crm>;
pub type LrmActor = RoundActor<Lrm>;

/// Logs a core event through `tracing`, in upstream's wording.
pub fn log_event(node: &str, component: &str, event: &Event) {
    let source = format!("{node}/{component}");
    match event.level() {
        Level::Err => tracing::error!(source = %source, "{event}"),
        Level::Warning => tracing::warn!(source = %source, "{event}"),
        Level::Notice | Level::Email => tracing::warn!(source = %source, "{event}"),
        Level::Info | Level::Garbled => tracing::info!(source = %source, "{event}"),
    }
}

impl<R: Role> RoundActor<R> {
    pub fn new(
        settings: RoundSettings,
        lock: Addr<LockActor>,
        watchdog: Addr<WatchdogActor>,
        pool: Option<Addr<WorkerPool>>,
        exited: Recipient<Exited>,
    ) -> RoundActor<R> {
        RoundActor {
            settings,
            lock,
            watchdog,
            pool,
            fence: None,
            exited,
            role: None,
            pending_shutdown: None,
            shutting_down: None,
            finished_jobs: Vec::new(),
            unmoved_jobs: Vec::new(),
            moving: None,
            moves_sent: 0,
            epochs: std::collections::BTreeMap::new(),
            old_view: None,
            busy: false,
            done: false,
            manager_writes: 0,
            retry: Retry::default(),
            retry_pending: false,
            eager_pending: false,
            ticks: None,
            _role: PhantomData,
        }
    }

    fn context(&self, snapshot: &super::lock::Snapshot) -> RoundContext {
        RoundContext {
            node: self.settings.node.clone(),
            client: R::CLIENT,
            now_ms: self.settings.clock.now_ms(),
            quorate: snapshot.quorate,
            members: snapshot.members.clone(),
            lease_ms: self.settings.lease_ms,
            timing: self.settings.timing,
            max_workers: self.settings.max_workers,
            datacenter: self.settings.datacenter.clone(),
            node_shutdown: self.shutting_down.or(self.pending_shutdown).unwrap_or_default(),
        }
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        // Moves left over by a restart or a failed send go out again.
        self.move_services(ctx);
        if self.busy || self.done {
            return;
        }
        self.busy = true;
        let snapshot: std::pin::Pin<Box<dyn std::future::Future<Output = _>>> =
            if self.settings.sabotage == Some(Sabotage::StaleReplica) {
                Box::pin(self.lock.send(GetSnapshot))
            } else {
                Box::pin(self.lock.send(GetRoundSnapshot))
            };
        ctx.spawn(snapshot.into_actor(self).map(|snapshot, act, ctx| match snapshot {
            Ok(snapshot) => act.run_core(snapshot, ctx),
            Err(e) => {
                tracing::error!(node = %act.settings.node, "{}: store unreachable - {e}", R::NAME);
                act.busy = false;
            }
        }));
    }

    fn run_core(&mut self, snapshot: super::lock::Snapshot, ctx: &mut Context<Self>) {
        if !snapshot.quorate {
            // No quorum (an election, a replica catching up): look again
            // soon, so that the first round after the store is back renews
            // the lease and pets the watchdog at once, not up to a round
            // later; the watchdog client timeout has no round to spare.
            self.schedule_retry(ctx);
        }
        let round_ctx = self.context(&snapshot);
        if R::CLIENT == Client::Lrm
            && self.settings.sabotage == Some(Sabotage::RestartOldServices)
            && self.old_view.is_none()
        {
            self.old_view = Some(Some(old_view_starts(&snapshot.state, &self.settings.node)));
        }
        let mut state = snapshot.state;
        let (sabotage, me, lease_ms) = (self.settings.sabotage, &self.settings.node, round_ctx.lease_ms);
        super::sabotage::bend_view(sabotage, R::CLIENT, me, lease_ms, &mut state);
        let mut env = RoundEnv::new(&round_ctx, &mut state);
        if let Some(fence) = &self.fence {
            env.fence = fence.view(round_ctx.members.keys().cloned());
        }
        let finished = std::mem::take(&mut self.finished_jobs);
        let pending_shutdown = self.pending_shutdown.take();
        let role = &mut self.role;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let core = role.get_or_insert_with(|| R::create(&mut env));
            for job in &finished {
                core.job_finished(&mut env, &job.sid, job.uid.as_deref(), job.code);
            }
            if pending_shutdown.is_some() {
                core.shutdown_request(&mut env);
            }
            core.iterate(&mut env)
        }));
        let RoundEnv { mut outbox, events, .. } = env;
        super::sabotage::bend_outbox(sabotage, R::CLIENT, me, lease_ms, &mut outbox);
        let epochs: std::collections::BTreeMap<String, u64> = std::mem::take(&mut state.epochs);
        if self.settings.sabotage != Some(Sabotage::KeepFirstEpochs) || self.epochs.is_empty() {
            self.epochs = epochs;
        }
        for event in &events {
            log_event(&self.settings.node, R::NAME, event);
        }
        if pending_shutdown.is_some() {
            self.shutting_down = pending_shutdown;
        }
        let alive = match outcome {
            Ok(alive) => alive,
            Err(_) => {
                tracing::error!(node = %self.settings.node, "{} round panicked, restarting", R::NAME);
                self.busy = false;
                use actix::ActorContext;
                ctx.stop();
                return;
            }
        };
        self.apply(outbox, alive, round_ctx.now_ms, round_ctx.quorate, ctx);
    }

    /// After an unconfirmed or unquorate round, tries again sooner than
    /// the next tick as [`Retry`] says, never with more than one retry
    /// pending.
    fn schedule_retry(&mut self, ctx: &mut Context<Self>) {
        let Some(delay) = self.retry.failed(self.settings.round.as_millis() as u64) else {
            return;
        };
        if self.retry_pending {
            return;
        }
        self.retry_pending = true;
        ctx.run_later(Duration::from_millis(delay), |act, ctx| {
            act.retry_pending = false;
            act.round(ctx);
        });
    }

    /// Runs a round as soon as `node`'s fence-device run finished: a
    /// confirmed power-off is acknowledged without waiting for the tick.
    fn watch_fence(&mut self, node: NodeName, ctx: &mut Context<Self>) {
        ctx.run_later(FENCE_POLL, move |act, ctx| {
            let state = act.fence.as_ref().and_then(|f| f.run_state(&node));
            if state == Some(crate::core::env::FenceDeviceState::Running) {
                act.watch_fence(node, ctx);
            } else if state.is_some() {
                act.round(ctx);
            }
        });
    }

    /// (Re)starts the regular rounds: one a round from now, and so on.
    fn start_ticks(&mut self, ctx: &mut Context<Self>) {
        if let Some(old) = self.ticks.take() {
            ctx.cancel_future(old);
        }
        self.ticks = Some(ctx.run_interval(self.settings.round, |act, ctx| act.round(ctx)));
    }

    /// Runs the next round early when the role asks for it
    /// ([`Role::eager`]), never with more than one such round pending.
    /// The early round restarts the regular rounds from it: a slave that
    /// took the manager lock in one runs its master rounds a round apart
    /// from its takeover, as upstream's master loop sleeps until a round
    /// after each round's start, so the fence delay it starts then ends
    /// in a round, not up to a round after.
    fn schedule_eager(&mut self, ctx: &mut Context<Self>) {
        let Some(delay) = self.role.as_ref().and_then(R::eager) else {
            return;
        };
        if self.eager_pending || self.done || delay >= self.settings.round {
            return;
        }
        self.eager_pending = true;
        ctx.run_later(delay, |act, ctx| {
            act.eager_pending = false;
            act.start_ticks(ctx);
            act.round(ctx);
        });
    }

    /// Starts a round when the manager wrote a new status since the last look.
    fn follow_manager(&mut self, ctx: &mut Context<Self>) {
        let writes = self.lock.send(GetManagerWrites);
        ctx.spawn(writes.into_actor(self).map(|writes, act, ctx| {
            if let Ok(writes) = writes
                && writes != act.manager_writes
            {
                act.manager_writes = writes;
                act.round(ctx);
            }
        }));
    }

    /// Proposes the round's writes, then carries out what the store's
    /// answer lets stand ([`round_outcome`]).
    fn apply(
        &mut self,
        outbox: Vec<Outgoing>,
        alive: bool,
        stamp_ms: u64,
        round_ctx_quorate: bool,
        ctx: &mut Context<Self>,
    ) {
        let apply = self.lock.send(ApplyOps(proposal(&outbox)));
        ctx.spawn(apply.into_actor(self).map(move |replies, act, ctx| {
            let answer = match replies {
                Ok(Ok(replies)) => Answer::Replies(replies),
                Ok(Err(e)) => {
                    tracing::warn!(node = %act.settings.node, "{}: store refused the round's writes - {e}", R::NAME);
                    Answer::Failed
                }
                Err(e) => {
                    tracing::error!(node = %act.settings.node, "{}: store unreachable - {e}", R::NAME);
                    Answer::Failed
                }
            };
            let clock = RoundClock {
                stamp_ms,
                answered_ms: act.settings.clock.now_ms(),
                round_ms: act.settings.round.as_millis() as u64,
            };
            let outcome = round_outcome(outbox, &answer, &act.epochs, clock);
            for reason in &outcome.stale {
                tracing::warn!(node = %act.settings.node, "{}: store refused a stale decision - {reason}", R::NAME);
            }
            if !outcome.confirmed {
                tracing::warn!(
                    node = %act.settings.node,
                    "{}: the store did not confirm this round, discarding its decisions",
                    R::NAME
                );
                act.role = None;
                act.schedule_retry(ctx);
            } else if round_ctx_quorate {
                act.retry.succeeded();
            }
            if outcome.late {
                tracing::warn!(
                    node = %act.settings.node,
                    "{}: store confirmed the lease renewal too late ({} ms), not petting the watchdog",
                    R::NAME,
                    clock.answered_ms.saturating_sub(stamp_ms)
                );
            }
            let closed = outcome.watchdog.contains(&WatchdogOp::Close);
            if act.settings.sabotage == Some(Sabotage::PetWithoutRenewal) && !closed {
                act.watchdog.do_send(WatchdogCmd::Pet(R::CLIENT));
            }
            for op in outcome.watchdog {
                act.watchdog.do_send(match op {
                    WatchdogOp::Arm => WatchdogCmd::Arm(R::CLIENT),
                    WatchdogOp::ArmAhead => WatchdogCmd::ArmAhead(R::CLIENT),
                    WatchdogOp::Pet => WatchdogCmd::Pet(R::CLIENT),
                    WatchdogOp::Close => WatchdogCmd::Close(R::CLIENT),
                });
            }
            if let Some(pool) = act.pool.as_ref() {
                for job in act.old_view.as_mut().and_then(Option::take).into_iter().flatten() {
                    pool.do_send(job);
                }
                for job in outcome.jobs {
                    pool.do_send(RunJob {
                        spec: job.spec,
                        fencing_token: job.fencing_token,
                    });
                }
            }
            if let Some(fence) = act.fence.clone() {
                for node in outcome.fence_resets {
                    fence.reset(&node);
                }
                for node in outcome.fence_runs {
                    fence.start(&node);
                    act.watch_fence(node, ctx);
                }
            }
            act.busy = false;
            act.schedule_eager(ctx);
            if !alive {
                act.done = true;
                tracing::info!(node = %act.settings.node, "{}: exit (loop end)", R::NAME);
                act.exited.do_send(Exited(R::CLIENT));
            }
        }));
    }
}

/// [`Sabotage::RestartOldServices`]: starts of every service `node`'s
/// last published LRM status reports started, under today's tokens.
fn old_view_starts(state: &crate::core::store::ClusterState, node: &str) -> Vec<RunJob> {
    use crate::core::agent::JobSpec;
    use crate::core::types::ServiceState;
    let Some(status) = state.lrm_status.get(node) else {
        return Vec::new();
    };
    status
        .results
        .iter()
        .filter(|(_, result)| result.state == ServiceState::Started && result.exit_code == ExitCode::Success)
        .map(|(uid, result)| RunJob {
            spec: JobSpec {
                sid: result.sid.clone(),
                uid: Some(uid.clone()),
                command: ServiceState::Started,
                target: None,
                timeout: None,
                config: state.resources.get(&result.sid).cloned(),
            },
            fencing_token: state.epochs.get(&result.sid).copied().unwrap_or(0),
        })
        .collect()
}

impl<R: Role> Actor for RoundActor<R> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(256);
        self.round(ctx);
        self.start_ticks(ctx);
        if R::FOLLOWS_MANAGER {
            ctx.run_interval(manager_poll(self.settings.round), |act, ctx| act.follow_manager(ctx));
        }
    }
}

impl<R: Role> Supervised for RoundActor<R> {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(node = %self.settings.node, "{} actor restarting with fresh state", R::NAME);
        self.role = None;
        self.busy = false;
        self.retry_pending = false;
        self.eager_pending = false;
        self.ticks = None;
        self.moving = None;
        // A shutdown in progress goes on after the restart.
        self.pending_shutdown = self.shutting_down.or(self.pending_shutdown);
    }
}

impl<R: Role> Handler<ShutdownRequest> for RoundActor<R> {
    type Result = ();

    fn handle(&mut self, msg: ShutdownRequest, ctx: &mut Context<Self>) {
        if self.shutting_down.is_none() {
            self.pending_shutdown = Some(msg.0);
            self.round(ctx);
        }
    }
}

impl<R: Role> Handler<JobDone> for RoundActor<R> {
    type Result = ();

    fn handle(&mut self, msg: JobDone, ctx: &mut Context<Self>) {
        for event in &msg.events {
            log_event(&self.settings.node, R::NAME, event);
        }
        if msg.moved_to.is_some() {
            self.unmoved_jobs.push(msg);
            self.move_services(ctx);
            return;
        }
        self.finished_jobs.push(msg);
        // Report the result and hand out the freed slot now, not a round later.
        self.round(ctx);
    }
}

impl<R: Role> RoundActor<R> {
    /// Commits the home-node moves of the migrations and relocations
    /// done, then reports their results: the master must not see a
    /// service moved while the store still puts it on its old node. A
    /// move sent and forgotten was lost to a refused or unanswered write
    /// (Raft seed 3510, fault model 4): the master then took the old node
    /// at `arm-ha` for an edit made while disarmed and started the
    /// service there while it ran on the new one. Retried until the store
    /// answers; a move is conditional on the old node
    /// ([`Op::MoveServiceFrom`]), so a retry of one that had committed
    /// unanswered changes nothing.
    fn move_services(&mut self, ctx: &mut Context<Self>) {
        if self.moving.is_some() || self.unmoved_jobs.is_empty() {
            return;
        }
        self.moves_sent += 1;
        let sent = self.moves_sent;
        self.moving = Some(sent);
        let ops = (self.unmoved_jobs.iter())
            .filter_map(|job| {
                Some(Op::MoveServiceFrom {
                    sid: job.sid.clone(),
                    from: self.settings.node.clone(),
                    node: job.moved_to.clone()?,
                })
            })
            .collect();
        let moving = self.unmoved_jobs.len();
        ctx.spawn(self.lock.send(ApplyOps(ops)).into_actor(self).map(move |reply, act, ctx| {
            if act.moving != Some(sent) {
                return;
            }
            act.moving = None;
            match reply {
                Ok(Ok(_)) => {
                    let moved: Vec<JobDone> = act.unmoved_jobs.drain(..moving).collect();
                    act.finished_jobs.extend(moved);
                    act.round(ctx);
                    act.move_services(ctx);
                }
                Ok(Err(e)) => {
                    tracing::warn!(node = %act.settings.node, "{}: moving a migrated service's home node failed - {e}", R::NAME);
                    ctx.run_later(manager_poll(act.settings.round), |act, ctx| act.move_services(ctx));
                }
                Err(e) => {
                    tracing::error!(node = %act.settings.node, "{}: store unreachable - {e}", R::NAME);
                    ctx.run_later(manager_poll(act.settings.round), |act, ctx| act.move_services(ctx));
                }
            }
        }));
    }
}

impl<R: Role> Handler<GetRoleState> for RoundActor<R> {
    type Result = Option<&'static str>;

    fn handle(&mut self, _msg: GetRoleState, _ctx: &mut Context<Self>) -> Self::Result {
        self.role.as_ref().map(Role::describe)
    }
}

impl<R: Role> Handler<InjectPanic> for RoundActor<R> {
    type Result = ();

    fn handle(&mut self, _msg: InjectPanic, ctx: &mut Context<Self>) {
        guarded(ctx, R::NAME, || std::panic::resume_unwind(Box::new("injected fault")));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::core::status::ResourceConfig;
    use crate::core::store::lock_name::LockName;
    use crate::core::store::{ClusterState, Lease};
    use crate::core::types::RequestState;

    /// A quorate node1's round of `client` at `now_ms`, node2 online.
    fn context(client: Client, now_ms: u64, lease_ms: u64) -> RoundContext {
        RoundContext {
            node: "node1".into(),
            client,
            now_ms,
            quorate: true,
            members: BTreeMap::from([("node1".into(), true), ("node2".into(), true)]),
            lease_ms,
            timing: Timing::UPSTREAM,
            max_workers: 1,
            datacenter: DatacenterSettings::default(),
            node_shutdown: NodeShutdown::StaysUp,
        }
    }

    /// One CRM iteration on node1 at `now_ms` over `state`; the CRM's
    /// state name and what it asks of the round timer.
    fn crm_round(state: &mut ClusterState, now_ms: u64) -> (&'static str, Option<Duration>) {
        let ctx = context(Client::Crm, now_ms, 120_000);
        let mut env = RoundEnv::new(&ctx, state);
        let mut crm = <Crm as Role>::create(&mut env);
        assert!(Role::iterate(&mut crm, &mut env));
        (crm.describe(), crm.eager())
    }

    /// One LRM iteration on node1 at `now_ms` over `state` (a fresh LRM
    /// unless `lrm` is given); the LRM after it.
    fn lrm_round(lrm: Option<Lrm>, state: &mut ClusterState, now_ms: u64) -> Lrm {
        let ctx = context(Client::Lrm, now_ms, 6_500);
        let mut env = RoundEnv::new(&ctx, state);
        let mut lrm = lrm.unwrap_or_else(|| <Lrm as Role>::create(&mut env));
        Role::iterate(&mut lrm, &mut env);
        lrm
    }

    /// The disarm hole `sim::chaos` found: a disarmed LRM's services run
    /// on unwatched, so its lock must stay its own (no time frees it) and,
    /// when the re-armed master wants it fenced, the node fences itself:
    /// its watchdog armed, then its lock back under an ordinary lease, then
    /// lost.
    #[test]
    fn a_disarmed_lrm_holds_its_lock_unwatched_and_fences_itself_when_asked() {
        use crate::core::status::{Disarm, ManagerStatus, ServiceStatus};
        use crate::core::store::state::HELD_UNWATCHED;
        use crate::core::types::{NodeState, ServiceState};
        let lock = LockName::Agent("node1".into());
        let mut state = ClusterState::default();
        state
            .resources
            .insert("sim:a".into(), ResourceConfig::new("node1", RequestState::Started));
        let mut status = ManagerStatus::default();
        status.node_status.insert("node1".into(), NodeState::Online);
        status.service_status.insert(
            "sim:a".into(),
            ServiceStatus::new(ServiceState::Started, "node1", "u1".into()),
        );
        state.manager_status = status.clone().into();
        let mut lrm = lrm_round(None, &mut state, 1_000_000);
        for now in [1_001_000, 1_002_000] {
            if lrm.describe() == "active" {
                break;
            }
            lrm = lrm_round(Some(lrm), &mut state, now);
        }
        assert_eq!(lrm.describe(), "active");
        assert_ne!(state.leases[&lock].expires_ms, HELD_UNWATCHED);
        // The start it handed to a worker finishes (a disarm waits for
        // running jobs).
        assert_eq!(lrm.running_jobs(), vec!["sim:a".to_string()]);
        {
            let ctx = context(Client::Lrm, 1_002_500, 6_500);
            let mut env = RoundEnv::new(&ctx, &mut state);
            Role::job_finished(&mut lrm, &mut env, "sim:a", Some("u1"), ExitCode::Success);
        }
        assert!(lrm.running_jobs().is_empty());

        let mut disarmed = status.clone();
        disarmed.disarm = Some(Disarm {
            mode: "freeze".into(),
            state: Disarm::DISARMING.into(),
        });
        state.manager_status = disarmed.into();
        // The round reads the manager status after its state step: the
        // second sees the disarm.
        let mut lrm = lrm_round(Some(lrm), &mut state, 1_003_000);
        lrm = lrm_round(Some(lrm), &mut state, 1_004_000);
        assert_eq!(lrm.describe(), "wait_for_agent_lock");
        assert_eq!(state.leases[&lock].holder, "node1");
        assert_eq!(state.leases[&lock].expires_ms, HELD_UNWATCHED, "held, not released");

        // Re-armed, and the master wants node1 fenced (it saw it offline).
        let mut fence = status;
        fence.node_status.insert("node1".into(), NodeState::Fence);
        state.manager_status = fence.into();
        // First the watchdog, armed a round ahead of the take (whatever
        // the store answers to it), then the take.
        {
            let ctx = context(Client::Lrm, 1_009_000, 6_500);
            let mut env = RoundEnv::new(&ctx, &mut state);
            Role::iterate(&mut lrm, &mut env);
            assert!(env.outbox.contains(&Outgoing::WatchdogArmAhead), "{:?}", env.outbox);
        }
        assert_eq!(lrm.describe(), "wait_for_agent_lock");
        assert_eq!(state.leases[&lock].expires_ms, HELD_UNWATCHED, "not yet taken");
        lrm = lrm_round(Some(lrm), &mut state, 1_010_000);
        assert_eq!(lrm.describe(), "lost_agent_lock");
        assert_eq!(state.leases[&lock].expires_ms, 1_010_000 + 6_500, "an ordinary lease");
        lrm = lrm_round(Some(lrm), &mut state, 1_011_000);
        assert_eq!(lrm.describe(), "lost_agent_lock");
        assert_eq!(state.leases[&lock].expires_ms, 1_010_000 + 6_500, "left to run out");
    }

    #[test]
    fn a_crm_slave_tries_for_the_manager_lock_every_second() {
        let now_ms = 1_000_000;
        let mut state = ClusterState::default();
        state
            .resources
            .insert("proc:web".into(), ResourceConfig::new("node2", RequestState::Started));
        state.leases.insert(
            LockName::Manager,
            Lease {
                holder: "node2".into(),
                expires_ms: now_ms + 60_000,
            },
        );
        assert_eq!(crm_round(&mut state.clone(), now_ms), ("slave", Some(SLAVE_POLL)));
        // Once node2's lock expired node1 takes it and keeps the round's
        // own pace.
        assert_eq!(crm_round(&mut state, now_ms + 60_001), ("master", None));
    }
}
