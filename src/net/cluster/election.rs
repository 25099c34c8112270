//! The election guard: when this member may start a Raft election.
//!
//! openraft 0.9 decides that by itself, with two weaknesses the guard
//! makes up for:
//! - it has no pre-vote: a member cut off, or just restarted, keeps
//!   raising its term and deposes a healthy leader once back;
//! - it draws each member's election timeout once, when the member
//!   starts, and fires elections on a 150 ms tick. Two members that drew
//!   timeouts of the same tick count and campaigned together once (a
//!   split vote) campaign together again at every later try: the two
//!   survivors of a three-voter cluster whose leader died can stay
//!   leaderless until something else perturbs them (openraft#1838, fixed
//!   in 0.10 only). The container soak saw a healthy majority fence
//!   itself that way.
//!
//! So openraft's own timer is left to fire only the first election after
//! an established leader went silent (it knows when that leader's
//! heartbeats stopped); every later try, while no leader was established
//! in this member's term, is the guard's, after a delay drawn afresh each
//! time ([`Retry`]). Whether either may happen at all is [`decide`]'s
//! pure verdict over what the guard sees ([`Look`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::ServerState;
use tokio::time::Instant;

use super::RaftStore;
use crate::net::peer::{PeerReply, PeerRequest};
use crate::net::quic::lock;
use crate::net::raft::{LogId, Member, Vote};

/// What the guard sees at one look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Look {
    /// Voting members, this one included if it votes.
    pub voters: usize,
    pub is_voter: bool,
    /// Voters that answered within an election timeout, this one included.
    pub reachable: usize,
    /// The member started (or restarted) less than the hold ago: the
    /// leader, if any, has not had a chance to reach it yet.
    pub holding: bool,
    /// A voter said within an election timeout that it leads and commits.
    pub leader_alive: bool,
    /// This member just granted its vote to a candidate that answers and
    /// whose log is not behind its own: that candidate is about to lead.
    pub backing_candidate: bool,
    /// A voter that answers has a longer log: this member cannot win.
    pub longer_log_reachable: bool,
    /// This member's vote is committed: it knows an established leader,
    /// whose heartbeats openraft's own timer watches.
    pub leader_known: bool,
    pub leading: bool,
    /// The retry delay drawn for this member's current vote ran out.
    pub retry_due: bool,
}

/// What may happen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Verdict {
    /// openraft's own election timer may fire.
    pub timer: bool,
    /// The guard starts an election now.
    pub campaign: bool,
}

/// The guard's rule. No election without a reachable majority (a crude
/// pre-vote), while a voter answers that it leads, while backing a
/// viable candidate, or against a longer log; openraft's timer for the
/// first try after a known leader, the guard's retry timer for the rest.
pub(super) fn decide(look: &Look) -> Verdict {
    if look.voters <= 1 {
        return Verdict {
            timer: true,
            campaign: false,
        };
    }
    let may = look.is_voter
        && !look.holding
        && 2 * look.reachable > look.voters
        && !look.leader_alive
        && !look.backing_candidate
        && !look.longer_log_reachable;
    Verdict {
        timer: may && look.leader_known,
        campaign: may && !look.leader_known && !look.leading && look.retry_due,
    }
}

/// One voter's last answer to `LeaderCheck`.
#[derive(Debug, Clone, Copy)]
struct Answer {
    /// When the question was sent.
    asked: Instant,
    last_log: Option<LogId>,
}

/// What the election guard learnt from asking the other voters
/// ([`spawn_peer_checks`]).
#[derive(Debug, Default)]
pub(super) struct PeerChecks {
    answers: BTreeMap<String, Answer>,
    /// A voter that leads and commits said so; valid until then.
    leader_alive_until: Option<Instant>,
}

impl PeerChecks {
    fn record(&mut self, peer: String, asked: Instant, leads: bool, last_log: Option<LogId>, valid: Duration) {
        let answer = Answer { asked, last_log };
        let entry = self.answers.entry(peer).or_insert(answer);
        if asked >= entry.asked {
            *entry = answer;
        }
        if leads {
            let until = asked + valid;
            self.leader_alive_until = Some(self.leader_alive_until.map_or(until, |u| u.max(until)));
        }
    }

    /// `peer`'s answer if it was asked for less than `fresh` ago.
    fn fresh(&self, peer: &str, now: Instant, fresh: Duration) -> Option<Answer> {
        self.answers.get(peer).copied().filter(|a| now - a.asked < fresh)
    }
}

