//! The actor-level seeded harness (`hactor::sim::chaos`): a batch of
//! seeds with every checker on and no violation, a seed replaying to the
//! same event hash, and a deliberate safety bug being caught.

use std::time::Instant;

use hactor::actors::round::Sabotage;
use hactor::node::config::Profile;
use hactor::sim::chaos::{self, ChaosConfig, Outcome, Report};

fn run(config: ChaosConfig) -> Report {
    chaos::run(config).expect("the harness runs")
}

/// Fails with the replay command and the last events unless `report`
/// settled without a violation.
fn assert_settled(report: &Report) {
    assert_eq!(
        report.outcome,
        Outcome::Settled,
        "replay: {}\nlast events:\n{}",
        report.replay_command(),
        report.tail.join("\n")
    );
}

/// A few hundred seeds, one per core at a time (`chaos::batch`), so a
/// developer sees a violation before CI's 10 000.
#[test]
fn a_batch_of_seeds_runs_without_violations() {
    let started = Instant::now();
    let mut virtual_ms = 0;
    let seeds = 1..201;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runs = chaos::batch::run_ordered(
        seeds.clone(),
        jobs,
        |seed| ChaosConfig::for_seed(seed, None, None),
        |report| {
            let report = report.expect("the harness runs");
            assert_settled(&report);
            assert!(report.events > report.nodes as u64, "the journal records the run");
            virtual_ms += report.virtual_ms;
            true
        },
    );
    assert_eq!(runs, seeds.end - seeds.start, "every seed reported");
    let wall = started.elapsed().as_secs_f64();
    let count = runs as f64;
    // A figure, not an assertion: debug build on a shared machine.
    println!(
        "chaos: {count} seeds on {jobs} threads, {:.0} simulated s in {wall:.1} s wall: {:.0} simulated s per wall s, {:.0} seeds per minute",
        virtual_ms as f64 / 1000.0,
        virtual_ms as f64 / 1000.0 / wall,
        count * 60.0 / wall
    );
}

#[test]
fn a_seed_replays_to_the_same_events() {
    let config = ChaosConfig {
        keep_events: true,
        ..ChaosConfig::for_seed(7, None, None)
    };
    let first = run(config.clone());
    let second = run(config);
    assert_eq!(first.all, second.all, "every event, in order");
    assert_eq!(first.hash, second.hash);
    let events = first.all.unwrap_or_default();
    assert!(
        events.iter().any(|e| e.contains("started (token")),
        "agents ran: {events:?}"
    );
    let other = run(ChaosConfig::for_seed(8, None, None));
    assert_ne!(first.hash, other.hash, "another seed, another run");
}

/// The first of seeds 1..=30 whose run with `sabotage` breaks a check,
/// and what broke.
fn first_violation(sabotage: Sabotage) -> Option<(u64, String)> {
    (1..=30).find_map(|seed| {
        let config = ChaosConfig {
            sabotage: Some(sabotage),
            ..ChaosConfig::for_seed(seed, None, None)
        };
        match run(config).outcome {
            Outcome::Violation(what) => Some((seed, what)),
            _ => None,
        }
    })
}

/// Asserts that a checker catches `sabotage` within 30 seeds, as a
/// violation whose text starts with `kind`; `missed` says what went
/// unnoticed otherwise.
fn assert_caught(sabotage: Sabotage, kind: &str, missed: &str) {
    let (seed, what) = first_violation(sabotage).expect(missed);
    println!("{sabotage:?} caught at seed {seed}: {what}");
    assert!(what.starts_with(kind), "{what}");
}

#[test]
fn petting_the_watchdog_without_a_renewal_is_caught() {
    assert_caught(
        Sabotage::PetWithoutRenewal,
        // The master takes the lock of a node still running services: the
        // store-side checker sees it before any start elsewhere.
        "fence acknowledged: ",
        "a node cut from the store keeps its services and is never fenced",
    );
}

fn hactor_sim(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hactor-sim"))
        .args(args)
        .output()
        .expect("hactor-sim runs")
}

