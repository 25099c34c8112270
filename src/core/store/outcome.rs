//! What a round's decisions become once the store has answered its
//! proposal: which writes stand, which agent jobs may run (with which
//! fencing token), which watchdog operations count, and whether to look
//! again before the next tick. The actors only carry the messages and
//! timers this decides about.
//!
//! The rules, each of which keeps a service from running twice:
//! - A round is **confirmed** only if it wrote nothing or the store
//!   granted every one of its operations. An unconfirmed round decided on
//!   a view the cluster did not share (a lease it believed it held, a
//!   status it believed current): none of its jobs runs, and its core
//!   state is discarded so the next round starts afresh from the store.
//! - A watchdog **pet or arm counts** only after a granted lease
//!   acquisition (the one just before it in the outbox), and only if the
//!   store's answer came within one round of the round's timestamp: the
//!   lease runs from that timestamp, and the safety inequality allows
//!   exactly one round between it and the pet. A close always counts.
//! - A job runs under the fencing token its round read.

use std::collections::BTreeMap;

use crate::core::agent::JobSpec;

use super::round_env::Outgoing;
use super::state::{HELD_UNWATCHED, Op, Reply};

/// A watchdog operation that counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogOp {
    Arm,
    /// Arm, keeping an armed client's deadline ([`Outgoing::WatchdogArmAhead`]).
    ArmAhead,
    Pet,
    Close,
}

/// An agent job cleared to run, with the fencing token it hands on.
#[derive(Debug, Clone, PartialEq)]
pub struct ClearedJob {
    pub spec: JobSpec,
    pub fencing_token: u64,
}

/// The store's answer to a round's proposal.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// One reply per proposed operation, in order.
    Replies(Vec<Reply>),
    /// The proposal was refused as a whole (no quorum, a failed write) or
    /// the store could not be reached: nothing was applied.
    Failed,
}

/// The round's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundOutcome {
    /// Every write stands (or the round wrote nothing).
    pub confirmed: bool,
    /// The answer came more than one round after the round's timestamp:
    /// its lease renewals are too old to feed the watchdog on.
    pub late: bool,
    /// Why guards refused, as the store said (for the log).
    pub stale: Vec<String>,
    pub watchdog: Vec<WatchdogOp>,
    pub jobs: Vec<ClearedJob>,
    /// Fence-device runs to start (hardware fencing): a confirmed round's
    /// only, so a master whose round the store refused fences nobody.
    pub fence_runs: Vec<String>,
    /// Nodes whose fence was acknowledged: their device runs are spent.
    pub fence_resets: Vec<String>,
}

/// The operations a round proposes, in outbox order.
pub fn proposal(outbox: &[Outgoing]) -> Vec<Op> {
    outbox
        .iter()
        .filter_map(|o| match o {
            Outgoing::Store(op) => Some(op.clone()),
            _ => None,
        })
        .collect()
}

/// Times of a round, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundClock {
    /// When the round read its snapshot (the lease renewals' `now_ms`).
    pub stamp_ms: u64,
    /// When the store's answer arrived.
    pub answered_ms: u64,
    pub round_ms: u64,
}

