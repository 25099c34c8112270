//! The scenario simulator: drives the same CRM/LRM core as the daemon, on
//! virtual time, with simulated hardware (spec §8).
//!
//! ```text
//!  scenario dir ──► Scenario ──► Simulator::run ──► log lines (upstream format)
//!                                  │  rounds: crm, lrm per node, +1 s each
//!                                  ▼
//!                      World (hardware, store, locks, watchdogs)
//!                      SimEnv = one daemon's core::Env on that world
//! ```
//!
//! Its store's leases are the core store's and its watchdogs the core's
//! `WatchdogMux`. Owns: virtual time and simulated hardware. May import:
//! `core`, `config`; no sockets, no wall clock. The exception is
//! [`chaos`], the actor-level seeded harness: it drives the real actors
//! (`actors`, over `node`'s shared store, with simulated `agents` and
//! `watchdog` backends) on a paused runtime.

pub mod bench;
pub mod chaos;
pub mod fence;
pub mod rules_check;
pub mod run;
pub mod scenario;
pub mod session;
pub mod timeline;
pub mod world;

use std::path::Path;

pub use run::{RoundEnd, SimError, Simulator};
pub use scenario::{Scenario, ScenarioError};

/// Loads and runs one scenario directory, returning its log lines.
pub fn run_scenario(dir: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let scenario = Scenario::load(dir)?;
    let fence = fence::SimFence::load(dir)?;
    let mut sim = Simulator::new(scenario);
    sim.set_fence(fence);
    sim.run()?;
    Ok(sim.log().to_vec())
}
