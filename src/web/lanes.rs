//! The timeline picture's data: one lane per node, each service a bar on
//! the lane of the node it is assigned to, for as long as it stays there in
//! the same state; marks where a node went `unknown`, was fenced, where the
//! fence was acknowledged and where a service was recovered. Built from
//! successive observations of the cluster (simulator rounds or store
//! snapshots), so both consoles draw the same picture. Bounded: the oldest
//! bars and marks are dropped first.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;

/// Most bars kept.
pub const MAX_BARS: usize = 4000;
/// Most marks kept.
pub const MAX_MARKS: usize = 1000;

/// A service on a node in one state from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bar {
    pub sid: String,
    pub node: String,
    pub state: String,
    pub from: f64,
    pub to: f64,
}

/// An event on a node's lane.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mark {
    pub at: f64,
    pub node: String,
    /// `unknown`, `fence`, `fence acknowledged` or `recovery`.
    pub kind: String,
    pub label: String,
}

/// One observation of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSeen {
    pub sid: String,
    pub node: String,
    pub state: String,
}

/// The accumulated timeline.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Lanes {
    pub start: Option<f64>,
    pub end: f64,
    pub lanes: Vec<String>,
    /// Every sid seen, in order (a service keeps its row in every lane).
    pub rows: Vec<String>,
    pub bars: VecDeque<Bar>,
    pub marks: VecDeque<Mark>,
    #[serde(skip)]
    known_rows: BTreeSet<String>,
    #[serde(skip)]
    open: BTreeMap<String, usize>,
    #[serde(skip)]
    node_state: BTreeMap<String, String>,
    #[serde(skip)]
    service_state: BTreeMap<String, String>,
    /// Bars dropped from the front (keeps `open` indexes right).
    #[serde(skip)]
    dropped: usize,
}

impl Lanes {
    /// Records the cluster at time `now`: node states (from the manager
    /// status) and each service's node and state.
    pub fn observe(&mut self, now: f64, nodes: &BTreeMap<String, String>, services: &[ServiceSeen]) {
        self.start.get_or_insert(now);
        self.end = self.end.max(now);
        for node in nodes.keys() {
            if !self.lanes.contains(node) {
                self.lanes.push(node.clone());
            }
        }
        for (node, state) in nodes {
            let before = self.node_state.insert(node.clone(), state.clone());
            let Some(before) = before.filter(|b| b != state) else {
                continue;
            };
            let kind = match (before.as_str(), state.as_str()) {
                ("fence", _) => "fence acknowledged",
                (_, "fence") => "fence",
                (_, "unknown") => "unknown",
                _ => continue,
            };
            self.mark(now, node, kind, format!("{node}: {before} → {state}"));
        }
        let mut seen = BTreeSet::new();
        for s in services {
            seen.insert(s.sid.as_str());
            if self.known_rows.insert(s.sid.clone()) {
                self.rows.push(s.sid.clone());
            }
            let before = self.service_state.insert(s.sid.clone(), s.state.clone());
            let current = self.open.get(&s.sid).and_then(|i| self.bars.get(i - self.dropped));
            // A recovery can pass within one round (fence → recovery →
            // started): leaving `fence` counts as well, marked on the
            // fenced node's lane.
            // Over the daemon's store the whole recovery may pass between
            // two reads: a move away from a node that is not online is one.
            let moved_off_lost = current.is_some_and(|bar| {
                bar.node != s.node && nodes.get(&bar.node).is_some_and(|st| st == "unknown" || st == "fence")
            });
            let recovered = match before.as_deref() {
                Some("recovery") => false,
                Some("fence") => s.state != "fence",
                _ => s.state == "recovery" || moved_off_lost,
            };
            if recovered {
                let fenced = current.map_or(s.node.clone(), |bar| bar.node.clone());
                self.mark(now, &fenced, "recovery", format!("recover {} from {fenced}", s.sid));
            }
            let current = self.open.get(&s.sid).and_then(|i| self.bars.get(i - self.dropped));
            match current {
                Some(bar) if bar.node == s.node && bar.state == s.state => {
                    let i = self.open[&s.sid] - self.dropped;
                    self.bars[i].to = now;
                }
                _ => {
                    if let Some(bar) = self.open.get(&s.sid).and_then(|i| self.bars.get_mut(i - self.dropped)) {
                        bar.to = now;
                    }
                    self.bars.push_back(Bar {
                        sid: s.sid.clone(),
                        node: s.node.clone(),
                        state: s.state.clone(),
                        from: now,
                        to: now,
                    });
                    self.open.insert(s.sid.clone(), self.dropped + self.bars.len() - 1);
                }
            }
        }
        // Services gone from the configuration end their bar.
        self.open.retain(|sid, _| seen.contains(sid.as_str()));
        self.service_state.retain(|sid, _| seen.contains(sid.as_str()));
        while self.bars.len() > MAX_BARS {
            self.bars.pop_front();
            self.dropped += 1;
            let dropped = self.dropped;
            self.open.retain(|_, i| *i >= dropped);
        }
    }

