//! The actor-level seeded harness (`hactor::sim::chaos`): a batch of
//! seeds with every checker on and no violation, a seed replaying to the
//! same event hash, and a deliberate safety bug being caught.

use std::time::Instant;

use hactor::actors::round::Sabotage;
use hactor::sim::chaos::{self, ChaosConfig, Outcome, Report};

fn run(config: ChaosConfig) -> Report {
    chaos::run(config).expect("the harness runs")
}

#[test]
fn a_batch_of_seeds_runs_without_violations() {
    let started = Instant::now();
    let mut virtual_ms = 0;
    let seeds = 1..=24;
    for seed in seeds.clone() {
        let report = run(ChaosConfig::for_seed(seed, None, None));
        assert_eq!(
            report.outcome,
            Outcome::Settled,
            "replay: {}\nlast events:\n{}",
            report.replay_command(),
            report.tail.join("\n")
        );
        assert!(report.events > report.nodes as u64, "the journal records the run");
        virtual_ms += report.virtual_ms;
    }
    let wall = started.elapsed().as_secs_f64();
    let count = seeds.count() as f64;
    // A figure, not an assertion: debug build on a shared machine.
    println!(
        "chaos: {count} seeds, {:.0} simulated s in {wall:.1} s wall: {:.0} simulated s per wall s, {:.0} seeds per minute",
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
        "fence before recover: ",
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

    let broken = hactor_sim(&["chaos", "--seed", "4", "--pet-without-renewal"]);
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert!(!broken.status.success(), "a violation fails the command: {stdout}");
    assert!(stdout.contains("VIOLATION fence before recover: "), "{stdout}");
    assert!(
        stdout.contains("replay: hactor-sim chaos --seed 4 --nodes ")
            && stdout.contains(" --sabotage pet-without-renewal"),
        "{stdout}"
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
    // Seed 10036 restarts a node in the step the run ends in (seed 10189
    // did before the fault stream changed): its actors, never polled,
    // used to run `started` while the runtime was dropped ("there is no
    // reactor running").
    let output = hactor_sim(&["chaos", "--seed", "10036", "--verbose"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{output:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
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
    let output = hactor_sim(&["chaos", "--seed", "1", "--sabotage", "restart-old-services", "--shrink"]);
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

/// The Raft mode: every node's store is the daemon's own Raft member
/// (openraft, log and state machine on files) over the seeded in-process
/// network. A few seeds with every checker and the replica agreement.
/// Not asserted: an exact replay. Two runs of a seed may still part ways
/// where two tasks finish in the same virtual instant (seen: seed 2 gives
/// one of two hashes); the source of that order is not found yet (see
/// `src/sim/chaos/README.md`).
#[test]
fn raft_mode_seeds_settle() {
    use hactor::sim::chaos::StoreKind;
    let raft = |seed| ChaosConfig {
        store: StoreKind::Raft,
        ..ChaosConfig::for_seed(seed, Some(3), Some(4))
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
}

/// In Raft mode too, a cut node that keeps petting its watchdog is caught.
#[test]
fn raft_mode_catches_petting_without_a_renewal() {
    use hactor::sim::chaos::StoreKind;
    let caught = (1..=6).find_map(|seed| {
        let report = run(ChaosConfig {
            store: StoreKind::Raft,
            sabotage: Some(Sabotage::PetWithoutRenewal),
            ..ChaosConfig::for_seed(seed, Some(3), Some(4))
        });
        match report.outcome {
            Outcome::Violation(what) => Some((seed, what)),
            Outcome::Settled => None,
        }
    });
    let (seed, what) = caught.expect("PetWithoutRenewal not caught in Raft mode within 6 seeds");
    println!("caught at seed {seed}: {what}");
}