/// Decides a round's outcome from its outbox, the store's answer, the
/// fencing tokens the round read and its clock (module doc for the rules).
pub fn round_outcome(
    outbox: Vec<Outgoing>,
    answer: &Answer,
    epochs: &BTreeMap<String, u64>,
    clock: RoundClock,
) -> RoundOutcome {
    let wrote = outbox.iter().any(|o| matches!(o, Outgoing::Store(_)));
    let replies: &[Reply] = match answer {
        Answer::Replies(replies) => replies,
        Answer::Failed => &[],
    };
    let stale = replies
        .iter()
        .filter_map(|r| match r {
            Reply::Stale { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    let granted: Vec<bool> = replies.iter().map(|r| !r.refused()).collect();
    let confirmed = !wrote || (!granted.is_empty() && granted.iter().all(|g| *g));
    let late = clock.answered_ms.saturating_sub(clock.stamp_ms) > clock.round_ms;
    let watchdog = if late {
        confirmed_watchdog_ops(&outbox, &[])
    } else {
        confirmed_watchdog_ops(&outbox, &granted)
    };
    let (mut fence_runs, mut fence_resets) = (Vec::new(), Vec::new());
    for item in outbox.iter().filter(|_| confirmed) {
        match item {
            Outgoing::FenceRun(node) => fence_runs.push(node.clone()),
            Outgoing::FenceReset(node) => fence_resets.push(node.clone()),
            _ => {}
        }
    }
    let jobs = if confirmed {
        outbox
            .into_iter()
            .filter_map(|item| match item {
                Outgoing::Job(spec) => {
                    let fencing_token = epochs.get(&spec.sid).copied().unwrap_or(0);
                    Some(ClearedJob { spec, fencing_token })
                }
                _ => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    RoundOutcome {
        confirmed,
        late: late && !granted.is_empty(),
        stale,
        watchdog,
        jobs,
        fence_runs,
        fence_resets,
    }
}

/// The watchdog operations of an outbox that stand: `granted[i]` tells
/// whether store operation `i` (in outbox order) was applied (for an
/// acquisition: granted). A pet or arm right after a refused acquisition
/// is dropped; no reply means not granted.
fn confirmed_watchdog_ops(outbox: &[Outgoing], granted: &[bool]) -> Vec<WatchdogOp> {
    let mut ops = Vec::new();
    let mut store_index = 0;
    let (mut last_acquire_ok, mut last_acquire_unwatched) = (false, false);
    for item in outbox {
        match item {
            Outgoing::Store(op) => {
                let ok = granted.get(store_index).copied().unwrap_or(false);
                if let Op::Acquire { lease_ms, .. } = op {
                    last_acquire_ok = ok;
                    last_acquire_unwatched = *lease_ms == HELD_UNWATCHED;
                }
                store_index += 1;
            }
            Outgoing::WatchdogArm if last_acquire_ok => ops.push(WatchdogOp::Arm),
            Outgoing::WatchdogArmAhead => ops.push(WatchdogOp::ArmAhead),
            Outgoing::WatchdogPet if last_acquire_ok => ops.push(WatchdogOp::Pet),
            // A disarmed LRM closes its watchdog as it holds its lock
            // unwatched, its services running on: the close stands only if
            // the hold did. Otherwise the lock may keep its lease, and a
            // lease nobody watches runs out into a fence acknowledged
            // while the services run (Raft seed 5577: the hold's round
            // refused as not quorate). Other closes (nothing runs) stand.
            Outgoing::WatchdogClose if last_acquire_unwatched && !last_acquire_ok => {}
            Outgoing::WatchdogClose => ops.push(WatchdogOp::Close),
            _ => {}
        }
    }
    ops
}

/// Quick retries come every `round / QUICK_RETRY_DIVISOR`: the first
/// round after a new leader commits must not wait long, its watchdog
/// client is running out (the timing check counts this delay).
pub const QUICK_RETRY_DIVISOR: u64 = 8;

/// Quick retries before backing off: together they span two rounds,
/// longer than a leader election takes.
pub const QUICK_RETRIES: u32 = 16;

/// When to try again after rounds that were not confirmed or not quorate:
/// sooner than the next tick (a leader change is usually over by then),
/// an eighth of a round for the first [`QUICK_RETRIES`], then doubling while
/// rounds stay unconfirmed (a full disk, a lost majority), so that
/// failures do not multiply rounds or logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retry {
    /// Failed rounds in a row.
    failed: u32,
}

impl Retry {
    /// A round failed: the delay before the next try, or `None` when the
    /// regular tick comes as soon.
    pub fn failed(&mut self, round_ms: u64) -> Option<u64> {
        self.failed = self.failed.saturating_add(1);
        let delay = retry_delay_ms(round_ms, self.failed);
        (delay < round_ms).then_some(delay)
    }

    /// A quorate round was confirmed: the next failure retries quickly again.
    pub fn succeeded(&mut self) {
        self.failed = 0;
    }
}

fn retry_delay_ms(round_ms: u64, failed: u32) -> u64 {
    let doublings = failed.saturating_sub(QUICK_RETRIES).min(8);
    (round_ms / QUICK_RETRY_DIVISOR).saturating_mul(1 << doublings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::ServiceState;

    fn acquire() -> Outgoing {
        Outgoing::Store(Op::Acquire {
            lock: crate::core::store::LockName::Agent("node1".into()),
            holder: "node1".into(),
            now_ms: 1_000,
            lease_ms: 6_500,
        })
    }

    fn claim(sid: &str, epoch: u64) -> Outgoing {
        Outgoing::Store(Op::ClaimStart {
            sid: sid.into(),
            node: "node1".into(),
            epoch,
        })
    }

    fn start(sid: &str) -> JobSpec {
        JobSpec {
            sid: sid.into(),
            uid: Some("u1".into()),
            command: ServiceState::Started,
            target: None,
            timeout: None,
            config: None,
        }
    }

    fn granted(n: usize) -> Answer {
        Answer::Replies(vec![Reply::Granted { expires_ms: 7_500 }; n])
    }

    const ON_TIME: RoundClock = RoundClock {
        stamp_ms: 1_000,
        answered_ms: 1_400,
        round_ms: 1_000,
    };

    /// An LRM round: renew the agent lock, pet, claim and start a service.
    fn lrm_outbox() -> Vec<Outgoing> {
        vec![
            acquire(),
            Outgoing::WatchdogPet,
            claim("vm:100", 7),
            Outgoing::Job(start("vm:100")),
        ]
    }

    fn epochs() -> BTreeMap<String, u64> {
        BTreeMap::from([("vm:100".to_string(), 7)])
    }

    #[test]
    fn a_granted_round_pets_and_runs_its_jobs_under_the_token_it_read() {
        let outcome = round_outcome(lrm_outbox(), &granted(2), &epochs(), ON_TIME);
        assert_eq!(
            outcome,
            RoundOutcome {
                confirmed: true,
                late: false,
                stale: vec![],
                watchdog: vec![WatchdogOp::Pet],
                jobs: vec![ClearedJob {
                    spec: start("vm:100"),
                    fencing_token: 7
                }],
                fence_runs: vec![],
                fence_resets: vec![],
            }
        );
    }

    #[test]
    fn fence_device_runs_start_only_after_a_confirmed_round() {
        let outbox = || {
            vec![
                acquire(),
                Outgoing::FenceRun("node3".into()),
                Outgoing::FenceReset("node2".into()),
            ]
        };
        let outcome = round_outcome(outbox(), &granted(1), &epochs(), ON_TIME);
        assert_eq!(outcome.fence_runs, vec!["node3".to_string()]);
        assert_eq!(outcome.fence_resets, vec!["node2".to_string()]);
        let refused = round_outcome(outbox(), &Answer::Failed, &epochs(), ON_TIME);
        assert!(refused.fence_runs.is_empty() && refused.fence_resets.is_empty());
    }

    #[test]
    fn a_refused_claim_stops_the_start_but_the_granted_lease_still_pets() {
        let answer = Answer::Replies(vec![
            Reply::Granted { expires_ms: 7_500 },
            Reply::Stale {
                reason: "vm:100 moved".into(),
            },
        ]);
        let outcome = round_outcome(lrm_outbox(), &answer, &epochs(), ON_TIME);
        assert!(!outcome.confirmed);
        assert_eq!(outcome.stale, vec!["vm:100 moved".to_string()]);
        assert_eq!(outcome.watchdog, vec![WatchdogOp::Pet]);
        assert_eq!(outcome.jobs, vec![]);
    }

    #[test]
    fn a_held_lease_neither_pets_nor_runs_anything() {
        let answer = Answer::Replies(vec![
            Reply::Held {
                holder: "node2".into(),
                expires_ms: 9_000,
            },
            Reply::Skipped,
        ]);
        let outcome = round_outcome(lrm_outbox(), &answer, &epochs(), ON_TIME);
        assert!(!outcome.confirmed);
        assert_eq!(outcome.watchdog, vec![]);
        assert_eq!(outcome.jobs, vec![]);
    }

    #[test]
    fn a_failed_proposal_runs_nothing_but_still_closes_the_watchdog() {
        let mut outbox = lrm_outbox();
        outbox.push(Outgoing::WatchdogClose);
        let outcome = round_outcome(outbox, &Answer::Failed, &epochs(), ON_TIME);
        assert!(!outcome.confirmed);
        assert!(!outcome.late);
        assert_eq!(outcome.watchdog, vec![WatchdogOp::Close]);
        assert_eq!(outcome.jobs, vec![]);
    }

    #[test]
    fn an_answer_later_than_one_round_does_not_pet() {
        let late = RoundClock {
            answered_ms: 2_001,
            ..ON_TIME
        };
        let outcome = round_outcome(lrm_outbox(), &granted(2), &epochs(), late);
        assert!(outcome.confirmed && outcome.late);
        assert_eq!(outcome.watchdog, vec![]);
        assert_eq!(outcome.jobs.len(), 1, "the start is guarded by its claim, not by time");
        let just_in_time = RoundClock {
            answered_ms: 2_000,
            ..ON_TIME
        };
        let outcome = round_outcome(lrm_outbox(), &granted(2), &epochs(), just_in_time);
        assert_eq!(outcome.watchdog, vec![WatchdogOp::Pet]);
    }

    #[test]
    fn a_round_without_writes_is_confirmed_and_pets_nothing() {
        let outbox = vec![Outgoing::WatchdogPet, Outgoing::Job(start("vm:100"))];
        let outcome = round_outcome(outbox, &Answer::Replies(vec![]), &BTreeMap::new(), ON_TIME);
        assert!(outcome.confirmed);
        assert_eq!(outcome.watchdog, vec![]);
        assert_eq!(outcome.jobs[0].fencing_token, 0);
    }

    /// A disarmed LRM's close goes with its unwatched hold: it stands only
    /// if the hold was granted (its services run on).
    #[test]
    fn a_close_with_an_unwatched_hold_stands_only_if_the_hold_did() {
        let hold = Outgoing::Store(Op::Acquire {
            lock: crate::core::store::LockName::Agent("node1".into()),
            holder: "node1".into(),
            now_ms: 1_000,
            lease_ms: HELD_UNWATCHED,
        });
        let outbox = vec![hold, Outgoing::WatchdogClose];
        let failed = round_outcome(outbox.clone(), &Answer::Failed, &BTreeMap::new(), ON_TIME);
        assert_eq!(failed.watchdog, vec![]);
        let granted = Answer::Replies(vec![Reply::Granted {
            expires_ms: HELD_UNWATCHED,
        }]);
        let held = round_outcome(outbox, &granted, &BTreeMap::new(), ON_TIME);
        assert_eq!(held.watchdog, vec![WatchdogOp::Close]);
    }

    /// Arming ahead of a take back from an unwatched hold stands whatever
    /// the store answers: the take may have committed unanswered.
    #[test]
    fn an_arm_ahead_stands_whatever_the_answer() {
        let outbox = vec![Outgoing::WatchdogArmAhead, acquire(), Outgoing::WatchdogPet];
        for answer in [
            Answer::Failed,
            Answer::Replies(vec![Reply::Granted { expires_ms: 7_500 }]),
        ] {
            let outcome = round_outcome(outbox.clone(), &answer, &BTreeMap::new(), ON_TIME);
            assert_eq!(outcome.watchdog[0], WatchdogOp::ArmAhead, "{answer:?}");
            assert_eq!(outcome.watchdog.len(), if outcome.confirmed { 2 } else { 1 });
        }
    }

    #[test]
    fn pets_follow_only_the_acquisition_just_before_them() {
        let outbox = vec![
            acquire(),
            Outgoing::WatchdogArm,
            acquire(),
            Outgoing::WatchdogPet,
            Outgoing::WatchdogClose,
        ];
        let answer = Answer::Replies(vec![
            Reply::Granted { expires_ms: 7_500 },
            Reply::Held {
                holder: "node2".into(),
                expires_ms: 9_000,
            },
        ]);
        let outcome = round_outcome(outbox, &answer, &BTreeMap::new(), ON_TIME);
        assert_eq!(outcome.watchdog, vec![WatchdogOp::Arm, WatchdogOp::Close]);
    }

    #[test]
    fn the_proposal_is_the_outbox_store_operations_in_order() {
        let ops = proposal(&lrm_outbox());
        assert_eq!(ops.len(), 2);
        assert!(matches!(ops[0], Op::Acquire { .. }) && matches!(ops[1], Op::ClaimStart { .. }));
    }

    #[test]
    fn quick_retries_back_off_to_the_round() {
        let mut retry = Retry::default();
        let delays: Vec<Option<u64>> = (1..=20).map(|_| retry.failed(1_000)).collect();
        let eighth = Some(125);
        let mut expected = vec![eighth; 16];
        expected.extend([Some(250), Some(500), None, None]);
        assert_eq!(delays, expected);
        retry.succeeded();
        assert_eq!(retry.failed(1_000), eighth);
        assert_eq!(retry_delay_ms(1_000, u32::MAX), 125 * 256, "no overflow");
    }
}
