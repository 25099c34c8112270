//! The simulated hardware and admin commands of a cmdlist (spec §8.3):
//! one dispatch that logs the command, then one small step per family:
//! node power and hardware, the node's daemons, the CRM's command queue,
//! the service table, and the run's own pacing.

use std::collections::BTreeMap;

use crate::core::crm::Crm;
use crate::core::status::ResourceConfig;
use crate::core::store::Op;
use crate::core::types::RequestState;

use super::super::scenario::{CfsPart, Daemon, HwCommand};
use super::{SimError, Simulator};

/// Statistics commands give memory in MiB; the world keeps bytes.
const MIB: f64 = 1024.0 * 1024.0;

impl Simulator {
    /// Executes one hardware command, logged as `execute <text>` under `source`.
    pub(super) fn hardware_command(&mut self, text: &str, source: &str, command: &HwCommand) -> Result<(), SimError> {
        self.world.log_hw(source, &format!("execute {text}"));
        match command {
            HwCommand::Power { node, on } => self.set_power(node, *on),
            HwCommand::Network { node, on } => {
                self.world.nodes.get_mut(node).expect("validated node").hw.network = *on;
            }
            HwCommand::Reboot { node } => self.request_node_shutdown(node, "reboot"),
            HwCommand::Shutdown { node } => self.request_node_shutdown(node, "shutdown"),
            HwCommand::RestartLrm { node } => self.restart_lrm(node),
            HwCommand::CrmStop { node } => self.stop_crm(node),
            HwCommand::CrmStart { node } => self.start_crm(node),
            HwCommand::CrmQueue { command, .. } | HwCommand::ServiceQueue { command, .. } => {
                self.world.store.apply(Op::QueueCrmCommand(command.clone()));
            }
            HwCommand::Cfs { node, what, works } => self.set_cfs(node, *what, *works),
            HwCommand::Version { node, version } => {
                self.world.nodes.get_mut(node).expect("validated node").hw.version = Some(version.clone());
            }
            HwCommand::ServiceState { sid, state } => {
                if let Some(cd) = self.world.service_mut(sid) {
                    cd.state = *state;
                }
            }
            HwCommand::ServiceAdd {
                sid,
                node,
                state,
                running,
            } => self.add_service(sid, node, *state, *running),
            HwCommand::ServiceDelete { sid } => self.delete_service(sid),
            HwCommand::ServiceLock { sid, lock } => {
                if let Some(cd) = self.world.service_mut(sid) {
                    cd.lock = Some(lock.clone());
                }
            }
            HwCommand::ServiceUnlock { sid, lock } => self.unlock_service(sid, lock.as_deref()),
            HwCommand::ServiceStaticStats {
                sid,
                maxcpu,
                maxmem_mib,
            } => self.set_static_stats(sid, *maxcpu, *maxmem_mib),
            HwCommand::ServiceDynamicStats { sid, cpu, mem_mib } => self.set_dynamic_stats(sid, *cpu, *mem_mib),
            HwCommand::ServiceManualMigrate { sid, node } => self.manual_migrate(sid, node)?,
            HwCommand::Delay { .. } => {}
            HwCommand::SkipRound { daemon, rounds } => self.skip_round(*daemon, *rounds),
        }
        Ok(())
    }

    /// `power <node> on|off`: on boots the daemons with a working cfs;
    /// off kills them (logged, as upstream), drops their watchdogs and
    /// whatever ran there. Either way the network follows the power and
    /// a pending reboot or shutdown is over.
    fn set_power(&mut self, node: &str, on: bool) {
        if on {
            self.start_daemons(node);
            let n = self.world.nodes.get_mut(node).expect("validated node");
            n.cfs_rw = true;
            n.cfs_update = true;
        } else {
            self.kill_daemons(node);
        }
        let n = self.world.nodes.get_mut(node).expect("validated node");
        n.hw.power = on;
        n.hw.network = on;
        n.shutdown = None;
    }

    /// The power-off half of [`Simulator::set_power`]: the node's daemons
    /// die without a word to the cluster, and its guests with them.
    fn kill_daemons(&mut self, node: &str) {
        let d = self.daemons.get_mut(node).expect("validated node");
        let (had_crm, had_lrm) = (d.crm.take().is_some(), d.lrm.take().is_some());
        if had_crm {
            self.daemon_log(node, Daemon::Crm, "killed by poweroff");
        }
        if had_lrm {
            self.daemon_log(node, Daemon::Lrm, "killed by poweroff");
        }
        self.world.drop_watchdogs(node);
        self.world.running.insert(node.to_string(), BTreeMap::new());
    }

    /// `reboot <node>` / `shutdown <node>`: the node goes down as `kind`
    /// once its LRM, asked to stop here, has exited.
    fn request_node_shutdown(&mut self, node: &str, kind: &'static str) {
        self.world.nodes.get_mut(node).expect("validated node").shutdown = Some(kind);
        self.lrm_shutdown_request(node);
    }

