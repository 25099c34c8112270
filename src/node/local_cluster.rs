//! A cluster of `hactor` daemons on this machine's loopback, each its own
//! process with its own state directory, QUIC port, API socket and
//! process watchdog: the `hactor local-cluster` demo and the failover
//! benchmark run on it.
//!
//! Formation uses the real lifecycle commands (`cluster init` on node1,
//! `add-node` and `join` for the others), by running the `hactor` program
//! itself, so what it shows is what an operator would do by hand.
//!
//! Every daemon writes its own pid to `<node dir>/hactor.pid`, so a node
//! restarted by hand (`hactor --config <dir>/nodeN.toml`) is found there
//! too: [`LocalCluster::shutdown`] stops it with the others.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::peer::ClusterView;

/// What to build.
#[derive(Debug, Clone)]
pub struct LocalSpec {
    pub nodes: usize,
    /// `proc:svcN` services seeded on node1; each node can run them.
    pub services: usize,
    /// `fast` or `pve`.
    pub profile: String,
    /// node N listens on `127.0.0.1:<base_port + N>`.
    pub base_port: u16,
    /// A word in the services' command lines that tells them apart from
    /// any other process (`sleep <marker><N>`).
    pub marker: String,
    /// Extra top-level TOML for every node's configuration.
    pub extra: String,
    /// A bash script the services run instead of `sleep` (its `$0` is
    /// `hactor-svc-<marker><N>`).
    pub script: Option<String>,
}

impl Default for LocalSpec {
    fn default() -> Self {
        LocalSpec {
            nodes: 3,
            services: 3,
            profile: "fast".into(),
            base_port: 7400,
            marker: "7400000".into(),
            extra: String::new(),
            script: None,
        }
    }
}

/// One daemon.
#[derive(Debug)]
pub struct LocalNode {
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
}

/// The running cluster. Dropping it kills every daemon, the ones it
/// started and any restarted by hand (whose fence guards then stop the
/// services).
#[derive(Debug)]
pub struct LocalCluster {
    pub dir: PathBuf,
    pub program: PathBuf,
    pub spec: LocalSpec,
    pub nodes: Vec<LocalNode>,
}

/// Marks a folder as made by this module (so it may be wiped).
const MARKER_FILE: &str = ".hactor-local-cluster";

fn config_text(spec: &LocalSpec, name: &str, dir: &Path, port: u16, first: bool) -> String {
    let mut text = format!(
        "node = \"{name}\"\nstate_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\nsocket = \"{}\"\n\
         profile = \"{}\"\n{}\n[watchdog]\nbackend = \"process\"\n",
        dir.display(),
        dir.join("hactor.sock").display(),
        spec.profile,
        spec.extra
    );
    for s in 0..spec.services {
        let (command, args) = match &spec.script {
            Some(script) => (
                "bash",
                format!("[\"-c\", {script:?}, \"hactor-svc-{}{s}\"]", spec.marker),
            ),
            None => ("sleep", format!("[\"{}{s}\"]", spec.marker)),
        };
        text.push_str(&format!(
            "\n[proc.svc{s}]\ncommand = \"{command}\"\nargs = {args}\nstop_timeout_secs = 2\n"
        ));
        if first {
            // Spread over the nodes, so that any node's loss moves something.
            let home = s % spec.nodes + 1;
            text.push_str(&format!(
                "\n[resource.\"proc:svc{s}\"]\nstate = \"started\"\nnode = \"node{home}\"\n"
            ));
        }
    }
    text
}

/// Pids of live, not stopped, processes whose command line contains
/// `needle` (a stopped one is frozen: it cannot do anything).
pub fn live_pids(needle: &str) -> Vec<i32> {
    pids(needle, false)
}

/// Pids of processes whose command line contains `needle`, frozen ones
/// too if `frozen`. A match whose parent also matches is left out: a
/// shell forking a command shows its own command line until the exec.
pub fn pids(needle: &str, frozen: bool) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|f| f.chars().next());
        let ppid = fields.next().and_then(|f| f.parse::<i32>().ok()).unwrap_or(0);
        let stopped = matches!(state, Some('T' | 't'));
        if matches!(state, Some(s) if s != 'Z') && (frozen || !stopped) {
            found.push((pid, ppid));
        }
    }
    let all: Vec<i32> = found.iter().map(|(pid, _)| *pid).collect();
    found
        .into_iter()
        .filter(|(_, ppid)| !all.contains(ppid))
        .map(|(pid, _)| pid)
        .collect()
}

