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
        "double run: ",
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

    let broken = hactor_sim(&["chaos", "--seed", "1", "--pet-without-renewal"]);
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert!(!broken.status.success(), "a violation fails the command: {stdout}");
    assert!(stdout.contains("VIOLATION double run: "), "{stdout}");
    assert!(
        stdout.contains("replay: hactor-sim chaos --seed 1 --nodes "),
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
    // Seed 10189 restarts a node in the step the run ends in: its actors,
    // never polled, used to run `started` while the runtime was dropped
    // ("there is no reactor running").
    let output = hactor_sim(&["chaos", "--seed", "10189"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{output:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