/// splitmix64: the retry delays need no more than an even spread, and
/// members must not draw alike (the seed mixes in the member id).
struct Jitter(u64);

impl Jitter {
    /// From the member's seed ([`super::RaftRuntime`]: the system's time
    /// in the daemon, the virtual clock in the harness).
    fn seeded(seed: u64) -> Jitter {
        Jitter(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        super::splitmix(self.0)
    }

    /// A duration in `[low, 2 × low)`, to the millisecond.
    fn once_to_twice(&mut self, low: Duration) -> Duration {
        let span = (low.as_millis() as u64).max(1);
        low + Duration::from_millis(self.next() % span)
    }
}

/// The guard's own election timer: restarted with a fresh draw whenever
/// this member's vote changes or it campaigns.
struct Retry {
    vote: Option<Vote>,
    /// When the current vote was first seen.
    since: Instant,
    due: Instant,
}

impl Retry {
    fn observe(&mut self, vote: Vote, now: Instant, jitter: &mut Jitter, low: Duration) {
        if self.vote != Some(vote) {
            self.vote = Some(vote);
            self.since = now;
            self.due = now + jitter.once_to_twice(low);
        }
    }
}

/// Runs the guard of `store` (see the module doc); `hold` keeps a member
/// that just (re)started from campaigning before the leader could reach it.
pub(super) fn spawn_guard(store: &RaftStore, hold: Duration) {
    let checks = spawn_peer_checks(store);
    let guard = store.clone();
    let task = tokio::spawn(async move {
        let store = guard;
        let timing = store.inner.timing;
        let started = Instant::now();
        // Twice the longest election timeout (which is twice
        // `election_min`): a candidate that won has sent its first
        // heartbeat long before, one that lost has given up.
        let backing_hold = timing.election_min * 4;
        // How long to leave the election to a voter with a longer log
        // (one that answers but cannot campaign, say on a stuck disk, must
        // not block the others for good).
        let defer_hold = timing.election_min * 4;
        let mut jitter = Jitter::seeded(store.inner.jitter_seed);
        // The server metrics (vote, role, leader, membership) change only
        // when an election or a membership change happens; the full
        // metrics change at every commit, which woke every member's guard
        // for nothing. The own log's growth is seen at the next look.
        let mut metrics = store.inner.raft.server_metrics();
        let now = Instant::now();
        let mut retry = Retry {
            vote: None,
            since: now,
            due: now,
        };
        let mut deferring_since: Option<Instant> = None;
        let mut last_verdict = None;
        loop {
            let now = Instant::now();
            let (vote, leading) = {
                let m = metrics.borrow();
                (m.vote, m.state == ServerState::Leader)
            };
            retry.observe(vote, now, &mut jitter, timing.election_min);
            let voters = store.voters();
            let own_log = store.inner.log.bounds().1;
            let mut look = Look {
                voters: voters.len(),
                is_voter: voters.iter().any(|(id, _)| *id == store.inner.id),
                holding: started.elapsed() < hold,
                leader_known: vote.is_committed(),
                leading,
                retry_due: now >= retry.due,
                ..Look::default()
            };
            let leader_alive_until;
            {
                let checks = lock(&checks);
                let fresh = |m: &Member| checks.fresh(&m.name, now, timing.election_min);
                let others = voters.iter().filter(|(id, _)| *id != store.inner.id).map(|(_, m)| m);
                look.reachable = usize::from(look.is_voter) + others.clone().filter(|m| fresh(m).is_some()).count();
                leader_alive_until = checks.leader_alive_until;
                look.leader_alive = leader_alive_until.is_some_and(|until| until > now);
                let longer = others.clone().any(|m| fresh(m).is_some_and(|a| a.last_log > own_log));
                deferring_since = if longer { deferring_since.or(Some(now)) } else { None };
                look.longer_log_reachable = deferring_since.is_some_and(|at| now - at < defer_hold);
                let candidate = vote
                    .leader_id()
                    .voted_for()
                    .filter(|id| *id != store.inner.id && !vote.is_committed())
                    .and_then(|id| voters.iter().find(|(v, _)| *v == id).map(|(_, m)| m));
                look.backing_candidate = now - retry.since < backing_hold
                    && candidate.and_then(fresh).is_some_and(|a| a.last_log >= own_log);
            }
            let verdict = decide(&look);
            if last_verdict.is_none_or(|v: Verdict| v.timer != verdict.timer) {
                tracing::debug!(?look, timer = verdict.timer, "elections");
                store.inner.raft.runtime_config().elect(verdict.timer);
            }
            last_verdict = Some(verdict);
            if verdict.campaign {
                tracing::debug!(?look, "no leader in this term: starting an election");
                if let Err(e) = store.inner.raft.trigger().elect().await {
                    tracing::debug!("election not started: {e}");
                }
                retry.due = Instant::now() + jitter.once_to_twice(timing.election_min);
            }
            // Every time at which the verdict could change by itself.
            let deadlines = [
                Some(retry.due),
                leader_alive_until,
                Some(started + hold),
                deferring_since.map(|at| at + defer_hold),
                Some(retry.since + backing_hold),
            ];
            let wake = next_look(deadlines.into_iter().flatten(), Instant::now(), timing.heartbeat);
            // `biased`: no random branch order, so a seeded run replays.
            tokio::select! {
                biased;
                () = tokio::time::sleep(wake) => {}
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    });
    store.keep(task);
}

/// How long the guard sleeps before its next look, unless the metrics
/// change first: until the next of `deadlines` still ahead (its retry
/// timer, the leader's last yes running out, its holds ending), at most
/// one heartbeat, the grain of what else changes with time (answers going
/// stale). A deadline already passed stays so (a retry timer until the
/// vote changes: with a stable leader, for good), so it must not set the
/// pace: the retry timer once did, with a floor of 1 ms, and every member
/// looked a thousand times a second while idle.
fn next_look(deadlines: impl IntoIterator<Item = Instant>, now: Instant, heartbeat: Duration) -> Duration {
    deadlines
        .into_iter()
        .filter_map(|deadline| deadline.checked_duration_since(now).filter(|left| !left.is_zero()))
        .fold(heartbeat, Duration::min)
}

/// Asks every other voter, every half election timeout, whether it leads
/// and commits (`LeaderCheck`) and how long its log is, and records who
/// answered and until when a working leader is known (one election
/// timeout past its last yes). The guard counts as reachable only the
/// voters that answered within an election timeout: a cached QUIC
/// connection outlives a cut network by its idle timeout (3 s), and a
/// member cut off that still counted its peers campaigned, came back
/// with a higher term and made the working leader step down. A leader
/// that died, lost its majority or stopped committing (a stuck disk)
/// stops saying yes well before openraft's leader lease and election
/// timeout have passed, so this never delays an election that is due.
fn spawn_peer_checks(store: &RaftStore) -> Arc<Mutex<PeerChecks>> {
    let checks = Arc::new(Mutex::new(PeerChecks::default()));
    let shared = Arc::clone(&checks);
    let checker = store.clone();
    let task = tokio::spawn(async move {
        let store = checker;
        let every = store.inner.timing.election_min / 2;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let asked = Instant::now();
            for (_, member) in store.voters().into_iter().filter(|(id, _)| *id != store.inner.id) {
                let Ok(addr) = member.addr.parse::<SocketAddr>() else {
                    continue;
                };
                let store = store.clone();
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let call = store.inner.transport.call::<PeerRequest, PeerReply>(
                        &member.name,
                        addr,
                        &PeerRequest::LeaderCheck,
                    );
                    if let Ok(Ok(PeerReply::LeaderCheck { leads, last_log })) = tokio::time::timeout(every, call).await
                    {
                        let valid = store.inner.timing.election_min;
                        lock(&shared).record(member.name, asked, leads, last_log, valid);
                    }
                });
            }
        }
    });
    store.keep(task);
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A follower of three voters whose leader went silent, all else clear.
    fn follower() -> Look {
        Look {
            voters: 3,
            is_voter: true,
            reachable: 2,
            leader_known: true,
            ..Look::default()
        }
    }

