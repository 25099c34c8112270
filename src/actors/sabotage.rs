//! What the test-only [`Sabotage`] switches change in a round: each
//! breaks one safety rule, so that the actor-level simulator's checkers
//! can be shown to catch it (`sim::chaos`, `tests/chaos.rs`). `None`, the
//! daemon's setting, changes nothing here.

use crate::core::store::state::HELD_UNWATCHED;
use crate::core::store::{ClusterState, LockName, Op, Outgoing};
use crate::core::types::NodeName;
use crate::core::watchdog::Client;

use super::round::Sabotage;

/// The round's view of the store, as the sabotage bends it.
///
/// [`Sabotage::TakeLockEarly`]: the master sees every other node's agent
/// lease as running out one lease earlier than it does, so it takes the
/// lock of a node it just saw go offline at once, while that node may
/// still run its services under its lease.
pub(super) fn bend_view(
    sabotage: Option<Sabotage>,
    client: Client,
    me: &NodeName,
    lease_ms: u64,
    state: &mut ClusterState,
) {
    if sabotage != Some(Sabotage::TakeLockEarly) || client != Client::Crm {
        return;
    }
    for (lock, lease) in state.leases.iter_mut() {
        if matches!(lock, LockName::Agent(node) if node != me) {
            lease.expires_ms = lease.expires_ms.saturating_sub(lease_ms);
        }
    }
}

/// The round's writes, as the sabotage bends them.
///
/// - [`Sabotage::TakeLockEarly`]: the master's acquisitions of other
///   nodes' agent locks are stamped one lease later, so that the store,
///   which judges a lease by the stamp, grants them too.
/// - [`Sabotage::StaleReplica`]: the guards that make the store refuse a
///   decision taken from an old view (the manager status version read,
///   the start claim's placement and fencing epoch) are left out.
/// - [`Sabotage::ReleaseOnDisarm`]: a disarmed LRM's hold of its lock
///   without watchdog ([`HELD_UNWATCHED`]) becomes a release, as before
///   the fix (and upstream).
pub(super) fn bend_outbox(
    sabotage: Option<Sabotage>,
    client: Client,
    me: &NodeName,
    lease_ms: u64,
    outbox: &mut Vec<Outgoing>,
) {
    match sabotage {
        Some(Sabotage::TakeLockEarly) if client == Client::Crm => {
            for out in outbox.iter_mut() {
                if let Outgoing::Store(Op::Acquire {
                    lock: LockName::Agent(node),
                    now_ms,
                    ..
                }) = out
                    && node != me
                {
                    *now_ms = now_ms.saturating_add(lease_ms);
                }
            }
        }
        Some(Sabotage::ReleaseOnDisarm) => {
            for out in outbox.iter_mut() {
                if let Outgoing::Store(Op::Acquire {
                    lock, holder, lease_ms, ..
                }) = out
                    && *lease_ms == HELD_UNWATCHED
                {
                    *out = Outgoing::Store(Op::Release {
                        lock: lock.clone(),
                        holder: holder.clone(),
                    });
                }
            }
        }
        Some(Sabotage::StaleReplica) => outbox.retain(|out| {
            !matches!(
                out,
                Outgoing::Store(Op::ExpectManagerVersion(_) | Op::ClaimStart { .. })
            )
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::store::Lease;

    fn state() -> ClusterState {
        let mut state = ClusterState::default();
        for node in ["node1", "node2"] {
            let lease = Lease {
                holder: node.into(),
                expires_ms: 10_000,
            };
            state.leases.insert(LockName::Agent(node.into()), lease);
        }
        state
    }

    #[test]
    fn without_a_sabotage_nothing_changes() {
        let me: NodeName = "node1".into();
        let mut view = state();
        bend_view(None, Client::Crm, &me, 3_000, &mut view);
        assert_eq!(view, state());
        let acquire = Op::Acquire {
            lock: LockName::Agent("node2".into()),
            holder: me.clone(),
            now_ms: 5,
            lease_ms: 3_000,
        };
        let mut outbox = vec![Outgoing::Store(acquire), Outgoing::Store(Op::ExpectManagerVersion(4))];
        let before = outbox.clone();
        bend_outbox(None, Client::Crm, &me, 3_000, &mut outbox);
        assert_eq!(outbox, before);
    }

    #[test]
    fn take_lock_early_bends_only_other_nodes_agent_leases_of_the_master() {
        let me: NodeName = "node1".into();
        let mut view = state();
        bend_view(Some(Sabotage::TakeLockEarly), Client::Crm, &me, 3_000, &mut view);
        assert_eq!(view.leases[&LockName::Agent("node1".into())].expires_ms, 10_000);
        assert_eq!(view.leases[&LockName::Agent("node2".into())].expires_ms, 7_000);
        let mut lrm_view = state();
        bend_view(Some(Sabotage::TakeLockEarly), Client::Lrm, &me, 3_000, &mut lrm_view);
        assert_eq!(lrm_view, state());
        let acquire = |node: &str| Op::Acquire {
            lock: LockName::Agent(node.into()),
            holder: me.clone(),
            now_ms: 5,
            lease_ms: 3_000,
        };
        let mut outbox = vec![Outgoing::Store(acquire("node1")), Outgoing::Store(acquire("node2"))];
        bend_outbox(Some(Sabotage::TakeLockEarly), Client::Crm, &me, 3_000, &mut outbox);
        let stamps: Vec<u64> = outbox
            .iter()
            .filter_map(|o| match o {
                Outgoing::Store(Op::Acquire { now_ms, .. }) => Some(*now_ms),
                _ => None,
            })
            .collect();
        assert_eq!(stamps, vec![5, 3_005]);
    }

    #[test]
    fn stale_replica_drops_the_guards() {
        let me: NodeName = "node1".into();
        let claim = Op::ClaimStart {
            sid: "vm:1".into(),
            node: me.clone(),
            epoch: 2,
        };
        let mut outbox = vec![
            Outgoing::Store(Op::ExpectManagerVersion(4)),
            Outgoing::Store(claim),
            Outgoing::WatchdogPet,
        ];
        bend_outbox(Some(Sabotage::StaleReplica), Client::Lrm, &me, 3_000, &mut outbox);
        assert_eq!(outbox, vec![Outgoing::WatchdogPet]);
    }
}
