//! Hardware fencing through standard fence agents (`fence_ipmilan`,
//! `fence_apc`, ...): what the master runs when it fences a node that has
//! a device in `fence.cfg` ([`crate::config::fence`]).
//!
//! A run walks the node's devices in order (upstream's `Fence.pm`): each
//! try runs the agents of one device's connected sub-devices in parallel,
//! each as `<agent> <device args> <node args> --action=off` (any `action`
//! of the configuration replaced), then the same with `--action=status`;
//! fence agents exit 0 on success, and `status` exits 2 when the port is
//! off. The try succeeds when every sub-device confirmed off; otherwise the
//! next device is tried, and when none is left the run failed. Each call
//! has a deadline (its process group is killed at it).
//!
//! The decision stays in the core: the manager asks for a run and is told
//! where it stands ([`crate::core::env::Env::fence_device`]); the CRM
//! actor starts runs with [`FenceRunner::start`] only after a round the
//! store confirmed (a master that lost its lock fences nobody), and hands
//! the next round a [`FenceRunner::view`].
//!
//! Log lines keep upstream's wording (`Start fencing node ...`,
//! `[fence '<node>'] execute cmd: ...`, `fence job for node ... failed`,
//! `tried all fence devices for node ...`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::command::{Invocation, Outcome, run};
use crate::config::fence::{FenceCommand, FenceConfig};
use crate::core::env::FenceDeviceState;
use crate::core::types::NodeName;

/// Exit code of a fence agent's `status` when the port is off.
const STATUS_OFF: i32 = 2;

/// The master's fence-device runs.
pub struct FenceRunner {
    /// `fence.cfg`, read at every view and run (edits apply without a
    /// restart; a file that does not parse means no devices, logged).
    config: PathBuf,
    /// Limit of each agent call.
    timeout: Duration,
    runs: Mutex<BTreeMap<NodeName, Run>>,
    /// Numbers the runs.
    generation: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    /// Distinguishes a reset run's late result from a new run's.
    generation: u64,
    state: FenceDeviceState,
}

