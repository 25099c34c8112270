//! The `script` agent: OCF-style resource scripts.
//!
//! A `script:<name>` service names a script in `[script.<name>]`; the agent
//! calls it as
//!
//! ```text
//! <path> start
//! <path> stop
//! <path> monitor
//! <path> migrate <target>
//! ```
//!
//! with the service's `env`, in its `cwd`, and with `HACTOR_SID`,
//! `HACTOR_NODE` and `OCF_RESOURCE_INSTANCE` (the name); `start` also gets
//! `HACTOR_FENCING_TOKEN`, `stop` gets `HACTOR_STOP_TIMEOUT` (seconds) and
//! `migrate` gets `HACTOR_MIGRATE_ONLINE` (`1` for a live migration, `0`
//! for a relocation).
//!
//! Exit codes follow the OCF resource agent API:
//!
//! | action | exit | meaning |
//! |---|---|---|
//! | `monitor` | 0 (`OCF_SUCCESS`), 8 (`OCF_RUNNING_MASTER`) | running and healthy |
//! | `monitor` | 7 (`OCF_NOT_RUNNING`) | cleanly stopped |
//! | `monitor` | anything else, a signal, a timeout | failed: counts as running for a stop and as not running for a start (which first calls `stop`) |
//! | `start`, `stop` | 0 | done (the LRM then checks with `monitor`) |
//! | `start`, `stop` | anything else | error (`service '<sid>' start failed - ...`) |
//! | `migrate` | 0 | moved: `monitor` must now say 7 |
//! | `migrate` | 3 (`OCF_ERR_UNIMPLEMENTED`) | no migration: stopped here, started on the target (a relocation) |
//! | `migrate` | anything else | error, the service stays here |
//!
//! For the LRM, a start or stop error and a `monitor` that does not agree
//! afterwards give `ERROR` (the restart policy, then relocation, apply).
//!
//! Every action runs under a deadline (`timeout_secs`, `monitor_timeout_secs`
//! for `monitor`); at the deadline the script's process group is killed.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::spec::ScriptService;

use super::command::{self, Finished, Invocation, Outcome};
use super::{Agent, Health, StartContext};

/// `OCF_SUCCESS`.
pub const OCF_SUCCESS: i32 = 0;
/// `OCF_ERR_UNIMPLEMENTED`.
pub const OCF_ERR_UNIMPLEMENTED: i32 = 3;
/// `OCF_NOT_RUNNING`.
pub const OCF_NOT_RUNNING: i32 = 7;
/// `OCF_RUNNING_MASTER`.
pub const OCF_RUNNING_MASTER: i32 = 8;

/// The OCF name of an exit code, for messages.
pub fn ocf_name(code: i32) -> &'static str {
    match code {
        0 => "OCF_SUCCESS",
        1 => "OCF_ERR_GENERIC",
        2 => "OCF_ERR_ARGS",
        3 => "OCF_ERR_UNIMPLEMENTED",
        4 => "OCF_ERR_PERM",
        5 => "OCF_ERR_INSTALLED",
        6 => "OCF_ERR_CONFIGURED",
        7 => "OCF_NOT_RUNNING",
        8 => "OCF_RUNNING_MASTER",
        9 => "OCF_FAILED_MASTER",
        _ => "unknown",
    }
}