    #[test]
    fn the_guard_looks_again_at_its_retry_time_or_after_a_heartbeat_never_sooner_once_due() {
        let now = Instant::now();
        let beat = Duration::from_millis(100);
        let ms = Duration::from_millis;
        assert_eq!(next_look([now + ms(30), now + ms(70)], now, beat), ms(30));
        assert_eq!(next_look([now + Duration::from_secs(3)], now, beat), beat);
        // A retry timer that ran out long ago (a stable leader): one look
        // a heartbeat, not a busy loop; a later deadline still counts.
        assert_eq!(next_look([now], now, beat), beat);
        assert_eq!(next_look([now, now + ms(40)], now + ms(10), beat), ms(30));
        assert_eq!(next_look([now], now + Duration::from_secs(60), beat), beat);
    }

    #[test]
    fn the_first_election_after_a_known_leader_is_openraft_timer() {
        assert_eq!(
            decide(&follower()),
            Verdict {
                timer: true,
                campaign: false
            }
        );
        // Even when the retry timer ran out: the guard never campaigns
        // while a leader was established in this term.
        let look = Look {
            retry_due: true,
            ..follower()
        };
        assert!(!decide(&look).campaign);
    }

    #[test]
    fn a_failed_election_is_retried_by_the_guard_when_its_delay_ran_out() {
        let candidate = Look {
            leader_known: false,
            ..follower()
        };
        assert_eq!(
            decide(&candidate),
            Verdict {
                timer: false,
                campaign: false
            }
        );
        let due = Look {
            retry_due: true,
            ..candidate
        };
        assert_eq!(
            decide(&due),
            Verdict {
                timer: false,
                campaign: true
            }
        );
        let leading = Look { leading: true, ..due };
        assert!(!decide(&leading).campaign);
    }

