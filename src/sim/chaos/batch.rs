//! Runs a range of seeds on several threads, one seed per thread at a
//! time, and hands the reports back in seed order.
//!
//! A seed's run is self-contained (its own actix System over its own
//! paused current-thread runtime, its own run directory), so seeds on
//! different threads share nothing and each still replays exactly: the
//! threads only change which wall-clock second a report arrives in.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use super::{ChaosConfig, Report};

/// Runs `config(seed)` for every seed of `seeds` on `jobs` threads and
/// calls `each` with the reports in seed order. When `each` returns
/// `false` no new seed is started; seeds already running finish, and
/// their reports are dropped. Returns the number of reports handed over.
pub fn run_ordered(
    seeds: Range<u64>,
    jobs: usize,
    config: impl Fn(u64) -> ChaosConfig + Sync,
    mut each: impl FnMut(Result<Report, String>) -> bool,
) -> u64 {
    let jobs = jobs.clamp(1, 64);
    let next = AtomicU64::new(seeds.start);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(u64, Result<Report, String>)>();
    let mut handed = 0u64;
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, stop, config) = (&next, &stop, &config);
            scope.spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    let seed = next.fetch_add(1, Ordering::AcqRel);
                    if seed >= seeds.end {
                        break;
                    }
                    if tx.send((seed, super::run(config(seed)))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut waiting = BTreeMap::new();
        let mut due = seeds.start;
        for (seed, report) in rx {
            if stop.load(Ordering::Acquire) {
                continue;
            }
            waiting.insert(seed, report);
            while let Some(report) = waiting.remove(&due) {
                due += 1;
                handed += 1;
                if !each(report) {
                    stop.store(true, Ordering::Release);
                    break;
                }
            }
        }
    });
    handed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> ChaosConfig {
        ChaosConfig::for_seed(seed, Some(3), Some(2))
    }

    #[test]
    fn reports_arrive_in_seed_order_and_match_a_single_thread() {
        let mut parallel = Vec::new();
        run_ordered(5..9, 2, small, |r| {
            parallel.push(r.map(|r| (r.seed, r.hash)));
            true
        });
        let single: Vec<_> = (5..9)
            .map(|s| super::super::run(small(s)).map(|r| (r.seed, r.hash)))
            .collect();
        assert_eq!(parallel, single);
    }

    #[test]
    fn a_false_answer_stops_the_batch() {
        let mut seen = Vec::new();
        let handed = run_ordered(1..50, 2, small, |r| {
            seen.push(r.map(|r| r.seed).unwrap_or(0));
            seen.len() < 2
        });
        assert_eq!(handed, 2);
        assert_eq!(seen, vec![1, 2]);
    }
}
