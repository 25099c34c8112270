//! What each built-in agent runs, as the node configuration describes it
//! (`[service.*]`, `[script.*]`, `[agent.vm]`/`[agent.ct]`); parsed by
//! `node::config`, used by the agents of this folder.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// A service run by the built-in `proc` agent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcService {
    /// Program to run.
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Seconds to wait after the stop signal before SIGKILL.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_secs: u64,
    /// The signal a stop sends first (`TERM`, `INT`, `HUP`, `QUIT`,
    /// `USR1`, ...; with or without `SIG`).
    #[serde(default = "default_stop_signal")]
    pub stop_signal: String,
    /// A command (program and arguments) that exits 0 while the service
    /// works; anything else makes the service count as failed, so the
    /// LRM restarts it. Empty: the process being alive is enough.
    #[serde(default)]
    pub health_check: Vec<String>,
    /// Limit of one health check run.
    #[serde(default = "default_health_timeout")]
    pub health_timeout_secs: u64,
    /// How long a start waits for the first passing health check.
    #[serde(default = "default_start_timeout")]
    pub start_timeout_secs: u64,
}

fn default_stop_timeout() -> u64 {
    10
}

fn default_stop_signal() -> String {
    "TERM".into()
}

fn default_health_timeout() -> u64 {
    10
}

fn default_start_timeout() -> u64 {
    30
}

/// Parses a signal name as the configuration writes it: `TERM`, `SIGTERM`
/// or `sigterm`.
pub fn parse_signal(name: &str) -> Option<nix::sys::signal::Signal> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse().ok()
}

/// A `script:<name>` service: an OCF-style script called as
/// `<path> start|stop|monitor|migrate <target>` (see [`crate::agents::script`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptService {
    /// The script (absolute path).
    pub path: PathBuf,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Limit of `start`, `stop` and `migrate`.
    #[serde(default = "default_script_timeout")]
    pub timeout_secs: u64,
    /// Limit of `monitor`.
    #[serde(default = "default_monitor_timeout")]
    pub monitor_timeout_secs: u64,
}

fn default_script_timeout() -> u64 {
    60
}

fn default_monitor_timeout() -> u64 {
    20
}

/// The hypervisor types driven through commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GuestKind {
    /// `vm:<vmid>`, driven by `qm`.
    Vm,
    /// `ct:<vmid>`, driven by `pct`.
    Ct,
}

impl GuestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestKind::Vm => "vm",
            GuestKind::Ct => "ct",
        }
    }

    /// The Proxmox command of this type.
    pub fn default_program(self) -> &'static str {
        match self {
            GuestKind::Vm => "qm",
            GuestKind::Ct => "pct",
        }
    }
}

/// How the `vm` or `ct` agent drives the hypervisor: one command template
/// per action. Placeholders: `{id}` (the VMID), `{sid}`, `{node}` (this
/// node), and `{target}` / `{timeout}` where noted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestAgentConfig {
    pub kind: GuestKind,
    pub start: Vec<String>,
    /// Graceful shutdown within `{timeout}` seconds; a `stop` follows if
    /// the guest still runs.
    pub shutdown: Vec<String>,
    /// Hard stop.
    pub stop: Vec<String>,
    /// Exit 0 while the guest is on this node; running when a line of its
    /// output is `running_pattern`.
    pub status: Vec<String>,
    /// Migration of a stopped guest to `{target}`.
    pub migrate: Vec<String>,
    /// Migration of a running guest: live (`qm migrate --online`) for a
    /// VM, restart mode (`pct migrate --restart`, shutdown within
    /// `{timeout}`) for a container.
    pub migrate_running: Vec<String>,
    pub running_pattern: String,
    /// Limit of `start`, `stop` and `status`.
    pub timeout_secs: u64,
    /// Shutdown timeout when the LRM gives none (upstream: 60 s).
    pub shutdown_timeout_secs: u64,
    /// Limit of a migration.
    pub migrate_timeout_secs: u64,
    pub env: BTreeMap<String, String>,
}

impl GuestAgentConfig {
    /// A Proxmox host's commands, run through `program` (`qm` or `pct`
    /// unless overridden).
    pub fn defaults(kind: GuestKind, program: &str) -> GuestAgentConfig {
        let argv = |args: &[&str]| -> Vec<String> {
            std::iter::once(program.to_string())
                .chain(args.iter().map(|a| a.to_string()))
                .collect()
        };
        let migrate_running = match kind {
            GuestKind::Vm => argv(&["migrate", "{id}", "{target}", "--online", "--with-local-disks"]),
            GuestKind::Ct => argv(&["migrate", "{id}", "{target}", "--restart", "--timeout", "{timeout}"]),
        };
        GuestAgentConfig {
            kind,
            start: argv(&["start", "{id}"]),
            shutdown: argv(&["shutdown", "{id}", "--timeout", "{timeout}"]),
            stop: argv(&["stop", "{id}"]),
            status: argv(&["status", "{id}"]),
            migrate: argv(&["migrate", "{id}", "{target}"]),
            migrate_running,
            running_pattern: "status: running".into(),
            timeout_secs: 120,
            shutdown_timeout_secs: 60,
            migrate_timeout_secs: 3600,
            env: BTreeMap::new(),
        }
    }
}
