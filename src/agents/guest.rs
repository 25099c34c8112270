//! The `vm` and `ct` agents: drive a hypervisor through commands, by
//! default a Proxmox host's `qm` and `pct` (upstream's `PVEVM` and
//! `PVECT` plugins, spec §4.8), overridable under `[agent.vm]` and
//! `[agent.ct]`.
//!
//! | action | default (`vm`; `ct` the same with `pct`) | result |
//! |---|---|---|
//! | status | `qm status {id}` | exit 0 and a line `status: running`: running; exit 0 otherwise: stopped; non-zero: not on this node (stopped, [`Agent::exists`] false); timeout or no such program: failed |
//! | start | `qm start {id}` | exit 0: done (the core then checks the status) |
//! | stop | `qm shutdown {id} --timeout {timeout}`, then `qm stop {id}` if it still runs; timeout 0: only `qm stop` | |
//! | migrate, stopped guest | `qm migrate {id} {target}` | exit 0 and `status` no longer finds it here: moved |
//! | migrate, running VM, online | `qm migrate {id} {target} --online --with-local-disks` | likewise |
//! | migrate, running VM, offline (relocate) | shutdown and stop as above, then the stopped-guest migration | likewise |
//! | migrate, running CT | `pct migrate {id} {target} --restart --timeout {timeout}` (containers always migrate in restart mode) | likewise |
//!
//! Every command gets `HACTOR_SID` and `HACTOR_NODE`, a start also
//! `HACTOR_FENCING_TOKEN`. Each runs under a deadline (`timeout_secs`,
//! `migrate_timeout_secs`; a shutdown gets its own timeout plus
//! `timeout_secs`) and is killed with its process group when it passes.

use std::time::Duration;

use super::spec::{GuestAgentConfig, GuestKind};
use crate::core::types::is_resource_name as valid_vmid;

use super::command::{self, Invocation, Outcome, expand};
use super::{Agent, Health, StartContext};

/// Runs `vm:<vmid>` or `ct:<vmid>` services through commands.
pub struct GuestAgent {
    config: GuestAgentConfig,
    node: String,
}

/// What `status` said.
enum Status {
    Running,
    Stopped,
    /// The command ran and said the guest is not on this node.
    Absent,
    /// Timed out, killed or could not run: we cannot tell.
    Unknown(String),
}

impl GuestAgent {
    pub fn new(config: GuestAgentConfig, node: &str) -> GuestAgent {
        GuestAgent {
            config,
            node: node.to_string(),
        }
    }

    fn kind(&self) -> &'static str {
        self.config.kind.as_str()
    }

    fn sid(&self, id: &str) -> String {
        format!("{}:{id}", self.kind())
    }

    fn check_id(&self, id: &str) -> Result<(), String> {
        if valid_vmid(id) {
            Ok(())
        } else {
            Err(format!("invalid VMID '{id}' for {}", self.sid(id)))
        }
    }

    fn invocation(&self, template: &[String], id: &str, extra: &[(&str, &str)], timeout: Duration) -> Invocation {
        let sid = self.sid(id);
        let mut vars = vec![("id", id), ("sid", sid.as_str()), ("node", self.node.as_str())];
        vars.extend_from_slice(extra);
        Invocation::new(expand(template, &vars), timeout)
            .envs(&self.config.env)
            .env("HACTOR_SID", sid.clone())
            .env("HACTOR_NODE", self.node.clone())
    }

    fn limit(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs)
    }

    /// Runs `invocation`; `Err` unless it exited 0.
    fn run_ok(invocation: &Invocation) -> Result<(), String> {
        let done = command::run(invocation)?;
        if done.success() {
            Ok(())
        } else {
            Err(done.describe(invocation))
        }
    }

    fn status(&self, id: &str) -> Status {
        if self.check_id(id).is_err() {
            return Status::Absent;
        }
        let invocation = self.invocation(&self.config.status, id, &[], self.limit());
        match command::run(&invocation) {
            Ok(done) => match done.outcome {
                Outcome::Exited(0) => {
                    let running = done
                        .stdout
                        .lines()
                        .any(|line| line.trim() == self.config.running_pattern.trim());
                    if running { Status::Running } else { Status::Stopped }
                }
                Outcome::Exited(_) => Status::Absent,
                Outcome::Signalled(_) | Outcome::TimedOut => Status::Unknown(done.describe(&invocation)),
            },
            Err(e) => Status::Unknown(e),
        }
    }

    /// Shutdown within `timeout`, then a hard stop if it still runs.
    fn shutdown(&self, id: &str, timeout: Duration) -> Result<(), String> {
        if !timeout.is_zero() {
            let secs = timeout.as_secs().to_string();
            let invocation = self.invocation(
                &self.config.shutdown,
                id,
                &[("timeout", secs.as_str())],
                timeout.saturating_add(self.limit()),
            );
            match Self::run_ok(&invocation) {
                Ok(()) if matches!(self.status(id), Status::Stopped | Status::Absent) => return Ok(()),
                Ok(()) => {}
                Err(e) => tracing::warn!("{}: shutdown failed, stopping hard - {e}", self.sid(id)),
            }
        }
        Self::run_ok(&self.invocation(&self.config.stop, id, &[], self.limit()))
    }

    fn default_shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.config.shutdown_timeout_secs)
    }
}

