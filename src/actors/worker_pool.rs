//! WorkerPool: runs resource-agent actions off the actor threads, never
//! more than `max_worker` at once (the rest wait in FIFO order), and sends
//! each result to the LRM keyed by service and uid.
//!
//! The concurrency bound is a semaphore created once per node and shared
//! with every incarnation of the actor, and each job reports straight to
//! the LRM: a restart of the pool neither loses an in-flight result nor
//! lets more than `max_worker` actions run.
//!
//! Jobs of one service run one at a time, in the order they came: a
//! restarted LRM (an actor panic) knows nothing of the jobs its previous
//! incarnation started, and may ask again for an action still under way
//! (a stop of a guest that is still shutting down). The second job waits
//! for the first to finish, so it cannot report the service stopped while
//! the first stop still runs, and nothing may start it elsewhere before
//! (found by `sim::chaos`, seed 10211).
//!
//! The daemon runs each action on tokio's blocking pool. The actor-level
//! simulator (`sim::chaos`) runs them inline ([`JobLatency`]): on the one
//! simulated thread, so that runs replay, with the result held back for
//! a simulated duration.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Context, Handler, Message, Recipient, Supervised};
use tokio::sync::Semaphore;

use crate::agents::{Agents, WorkerHost};
use crate::core::agent::{self, JobSpec};
use crate::core::event::Event;
use crate::core::types::{ExitCode, NodeName};

use super::{InjectPanic, guarded};

/// Run one job.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RunJob {
    pub spec: JobSpec,
    pub fencing_token: u64,
}

/// A job finished.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct JobDone {
    pub sid: String,
    pub uid: Option<String>,
    pub code: ExitCode,
    pub events: Vec<Event>,
    /// Set when the service moved to another node.
    pub moved_to: Option<NodeName>,
}

/// Counters shared by every incarnation of the pool (for tests and status).
#[derive(Debug, Default)]
pub struct PoolStats {
    pub running: AtomicUsize,
    pub max_seen: AtomicUsize,
    pub finished: AtomicUsize,
}

/// How long an inline job takes (virtual time): asked once per job,
/// before the agent runs, so a simulated agent can learn the duration it
/// drew (a stop still under way keeps its service alive that long).
pub type JobLatency = Arc<dyn Fn(&NodeName, &JobSpec) -> Duration + Send + Sync>;

pub struct WorkerPool {
    node: NodeName,
    agents: Agents,
    slots: Arc<Semaphore>,
    results: Recipient<JobDone>,
    stats: Arc<PoolStats>,
    /// Run jobs inline with this latency instead of on the blocking pool.
    inline: Option<JobLatency>,
    /// One turn per service with a job queued or running: its jobs run
    /// one at a time (module doc). Kept across restarts of the actor.
    turns: Arc<Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Runs one job through the agents: its exit code, events and where the
/// service moved.
fn run_job(node: NodeName, agents: &Agents, job: &RunJob) -> (ExitCode, Vec<Event>, Option<NodeName>) {
    let mut host = WorkerHost {
        node,
        agents,
        fencing_token: job.fencing_token,
        events: Vec::new(),
        moved_to: None,
    };
    let code = agent::execute(&mut host, &job.spec);
    (code, host.events, host.moved_to)
}

impl WorkerPool {
    pub fn new(
        node: NodeName,
        agents: Agents,
        slots: Arc<Semaphore>,
        results: Recipient<JobDone>,
        stats: Arc<PoolStats>,
    ) -> WorkerPool {
        WorkerPool {
            node,
            agents,
            slots,
            results,
            stats,
            inline: None,
            turns: Arc::default(),
        }
    }

    /// Runs jobs inline, each taking `latency` (the simulator).
    pub fn inline(mut self, latency: Option<JobLatency>) -> WorkerPool {
        self.inline = latency;
        self
    }
}

impl Actor for WorkerPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl Supervised for WorkerPool {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(node = %self.node, "WorkerPool restarting");
    }
}

impl Handler<RunJob> for WorkerPool {
    type Result = ();

    fn handle(&mut self, msg: RunJob, _ctx: &mut Context<Self>) {
        let (node, agents, slots, results, stats, inline) = (
            self.node.clone(),
            self.agents.clone(),
            self.slots.clone(),
            self.results.clone(),
            self.stats.clone(),
            self.inline.clone(),
        );
        let turns = self.turns.clone();
        let turn = lock(&turns).entry(msg.spec.sid.clone()).or_default().clone();
        actix_rt::spawn(async move {
            // Wait for the service's earlier jobs before taking a slot, so
            // that a waiting job holds no worker.
            let turn = turn.lock_owned().await;
            let Ok(_permit) = slots.acquire_owned().await else {
                return;
            };
            let now_running = stats.running.fetch_add(1, Ordering::SeqCst) + 1;
            stats.max_seen.fetch_max(now_running, Ordering::SeqCst);
            let spec = msg.spec.clone();
            let outcome = match inline {
                Some(latency) => {
                    let took = latency(&node, &spec);
                    let outcome = run_job(node, &agents, &msg);
                    tokio::time::sleep(took).await;
                    Ok(outcome)
                }
                None => tokio::task::spawn_blocking(move || run_job(node, &agents, &msg)).await,
            };
            stats.running.fetch_sub(1, Ordering::SeqCst);
            stats.finished.fetch_add(1, Ordering::SeqCst);
            let (code, events, moved_to) = outcome.unwrap_or_else(|panic| {
                let event = Event::AgentFailedToExecute { sid: spec.sid.clone() };
                tracing::error!("resource agent of {} panicked: {panic}", spec.sid);
                (ExitCode::Other(-1), vec![event], None)
            });
            {
                // Nobody else waits for this service (the map and this
                // guard hold the only references): forget its turn.
                let mut turns = lock(&turns);
                if turns.get(&spec.sid).is_some_and(|t| Arc::strong_count(t) <= 2) {
                    turns.remove(&spec.sid);
                }
            }
            drop(turn);
            results.do_send(JobDone {
                sid: spec.sid,
                uid: spec.uid,
                code,
                events,
                moved_to,
            });
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Handler<InjectPanic> for WorkerPool {
    type Result = ();

    fn handle(&mut self, _msg: InjectPanic, ctx: &mut Context<Self>) {
        guarded(ctx, "WorkerPool", || {
            std::panic::resume_unwind(Box::new("injected fault"))
        });
    }
}
