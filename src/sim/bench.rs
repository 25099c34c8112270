//! Benchmark of one master round at scale: builds a cluster of `nodes`
//! nodes and `services` services in memory and times the CRM round, both a
//! steady round (every service already running where it belongs) and a
//! placement round (every service starting with rebalance-on-start, so each
//! one is scored against every node).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::core::env::DatacenterSettings;
use crate::core::manager::Manager;
use crate::core::status::{ManagerStatus, ResourceConfig, ServiceStatus};
use crate::core::types::{NodeState, RequestState, ServiceState};
use crate::core::usage::CrsMode;

use super::scenario::{Daemon, GuestStats, NodeHardware, Scenario};
use super::world::{SimEnv, World};

/// Timings of one benchmark configuration.
#[derive(Debug, Clone)]
pub struct RoundTimings {
    pub mode: CrsMode,
    pub nodes: usize,
    pub services: usize,
    /// Median of the measured steady rounds.
    pub steady: Duration,
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
/// round does the same work; returns the median.
fn time_rounds(scenario: &Scenario, rounds: usize) -> Duration {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut world = World::new(scenario);
        let mut env = SimEnv {
            world: &mut world,
            node: "node1".into(),
            daemon: Daemon::Crm,
        };
        let mut manager = Manager::new(&mut env, scenario.manager_status.clone());
        let started = Instant::now();
        manager.manage(&mut env).expect("the benchmark world has no faults");
        samples.push(started.elapsed());
    }
    samples.sort();
    samples[samples.len() / 2]
}

/// Times steady and placement rounds for one configuration.
pub fn bench_round(mode: CrsMode, nodes: usize, services: usize, rounds: usize) -> RoundTimings {
    let steady = time_rounds(&scenario(mode, nodes, services, false), rounds);
    let placement = time_rounds(&scenario(mode, nodes, services, true), rounds);
    RoundTimings {
        mode,
        nodes,
        services,
        steady,
        placement,
    }
}