impl FenceRunner {
    pub fn new(config: PathBuf, timeout: Duration) -> Arc<FenceRunner> {
        Arc::new(FenceRunner {
            config,
            timeout,
            runs: Mutex::new(BTreeMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn read_config(&self) -> Option<FenceConfig> {
        let text = std::fs::read_to_string(&self.config).ok()?;
        match FenceConfig::parse(&text) {
            Ok(config) => Some(config),
            Err(errors) => {
                let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                tracing::error!(
                    "{}: not used, hardware fencing is off - {}",
                    self.config.display(),
                    lines.join("; ")
                );
                None
            }
        }
    }

    /// For a round: every node a device can fence, with its run's state
    /// (`None`: no run since the last reset).
    pub fn view(&self, nodes: impl IntoIterator<Item = NodeName>) -> BTreeMap<NodeName, Option<FenceDeviceState>> {
        let config = self.read_config();
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        nodes
            .into_iter()
            .filter(|node| config.as_ref().is_some_and(|c| c.has_device(node)) || runs.contains_key(node))
            .map(|node| {
                let state = runs.get(&node).map(|r| r.state);
                (node, state)
            })
            .collect()
    }

    /// Starts a run for `node` unless one is under way or finished.
    pub fn start(self: &Arc<Self>, node: &str) {
        let generation = {
            let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
            if runs.contains_key(node) {
                return;
            }
            let generation = self.generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            runs.insert(
                node.to_string(),
                Run {
                    generation,
                    state: FenceDeviceState::Running,
                },
            );
            generation
        };
        let Some(config) = self.read_config() else {
            self.finish(node, generation, FenceDeviceState::Failed);
            return;
        };
        let runner = Arc::clone(self);
        let node = node.to_string();
        std::thread::spawn(move || {
            let state = runner.run_tries(&config, &node);
            runner.finish(&node, generation, state);
        });
    }

    /// Where `node`'s run stands (`None`: no run).
    pub fn run_state(&self, node: &str) -> Option<FenceDeviceState> {
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .map(|r| r.state)
    }

    /// Forgets `node`'s run (the fence was acknowledged); a call still
    /// running finishes unheard.
    pub fn reset(&self, node: &str) {
        self.runs.lock().unwrap_or_else(|e| e.into_inner()).remove(node);
    }

    fn finish(&self, node: &str, generation: u64, state: FenceDeviceState) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(run) = runs.get_mut(node)
            && run.generation == generation
        {
            run.state = state;
        }
    }

    /// The tries, in device order, until one confirms the node off.
    fn run_tries(&self, config: &FenceConfig, node: &str) -> FenceDeviceState {
        if !config.has_device(node) {
            tracing::error!("no fence commands for node '{node}'");
            return FenceDeviceState::Failed;
        }
        tracing::warn!("Start fencing node '{node}'");
        for try_index in 0.. {
            let Some(commands) = config.commands(node, try_index) else {
                break;
            };
            let handles: Vec<_> = commands
                .into_iter()
                .map(|command| {
                    let (node, timeout) = (node.to_string(), self.timeout);
                    std::thread::spawn(move || fence_one(&node, &command, timeout))
                })
                .collect();
            let results: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap_or(false)).collect();
            if results.iter().all(|ok| *ok) {
                tracing::warn!("fence device confirmed node '{node}' off");
                return FenceDeviceState::Off;
            }
        }
        tracing::error!("tried all fence devices for node '{node}'");
        FenceDeviceState::Failed
    }
}

/// One sub-device: `off`, then `status` must say off.
fn fence_one(node: &str, command: &FenceCommand, timeout: Duration) -> bool {
    let line = command.command_line();
    tracing::warn!("[fence '{node}'] execute cmd: {line} --action=off");
    let off = call(command, "off", timeout);
    if off != Some(Outcome::Exited(0)) {
        tracing::error!(
            "fence job for node '{node}' failed, command '{line} --action=off' exited with '{}'",
            describe(off)
        );
        return false;
    }
    let status = call(command, "status", timeout);
    if status != Some(Outcome::Exited(STATUS_OFF)) {
        tracing::error!(
            "fence job for node '{node}' failed, command '{line} --action=status' did not confirm off ('{}')",
            describe(status)
        );
        return false;
    }
    true
}

fn call(command: &FenceCommand, action: &str, timeout: Duration) -> Option<Outcome> {
    let argv: Vec<String> = std::iter::once(command.agent.clone())
        .chain(command.argv(action))
        .collect();
    match run(&Invocation::new(argv, timeout)) {
        Ok(finished) => Some(finished.outcome),
        Err(e) => {
            tracing::error!("{e}");
            None
        }
    }
}

fn describe(outcome: Option<Outcome>) -> String {
    match outcome {
        Some(Outcome::Exited(code)) => code.to_string(),
        Some(Outcome::Signalled(signal)) => format!("signal {signal}"),
        Some(Outcome::TimedOut) => "timeout".into(),
        None => "not started".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A fence agent as a shell script: records its arguments, answers
    /// `off` and `status` as `off_code` and `status_code`.
    fn agent(dir: &std::path::Path, name: &str, off_code: i32, status_code: i32, sleep: u32) -> PathBuf {
        let path = dir.join(name);
        let script = format!(
            "#!/bin/sh\necho \"$*\" >> {log}\nsleep {sleep}\ncase \"$*\" in *--action=off*) exit {off_code};; \
             *--action=status*) exit {status_code};; esac\nexit 1\n",
            log = dir.join("calls").display()
        );
        std::fs::write(&path, script).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).unwrap();
        path
    }

    fn wait(runner: &FenceRunner, node: &str) -> Option<FenceDeviceState> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = runner.view([node.to_string()]).get(node).copied().flatten();
            if state != Some(FenceDeviceState::Running) || Instant::now() > deadline {
                return state;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_failing_device_falls_back_and_parallel_agents_must_all_confirm() {
        let dir = tempfile::tempdir().unwrap();
        let bad = agent(dir.path(), "fence_bad", 1, 0, 0);
        let good = agent(dir.path(), "fence_good", 0, 2, 0);
        let cfg = dir.path().join("fence.cfg");
        std::fs::write(
            &cfg,
            format!(
                "device a {} ip=10.0.0.1 action=reboot\nconnect a node=n1 plug=1\n\
                 device b:1 {good} ip=10.0.0.2\ndevice b:2 {good} ip=10.0.0.3\n\
                 connect b:1 node=n1 plug=1\nconnect b:2 node=n1 plug=1\n",
                bad.display(),
                good = good.display()
            ),
        )
        .unwrap();
        let runner = FenceRunner::new(cfg, Duration::from_secs(5));
        assert_eq!(
            runner.view(["n1".to_string(), "n2".to_string()]),
            BTreeMap::from([("n1".to_string(), None)])
        );
        runner.start("n1");
        assert_eq!(wait(&runner, "n1"), Some(FenceDeviceState::Off));
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        let mut lines: Vec<&str> = calls.lines().collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "--ip=10.0.0.1 --plug=1 --action=off",
                "--ip=10.0.0.2 --plug=1 --action=off",
                "--ip=10.0.0.2 --plug=1 --action=status",
                "--ip=10.0.0.3 --plug=1 --action=off",
                "--ip=10.0.0.3 --plug=1 --action=status",
            ]
        );
        // Done runs are not started again until reset.
        runner.start("n1");
        assert_eq!(std::fs::read_to_string(dir.path().join("calls")).unwrap(), calls);
        runner.reset("n1");
        assert_eq!(
            runner.view(["n1".to_string()]),
            BTreeMap::from([("n1".to_string(), None)])
        );
    }

    #[test]
    fn a_device_that_does_not_confirm_off_or_hangs_fails() {
        let dir = tempfile::tempdir().unwrap();
        let still_on = agent(dir.path(), "fence_on", 0, 0, 0);
        let hangs = agent(dir.path(), "fence_hang", 0, 2, 30);
        let cfg = dir.path().join("fence.cfg");
        std::fs::write(
            &cfg,
            format!(
                "device a {} ip=1\nconnect a node=n1 plug=1\ndevice b {} ip=2\nconnect b node=n1 plug=1\n",
                still_on.display(),
                hangs.display()
            ),
        )
        .unwrap();
        let runner = FenceRunner::new(cfg, Duration::from_millis(300));
        let started = Instant::now();
        runner.start("n1");
        assert_eq!(wait(&runner, "n1"), Some(FenceDeviceState::Failed));
        assert!(started.elapsed() < Duration::from_secs(5), "the hung agent was cut off");
    }
}
