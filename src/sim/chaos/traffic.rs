//! Operator traffic during the fault phase: the edits `ha-manager` (the
//! CLI, the API) makes to the shared store, drawn from the fault stream
//! like a fault: a service requested stopped or started again, migrated
//! or relocated to a node, a node's maintenance mode switched on or off.
//! The liveness phase starts by undoing them (every service requested
//! started, no node in maintenance), so that liveness still demands every
//! service. Not drawn yet: `disarm-ha`/`arm-ha` (the simulated watchdog
//! device has no reopen after a magic close).

use crate::core::crm_command::{CrmCommand, MoveKind};
use crate::core::store::Op;
use crate::core::types::{NodeName, RequestState};

/// One operator edit: the store operations and what it says.
pub fn edit(kind: u64, draw: u64, sids: &[String], node: &NodeName) -> (Vec<Op>, String) {
    let sid = sids[(draw % sids.len() as u64) as usize].clone();
    let flip = (draw / sids.len() as u64).is_multiple_of(2);
    match kind % 3 {
        0 => {
            let state = if flip {
                RequestState::Stopped
            } else {
                RequestState::Started
            };
            let what = format!("operator: {sid} requested {}", if flip { "stopped" } else { "started" });
            (vec![Op::SetRequestState { sid, state }], what)
        }
        1 => {
            let kind = if flip { MoveKind::Migrate } else { MoveKind::Relocate };
            let what = format!("operator: {kind:?} {sid} to {node}").to_lowercase();
            let command = CrmCommand::Move {
                kind,
                sid,
                node: node.clone(),
            };
            (vec![Op::QueueCrmCommand(command)], what)
        }
        _ => {
            let (command, what) = if flip {
                let command = CrmCommand::EnableNodeMaintenance { node: node.clone() };
                (command, format!("operator: {node} maintenance on"))
            } else {
                let command = CrmCommand::DisableNodeMaintenance { node: node.clone() };
                (command, format!("operator: {node} maintenance off"))
            };
            (vec![Op::QueueCrmCommand(command)], what)
        }
    }
}

/// What the liveness phase starts with: every service requested started,
/// every node out of maintenance.
pub fn undo_all(sids: &[String], nodes: &[NodeName]) -> Vec<Op> {
    let started = sids.iter().map(|sid| Op::SetRequestState {
        sid: sid.clone(),
        state: RequestState::Started,
    });
    let out_of_maintenance = nodes
        .iter()
        .map(|node| Op::QueueCrmCommand(CrmCommand::DisableNodeMaintenance { node: node.clone() }));
    started.chain(out_of_maintenance).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_cover_request_states_moves_and_maintenance() {
        let sids = vec!["sim:a".to_string(), "sim:b".to_string()];
        let node = "node2".to_string();
        let texts: Vec<String> = (0..3)
            .flat_map(|kind| (0..4).map(move |draw| (kind, draw)))
            .map(|(kind, draw)| edit(kind, draw, &sids, &node).1)
            .collect();
        for expected in [
            "operator: sim:a requested stopped",
            "operator: sim:b requested started",
            "operator: migrate sim:a to node2",
            "operator: relocate sim:b to node2",
            "operator: node2 maintenance on",
            "operator: node2 maintenance off",
        ] {
            assert!(texts.iter().any(|t| t == expected), "{expected} in {texts:?}");
        }
        let (ops, _) = edit(0, 0, &sids, &node);
        assert_eq!(
            ops,
            vec![Op::SetRequestState {
                sid: "sim:a".into(),
                state: RequestState::Stopped
            }]
        );
    }

    #[test]
    fn the_liveness_phase_undoes_every_edit() {
        let ops = undo_all(&["sim:a".to_string()], &["node1".to_string(), "node2".to_string()]);
        assert_eq!(ops.len(), 3);
        assert!(matches!(
            &ops[0],
            Op::SetRequestState {
                state: RequestState::Started,
                ..
            }
        ));
    }
}
