//! An interactive simulation (the `hactor-sim serve` console): a
//! [`Simulator::live`] run that takes commands while it runs and can be
//! written out as a scenario folder that `hactor-sim run` replays.
//!
//! A command given in the console is applied at the next batch slot (every
//! fifth round), exactly as a cmdlist line would be; every slot the session
//! passes is recorded (an empty batch `[]` when nothing happened), so the
//! exported cmdlist meets each command in the same round and the replay's
//! log starts with the session's log, line for line.

use std::collections::BTreeMap;
use std::path::Path;

use crate::core::types::NodeName;

use super::run::{MAX_SIM_TIME_SECS, RoundEnd, SimError, Simulator};
use super::scenario::{CmdEntry, NodeHardware, Scenario, ScenarioError, parse_command};

/// Files of a scenario folder that are not inputs of the run.
const NOT_INPUTS: [&str; 4] = ["cmdlist", "log.expect", "log.session", "README"];

/// Headroom left below the simulator's time limit (a batch period plus
/// the quiet period a run ends with).
const REPLAY_MARGIN_SECS: i64 = 600;

/// Largest generated cluster (the simulator's round grows with the nodes:
/// upstream refuses 30 and more).
pub const MAX_NODES: usize = 16;
/// Largest number of generated services.
pub const MAX_SERVICES: usize = 500;

/// One interactive simulation.
pub struct Session {
    sim: Simulator,
    /// The input files of the scenario (all but the cmdlist), verbatim.
    inputs: BTreeMap<String, String>,
    /// The scenario's hardware (validates node names of commands).
    hardware: BTreeMap<NodeName, NodeHardware>,
    /// Set once the simulation stopped with an error (or hit its time
    /// limit): nothing runs after that.
    halted: Option<String>,
}

impl Session {
    /// Starts from a scenario folder's inputs and its cmdlist.
    pub fn load(dir: &Path) -> Result<Session, ScenarioError> {
        let scenario = Scenario::load(dir)?;
        let mut inputs = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| ScenarioError {
            file: dir.to_path_buf(),
            line: None,
            message: format!("cannot list: {e}"),
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if NOT_INPUTS.contains(&name.as_str()) || !entry.path().is_file() {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).map_err(|e| ScenarioError {
                file: entry.path(),
                line: None,
                message: format!("cannot read: {e}"),
            })?;
            inputs.insert(name, text);
        }
        Ok(Session {
            hardware: scenario.hardware.clone(),
            sim: Simulator::live(scenario),
            inputs,
            halted: None,
        })
    }

    /// The files of a generated scenario: `nodes` nodes, powered on in the
    /// first batch, and `services` VMs (`vm:101`, ...) spread over them in
    /// turn, all requested `started`.
    pub fn generated_files(nodes: usize, services: usize) -> Result<BTreeMap<String, String>, String> {
        if !(1..=MAX_NODES).contains(&nodes) {
            return Err(format!("--nodes must be 1 to {MAX_NODES}"));
        }
        if services > MAX_SERVICES {
            return Err(format!("--services must be at most {MAX_SERVICES}"));
        }
        let node = |i: usize| format!("node{}", i + 1);
        let hardware: serde_json::Map<String, serde_json::Value> = (0..nodes)
            .map(|i| (node(i), serde_json::json!({ "power": "off", "network": "off" })))
            .collect();
        let services: serde_json::Map<String, serde_json::Value> = (0..services)
            .map(|i| {
                let value = serde_json::json!({ "node": node(i % nodes), "state": "started" });
                (format!("vm:{}", 101 + i), value)
            })
            .collect();
        let power_on: Vec<String> = (0..nodes).map(|i| format!("power {} on", node(i))).collect();
        let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
        Ok(BTreeMap::from([
            ("hardware_status".to_string(), pretty(&hardware.into())),
            ("service_config".to_string(), pretty(&services.into())),
            ("cmdlist".to_string(), render_cmdlist(&[power_on])),
        ]))
    }

    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    /// Why the simulation stopped, if it did.
    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    /// Runs one round. After an error (or the time limit) nothing runs and
    /// the error is returned again.
    pub fn step(&mut self) -> Result<(), SimError> {
        if let Some(why) = &self.halted {
            return Err(SimError(why.clone()));
        }
        // Stop early enough that a replay of the export, which runs on for
        // a quiet period after the last command, stays within the limit.
        if self.sim.world().now + REPLAY_MARGIN_SECS > MAX_SIM_TIME_SECS {
            let why = format!("the simulation reached its time limit ({MAX_SIM_TIME_SECS} s)");
            self.halted = Some(why.clone());
            return Err(SimError(why));
        }
        match self.sim.round() {
            Ok(RoundEnd::Running) => Ok(()),
            Ok(RoundEnd::Done) => {
                let why = "the simulation ended".to_string();
                self.halted = Some(why.clone());
                Err(SimError(why))
            }
            Err(e) => {
                self.halted = Some(e.0.clone());
                Err(e)
            }
        }
    }

