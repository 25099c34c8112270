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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient, Supervised, WrapFuture};

use crate::core::crm::Crm;
use crate::core::env::DatacenterSettings;
use crate::core::event::{Event, Level};
use crate::core::lrm::Lrm;
use crate::core::store::outcome::{Answer, Retry, RoundClock, WatchdogOp, proposal, round_outcome};
use crate::core::store::{Op, Outgoing, RoundContext, RoundEnv};
use crate::core::timing::Timing;
use crate::core::types::{ExitCode, NodeName};
use crate::core::watchdog::Client;

use super::lock::{ApplyOps, GetManagerWrites, GetRoundSnapshot, LockActor};
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
    fn job_finished(&mut self, _env: &mut RoundEnv<'_>, _sid: &str, _code: ExitCode) {}
    fn describe(&self) -> &'static str;
}

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

    fn job_finished(&mut self, env: &mut RoundEnv<'_>, sid: &str, code: ExitCode) {
        Lrm::job_finished(self, env, sid, code);
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
}

/// The daemon part `NAME` exited (after a shutdown request).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Exited(pub Client);

/// SIGTERM: `(shutdown, reboot)` says whether the node itself goes down.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ShutdownRequest(pub (bool, bool));

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
    exited: Recipient<Exited>,
    role: Option<R>,
    /// A shutdown request not yet handed to the core.
    pending_shutdown: Option<(bool, bool)>,
    /// The core was told to shut down (survives restarts).
    shutting_down: Option<(bool, bool)>,
    finished_jobs: Vec<JobDone>,
    /// Fencing tokens of the last snapshot, handed to started agents.
    epochs: std::collections::BTreeMap<String, u64>,
    busy: bool,
    done: bool,
    /// Manager status writes seen (for [`Role::FOLLOWS_MANAGER`]).
    manager_writes: u64,
    /// When to look again after failed rounds.
    retry: Retry,
    /// A quick retry is scheduled (at most one at a time).
    retry_pending: bool,
    _role: PhantomData<R>,
}

/// How often a manager-following role checks for a new manager status.
const MANAGER_POLL: Duration = Duration::from_millis(100);

pub type CrmActor = RoundActor<Crm>;
pub type LrmActor = RoundActor<Lrm>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

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
            exited,
            role: None,
            pending_shutdown: None,
            shutting_down: None,
            finished_jobs: Vec::new(),
            epochs: std::collections::BTreeMap::new(),
            busy: false,
            done: false,
            manager_writes: 0,
            retry: Retry::default(),
            retry_pending: false,
            _role: PhantomData,
        }
    }

    fn context(&self, snapshot: &super::lock::Snapshot) -> RoundContext {
        RoundContext {
            node: self.settings.node.clone(),
            client: R::CLIENT,
            now_ms: now_ms(),
            quorate: snapshot.quorate,
            members: snapshot.members.clone(),
            lease_ms: self.settings.lease_ms,
            timing: self.settings.timing,
            max_workers: self.settings.max_workers,
            datacenter: self.settings.datacenter.clone(),
            node_shutdown: self.shutting_down.or(self.pending_shutdown).unwrap_or((false, false)),
        }
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.done {
            return;
        }
        self.busy = true;
        let snapshot = self.lock.send(GetRoundSnapshot);
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
        let mut state = snapshot.state;
        let mut env = RoundEnv::new(&round_ctx, &mut state);
        let finished = std::mem::take(&mut self.finished_jobs);
        let pending_shutdown = self.pending_shutdown.take();
        let role = &mut self.role;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let core = role.get_or_insert_with(|| R::create(&mut env));
            for job in &finished {
                core.job_finished(&mut env, &job.sid, job.code);
            }
            if pending_shutdown.is_some() {
                core.shutdown_request(&mut env);
            }
            core.iterate(&mut env)
        }));
        let RoundEnv { outbox, events, .. } = env;
        self.epochs = std::mem::take(&mut state.epochs);
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
                answered_ms: now_ms(),
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
            for op in outcome.watchdog {
                act.watchdog.do_send(match op {
                    WatchdogOp::Arm => WatchdogCmd::Arm(R::CLIENT),
                    WatchdogOp::Pet => WatchdogCmd::Pet(R::CLIENT),
                    WatchdogOp::Close => WatchdogCmd::Close(R::CLIENT),
                });
            }
            if let Some(pool) = act.pool.as_ref() {
                for job in outcome.jobs {
                    pool.do_send(RunJob {
                        spec: job.spec,
                        fencing_token: job.fencing_token,
                    });
                }
            }
            act.busy = false;
            if !alive {
                act.done = true;
                tracing::info!(node = %act.settings.node, "{}: exit (loop end)", R::NAME);
                act.exited.do_send(Exited(R::CLIENT));
            }
        }));
    }
}

impl<R: Role> Actor for RoundActor<R> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(256);
        self.round(ctx);
        ctx.run_interval(self.settings.round, |act, ctx| act.round(ctx));
        if R::FOLLOWS_MANAGER {
            ctx.run_interval(MANAGER_POLL, |act, ctx| act.follow_manager(ctx));
        }
    }
}

impl<R: Role> Supervised for RoundActor<R> {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(node = %self.settings.node, "{} actor restarting with fresh state", R::NAME);
        self.role = None;
        self.busy = false;
        self.retry_pending = false;
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
        if let Some(node) = &msg.moved_to {
            self.lock.do_send(ApplyOps(vec![Op::MoveService {
                sid: msg.sid.clone(),
                node: node.clone(),
            }]));
        }
        self.finished_jobs.push(msg);
        // Report the result and hand out the freed slot now, not a round later.
        self.round(ctx);
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