/// The line of a run's outcome and hash (the figures line differs).
fn outcome_line(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|l| l.starts_with("seed "))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_command_replays_a_seed_in_another_process_and_reports_a_violation() {
    let first = hactor_sim(&["chaos", "--seed", "3"]);
    let second = hactor_sim(&["chaos", "--seed", "3"]);
    assert!(first.status.success(), "{first:?}");
    let line = outcome_line(&first);
    assert!(
        line.contains("settled, no violation") && line.contains("hash "),
        "{line}"
    );
    assert_eq!(line, outcome_line(&second), "same seed, same hash");

    // Seed 1 draws `pve` (fault model 3); under `fast` it breaks at once.
    let broken = hactor_sim(&["chaos", "--seed", "1", "--pet-without-renewal", "--profile", "fast"]);
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert!(!broken.status.success(), "a violation fails the command: {stdout}");
    assert!(stdout.contains("VIOLATION fence before recover: "), "{stdout}");
    assert!(
        stdout.contains("replay: hactor-sim chaos --seed 1 --nodes ")
            && stdout.contains(" --sabotage pet-without-renewal")
            && stdout.contains(" --profile fast"),
        "the replay keeps the forced profile: {stdout}"
    );
    let tail = stdout.split("last events:\n").nth(1).unwrap_or_default();
    assert!((10..=30).contains(&tail.lines().count()), "the last events: {tail}");
}

#[test]
fn starting_under_an_old_fencing_token_is_caught() {
    assert_caught(
        Sabotage::KeepFirstEpochs,
        "fencing token: ",
        "a service placed back on a node starts under its first token",
    );
}