/// Runs `script:<name>` services.
pub struct ScriptAgent {
    services: Mutex<BTreeMap<String, ScriptService>>,
    node: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ScriptAgent {
    pub fn new(services: BTreeMap<String, ScriptService>, node: &str) -> ScriptAgent {
        ScriptAgent {
            services: Mutex::new(services),
            node: node.to_string(),
        }
    }

    /// Replaces the service definitions (config reload).
    pub fn set_services(&self, services: BTreeMap<String, ScriptService>) {
        *lock(&self.services) = services;
    }

    fn service(&self, name: &str) -> Result<ScriptService, String> {
        lock(&self.services)
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no script service '{name}' defined in this node's configuration"))
    }

    fn invocation(&self, name: &str, service: &ScriptService, args: &[&str], timeout: Duration) -> Invocation {
        let argv = std::iter::once(service.path.display().to_string())
            .chain(args.iter().map(|a| a.to_string()))
            .collect();
        Invocation::new(argv, timeout)
            .envs(&service.env)
            .env("HACTOR_SID", format!("script:{name}"))
            .env("HACTOR_NODE", self.node.clone())
            .env("OCF_RESOURCE_INSTANCE", name)
            .cwd(service.cwd.as_deref())
    }

    fn action_timeout(service: &ScriptService) -> Duration {
        Duration::from_secs(service.timeout_secs)
    }

    /// Runs an action that must exit 0.
    fn expect_success(invocation: &Invocation) -> Result<Finished, String> {
        let done = command::run(invocation)?;
        match done.outcome {
            Outcome::Exited(OCF_SUCCESS) => Ok(done),
            Outcome::Exited(code) => Err(format!("{} ({})", done.describe(invocation), ocf_name(code))),
            _ => Err(done.describe(invocation)),
        }
    }
}

impl Agent for ScriptAgent {
    fn running(&self, name: &str) -> bool {
        self.monitor(name) != Health::Stopped
    }

    fn monitor(&self, name: &str) -> Health {
        let Ok(service) = self.service(name) else {
            return Health::Stopped;
        };
        let timeout = Duration::from_secs(service.monitor_timeout_secs);
        let invocation = self.invocation(name, &service, &["monitor"], timeout);
        match command::run(&invocation) {
            Ok(done) => match done.outcome {
                Outcome::Exited(OCF_SUCCESS | OCF_RUNNING_MASTER) => Health::Running,
                Outcome::Exited(OCF_NOT_RUNNING) => Health::Stopped,
                Outcome::Exited(code) => Health::Failed(format!("{} ({})", done.describe(&invocation), ocf_name(code))),
                _ => Health::Failed(done.describe(&invocation)),
            },
            Err(e) => Health::Failed(e),
        }
    }

    fn exists(&self, name: &str) -> bool {
        self.service(name).is_ok_and(|s| s.path.is_file())
    }

    fn start(&self, name: &str, ctx: &StartContext) -> Result<(), String> {
        let service = self.service(name)?;
        match self.monitor(name) {
            Health::Running => return Ok(()),
            Health::Stopped => {}
            Health::Failed(why) => {
                tracing::warn!("script:{name} is failing ({why}); stopping it before the start");
                self.stop(name, None)?;
            }
        }
        let mut invocation = self.invocation(name, &service, &["start"], Self::action_timeout(&service));
        for (key, value) in ctx.env() {
            invocation = invocation.env(key, value);
        }
        Self::expect_success(&invocation).map(|_| ())
    }

    fn stop(&self, name: &str, timeout: Option<Duration>) -> Result<(), String> {
        let service = self.service(name)?;
        let limit = Self::action_timeout(&service);
        let grace = timeout.unwrap_or(limit).as_secs().to_string();
        let invocation = self
            .invocation(name, &service, &["stop"], limit)
            .env("HACTOR_STOP_TIMEOUT", grace);
        Self::expect_success(&invocation).map(|_| ())
    }

    fn migrate(&self, name: &str, target: &str, online: bool) -> Result<bool, String> {
        let service = self.service(name)?;
        let invocation = self
            .invocation(name, &service, &["migrate", target], Self::action_timeout(&service))
            .env("HACTOR_MIGRATE_ONLINE", if online { "1" } else { "0" });
        let done = command::run(&invocation)?;
        match done.outcome {
            Outcome::Exited(OCF_SUCCESS) => match self.monitor(name) {
                Health::Stopped => Ok(true),
                Health::Running => Err("migrate succeeded but monitor still reports it running here".into()),
                Health::Failed(why) => Err(format!("migrate succeeded but the monitor failed - {why}")),
            },
            Outcome::Exited(OCF_ERR_UNIMPLEMENTED) => {
                // No migration: stop here; the target's LRM starts it.
                self.stop(name, None)?;
                Ok(!self.running(name))
            }
            Outcome::Exited(code) => Err(format!("{} ({})", done.describe(&invocation), ocf_name(code))),
            _ => Err(done.describe(&invocation)),
        }
    }
}
