//! `hactor-bench scale`: one single-node daemon holding many resources
//! (state `ignored`, so that nothing runs and only the store and the API
//! carry the weight), timing `ha-manager status` and `ha-manager config`
//! through the real socket, after measuring the idle daemon's CPU and
//! disk writes from `/proc/<pid>/stat` and `/proc/<pid>/io`.
//!
//! The resources are seeded by writing the node's `store.json` before the
//! daemon starts (adding 100 000 resources through the API would time the
//! API's edits, not the figures wanted here).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Output, Stdio};
use std::time::{Duration, Instant};

use crate::core::status::ResourceConfig;
use crate::core::store::ClusterState;
use crate::core::types::RequestState;

/// What to run.
#[derive(Debug, Clone)]
pub struct ScaleSpec {
    /// Resources `vm:100`, `vm:101`, … all `ignored` on node1.
    pub resources: usize,
    /// How long the idle daemon is watched.
    pub idle: Duration,
    /// Where the node's state goes (wiped first if a previous run made it).
    pub dir: PathBuf,
    /// The `hactor` and `ha-manager` programs.
    pub hactor: PathBuf,
    pub ha_manager: PathBuf,
    /// Timed runs of each command (the median is reported).
    pub repeat: usize,
}

/// One timed command: the median time and what the last run printed.
#[derive(Debug, Clone)]
pub struct Timed {
    pub took: Duration,
    pub lines: usize,
    pub bytes: usize,
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct ScaleReport {
    pub resources: usize,
    pub store_bytes: u64,
    /// From the start until the socket answered.
    pub ready: Duration,
    /// `ha-manager status`, or its error.
    pub status: Result<Timed, String>,
    /// `ha-manager config`, or its error.
    pub config: Result<Timed, String>,
    /// Share of one core, in percent.
    pub idle_cpu_percent: f64,
    pub idle_write_bytes_per_sec: f64,
    pub idle_secs: f64,
    /// The daemon exited during the commands (fenced: a command held up
    /// its rounds past the watchdog's timeout).
    pub exited: Option<String>,
}

/// Goals of issue 12: a status within a second; an idle daemon under 2%
/// of a core writing under 100 KB/s.
pub const STATUS_GOAL: Duration = Duration::from_secs(1);
pub const IDLE_CPU_GOAL_PERCENT: f64 = 2.0;
pub const IDLE_WRITE_GOAL_BYTES_PER_SEC: f64 = 100_000.0;

impl ScaleReport {
    fn status_met(&self) -> bool {
        self.status.as_ref().is_ok_and(|t| t.took <= STATUS_GOAL)
    }

    /// Whether every goal is met.
    pub fn goals_met(&self) -> bool {
        self.status_met()
            && self.config.is_ok()
            && self.exited.is_none()
            && self.idle_cpu_percent <= IDLE_CPU_GOAL_PERCENT
            && self.idle_write_bytes_per_sec <= IDLE_WRITE_GOAL_BYTES_PER_SEC
    }

    /// The figures as printed.
    pub fn render(&self) -> String {
        let met = |ok: bool| if ok { "met" } else { "NOT met" };
        let timed = |t: &Result<Timed, String>| match t {
            Ok(t) => format!(
                "{:.3} s ({} lines, {:.1} MB)",
                t.took.as_secs_f64(),
                t.lines,
                t.bytes as f64 / 1e6
            ),
            Err(e) => format!("failed: {e}"),
        };
        let exited = match &self.exited {
            Some(e) => format!("the daemon exited during the commands: {e}\n"),
            None => String::new(),
        };
        format!(
            "scale: {} ignored resources on one node (store.json {:.1} MB), socket open after {:.1} s\n\
             ha-manager status: {}\n\
             ha-manager config: {}\n\
             idle daemon over {:.1} s: {:.2}% of a core, {:.1} KB/s written\n\
             {}goals: status <= 1 s {}; idle <= 2% CPU {}; idle <= 100 KB/s {}\n",
            self.resources,
            self.store_bytes as f64 / 1e6,
            self.ready.as_secs_f64(),
            timed(&self.status),
            timed(&self.config),
            self.idle_secs,
            self.idle_cpu_percent,
            self.idle_write_bytes_per_sec / 1e3,
            exited,
            met(self.status_met()),
            met(self.idle_cpu_percent <= IDLE_CPU_GOAL_PERCENT),
            met(self.idle_write_bytes_per_sec <= IDLE_WRITE_GOAL_BYTES_PER_SEC),
        )
    }
}

/// Marks a folder as made by this module (so it may be wiped).
const MARKER_FILE: &str = ".hactor-bench-scale";

/// A state with `count` ignored resources on node1.
pub fn seeded_state(count: usize) -> ClusterState {
    let mut state = ClusterState::default();
    for i in 0..count {
        let resource = ResourceConfig::new("node1", RequestState::Ignored);
        state.resources.insert(format!("vm:{}", 100 + i), resource);
    }
    state
}

/// The daemon, stopped (SIGTERM, then SIGKILL) when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU ticks (user + system) of a process.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may hold spaces): state is
    // field 3, utime and stime fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    match (field(14), field(15)) {
        (Some(user), Some(system)) => Ok(user + system),
        _ => Err(format!("/proc/{pid}/stat: unexpected format")),
    }
}

/// Bytes a process caused to be written to storage.
fn write_bytes(pid: u32) -> Result<u64, String> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).map_err(|e| format!("/proc/{pid}/io: {e}"))?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("/proc/{pid}/io: no write_bytes"))
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ: 100 on every
/// Linux architecture the daemon runs on, fixed by the kernel's ABI).
const TICKS_PER_SEC: f64 = 100.0;

