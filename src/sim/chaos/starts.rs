//! Checkers on each start the simulated agents carry out, judged on what
//! held at the moment of the start (recorded by the agent):
//!
//! - **run only while armed**: a node starts a service only while its
//!   watchdog device is armed and was fed within the device timeout, so
//!   that a node that lost its lease is reset before it could start
//!   anything. A start on a node whose device fired, was closed, or was
//!   last fed longer ago is a violation.
//! - **fence before recover**: a service may start on node B only once
//!   every instance of it elsewhere is dead (crashed, reset or stopped).
//!   This is the double-run rule caught at the start itself, naming the
//!   node that was not yet fenced. (It judges instances, not the
//!   manager's node states: a fence acknowledged in the manager status
//!   whose node still runs the service is caught here too, and one
//!   acknowledged late is harmless.)

use crate::core::types::NodeName;

/// One start, as the agent saw the world then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRecord {
    pub sid: String,
    pub node: NodeName,
    pub at_ms: u64,
    pub token: u64,
    /// The node's watchdog device: `None` when closed (magic close),
    /// else the virtual ms of its last feed.
    pub last_feed_ms: Option<u64>,
    /// Live instances of the service on other nodes then: node and token
    /// (a stop under way counts).
    pub elsewhere: Vec<(NodeName, u64)>,
}

/// Starts on a node whose watchdog did not protect it, described.
pub fn unarmed_starts(starts: &[StartRecord], device_timeout_ms: u64) -> Vec<String> {
    starts
        .iter()
        .filter_map(|s| match s.last_feed_ms {
            None => Some(format!(
                "{} started on {} at {} ms with its watchdog closed",
                s.sid, s.node, s.at_ms
            )),
            Some(fed) if s.at_ms.saturating_sub(fed) > device_timeout_ms => Some(format!(
                "{} started on {} at {} ms, its watchdog last fed {} ms before (device timeout {device_timeout_ms} ms)",
                s.sid,
                s.node,
                s.at_ms,
                s.at_ms - fed
            )),
            Some(_) => None,
        })
        .collect()
}

/// Starts while an instance still lived on another node, described.
pub fn unfenced_starts(starts: &[StartRecord]) -> Vec<String> {
    starts
        .iter()
        .filter(|s| !s.elsewhere.is_empty())
        .map(|s| {
            let others: Vec<String> = s
                .elsewhere
                .iter()
                .map(|(node, token)| format!("{node} (token {token})"))
                .collect();
            format!(
                "{} started on {} (token {}) at {} ms while it still ran on {}: not fenced there first",
                s.sid,
                s.node,
                s.token,
                s.at_ms,
                others.join(" and ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(node: &str, at_ms: u64, last_feed_ms: Option<u64>, elsewhere: &[(&str, u64)]) -> StartRecord {
        StartRecord {
            sid: "sim:a".into(),
            node: node.into(),
            at_ms,
            token: 5,
            last_feed_ms,
            elsewhere: elsewhere.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
        }
    }

    #[test]
    fn a_start_needs_a_watchdog_fed_within_the_device_timeout() {
        let fine = start("node1", 5_000, Some(4_000), &[]);
        assert!(unarmed_starts(&[fine], 1_000).is_empty(), "fed exactly a timeout ago");
        let stale = start("node1", 5_000, Some(3_999), &[]);
        assert_eq!(
            unarmed_starts(&[stale], 1_000),
            vec![
                "sim:a started on node1 at 5000 ms, its watchdog last fed 1001 ms before (device timeout 1000 ms)"
                    .to_string()
            ]
        );
        let closed = start("node2", 5_000, None, &[]);
        assert_eq!(unarmed_starts(&[closed], 1_000).len(), 1);
    }

    #[test]
    fn a_start_while_another_node_still_runs_the_service_is_unfenced() {
        assert!(unfenced_starts(&[start("node2", 9_000, Some(9_000), &[])]).is_empty());
        let early = start("node2", 9_000, Some(9_000), &[("node1", 4)]);
        assert_eq!(
            unfenced_starts(&[early]),
            vec![
                "sim:a started on node2 (token 5) at 9000 ms while it still ran on node1 (token 4): not fenced there first"
                    .to_string()
            ]
        );
    }
}
