//! Disk faults of the Raft mode, from a stream of their own (the fault
//! stream stays as it was):
//!
//! - **write failures**: in half of the seeds, one node's disk fails its
//!   log, vote and commit writes for 1-12 s of the fault phase, as full
//!   (`ENOSPC`: a write gets half its bytes out, so the log ends in a
//!   torn record) or broken (`EIO`). openraft stops a member whose
//!   storage fails; the node can then renew nothing, so its watchdog
//!   resets it, and it restarts from its files (failing again while the
//!   fault lasts);
//! - **torn last writes**: half of the crashes and watchdog resets leave
//!   the log ending in part of a record that was being written (never
//!   acknowledged: every acknowledged record was synced first), which the
//!   next start must cut off, not refuse or replay;
//! - **a slow disk** (fault model 4, a stream of its own): in a third of
//!   the seeds, one node's every durable write (an append, a vote) takes
//!   20 ms to 3 s for 2-15 s of the fault phase (aimed at the Raft
//!   leader in a quarter of them, at the HA master in another), and its
//!   Raft core waits in line, as on an `fdatasync` that stalls: a slow
//!   leader stops committing and heartbeating, a slow follower lags.

use std::io::Write;
use std::path::Path;

use crate::net::raft::log_store::DiskFault;

use super::pace::{FAULT_PHASE_MS, Pace};
use super::rng::Rng;

/// A window of failing writes on one node's disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskWindow {
    pub node: usize,
    pub from_ms: u64,
    pub until_ms: u64,
    pub fault: DiskFault,
}

impl DiskWindow {
    pub fn describe(&self) -> String {
        let what = match self.fault {
            DiskFault::Full => "full (ENOSPC, short writes)",
            DiskFault::Broken => "failing writes (EIO)",
        };
        format!("disk {what} for {} ms", self.until_ms - self.from_ms)
    }
}

/// A window in which one node's disk is slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowWindow {
    pub node: usize,
    pub from_ms: u64,
    pub until_ms: u64,
    /// How long each durable write takes.
    pub delay_ms: u64,
    /// Aims the window at the Raft leader or the HA master instead of
    /// `node`, as the fault stream's draws do (`Harness::aim`).
    pub aim_draw: u64,
}

impl SlowWindow {
    /// The seed's slow-disk window, if it draws one (fault model 4 on),
    /// its times at the run's pace.
    pub fn drawn(seed: u64, nodes: usize, pace: Pace) -> Option<SlowWindow> {
        let mut rng = Rng::new(seed ^ 0x0000_5105_u64.wrapping_mul(0x9E37_79B9_7F4B));
        if !rng.chance(333) {
            return None;
        }
        let from_ms = pace.ms(rng.range(2_000, FAULT_PHASE_MS - 15_000));
        let node = rng.range(0, nodes as u64 - 1) as usize;
        let until_ms = from_ms + pace.ms(rng.range(2_000, 15_000));
        let delay_ms = pace.ms(if rng.chance(500) {
            rng.range(20, 300)
        } else {
            rng.range(300, 3_000)
        });
        Some(SlowWindow {
            node,
            from_ms,
            until_ms,
            delay_ms,
            aim_draw: rng.next_u64(),
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "disk slow (every write takes {} ms) for {} ms",
            self.delay_ms,
            self.until_ms - self.from_ms
        )
    }
}

/// The disk draws of a seed.
pub struct DiskFaultPlan {
    rng: Rng,
    pub window: Option<DiskWindow>,
}

impl DiskFaultPlan {
    /// The seed's plan, its window's times at the run's pace.
    pub fn new(seed: u64, nodes: usize, pace: Pace) -> DiskFaultPlan {
        let mut rng = Rng::new(seed ^ 0x0000_d15c_u64.wrapping_mul(0x9E37_79B9_7F4A));
        let window = rng.chance(500).then(|| {
            let from_ms = pace.ms(rng.range(2_000, FAULT_PHASE_MS - 15_000));
            DiskWindow {
                node: rng.range(0, nodes as u64 - 1) as usize,
                from_ms,
                until_ms: from_ms + pace.ms(rng.range(1_000, 12_000)),
                fault: rng.either(DiskFault::Full, DiskFault::Broken),
            }
        });
        DiskFaultPlan { rng, window }
    }

