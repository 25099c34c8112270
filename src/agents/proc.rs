//! The built-in `proc` agent: runs a configured command as a supervised
//! child process in its own process group, so that fencing can kill the
//! whole group.
//!
//! * A process that exited (crashed, killed) is reaped and reported not
//!   running; the LRM's next `started` command starts it again, and a
//!   start that fails goes through the restart policy.
//! * An optional health check (`health_check = [program, args...]`, run
//!   with the service's environment and `HACTOR_SID`, `HACTOR_NODE`) makes
//!   the monitor report a live but failing process as failed: the LRM then
//!   restarts it (stop, start). A start waits up to `start_timeout_secs`
//!   for the first passing check, and ends the process if none passes.
//! * A stop sends `stop_signal` (default `TERM`) to the group, waits up to
//!   the timeout, then SIGKILLs whatever is left of the group.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::spec::{ProcService, parse_signal};

use super::command::{self, Invocation, deadline_after};
use super::{Agent, Health, StartContext};

/// Told whenever a process group starts (`true`) or ends (`false`), so the
/// watchdog's fence can kill every group this node started.
pub type GroupHook = Arc<dyn Fn(i32, bool) + Send + Sync>;

/// Runs `proc:<name>` services.
///
/// Each started group leader's pid goes to `<pid_dir>/<name>.pid`, so a
/// restarted daemon adopts services that kept running (a restart freezes
/// services; it must never start a second instance). The file also holds
/// the leader's [`identity`] (start time and boot id): after a reboot or
/// a container restart the pid namespace starts over, and the same pid
/// can belong to another group leader (the fence guard, another
/// service). A pid without its identity is not adopted; a file of an
/// older version (a bare pid) still is.
pub struct ProcAgent {
    services: Mutex<BTreeMap<String, ProcService>>,
    children: Mutex<BTreeMap<String, Child>>,
    /// Adopted services (started by an earlier daemon): name → group.
    adopted: Mutex<BTreeMap<String, i32>>,
    pid_dir: Option<PathBuf>,
    on_group: GroupHook,
    /// This node, for the health check's `HACTOR_NODE`.
    node: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ProcAgent {
    pub fn new(services: BTreeMap<String, ProcService>, pid_dir: Option<PathBuf>, on_group: GroupHook) -> ProcAgent {
        let agent = ProcAgent {
            services: Mutex::new(services),
            children: Mutex::new(BTreeMap::new()),
            adopted: Mutex::new(BTreeMap::new()),
            pid_dir,
            on_group,
            node: String::new(),
        };
        agent.adopt();
        agent
    }

    /// Names this node in the environment of health checks.
    pub fn with_node(mut self, node: &str) -> ProcAgent {
        self.node = node.to_string();
        self
    }

    fn service(&self, name: &str) -> Option<ProcService> {
        lock(&self.services).get(name).cloned()
    }

    /// Runs the health check; `Err` says why it failed.
    fn health(&self, name: &str, service: &ProcService) -> Result<(), String> {
        let invocation = Invocation::new(
            service.health_check.clone(),
            Duration::from_secs(service.health_timeout_secs),
        )
        .envs(&service.env)
        .env("HACTOR_SID", format!("proc:{name}"))
        .env("HACTOR_NODE", self.node.clone())
        .cwd(service.cwd.as_deref());
        let done = command::run(&invocation)?;
        if done.success() {
            Ok(())
        } else {
            Err(format!("health check {}", done.describe(&invocation)))
        }
    }

    /// Waits for the first passing health check of a fresh start.
    fn await_health(&self, name: &str, service: &ProcService) -> Result<(), String> {
        let deadline = deadline_after(Duration::from_secs(service.start_timeout_secs));
        let mut pause = Duration::from_millis(50);
        loop {
            if !self.check(name) {
                return Err("the process exited before its health check passed".into());
            }
            let result = self.health(name, service);
            if result.is_ok() || Instant::now() >= deadline {
                return result.map_err(|e| format!("{e} (still failing after {}s)", service.start_timeout_secs));
            }
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    fn pid_file(&self, name: &str) -> Option<PathBuf> {
        self.pid_dir.as_ref().map(|dir| dir.join(format!("{name}.pid")))
    }

    /// Adopts groups whose leader is still alive from an earlier daemon.
    fn adopt(&self) {
        let Some(dir) = &self.pid_dir else { return };
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pid"))
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let mut fields = text.split_whitespace();
            let pid = fields.next().and_then(|p| p.parse::<i32>().ok());
            let recorded = fields.next();
            let same = |pid: i32| recorded.is_none_or(|r| identity(pid).as_deref() == Some(r));
            match pid.filter(|pid| group_alive(*pid) && same(*pid)) {
                Some(pid) => {
                    (self.on_group)(pid, true);
                    lock(&self.adopted).insert(name.to_string(), pid);
                }
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }

    fn forget(&self, name: &str, group: i32) {
        if let Some(path) = self.pid_file(name) {
            let _ = std::fs::remove_file(path);
        }
        (self.on_group)(group, false);
    }

    /// Replaces the service definitions (config reload); running children
    /// keep running.
    pub fn set_services(&self, services: BTreeMap<String, ProcService>) {
        *lock(&self.services) = services;
    }

    fn group_of(child: &Child) -> Pid {
        Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX))
    }

    /// Whether `name` runs; reaps it (and reports its group gone) if it exited.
    fn check(&self, name: &str) -> bool {
        let mut adopted = lock(&self.adopted);
        if let Some(group) = adopted.get(name).copied() {
            if group_alive(group) {
                return true;
            }
            adopted.remove(name);
            drop(adopted);
            self.forget(name, group);
            return false;
        }
        drop(adopted);
        let mut children = lock(&self.children);
        let Some(child) = children.get_mut(name) else {
            return false;
        };
        match child.try_wait() {
            Ok(None) => true,
            other => {
                match other {
                    Ok(Some(status)) => tracing::warn!("proc:{name} exited unexpectedly ({status})"),
                    _ => tracing::warn!("proc:{name}: cannot wait for its process"),
                }
                let pgid = Self::group_of(child).as_raw();
                children.remove(name);
                drop(children);
                self.forget(name, pgid);
                false
            }
        }
    }
}

impl Agent for ProcAgent {
    fn running(&self, name: &str) -> bool {
        self.check(name)
    }

    fn monitor(&self, name: &str) -> Health {
        if !self.check(name) {
            return Health::Stopped;
        }
        match self.service(name) {
            Some(service) if !service.health_check.is_empty() => match self.health(name, &service) {
                Ok(()) => Health::Running,
                Err(e) => Health::Failed(e),
            },
            _ => Health::Running,
        }
    }

    fn exists(&self, name: &str) -> bool {
        lock(&self.services).contains_key(name)
    }

    fn start(&self, name: &str, ctx: &StartContext) -> Result<(), String> {
        let Some(service) = self.service(name) else {
            return Err(format!("no proc service '{name}' defined in this node's configuration"));
        };
        match self.monitor(name) {
            Health::Running => return Ok(()),
            Health::Stopped => {}
            Health::Failed(why) => {
                tracing::warn!("proc:{name} is running but failing ({why}); restarting it");
                self.stop(name, None)?;
            }
        }
        let mut command = Command::new(&service.command);
        command.args(&service.args).envs(&service.env);
        for (key, value) in ctx.env() {
            command.env(key, value);
        }
        command.stdin(Stdio::null());
        if let Some(dir) = &service.cwd {
            command.current_dir(dir);
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run '{}': {e}", service.command))?;
        let pgid = Self::group_of(&child).as_raw();
        (self.on_group)(pgid, true);
        if let Some(path) = self.pid_file(name) {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let line = match identity(pgid) {
                Some(identity) => format!("{pgid} {identity}\n"),
                None => format!("{pgid}\n"),
            };
            let _ = std::fs::write(&path, line);
        }
        lock(&self.children).insert(name.to_string(), child);
        if !service.health_check.is_empty()
            && let Err(e) = self.await_health(name, &service)
        {
            // A start that never became healthy leaves nothing behind.
            self.stop(name, None)?;
            return Err(e);
        }
        Ok(())
    }

    fn stop(&self, name: &str, timeout: Option<Duration>) -> Result<(), String> {
        let service = self.service(name);
        let grace = match timeout {
            Some(t) => t,
            None => Duration::from_secs(service.as_ref().map_or(10, |s| s.stop_timeout_secs)),
        };
        let signal = service
            .as_ref()
            .and_then(|s| parse_signal(&s.stop_signal))
            .unwrap_or(Signal::SIGTERM);
        if let Some(group) = lock(&self.adopted).remove(name) {
            let _ = killpg(Pid::from_raw(group), signal);
            let deadline = deadline_after(grace);
            while group_alive(group) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
            self.forget(name, group);
            return Ok(());
        }
        let Some(mut child) = lock(&self.children).remove(name) else {
            return Ok(());
        };
        let group = Self::group_of(&child);
        let _ = killpg(group, signal);
        let deadline = deadline_after(grace);
        let mut exited = false;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The group may hold more than the leader: always finish it off.
        let _ = killpg(group, Signal::SIGKILL);
        if !exited {
            let _ = child.wait();
        }
        self.forget(name, group.as_raw());
        Ok(())
    }

    fn migrate(&self, name: &str, _target: &str, _online: bool) -> Result<bool, String> {
        // A process has no state to carry over: stop it here; the target
        // node's LRM starts it there.
        self.stop(name, None)?;
        Ok(true)
    }
}

/// Whether the process group led by `group` still has its leader alive
/// (and it still leads that group: the pid was not reused).
fn group_alive(group: i32) -> bool {
    let pid = Pid::from_raw(group);
    nix::sys::signal::kill(pid, None).is_ok()
        && nix::unistd::getpgid(Some(pid)).is_ok_and(|g| g == pid)
        && !zombie(group)
}

/// What tells process `pid` apart from a later one given the same pid:
/// its start time (clock ticks after boot, field 22 of
/// `/proc/<pid>/stat`) and the boot id. `None` where `/proc` says nothing.
fn identity(pid: i32) -> Option<String> {
    let start = stat_fields(pid)?.split_whitespace().nth(19)?.to_string();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(format!("{start}@{}", boot.trim()))
}

/// `/proc/<pid>/stat` from field 3 (the state) on: the command name
/// before it may hold spaces and parentheses.
fn stat_fields(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().to_string())
}

/// A reaped-by-nobody child of an earlier daemon shows as a zombie.
fn zombie(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|rest| rest.starts_with('Z'))
}

impl Drop for ProcAgent {
    fn drop(&mut self) {
        // Children are not killed on drop: a daemon restart must not stop
        // services (the watchdog decides when they must die).
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI32, Ordering};

