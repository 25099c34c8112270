//! **Fencing judged against the manager's view**, sampled from the store
//! at every step. The start checkers (`starts.rs`) judge what runs; these
//! judge what the master decided, so a decision made too early is caught
//! even when no start follows it:
//!
//! - **fence acknowledged only when true**: when another node (the
//!   master) takes node N's agent lock, the fence acknowledgement ("got
//!   agent lock for node N"), the incarnation of N that last renewed that
//!   lock runs nothing any more: it is gone (crashed, or reset by its
//!   watchdog), or no instance lives on it (an LRM whose services had all
//!   stopped is not reset when it loses its lock, and starts nothing
//!   without it: `starts.rs` would catch a start). The same holds for a
//!   lock its node gave up (released): an LRM releases it only once
//!   nothing runs, so the incarnation that released it must still run
//!   nothing when another node takes it (the disarm hole released it
//!   with services running).
//! - **recover only after the acknowledgement**: when a service leaves
//!   `fence` on node N for `recovery` or another node, N's agent lock is
//!   held by another node: the master recovers only what it fenced.
//!
//! A sample from a replica behind one already seen (Raft mode: the
//! freshest replica closed) is skipped, as in `master.rs`.

use std::collections::BTreeMap;

use crate::core::store::ClusterState;
use crate::core::store::lock_name::LockName;
use crate::core::types::{NodeName, ServiceState};

/// One node's agent lock as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AgentLease {
    holder: NodeName,
    expires_ms: u64,
    /// When the node itself held it: its incarnation that took or
    /// renewed it last (`None`: none was running then, it just died).
    renewed_by: Option<u32>,
}

/// What the samples so far showed.
#[derive(Debug, Default)]
pub struct FenceLog {
    agent: BTreeMap<NodeName, AgentLease>,
    /// Each service's manager state and node at the last sample.
    services: BTreeMap<String, (ServiceState, NodeName)>,
    /// Agent locks their node released, with the incarnation that held
    /// them last, until someone takes them.
    released: BTreeMap<NodeName, u32>,
    index: u64,
}

impl FenceLog {
    /// Looks at `state`; `live(node)` is the node's live incarnation (a
    /// frozen one counts), `None` while it is down, and whether services
    /// run there (live instances). A violation described, if any.
    pub fn sample(
        &mut self,
        index: u64,
        state: &ClusterState,
        live: impl Fn(&str) -> Option<(u32, bool)>,
    ) -> Option<String> {
        if index < self.index {
            return None;
        }
        self.index = index;
        let violation = self.sample_locks(state, &live);
        violation.or_else(|| self.sample_services(state))
    }

    fn sample_locks(&mut self, state: &ClusterState, live: &impl Fn(&str) -> Option<(u32, bool)>) -> Option<String> {
        let mut violation = None;
        let mut seen = BTreeMap::new();
        for (lock, lease) in &state.leases {
            let LockName::Agent(node) = lock else {
                continue;
            };
            let last = self.agent.get(node);
            let released = self.released.remove(node);
            let renewed_by = if lease.holder == *node {
                match last {
                    // Unchanged since the last look: the same renewal.
                    Some(l) if l.holder == lease.holder && l.expires_ms == lease.expires_ms => l.renewed_by,
                    _ => live(node).map(|(incarnation, _)| incarnation),
                }
            } else {
                if let Some(l) = last.filter(|l| l.holder == *node)
                    && let Some(incarnation) = l.renewed_by
                    && live(node) == Some((incarnation, true))
                {
                    violation = violation.or(Some(format!(
                        "{} took {node}'s agent lock (its fence acknowledged) while {node}'s incarnation {incarnation}, which renewed it last, still runs services",
                        lease.holder
                    )));
                }
                if let Some(incarnation) = released
                    && live(node) == Some((incarnation, true))
                {
                    violation = violation.or(Some(format!(
                        "{} took {node}'s agent lock (its fence acknowledged) while {node}'s incarnation {incarnation}, which released it, still runs services",
                        lease.holder
                    )));
                }
                None
            };
            seen.insert(
                node.clone(),
                AgentLease {
                    holder: lease.holder.clone(),
                    expires_ms: lease.expires_ms,
                    renewed_by,
                },
            );
        }
        // A lock missing now was released (or never taken).
        for (node, lease) in &self.agent {
            if !seen.contains_key(node)
                && lease.holder == *node
                && let Some(incarnation) = lease.renewed_by
            {
                self.released.insert(node.clone(), incarnation);
            }
        }
        self.agent = seen;
        violation
    }

