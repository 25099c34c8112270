//! The run's timing profile and the pace of its faults.
//!
//! The harness's fault times (the fault phase, restart delays, cuts,
//! agent faults, the disarm and disk windows, its step) are written for
//! the `fast` profile. Under `pve` (upstream's timings: 10 s rounds,
//! 120 s leases, a 10 s watchdog device) the same faults at the same
//! times would never outlast a lease: nothing would fail over and the
//! safety phase would test little. So a run's times are the `fast` ones
//! times the profile's [`Pace::scale`], the ratio of the two profiles'
//! rounds and watchdog devices (10). The per-step fault chance stays the
//! same, so a `pve` run meets as many faults as a `fast` one, ten times
//! as spread out, and costs about as much wall time: its actors wake ten
//! times less often.
//!
//! Fault model 3 draws `pve` for a fifth of the seeds from a stream of
//! its own; older models run `fast` only (their seeds replay unchanged).

use std::time::Duration;

use crate::node::config::{Profile, Timings};

use super::rng::Rng;

/// Virtual time between two looks of the harness (faults, watchdogs,
/// checkers) at the `fast` pace: well inside its 500 ms safety margin.
pub const STEP_MS: u64 = 50;
/// How long faults are injected (`fast`).
pub const FAULT_PHASE_MS: u64 = 60_000;
/// A crashed or fenced node is back after this long (`fast`).
pub const RESTART_MS: (u64, u64) = (1_000, 8_000);
/// A node's store link stays cut this long (`fast`).
pub const CUT_MS: (u64, u64) = (1_000, 15_000);
/// An agent fault lasts this long (`fast`).
pub const AGENT_FAULT_MS: (u64, u64) = (2_000, 10_000);
/// How long one try of an operator edit that must land may take
/// (`fast`).
pub const EDIT_TRY_MS: u64 = 2_000;
/// The share of seeds (per mille) that run `pve` under fault model 3.
pub const PVE_PER_MILLE: u64 = 200;

/// A run's profile and how its fault times scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub profile: Profile,
    /// The `fast` fault times are multiplied by this.
    pub scale: u64,
}

impl Pace {
    pub fn of(profile: Profile) -> Pace {
        let scale = match profile {
            Profile::Fast => 1,
            // The ratio of the two profiles' rounds and device timeouts.
            Profile::Pve => {
                let (pve, fast) = (Timings::of(Profile::Pve), Timings::of(Profile::Fast));
                pve.round_ms / fast.round_ms
            }
        };
        Pace { profile, scale }
    }

    /// The seed's profile: `forced` if given, else drawn (fault model 3
    /// on; `fast` under older models).
    pub fn drawn(seed: u64, fault_model: u8, forced: Option<Profile>) -> Pace {
        let mut rng = Rng::new(seed ^ 0x0000_9ace_u64.wrapping_mul(0x9E37_79B9_7F4C));
        let pve = fault_model >= 3 && rng.chance(PVE_PER_MILLE);
        Pace::of(forced.unwrap_or(if pve { Profile::Pve } else { Profile::Fast }))
    }

    /// `fast_ms` at this pace.
    pub fn ms(self, fast_ms: u64) -> u64 {
        fast_ms * self.scale
    }

    /// A `fast` range at this pace.
    pub fn range(self, (lo, hi): (u64, u64)) -> (u64, u64) {
        (self.ms(lo), self.ms(hi))
    }

    pub fn step_ms(self) -> u64 {
        self.ms(STEP_MS)
    }

    pub fn fault_phase_ms(self) -> u64 {
        self.ms(FAULT_PHASE_MS)
    }

    pub fn restart_ms(self) -> (u64, u64) {
        self.range(RESTART_MS)
    }

    pub fn cut_ms(self) -> (u64, u64) {
        self.range(CUT_MS)
    }

    pub fn agent_fault_ms(self) -> (u64, u64) {
        self.range(AGENT_FAULT_MS)
    }

    pub fn edit_try(self) -> Duration {
        Duration::from_millis(self.ms(EDIT_TRY_MS))
    }

    /// The profile's name, as the config file and the CLI spell it.
    pub fn name(self) -> &'static str {
        match self.profile {
            Profile::Fast => "fast",
            Profile::Pve => "pve",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pve_runs_the_fast_faults_ten_times_slower() {
        let pve = Pace::of(Profile::Pve);
        assert_eq!(pve.scale, 10);
        assert_eq!(pve.fault_phase_ms(), 600_000);
        assert_eq!(pve.cut_ms(), (10_000, 150_000));
        // The longest cut outlasts pve's lease, as the longest fast cut
        // outlasts fast's: both profiles see failovers.
        assert!(pve.cut_ms().1 > Timings::of(Profile::Pve).lease_ms);
        assert!(CUT_MS.1 > Timings::of(Profile::Fast).lease_ms);
        assert_eq!(Pace::of(Profile::Fast).step_ms(), STEP_MS);
    }

    #[test]
    fn model_3_draws_pve_for_a_fifth_of_the_seeds_and_older_models_never() {
        let pve = (0..5_000)
            .filter(|&seed| Pace::drawn(seed, 3, None).profile == Profile::Pve)
            .count();
        assert!((800..1_200).contains(&pve), "{pve} of 5000");
        assert!((0..2_000).all(|seed| Pace::drawn(seed, 2, None).profile == Profile::Fast));
        assert_eq!(Pace::drawn(1, 2, Some(Profile::Pve)).profile, Profile::Pve);
    }
}