    fn service(command: &str, args: &[&str]) -> ProcService {
        ProcService {
            command: command.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: BTreeMap::new(),
            cwd: None,
            stop_timeout_secs: 2,
            stop_signal: "TERM".into(),
            health_check: Vec::new(),
            health_timeout_secs: 10,
            start_timeout_secs: 30,
        }
    }

    fn agent_with(services: BTreeMap<String, ProcService>, groups: Arc<AtomicI32>) -> ProcAgent {
        ProcAgent::new(
            services,
            None,
            Arc::new(move |_, started| {
                groups.fetch_add(if started { 1 } else { -1 }, Ordering::SeqCst);
            }),
        )
        .with_node("node1")
    }

    fn agent(groups: Arc<AtomicI32>) -> ProcAgent {
        agent_with(
            BTreeMap::from([("sleeper".to_string(), service("sleep", &["30"]))]),
            groups,
        )
    }

    fn ctx(name: &str) -> StartContext {
        StartContext {
            sid: format!("proc:{name}"),
            node: "node1".into(),
            fencing_token: 7,
        }
    }

    fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn starts_checks_and_stops_a_real_process_group() {
        let groups = Arc::new(AtomicI32::new(0));
        let agent = agent(groups.clone());
        assert!(!agent.running("sleeper"));
        assert!(agent.exists("sleeper") && !agent.exists("nothing"));
        agent.start("sleeper", &ctx("sleeper")).unwrap();
        assert!(agent.running("sleeper"));
        assert_eq!(agent.monitor("sleeper"), Health::Running);
        assert_eq!(groups.load(Ordering::SeqCst), 1);
        agent.stop("sleeper", Some(Duration::from_secs(2))).unwrap();
        assert!(!agent.running("sleeper"));
        assert_eq!(groups.load(Ordering::SeqCst), 0);
        assert!(
            agent
                .start("nothing", &ctx("nothing"))
                .unwrap_err()
                .contains("no proc service 'nothing'")
        );
    }

