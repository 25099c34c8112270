//! Simulated fence devices: a scenario's `fence.cfg` (upstream's format,
//! [`crate::config::fence`]) with agents that behave by their name, as
//! upstream's simulator lets every agent succeed by powering the node off:
//!
//! - an agent whose name contains `hang` never returns (the lease still
//!   acknowledges the fence when it runs out);
//! - one whose name contains `fail` exits 1 without powering anything off
//!   (the next device is tried, as upstream's `Fence.pm` does);
//! - any other powers the node off (`execute power <node> off`, logged
//!   with the agent as source) and confirms it.
//!
//! The manager asks through [`crate::core::env::Env::fence_device`]; the
//! run loop carries out the power-offs after the CRM iteration that asked,
//! so the confirmation reaches the manager in its next round.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::fence::FenceConfig;
use crate::core::env::FenceDeviceState;
use crate::core::types::NodeName;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Run {
    /// Waiting for the run loop to power the node off.
    PowerOff,
    /// An agent of this try hangs.
    Hung,
    Off,
    Failed,
}

/// The fence devices of a simulation and the runs in progress.
#[derive(Debug, Default)]
pub struct SimFence {
    config: FenceConfig,
    runs: BTreeMap<NodeName, Run>,
    /// `(agent, node)` power-offs the run loop is to carry out.
    pending: Vec<(String, NodeName)>,
}

impl SimFence {
    pub fn new(config: FenceConfig) -> SimFence {
        SimFence {
            config,
            ..SimFence::default()
        }
    }

    /// Reads `fence.cfg` of a scenario directory (none: no devices).
    pub fn load(dir: &Path) -> Result<SimFence, String> {
        let path = dir.join("fence.cfg");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(SimFence::default());
        };
        let config = FenceConfig::parse(&text).map_err(|errors| {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| format!("line {}: {}", e.line, e.message))
                .collect();
            format!("{}: {}", path.display(), lines.join("; "))
        })?;
        Ok(SimFence::new(config))
    }

    /// The manager's question for `node`; starts a run when none is under
    /// way. Returns the state and the log lines (level, message) of what
    /// happened, in upstream's wording.
    pub fn request(&mut self, node: &str) -> (FenceDeviceState, Vec<(&'static str, String)>) {
        let mut lines = Vec::new();
        if !self.config.has_device(node) {
            return (FenceDeviceState::NoDevice, lines);
        }
        if !self.runs.contains_key(node) {
            lines.push(("noti", format!("Start fencing node '{node}'")));
            let run = self.run_tries(node, &mut lines);
            self.runs.insert(node.to_string(), run);
        }
        let state = match self.runs[node] {
            Run::PowerOff | Run::Hung => FenceDeviceState::Running,
            Run::Off => FenceDeviceState::Off,
            Run::Failed => FenceDeviceState::Failed,
        };
        (state, lines)
    }

    /// Tries the devices in order until one whose agents all answer.
    fn run_tries(&mut self, node: &str, lines: &mut Vec<(&'static str, String)>) -> Run {
        for try_index in 0.. {
            let Some(commands) = self.config.commands(node, try_index) else {
                lines.push(("err", format!("tried all fence devices for node '{node}'")));
                return Run::Failed;
            };
            let mut failed = false;
            let mut hung = false;
            for command in &commands {
                let line = command.command_line();
                lines.push(("noti", format!("[fence '{node}'] execute cmd: {line}")));
                if command.agent.contains("hang") {
                    hung = true;
                } else if command.agent.contains("fail") {
                    lines.push((
                        "err",
                        format!("fence job for node '{node}' failed, command '{line}' exited with '1'"),
                    ));
                    failed = true;
                }
            }
            if hung && !failed {
                return Run::Hung;
            }
            if !failed {
                self.pending.push((commands[0].agent.clone(), node.to_string()));
                return Run::PowerOff;
            }
        }
        Run::Failed
    }

    /// The power-offs to carry out now; each counts as confirmed once the
    /// caller did it ([`SimFence::powered_off`]).
    pub fn take_power_offs(&mut self) -> Vec<(String, NodeName)> {
        std::mem::take(&mut self.pending)
    }

    pub fn powered_off(&mut self, node: &str) {
        if self.runs.get(node) == Some(&Run::PowerOff) {
            self.runs.insert(node.to_string(), Run::Off);
        }
    }

    /// The fence was acknowledged: the next fence of the node runs anew.
    pub fn reset(&mut self, node: &str) {
        self.runs.remove(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence(text: &str) -> SimFence {
        SimFence::new(FenceConfig::parse(text).unwrap())
    }

    #[test]
    fn a_failing_device_falls_back_to_the_next_and_the_last_fails() {
        let mut f = fence(
            "device a fence_fail ip=1\nconnect a node=n1 plug=1\ndevice b fence_ok ip=2\nconnect b node=n1 plug=2\n\
             connect a node=n2 plug=3\n",
        );
        let (state, lines) = f.request("n1");
        assert_eq!(state, FenceDeviceState::Running);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(f.take_power_offs(), [("fence_ok".to_string(), "n1".to_string())]);
        f.powered_off("n1");
        assert_eq!(f.request("n1").0, FenceDeviceState::Off);
        f.reset("n1");
        assert_eq!(f.request("n1").0, FenceDeviceState::Running, "a new fence runs anew");

        let (state, lines) = f.request("n2");
        assert_eq!(state, FenceDeviceState::Failed);
        assert_eq!(lines.last().unwrap().1, "tried all fence devices for node 'n2'");
        assert_eq!(f.request("n3").0, FenceDeviceState::NoDevice);
    }

    #[test]
    fn a_hanging_device_stays_running() {
        let mut f = fence("device a fence_hang ip=1\nconnect a node=n1 plug=1\n");
        assert_eq!(f.request("n1").0, FenceDeviceState::Running);
        assert!(f.take_power_offs().is_empty());
        assert_eq!(f.request("n1").0, FenceDeviceState::Running);
    }
}
