//! Node usage models for placement (spec §5.5, §5.7, §5.8): `basic`
//! (service counts), `static` (configured maximum CPU and memory) and
//! `dynamic` (measured usage), TOPSIS scoring and the load imbalance used
//! by auto-rebalancing.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::status::ServiceStatus;
use super::types::{NodeName, ServiceState};

/// Which usage model the cluster resource scheduler uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrsMode {
    Basic,
    Static,
    Dynamic,
}

impl CrsMode {
    pub fn parse(text: &str) -> Option<CrsMode> {
        match text {
            "basic" => Some(CrsMode::Basic),
            "static" => Some(CrsMode::Static),
            "dynamic" => Some(CrsMode::Dynamic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CrsMode::Basic => "basic",
            CrsMode::Static => "static",
            CrsMode::Dynamic => "dynamic",
        }
    }
}

/// Capacity and current usage of a node (CPU in cores, memory in bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeStats {
    pub cpu: f64,
    pub maxcpu: f64,
    pub mem: f64,
    pub maxmem: f64,
}

impl NodeStats {
    /// Adds a service as if it had just started: its maximum values count
    /// (`maxcpu == 0` means "may use the whole node").
    fn add_started(&mut self, s: &ResourceStats) {
        self.cpu += if s.maxcpu == 0.0 {
            self.maxcpu
        } else {
            s.maxcpu
        };
        self.mem += s.maxmem;
    }

    fn add_running(&mut self, s: &ResourceStats) {
        self.cpu += s.cpu;
        self.mem += s.mem;
    }

    fn remove_running(&mut self, s: &ResourceStats) {
        self.cpu = (self.cpu - s.cpu).max(0.0);
        self.mem = (self.mem - s.mem).max(0.0);
    }

    fn cpu_load(&self) -> f64 {
        self.cpu / self.maxcpu
    }

    fn mem_load(&self) -> f64 {
        self.mem / self.maxmem
    }

    fn load(&self) -> f64 {
        (self.cpu_load() + self.mem_load()) / 2.0
    }
}

/// Usage of one service: measured (`cpu`, `mem`) and maximum values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResourceStats {
    pub cpu: f64,
    pub maxcpu: f64,
    pub mem: f64,
    pub maxmem: f64,
    /// The node measurements already include this service's usage.
    pub measured_running: bool,
}

impl std::ops::Add for ResourceStats {
    type Output = ResourceStats;
    fn add(self, o: ResourceStats) -> ResourceStats {
        ResourceStats {
            cpu: self.cpu + o.cpu,
            maxcpu: self.maxcpu + o.maxcpu,
            mem: self.mem + o.mem,
            maxmem: self.maxmem + o.maxmem,
            measured_running: self.measured_running && o.measured_running,
        }
    }
}

/// Where a service puts load.
#[derive(Debug, Clone, Default, PartialEq)]
struct Placement {
    current: Option<NodeName>,
    target: Option<NodeName>,
    /// Confirmed running (dynamic mode counts the others at their maximum).
    running: bool,
}

/// A possible rebalancing move of a bundle led by `sid`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Migration {
    pub sid: String,
    pub source: NodeName,
    pub target: NodeName,
}

/// A candidate move with the usage it would shift.
#[derive(Debug, Clone)]
pub struct MigrationCandidate {
    pub migration: Migration,
    pub stats: ResourceStats,
}

/// How auto-rebalance ranks candidate moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceMethod {
    /// The move with the lowest resulting imbalance.
    Bruteforce,
    /// The move ranked best by TOPSIS over the post-move node loads.
    Topsis,
}

/// Usage of the online nodes, kept current by every service state change.
#[derive(Debug, Clone)]
pub struct Usage {
    mode: CrsMode,
    /// Base stats per online node (dynamic: measured usage; static: empty).
    nodes: BTreeMap<NodeName, NodeStats>,
    /// Services counted per node (the `basic` model, and the fallback).
    counts: BTreeMap<NodeName, i64>,
    services: BTreeMap<String, Placement>,
    stats: BTreeMap<String, ResourceStats>,
}

impl Default for Usage {
    fn default() -> Self {
        Usage::basic(&[])
    }
}

/// TOPSIS criteria weights: average CPU, highest CPU, average memory,
/// highest memory; all minimised.
const CRITERIA_WEIGHTS: [f64; 4] = [1.0, 2.0, 5.0, 10.0];

