//! The invariants, checked at every step of the harness:
//!
//! - **no double run** (architecture §3): a service has live instances
//!   on at most one node. An instance is live from its start until its
//!   stop's time is up, or until its node crashed or its watchdog fired.
//! - **fencing tokens never go backwards for starts**: recorded by the
//!   simulated agent at each start ([`super::ledger::Ledger::violations`]).
//! - **liveness**: once faults stop, every service requested `started`
//!   (and not in the `error` state, which needs an operator) runs within
//!   a bound derived from the timings ([`liveness_bound_ms`]).

use crate::core::store::ClusterState;
use crate::core::types::{RequestState, ServiceState};
use crate::node::config::Timings;

use super::agent::HUNG_ACTION_MS;
use super::ledger::Ledger;

/// Services running on more than one node, described.
pub fn double_runs(ledger: &Ledger) -> Vec<String> {
    ledger
        .instances
        .iter()
        .filter_map(|(sid, list)| {
            let mut nodes: Vec<String> = list.iter().map(|i| format!("{} (token {})", i.node, i.token)).collect();
            nodes.sort();
            nodes.dedup_by(|a, b| a.split(' ').next() == b.split(' ').next());
            (nodes.len() > 1).then(|| format!("{sid} runs on {}", nodes.join(" and ")))
        })
        .collect()
}

/// Services requested `started` (not in `error`) without a running
/// instance.
pub fn not_running(ledger: &Ledger, state: &ClusterState) -> Vec<String> {
    state
        .resources
        .iter()
        .filter(|(_, config)| config.state == RequestState::Started)
        .filter(|(sid, _)| {
            state
                .manager_status
                .service_status
                .get(*sid)
                .is_none_or(|status| status.state != ServiceState::Error)
        })
        .filter(|(sid, _)| {
            !ledger
                .instances
                .get(*sid)
                .is_some_and(|list| list.iter().any(|i| i.stopping_until.is_none()))
        })
        .map(|(sid, _)| sid.clone())
        .collect()
}

/// How long after the faults stopped every service must run again: a
/// crashed node's restart, a hung action still under way, then a
/// failover (the node seen offline, its lease expired, the fence delay,
/// its watchdog's timeouts), and ten rounds for the master's and the
/// LRMs' rounds, retries and the start itself.
pub fn liveness_bound_ms(timings: &Timings, restart_max_ms: u64) -> u64 {
    restart_max_ms
        + HUNG_ACTION_MS.1
        + timings.online_window_ms
        + timings.lease_ms
        + timings.fence_delay_ms
        + timings.watchdog_client_timeout_ms
        + timings.watchdog_device_timeout_ms
        + 10 * timings.round_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::status::ResourceConfig;
    use crate::sim::chaos::ledger::Instance;

    fn instance(node: &str, token: u64, stopping_until: Option<u64>) -> Instance {
        Instance {
            node: node.into(),
            token,
            stopping_until,
        }
    }

    #[test]
    fn two_nodes_running_a_service_is_a_double_run_and_one_is_not() {
        let mut ledger = Ledger::default();
        ledger
            .instances
            .insert("sim:a".into(), vec![instance("node1", 1, None)]);
        assert!(double_runs(&ledger).is_empty());
        // A stop still under way counts as running.
        ledger.instances.insert(
            "sim:b".into(),
            vec![instance("node1", 1, Some(500)), instance("node2", 2, None)],
        );
        assert_eq!(
            double_runs(&ledger),
            vec!["sim:b runs on node1 (token 1) and node2 (token 2)".to_string()]
        );
        ledger.reap(500);
        assert!(double_runs(&ledger).is_empty(), "the stop finished");
    }

    #[test]
    fn a_started_service_without_an_instance_is_not_running() {
        let mut state = ClusterState::default();
        for sid in ["sim:a", "sim:b"] {
            state
                .resources
                .insert(sid.into(), ResourceConfig::new("node1", RequestState::Started));
        }
        let mut ledger = Ledger::default();
        ledger
            .instances
            .insert("sim:a".into(), vec![instance("node1", 1, None)]);
        ledger
            .instances
            .insert("sim:b".into(), vec![instance("node1", 1, Some(9))]);
        assert_eq!(not_running(&ledger, &state), vec!["sim:b".to_string()]);
    }
}
