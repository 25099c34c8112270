//! Benchmark of one master round at scale: builds a cluster of `nodes`
//! nodes and `services` services in memory and times the CRM round, both a
//! steady round (every service already running where it belongs, the
//! master's second round: a master runs round after round, and its first
//! builds the usage tables the later ones keep) and a placement round
//! (every service starting with rebalance-on-start, so each one is scored
//! against every node). The steady first round is timed too.
//!
//! [`bench_scenario`] times a whole simulated scenario at scale: `services`
//! services on `nodes` nodes are powered on, the last node's network fails,
//! the master fences it and recovers its services elsewhere.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::core::env::DatacenterSettings;
use crate::core::manager::Manager;
use crate::core::status::{ManagerStatus, ResourceConfig, ServiceStatus};
use crate::core::types::{NodeState, RequestState, ServiceState};
use crate::core::usage::CrsMode;

use super::run::{SimError, Simulator};
use super::scenario::{CmdEntry, Daemon, GuestStats, NodeHardware, Scenario, parse_command};
use super::world::{SimEnv, World};

/// Timings of one benchmark configuration.
#[derive(Debug, Clone)]
pub struct RoundTimings {
    pub mode: CrsMode,
    pub nodes: usize,
    pub services: usize,
    /// Median of the measured steady rounds (a master's second round).
    pub steady: Duration,
    /// Median of the steady rounds of a new master (its first round).
    pub first: Duration,
    /// Median of the measured placement rounds.
    pub placement: Duration,
}

/// A deterministic pseudo-random sequence (no seeding from the clock).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn scenario(mode: CrsMode, nodes: usize, services: usize, placing: bool) -> Scenario {
    let mut rng = Lcg(42);
    let names: Vec<String> = (1..=nodes).map(|i| format!("node{i}")).collect();
    let hardware = names
        .iter()
        .map(|n| {
            let hw = NodeHardware {
                power: true,
                network: true,
                maxcpu: Some(64.0),
                maxmem: Some(512.0 * 1024.0 * 1024.0 * 1024.0),
                version: None,
            };
            (n.clone(), hw)
        })
        .collect();
    let mut config = BTreeMap::new();
    let mut status = ManagerStatus {
        master_node: Some("node1".into()),
        node_status: names.iter().map(|n| (n.clone(), NodeState::Online)).collect(),
        ..ManagerStatus::default()
    };
    let mut stats = BTreeMap::new();
    let mut running: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for i in 0..services {
        let sid = format!("vm:{}", 1000 + i);
        let node = &names[i % nodes];
        config.insert(sid.clone(), ResourceConfig::new(node, RequestState::Started));
        let state = if placing {
            ServiceState::RequestStart
        } else {
            ServiceState::Started
        };
        let mut sd = ServiceStatus::new(state, node, format!("uid-{i}"));
        sd.running = !placing;
        status.service_status.insert(sid.clone(), sd);
        let cores = 1 + rng.next() % 8;
        let mem_gib = 1 + rng.next() % 16;
        let (maxcpu, maxmem) = (cores as f64, (mem_gib << 30) as f64);
        let guest = GuestStats {
            maxcpu: Some(maxcpu),
            maxmem: Some(maxmem),
            cpu: Some(maxcpu / 2.0),
            mem: Some(maxmem / 2.0),
        };
        stats.insert(sid.clone(), guest);
        running.entry(node.clone()).or_default().insert(sid, !placing);
    }
    Scenario {
        cmdlist: Vec::new(),
        hardware,
        manager_status: status,
        services: config,
        groups: BTreeMap::new(),
        rules: Vec::new(),
        datacenter: DatacenterSettings {
            crs_mode: mode,
            rebalance_on_start: true,
            ..DatacenterSettings::default()
        },
        stats,
        running,
    }
}

/// Times `rounds` master rounds (`Manager::manage`, the CRM's work while
/// master), each on a fresh copy of the prepared world so every measured
/// round does the same work; returns the median. With `warm`, the timed
/// round is the master's second (the first runs untimed).
fn time_rounds(scenario: &Scenario, rounds: usize, warm: bool) -> Duration {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut world = World::new(scenario);
        let mut env = SimEnv {
            world: &mut world,
            node: "node1".into(),
            daemon: Daemon::Crm,
        };
        let mut manager = Manager::new(&mut env, scenario.manager_status.clone());
        if warm {
            manager.manage(&mut env).expect("the benchmark world has no faults");
        }
        let started = Instant::now();
        manager.manage(&mut env).expect("the benchmark world has no faults");
        samples.push(started.elapsed());
    }
    samples.sort();
    samples[samples.len() / 2]
}