impl Usage {
    /// Service counts only.
    pub fn basic(online: &[NodeName]) -> Usage {
        Usage {
            mode: CrsMode::Basic,
            nodes: online
                .iter()
                .map(|n| (n.clone(), NodeStats::default()))
                .collect(),
            counts: online.iter().map(|n| (n.clone(), 0)).collect(),
            services: BTreeMap::new(),
            stats: BTreeMap::new(),
        }
    }

    /// A resource-aware model; `nodes` holds every online node's stats and
    /// `stats` every service's.
    pub fn scheduled(
        mode: CrsMode,
        nodes: BTreeMap<NodeName, NodeStats>,
        stats: BTreeMap<String, ResourceStats>,
    ) -> Usage {
        let counts = nodes.keys().map(|n| (n.clone(), 0)).collect();
        Usage {
            mode,
            nodes,
            counts,
            services: BTreeMap::new(),
            stats,
        }
    }

    pub fn mode(&self) -> CrsMode {
        self.mode
    }

    pub fn online_nodes(&self) -> BTreeSet<NodeName> {
        self.nodes.keys().cloned().collect()
    }

    /// Re-accounts one service from its current status.
    pub fn set_service(&mut self, sid: &str, sd: &ServiceStatus) {
        self.remove_service(sid);
        let (current, target) = used_service_nodes(&self.online_nodes(), sd);
        if current.is_none() && target.is_none() {
            return;
        }
        for node in current.iter().chain(target.iter()) {
            *self.counts.entry(node.clone()).or_default() += 1;
        }
        // A service counts as running when the master saw it confirmed, or
        // when the measurements already include it; otherwise (dynamic
        // model) it is still starting and counts at its maximum.
        let measured = self.stats.get(sid).is_some_and(|s| s.measured_running);
        let running = if sd.state == ServiceState::Started {
            sd.running || measured
        } else {
            current.is_some()
        };
        self.services.insert(
            sid.to_string(),
            Placement {
                current,
                target,
                running,
            },
        );
    }

    pub fn remove_service(&mut self, sid: &str) {
        if let Some(p) = self.services.remove(sid) {
            for node in p.current.iter().chain(p.target.iter()) {
                if let Some(count) = self.counts.get_mut(node) {
                    *count -= 1;
                }
            }
        }
    }

    fn service_stats(&self, sid: &str) -> ResourceStats {
        self.stats.get(sid).copied().unwrap_or_default()
    }

    /// Node stats with the services placed on them, as the scheduler sees
    /// them: static counts every placed service at its maximum; dynamic
    /// adds only those not yet confirmed running or moving in.
    fn aggregated(&self) -> BTreeMap<NodeName, NodeStats> {
        let mut nodes = self.nodes.clone();
        for (sid, p) in &self.services {
            let s = self.service_stats(sid);
            match self.mode {
                CrsMode::Basic => {}
                CrsMode::Static => {
                    for node in p.current.iter().chain(p.target.iter()) {
                        if let Some(n) = nodes.get_mut(node) {
                            n.add_started(&s);
                        }
                    }
                }
                CrsMode::Dynamic => {
                    let starting = p.current.as_ref().filter(|_| !p.running);
                    for node in starting.into_iter().chain(p.target.iter()) {
                        if let Some(n) = nodes.get_mut(node) {
                            n.add_started(&s);
                        }
                    }
                }
            }
        }
        nodes
    }

    /// Scores every online node for starting `sid`; lower is better.
    /// `Err` carries why resource scoring failed (the caller logs it and
    /// falls back to [`Usage::counts`]).
    pub fn score_nodes_to_start(&self, sid: &str) -> Result<BTreeMap<NodeName, f64>, String> {
        if self.mode == CrsMode::Basic {
            return Ok(self.counts());
        }
        let service = self.service_stats(sid);
        let nodes = self.aggregated();
        let names: Vec<&NodeName> = nodes.keys().collect();
        let matrix: Vec<[f64; 4]> = names
            .iter()
            .map(|candidate| {
                criteria(nodes.iter().map(|(name, stats)| {
                    let mut stats = *stats;
                    if name == *candidate {
                        stats.add_started(&service);
                    }
                    stats
                }))
            })
            .collect();
        let scores = topsis_scores(&matrix)?;
        Ok(names
            .into_iter()
            .cloned()
            .zip(scores.into_iter().map(|s| -s))
            .collect())
    }

    /// Service counts per node as scores.
    pub fn counts(&self) -> BTreeMap<NodeName, f64> {
        self.counts
            .iter()
            .map(|(n, c)| (n.clone(), *c as f64))
            .collect()
    }

