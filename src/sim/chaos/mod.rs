//! The actor-level seeded harness (`hactor-sim chaos`): the real actor
//! tree of every node (LockActor, CrmActor, LrmActor, WorkerPool,
//! WatchdogActor) in one process, on one paused single-thread runtime
//! whose virtual time jumps to the next timer, under seeded faults, with
//! invariant checkers after every step. See `README.md` beside this file
//! for running, replaying and what is (not yet) covered.
//!
//! ```text
//!  seed ─► Rng ─► profile (fast/pve, its pace), faults: crash/restart,
//!                  store cut, agent hang/fail, freeze/thaw, operator
//!                  edits (skip mask, shrink)
//!                    │
//!   node1..N: start_node(.., NodeRuntime { virtual clock, watchdog on
//!             this thread, inline jobs }) inside a LocalSet each
//!                    │ SharedStore (one MemoryStore, a cuttable link per node)
//!                    ▼
//!   Ledger: live instances (SimAgent), watchdog feeds (SimWatchdog), journal
//!                    │
//!   check: fencing tokens, fence before recover, fence acknowledged,
//!          run only while armed, no double run, single master, liveness
//!          ─► Report (hash, tail)
//! ```
//!
//! Why one thread: a replay needs every task to run in the same order,
//! so nothing may run on another thread (the daemon's watchdog arbiter,
//! tokio's blocking pool) and nothing may read the wall clock; the
//! [`crate::actors::NodeRuntime`] switches exist for that.
//!
//! May import: `actors`, `node`, `core`, `agents`, `watchdog`; no
//! sockets, no wall clock (the figures' wall time is the caller's).

pub mod agent;
pub mod batch;
pub mod check;
pub mod clocks;
pub mod disk;
pub mod fencing;
pub mod freeze;
pub mod harness;
pub mod journal;
pub mod ledger;
pub mod master;
pub mod pace;
pub mod replicas;
pub mod rng;
pub mod starts;
pub mod traffic;
pub mod watchdog;

use std::collections::BTreeSet;

use crate::actors::round::Sabotage;
use crate::node::config::Profile;

use self::journal::Journal;
use self::ledger::SharedLedger;

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub seed: u64,
    pub nodes: usize,
    pub services: usize,
    /// A deliberate safety bug the checkers must catch (tests).
    #[doc(hidden)]
    pub sabotage: Option<Sabotage>,
    /// Keep every event line in the report (not just the tail).
    pub keep_events: bool,
    /// Fault opportunities not to inject, by index (shrinking, replays of
    /// a shrunk run): the other faults stay as they were.
    pub skip_faults: BTreeSet<u32>,
    /// Which store the nodes share.
    pub store: StoreKind,
    /// The fault model's version ([`FAULT_MODEL`]): a seed found under an
    /// older model (a regression seed) replays under it.
    pub fault_model: u8,
    /// The timing profile, when not the seed's own ([`pace::Pace::drawn`]).
    pub profile: Option<Profile>,
}

/// The fault model: 1, the fault stream, the lossy network and the aimed
/// faults; 2, also clock rate errors, an operator's disarm window and, in
/// Raft mode, disk write failures and torn last writes; 3, also the
/// `pve` timing profile for a fifth of the seeds, its faults at its pace
/// ([`pace`]); 4 (now), also a slow disk in Raft mode
/// ([`disk::SlowWindow`]). Each addition draws from a stream of its own,
/// so an older model's seeds keep their faults.
pub const FAULT_MODEL: u8 = 4;

/// The store under the nodes' LockActors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The daemon's replicated store: a real Raft member per node
    /// (openraft, log and state machine on files) over an in-process
    /// network ([`replicas`]).
    Raft,
    /// One in-process store with a cuttable link per node
    /// (`node::shared_store`): faster, but no consensus under test.
    Shared,
}

impl std::str::FromStr for StoreKind {
    type Err = String;

    fn from_str(text: &str) -> Result<StoreKind, String> {
        match text {
            "raft" => Ok(StoreKind::Raft),
            "shared" => Ok(StoreKind::Shared),
            _ => Err(format!("unknown store '{text}' (expected raft or shared)")),
        }
    }
}

