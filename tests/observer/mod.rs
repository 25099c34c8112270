//! The invariant observer of the multi-process tests, which is also the
//! services' shared storage, and the set-up of a local cluster whose
//! services report to it. Shared by `tests/failover.rs`, `tests/restart.rs`
//! and `tests/soak.rs`.
//!
//! It checks:
//! - never two live, unfrozen instances of a service at once (sampled);
//! - the storage accepts no write carrying a stale fencing token;
//! - (`check_no_stale_start`) no instance ever wrote with a token lower
//!   than the newest one handed out: no start under an old token.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hactor::node::local_cluster::{LocalCluster, LocalSpec, pids};
use nix::sys::signal::Signal;

pub const HACTOR: &str = env!("CARGO_BIN_EXE_hactor");
/// Upper bound for a recovery in these tests (debug build, loaded 2-core
/// machine); the benchmark measures the real figure.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(25);
/// placement's fencing token, then writes. A write with a token older
/// than the newest seen for that service is refused.
#[derive(Default)]
pub struct Storage {
    pub newest: BTreeMap<String, u64>,
    pub accepted: Vec<(String, String, u64, Instant)>,
    pub refused: Vec<(String, String, u64)>,
    /// Accepted writes whose token was already stale: must stay empty.
    pub violations: Vec<String>,
}

pub struct Observer {
    pub port: u16,
    pub storage: Arc<Mutex<Storage>>,
    pub stop: Arc<AtomicBool>,
    /// Moments two live instances of a service were seen.
    pub doubles: Arc<Mutex<Vec<String>>>,
}