    /// Checks a command in cmdlist syntax and queues it for the next batch
    /// slot. A bad command is refused with the reason and changes nothing.
    pub fn command(&mut self, text: &str) -> Result<(), String> {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let command = parse_command(&text, &self.hardware).map_err(|e| format!("command '{text}': {e}"))?;
        self.sim.queue_command(CmdEntry { text, command });
        Ok(())
    }

    /// The scenario folder of the session: the inputs it started from, the
    /// cmdlist of every batch slot so far (plus what is still to come), and
    /// the log so far as `log.session` (the replay's log starts with it).
    pub fn export_files(&self) -> BTreeMap<String, String> {
        let mut files = self.inputs.clone();
        let batches: Vec<Vec<String>> = self
            .sim
            .session_cmdlist()
            .into_iter()
            .map(|batch| batch.into_iter().map(|e| e.text).collect())
            .collect();
        files.insert("cmdlist".into(), render_cmdlist(&batches));
        let mut log = self.sim.log().join("\n");
        log.push('\n');
        files.insert("log.session".into(), log);
        files.insert(
            "README".into(),
            "Exported from the hactor-sim web console: `hactor-sim run` on this folder\n\
             replays the session; its log starts with log.session.\n"
                .into(),
        );
        files
    }
}

/// A cmdlist in upstream's layout: one batch per line.
pub fn render_cmdlist(batches: &[Vec<String>]) -> String {
    let lines: Vec<String> = batches
        .iter()
        .map(|batch| format!("    {}", serde_json::to_string(batch).unwrap_or_default()))
        .collect();
    if lines.is_empty() {
        return "[]\n".into();
    }
    format!("[\n{}\n]\n", lines.join(",\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &BTreeMap<String, String>) {
        std::fs::create_dir_all(dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    #[test]
    fn an_exported_session_replays_to_the_same_log() {
        let tmp = tempfile::tempdir().unwrap();
        let start = tmp.path().join("start");
        write(&start, &Session::generated_files(3, 6).unwrap());
        let mut session = Session::load(&start).unwrap();
        for _ in 0..7 {
            session.step().unwrap();
        }
        session.command("power node2 off").unwrap();
        assert_eq!(session.simulator().queued_commands().len(), 1);
        for _ in 0..30 {
            session.step().unwrap();
        }
        session.command("service vm:101 migrate node3").unwrap();
        session.command("crm node1 enable-node-maintenance node3").unwrap_err();
        session.command("crm node3 enable-node-maintenance").unwrap();
        for _ in 0..12 {
            session.step().unwrap();
        }
        // A command still queued at export time is part of the export.
        session.command("power node2 on").unwrap();
        let log = session.simulator().log().to_vec();
        assert!(
            log.iter()
                .any(|l| l.contains("node 'node2': state changed from 'unknown' => 'fence'")),
            "{log:#?}"
        );
        let out = tmp.path().join("export");
        let files = session.export_files();
        assert!(
            files["cmdlist"].contains("[\"power node2 off\"]"),
            "{}",
            files["cmdlist"]
        );
        write(&out, &files);
        let replay = crate::sim::run_scenario(&out).unwrap();
        assert!(replay.len() > log.len());
        assert_eq!(replay[..log.len()], log[..]);
        assert!(replay[log.len()..].iter().any(|l| l.contains("execute power node2 on")));
    }

    #[test]
    fn bad_commands_and_sizes_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), &Session::generated_files(2, 1).unwrap());
        let mut session = Session::load(tmp.path()).unwrap();
        assert_eq!(
            session.command("power node7 off").unwrap_err(),
            "command 'power node7 off': no such node 'node7'"
        );
        assert!(session.simulator().queued_commands().is_empty());
        assert!(Session::generated_files(0, 1).is_err());
        assert!(Session::generated_files(17, 1).is_err());
        assert!(Session::generated_files(3, 501).is_err());
    }
}
