//! **Single master per lease term**, sampled from the store at every
//! step: the manager lock's holder and expiry, and the manager status's
//! version and master. Two checks:
//!
//! - the lock changes holder only after the previous holder's lease ran
//!   out (the new lease, taken at `expires - lease_ms` by the new holder's
//!   clock, starts after the old one's end); otherwise two nodes were
//!   master at once;
//! - one manager status version names one master: two samples of the
//!   same version with different masters mean two writers of one term.
//!
//! Over the shared `MemoryStore` both hold by construction (the store
//! grants the lock and writes under one mutex); they are there for the
//! replicated store modes, where a stale replica could grant or show a
//! second master.

use std::collections::BTreeMap;

use crate::core::store::ClusterState;
use crate::core::store::lock_name::LockName;
use crate::core::types::NodeName;

/// What the samples so far showed.
#[derive(Debug, Default)]
pub struct MasterLog {
    /// The last lease seen: holder and expiry (store ms).
    lease: Option<(NodeName, u64)>,
    /// The master each manager status version named.
    by_version: BTreeMap<u64, Option<NodeName>>,
    /// Holder changes seen (for the journal and tests).
    pub terms: u64,
    /// The log position of the last sample.
    index: u64,
}

impl MasterLog {
    /// Looks at `state`; a violation described, if any.
    pub fn sample(&mut self, index: u64, state: &ClusterState, lease_ms: u64) -> Option<String> {
        // An older state than one already sampled (the freshest replica
        // closed, the next open one is behind) says nothing new: a
        // holder seen there is an earlier one, not a takeover (seed 236
        // in Raft mode before this rule).
        if index < self.index {
            return None;
        }
        self.index = index;
        let mut violation = None;
        if let Some(lease) = state.leases.get(&LockName::Manager) {
            match &self.lease {
                Some((holder, expires)) if *holder != lease.holder => {
                    self.terms += 1;
                    let taken = lease.expires_ms.saturating_sub(lease_ms);
                    if taken <= *expires {
                        violation = Some(format!(
                            "{} took the manager lock at {taken} while {holder}'s lease ran until {expires}",
                            lease.holder
                        ));
                    }
                }
                _ => {}
            }
            self.lease = Some((lease.holder.clone(), lease.expires_ms));
        }
        let version = state.manager_version;
        let master = state.manager_status.master_node.clone();
        match self.by_version.get(&version) {
            Some(seen) if *seen != master => {
                violation = violation.or(Some(format!(
                    "manager status version {version} names {seen:?} and {master:?} as master"
                )));
            }
            Some(_) => {}
            None => {
                self.by_version.insert(version, master);
            }
        }
        violation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::store::Lease;

    fn state(holder: &str, expires_ms: u64, version: u64, master: &str) -> ClusterState {
        let mut state = ClusterState::default();
        state.leases.insert(
            LockName::Manager,
            Lease {
                holder: holder.into(),
                expires_ms,
            },
        );
        state.manager_version = version;
        state.manager_status.master_node = Some(master.into());
        state
    }

    #[test]
    fn a_takeover_after_the_lease_ran_out_is_one_master_per_term() {
        let mut log = MasterLog::default();
        assert_eq!(log.sample(0, &state("node1", 10_000, 1, "node1"), 6_500), None);
        assert_eq!(
            log.sample(0, &state("node1", 11_000, 2, "node1"), 6_500),
            None,
            "renewal"
        );
        assert_eq!(log.sample(0, &state("node2", 17_501, 3, "node2"), 6_500), None);
        assert_eq!(log.terms, 1);
    }

    #[test]
    fn an_older_replica_read_after_a_newer_one_is_no_takeover() {
        let mut log = MasterLog::default();
        assert_eq!(log.sample(40, &state("node1", 30_510, 9, "node1"), 6_500), None);
        assert_eq!(
            log.sample(12, &state("node2", 17_493, 3, "node2"), 6_500),
            None,
            "a step back"
        );
        assert_eq!(log.terms, 0);
        let violation = log.sample(41, &state("node2", 30_000, 10, "node2"), 6_500);
        assert!(
            violation.is_some(),
            "a takeover inside the lease further on still counts"
        );
    }

    #[test]
    fn a_takeover_inside_the_old_lease_is_two_masters() {
        let mut log = MasterLog::default();
        log.sample(0, &state("node1", 10_000, 1, "node1"), 6_500);
        let violation = log.sample(0, &state("node2", 16_000, 2, "node2"), 6_500);
        assert_eq!(
            violation.as_deref(),
            Some("node2 took the manager lock at 9500 while node1's lease ran until 10000")
        );
    }

    #[test]
    fn one_status_version_with_two_masters_is_caught() {
        let mut log = MasterLog::default();
        log.sample(0, &state("node1", 10_000, 4, "node1"), 6_500);
        let violation = log.sample(0, &state("node1", 10_000, 4, "node3"), 6_500);
        assert!(violation.is_some_and(|v| v.starts_with("manager status version 4 names")));
    }
}