    /// `restart-lrm <node>`: the LRM is asked to stop and recreated when
    /// it exits (nothing happens without a running LRM).
    fn restart_lrm(&mut self, node: &str) {
        if self.daemons[node].lrm.is_some() {
            self.daemons.get_mut(node).expect("validated node").lrm_restart = true;
            self.lrm_shutdown_request(node);
        }
    }

    /// `crm <node> stop`: the CRM is asked to stop, and its exit is
    /// marked as expected.
    fn stop_crm(&mut self, node: &str) {
        if let Some(mut crm) = self.daemons.get_mut(node).and_then(|d| d.crm.take()) {
            crm.shutdown_request(&mut self.env(node, Daemon::Crm));
            let d = self.daemons.get_mut(node).expect("validated node");
            d.crm = Some(crm);
            d.crm_stop = true;
        }
    }

    /// `crm <node> start`: a new CRM unless one runs.
    fn start_crm(&mut self, node: &str) {
        if self.daemons[node].crm.is_none() {
            let crm = Crm::new(&mut self.env(node, Daemon::Crm));
            self.daemons.get_mut(node).expect("validated node").crm = Some(crm);
        }
    }

    /// `cfs <node> rw|update work|fail`: one of the node's cfs switches.
    fn set_cfs(&mut self, node: &str, what: CfsPart, works: bool) {
        let n = self.world.nodes.get_mut(node).expect("validated node");
        match what {
            CfsPart::Rw => n.cfs_rw = works,
            CfsPart::Update => n.cfs_update = works,
        }
    }

    /// `service <sid> add <node> [state] [running]`: a new resource, and
    /// its guest on `node` running or not.
    fn add_service(&mut self, sid: &str, node: &str, state: RequestState, running: bool) {
        self.world
            .store
            .resources
            .insert(sid.to_string(), ResourceConfig::new(node, state));
        self.world
            .running
            .entry(node.to_string())
            .or_default()
            .insert(sid.to_string(), running);
    }

    /// `service <sid> delete`: the resource and its statistics.
    fn delete_service(&mut self, sid: &str) {
        self.world.store.resources.remove(sid);
        self.world.stats.remove(sid);
    }

    /// `service <sid> unlock [lock]`: clears the lock, only the named one
    /// when a name is given.
    fn unlock_service(&mut self, sid: &str, lock: Option<&str>) {
        let matches = self
            .world
            .store
            .resources
            .get(sid)
            .is_some_and(|cd| lock.is_none() || cd.lock.as_deref() == lock);
        if let Some(cd) = self.world.service_mut(sid).filter(|_| matches) {
            cd.lock = None;
        }
    }

    /// `service <sid> set-static-stats`: the values given replace the
    /// recorded ones (memory given in MiB, kept in bytes).
    fn set_static_stats(&mut self, sid: &str, maxcpu: Option<f64>, maxmem_mib: Option<f64>) {
        let entry = self.world.stats.entry(sid.to_string()).or_default();
        entry.maxcpu = maxcpu.or(entry.maxcpu);
        entry.maxmem = maxmem_mib.map(|mib| mib * MIB).or(entry.maxmem);
    }

    /// `service <sid> set-dynamic-stats`: likewise for measured usage.
    fn set_dynamic_stats(&mut self, sid: &str, cpu: Option<f64>, mem_mib: Option<f64>) {
        let entry = self.world.stats.entry(sid.to_string()).or_default();
        entry.cpu = cpu.or(entry.cpu);
        entry.mem = mem_mib.map(|mib| mib * MIB).or(entry.mem);
    }

    /// `service <sid> manual-migrate <node>`: moves a service behind the
    /// HA stack's back, which upstream allows only where HA leaves it
    /// alone (an ignored service, or disarmed in ignore mode).
    fn manual_migrate(&mut self, sid: &str, node: &str) -> Result<(), SimError> {
        let ignored = self
            .world
            .store
            .resources
            .get(sid)
            .is_some_and(|cd| cd.state == RequestState::Ignored);
        let disarmed_ignore = self
            .world
            .store
            .manager_status
            .disarm
            .as_ref()
            .is_some_and(|d| d.mode == "ignore");
        if !(ignored || disarmed_ignore) {
            return Err(SimError(format!(
                "manual-migrate of '{sid}' is only allowed for ignored services or in disarm ignore mode"
            )));
        }
        self.world.change_service_location(sid, node);
        Ok(())
    }

    /// `skip-round crm|lrm <n>`: the daemon sits out its next `n` rounds.
    fn skip_round(&mut self, daemon: Daemon, rounds: u32) {
        self.skip_rounds.insert(daemon, rounds);
    }
}