    /// Coefficient of variation of the node loads (population standard
    /// deviation over mean, not normalised; matches upstream's figures).
    pub fn imbalance(&self) -> f64 {
        imbalance_of(self.aggregated().values().map(NodeStats::load))
    }

    /// The usage a service moves when it migrates while running.
    pub fn running_stats(&self, sid: &str) -> ResourceStats {
        let s = self.service_stats(sid);
        match self.mode {
            CrsMode::Dynamic => s,
            _ => ResourceStats {
                cpu: s.maxcpu,
                mem: s.maxmem,
                ..s
            },
        }
    }

    /// The best rebalancing move and the imbalance expected after it.
    pub fn best_migration(
        &self,
        candidates: &[MigrationCandidate],
        method: RebalanceMethod,
    ) -> Result<Option<(Migration, f64)>, String> {
        let nodes = self.aggregated();
        let moved = |c: &MigrationCandidate| -> Vec<NodeStats> {
            nodes
                .iter()
                .map(|(name, stats)| {
                    let mut stats = *stats;
                    if *name == c.migration.source {
                        stats.remove_running(&c.stats);
                    } else if *name == c.migration.target {
                        stats.add_running(&c.stats);
                    }
                    stats
                })
                .collect()
        };
        let imbalance_after =
            |c: &MigrationCandidate| truncate(imbalance_of(moved(c).iter().map(NodeStats::load)));
        match method {
            RebalanceMethod::Bruteforce => Ok(candidates
                .iter()
                .map(|c| (c.migration.clone(), imbalance_after(c)))
                .min_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)))),
            RebalanceMethod::Topsis => {
                if candidates.is_empty() {
                    return Ok(None);
                }
                let matrix: Vec<[f64; 4]> = candidates
                    .iter()
                    .map(|c| criteria(moved(c).into_iter()))
                    .collect();
                let scores = topsis_scores(&matrix)?;
                let mut best = 0;
                for (i, score) in scores.iter().enumerate() {
                    if score.total_cmp(&scores[best]) == Ordering::Greater {
                        best = i;
                    }
                }
                let c = &candidates[best];
                Ok(Some((c.migration.clone(), imbalance_after(c))))
            }
        }
    }
}

/// Drops digits beyond f64's precision so near-equal imbalances compare
/// equal and ties fall back to the migration order.
fn truncate(value: f64) -> f64 {
    let factor = 10f64.powi(f64::DIGITS as i32);
    (factor * value).trunc() / factor
}

fn imbalance_of(loads: impl Iterator<Item = f64>) -> f64 {
    let loads: Vec<f64> = loads.collect();
    let sum: f64 = loads.iter().sum();
    if loads.is_empty() || sum == 0.0 {
        return 0.0;
    }
    let mean = sum / loads.len() as f64;
    let variance = loads.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / loads.len() as f64;
    variance.sqrt() / mean
}

/// The four TOPSIS criteria of a cluster state: `1 +` RMS and maximum of
/// the CPU loads, and the same for memory (the `1 +` keeps tiny loads from
/// looking hugely different).
fn criteria(nodes: impl Iterator<Item = NodeStats>) -> [f64; 4] {
    let (mut count, mut sq_cpu, mut max_cpu, mut sq_mem, mut max_mem) =
        (0.0, 0.0, 0.0f64, 0.0, 0.0f64);
    for n in nodes {
        let (cpu, mem) = (n.cpu_load(), n.mem_load());
        count += 1.0;
        sq_cpu += cpu * cpu;
        sq_mem += mem * mem;
        max_cpu = max_cpu.max(cpu);
        max_mem = max_mem.max(mem);
    }
    [
        1.0 + (sq_cpu / count).sqrt(),
        1.0 + max_cpu,
        1.0 + (sq_mem / count).sqrt(),
        1.0 + max_mem,
    ]
}