impl ChaosConfig {
    /// The seed's own cluster: 3 to 5 nodes and 2 to 8 services, unless
    /// given.
    pub fn for_seed(seed: u64, nodes: Option<usize>, services: Option<usize>) -> ChaosConfig {
        let mut rng = rng::Rng::new(seed ^ 0x5eed_c1a5);
        let drawn_nodes = rng.range(3, 5) as usize;
        let drawn_services = rng.range(2, 8) as usize;
        ChaosConfig {
            seed,
            nodes: nodes.unwrap_or(drawn_nodes),
            services: services.unwrap_or(drawn_services),
            sabotage: None,
            keep_events: false,
            store: StoreKind::Shared,
            skip_faults: BTreeSet::new(),
            fault_model: FAULT_MODEL,
            profile: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Faults over, every service running, no violation.
    Settled,
    /// A checker failed (its description).
    Violation(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Settled => f.write_str("settled, no violation"),
            Outcome::Violation(what) => write!(f, "VIOLATION {what}"),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub nodes: usize,
    pub services: usize,
    pub store: StoreKind,
    pub outcome: Outcome,
    /// The journal's hash: equal for two runs of one seed.
    pub hash: u64,
    pub events: u64,
    /// The last [`journal::TAIL`] events.
    pub tail: Vec<String>,
    /// Every event, when [`ChaosConfig::keep_events`].
    pub all: Option<Vec<String>>,
    /// Virtual time the run covered.
    pub virtual_ms: u64,
    /// The faults injected: index and what.
    pub faults: Vec<(u32, String)>,
    /// The faults skipped ([`ChaosConfig::skip_faults`]).
    pub skip_faults: BTreeSet<u32>,
    pub sabotage: Option<Sabotage>,
    pub fault_model: u8,
    /// The timing profile the run had, and whether it was forced
    /// ([`ChaosConfig::profile`]) rather than the seed's own.
    pub profile: Profile,
    pub profile_forced: bool,
}

impl Report {
    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        let mut command = format!(
            "hactor-sim chaos --seed {} --nodes {} --services {}",
            self.seed, self.nodes, self.services
        );
        if let Some(sabotage) = self.sabotage {
            command.push_str(&format!(" --sabotage {}", sabotage.name()));
        }
        if !self.skip_faults.is_empty() {
            let list: Vec<String> = self.skip_faults.iter().map(u32::to_string).collect();
            command.push_str(&format!(" --skip-faults {}", list.join(",")));
        }
        if self.store == StoreKind::Raft {
            command.push_str(" --store raft");
        }
        if self.fault_model != FAULT_MODEL {
            command.push_str(&format!(" --fault-model {}", self.fault_model));
        }
        if self.profile_forced {
            command.push_str(&format!(" --profile {}", pace::Pace::of(self.profile).name()));
        }
        command
    }
}

/// Whether this build seeds tokio's RNG (`--cfg tokio_unstable`, set in
/// .cargo/config.toml): without it a Raft-mode seed may not replay to
/// the same hash (the shared-store mode replays either way).
pub const REPLAY_EXACT: bool = cfg!(tokio_unstable);

/// Runs one seed on a fresh actix System over a paused current-thread
/// runtime (call it outside any runtime).
pub fn run(config: ChaosConfig) -> Result<Report, String> {
    if !(1..=16).contains(&config.nodes) || config.services == 0 {
        return Err(format!(
            "chaos needs 1 to 16 nodes and at least one service (got {} and {})",
            config.nodes, config.services
        ));
    }
    let mut builder = tokio::runtime::Builder::new_current_thread();
    // Timers only: nothing here does I/O through tokio (the network is
    // in-process, files are read and written directly), and with an I/O
    // driver every idle turn of the paused clock was an `epoll_wait`.
    builder.enable_time().start_paused(true);
    // Unbiased `select!`s (some inside openraft) draw their branch order
    // from the runtime's RNG: seeded, a Raft-mode seed replays exactly.
    // The flag comes from .cargo/config.toml ([`REPLAY_EXACT`]).
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&config.seed.to_le_bytes()));
    let runtime = builder.build().map_err(|e| format!("cannot build the runtime: {e}"))?;
    let system = actix_rt::System::with_tokio_rt(move || runtime);
    system.block_on(async move {
        let journal = if config.keep_events {
            Journal::keeping_all()
        } else {
            Journal::default()
        };
        let harness = harness::Harness::new(config, SharedLedger::new(journal))?;
        Ok(harness.run().await)
    })
}

/// A violation with fewer faults ([`shrink`]).
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The faults still injected: index and what.
    pub faults: Vec<(u32, String)>,
    /// The last violating run (its replay command carries the mask).
    pub last: Report,
    /// Runs it took.
    pub runs: u32,
}

/// The kind of a violation (`double run`, `liveness`, ...): what a
/// shrunk run must still break.
fn violation_kind(outcome: &Outcome) -> Option<&str> {
    match outcome {
        Outcome::Violation(what) => Some(what.split(':').next().unwrap_or(what)),
        Outcome::Settled => None,
    }
}

/// Drops `report`'s injected faults one at a time, keeping a drop when
/// the run still ends in a violation of the same kind, pass after pass
/// until a pass drops nothing: a smaller set of faults that still breaks
/// the rule (a local minimum: no single fault left can go). `config` is
/// the run that gave `report`.
pub fn shrink(config: ChaosConfig, report: Report) -> Result<Shrunk, String> {
    let kind = violation_kind(&report.outcome)
        .ok_or("nothing to shrink: the run had no violation")?
        .to_string();
    let mut config = ChaosConfig {
        keep_events: false,
        ..config
    };
    let mut last = report;
    let mut runs = 0;
    // Passes until one drops nothing: a drop changes what the later
    // faults meet, so one that had to stay may go in the next pass.
    let mut tried = BTreeSet::new();
    loop {
        let candidates: Vec<u32> = last
            .faults
            .iter()
            .rev()
            .map(|(index, _)| *index)
            .filter(|index| !tried.contains(index))
            .collect();
        let mut dropped = false;
        for index in candidates {
            if !last.faults.iter().any(|(i, _)| *i == index) {
                continue;
            }
            let mut trial = config.clone();
            trial.skip_faults.insert(index);
            let outcome = run(trial.clone())?;
            runs += 1;
            if violation_kind(&outcome.outcome) == Some(kind.as_str()) {
                config = trial;
                last = outcome;
                dropped = true;
                // Kept faults may go once the run has changed.
                tried.clear();
            } else {
                tried.insert(index);
            }
        }
        if !dropped {
            break;
        }
    }
    Ok(Shrunk {
        faults: last.faults.clone(),
        last,
        runs,
    })
}