/// Whether process `pid` is alive (not a zombie) and runs `hactor
/// --config <config>` (the path compared after resolving it).
fn runs_config(pid: i32, config: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    if zombie {
        return false;
    }
    let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
        return false;
    };
    let want = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let given = args.iter().enumerate().filter_map(|(k, arg)| match *arg {
        b"--config" | b"-c" => args.get(k + 1).copied(),
        _ => arg.strip_prefix(b"--config=".as_slice()),
    });
    let cwd = std::fs::read_link(proc_dir.join("cwd")).unwrap_or_default();
    given.into_iter().any(|path| {
        use std::os::unix::ffi::OsStrExt;
        let path = cwd.join(std::ffi::OsStr::from_bytes(path));
        std::fs::canonicalize(&path).unwrap_or(path) == want
    })
}

/// Writes the daemons' fault-injection files so that node `i` of `nodes`
/// (name, state directory) and each of `peers` stop talking to each other;
/// `&[]` heals node `i`.
pub fn write_partition(nodes: &[(String, PathBuf)], i: usize, peers: &[usize]) {
    let names: Vec<String> = peers.iter().map(|p| nodes[*p].0.clone()).collect();
    let _ = std::fs::write(nodes[i].1.join("fault-block"), names.join("\n"));
    for (j, (_, dir)) in nodes.iter().enumerate() {
        if j == i {
            continue;
        }
        let path = dir.join("fault-block");
        let mut theirs: Vec<String> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty() && *l != nodes[i].0)
            .map(String::from)
            .collect();
        if peers.contains(&j) {
            theirs.push(nodes[i].0.clone());
        }
        let _ = std::fs::write(&path, theirs.join("\n"));
    }
}