/// TOPSIS closeness of each alternative to the ideal (all criteria
/// minimised, weights normalised): 0..1, higher is better.
fn topsis_scores(matrix: &[[f64; 4]]) -> Result<Vec<f64>, String> {
    let total: f64 = CRITERIA_WEIGHTS.iter().sum();
    let weights: Vec<f64> = CRITERIA_WEIGHTS.iter().map(|w| w / total).collect();
    let mut normalised = matrix.to_vec();
    for j in 0..4 {
        let norm = matrix.iter().map(|row| row[j] * row[j]).sum::<f64>().sqrt();
        if norm != 0.0 {
            for row in normalised.iter_mut() {
                row[j] /= norm;
                if !row[j].is_finite() {
                    return Err(format!("criterion {j} got invalid value {}", row[j]));
                }
            }
        }
    }
    let mut best = [0.0; 4];
    let mut worst = [0.0; 4];
    for j in 0..4 {
        let column = normalised.iter().map(|row| row[j]);
        best[j] = column.clone().fold(f64::INFINITY, f64::min);
        worst[j] = column.fold(f64::NEG_INFINITY, f64::max);
    }
    let distance = |row: &[f64; 4], ideal: &[f64; 4]| -> f64 {
        (0..4)
            .map(|j| ((row[j] - ideal[j]) * weights[j]).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut scores = Vec::with_capacity(normalised.len());
    for row in &normalised {
        let (to_best, to_worst) = (distance(row, &best), distance(row, &worst));
        let score = if to_best + to_worst == 0.0 {
            0.0
        } else {
            to_worst / (to_best + to_worst)
        };
        if !score.is_finite() {
            return Err(format!("invalid score {score}"));
        }
        scores.push(score);
    }
    Ok(scores)
}

/// The nodes a service occupies: `(current, target)`, each only if online.
pub fn used_service_nodes(
    online: &BTreeSet<NodeName>,
    sd: &ServiceStatus,
) -> (Option<NodeName>, Option<NodeName>) {
    use ServiceState::*;
    let current = match sd.state {
        Started | RequestStop | Fence | Freeze | Error | Recovery | Migrate | Relocate => {
            online.contains(&sd.node).then(|| sd.node.clone())
        }
        _ => None,
    };
    let target = match sd.state {
        Migrate | Relocate | RequestStartBalance => {
            sd.target.clone().filter(|t| online.contains(t))
        }
        _ => None,
    };
    (current, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(cpu: f64, maxcpu: f64, mem: f64, maxmem: f64) -> NodeStats {
        NodeStats {
            cpu,
            maxcpu,
            mem,
            maxmem,
        }
    }

    #[test]
    fn imbalance_is_the_unnormalised_coefficient_of_variation() {
        let gib = (1u64 << 30) as f64;
        let mib = (1u64 << 20) as f64;
        let nodes = BTreeMap::from([
            (
                "node1".to_string(),
                node(1.7, 16.0, 12334.0 * mib, 64.0 * gib),
            ),
            (
                "node2".to_string(),
                node(15.184, 16.0, 529.0 * mib, 64.0 * gib),
            ),
            (
                "node3".to_string(),
                node(5.2, 16.0, 9381.0 * mib, 64.0 * gib),
            ),
        ]);
        let usage = Usage::scheduled(CrsMode::Dynamic, nodes, BTreeMap::new());
        assert!(
            (usage.imbalance() - 0.4893954724628247).abs() < 1e-12,
            "{}",
            usage.imbalance()
        );
    }

    #[test]
    fn static_scoring_prefers_the_node_with_most_room() {
        let nodes: BTreeMap<NodeName, NodeStats> =
            [("node1", 100e9), ("node2", 200e9), ("node3", 300e9)]
                .into_iter()
                .map(|(n, mem)| (n.to_string(), node(0.0, 32.0, 0.0, mem)))
                .collect();
        let stats = BTreeMap::from([(
            "vm:102".to_string(),
            ResourceStats {
                cpu: 2.0,
                maxcpu: 2.0,
                mem: 4e9,
                maxmem: 4e9,
                measured_running: false,
            },
        )]);
        let usage = Usage::scheduled(CrsMode::Static, nodes, stats);
        let scores = usage.score_nodes_to_start("vm:102").unwrap();
        assert!(
            scores["node3"] < scores["node2"] && scores["node2"] < scores["node1"],
            "{scores:?}"
        );
    }

    #[test]
    fn basic_scores_are_service_counts() {
        let online = vec!["node1".to_string(), "node2".to_string()];
        let mut usage = Usage::basic(&online);
        usage.set_service(
            "vm:1",
            &ServiceStatus::new(ServiceState::Started, "node1", "u".into()),
        );
        usage.set_service(
            "vm:2",
            &ServiceStatus::new(ServiceState::Stopped, "node2", "u".into()),
        );
        let scores = usage.score_nodes_to_start("vm:3").unwrap();
        assert_eq!(scores["node1"], 1.0);
        assert_eq!(scores["node2"], 0.0);
        usage.remove_service("vm:1");
        assert_eq!(usage.counts()["node1"], 0.0);
    }
}