    /// What a node going down left at the end of its log: half of the
    /// time nothing, else the first bytes of a record (at least one,
    /// never all of it), or a few bytes of garbage.
    pub fn torn_tail(&mut self) -> Option<Vec<u8>> {
        if !self.rng.chance(500) {
            return None;
        }
        if self.rng.chance(500) {
            let len = self.rng.range(1, 40) as usize;
            return Some((0..len).map(|_| self.rng.next_u64() as u8).collect());
        }
        let payload_len = self.rng.range(8, 200) as usize;
        let payload: Vec<u8> = (0..payload_len).map(|_| self.rng.next_u64() as u8).collect();
        let record = crate::net::record::frame(&payload).ok()?;
        let keep = self.rng.range(1, record.len() as u64 - 1) as usize;
        Some(record[..keep].to_vec())
    }
}

/// Appends `torn` to the member's log under `dir` (its `raft` directory):
/// what the crash left half written.
pub fn append_torn(dir: &Path, torn: &[u8]) -> std::io::Result<()> {
    let path = dir.join("log");
    if !path.exists() {
        return Ok(());
    }
    std::fs::OpenOptions::new().append(true).open(path)?.write_all(torn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::config::Profile;

    const FAST: Pace = Pace {
        profile: Profile::Fast,
        scale: 1,
    };

    #[test]
    fn half_of_the_seeds_get_a_window_inside_the_fault_phase() {
        let windows: Vec<DiskWindow> = (0..1000)
            .filter_map(|seed| DiskFaultPlan::new(seed, 3, FAST).window)
            .collect();
        assert!((400..600).contains(&windows.len()), "{}", windows.len());
        assert!(
            windows
                .iter()
                .all(|w| w.node < 3 && w.from_ms < w.until_ms && w.until_ms < FAULT_PHASE_MS)
        );
        assert!(windows.iter().any(|w| w.fault == DiskFault::Full));
        assert!(windows.iter().any(|w| w.fault == DiskFault::Broken));
        assert_eq!(
            DiskFaultPlan::new(9, 3, FAST).window,
            DiskFaultPlan::new(9, 3, FAST).window
        );
        // At pve's pace, the same window ten times as late and as long.
        let seed = (0..)
            .find(|&s| DiskFaultPlan::new(s, 3, FAST).window.is_some())
            .unwrap();
        let (fast, pve) = (
            DiskFaultPlan::new(seed, 3, FAST).window.unwrap(),
            DiskFaultPlan::new(seed, 3, Pace::of(Profile::Pve)).window.unwrap(),
        );
        assert_eq!((pve.from_ms, pve.until_ms), (10 * fast.from_ms, 10 * fast.until_ms));
    }

    #[test]
    fn a_third_of_the_seeds_get_a_slow_disk_inside_the_fault_phase() {
        let windows: Vec<SlowWindow> = (0..1000).filter_map(|seed| SlowWindow::drawn(seed, 3, FAST)).collect();
        assert!((250..420).contains(&windows.len()), "{}", windows.len());
        assert!(windows.iter().all(|w| w.node < 3
            && w.from_ms < w.until_ms
            && w.until_ms < FAULT_PHASE_MS
            && (20..=3_000).contains(&w.delay_ms)));
        assert!(windows.iter().any(|w| w.delay_ms < 300) && windows.iter().any(|w| w.delay_ms > 1_000));
        assert_eq!(SlowWindow::drawn(9, 3, FAST), SlowWindow::drawn(9, 3, FAST));
    }

    #[test]
    fn torn_tails_are_never_whole_records() {
        let mut plan = DiskFaultPlan::new(1, 3, FAST);
        let tails: Vec<Vec<u8>> = (0..400).filter_map(|_| plan.torn_tail()).collect();
        assert!((150..250).contains(&tails.len()), "{}", tails.len());
        for tail in &tails {
            assert!(!tail.is_empty());
            let mut log = crate::net::raft::log_store::LOG_MAGIC.to_vec();
            log.extend_from_slice(tail);
            let replayed = crate::net::raft::log_store::replay(&log).unwrap();
            assert!(replayed.records.is_empty(), "a torn tail replayed as a record");
        }
    }
}
