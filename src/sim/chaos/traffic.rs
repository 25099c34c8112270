//! Operator traffic during the fault phase: the edits `ha-manager` (the
//! CLI, the API) makes to the shared store, drawn from the fault stream
//! like a fault: a service requested stopped or started again, migrated
//! or relocated to a node, a node's maintenance mode switched on or off.
//! The liveness phase starts by undoing them (every service requested
//! started, no node in maintenance), so that liveness still demands every
//! service.
//!
//! Besides, from a stream of its own (the fault stream stays as it was), a
//! quarter of the seeds disarm the HA stack for a while ([`DisarmWindow`]):
//! `disarm-ha freeze` or `disarm-ha ignore`, then `arm-ha` 3-15 s later,
//! delivered however long the store needs (the operator retries).

use crate::core::crm_command::{CrmCommand, DisarmMode, MoveKind};
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

/// `disarm-ha MODE` at `at_ms`, `arm-ha` at `arm_at_ms` (virtual ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisarmWindow {
    pub at_ms: u64,
    pub arm_at_ms: u64,
    pub mode: DisarmMode,
}

impl DisarmWindow {
    /// A quarter of the seeds get one, inside the fault phase (times at
    /// the run's pace).
    pub fn drawn(seed: u64, pace: super::pace::Pace) -> Option<DisarmWindow> {
        let mut rng = super::rng::Rng::new(seed ^ 0x000d_15a7_u64.wrapping_mul(0x9E37_79B9_7F4B));
        if !rng.chance(250) {
            return None;
        }
        let at_ms = pace.ms(rng.range(3_000, super::pace::FAULT_PHASE_MS - 20_000));
        Some(DisarmWindow {
            at_ms,
            arm_at_ms: at_ms + pace.ms(rng.range(3_000, 15_000)),
            mode: rng.either(DisarmMode::Freeze, DisarmMode::Ignore),
        })
    }

    /// The command due at `now` (the disarm, then the arm), once each.
    pub fn due(&self, now: u64, sent: &mut u8) -> Option<(Vec<Op>, String)> {
        let command = match *sent {
            0 if now >= self.at_ms => CrmCommand::DisarmHa { mode: self.mode },
            1 if now >= self.arm_at_ms => CrmCommand::ArmHa,
            _ => return None,
        };
        *sent += 1;
        let line = format!("operator: {command}");
        Some((vec![Op::QueueCrmCommand(command)], line))
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
    use crate::node::config::Profile;
    use crate::sim::chaos::pace::Pace;

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
    fn a_quarter_of_the_seeds_disarm_then_arm_inside_the_fault_phase() {
        let fast = Pace::of(Profile::Fast);
        let windows: Vec<DisarmWindow> = (0..2000).filter_map(|seed| DisarmWindow::drawn(seed, fast)).collect();
        assert!((400..600).contains(&windows.len()), "{}", windows.len());
        assert!(windows.iter().all(|w| w.at_ms < w.arm_at_ms && w.arm_at_ms < 60_000));
        let pve: Vec<DisarmWindow> = (0..2000)
            .filter_map(|seed| DisarmWindow::drawn(seed, Pace::of(Profile::Pve)))
            .collect();
        assert!(
            pve.iter()
                .zip(&windows)
                .all(|(p, f)| p.at_ms == 10 * f.at_ms && p.arm_at_ms == 10 * f.arm_at_ms && p.mode == f.mode)
        );
        assert!(windows.iter().any(|w| w.mode == DisarmMode::Ignore));
        let window = windows[0];
        let mut sent = 0;
        assert_eq!(window.due(window.at_ms - 1, &mut sent), None);
        let (ops, line) = window.due(window.at_ms, &mut sent).unwrap();
        assert!(line.starts_with("operator: disarm-ha "), "{line}");
        assert!(matches!(&ops[0], Op::QueueCrmCommand(CrmCommand::DisarmHa { .. })));
        assert_eq!(window.due(window.at_ms + 1, &mut sent), None, "once");
        let (_, line) = window.due(window.arm_at_ms, &mut sent).unwrap();
        assert_eq!(line, "operator: arm-ha");
        assert_eq!(window.due(u64::MAX, &mut sent), None);
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