    /// A restarted daemon adopts a service that kept running, but not a
    /// pid that now belongs to another group leader (a container restart
    /// or a reboot starts pids over; seen in the container soak: a
    /// service taken for running that was not, so never started). A
    /// pid file of an older version, without the identity, is adopted.
    #[test]
    fn adoption_checks_the_process_identity_not_only_its_pid() {
        let dir = tempfile::tempdir().unwrap();
        let services = || BTreeMap::from([("sleeper".to_string(), service("sleep", &["30"]))]);
        let with_dir = || ProcAgent::new(services(), Some(dir.path().to_path_buf()), Arc::new(|_, _| {}));
        let first = with_dir();
        first.start("sleeper", &ctx("sleeper")).unwrap();
        let pid_file = dir.path().join("sleeper.pid");
        let written = std::fs::read_to_string(&pid_file).unwrap();
        let pgid: i32 = written.split_whitespace().next().unwrap().parse().unwrap();
        assert_eq!(
            written.split_whitespace().nth(1),
            identity(pgid).as_deref(),
            "{written}"
        );
        // The daemon restarts: the same process is adopted.
        let second = with_dir();
        assert!(second.running("sleeper"));
        // The same pid, but another process (the identity differs).
        std::fs::write(&pid_file, format!("{pgid} 1@another-boot\n")).unwrap();
        let third = with_dir();
        assert!(!third.running("sleeper"), "a reused pid was adopted");
        assert!(!pid_file.exists(), "the stale pid file is dropped");
        // An older version's file: a bare pid.
        std::fs::write(&pid_file, format!("{pgid}\n")).unwrap();
        assert!(with_dir().running("sleeper"));
        first.stop("sleeper", Some(Duration::from_secs(2))).unwrap();
    }