/// Times steady and placement rounds for one configuration.
pub fn bench_round(mode: CrsMode, nodes: usize, services: usize, rounds: usize) -> RoundTimings {
    let steady_world = scenario(mode, nodes, services, false);
    let steady = time_rounds(&steady_world, rounds, true);
    let first = time_rounds(&steady_world, rounds, false);
    let placement = time_rounds(&scenario(mode, nodes, services, true), rounds, false);
    RoundTimings {
        mode,
        nodes,
        services,
        steady,
        first,
        placement,
    }
}

/// The outcome of one [`bench_scenario`] run.
#[derive(Debug, Clone)]
pub struct ScenarioTiming {
    pub nodes: usize,
    pub services: usize,
    /// Wall time of the simulation (building the scenario excluded).
    pub elapsed: Duration,
    /// Virtual seconds simulated.
    pub sim_secs: i64,
    /// Log lines written.
    pub log_lines: usize,
    /// Services `started` at the end, and how many of those on a node
    /// other than the failed one (all of them, when recovery worked).
    pub started: usize,
    pub started_elsewhere: usize,
}

/// `services` services spread round-robin over `nodes` nodes (powered off
/// at first), scheduled with `mode` (`basic`, `static` or `dynamic`); the
/// cmdlist powers every node on, then cuts the last node's network, so the
/// master fences it and recovers its services.
pub fn scale_scenario(mode: CrsMode, nodes: usize, services: usize) -> Scenario {
    let mut rng = Lcg(7);
    let names: Vec<String> = (1..=nodes).map(|i| format!("node{i}")).collect();
    let hardware: BTreeMap<String, NodeHardware> = names
        .iter()
        .map(|n| {
            let hw = NodeHardware {
                power: false,
                network: false,
                maxcpu: Some(64.0),
                maxmem: Some(512.0 * 1024.0 * 1024.0 * 1024.0),
                version: None,
            };
            (n.clone(), hw)
        })
        .collect();
    let mut config = BTreeMap::new();
    let mut stats = BTreeMap::new();
    for i in 0..services {
        let sid = format!("vm:{}", 1000 + i);
        config.insert(
            sid.clone(),
            ResourceConfig::new(&names[i % nodes], RequestState::Started),
        );
        let cores = 1 + rng.next() % 4;
        let mem_gib = 1 + rng.next() % 8;
        let (maxcpu, maxmem) = (cores as f64, (mem_gib << 30) as f64);
        let guest = GuestStats {
            maxcpu: Some(maxcpu),
            maxmem: Some(maxmem),
            cpu: Some(maxcpu / 2.0),
            mem: Some(maxmem / 2.0),
        };
        stats.insert(sid, guest);
    }
    let victim = names.last().expect("at least one node");
    let batches = [
        names.iter().map(|n| format!("power {n} on")).collect::<Vec<_>>(),
        vec![format!("network {victim} off")],
    ];
    let cmdlist = batches
        .iter()
        .map(|batch| {
            batch
                .iter()
                .map(|text| CmdEntry {
                    text: text.clone(),
                    command: parse_command(text, &hardware).expect("generated commands are valid"),
                })
                .collect()
        })
        .collect();
    Scenario {
        cmdlist,
        hardware,
        manager_status: ManagerStatus::default(),
        services: config,
        groups: BTreeMap::new(),
        rules: Vec::new(),
        datacenter: DatacenterSettings {
            crs_mode: mode,
            ..DatacenterSettings::default()
        },
        stats,
        running: BTreeMap::new(),
    }
}

/// Simulates [`scale_scenario`] to its end and times it.
pub fn bench_scenario(mode: CrsMode, nodes: usize, services: usize) -> Result<ScenarioTiming, SimError> {
    let scenario = scale_scenario(mode, nodes, services);
    let victim = format!("node{nodes}");
    let mut sim = Simulator::new(scenario);
    let started = Instant::now();
    sim.run()?;
    let elapsed = started.elapsed();
    let world = sim.world();
    let running: Vec<&ServiceStatus> = world
        .store
        .manager_status
        .service_status
        .values()
        .filter(|sd| sd.state == ServiceState::Started)
        .collect();
    Ok(ScenarioTiming {
        nodes,
        services,
        elapsed,
        sim_secs: world.now,
        log_lines: world.log.len(),
        started: running.len(),
        started_elsewhere: running.iter().filter(|sd| sd.node != victim).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_scenario_recovers_every_service_of_the_failed_node() {
        let t = bench_scenario(CrsMode::Static, 4, 40).expect("the scenario runs");
        assert_eq!(t.started, 40);
        assert_eq!(t.started_elsewhere, 40);
        assert!(t.log_lines > 40, "{} log lines", t.log_lines);
    }
}
