//! Node states as the master tracks them (upstream `NodeStatus.pm`): the
//! online/unknown/fence/gone/maintenance machine, the fence delay, and fence
//! acknowledgement by taking the dead node's agent lock.

use std::collections::BTreeMap;

use super::env::{Env, FenceDeviceState, NodeInfo};
use super::event::Event;
use super::types::{LrmMode, NodeName, NodeState, Time};

/// The master's node table.
#[derive(Debug, Clone, Default)]
pub struct NodeStatus {
    /// Persisted in `manager_status.node_status`.
    pub status: BTreeMap<NodeName, NodeState>,
    /// Runtime only: when each node was last seen as an online member. Not
    /// persisted, so a new master waits a full fence delay **[quirk]**.
    last_online: BTreeMap<NodeName, Time>,
}

impl NodeStatus {
    pub fn new(status: BTreeMap<NodeName, NodeState>) -> NodeStatus {
        NodeStatus {
            status,
            last_online: BTreeMap::new(),
        }
    }

    /// The state of `node`; an unknown node is recorded as `unknown`
    /// (upstream adds it to the table on first lookup).
    pub fn state(&mut self, node: &str) -> NodeState {
        if let Some(state) = self.status.get(node) {
            return *state;
        }
        self.status.insert(node.to_string(), NodeState::Unknown);
        NodeState::Unknown
    }

    pub fn set_state(&mut self, env: &mut dyn Env, node: &str, state: NodeState) {
        let old = self.state(node);
        if old == state {
            return;
        }
        env.log(Event::NodeStateChanged {
            node: node.to_string(),
            from: old,
            to: state,
        });
        self.status.insert(node.to_string(), state);
    }

    pub fn is_online(&mut self, node: &str) -> bool {
        self.state(node) == NodeState::Online
    }

    pub fn is_maintenance(&mut self, node: &str) -> bool {
        self.state(node) == NodeState::Maintenance
    }

    pub fn is_operational(&mut self, node: &str) -> bool {
        matches!(self.state(node), NodeState::Online | NodeState::Maintenance)
    }

    /// Nodes known to the HA stack, sorted.
    pub fn list_nodes(&self) -> Vec<NodeName> {
        self.status.keys().cloned().collect()
    }

    /// Nodes in state `online`, sorted: the only placement candidates.
    pub fn list_online_nodes(&self) -> Vec<NodeName> {
        self.status
            .iter()
            .filter(|(_, s)| **s == NodeState::Online)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// True once a non-online node has been offline for `delay` seconds.
    /// The first call for a node never seen online starts its clock.
    pub fn is_offline_delayed(&mut self, node: &str, now: Time, delay: Time) -> bool {
        if self.state(node) == NodeState::Online {
            return false;
        }
        match self.last_online.get(node) {
            None => {
                self.last_online.insert(node.to_string(), now);
                false
            }
            Some(last) => now - last >= delay,
        }
    }

    /// Applies one round of membership and LRM modes.
    pub fn update(&mut self, env: &mut dyn Env, info: &NodeInfo, modes: &BTreeMap<NodeName, LrmMode>) {
        let now = env.now();
        let mode_of = |node: &str| modes.get(node).copied().unwrap_or(LrmMode::Unknown);
        for (node, _) in info.online.iter().filter(|(_, online)| **online) {
            self.last_online.insert(node.clone(), now);
            match self.state(node) {
                NodeState::Online => {
                    if mode_of(node) == LrmMode::Maintenance {
                        self.set_state(env, node, NodeState::Maintenance);
                    }
                }
                NodeState::Unknown | NodeState::Gone => self.set_state(env, node, NodeState::Online),
                NodeState::Fence => {}
                NodeState::Maintenance => {
                    if mode_of(node) != LrmMode::Maintenance {
                        self.set_state(env, node, NodeState::Online);
                    }
                }
            }
        }
        for node in self.list_nodes() {
            let member = info.online.get(&node);
            if member == Some(&true) {
                continue;
            }
            match self.state(&node) {
                NodeState::Online => self.set_state(env, &node, NodeState::Unknown),
                NodeState::Maintenance => {
                    // A node shut down with the migrate policy keeps reporting
                    // maintenance, so it stays out of placement while off.
                    if mode_of(&node) != LrmMode::Maintenance {
                        self.set_state(env, &node, NodeState::Unknown);
                    }
                }
                NodeState::Unknown => {
                    if member.is_none() {
                        self.set_state(env, &node, NodeState::Gone);
                    }
                }
                NodeState::Fence => {}
                NodeState::Gone => {
                    if self.is_offline_delayed(&node, now, env.timing().gone_node_delay) {
                        env.log(Event::DeletingGoneNode { node: node.clone() });
                        self.status.remove(&node);
                    }
                }
            }
        }
    }

    /// Marks `node` for fencing and tries to acknowledge the fence by taking
    /// its agent lock. The lock can only be had once the node's lease ran
    /// out, by which time its watchdog has reset it: that is the safety
    /// argument of the whole stack.
    ///
    /// Where fence devices can fence the node (fence.cfg), a device run is
    /// asked for too, and whichever comes first acknowledges: the lease
    /// running out, or every device of a try confirming the node off (a
    /// powered-off node runs nothing, so waiting for its lease would only
    /// delay recovery). A failed or hung device changes nothing: the lease
    /// still protects.
    pub fn fence_node(&mut self, env: &mut dyn Env, node: &str) -> bool {
        if self.state(node) != NodeState::Fence {
            self.set_state(env, node, NodeState::Fence);
            env.log(Event::FenceRequest { node: node.to_string() });
        }
        let acknowledged = env.get_ha_agent_lock(Some(node));
        // Asked only while the lease still protects: a run started now
        // could power the node off after it came back.
        let device = if acknowledged {
            FenceDeviceState::NoDevice
        } else {
            env.fence_device(node)
        };
        if acknowledged {
            env.log(Event::FenceAcknowledged { node: node.to_string() });
            self.set_state(env, node, NodeState::Unknown);
            env.log(Event::FenceSucceededNotice { node: node.to_string() });
        } else if device == FenceDeviceState::Off {
            env.log(Event::FenceDeviceAcknowledged { node: node.to_string() });
            self.set_state(env, node, NodeState::Unknown);
            env.log(Event::FenceDeviceSucceededNotice { node: node.to_string() });
        }
        if acknowledged || device == FenceDeviceState::Off {
            env.fence_device_reset(node);
        }
        acknowledged || device == FenceDeviceState::Off
    }
}