    /// Adds a mark (also for events seen elsewhere than in the states,
    /// e.g. a fence acknowledgement read from the leases).
    pub fn mark(&mut self, at: f64, node: &str, kind: &str, label: String) {
        self.marks.push_back(Mark {
            at,
            node: node.to_string(),
            kind: kind.to_string(),
            label,
        });
        if self.marks.len() > MAX_MARKS {
            self.marks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(sid: &str, node: &str, state: &str) -> ServiceSeen {
        ServiceSeen {
            sid: sid.into(),
            node: node.into(),
            state: state.into(),
        }
    }

    fn nodes(states: &[(&str, &str)]) -> BTreeMap<String, String> {
        states.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect()
    }

    #[test]
    fn a_failover_draws_bars_and_marks() {
        let mut lanes = Lanes::default();
        let online = nodes(&[("a", "online"), ("b", "online")]);
        lanes.observe(0.0, &online, &[seen("vm:1", "a", "started")]);
        lanes.observe(10.0, &online, &[seen("vm:1", "a", "started")]);
        lanes.observe(
            20.0,
            &nodes(&[("a", "unknown"), ("b", "online")]),
            &[seen("vm:1", "a", "started")],
        );
        lanes.observe(
            30.0,
            &nodes(&[("a", "fence"), ("b", "online")]),
            &[seen("vm:1", "a", "fence")],
        );
        lanes.observe(
            40.0,
            &nodes(&[("a", "unknown"), ("b", "online")]),
            &[seen("vm:1", "a", "recovery")],
        );
        lanes.observe(
            50.0,
            &nodes(&[("a", "unknown"), ("b", "online")]),
            &[seen("vm:1", "b", "started")],
        );
        // fence → started within one observation is a recovery too.
        lanes.observe(
            60.0,
            &nodes(&[("a", "unknown"), ("b", "online")]),
            &[seen("vm:1", "b", "fence")],
        );
        lanes.observe(
            70.0,
            &nodes(&[("a", "unknown"), ("b", "online")]),
            &[seen("vm:1", "a", "started")],
        );
        assert_eq!(lanes.marks.back().unwrap().label, "recover vm:1 from b");
        // A move off a node that is not online, state `started` throughout.
        lanes.observe(
            80.0,
            &nodes(&[("a", "unknown"), ("b", "online")]),
            &[seen("vm:1", "b", "started")],
        );
        assert_eq!(lanes.marks.back().unwrap().label, "recover vm:1 from a");
        lanes.observe(
            90.0,
            &nodes(&[("a", "online"), ("b", "online")]),
            &[seen("vm:1", "a", "started")],
        );
        assert_eq!(lanes.marks.len(), 6, "a migration is no recovery");
        lanes.marks.truncate(4);
        lanes.bars.truncate(4);
        let kinds: Vec<&str> = lanes.marks.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(kinds, ["unknown", "fence", "fence acknowledged", "recovery"]);
        let bars: Vec<(&str, &str, f64, f64)> = lanes
            .bars
            .iter()
            .map(|b| (b.node.as_str(), b.state.as_str(), b.from, b.to))
            .collect();
        assert_eq!(
            bars,
            [
                ("a", "started", 0.0, 30.0),
                ("a", "fence", 30.0, 40.0),
                ("a", "recovery", 40.0, 50.0),
                ("b", "started", 50.0, 60.0)
            ]
        );
        assert_eq!(lanes.lanes, ["a", "b"]);
    }

    #[test]
    fn bars_are_bounded() {
        let mut lanes = Lanes::default();
        let online = nodes(&[("a", "online"), ("b", "online")]);
        for i in 0..(MAX_BARS + 10) {
            let node = if i % 2 == 0 { "a" } else { "b" };
            lanes.observe(i as f64, &online, &[seen("vm:1", node, "started")]);
        }
        assert_eq!(lanes.bars.len(), MAX_BARS);
        lanes.observe(1e6, &online, &[seen("vm:1", "b", "started")]);
        assert_eq!(lanes.bars.back().unwrap().to, 1e6, "the open bar is still extended");
    }
}
