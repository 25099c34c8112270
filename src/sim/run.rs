//! The virtual-time run loop (upstream `TestHardware::run`, spec §8.4);
//! the simulated hardware commands (§8.3) it applies are in `hardware`.
//!
//! Each round runs every node's CRM then LRM, in node order; every daemon
//! iteration takes exactly one virtual second; a round lasts
//! `max(20, 2 × nodes)` seconds; command batches apply every fifth round.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use crate::core::crm::Crm;
use crate::core::env::Env;
use crate::core::lrm::Lrm;
use crate::core::types::{NodeName, Time};

use super::scenario::{CmdEntry, Daemon, HwCommand, Scenario};
use super::world::{SimEnv, World};

mod hardware;

/// Hard limit of simulated time.
pub const MAX_SIM_TIME_SECS: Time = 10_000;
/// The run ends this long after the last command.
const QUIET_END_SECS: Time = 500;
/// Command batches apply every this many rounds.
const ROUNDS_PER_BATCH: u64 = 5;

/// Why a simulation stopped early (upstream dies with these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError(pub String);

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SimError {}

/// The daemons of one node and the harness's flags about them.
#[derive(Debug, Default)]
struct NodeDaemons {
    crm: Option<Crm>,
    lrm: Option<Lrm>,
    /// The CRM was asked to stop (`crm <node> stop`): its exit is expected.
    crm_stop: bool,
    /// The LRM is restarting (`restart-lrm`): recreate it when it exits.
    lrm_restart: bool,
}

/// A scenario being simulated.
pub struct Simulator {
    world: World,
    daemons: BTreeMap<NodeName, NodeDaemons>,
    cmdlist: VecDeque<Vec<CmdEntry>>,
    skip_rounds: BTreeMap<Daemon, u32>,
    pacing: Pacing,
    /// Interactive use (`hactor-sim serve`): see [`Simulator::live`].
    live: Option<Live>,
}

/// When the next command batch applies (upstream's run-loop counters).
#[derive(Debug, Default)]
struct Pacing {
    started: bool,
    last_command_time: Time,
    next_command_at: Time,
    loop_count: u64,
}

/// What interactive use adds: commands given while the simulation runs,
/// and the record of every batch slot, so that the session can be written
/// out as a cmdlist that `hactor-sim run` replays to the same log.
#[derive(Debug, Default)]
struct Live {
    /// Commands waiting for the next batch slot.
    queued: Vec<CmdEntry>,
    /// Every batch applied so far, one per batch slot (empty ones too).
    applied: Vec<Vec<CmdEntry>>,
}

/// How a round ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundEnd {
    /// The simulation goes on.
    Running,
    /// The command list is done and the cluster was quiet long enough.
    Done,
}

impl Simulator {
    pub fn new(scenario: Scenario) -> Simulator {
        let world = World::new(&scenario);
        let daemons = scenario
            .hardware
            .keys()
            .map(|n| (n.clone(), NodeDaemons::default()))
            .collect();
        // Daemons start only with a `power on` command, even on nodes whose
        // hardware starts powered (they count for quorum, as upstream's).
        Simulator {
            world,
            daemons,
            cmdlist: scenario.cmdlist.into_iter().collect(),
            skip_rounds: BTreeMap::new(),
            pacing: Pacing::default(),
            live: None,
        }
    }

    /// Fence devices of the simulated hardware (none unless set).
    pub fn set_fence(&mut self, fence: super::fence::SimFence) {
        self.world.fence = fence;
    }

    /// Carries out the power-offs fence devices were asked for, logged
    /// with the agent as source (upstream's simulator does the same).
    fn run_fence_devices(&mut self) -> Result<(), SimError> {
        for (agent, node) in self.world.fence.take_power_offs() {
            self.hardware_command(&format!("power {node} off"), &agent, &power(&node, false))?;
            self.world.fence.powered_off(&node);
        }
        Ok(())
    }

    /// A simulator for interactive use: it never ends on a quiet cluster
    /// (only at [`MAX_SIM_TIME_SECS`]), takes commands with
    /// [`Simulator::queue_command`] and records every batch slot for
    /// [`Simulator::session_cmdlist`].
    pub fn live(scenario: Scenario) -> Simulator {
        let mut sim = Simulator::new(scenario);
        sim.live = Some(Live::default());
        sim
    }

    /// Queues a command for the next batch slot (after the scenario's own
    /// batch of that slot, if any). Only for a [`Simulator::live`] one.
    pub fn queue_command(&mut self, entry: CmdEntry) {
        if let Some(live) = &mut self.live {
            live.queued.push(entry);
        }
    }

    /// Commands queued for the next batch slot.
    pub fn queued_commands(&self) -> &[CmdEntry] {
        self.live.as_ref().map_or(&[], |l| &l.queued)
    }

