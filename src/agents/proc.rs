//! The built-in `proc` agent: runs a configured command as a supervised
//! child process in its own process group, so that fencing can kill the
//! whole group.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::node::config::ProcService;

use super::{Agent, StartContext};

/// Told whenever a process group starts (`true`) or ends (`false`), so the
/// watchdog's fence can kill every group this node started.
pub type GroupHook = Arc<dyn Fn(i32, bool) + Send + Sync>;

/// Runs `proc:<name>` services.
///
/// Each started group leader's pid goes to `<pid_dir>/<name>.pid`, so a
/// restarted daemon adopts services that kept running (a restart freezes
/// services; it must never start a second instance).
pub struct ProcAgent {
    services: Mutex<BTreeMap<String, ProcService>>,
    children: Mutex<BTreeMap<String, Child>>,
    /// Adopted services (started by an earlier daemon): name → group.
    adopted: Mutex<BTreeMap<String, i32>>,
    pid_dir: Option<PathBuf>,
    on_group: GroupHook,
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
        };
        agent.adopt();
        agent
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
            let pid = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok());
            match pid.filter(|pid| group_alive(*pid)) {
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
            _ => {
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

    fn start(&self, name: &str, ctx: &StartContext) -> Result<(), String> {
        if self.check(name) {
            return Ok(());
        }
        let Some(service) = lock(&self.services).get(name).cloned() else {
            return Err(format!("no proc service '{name}' defined in this node's configuration"));
        };
        let mut command = Command::new(&service.command);
        command
            .args(&service.args)
            .envs(&service.env)
            .env("HACTOR_SID", &ctx.sid)
            .env("HACTOR_NODE", &ctx.node)
            .env("HACTOR_FENCING_TOKEN", ctx.fencing_token.to_string())
            .stdin(Stdio::null());
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
            let _ = std::fs::write(&path, format!("{pgid}\n"));
        }
        lock(&self.children).insert(name.to_string(), child);
        Ok(())
    }

    fn stop(&self, name: &str, timeout: Option<Duration>) -> Result<(), String> {
        let grace = match timeout {
            Some(t) => t,
            None => Duration::from_secs(lock(&self.services).get(name).map_or(10, |s| s.stop_timeout_secs)),
        };
        if let Some(group) = lock(&self.adopted).remove(name) {
            let _ = killpg(Pid::from_raw(group), Signal::SIGTERM);
            let deadline = Instant::now() + grace;
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
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
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

/// A reaped-by-nobody child of an earlier daemon shows as a zombie.
fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
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

    fn agent(groups: Arc<AtomicI32>) -> ProcAgent {
        let services = BTreeMap::from([(
            "sleeper".to_string(),
            ProcService {
                command: "sleep".into(),
                args: vec!["30".into()],
                env: BTreeMap::new(),
                cwd: None,
                stop_timeout_secs: 2,
            },
        )]);
        ProcAgent::new(
            services,
            None,
            Arc::new(move |_, started| {
                groups.fetch_add(if started { 1 } else { -1 }, Ordering::SeqCst);
            }),
        )
    }

    #[test]
    fn starts_checks_and_stops_a_real_process_group() {
        let groups = Arc::new(AtomicI32::new(0));
        let agent = agent(groups.clone());
        let ctx = StartContext {
            sid: "proc:sleeper".into(),
            node: "node1".into(),
            fencing_token: 7,
        };
        assert!(!agent.running("sleeper"));
        agent.start("sleeper", &ctx).unwrap();
        assert!(agent.running("sleeper"));
        assert_eq!(groups.load(Ordering::SeqCst), 1);
        agent.stop("sleeper", Some(Duration::from_secs(2))).unwrap();
        assert!(!agent.running("sleeper"));
        assert_eq!(groups.load(Ordering::SeqCst), 0);
        assert!(
            agent
                .start("nothing", &ctx)
                .unwrap_err()
                .contains("no proc service 'nothing'")
        );
    }

    #[test]
    fn a_crashed_process_is_seen_as_stopped() {
        let groups = Arc::new(AtomicI32::new(0));
        let agent = agent(groups.clone());
        let ctx = StartContext {
            sid: "proc:sleeper".into(),
            node: "node1".into(),
            fencing_token: 1,
        };
        agent.start("sleeper", &ctx).unwrap();
        let pid = lock(&agent.children)["sleeper"].id();
        let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while agent.running("sleeper") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!agent.running("sleeper"), "a killed child must be detected");
        assert_eq!(groups.load(Ordering::SeqCst), 0);
    }
}
