//! A cluster of real `hactor` daemons on loopback, for the multi-process
//! tests: each node its own process, state directory, QUIC port, fence
//! guard and `proc:` services. Formed with the real lifecycle commands
//! (`cluster init`, `add-node`, `join`); partitions through the daemons'
//! test-only fault injection (`<state_dir>/fault-block`). Dropping the
//! cluster kills every daemon (whose fence guards then kill the services).

#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hactor::net::peer::ClusterView;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const HACTOR: &str = env!("CARGO_BIN_EXE_hactor");
pub const HA_MANAGER: &str = env!("CARGO_BIN_EXE_ha-manager");

pub struct Node {
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
}

pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub nodes: Vec<Node>,
    /// The marker argument of this cluster's service processes.
    pub marker: String,
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Pids of live processes whose command line contains `needle`.
pub fn pids_with(needle: &str) -> Vec<i32> {
    hactor::node::local_cluster::pids(needle, true)
}

impl Cluster {
    /// Writes the configurations of `n` nodes; `services` seeds node1's
    /// store with that many `proc:` services (each node can run them).
    pub fn configure(n: usize, services: usize) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let marker = format!(
            "{}",
            100_000_000 + (std::process::id() as u64 % 1000) * 1000 + free_port() as u64 % 1000
        );
        let mut nodes = Vec::new();
        for i in 1..=n {
            let name = format!("node{i}");
            let dir = tmp.path().join(&name);
            let port = free_port();
            let mut text = format!(
                "node = \"{name}\"\nstate_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\nsocket = \"{}\"\n\
                 fault_injection = true\n\n[watchdog]\nbackend = \"process\"\n",
                dir.display(),
                dir.join("hactor.sock").display()
            );
            for s in 0..services {
                text.push_str(&format!(
                    "\n[proc.svc{s}]\ncommand = \"sleep\"\nargs = [\"{marker}{s}\"]\nstop_timeout_secs = 2\n"
                ));
                if i == 1 {
                    text.push_str(&format!("\n[resource.\"proc:svc{s}\"]\nstate = \"started\"\n"));
                }
            }
            let config = tmp.path().join(format!("{name}.toml"));
            std::fs::write(&config, text).unwrap();
            nodes.push(Node {
                name,
                dir,
                config,
                port,
                child: None,
            });
        }
        Cluster { tmp, nodes, marker }
    }

    /// Configures `n` nodes and forms the cluster: init on node1, then
    /// every other node joins; returns once all are voters.
    pub fn form(n: usize, services: usize) -> Cluster {
        Cluster::form_of(n, n, services)
    }

    /// Configures `configured` nodes, of which the first `members` form
    /// the cluster.
    pub fn form_of(configured: usize, members: usize, services: usize) -> Cluster {
        let n = members;
        let mut cluster = Cluster::configure(configured, services);
        cluster.ok(0, &["cluster", "init", "--name", "test"]);
        cluster.start(0);
        cluster.wait_view(0, "node1 to lead", Duration::from_secs(20), |v| v.leader.is_some());
        for i in 1..n {
            let bundle = cluster.tmp.path().join(format!("bundle{i}.json"));
            let name = cluster.nodes[i].name.clone();
            cluster.ok(0, &["cluster", "add-node", &name, "--out", bundle.to_str().unwrap()]);
            cluster.ok(i, &["cluster", "join", "--bundle", bundle.to_str().unwrap()]);
            cluster.start(i);
        }
        for i in 0..n {
            cluster.wait_view(i, "every node a voter on every node", Duration::from_secs(30), |v| {
                v.settled && v.members.len() == n && v.members.iter().all(|m| m.2)
            });
        }
        cluster
    }

    /// Runs `hactor --config <node i> args…`.
    pub fn hactor(&self, i: usize, args: &[&str]) -> Output {
        Command::new(HACTOR)
            .arg("--config")
            .arg(&self.nodes[i].config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Like [`Cluster::hactor`], asserting success; returns stdout.
    pub fn ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.hactor(i, args);
        assert!(
            out.status.success(),
            "hactor {args:?} on {} failed: {}",
            self.nodes[i].name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn log(&self, i: usize) -> PathBuf {
        self.tmp.path().join(format!("{}.log", self.nodes[i].name))
    }

    pub fn start(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))
            .unwrap();
        let child = Command::new(HACTOR)
            .arg("--config")
            .arg(&self.nodes[i].config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.nodes[i].child = Some(child);
    }

    pub fn pid(&self, i: usize) -> Option<i32> {
        self.nodes[i].child.as_ref().map(|c| c.id() as i32)
    }

    pub fn signal(&self, i: usize, signal: Signal) {
        if let Some(pid) = self.pid(i) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// SIGKILL: a hard node loss (its fence guard kills its services).
    pub fn kill(&mut self, i: usize) {
        self.signal(i, Signal::SIGKILL);
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait: a graceful daemon restart (services stay, frozen).
    pub fn stop(&mut self, i: usize) {
        self.signal(i, Signal::SIGTERM);
        if let Some(mut child) = self.nodes[i].child.take() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("{} did not stop within 30 s", self.nodes[i].name);
        }
    }

    /// The node's view of the cluster, `None` if its daemon does not answer.
    pub fn view(&self, i: usize) -> Option<ClusterView> {
        let out = self.hactor(i, &["cluster", "status", "--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn wait_view(
        &self,
        i: usize,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&ClusterView) -> bool,
    ) -> Duration {
        wait_for(what, timeout, || self.view(i).is_some_and(|v| check(&v)))
    }

    /// Cuts node `i` off from `peers` (and them from it), or heals with `&[]`.
    pub fn partition(&self, i: usize, peers: &[usize]) {
        let nodes: Vec<(String, PathBuf)> = self.nodes.iter().map(|n| (n.name.clone(), n.dir.clone())).collect();
        hactor::node::local_cluster::write_partition(&nodes, i, peers);
    }

    /// Where each service is placed and in what state, as node `i` sees it.
    pub fn placement(&self, i: usize) -> Vec<(String, String, String)> {
        self.view(i).map(|v| v.services).unwrap_or_default()
    }

    /// Live service processes of this cluster, by service index.
    pub fn service_pids(&self, s: usize) -> Vec<i32> {
        pids_with(&format!("sleep {}{s}", self.marker))
    }

    /// The nodes whose agents started the live instances of service `s`
    /// (their `HACTOR_NODE`).
    pub fn service_nodes(&self, s: usize) -> Vec<String> {
        self.service_pids(s)
            .into_iter()
            .filter_map(|pid| {
                let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
                environ
                    .split(|b| *b == 0)
                    .find_map(|var| var.strip_prefix(b"HACTOR_NODE="))
                    .map(|node| String::from_utf8_lossy(node).into_owned())
            })
            .collect()
    }

    /// Where node `i`'s daemon serves `ha-manager`.
    pub fn socket(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("hactor.sock")
    }

    /// `ha-manager args…` against node `i`'s daemon.
    pub fn ha_manager(&self, i: usize) -> Command {
        let mut command = Command::new(HA_MANAGER);
        command.env("HACTOR_SOCKET", self.socket(i)).stdin(Stdio::null());
        command
    }

    pub fn dump_logs(&self) {
        for i in 0..self.nodes.len() {
            let text = std::fs::read_to_string(self.log(i)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("==== {} (last lines)", self.nodes[i].name);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        // The fence guards kill the services; make sure none outlives us.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !pids_with(&format!("sleep {}", self.marker)).is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in pids_with(&format!("sleep {}", self.marker)) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}