    /// The cmdlist of the session so far: every batch slot taken, then the
    /// scenario's batches not reached yet and the queued commands. Run as
    /// a scenario it replays the session's log (and goes on from there).
    pub fn session_cmdlist(&self) -> Vec<Vec<CmdEntry>> {
        let Some(live) = &self.live else {
            return self.cmdlist.iter().cloned().collect();
        };
        let mut out = live.applied.clone();
        out.extend(self.cmdlist.iter().cloned());
        if !live.queued.is_empty() {
            match out.get_mut(live.applied.len()) {
                Some(next) => next.extend(live.queued.iter().cloned()),
                None => out.push(live.queued.clone()),
            }
        }
        out
    }

    /// The CRM state of a node's daemon (`None`: not running).
    pub fn crm_state(&self, node: &str) -> Option<&'static str> {
        Some(self.daemons.get(node)?.crm.as_ref()?.state().as_str())
    }

    /// The LRM state and mode of a node's daemon (`None`: not running).
    pub fn lrm_state(&self, node: &str) -> Option<(&'static str, String)> {
        let lrm = self.daemons.get(node)?.lrm.as_ref()?;
        Some((lrm.state().as_str(), lrm.mode().to_string()))
    }

    /// The LRM's restart counter of a service (restart policy), if any.
    pub fn restart_tries(&self, node: &str, sid: &str) -> u32 {
        self.daemons
            .get(node)
            .and_then(|d| d.lrm.as_ref())
            .and_then(|lrm| lrm.restart_tries().get(sid).copied())
            .unwrap_or(0)
    }

    /// The log so far.
    pub fn log(&self) -> &[String] {
        &self.world.log
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    fn env(&mut self, node: &str, daemon: Daemon) -> SimEnv<'_> {
        SimEnv {
            world: &mut self.world,
            node: node.to_string(),
            daemon,
        }
    }

    fn start_daemons(&mut self, node: &str) {
        if self.daemons[node].crm.is_none() {
            let crm = Crm::new(&mut self.env(node, Daemon::Crm));
            self.daemons.get_mut(node).expect("known node").crm = Some(crm);
        }
        if self.daemons[node].lrm.is_none() {
            let lrm = Lrm::new(&mut self.env(node, Daemon::Lrm));
            let d = self.daemons.get_mut(node).expect("known node");
            d.lrm = Some(lrm);
            d.lrm_restart = false;
        }
    }

    /// Runs the scenario to its end.
    pub fn run(&mut self) -> Result<(), SimError> {
        while self.round()? == RoundEnd::Running {}
        Ok(())
    }

    /// Runs one round: every node's CRM and LRM, then (every fifth round)
    /// the next command batch.
    pub fn round(&mut self) -> Result<RoundEnd, SimError> {
        if !self.pacing.started {
            self.pacing.started = true;
            self.world.log_hw("hardware", "starting simulation");
        }
        {
            let start = self.world.now;
            let nodes: Vec<NodeName> = self.world.nodes.keys().cloned().collect();
            let loop_time = (2 * nodes.len() as Time).max(20);
            if loop_time >= 60 {
                return Err(SimError("unable to simulate so many nodes".into()));
            }
            let skip_crm = self.take_skip(Daemon::Crm);
            let skip_lrm = self.take_skip(Daemon::Lrm);
            for node in &nodes {
                if !skip_crm {
                    self.iterate_crm(node)?;
                    self.run_fence_devices()?;
                }
                if !skip_lrm {
                    self.iterate_lrm(node)?;
                }
                for n in &nodes {
                    if !self.world.watchdog_ok(n) {
                        self.hardware_command(&format!("power {n} off"), "watchdog", &power(n, false))?;
                        self.world
                            .log_hw("hardware", &format!("server '{n}' stopped by poweroff (watchdog)"));
                        let d = self.daemons.get_mut(n).expect("known node");
                        d.crm = None;
                        d.lrm = None;
                    }
                }
            }
            if self.world.now - start < loop_time {
                self.world.now = start + loop_time;
            }
            if self.world.now > MAX_SIM_TIME_SECS {
                return Err(SimError("simulation exceeded maximum time".into()));
            }
            let now = self.world.now;
            for clock in self.world.clocks.values_mut().flat_map(BTreeMap::values_mut) {
                clock.time = now;
                clock.loop_delay = 0;
            }
            if now < self.pacing.next_command_at {
                return Ok(RoundEnd::Running);
            }
            if self.pacing.loop_count.is_multiple_of(ROUNDS_PER_BATCH) {
                let mut batch = self.cmdlist.pop_front();
                if let Some(live) = &mut self.live {
                    // A live session fills every slot (with an empty batch
                    // when nothing is queued): a replay then meets each
                    // command at the same slot.
                    let mut taken = batch.take().unwrap_or_default();
                    taken.append(&mut live.queued);
                    live.applied.push(taken.clone());
                    batch = Some(taken);
                }
                match batch {
                    None => {
                        if now - self.pacing.last_command_time > QUIET_END_SECS {
                            self.world.log_hw("hardware", "exit simulation - done");
                            return Ok(RoundEnd::Done);
                        }
                    }
                    Some(batch) => {
                        for entry in batch {
                            self.pacing.last_command_time = now;
                            if let HwCommand::Delay { secs } = entry.command {
                                self.pacing.next_command_at = now + secs;
                            }
                            self.hardware_command(&entry.text, "cmdlist", &entry.command)?;
                        }
                    }
                }
            }
            self.pacing.loop_count += 1;
        }
        Ok(RoundEnd::Running)
    }

    fn take_skip(&mut self, daemon: Daemon) -> bool {
        let Some(count) = self.skip_rounds.get_mut(&daemon).filter(|c| **c > 0) else {
            return false;
        };
        *count -= 1;
        let what = match daemon {
            Daemon::Crm => "skipping CRM round",
            Daemon::Lrm => "skipping LRM round",
        };
        self.world.log_hw("run-loop", what);
        true
    }

    /// Starts a daemon iteration at the hardware time; returns its end time.
    fn begin(&mut self, node: &str, daemon: Daemon) {
        let now = self.world.now;
        let clock = self.world.clock_mut(node, daemon);
        clock.time = now;
        clock.loop_delay = 0;
    }

    fn end(&mut self, node: &str, daemon: Daemon) -> Result<(), SimError> {
        let clock = self.world.clock_mut(node, daemon);
        if clock.loop_delay > 300 {
            return Err(SimError(format!("loop take too long ({} seconds)", clock.loop_delay)));
        }
        clock.loop_delay = 0;
        clock.time += 1;
        let time = clock.time;
        self.world.now = self.world.now.max(time);
        Ok(())
    }

    fn iterate_crm(&mut self, node: &str) -> Result<(), SimError> {
        let Some(mut crm) = self.daemons.get_mut(node).and_then(|d| d.crm.take()) else {
            return Ok(());
        };
        self.begin(node, Daemon::Crm);
        let alive = crm.iterate(&mut self.env(node, Daemon::Crm));
        self.end(node, Daemon::Crm)?;
        if alive {
            self.daemons.get_mut(node).expect("known node").crm = Some(crm);
            return Ok(());
        }
        self.daemon_log(node, Daemon::Crm, "exit (loop end)");
        let stop_expected = std::mem::take(&mut self.daemons.get_mut(node).expect("known node").crm_stop);
        match self.world.nodes[node].shutdown {
            Some("reboot") => {
                self.hardware_command(&format!("power {node} off"), "reboot", &power(node, false))?;
                self.hardware_command(&format!("power {node} on"), "reboot", &power(node, true))?;
            }
            Some(_) => {
                self.hardware_command(&format!("power {node} off"), "shutdown", &power(node, false))?;
            }
            None if stop_expected => {}
            None => return Err(SimError("unexpected CRM exit - not implemented".into())),
        }
        Ok(())
    }

    fn iterate_lrm(&mut self, node: &str) -> Result<(), SimError> {
        let Some(mut lrm) = self.daemons.get_mut(node).and_then(|d| d.lrm.take()) else {
            return Ok(());
        };
        self.begin(node, Daemon::Lrm);
        let alive = lrm.iterate(&mut self.env(node, Daemon::Lrm));
        self.end(node, Daemon::Lrm)?;
        if alive {
            self.daemons.get_mut(node).expect("known node").lrm = Some(lrm);
            return Ok(());
        }
        self.daemon_log(node, Daemon::Lrm, "exit (loop end)");
        let shutdown = self.world.nodes[node].shutdown;
        let d = self.daemons.get_mut(node).expect("known node");
        if d.lrm_restart {
            if shutdown.is_some() {
                return Err(SimError("lrm restart during shutdown - not implemented".into()));
            }
            d.lrm_restart = false;
            let lrm = Lrm::new(&mut self.env(node, Daemon::Lrm));
            self.daemons.get_mut(node).expect("known node").lrm = Some(lrm);
        } else if let Some(kind) = shutdown {
            let cmd = HwCommand::CrmStop { node: node.to_string() };
            self.hardware_command(&format!("crm {node} stop"), kind, &cmd)?;
        } else {
            return Err(SimError("unexpected LRM exit - not implemented".into()));
        }
        Ok(())
    }

    /// A line of a daemon's own (not an HA event): exits and power kills.
    fn daemon_log(&mut self, node: &str, daemon: Daemon, message: &str) {
        let env = self.env(node, daemon);
        let line = super::world::render_line("info", env.now(), &format!("{node}/{}", daemon.as_str()), message);
        self.world.log.push(line);
    }

    fn lrm_shutdown_request(&mut self, node: &str) {
        if let Some(mut lrm) = self.daemons.get_mut(node).and_then(|d| d.lrm.take()) {
            lrm.shutdown_request(&mut self.env(node, Daemon::Lrm));
            self.daemons.get_mut(node).expect("validated node").lrm = Some(lrm);
        }
    }
}

fn power(node: &str, on: bool) -> HwCommand {
    HwCommand::Power {
        node: node.to_string(),
        on,
    }
}