impl Agent for GuestAgent {
    fn running(&self, id: &str) -> bool {
        // Not knowing counts as running: a stop must not be skipped.
        matches!(self.status(id), Status::Running | Status::Unknown(_))
    }

    fn monitor(&self, id: &str) -> Health {
        match self.status(id) {
            Status::Running => Health::Running,
            Status::Stopped | Status::Absent => Health::Stopped,
            Status::Unknown(why) => Health::Failed(why),
        }
    }

    fn exists(&self, id: &str) -> bool {
        matches!(self.status(id), Status::Running | Status::Stopped)
    }

    fn start(&self, id: &str, ctx: &StartContext) -> Result<(), String> {
        self.check_id(id)?;
        let mut invocation = self.invocation(&self.config.start, id, &[], self.limit());
        for (key, value) in ctx.env() {
            invocation = invocation.env(key, value);
        }
        Self::run_ok(&invocation)
    }

    fn stop(&self, id: &str, timeout: Option<Duration>) -> Result<(), String> {
        self.check_id(id)?;
        self.shutdown(id, timeout.unwrap_or_else(|| self.default_shutdown_timeout()))
    }

    fn migrate(&self, id: &str, target: &str, online: bool) -> Result<bool, String> {
        self.check_id(id)?;
        let running = match self.status(id) {
            Status::Running => true,
            Status::Stopped => false,
            Status::Absent => return Err(format!("{} is not on this node", self.sid(id))),
            Status::Unknown(why) => return Err(format!("cannot tell whether it runs - {why}")),
        };
        let limit = Duration::from_secs(self.config.migrate_timeout_secs);
        let shutdown_secs = self.config.shutdown_timeout_secs.to_string();
        let vars = [("target", target), ("timeout", shutdown_secs.as_str())];
        let template = match (self.config.kind, running, online) {
            (_, false, _) => &self.config.migrate,
            (GuestKind::Vm, true, true) | (GuestKind::Ct, true, _) => {
                if self.config.kind == GuestKind::Ct && online {
                    tracing::info!(
                        "{}: unable to live migrate running container, fallback to relocate",
                        self.sid(id)
                    );
                }
                &self.config.migrate_running
            }
            (GuestKind::Vm, true, false) => {
                // A relocation: shut it down here first.
                self.shutdown(id, self.default_shutdown_timeout())?;
                &self.config.migrate
            }
        };
        Self::run_ok(&self.invocation(template, id, &vars, limit))?;
        match self.status(id) {
            Status::Absent => Ok(true),
            Status::Unknown(why) => Err(format!("migrated, but cannot confirm it left - {why}")),
            Status::Running | Status::Stopped => {
                Err(format!("{} is still on this node after the migration", self.sid(id)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_invalid_vmids_without_running_anything() {
        let config = GuestAgentConfig::defaults(GuestKind::Vm, "/nonexistent/qm");
        let agent = GuestAgent::new(config, "node1");
        let ctx = StartContext {
            sid: "vm:1".into(),
            node: "node1".into(),
            fencing_token: 1,
        };
        assert!(agent.start("1", &ctx).unwrap_err().contains("invalid VMID '1'"));
        assert!(!agent.running("abc"));
        assert!(!agent.exists("--help"));
    }

    #[test]
    fn a_missing_program_is_a_failed_monitor_and_counts_as_running() {
        let config = GuestAgentConfig::defaults(GuestKind::Ct, "/nonexistent/pct");
        let agent = GuestAgent::new(config, "node1");
        assert!(agent.running("100"), "unknown must count as running for a stop");
        match agent.monitor("100") {
            Health::Failed(why) => assert!(why.contains("cannot run '/nonexistent/pct status 100'"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(!agent.exists("100"));
    }
}
