//! Node usage models for placement (spec §5.5, §5.7, §5.8): `basic`
//! (service counts), `static` (configured maximum CPU and memory) and
//! `dynamic` (measured usage), TOPSIS scoring and the load imbalance used
//! by auto-rebalancing.

use std::cmp::Ordering;
use std::collections::BTreeMap;

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
        self.cpu += if s.maxcpu == 0.0 { self.maxcpu } else { s.maxcpu };
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

    fn loads(&self) -> (f64, f64) {
        (self.cpu_load(), self.mem_load())
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

/// Where a service puts load: node indices into [`Usage`]'s tables.
#[derive(Debug, Clone, Default, PartialEq)]
struct Placement {
    current: Option<usize>,
    target: Option<usize>,
    /// Confirmed running (dynamic mode counts the others at their maximum).
    running: bool,
}

impl Placement {
    /// The nodes whose scheduler stats include this service at its maximum
    /// values: static counts every placed service so; dynamic only those
    /// still starting on their node or moving in.
    fn started_on(&self, mode: CrsMode) -> impl Iterator<Item = usize> + '_ {
        let current = match mode {
            CrsMode::Basic => None,
            CrsMode::Static => self.current,
            CrsMode::Dynamic => self.current.filter(|_| !self.running),
        };
        let target = if mode == CrsMode::Basic { None } else { self.target };
        current.into_iter().chain(target)
    }
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

/// One service counted at its maximum on a node, with the node's stats
/// summed up to and including it (in sid order).
#[derive(Debug, Clone)]
struct StartedEntry {
    sid: String,
    stats: ResourceStats,
    sum: NodeStats,
}

/// The services counted at their maximum on one node, sorted by sid, with
/// running sums; `stale` is the first entry whose `sum` needs recomputing.
#[derive(Debug, Clone, Default)]
struct StartedList {
    entries: Vec<StartedEntry>,
    stale: usize,
}

impl StartedList {
    fn insert(&mut self, sid: &str, stats: ResourceStats) {
        let found = match self.entries.last() {
            // the common case: services arrive in sid order
            Some(last) if last.sid.as_str() < sid => Err(self.entries.len()),
            None => Err(0),
            Some(_) => self.entries.binary_search_by(|e| e.sid.as_str().cmp(sid)),
        };
        match found {
            Ok(pos) => {
                self.entries[pos].stats = stats;
                self.stale = self.stale.min(pos);
            }
            Err(pos) => {
                let entry = StartedEntry {
                    sid: sid.to_string(),
                    stats,
                    sum: NodeStats::default(),
                };
                self.entries.insert(pos, entry);
                self.stale = self.stale.min(pos);
            }
        }
    }

    fn remove(&mut self, sid: &str) {
        if let Ok(pos) = self.entries.binary_search_by(|e| e.sid.as_str().cmp(sid)) {
            self.entries.remove(pos);
            self.stale = self.stale.min(pos);
        }
    }

    /// `base` plus every entry's maximum values, summed in sid order. Only
    /// the sums from the first changed entry on are recomputed; the fold is
    /// the same left-to-right one as a full re-sum, so the result is
    /// bit-identical to it.
    fn resum(&mut self, base: NodeStats) -> NodeStats {
        let start = self.stale.min(self.entries.len());
        let mut stats = match start {
            0 => base,
            _ => self.entries[start - 1].sum,
        };
        for entry in &mut self.entries[start..] {
            stats.add_started(&entry.stats);
            entry.sum = stats;
        }
        self.stale = self.entries.len();
        stats
    }
}

/// Usage of the online nodes, kept current by every service state change.
///
/// Nodes are addressed by index (sorted by name); each node's scheduler
/// stats are the sum of its services in sid order whenever one of them
/// changes (running sums make that cheap), so the figures never drift
/// from a full recomputation.
#[derive(Debug, Clone)]
pub struct Usage {
    mode: CrsMode,
    /// Online node names, sorted; positions are the node indices.
    names: Vec<NodeName>,
    index: BTreeMap<NodeName, usize>,
    /// Base stats per node (dynamic: measured usage; static: empty).
    base: Vec<NodeStats>,
    /// Base plus the services counted at their maximum values.
    aggregated: Vec<NodeStats>,
    /// Services counted per node (the `basic` model, and the fallback).
    counts: Vec<i64>,
    /// Services counted at their maximum on each node, with their stats,
    /// for re-summing.
    started: Vec<StartedList>,
    services: BTreeMap<String, Placement>,
    stats: BTreeMap<String, ResourceStats>,
}

/// TOPSIS criteria weights: average CPU, highest CPU, average memory,
/// highest memory; all minimised.
const CRITERIA_WEIGHTS: [f64; 4] = [1.0, 2.0, 5.0, 10.0];

impl Usage {
    /// Service counts only.
    pub fn basic(online: &[NodeName]) -> Usage {
        let nodes = online.iter().map(|n| (n.clone(), NodeStats::default())).collect();
        Usage::build(CrsMode::Basic, nodes, BTreeMap::new())
    }

    /// A resource-aware model; `nodes` holds every online node's stats and
    /// `stats` every service's.
    pub fn scheduled(
        mode: CrsMode,
        nodes: BTreeMap<NodeName, NodeStats>,
        stats: BTreeMap<String, ResourceStats>,
    ) -> Usage {
        Usage::build(mode, nodes, stats)
    }

    fn build(mode: CrsMode, nodes: BTreeMap<NodeName, NodeStats>, stats: BTreeMap<String, ResourceStats>) -> Usage {
        let names: Vec<NodeName> = nodes.keys().cloned().collect();
        let base: Vec<NodeStats> = nodes.into_values().collect();
        Usage {
            mode,
            index: names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect(),
            aggregated: base.clone(),
            counts: vec![0; names.len()],
            started: vec![StartedList::default(); names.len()],
            base,
            names,
            services: BTreeMap::new(),
            stats,
        }
    }

    pub fn mode(&self) -> CrsMode {
        self.mode
    }

    /// Whether `node` is an online node of this usage.
    pub fn contains(&self, node: &str) -> bool {
        self.index.contains_key(node)
    }

    /// Online node names, sorted.
    pub fn online_nodes(&self) -> &[NodeName] {
        &self.names
    }

    /// Re-accounts one service from its current status.
    pub fn set_service(&mut self, sid: &str, sd: &ServiceStatus) {
        self.remove_service(sid);
        let touched = self.place(sid, sd);
        self.resum(&touched);
    }

    /// Accounts every service of a fresh usage at once (one re-sum per node).
    pub fn set_all(&mut self, services: &BTreeMap<String, ServiceStatus>) {
        // Both maps are sorted by sid: walk the stats alongside instead of
        // looking each service up.
        let mut stats = self.stats.iter().peekable();
        let mut placed = Vec::new();
        for (sid, sd) in services {
            let mut service = ResourceStats::default();
            while let Some((s, found)) = stats.peek() {
                match s.as_str().cmp(sid) {
                    Ordering::Less => {}
                    Ordering::Equal => service = **found,
                    Ordering::Greater => break,
                }
                stats.next();
            }
            if let Some(placement) = self.placement(sd, &service) {
                placed.push((sid, placement, service));
            }
        }
        for (sid, placement, service) in &placed {
            self.account(sid, placement, service);
        }
        let placed = placed.into_iter().map(|(sid, placement, _)| (sid.clone(), placement));
        if self.services.is_empty() {
            // sorted input: built in one go
            self.services = placed.collect();
        } else {
            self.services.extend(placed);
        }
        let all: Vec<usize> = (0..self.names.len()).collect();
        self.resum(&all);
    }

    /// Becomes `fresh` with every service of `services` accounted: the
    /// same as `*self = fresh; self.set_all(services)`. When `fresh` has
    /// the same model, nodes and figures as `self` (a steady cluster, every
    /// round), only the services whose placement changed are re-accounted
    /// instead of rebuilding every table; counts are integers and each
    /// node's stats are re-summed in sid order from the first changed
    /// entry on, so the result is bit-identical to the rebuild.
    pub fn refresh(&mut self, fresh: Usage, services: &BTreeMap<String, ServiceStatus>) {
        let same = self.mode == fresh.mode
            && self.names == fresh.names
            && self.base == fresh.base
            && self.stats == fresh.stats;
        if !same {
            *self = fresh;
            self.set_all(services);
            return;
        }
        let mut changed: Vec<&str> = Vec::new();
        let mut known = self.services.iter().peekable();
        // all three maps are sorted by sid: one walk, no lookups
        let mut all_stats = self.stats.iter().peekable();
        for (sid, sd) in services {
            // accounted services that are no longer configured
            while let Some((old, _)) = known.next_if(|(old, _)| old.as_str() < sid.as_str()) {
                changed.push(old);
            }
            while all_stats.next_if(|(s, _)| s.as_str() < sid.as_str()).is_some() {}
            let stats = all_stats
                .next_if(|(s, _)| s.as_str() == sid.as_str())
                .map_or_else(ResourceStats::default, |(_, stats)| *stats);
            let placement = self.placement(sd, &stats);
            let current = known.next_if(|(old, _)| old.as_str() == sid.as_str()).map(|(_, p)| p);
            if placement.as_ref() != current {
                changed.push(sid);
            }
        }
        changed.extend(known.map(|(old, _)| old.as_str()));
        let changed: Vec<String> = changed.into_iter().map(str::to_string).collect();
        for sid in &changed {
            match services.get(sid) {
                Some(sd) => self.set_service(sid, sd),
                None => self.remove_service(sid),
            }
        }
    }

    /// Records where a (not yet accounted) service puts load; returns the
    /// nodes whose scheduler stats need re-summing.
    fn place(&mut self, sid: &str, sd: &ServiceStatus) -> Vec<usize> {
        let stats = self.service_stats(sid);
        let Some(placement) = self.placement(sd, &stats) else {
            return Vec::new();
        };
        let touched = self.account(sid, &placement, &stats);
        self.services.insert(sid.to_string(), placement);
        touched
    }

    /// Where a service puts load, if on any online node.
    fn placement(&self, sd: &ServiceStatus, stats: &ResourceStats) -> Option<Placement> {
        let (current, target) = used_service_nodes(|_| true, sd);
        let (current, target) = (
            current.and_then(|n| self.node_index(n)),
            target.and_then(|n| self.node_index(n)),
        );
        if current.is_none() && target.is_none() {
            return None;
        }
        // A service counts as running when the master saw it confirmed, or
        // when the measurements already include it; otherwise (dynamic
        // model) it is still starting and counts at its maximum.
        let running = if sd.state == ServiceState::Started {
            sd.running || stats.measured_running
        } else {
            current.is_some()
        };
        Some(Placement {
            current,
            target,
            running,
        })
    }

    /// Counts a placed service on its nodes; returns the nodes whose
    /// scheduler stats need re-summing.
    fn account(&mut self, sid: &str, placement: &Placement, stats: &ResourceStats) -> Vec<usize> {
        for node in placement.current.into_iter().chain(placement.target) {
            self.counts[node] += 1;
        }
        let touched: Vec<usize> = placement.started_on(self.mode).collect();
        for &node in &touched {
            self.started[node].insert(sid, *stats);
        }
        touched
    }

    pub fn remove_service(&mut self, sid: &str) {
        let Some(placement) = self.services.remove(sid) else {
            return;
        };
        for node in placement.current.into_iter().chain(placement.target) {
            self.counts[node] -= 1;
        }
        let touched: Vec<usize> = placement.started_on(self.mode).collect();
        for &node in &touched {
            self.started[node].remove(sid);
        }
        self.resum(&touched);
    }

    fn resum(&mut self, nodes: &[usize]) {
        for &node in nodes {
            self.aggregated[node] = self.started[node].resum(self.base[node]);
        }
    }

    fn service_stats(&self, sid: &str) -> ResourceStats {
        self.stats.get(sid).copied().unwrap_or_default()
    }

    /// Scores every online node for starting `sid`; lower is better.
    /// `Err` carries why resource scoring failed (the caller logs it and
    /// falls back to [`Usage::counts`]).
    pub fn score_nodes_to_start(&self, sid: &str) -> Result<BTreeMap<NodeName, f64>, String> {
        let scores = self.node_scores(sid)?;
        Ok(self.names.iter().cloned().zip(scores).collect())
    }

    /// [`Usage::score_nodes_to_start`] by node index (see
    /// [`Usage::node_index`]).
    pub fn node_scores(&self, sid: &str) -> Result<Vec<f64>, String> {
        if self.mode == CrsMode::Basic {
            return Ok(self.count_scores());
        }
        let service = self.service_stats(sid);
        let added = |stats: &NodeStats| {
            let mut stats = *stats;
            stats.add_started(&service);
            stats
        };
        let matrix: Vec<[f64; 4]> = if self.names.len() <= EXACT_SCORING_MAX_NODES {
            let loads: Vec<(f64, f64)> = self.aggregated.iter().map(NodeStats::loads).collect();
            (0..self.names.len())
                .map(|candidate| {
                    let replaced = added(&self.aggregated[candidate]).loads();
                    criteria_of_loads(
                        loads
                            .iter()
                            .enumerate()
                            .map(|(i, l)| if i == candidate { replaced } else { *l }),
                    )
                })
                .collect()
        } else {
            criteria_each_replaced(&self.aggregated, added)
        };
        let mut scores = topsis_scores(matrix)?;
        for score in &mut scores {
            *score = -*score;
        }
        Ok(scores)
    }

    /// Service counts per node as scores.
    pub fn counts(&self) -> BTreeMap<NodeName, f64> {
        self.names.iter().cloned().zip(self.count_scores()).collect()
    }

    /// Service counts by node index.
    pub fn count_scores(&self) -> Vec<f64> {
        self.counts.iter().map(|c| *c as f64).collect()
    }

    /// The index of an online node in score vectors.
    pub fn node_index(&self, node: &str) -> Option<usize> {
        self.index.get(node).copied()
    }

    /// Coefficient of variation of the node loads (population standard
    /// deviation over mean, not normalised; matches upstream's figures).
    /// Always 0 in `basic` mode (spec §5.5): its nodes have no capacities,
    /// so a load ratio would be 0/0.
    pub fn imbalance(&self) -> f64 {
        if self.mode == CrsMode::Basic {
            return 0.0;
        }
        imbalance_of(self.aggregated.iter().map(NodeStats::load))
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
        let moved = |c: &MigrationCandidate| -> Vec<NodeStats> {
            self.names
                .iter()
                .zip(&self.aggregated)
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
        let imbalance_after = |c: &MigrationCandidate| truncate(imbalance_of(moved(c).iter().map(NodeStats::load)));
        match method {
            RebalanceMethod::Bruteforce => Ok(candidates
                .iter()
                .map(|c| (c.migration.clone(), imbalance_after(c)))
                .min_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)))),
            RebalanceMethod::Topsis => {
                if candidates.is_empty() {
                    return Ok(None);
                }
                let matrix: Vec<[f64; 4]> = candidates.iter().map(|c| criteria(moved(c).into_iter())).collect();
                let scores = topsis_scores(matrix)?;
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

/// Up to this many nodes, scoring sums every candidate cluster state node
/// by node, exactly as upstream; above it, prefix and suffix sums make
/// scoring linear in the node count (results may differ in the last bit).
const EXACT_SCORING_MAX_NODES: usize = 16;

/// The criteria of each cluster state in which node `i` is replaced by
/// `replace(nodes[i])`, in O(n) overall.
fn criteria_each_replaced(nodes: &[NodeStats], replace: impl Fn(&NodeStats) -> NodeStats) -> Vec<[f64; 4]> {
    /// Sums of squares and maxima of the CPU and memory loads of a range.
    #[derive(Clone, Copy)]
    struct Partial {
        sq: (f64, f64),
        max: (f64, f64),
    }
    const EMPTY: Partial = Partial {
        sq: (0.0, 0.0),
        max: (0.0, 0.0),
    };
    let n = nodes.len();
    let loads: Vec<(f64, f64)> = nodes.iter().map(NodeStats::loads).collect();
    // prefix[i]: nodes before i
    let mut prefix = Vec::with_capacity(n + 1);
    let mut acc = EMPTY;
    prefix.push(acc);
    for &(c, m) in &loads {
        acc = Partial {
            sq: (acc.sq.0 + c * c, acc.sq.1 + m * m),
            max: (acc.max.0.max(c), acc.max.1.max(m)),
        };
        prefix.push(acc);
    }
    // built from the back (the suffix grows), reversed at the end
    let mut rows = Vec::with_capacity(n);
    // suffix: nodes after i
    let mut suffix = EMPTY;
    for i in (0..n).rev() {
        let (c, m) = replace(&nodes[i]).loads();
        let before = prefix[i];
        let sq_cpu = before.sq.0 + c * c + suffix.sq.0;
        let sq_mem = before.sq.1 + m * m + suffix.sq.1;
        let max_cpu = before.max.0.max(suffix.max.0).max(c);
        let max_mem = before.max.1.max(suffix.max.1).max(m);
        rows.push([
            1.0 + (sq_cpu / n as f64).sqrt(),
            1.0 + max_cpu,
            1.0 + (sq_mem / n as f64).sqrt(),
            1.0 + max_mem,
        ]);
        let (c, m) = loads[i];
        suffix = Partial {
            sq: (suffix.sq.0 + c * c, suffix.sq.1 + m * m),
            max: (suffix.max.0.max(c), suffix.max.1.max(m)),
        };
    }
    rows.reverse();
    rows
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
    criteria_of_loads(nodes.map(|n| n.loads()))
}

/// [`criteria`] over `(cpu load, memory load)` pairs.
fn criteria_of_loads(loads: impl Iterator<Item = (f64, f64)>) -> [f64; 4] {
    let (mut count, mut sq_cpu, mut max_cpu, mut sq_mem, mut max_mem) = (0.0, 0.0, 0.0f64, 0.0, 0.0f64);
    for (cpu, mem) in loads {
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
///
/// Every column is walked in row order with the same operations as the
/// textbook column-by-column form (kept as the reference in the tests),
/// four columns per pass: each result is bit-identical to it, in one
/// pass per step instead of four (scoring runs once per placed service).
fn topsis_scores(mut matrix: Vec<[f64; 4]>) -> Result<Vec<f64>, String> {
    let total: f64 = CRITERIA_WEIGHTS.iter().sum();
    let weights = CRITERIA_WEIGHTS.map(|w| w / total);
    // `Sum for f64` starts from -0.0; so do these column sums.
    let mut squares = [-0.0f64; 4];
    for row in &matrix {
        for j in 0..4 {
            squares[j] += row[j] * row[j];
        }
    }
    let norms = squares.map(f64::sqrt);
    let mut invalid = false;
    for row in matrix.iter_mut() {
        for j in 0..4 {
            if norms[j] != 0.0 {
                row[j] /= norms[j];
                invalid |= !row[j].is_finite();
            }
        }
    }
    if invalid {
        // the first invalid value in column order, as the column walk finds it
        for j in 0..4 {
            if let Some(row) = matrix.iter().find(|row| norms[j] != 0.0 && !row[j].is_finite()) {
                return Err(format!("criterion {j} got invalid value {}", row[j]));
            }
        }
    }
    let normalised = matrix;
    let mut best = [f64::INFINITY; 4];
    let mut worst = [f64::NEG_INFINITY; 4];
    for row in &normalised {
        for j in 0..4 {
            best[j] = f64::min(best[j], row[j]);
            worst[j] = f64::max(worst[j], row[j]);
        }
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

/// The nodes a service occupies: `(current, target)`, each only if
/// `online` says so.
pub fn used_service_nodes(online: impl Fn(&str) -> bool, sd: &ServiceStatus) -> (Option<&str>, Option<&str>) {
    use ServiceState::*;
    let current = match sd.state {
        Started | RequestStop | Fence | Freeze | Error | Recovery | Migrate | Relocate => {
            Some(sd.node.as_str()).filter(|n| online(n))
        }
        _ => None,
    };
    let target = match sd.state {
        Migrate | Relocate | RequestStartBalance => sd.target.as_deref().filter(|t| online(t)),
        _ => None,
    };
    (current, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook TOPSIS, column by column (what [`topsis_scores`] was):
    /// the reference its results must equal bit for bit.
    pub(super) fn topsis_scores_by_column(mut matrix: Vec<[f64; 4]>) -> Result<Vec<f64>, String> {
        let total: f64 = CRITERIA_WEIGHTS.iter().sum();
        let weights = CRITERIA_WEIGHTS.map(|w| w / total);
        for j in 0..4 {
            let norm = matrix.iter().map(|row| row[j] * row[j]).sum::<f64>().sqrt();
            if norm != 0.0 {
                for row in matrix.iter_mut() {
                    row[j] /= norm;
                    if !row[j].is_finite() {
                        return Err(format!("criterion {j} got invalid value {}", row[j]));
                    }
                }
            }
        }
        let normalised = matrix;
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

    #[test]
    fn topsis_scores_equal_the_column_by_column_form_bit_for_bit() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f64 / (1u64 << 53) as f64
        };
        for n in [1usize, 2, 3, 7, 16, 17, 64, 200] {
            for round in 0..20 {
                let matrix: Vec<[f64; 4]> = (0..n)
                    .map(|i| {
                        let mut row = [1.0 + next(), 1.0 + next() * 3.0, 1.0 + next() * 1e-9, 1.0 + next()];
                        if round % 5 == 0 && i % 3 == 0 {
                            row = [row[0], row[0], 1.0, 1.0]; // ties and equal columns
                        }
                        row
                    })
                    .collect();
                let fused = topsis_scores(matrix.clone()).unwrap();
                let reference = topsis_scores_by_column(matrix).unwrap();
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fused), bits(&reference), "{n} rows, round {round}");
            }
        }
        let zero = vec![[0.0; 4]; 3];
        assert_eq!(topsis_scores(zero.clone()), topsis_scores_by_column(zero));
        let bad = vec![[1.0, f64::INFINITY, 1.0, 1.0], [1.0, 1.0, f64::NAN, 1.0]];
        assert_eq!(topsis_scores(bad.clone()), topsis_scores_by_column(bad));
    }

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
            ("node1".to_string(), node(1.7, 16.0, 12334.0 * mib, 64.0 * gib)),
            ("node2".to_string(), node(15.184, 16.0, 529.0 * mib, 64.0 * gib)),
            ("node3".to_string(), node(5.2, 16.0, 9381.0 * mib, 64.0 * gib)),
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
        let nodes: BTreeMap<NodeName, NodeStats> = [("node1", 100e9), ("node2", 200e9), ("node3", 300e9)]
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
    fn linear_scoring_matches_exact_scoring() {
        let nodes: Vec<NodeStats> = (0..40)
            .map(|i| node(f64::from(i % 7), 32.0, f64::from(i * 3 % 11) * 1e9, 64e9))
            .collect();
        let add = |s: &NodeStats| NodeStats {
            cpu: s.cpu + 4.0,
            mem: s.mem + 8e9,
            ..*s
        };
        let fast = criteria_each_replaced(&nodes, add);
        for (i, row) in fast.iter().enumerate() {
            let exact = criteria(nodes.iter().enumerate().map(|(j, s)| if i == j { add(s) } else { *s }));
            for k in 0..4 {
                assert!(
                    (row[k] - exact[k]).abs() < 1e-12,
                    "node {i} criterion {k}: {} vs {}",
                    row[k],
                    exact[k]
                );
            }
        }
    }

    /// The straightforward scoring this module started with: every
    /// candidate state summed node by node (or with prefix and suffix
    /// arrays above [`EXACT_SCORING_MAX_NODES`]), then TOPSIS on a copy.
    fn reference_scores(aggregated: &[NodeStats], service: &ResourceStats) -> Result<Vec<f64>, String> {
        let add = |s: &NodeStats| {
            let mut s = *s;
            s.add_started(service);
            s
        };
        let n = aggregated.len();
        let matrix: Vec<[f64; 4]> = if n <= EXACT_SCORING_MAX_NODES {
            (0..n)
                .map(|c| {
                    let (mut count, mut sq_cpu, mut max_cpu, mut sq_mem, mut max_mem) = (0.0, 0.0, 0.0f64, 0.0, 0.0f64);
                    for (i, s) in aggregated.iter().enumerate() {
                        let s = if i == c { add(s) } else { *s };
                        let (cpu, mem) = (s.cpu_load(), s.mem_load());
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
                })
                .collect()
        } else {
            let loads: Vec<(f64, f64)> = aggregated.iter().map(|s| (s.cpu_load(), s.mem_load())).collect();
            let mut prefix = vec![(0.0, 0.0); n + 1];
            let mut prefix_max = vec![(0.0f64, 0.0f64); n + 1];
            for i in 0..n {
                let (c, m) = loads[i];
                prefix[i + 1] = (prefix[i].0 + c * c, prefix[i].1 + m * m);
                prefix_max[i + 1] = (prefix_max[i].0.max(c), prefix_max[i].1.max(m));
            }
            let mut suffix = vec![(0.0, 0.0); n + 1];
            let mut suffix_max = vec![(0.0f64, 0.0f64); n + 1];
            for i in (0..n).rev() {
                let (c, m) = loads[i];
                suffix[i] = (suffix[i + 1].0 + c * c, suffix[i + 1].1 + m * m);
                suffix_max[i] = (suffix_max[i + 1].0.max(c), suffix_max[i + 1].1.max(m));
            }
            (0..n)
                .map(|i| {
                    let new = add(&aggregated[i]);
                    let (c, m) = (new.cpu_load(), new.mem_load());
                    let sq_cpu = prefix[i].0 + c * c + suffix[i + 1].0;
                    let sq_mem = prefix[i].1 + m * m + suffix[i + 1].1;
                    let max_cpu = prefix_max[i].0.max(suffix_max[i + 1].0).max(c);
                    let max_mem = prefix_max[i].1.max(suffix_max[i + 1].1).max(m);
                    [
                        1.0 + (sq_cpu / n as f64).sqrt(),
                        1.0 + max_cpu,
                        1.0 + (sq_mem / n as f64).sqrt(),
                        1.0 + max_mem,
                    ]
                })
                .collect()
        };
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
        let mut scores = Vec::new();
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
            scores.push(-score);
        }
        Ok(scores)
    }

    /// A deterministic pseudo-random sequence for the differential tests.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, below: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % below
        }
    }

    fn bits(scores: &Result<Vec<f64>, String>) -> Result<Vec<u64>, String> {
        scores.clone().map(|s| s.iter().map(|x| x.to_bits()).collect())
    }

    #[test]
    fn scoring_is_bit_identical_to_the_reference() {
        let mut rng = Lcg(7);
        for nodes in 1..=70 {
            for round in 0..4 {
                let names: Vec<NodeName> = (0..nodes).map(|i| format!("node{i:02}")).collect();
                let stats: BTreeMap<NodeName, NodeStats> = names
                    .iter()
                    .map(|n| {
                        let maxcpu = [0.0, 8.0, 64.0][(rng.next(20) as usize).min(2)];
                        let s = node(rng.next(40) as f64 / 3.0, maxcpu, rng.next(1 << 20) as f64, 64e9);
                        (n.clone(), s)
                    })
                    .collect();
                let service = ResourceStats {
                    cpu: 1.0,
                    maxcpu: rng.next(9) as f64,
                    mem: 1e9,
                    maxmem: (rng.next(16) + 1) as f64 * 1e9,
                    measured_running: false,
                };
                let mode = if round % 2 == 0 {
                    CrsMode::Static
                } else {
                    CrsMode::Dynamic
                };
                let usage = Usage::scheduled(mode, stats, BTreeMap::from([("vm:1".to_string(), service)]));
                let got = usage.node_scores("vm:1");
                let want = reference_scores(&usage.aggregated, &service);
                assert_eq!(bits(&got), bits(&want), "{nodes} nodes, round {round}");
            }
        }
    }

    #[test]
    fn running_sums_match_a_full_re_sum_bit_for_bit() {
        let mut rng = Lcg(11);
        let online: Vec<NodeName> = (1..=3).map(|i| format!("node{i}")).collect();
        let nodes: BTreeMap<NodeName, NodeStats> =
            online.iter().map(|n| (n.clone(), node(0.3, 16.0, 1e8, 64e9))).collect();
        let sids: Vec<String> = (0..40).map(|_| format!("vm:{}", 100 + rng.next(1000))).collect();
        let stats: BTreeMap<String, ResourceStats> = sids
            .iter()
            .map(|sid| {
                let s = ResourceStats {
                    cpu: rng.next(100) as f64 / 7.0,
                    maxcpu: rng.next(100) as f64 / 7.0,
                    mem: rng.next(1 << 30) as f64 / 3.0,
                    maxmem: rng.next(1 << 30) as f64 / 3.0,
                    measured_running: false,
                };
                (sid.clone(), s)
            })
            .collect();
        let mut usage = Usage::scheduled(CrsMode::Static, nodes.clone(), stats.clone());
        let mut services = BTreeMap::new();
        for step in 0..400 {
            let sid = &sids[rng.next(sids.len() as u64) as usize];
            if rng.next(4) == 0 {
                services.remove(sid);
                usage.remove_service(sid);
            } else {
                let state = [ServiceState::Started, ServiceState::Migrate, ServiceState::Stopped][rng.next(3) as usize];
                let mut sd = ServiceStatus::new(state, &online[rng.next(3) as usize], "u".into());
                sd.target = Some(online[rng.next(3) as usize].clone());
                usage.set_service(sid, &sd);
                services.insert(sid.clone(), sd);
            }
            let mut fresh = Usage::scheduled(CrsMode::Static, nodes.clone(), stats.clone());
            fresh.set_all(&services);
            let key = |u: &Usage| -> Vec<u64> {
                u.aggregated
                    .iter()
                    .flat_map(|s| [s.cpu.to_bits(), s.mem.to_bits()])
                    .collect()
            };
            assert_eq!(key(&usage), key(&fresh), "step {step}");
            assert_eq!(usage.counts(), fresh.counts(), "step {step}");
        }
    }

    #[test]
    fn basic_scores_are_service_counts() {
        let online = vec!["node1".to_string(), "node2".to_string()];
        let mut usage = Usage::basic(&online);
        usage.set_service("vm:1", &ServiceStatus::new(ServiceState::Started, "node1", "u".into()));
        usage.set_service("vm:2", &ServiceStatus::new(ServiceState::Stopped, "node2", "u".into()));
        let scores = usage.score_nodes_to_start("vm:3").unwrap();
        assert_eq!(scores["node1"], 1.0);
        assert_eq!(scores["node2"], 0.0);
        usage.remove_service("vm:1");
        assert_eq!(usage.counts()["node1"], 0.0);
    }
}