impl Observer {
    pub fn start(services: usize, needle: impl Fn(usize) -> String + Send + 'static) -> Observer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let storage = Arc::new(Mutex::new(Storage::default()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let storage = storage.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let storage = storage.clone();
                    std::thread::spawn(move || serve(stream, storage));
                }
            });
        }
        let doubles = Arc::new(Mutex::new(Vec::new()));
        {
            let (stop, doubles) = (stop.clone(), doubles.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for s in 0..services {
                        let live = pids(&needle(s), false);
                        if live.len() > 1 {
                            doubles.lock().unwrap().push(format!("svc{s}: {live:?}"));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        Observer {
            port,
            storage,
            stop,
            doubles,
        }
    }

    /// The service script: connect, then write once every 100 ms.
    pub fn script(&self) -> String {
        format!(
            "exec 3<>/dev/tcp/127.0.0.1/{}; n=0; while true; do \
             echo \"write $HACTOR_SID $HACTOR_NODE $HACTOR_FENCING_TOKEN $n\" >&3 || exit 1; \
             n=$((n+1)); sleep 0.1; done",
            self.port
        )
    }

    pub fn check(&self) {
        let doubles = self.doubles.lock().unwrap();
        assert!(
            doubles.is_empty(),
            "two live instances at once: {:?}",
            &doubles[..doubles.len().min(5)]
        );
        let storage = self.storage.lock().unwrap();
        assert!(
            storage.violations.is_empty(),
            "stale writes accepted: {:?}",
            storage.violations
        );
    }

    /// Besides [`Observer::check`]: no instance ever wrote with a token
    /// lower than the newest one already handed out for its service (no
    /// start under an old fencing token). Only for tests without frozen
    /// nodes, whose thawed instances legitimately hold an old token.
    pub fn check_no_stale_start(&self) {
        self.check();
        let storage = self.storage.lock().unwrap();
        assert!(
            storage.refused.is_empty(),
            "instances writing with an old fencing token: {:?}",
            &storage.refused[..storage.refused.len().min(5)]
        );
    }

    /// The node and token of the newest accepted write of `sid` after `since`.
    pub fn writer_since(&self, sid: &str, since: Instant) -> Option<(String, u64)> {
        let storage = self.storage.lock().unwrap();
        storage
            .accepted
            .iter()
            .rev()
            .find(|(s, _, _, at)| s == sid && *at > since)
            .map(|(_, node, token, _)| (node.clone(), *token))
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub fn serve(stream: std::net::TcpStream, storage: Arc<Mutex<Storage>>) {
    let mut out = stream.try_clone().unwrap();
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let parts: Vec<&str> = line.split_whitespace().collect();
        let ["write", sid, node, token, _n] = parts[..] else {
            continue;
        };
        let Ok(token) = token.parse::<u64>() else { continue };
        let mut s = storage.lock().unwrap();
        let newest = s.newest.entry(sid.to_string()).or_insert(0);
        let ok = token >= *newest;
        if ok {
            *newest = token;
            s.accepted.push((sid.into(), node.into(), token, Instant::now()));
        } else {
            s.refused.push((sid.into(), node.into(), token));
        }
        drop(s);
        let _ = out.write_all(if ok { b"ok\n" } else { b"refused\n" });
    }
}

pub fn free_base_port(n: u16) -> u16 {
    'search: for _ in 0..100 {
        let base = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
            .saturating_sub(10);
        if base < 20_000 {
            continue;
        }
        for i in 1..=n {
            if UdpSocket::bind(("127.0.0.1", base + i)).is_err() {
                continue 'search;
            }
        }
        return base;
    }
    panic!("no free ports");
}

pub struct Setup {
    pub cluster: LocalCluster,
    pub observer: Observer,
    pub _tmp: tempfile::TempDir,
}

/// `nodes` daemons, `services` observed services spread over them
/// (svcN starts on node N % nodes + 1), with fault injection.
pub fn setup(nodes: usize, services: usize, extra: &str) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let base_port = free_base_port(nodes as u16);
    let marker = format!("9{base_port}{}", std::process::id() % 1000);
    let needle_marker = marker.clone();
    let observer = Observer::start(services, move |s| format!("{needle_marker}{s} "));
    let spec = LocalSpec {
        nodes,
        services,
        profile: "fast".into(),
        base_port,
        marker,
        extra: format!("fault_injection = true\n{extra}"),
        script: Some(observer.script()),
    };
    // HACTOR_TEST_BIN runs the tests against another build of the daemon
    // (e.g. an older one, to show that a test finds the bug it is for).
    let program = std::env::var("HACTOR_TEST_BIN").unwrap_or_else(|_| HACTOR.to_string());
    let cluster = LocalCluster::create(&tmp.path().join("cluster"), Path::new(&program), spec).unwrap();
    let setup = Setup {
        cluster,
        observer,
        _tmp: tmp,
    };
    for s in 0..services {
        setup.wait_running(s, None, Duration::from_secs(30));
    }
    setup
}

impl Setup {
    /// Waits until service `s` runs (one live instance, writing) on a
    /// node other than `not_on`; returns the node and how long it took.
    pub fn wait_running(&self, s: usize, not_on: Option<&str>, timeout: Duration) -> (String, Duration) {
        let started = Instant::now();
        let sid = format!("proc:svc{s}");
        while started.elapsed() < timeout {
            if self.cluster.service_pids(s).len() == 1
                && let Some((node, _)) = self
                    .observer
                    .writer_since(&sid, Instant::now() - Duration::from_millis(300))
                && Some(node.as_str()) != not_on
            {
                return (node, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.dump();
        panic!("{sid} not running (away from {not_on:?}) within {timeout:?}");
    }

    pub fn home(&self, s: usize) -> usize {
        let sid = format!("proc:svc{s}");
        let node = self
            .observer
            .writer_since(&sid, Instant::now() - Duration::from_secs(1))
            .unwrap()
            .0;
        self.cluster.index(&node).unwrap()
    }

    pub fn token(&self, s: usize) -> u64 {
        self.observer.storage.lock().unwrap().newest[&format!("proc:svc{s}")]
    }

    pub fn master_log(&self) -> String {
        (0..self.cluster.nodes.len())
            .map(|i| std::fs::read_to_string(self.cluster.log_path(i)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn dump(&self) {
        // Keep the whole logs for a look after the test.
        let keep = std::env::temp_dir().join(format!("hactor-test-logs-{}", self.cluster.spec.marker));
        let _ = std::fs::create_dir_all(&keep);
        for i in 0..self.cluster.nodes.len() {
            let _ = std::fs::copy(
                self.cluster.log_path(i),
                keep.join(format!("{}.log", self.cluster.nodes[i].name)),
            );
        }
        eprintln!("whole logs kept in {}", keep.display());
        for i in 0..self.cluster.nodes.len() {
            let text = std::fs::read_to_string(self.cluster.log_path(i)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("==== {}", self.cluster.nodes[i].name);
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
    }
}

/// Every process of node `i`: the daemon and its descendants.
pub fn node_processes(cluster: &LocalCluster, i: usize) -> Vec<i32> {
    let root = cluster.pid(i).unwrap();
    let mut parent_of = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if let Some((_, rest)) = stat.rsplit_once(')')
            && let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok())
        {
            parent_of.insert(pid, ppid);
        }
    }
    let mut tree = vec![root];
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, ppid) in &parent_of {
            if tree.contains(ppid) && !tree.contains(pid) {
                tree.push(*pid);
                grew = true;
            }
        }
    }
    tree
}

pub fn signal_all(pids: &[i32], signal: Signal) {
    for pid in pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), signal);
    }
}
pub fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

pub fn wait(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out after {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// What one [`Setup::fault_and_restart`] took.
pub struct Cycle {
    /// From the fault to the restart.
    pub restarted: Duration,
    /// Other daemons fenced meanwhile and restarted.
    pub revived: usize,
    /// From the settled cluster to every service running.
    pub back: Duration,
}

/// A fault a node suffers, after which it is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL of the daemon (its fence guard kills its services).
    Kill,
    /// SIGSTOP of the daemon past its lease (its guard kills it).
    Hang,
    /// Cut off from every other node past its lease (healed at the restart).
    Partition,
    /// Every store write of the node fails as on a full disk.
    DiskFull,
    /// A planned node shutdown (SIGTERM with the node going down) under
    /// the given shutdown policy.
    Shutdown(&'static str),
}

impl Setup {
    /// The node the current master runs on, as any running node sees it.
    pub fn master(&self) -> Option<usize> {
        (0..self.cluster.nodes.len())
            .filter(|i| self.cluster.nodes[*i].child.is_some())
            .find_map(|i| self.cluster.view(i).and_then(|v| v.master))
            .and_then(|name| self.cluster.index(&name))
    }

    /// Waits until every service runs exactly once and writes.
    pub fn wait_all_running(&self, services: usize, timeout: Duration) -> Duration {
        let started = Instant::now();
        for s in 0..services {
            let left = timeout.saturating_sub(started.elapsed());
            self.wait_running(s, None, left.max(Duration::from_millis(1)));
        }
        started.elapsed()
    }

    /// Applies `fault` to node `i`.
    pub fn inflict(&mut self, i: usize, fault: Fault) {
        let dir = self.cluster.nodes[i].dir.clone();
        match fault {
            Fault::Kill => self.cluster.kill(i),
            Fault::Hang => self.cluster.signal(i, Signal::SIGSTOP),
            Fault::Partition => {
                let others: Vec<usize> = (0..self.cluster.nodes.len()).filter(|j| *j != i).collect();
                self.cluster.partition(i, &others);
            }
            Fault::DiskFull => std::fs::write(dir.join("fault-disk-full"), "").unwrap(),
            Fault::Shutdown(_) => {
                std::fs::write(dir.join("node-shutdown"), "shutdown").unwrap();
                self.cluster.signal(i, Signal::SIGTERM);
            }
        }
    }

    /// Brings node `i` back after `fault`: undoes the fault, kills what
    /// is left of the old daemon (as a node reset would), starts it again.
    pub fn restart(&mut self, i: usize, fault: Fault) {
        let dir = self.cluster.nodes[i].dir.clone();
        match fault {
            Fault::Partition => self.cluster.partition(i, &[]),
            Fault::DiskFull => {
                let _ = std::fs::remove_file(dir.join("fault-disk-full"));
            }
            Fault::Shutdown(_) => {
                let _ = std::fs::remove_file(dir.join("node-shutdown"));
            }
            Fault::Kill | Fault::Hang => {}
        }
        if fault == Fault::Hang {
            self.cluster.signal(i, Signal::SIGCONT);
        }
        if let Fault::Shutdown(_) = fault {
            // A planned shutdown ends by itself; give it the time it takes.
            let _ = self.cluster.stop(i, RECOVERY_BOUND);
        }
        self.cluster.kill(i);
        self.cluster.start(i).unwrap();
    }
}

impl Setup {
    /// The Raft leader, as any running node sees it.
    pub fn leader(&self) -> Option<usize> {
        (0..self.cluster.nodes.len())
            .filter(|i| self.cluster.nodes[*i].child.is_some())
            .find_map(|i| self.cluster.view(i).and_then(|v| v.leader))
            .and_then(|name| self.cluster.index(&name))
    }

    /// Makes node `i` the Raft leader (fault injection: it starts an
    /// election at once; the others refuse its votes while they still hear
    /// the current leader, so it may take a few tries, 3 s apart); returns
    /// once every node sees it lead.
    pub fn make_leader(&self, i: usize, timeout: Duration) {
        let name = &self.cluster.nodes[i].name;
        let leads = || {
            (0..self.cluster.nodes.len()).all(|j| {
                self.cluster
                    .view(j)
                    .is_some_and(|v| v.leader.as_deref() == Some(name.as_str()))
            })
        };
        let started = Instant::now();
        while started.elapsed() < timeout {
            if leads() {
                return;
            }
            let _ = std::fs::write(self.cluster.nodes[i].dir.join("fault-elect"), "");
            // One try at a time: let the election settle before the next.
            let tried = Instant::now();
            while tried.elapsed() < Duration::from_secs(3) {
                if leads() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        panic!("{name} did not become the leader within {timeout:?}");
    }

    /// The fence guard's log of node `i`.
    pub fn fence_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.cluster.nodes[i].dir.join("fence.log")).unwrap_or_default()
    }

    /// Restarts every node whose daemon died (fenced by its watchdog, as a
    /// second fault can do to a healthy node while the cluster has no
    /// leader), as its service manager would (`Restart=` of the systemd
    /// unit); returns how many.
    pub fn revive(&mut self) -> usize {
        let mut revived = 0;
        for i in 0..self.cluster.nodes.len() {
            if self.cluster.nodes[i].child.is_some() && !self.daemon_alive(i) {
                self.cluster.kill(i);
                self.cluster.start(i).unwrap();
                revived += 1;
            }
        }
        revived
    }

    /// Waits until the cluster is whole again, restarting daemons that
    /// die meanwhile ([`Setup::revive`]); returns how many were.
    pub fn settle(&mut self, timeout: Duration) -> Result<usize, String> {
        let started = Instant::now();
        let mut revived = 0;
        loop {
            revived += self.revive();
            match self.cluster.wait_settled(Duration::from_secs(5)) {
                Ok(()) if self.revive() == 0 => return Ok(revived),
                Ok(()) => revived += 1,
                Err(e) if started.elapsed() > timeout => {
                    self.dump();
                    return Err(e);
                }
                Err(_) => {}
            }
        }
    }

    /// One cycle of the restart and soak tests: `fault` on node `victim`,
    /// its restart `delay` after the fault, then the cluster settled and
    /// every one of `services` running again.
    pub fn fault_and_restart(&mut self, victim: usize, fault: Fault, delay: Duration, services: usize) -> Cycle {
        let name = self.cluster.nodes[victim].name.clone();
        let at = Instant::now();
        self.inflict(victim, fault);
        std::thread::sleep(delay.saturating_sub(at.elapsed()));
        self.restart(victim, fault);
        let restarted = at.elapsed();
        let revived = self
            .settle(RECOVERY_BOUND * 2)
            .unwrap_or_else(|e| panic!("{fault:?} of {name}: {e}"));
        let back = self.wait_all_running(services, RECOVERY_BOUND * 2);
        Cycle {
            restarted,
            revived,
            back,
        }
    }

    /// Whether node `i`'s daemon process is alive.
    pub fn daemon_alive(&self, i: usize) -> bool {
        self.cluster.pid(i).is_some_and(|pid| !zombie(pid))
    }
}