#[test]
fn a_node_restarted_in_the_last_step_is_dropped_without_a_panic() {
    // Seed 10330 (fault model 2) restarts a node in the step the run ends
    // in (seeds 10189 and 10036 did before the fault stream changed): its
    // actors, never polled, used to run `started` while the runtime was
    // dropped ("there is no reactor running"). Injected actor panics log
    // "handler panicked"; a real one prints "panicked at".
    let output = hactor_sim(&["chaos", "--seed", "10330", "--verbose", "--fault-model", "2"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{output:?}");
    assert!(!stderr.contains("panicked at"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let time = |line: &str| line.split_whitespace().next().unwrap_or_default().to_string();
    let end = stdout.lines().find(|l| l.contains(" end: ")).map(time);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(" up (incarnation ") && Some(time(l)) == end),
        "a node comes up in the last step: {stdout}"
    );
}

#[test]
fn a_fenced_node_restarting_its_old_services_is_caught() {
    // Wave 1's hole: a node back after a fence started what its own old
    // status said it ran, though the manager had moved it.
    assert_caught(
        Sabotage::RestartOldServices,
        "fence before recover: ",
        "a restarted node starts its old services from its own stale view",
    );
}

/// Every event of `seed`'s run, which must settle.
fn settled_events(seed: u64) -> Vec<String> {
    let report = run(ChaosConfig {
        keep_events: true,
        ..ChaosConfig::for_seed(seed, None, None)
    });
    assert_eq!(report.outcome, Outcome::Settled, "{}", report.replay_command());
    report.all.unwrap_or_default()
}

#[test]
fn frozen_nodes_thaw_or_are_reset_by_their_watchdog() {
    let (mut thawed, mut reset) = (0, 0);
    for seed in 1..=3 {
        let events = settled_events(seed);
        for (at, line) in events.iter().enumerate() {
            let Some((node, rest)) = line.trim_start().split_once(' ').and_then(|(_, l)| l.split_once(' ')) else {
                continue;
            };
            let Some(ms) = rest
                .strip_prefix("frozen for ")
                .and_then(|r| r.split(' ').next())
                .and_then(|ms| ms.parse::<u64>().ok())
            else {
                continue;
            };
            // The node's next life event: a thaw if it was frozen well
            // within the device timeout (1 s; the last feed may be a
            // watchdog tick, 200 ms, before the freeze), a reset if it was
            // frozen longer; either in between.
            let next = events[at + 1..]
                .iter()
                .find(|l| l.contains(&format!(" {node} thawed")) || l.contains(&format!(" {node} watchdog fired")))
                .unwrap_or_else(|| panic!("{node} frozen and never thawed nor reset: {events:?}"));
            if next.contains("thawed") {
                assert!(ms < 1_100, "{line} then {next}");
                thawed += 1;
            } else {
                assert!(ms > 750, "{line} then {next}");
                reset += 1;
            }
        }
    }
    assert!(
        thawed > 0 && reset > 0,
        "seeds 1-3 freeze both ways: {thawed} thawed, {reset} reset"
    );
}

#[test]
fn a_violation_shrinks_to_fewer_faults_that_replay_it() {
    let config = ChaosConfig {
        sabotage: Some(Sabotage::RestartOldServices),
        profile: Some(Profile::Fast),
        ..ChaosConfig::for_seed(1, None, None)
    };
    let report = run(config.clone());
    assert!(matches!(report.outcome, Outcome::Violation(_)), "{}", report.outcome);
    let shrunk = chaos::shrink(config.clone(), report.clone()).expect("shrinks");
    assert!(
        !shrunk.faults.is_empty() && shrunk.faults.len() < report.faults.len(),
        "{:?} of {:?}",
        shrunk.faults,
        report.faults
    );
    assert!(matches!(&shrunk.last.outcome, Outcome::Violation(v) if v.starts_with("fence before recover: ")));
    let replay = run(ChaosConfig {
        skip_faults: shrunk.last.skip_faults.clone(),
        ..config
    });
    assert_eq!(replay.hash, shrunk.last.hash, "the mask replays the shrunk run");
    assert_eq!(replay.faults, shrunk.faults);
}

#[test]
fn skipping_a_fault_leaves_the_earlier_ones_and_draws_the_same_later_ones() {
    let config = ChaosConfig::for_seed(5, None, None);
    let whole = run(config.clone());
    let (dropped, _) = whole.faults[2].clone();
    let skipped = run(ChaosConfig {
        skip_faults: [dropped].into(),
        ..config
    });
    assert_eq!(skipped.faults[..2], whole.faults[..2]);
    assert!(skipped.faults.iter().all(|(index, _)| *index != dropped));
    // Later faults are drawn alike; those whose node is still in the same
    // shape apply alike (agent faults always do).
    let agent_faults = |r: &Report| -> Vec<(u32, String)> {
        r.faults
            .iter()
            .filter(|(index, what)| *index > dropped && what.contains(" agent "))
            .cloned()
            .collect()
    };
    assert!(!agent_faults(&whole).is_empty());
    assert_eq!(agent_faults(&skipped), agent_faults(&whole));
}

#[test]
fn the_command_shrinks_a_violation_and_prints_its_replay() {
    let output = hactor_sim(&[
        "chaos",
        "--seed",
        "1",
        "--sabotage",
        "restart-old-services",
        "--shrink",
        "--profile",
        "fast",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    let shrunk = stdout.split("shrunk to ").nth(1).unwrap_or_default();
    assert!(shrunk.contains("fault #"), "{stdout}");
    let replay = shrunk
        .lines()
        .find_map(|l| l.strip_prefix("replay: hactor-sim "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(replay.contains(" --skip-faults "), "{replay}");
    let again = hactor_sim(&replay.split(' ').collect::<Vec<_>>());
    let again_stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        !again.status.success() && again_stdout.contains("VIOLATION fence before recover: "),
        "{again_stdout}"
    );
}

#[test]
fn operator_edits_during_the_faults_are_undone_for_the_liveness_phase() {
    let mut stopped = 0;
    for seed in 1..=3 {
        // Settled: every service runs again, those requested stopped
        // during the faults too.
        let events = settled_events(seed);
        stopped += events.iter().filter(|e| e.contains(" requested stopped")).count();
        let moves = events
            .iter()
            .filter(|e| e.contains("operator: migrate") || e.contains("operator: relocate"))
            .count();
        assert!(moves > 0, "seed {seed} moves a service: {events:?}");
    }
    assert!(stopped > 0, "seeds 1-3 request a service stopped");
}

fn raft(seed: u64) -> ChaosConfig {
    ChaosConfig {
        store: hactor::sim::chaos::StoreKind::Raft,
        ..ChaosConfig::for_seed(seed, Some(3), Some(4))
    }
}

/// The Raft mode: every node's store is the daemon's own Raft member
/// (openraft, log and state machine on files) over the seeded in-process
/// network. A few seeds with every checker and the replica agreement, and
/// an exact replay: seed 2 once gave one of two hashes, as an unbiased
/// `select!` inside openraft drew its branch order from tokio's unseeded
/// RNG; `.cargo/config.toml` now lets the harness seed it.
#[test]
fn raft_mode_seeds_settle_and_replay_exactly() {
    // Checked when the test builds: without the flag it does not compile.
    const {
        assert!(
            chaos::REPLAY_EXACT,
            "built without --cfg tokio_unstable (.cargo/config.toml)"
        )
    };
    for seed in [2, 3] {
        let report = run(raft(seed));
        assert_eq!(report.outcome, Outcome::Settled, "seed {seed}: {:?}", report.tail);
        assert!(
            report.tail.iter().any(|line| line.contains("agent:")),
            "seed {seed} ran services: {:?}",
            report.tail
        );
    }
    let replay = |seed| {
        run(ChaosConfig {
            keep_events: true,
            ..raft(seed)
        })
    };
    let (first, second) = (replay(2), replay(2));
    assert_eq!(first.all, second.all, "every event, in order");
    assert_eq!(first.hash, second.hash);
}

/// The first of seeds `1..=last` whose Raft-mode run with `sabotage`
/// breaks a check, and what broke.
fn raft_first_violation(sabotage: Sabotage, last: u64) -> Option<(u64, String)> {
    (1..=last).find_map(|seed| {
        let report = run(ChaosConfig {
            sabotage: Some(sabotage),
            ..raft(seed)
        });
        match report.outcome {
            Outcome::Violation(what) => Some((seed, what)),
            Outcome::Settled => None,
        }
    })
}

/// In Raft mode too, a cut node that keeps petting its watchdog is caught.
#[test]
fn raft_mode_catches_petting_without_a_renewal() {
    let (seed, what) = raft_first_violation(Sabotage::PetWithoutRenewal, 6)
        .expect("PetWithoutRenewal not caught in Raft mode within 6 seeds");
    println!("caught at seed {seed}: {what}");
}

/// Rounds that decide from their own replica without a read barrier and
/// propose without the store's guards start a service from an old view:
/// under an older fencing token than one already handed out (seed 21;
/// 3 of seeds 1..=40 catch it). Raft mode only: the shared store has no
/// replica to lag.
#[test]
fn raft_mode_catches_deciding_from_a_stale_replica() {
    let (seed, what) = raft_first_violation(Sabotage::StaleReplica, 30)
        .expect("a round deciding from a stale replica went unnoticed within 30 seeds");
    println!("caught at seed {seed}: {what}");
    assert!(
        what.starts_with("fencing token: ")
            || what.starts_with("fence before recover: ")
            || what.starts_with("double run"),
        "{what}"
    );
}

/// A master that takes a node's agent lock as soon as it sees the node
/// offline, a lease early, recovers services that still run there.
#[test]
fn taking_a_dead_nodes_lock_early_is_caught() {
    assert_caught(
        Sabotage::TakeLockEarly,
        "fence acknowledged: ",
        "the master recovered services of a node whose lease had not run out",
    );
    let (seed, what) =
        raft_first_violation(Sabotage::TakeLockEarly, 6).expect("TakeLockEarly not caught in Raft mode within 6 seeds");
    println!("Raft mode: caught at seed {seed}: {what}");
}

/// Regression seeds of real bugs the actor panics found (shared store):
/// - 10211: an LrmActor restarted while a stop ran; its fresh state asked
///   for the stop again, the second job found the guest already stopping
///   and reported it stopped at once, and the service was started on
///   another node while the first stop still ran. Jobs of one service
///   now run one at a time in the WorkerPool.
/// - 15827: the restarted LRM asked again for a start still under way;
///   that second start's result was taken for the relocation the master
///   ordered next, so the master moved a service still running here. A
///   result now counts only for the job of its uid.
///
/// Both were found under fault model 1 and replay under it (model 2's
/// own streams change 15827's run so that it no longer meets the bug).
#[test]
fn actor_panics_mid_job_regression_seeds_settle() {
    for seed in [10211, 15827] {
        let report = run(ChaosConfig {
            keep_events: true,
            fault_model: 1,
            ..ChaosConfig::for_seed(seed, None, None)
        });
        assert_settled(&report);
        let events = report.all.unwrap_or_default();
        assert!(
            events
                .iter()
                .any(|e| e.contains("Actor panicked") || e.contains("WorkerPool panicked")),
            "seed {seed} still panics an actor: {events:?}"
        );
    }
}

/// The disarm hole the harness found (fault model 2's disarm windows): a
/// disarmed LRM released its agent lock while its services ran on
/// unwatched; a node cut off after the `arm-ha`, before it took its lock
/// back, had its free lock taken by the master, which counted it fenced
/// and started its services elsewhere while they still ran. The lock is
/// now held without expiry through the disarm, and a node to be fenced
/// that holds it so fences itself. Regression seeds: shared 110, Raft 145
/// (each the first of its mode): caught with the old behaviour
/// (`release-on-disarm`), settled without it. The fence-acknowledged
/// checker now catches it at the master's take of the released lock, a
/// step before the start elsewhere that the fence-before-recover checker
/// caught first.
#[test]
fn releasing_the_agent_lock_on_disarm_is_caught_and_fixed() {
    let shared = ChaosConfig::for_seed(110, None, None);
    let raft_145 = ChaosConfig {
        store: hactor::sim::chaos::StoreKind::Raft,
        ..ChaosConfig::for_seed(145, None, None)
    };
    for config in [shared, raft_145] {
        let broken = run(ChaosConfig {
            sabotage: Some(Sabotage::ReleaseOnDisarm),
            ..config.clone()
        });
        match &broken.outcome {
            Outcome::Violation(what) => assert!(
                what.starts_with("fence acknowledged: ") && what.contains("which released it, still runs services"),
                "{what}"
            ),
            Outcome::Settled => panic!("release-on-disarm not caught: {}", broken.replay_command()),
        }
        assert!(
            broken.tail.iter().any(|e| e.contains("operator: arm-ha")),
            "{:?}",
            broken.tail
        );
        let fixed = run(ChaosConfig {
            keep_events: true,
            ..config
        });
        assert_settled(&fixed);
    }
}

/// Fault model 2 in Raft mode: a seed with drifting clocks, a disarm
/// window, a full disk (the member's core stops, the daemon exits, its
/// watchdog resets the node, the next start fails again until the disk
/// heals) and torn last writes cut off at the next start settles, and
/// replays exactly.
#[test]
fn raft_mode_survives_drift_disarm_a_full_disk_and_torn_writes() {
    let config = ChaosConfig {
        store: hactor::sim::chaos::StoreKind::Raft,
        keep_events: true,
        ..ChaosConfig::for_seed(172, None, None)
    };
    assert_settles_with_and_replays(
        config,
        &[
            "clocks drift: ",
            "operator: disarm-ha ",
            "operator: arm-ha",
            "disk full (ENOSPC, short writes)",
            "daemon exits: the Raft core stopped",
            "its log's last write torn",
            "disk healed",
        ],
    );
}

/// `config`'s run settles, its journal has a line containing each of
/// `expected`, and a second run gives the same hash.
fn assert_settles_with_and_replays(config: ChaosConfig, expected: &[&str]) {
    let report = run(config.clone());
    assert_settled(&report);
    let events = report.all.clone().unwrap_or_default();
    for expected in expected {
        assert!(events.iter().any(|e| e.contains(expected)), "{expected} in {events:#?}");
    }
    assert_eq!(run(config).hash, report.hash, "replays exactly");
}

/// Fault model 3: a fifth of the seeds run upstream's timings (`pve`:
/// 120 s leases, 10 s rounds) with the faults ten times as spread out.
/// Its runs must bite as the `fast` ones do, and run the real failover.
#[test]
fn the_pve_profile_runs_its_faults_at_its_own_pace_and_its_checkers_bite() {
    let pve = |seed| ChaosConfig {
        profile: Some(Profile::Pve),
        ..ChaosConfig::for_seed(seed, None, None)
    };
    for (sabotage, kind) in [
        // As under `fast`: the master takes the lock of a node still
        // running services, and the store-side checker sees it first.
        (Sabotage::PetWithoutRenewal, "fence acknowledged: "),
        (Sabotage::KeepFirstEpochs, "fencing token: "),
    ] {
        let caught = (1..=5).find_map(|seed| {
            match run(ChaosConfig {
                sabotage: Some(sabotage),
                ..pve(seed)
            })
            .outcome
            {
                Outcome::Violation(what) => Some((seed, what)),
                Outcome::Settled => None,
            }
        });
        let (seed, what) = caught.unwrap_or_else(|| panic!("{sabotage:?} not caught under pve in 5 seeds"));
        println!("pve: {sabotage:?} caught at seed {seed}: {what}");
        assert!(what.starts_with(kind), "{what}");
    }
    // Seed 9 draws pve itself; its run fences a node and recovers its
    // services (upstream's failover: the lease, then the fence delay).
    let report = run(ChaosConfig {
        keep_events: true,
        ..ChaosConfig::for_seed(9, None, None)
    });
    assert_settled(&report);
    assert_eq!(report.profile, Profile::Pve);
    assert!(!report.replay_command().contains("--profile"), "drawn, not forced");
    assert!(report.virtual_ms >= 600_000, "a ten times longer fault phase");
    let events = report.all.unwrap_or_default();
    assert!(
        events.iter().any(|e| e.contains("watchdog fired")),
        "a node is fenced: {events:?}"
    );
    // And over the daemon's Raft store (1 s heartbeats, 5 s elections).
    assert_settled(&run(ChaosConfig {
        profile: Some(Profile::Pve),
        ..raft(2)
    }));
}

/// A real bug the Raft mode found (seed 336; fixed in `core::manager`):
/// node1 was master at 36.213 s, lost the manager lock, and was master
/// again at 36.858 s. Both terms numbered their commands from 1 within
/// the same second, so the relocation of `sim:svc1` got the uid of an
/// earlier term's start of `sim:svc2`, whose result the master took for
/// the relocation's: it moved `sim:svc1` to node4 (down), fenced and
/// recovered it on node3 while it still ran on node2. Uids now carry the
/// term's start in ms, and a result counts only for the service it names.
#[test]
fn a_uid_reused_by_a_new_master_term_regression_seed_settles() {
    assert_raft_seed_settles(336);
}

/// A real bug the 10 000-seed Raft batch found (seed 5583; fixed in
/// `core::lrm`): the cluster was disarmed (`ignore`) and armed again
/// while node4's outbound links were cut, so node4, to be fenced, still
/// held its agent lock unwatched. Once its links healed it took the lock
/// back under an ordinary lease to fence itself, and the store answered
/// "not quorate" though the take had committed. The round was discarded
/// with the LRM, the watchdog (armed only on a granted take) never was,
/// and at 58.2 s the master took the expired lock as a fence
/// acknowledged while node4 still ran three services that nothing would
/// reset. The watchdog is now armed a round before such a take, whatever
/// the store answers: node4's fires at 57.9 s.
#[test]
fn a_take_back_from_an_unwatched_hold_whose_answer_is_lost_regression_seed_settles() {
    assert_raft_seed_settles(5583);
}

/// A Raft-mode regression seed (its shape drawn from it) settles, under
/// fault model 3, the one it was found under: a later model's faults
/// would run it another way.
fn assert_raft_seed_settles(seed: u64) {
    assert_settled(&run(ChaosConfig {
        store: hactor::sim::chaos::StoreKind::Raft,
        fault_model: 3,
        ..ChaosConfig::for_seed(seed, None, None)
    }));
}

/// The harness's own false alarm (Raft seed 5380, `pve`): node1 restarted
/// while its disk was full, and openraft's start cut its log back, a
/// write that failed with `ENOSPC`. That is the fail stop of a failed
/// write, as at any later write, not a refusal of intact files.
#[test]
fn an_open_that_fails_on_a_full_disk_is_a_fail_stop_not_a_refusal() {
    assert_raft_seed_settles(5380);
}

/// A real bug the 10 000-seed Raft batch found (seed 5577, older than
/// the batch): at `disarm-ha freeze` node2's LRM held its agent lock
/// unwatched and closed its watchdog in one round, which the store
/// refused as not quorate. The close stood, the hold did not: the lock
/// kept its lease, which ran out, and node3 took it as a fence
/// acknowledged while node2 ran its services unwatched. The close now
/// stands only if the hold did (`core::store::outcome`).
#[test]
fn a_disarm_whose_hold_is_refused_keeps_its_watchdog_regression_seed_settles() {
    assert_raft_seed_settles(5577);
}

/// Raft seed 8681 (3 nodes, 5 services): node1, the Raft leader, crashed
/// with a torn last write and came back with a commit index below the
/// seed of the resources (the log's commit record lags the commits, see
/// `net::raft::log_store`). Its replica showed no resources, so it seeded
/// them again as first declared, which put the services the recovery had
/// moved off node1 back on it; at `arm-ha` the master took that as an
/// edit made while disarmed and started `sim:svc0` on node1 while it ran
/// on node3. The seed now commits only into a store without resources
/// (`Op::ExpectNoResources`), as the daemon's does.
#[test]
fn a_seed_decided_from_a_replica_behind_regression_seed_settles() {
    assert_raft_seed_settles(8681);
}

/// Fault model 4: a slow disk. Raft seed 657 (3 nodes, 6 services) slows
/// node1's disk to 1.38 s a write while node1's watchdog resets it twice;
/// its member's core, in line behind its writes, then outlived the crash
/// by seconds. That once overlapped the next incarnation and, when its
/// shutdown ended, closed the new incarnation's endpoint (a harness
/// fault: node1 stayed unreachable and the liveness checker fired). A
/// crashed incarnation's write now ends with it and nothing it did not
/// finish lands (`DiskFaults::crash`), and a late close leaves a later
/// incarnation's server alone. The seed settles and replays exactly.
#[test]
fn a_slow_disk_under_crashes_settles_and_replays() {
    let config = ChaosConfig {
        store: hactor::sim::chaos::StoreKind::Raft,
        keep_events: true,
        ..ChaosConfig::for_seed(657, Some(3), Some(6))
    };
    assert_settles_with_and_replays(
        config,
        &[
            "disk slow (every write takes 1380 ms)",
            "disk fast again",
            "node1 watchdog fired",
        ],
    );
}

/// A real bug the slow disk's first 10 000 seeds found (Raft seed 3510,
/// 4 nodes, 8 services, fault model 4; fixed in `actors::round`): the
/// LRM that relocated `sim:svc0` from node2 to node4 sent the move of its
/// home node to the store and forgot it, and reported the relocation
/// done. The write was lost, so the store kept node2. At `arm-ha` the
/// master took node2 for an edit made while disarmed ("updating node
/// 'node4' => 'node2'"), relocated the service from node2 to node3 and
/// started it there while it ran on node4. The move is now retried until
/// the store answers, conditional on the old node, and the result is
/// reported only after it.
#[test]
fn a_lost_move_after_a_relocation_regression_seed_settles() {
    assert_settled(&run(ChaosConfig {
        store: hactor::sim::chaos::StoreKind::Raft,
        ..ChaosConfig::for_seed(3510, None, None)
    }));
}