    /// Issue 11 §2: `crm-command stop <sid> 9223372036854775807` panicked
    /// here ("overflow when adding duration to instant").
    #[test]
    fn a_huge_stop_timeout_does_not_panic() {
        let groups = Arc::new(AtomicI32::new(0));
        let agent = agent(groups.clone());
        for secs in [9_223_372_036_854_775_807, u64::MAX] {
            agent.start("sleeper", &ctx("sleeper")).unwrap();
            agent.stop("sleeper", Some(Duration::from_secs(secs))).unwrap();
            assert!(!agent.running("sleeper"));
        }
        assert_eq!(groups.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_crashed_process_is_seen_as_stopped() {
        let groups = Arc::new(AtomicI32::new(0));
        let agent = agent(groups.clone());
        agent.start("sleeper", &ctx("sleeper")).unwrap();
        let pid = lock(&agent.children)["sleeper"].id();
        let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        wait_for("the crash to be seen", || !agent.running("sleeper"));
        assert_eq!(agent.monitor("sleeper"), Health::Stopped);
        assert_eq!(groups.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn stop_sends_the_configured_signal() {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("got");
        let ready = dir.path().join("ready");
        // Exits cleanly on INT only; TERM is ignored.
        let script = format!(
            "trap '' TERM; trap 'echo INT > {}; exit 0' INT; : > {}; while :; do sleep 0.1; done",
            mark.display(),
            ready.display()
        );
        let mut svc = service("sh", &["-c", &script]);
        svc.stop_signal = "INT".into();
        svc.stop_timeout_secs = 60;
        let agent = agent_with(BTreeMap::from([("trap".to_string(), svc)]), Arc::new(AtomicI32::new(0)));
        agent.start("trap", &ctx("trap")).unwrap();
        wait_for("the traps", || ready.exists());
        let started = Instant::now();
        agent.stop("trap", None).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(50),
            "INT must end it before the timeout"
        );
        assert_eq!(std::fs::read_to_string(&mark).unwrap().trim(), "INT");
        assert!(parse_signal("sigusr1") == Some(Signal::SIGUSR1) && parse_signal("BOGUS").is_none());
    }

    #[test]
    fn a_failing_health_check_is_a_failed_monitor_and_a_start_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let healthy = dir.path().join("healthy");
        let mut svc = service("sleep", &["60"]);
        svc.health_check = vec!["test".into(), "-e".into(), healthy.display().to_string()];
        svc.start_timeout_secs = 1;
        let agent = agent_with(BTreeMap::from([("web".to_string(), svc)]), Arc::new(AtomicI32::new(0)));
        // Never healthy: the start fails and leaves nothing running.
        let err = agent.start("web", &ctx("web")).unwrap_err();
        assert!(err.contains("health check 'test -e"), "{err}");
        assert!(!agent.running("web"));
        let mut svc = agent.service("web").unwrap();
        svc.start_timeout_secs = 120;
        agent.set_services(BTreeMap::from([("web".to_string(), svc)]));
        std::fs::write(&healthy, "").unwrap();
        agent.start("web", &ctx("web")).unwrap();
        let first = lock(&agent.children)["web"].id();
        assert_eq!(agent.monitor("web"), Health::Running);
        std::fs::remove_file(&healthy).unwrap();
        assert!(matches!(agent.monitor("web"), Health::Failed(why) if why.contains("exited with 1")));
        assert!(agent.running("web"), "a failing process still needs a stop");
        // A start of a failed service replaces the process.
        let agent_ref = &agent;
        let restarter = std::thread::scope(|scope| {
            let handle = scope.spawn(move || agent_ref.start("web", &ctx("web")));
            wait_for("the old process to be replaced", || {
                lock(&agent_ref.children).get("web").is_some_and(|c| c.id() != first)
            });
            std::fs::write(&healthy, "").unwrap();
            handle.join().unwrap()
        });
        restarter.unwrap();
        assert_eq!(agent.monitor("web"), Health::Running);
        agent.stop("web", None).unwrap();
    }
}