fn ha(spec: &ScaleSpec, socket: &Path, args: &[&str]) -> Result<(Duration, Output), String> {
    let started = Instant::now();
    let out = Command::new(&spec.ha_manager)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", spec.ha_manager.display()))?;
    Ok((started.elapsed(), out))
}

/// Times `ha-manager <args>` `repeat` times: the median and the last
/// output, or the command's error.
fn timed(spec: &ScaleSpec, socket: &Path, args: &[&str]) -> Result<(Duration, Output), String> {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..spec.repeat.max(1) {
        let (took, out) = ha(spec, socket, args)?;
        if !out.status.success() {
            return Err(format!(
                "ha-manager {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        times.push(took);
        last = Some(out);
    }
    times.sort();
    let out = last.ok_or("no run")?;
    Ok((times[times.len() / 2], out))
}

/// Runs the benchmark: the idle daemon first (its figures do not depend
/// on the commands), then the commands.
pub fn run(spec: &ScaleSpec) -> Result<ScaleReport, String> {
    let dir = &spec.dir;
    if dir.exists() {
        if !dir.join(MARKER_FILE).exists() {
            return Err(format!("{}: exists and was not made by this benchmark", dir.display()));
        }
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let state_dir = dir.join("node1");
    std::fs::create_dir_all(&state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    std::fs::write(dir.join(MARKER_FILE), "").map_err(|e| e.to_string())?;
    let socket = state_dir.join("hactor.sock");
    let config = dir.join("node1.toml");
    let text = format!(
        "node = \"node1\"\nstate_dir = \"{}\"\nsocket = \"{}\"\n[watchdog]\nbackend = \"process\"\n",
        state_dir.display(),
        socket.display()
    );
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let store = serde_json::to_vec(&seeded_state(spec.resources)).map_err(|e| e.to_string())?;
    std::fs::write(state_dir.join("store.json"), &store).map_err(|e| e.to_string())?;

    let log = std::fs::File::create(dir.join("node1.log")).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let child = Command::new(&spec.hactor)
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("{}: {e}", spec.hactor.display()))?;
    let mut daemon = Daemon(child);
    let pid = daemon.0.id();
    // Ready: the socket answers; then the master and the LRM active (when
    // a status gets through at all).
    let deadline = started + Duration::from_secs(120);
    let ready = loop {
        if let Ok(Some(status)) = daemon.0.try_wait() {
            return Err(format!(
                "the daemon exited ({status}); see {}",
                dir.join("node1.log").display()
            ));
        }
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            return Err("the daemon did not open its socket within 120 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let settle = Instant::now() + Duration::from_secs(30);
    while Instant::now() < settle {
        match ha(spec, &socket, &["status"]) {
            Ok((_, out)) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout);
                if text.contains("master node1 (active") && text.contains("lrm node1 (active") {
                    break;
                }
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // A few rounds more (first lease renewals, status writes).
    std::thread::sleep(Duration::from_secs(3));

    let (ticks0, written0, t0) = (cpu_ticks(pid)?, write_bytes(pid)?, Instant::now());
    std::thread::sleep(spec.idle);
    let (ticks1, written1, elapsed) = (cpu_ticks(pid)?, write_bytes(pid)?, t0.elapsed().as_secs_f64());
    let cpu = (ticks1.saturating_sub(ticks0)) as f64 / TICKS_PER_SEC / elapsed * 100.0;
    let writes = (written1.saturating_sub(written0)) as f64 / elapsed;
    if let Ok(Some(status)) = daemon.0.try_wait() {
        return Err(format!(
            "the daemon exited ({status}) while idle; see {}",
            dir.join("node1.log").display()
        ));
    }
    let count_lines = |out: &Output| out.stdout.iter().filter(|b| **b == b'\n').count();
    let status = timed(spec, &socket, &["status"]).map(|(took, out)| Timed {
        took,
        lines: count_lines(&out),
        bytes: out.stdout.len(),
    });
    let config = timed(spec, &socket, &["config"]).map(|(took, out)| Timed {
        took,
        lines: count_lines(&out),
        bytes: out.stdout.len(),
    });
    if let Ok(timed) = &status
        && timed.lines < spec.resources
    {
        return Err(format!(
            "ha-manager status printed {} lines for {} resources",
            timed.lines, spec.resources
        ));
    }
    let exited = match daemon.0.try_wait() {
        Ok(Some(status)) => Some(format!("{status}; see {}", dir.join("node1.log").display())),
        _ => None,
    };
    drop(daemon);
    Ok(ScaleReport {
        resources: spec.resources,
        store_bytes: store.len() as u64,
        ready,
        status,
        config,
        idle_cpu_percent: cpu,
        idle_write_bytes_per_sec: writes,
        idle_secs: elapsed,
        exited,
    })
}

/// `hactor-bench scale`: runs `spec` and prints its report; exit code 1
/// when a goal is missed or the run failed.
pub fn main(spec: &ScaleSpec) -> ExitCode {
    match run(spec) {
        Ok(report) => {
            print!("{}", report.render());
            if report.goals_met() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("hactor-bench: scale: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeded_state_passes_the_stores_checks() {
        let state = seeded_state(3);
        assert_eq!(
            state.resources.keys().collect::<Vec<_>>(),
            ["vm:100", "vm:101", "vm:102"]
        );
        assert_eq!(crate::core::store::check::validate(&state), Ok(()));
    }

    #[test]
    fn this_process_has_cpu_and_io_figures() {
        let pid = std::process::id();
        assert!(cpu_ticks(pid).is_ok());
        assert!(write_bytes(pid).is_ok());
    }
}