    #[test]
    fn nothing_campaigns_without_a_majority_a_live_leader_a_viable_candidate_or_against_a_longer_log() {
        let due = Look {
            leader_known: false,
            retry_due: true,
            ..follower()
        };
        let blocked = [
            Look { reachable: 1, ..due },
            Look { holding: true, ..due },
            Look {
                leader_alive: true,
                ..due
            },
            Look {
                backing_candidate: true,
                ..due
            },
            Look {
                longer_log_reachable: true,
                ..due
            },
            Look { is_voter: false, ..due },
        ];
        for look in blocked {
            assert_eq!(
                decide(&look),
                Verdict {
                    timer: false,
                    campaign: false
                },
                "{look:?}"
            );
            let first = Look {
                leader_known: true,
                ..look
            };
            assert!(!decide(&first).timer, "{first:?}");
        }
    }

    #[test]
    fn a_single_voter_elects_itself_by_openraft_timer() {
        let alone = Look {
            voters: 1,
            is_voter: true,
            reachable: 1,
            holding: true,
            ..Look::default()
        };
        assert_eq!(
            decide(&alone),
            Verdict {
                timer: true,
                campaign: false
            }
        );
    }

    #[test]
    fn retry_delays_are_drawn_afresh_within_one_to_two_election_timeouts() {
        let low = Duration::from_millis(250);
        let mut a = Jitter::seeded(1);
        let mut b = Jitter::seeded(2);
        let draws: Vec<(Duration, Duration)> = (0..200).map(|_| (a.once_to_twice(low), b.once_to_twice(low))).collect();
        assert!(
            draws
                .iter()
                .all(|(x, y)| (low..low * 2).contains(x) && (low..low * 2).contains(y))
        );
        // Not one fixed timeout per member (openraft 0.9's), nor the
        // same sequence on two members.
        assert!(draws.windows(2).any(|w| w[0].0 != w[1].0));
        assert!(draws.iter().filter(|(x, y)| x == y).count() < 20);
    }

    #[test]
    fn a_newer_vote_restarts_the_retry_timer_an_old_one_does_not() {
        let low = Duration::from_millis(250);
        let mut jitter = Jitter::seeded(7);
        let t0 = Instant::now();
        let mut retry = Retry {
            vote: None,
            since: t0,
            due: t0,
        };
        let vote = Vote::new(3, 1);
        retry.observe(vote, t0, &mut jitter, low);
        let due = retry.due;
        assert!(due >= t0 + low && due < t0 + low * 2);
        retry.observe(vote, t0 + low, &mut jitter, low);
        assert_eq!(retry.due, due);
        retry.observe(Vote::new(4, 1), t0 + low, &mut jitter, low);
        assert!(retry.due >= t0 + low * 2);
        assert_eq!(retry.since, t0 + low);
    }

    #[test]
    fn checks_keep_the_newest_answer_and_the_latest_leader_yes() {
        let valid = Duration::from_millis(250);
        let t0 = Instant::now();
        let log = |index| Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), index));
        let mut checks = PeerChecks::default();
        checks.record("b".into(), t0 + valid, true, log(9), valid);
        // A late answer to an older question changes nothing.
        checks.record("b".into(), t0, false, log(5), valid);
        let answer = checks.fresh("b", t0 + valid, valid).unwrap();
        assert_eq!(answer.last_log, log(9));
        assert_eq!(checks.leader_alive_until, Some(t0 + valid * 2));
        assert!(checks.fresh("b", t0 + valid * 2, valid).is_none());
        assert!(checks.fresh("c", t0, valid).is_none());
    }
}
