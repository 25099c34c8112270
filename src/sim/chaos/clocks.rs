//! The nodes' wall clocks: each is off by a fixed offset and, in half of
//! the seeds, runs fast or slow by a rate error. The rounds stamp and
//! judge leases with these clocks, so the error between two nodes' clocks
//! eats into the timings' safety margin (`margin_ms`, which covers clock
//! skew): [`Clocks::check_bound`] refuses a run whose worst-case skew
//! could exceed it, so a violation under drift is a bug, not an unfair
//! fault.
//!
//! Only the lease clock drifts: tokio's timers (the rounds' intervals,
//! the watchdog's client timeout) run on the shared virtual time. A rate
//! error of a few hundred ppm changes those by milliseconds; what matters
//! for safety is how far two nodes' stamps disagree.

use crate::net::clock::Clock;
use crate::node::config::Timings;

use super::ledger::SharedLedger;
use super::rng::Rng;

/// Lease stamps are virtual ms from this (2023-11-14), so they look like
/// wall-clock times.
pub const EPOCH_MS: u64 = 1_700_000_000_000;
/// Each node's clock is off by up to this much.
pub const MAX_CLOCK_OFFSET_MS: u64 = 50;
/// And runs fast or slow by up to this many parts per million (a free
/// quartz is within 100 ppm; NTP slews at most 500 ppm).
pub const MAX_CLOCK_RATE_PPM: u64 = 1_500;

/// One node's clock error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockError {
    pub offset_ms: u64,
    /// Rate error in ppm (negative: slow).
    pub rate_ppm: i64,
}

impl ClockError {
    /// The node's wall clock over the run's virtual time.
    pub fn clock(self, ledger: SharedLedger) -> Clock {
        Clock::from_fn(move || self.at(ledger.now_ms()))
    }

    /// Its reading at virtual ms `now`.
    pub fn at(self, now: u64) -> u64 {
        let drift = i128::from(now) * i128::from(self.rate_ppm) / 1_000_000;
        (i128::from(EPOCH_MS + self.offset_ms + now) + drift) as u64
    }
}

/// The rate errors of a run's nodes, from a stream of their own (the
/// other draws stay as they were): half of the seeds run true clocks.
pub fn rates(seed: u64, nodes: usize) -> Vec<i64> {
    let mut rng = Rng::new(seed ^ 0x00c1_0c4a_u64.wrapping_mul(0x9E37_79B9));
    if !rng.chance(500) {
        return vec![0; nodes];
    }
    (0..nodes)
        .map(|_| rng.range(0, 2 * MAX_CLOCK_RATE_PPM) as i64 - MAX_CLOCK_RATE_PPM as i64)
        .collect()
}

/// The most two nodes' clocks can disagree during a run of `run_ms`
/// virtual ms: both offsets and both drifts in opposite directions.
pub fn worst_skew_ms(run_ms: u64) -> u64 {
    MAX_CLOCK_OFFSET_MS + 2 * (run_ms * MAX_CLOCK_RATE_PPM).div_ceil(1_000_000)
}

/// Refuses clock errors the timings do not cover: the worst skew over the
/// run must stay below the safety margin, with a step of the harness to
/// spare (faults and checkers act at its steps).
pub fn check_bound(timings: &Timings, run_ms: u64, step_ms: u64) -> Result<(), String> {
    let skew = worst_skew_ms(run_ms);
    if skew + step_ms >= timings.margin_ms {
        return Err(format!(
            "clock errors up to {skew} ms over a {run_ms} ms run (offset {MAX_CLOCK_OFFSET_MS} ms, rate \
             {MAX_CLOCK_RATE_PPM} ppm) plus a {step_ms} ms step exceed the safety margin of {} ms",
            timings.margin_ms
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::config::Profile;

    #[test]
    fn a_clock_drifts_by_its_rate_and_never_goes_back() {
        let fast = ClockError {
            offset_ms: 10,
            rate_ppm: 1_000,
        };
        assert_eq!(fast.at(0), EPOCH_MS + 10);
        assert_eq!(fast.at(100_000), EPOCH_MS + 10 + 100_000 + 100);
        let slow = ClockError {
            offset_ms: 0,
            rate_ppm: -1_500,
        };
        assert_eq!(slow.at(100_000), EPOCH_MS + 100_000 - 150);
        assert!((0..10_000).all(|t| slow.at(t) <= slow.at(t + 1)));
    }

    #[test]
    fn half_of_the_seeds_drift_within_the_bound() {
        let drifting = (0..1000u64)
            .filter(|&seed| rates(seed, 3).iter().any(|&r| r != 0))
            .count();
        assert!((400..600).contains(&drifting), "{drifting} of 1000 seeds drift");
        let all: Vec<i64> = (0..1000u64).flat_map(|seed| rates(seed, 5)).collect();
        assert!(all.iter().all(|r| r.unsigned_abs() <= MAX_CLOCK_RATE_PPM));
        assert!(all.iter().any(|&r| r < -1_000) && all.iter().any(|&r| r > 1_000));
        assert_eq!(rates(7, 4), rates(7, 4));
    }

    #[test]
    fn the_bound_holds_for_the_fast_profile_and_refuses_more() {
        let timings = Timings::of(Profile::Fast);
        assert_eq!(worst_skew_ms(120_000), 50 + 360);
        check_bound(&timings, 120_000, 50).unwrap();
        let err = check_bound(&timings, 200_000, 50).unwrap_err();
        assert!(err.contains("exceed the safety margin of 500 ms"), "{err}");
    }
}