impl LocalCluster {
    /// Writes the configurations under `dir` (which must be new, or one a
    /// previous local cluster made), forms the cluster and starts every
    /// daemon; returns once every node is a voter.
    pub fn create(dir: &Path, program: &Path, spec: LocalSpec) -> Result<LocalCluster, String> {
        if dir.exists() {
            if !dir.join(MARKER_FILE).exists() {
                return Err(format!(
                    "{} exists and was not made by `hactor local-cluster`; choose another --dir",
                    dir.display()
                ));
            }
            std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::write(dir.join(MARKER_FILE), "").map_err(|e| e.to_string())?;
        let mut nodes = Vec::new();
        for i in 1..=spec.nodes {
            let name = format!("node{i}");
            let node_dir = dir.join(&name);
            let port = spec.base_port + i as u16;
            let config = dir.join(format!("{name}.toml"));
            std::fs::write(&config, config_text(&spec, &name, &node_dir, port, i == 1))
                .map_err(|e| format!("{}: {e}", config.display()))?;
            nodes.push(LocalNode {
                name,
                dir: node_dir,
                config,
                port,
                child: None,
            });
        }
        let mut cluster = LocalCluster {
            dir: dir.to_path_buf(),
            program: program.to_path_buf(),
            spec,
            nodes,
        };
        cluster.run(0, &["cluster", "init", "--name", "local"])?;
        cluster.start(0)?;
        cluster.wait_view(0, Duration::from_secs(30), |v| v.leader.is_some())?;
        for i in 1..cluster.nodes.len() {
            let bundle = cluster.dir.join(format!("{}.bundle.json", cluster.nodes[i].name));
            let bundle_arg = bundle.to_string_lossy().into_owned();
            let name = cluster.nodes[i].name.clone();
            cluster.run(0, &["cluster", "add-node", &name, "--out", &bundle_arg])?;
            cluster.run(i, &["cluster", "join", "--bundle", &bundle_arg])?;
            cluster.start(i)?;
        }
        cluster.wait_settled(Duration::from_secs(60))?;
        Ok(cluster)
    }

    /// Runs `hactor --config <node i> args…`; `Err` carries its stderr.
    pub fn run(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.program)
            .arg("--config")
            .arg(&self.nodes[i].config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", self.program.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "hactor {} on {}: {}",
                args.join(" "),
                self.nodes[i].name,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.log", self.nodes[i].name))
    }

    /// Starts node `i`'s daemon (its log goes to `<dir>/<node>.log`).
    pub fn start(&mut self, i: usize) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&self.program)
            .arg("--config")
            .arg(&self.nodes[i].config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.program.display()))?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    pub fn pid(&self, i: usize) -> Option<i32> {
        self.nodes[i].child.as_ref().map(|c| c.id() as i32)
    }

    /// The daemon of node `i` by its pid file: also one restarted by hand.
    /// `None` unless that pid is a live process whose command line names
    /// node `i`'s configuration (a stale pid file may name a reused pid).
    pub fn daemon_pid(&self, i: usize) -> Option<i32> {
        let pid = super::state_lock::read_pid_file(&self.nodes[i].dir)?;
        runs_config(pid, &self.nodes[i].config).then_some(pid)
    }

    pub fn signal(&self, i: usize, signal: nix::sys::signal::Signal) {
        if let Some(pid) = self.pid(i) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }

    /// SIGKILL and reap: a hard loss of the node's daemon.
    pub fn kill(&mut self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGKILL);
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait up to `timeout`: a graceful daemon restart.
    pub fn stop(&mut self, i: usize, timeout: Duration) -> Result<(), String> {
        self.signal(i, nix::sys::signal::Signal::SIGTERM);
        let Some(mut child) = self.nodes[i].child.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if child.try_wait().map_err(|e| e.to_string())?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.nodes[i].child = Some(child);
        Err(format!("{} did not stop within {timeout:?}", self.nodes[i].name))
    }

    /// Node `i`'s view of the cluster; `None` when its daemon does not answer.
    pub fn view(&self, i: usize) -> Option<ClusterView> {
        let out = self.run(i, &["cluster", "status", "--json"]).ok()?;
        serde_json::from_str(&out).ok()
    }

    pub fn wait_view(
        &self,
        i: usize,
        timeout: Duration,
        mut check: impl FnMut(&ClusterView) -> bool,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < timeout {
            last = self.view(i);
            if last.as_ref().is_some_and(&mut check) {
                return Ok(started.elapsed());
            }
            // Each look runs `hactor cluster status`: not too often, or the
            // looking loads a small machine more than the cluster does.
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "{}: condition not met within {timeout:?}; its last view: {last:?}",
            self.nodes[i].name
        ))
    }

    /// Waits until every running node sees every node as a voter and no
    /// membership change is under way.
    pub fn wait_settled(&self, timeout: Duration) -> Result<(), String> {
        let n = self.nodes.len();
        for i in 0..n {
            if self.nodes[i].child.is_some() {
                self.wait_view(i, timeout, |v| {
                    v.settled && v.quorate && v.members.len() == n && v.members.iter().all(|m| m.2)
                })?;
            }
        }
        Ok(())
    }

    /// `(sid, node, state)` as node `i` sees them.
    pub fn placement(&self, i: usize) -> Vec<(String, String, String)> {
        self.view(i).map(|v| v.services).unwrap_or_default()
    }

    /// Live (not frozen) processes of service `s`.
    pub fn service_pids(&self, s: usize) -> Vec<i32> {
        live_pids(&format!("{}{s} ", self.spec.marker))
    }

    /// Index of the node named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Any running node's index.
    pub fn any_running(&self) -> Option<usize> {
        self.nodes.iter().position(|n| n.child.is_some())
    }

    /// Testing (needs `fault_injection = true` in the spec's `extra`): cuts
    /// node `i` off from `peers` and them from it; `&[]` heals.
    pub fn partition(&self, i: usize, peers: &[usize]) {
        let nodes: Vec<(String, PathBuf)> = self.nodes.iter().map(|n| (n.name.clone(), n.dir.clone())).collect();
        write_partition(&nodes, i, peers);
    }

    /// Kills every daemon (the ones started here and any restarted by
    /// hand, found by their pid files) and any service process left over.
    pub fn shutdown(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
            if let Some(pid) = self.daemon_pid(i) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline && runs_config(pid, &self.nodes[i].config) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = std::fs::remove_file(self.nodes[i].dir.join(super::state_lock::PID_FILE));
        }
        let needle = self.spec.marker.clone();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !live_pids(&needle).is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in pids(&needle, true) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