    fn sample_services(&mut self, state: &ClusterState) -> Option<String> {
        let mut violation = None;
        for (sid, status) in &state.manager_status.service_status {
            let now = (status.state, status.node.clone());
            if let Some((ServiceState::Fence, fenced)) = self.services.get(sid)
                && (now.0 == ServiceState::Recovery || now.1 != *fenced)
            {
                let holder = state
                    .leases
                    .get(&LockName::Agent(fenced.clone()))
                    .map(|l| l.holder.clone());
                if holder.as_ref().is_none_or(|h| h == fenced) {
                    violation = violation.or(Some(format!(
                        "{sid} left fence on {fenced} for {} on {} while {fenced}'s agent lock was {}",
                        now.0.as_str(),
                        now.1,
                        holder.map_or("free".to_string(), |h| format!("held by {h}"))
                    )));
                }
            }
            self.services.insert(sid.clone(), now);
        }
        violation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::status::ServiceStatus;
    use crate::core::store::Lease;

    fn with_agent_lock(state: &mut ClusterState, node: &str, holder: &str, expires_ms: u64) {
        state.leases.insert(
            LockName::Agent(node.into()),
            Lease {
                holder: holder.into(),
                expires_ms,
            },
        );
    }

    fn with_service(state: &mut ClusterState, sid: &str, service_state: ServiceState, node: &str) {
        let status = ServiceStatus::new(service_state, node, "uid".into());
        state.manager_status.service_status.insert(sid.into(), status);
    }

    #[test]
    fn taking_a_nodes_lock_is_fine_once_the_incarnation_that_renewed_it_is_gone() {
        let mut log = FenceLog::default();
        let mut state = ClusterState::default();
        with_agent_lock(&mut state, "node1", "node1", 10_000);
        assert_eq!(log.sample(1, &state, |_| Some((1, true))), None);
        with_agent_lock(&mut state, "node1", "node2", 20_000);
        // node1 was reset and is back as incarnation 2: fenced.
        assert_eq!(log.sample(2, &state, |_| Some((2, true))), None);
        // It takes its lock back, and the master takes it while that
        // incarnation still runs: acknowledged but not true.
        with_agent_lock(&mut state, "node1", "node1", 30_000);
        assert_eq!(log.sample(3, &state, |_| Some((2, true))), None);
        with_agent_lock(&mut state, "node1", "node2", 40_000);
        let violation = log.sample(4, &state, |_| Some((2, true))).expect("caught");
        assert!(violation.contains("node2 took node1's agent lock"), "{violation}");
        assert!(violation.contains("incarnation 2"), "{violation}");
        // The same take of a node that runs nothing (an LRM whose
        // services had stopped, then cut off): nothing to fence.
        let mut log = FenceLog::default();
        with_agent_lock(&mut state, "node1", "node1", 50_000);
        log.sample(5, &state, |_| Some((2, true)));
        with_agent_lock(&mut state, "node1", "node2", 60_000);
        assert_eq!(log.sample(6, &state, |_| Some((2, false))), None);
    }

    #[test]
    fn a_released_lock_may_be_taken_once_its_holder_runs_nothing_and_a_stale_sample_says_nothing() {
        let mut log = FenceLog::default();
        let mut state = ClusterState::default();
        with_agent_lock(&mut state, "node1", "node1", 10_000);
        log.sample(5, &state, |_| Some((1, true)));
        state.leases.clear();
        assert_eq!(log.sample(6, &state, |_| Some((1, false))), None, "released");
        with_agent_lock(&mut state, "node1", "node2", 20_000);
        assert_eq!(
            log.sample(7, &state, |_| Some((1, false))),
            None,
            "taken after the release"
        );
        // Released while services still ran (the disarm hole), then taken.
        let mut log = FenceLog::default();
        with_agent_lock(&mut state, "node1", "node1", 30_000);
        log.sample(8, &state, |_| Some((1, true)));
        state.leases.clear();
        assert_eq!(log.sample(9, &state, |_| Some((1, true))), None);
        with_agent_lock(&mut state, "node1", "node2", 40_000);
        let violation = log.sample(10, &state, |_| Some((1, true))).expect("caught");
        assert!(
            violation.contains("which released it, still runs services"),
            "{violation}"
        );
        // Released, and the node was reset since: nothing left to fence.
        let mut log = FenceLog::default();
        with_agent_lock(&mut state, "node1", "node1", 50_000);
        log.sample(11, &state, |_| Some((1, true)));
        state.leases.clear();
        log.sample(12, &state, |_| Some((1, true)));
        with_agent_lock(&mut state, "node1", "node2", 60_000);
        assert_eq!(log.sample(13, &state, |_| Some((2, true))), None);
        // A replica behind the last sample is not looked at.
        let mut behind = ClusterState::default();
        with_agent_lock(&mut behind, "node1", "node1", 10_000);
        assert_eq!(log.sample(3, &behind, |_| Some((1, true))), None);
    }

    #[test]
    fn a_service_leaves_fence_only_once_its_nodes_lock_is_taken() {
        let mut log = FenceLog::default();
        let mut state = ClusterState::default();
        with_agent_lock(&mut state, "node1", "node1", 10_000);
        with_service(&mut state, "sim:a", ServiceState::Fence, "node1");
        assert_eq!(log.sample(1, &state, |_| None), None);
        with_service(&mut state, "sim:a", ServiceState::Recovery, "node1");
        let violation = log.sample(2, &state, |_| None).expect("caught");
        assert!(
            violation
                .contains("sim:a left fence on node1 for recovery on node1 while node1's agent lock was held by node1"),
            "{violation}"
        );

        let mut log = FenceLog::default();
        with_service(&mut state, "sim:a", ServiceState::Fence, "node1");
        log.sample(1, &state, |_| None);
        with_agent_lock(&mut state, "node1", "node2", 20_000);
        with_service(&mut state, "sim:a", ServiceState::Started, "node3");
        assert_eq!(log.sample(2, &state, |_| None), None, "fenced, then recovered");
    }
}
