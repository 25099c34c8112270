//! End to end: real daemons on loopback (real QUIC, the replicated store,
//! process watchdogs), real service processes, and an invariant observer
//! that is also the services' shared storage. Each test breaks a node in
//! one way — SIGKILL, SIGSTOP of the daemon, a frozen node, a partition —
//! or restarts or shuts nodes down, and checks:
//! - never two live, unfrozen instances of a service at once (sampled);
//! - the storage accepts no write carrying a stale fencing token;
//! - every service requested `started` runs again within the bound;
//! - fencing is acknowledged before recovery.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hactor::node::local_cluster::{LocalCluster, LocalSpec, pids};
use nix::sys::signal::Signal;

const HACTOR: &str = env!("CARGO_BIN_EXE_hactor");
/// Upper bound for a recovery in these tests (debug build, loaded 2-core
/// machine); the benchmark measures the real figure.
const RECOVERY_BOUND: Duration = Duration::from_secs(25);

/// The services' shared storage: every service connects, announces its
/// placement's fencing token, then writes. A write with a token older
/// than the newest seen for that service is refused.
#[derive(Default)]
struct Storage {
    newest: BTreeMap<String, u64>,
    accepted: Vec<(String, String, u64, Instant)>,
    refused: Vec<(String, String, u64)>,
    /// Accepted writes whose token was already stale: must stay empty.
    violations: Vec<String>,
}

struct Observer {
    port: u16,
    storage: Arc<Mutex<Storage>>,
    stop: Arc<AtomicBool>,
    /// Moments two live instances of a service were seen.
    doubles: Arc<Mutex<Vec<String>>>,
}

impl Observer {
    fn start(services: usize, needle: impl Fn(usize) -> String + Send + 'static) -> Observer {
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
    fn script(&self) -> String {
        format!(
            "exec 3<>/dev/tcp/127.0.0.1/{}; n=0; while true; do \
             echo \"write $HACTOR_SID $HACTOR_NODE $HACTOR_FENCING_TOKEN $n\" >&3 || exit 1; \
             n=$((n+1)); sleep 0.1; done",
            self.port
        )
    }

    fn check(&self) {
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

    /// The node and token of the newest accepted write of `sid` after `since`.
    fn writer_since(&self, sid: &str, since: Instant) -> Option<(String, u64)> {
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

fn serve(stream: std::net::TcpStream, storage: Arc<Mutex<Storage>>) {
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

fn free_base_port(n: u16) -> u16 {
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

struct Setup {
    cluster: LocalCluster,
    observer: Observer,
    _tmp: tempfile::TempDir,
}

/// `nodes` daemons, `services` observed services spread over them
/// (svcN starts on node N % nodes + 1), with fault injection.
fn setup(nodes: usize, services: usize, extra: &str) -> Setup {
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
    let cluster = LocalCluster::create(&tmp.path().join("cluster"), Path::new(HACTOR), spec).unwrap();
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
    fn wait_running(&self, s: usize, not_on: Option<&str>, timeout: Duration) -> (String, Duration) {
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

    fn home(&self, s: usize) -> usize {
        let sid = format!("proc:svc{s}");
        let node = self
            .observer
            .writer_since(&sid, Instant::now() - Duration::from_secs(1))
            .unwrap()
            .0;
        self.cluster.index(&node).unwrap()
    }

    fn token(&self, s: usize) -> u64 {
        self.observer.storage.lock().unwrap().newest[&format!("proc:svc{s}")]
    }

    fn master_log(&self) -> String {
        (0..self.cluster.nodes.len())
            .map(|i| std::fs::read_to_string(self.cluster.log_path(i)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn dump(&self) {
        for i in 0..self.cluster.nodes.len() {
            let text = std::fs::read_to_string(self.cluster.log_path(i)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| l.contains("hactor")).collect();
            eprintln!("==== {}", self.cluster.nodes[i].name);
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
    }
}

/// Every process of node `i`: the daemon and its descendants.
fn node_processes(cluster: &LocalCluster, i: usize) -> Vec<i32> {
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

fn signal_all(pids: &[i32], signal: Signal) {
    for pid in pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), signal);
    }
}

#[test]
fn sigkill_of_a_service_node_recovers_it_after_the_fence() {
    let mut t = setup(3, 2, "");
    let victim = t.home(1);
    let name = t.cluster.nodes[victim].name.clone();
    let token = t.token(1);
    let killed = Instant::now();
    t.cluster.kill(victim);
    let (node, took) = t.wait_running(1, Some(&name), RECOVERY_BOUND);
    println!(
        "SIGKILL of {name}: proc:svc1 running on {node} after {:?}",
        killed.elapsed()
    );
    assert!(took < RECOVERY_BOUND);
    assert!(t.token(1) > token, "the new placement has a newer fencing token");
    let master = (0..3).filter(|i| *i != victim).find(|i| {
        std::fs::read_to_string(t.cluster.log_path(*i))
            .unwrap_or_default()
            .contains("recover service 'proc:svc1'")
    });
    let log = std::fs::read_to_string(t.cluster.log_path(master.expect("a master recovered it"))).unwrap();
    assert!(
        log.find(&format!("fencing: acknowledged - got agent lock for node '{name}'"))
            .unwrap()
            < log.find("recover service 'proc:svc1'").unwrap(),
        "recovered before the fence was acknowledged"
    );
    t.wait_running(0, None, Duration::from_secs(5));
    t.observer.check();
}

#[test]
fn a_hung_daemon_is_fenced_by_its_guard_before_its_services_move() {
    let mut t = setup(3, 2, "");
    let victim = t.home(1);
    let name = t.cluster.nodes[victim].name.clone();
    let old = t.cluster.service_pids(1);
    let daemon = t.cluster.pid(victim).unwrap();
    t.cluster.signal(victim, Signal::SIGSTOP);
    let stopped = Instant::now();
    // The guard kills the services (and the daemon) when the feeding stops.
    let fenced = wait(Duration::from_secs(10), "the guard to kill the old instance", || {
        old.iter().all(|p| zombie(*p))
    });
    let (node, _) = t.wait_running(1, Some(&name), RECOVERY_BOUND);
    println!(
        "SIGSTOP of {name}'s daemon: its guard killed proc:svc1 after {fenced:?}; running on {node} after {:?}",
        stopped.elapsed()
    );
    let fence_log = std::fs::read_to_string(t.cluster.nodes[victim].dir.join("fence.log")).unwrap_or_default();
    assert!(fence_log.contains("fencing node"), "{fence_log}");
    wait(Duration::from_secs(5), "the hung daemon killed by its guard", || {
        !Path::new(&format!("/proc/{daemon}/cmdline")).exists() || zombie(daemon)
    });
    // The node comes back (as its service manager would restart it).
    t.cluster.kill(victim);
    t.cluster.start(victim).unwrap();
    t.cluster.wait_settled(Duration::from_secs(30)).unwrap();
    t.wait_running(1, None, Duration::from_secs(5));
    t.observer.check();
}

fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

fn wait(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out after {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

#[test]
fn a_frozen_node_is_recovered_elsewhere_and_its_stale_instance_is_refused_and_killed_on_thaw() {
    let mut t = setup(3, 2, "");
    let victim = t.home(1);
    let name = t.cluster.nodes[victim].name.clone();
    let frozen = node_processes(&t.cluster, victim);
    let old_token = t.token(1);
    signal_all(&frozen, Signal::SIGSTOP);
    let at = Instant::now();
    let (node, _) = t.wait_running(1, Some(&name), RECOVERY_BOUND);
    println!("frozen {name}: proc:svc1 running on {node} after {:?}", at.elapsed());
    assert!(t.token(1) > old_token);
    // Thaw: for the moment until its guard kills it, the old instance runs
    // beside the new one (no fencing can act inside a frozen node); what
    // it writes then carries its stale token. So the double-run sampler
    // stops here, and the storage's refusal is what protects the data.
    t.observer.check();
    t.observer.stop.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(50));
    t.observer.doubles.lock().unwrap().clear();
    signal_all(&frozen, Signal::SIGCONT);
    let old_instances = |t: &Setup| {
        pids(&format!("{}1 ", t.cluster.spec.marker), true)
            .into_iter()
            .filter(|p| frozen.contains(p))
            .count()
    };
    let killed = wait(
        Duration::from_secs(5),
        "the thawed node's stale instance killed",
        || old_instances(&t) == 0,
    );
    println!("on thaw the stale instance was killed after {killed:?}");
    std::thread::sleep(Duration::from_millis(300));
    let refused = t
        .observer
        .storage
        .lock()
        .unwrap()
        .refused
        .iter()
        .filter(|r| r.2 == old_token)
        .count();
    println!("stale writes refused by the storage: {refused}");
    t.cluster.kill(victim);
    t.observer.check();
}

#[test]
fn a_partitioned_node_fences_itself_the_majority_recovers_and_it_rejoins() {
    let mut t = setup(3, 2, "");
    let victim = t.home(1);
    let name = t.cluster.nodes[victim].name.clone();
    let others: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    t.cluster.partition(victim, &others);
    let at = Instant::now();
    let (node, _) = t.wait_running(1, Some(&name), RECOVERY_BOUND);
    println!(
        "partitioned {name}: proc:svc1 running on {node} after {:?}",
        at.elapsed()
    );
    let fence_log = std::fs::read_to_string(t.cluster.nodes[victim].dir.join("fence.log")).unwrap_or_default();
    assert!(
        fence_log.contains("fencing node"),
        "the minority node fenced itself: {fence_log}"
    );
    // Heal and bring the node back: it rejoins, nothing runs twice.
    t.cluster.partition(victim, &[]);
    t.cluster.kill(victim);
    t.cluster.start(victim).unwrap();
    t.cluster.wait_settled(Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    t.wait_running(1, None, Duration::from_secs(5));
    t.wait_running(0, None, Duration::from_secs(5));
    t.observer.check();
}

#[test]
fn a_rolling_restart_of_every_daemon_moves_and_stops_nothing() {
    let mut t = setup(3, 3, "");
    let pids_before: Vec<Vec<i32>> = (0..3).map(|s| t.cluster.service_pids(s)).collect();
    let homes: Vec<usize> = (0..3).map(|s| t.home(s)).collect();
    for i in 0..3 {
        t.cluster.stop(i, Duration::from_secs(30)).unwrap();
        t.cluster.start(i).unwrap();
        t.cluster.wait_settled(Duration::from_secs(30)).unwrap();
        let any = t.cluster.any_running().unwrap();
        t.cluster
            .wait_view(any, Duration::from_secs(30), |v| {
                v.services.iter().all(|s| s.2 == "started")
            })
            .unwrap();
    }
    let pids_after: Vec<Vec<i32>> = (0..3).map(|s| t.cluster.service_pids(s)).collect();
    assert_eq!(
        pids_after, pids_before,
        "a daemon restart neither stops nor restarts services"
    );
    assert_eq!((0..3).map(|s| t.home(s)).collect::<Vec<_>>(), homes, "nothing moved");
    t.observer.check();
}

#[test]
fn node_shutdown_with_the_migrate_policy_moves_the_services_first() {
    let mut t = setup(3, 2, "shutdown_policy = \"migrate\"\n");
    let victim = t.home(1);
    let name = t.cluster.nodes[victim].name.clone();
    std::fs::write(t.cluster.nodes[victim].dir.join("node-shutdown"), "shutdown").unwrap();
    let at = Instant::now();
    t.cluster.signal(victim, Signal::SIGTERM);
    let (node, _) = t.wait_running(1, Some(&name), RECOVERY_BOUND);
    println!(
        "shutdown of {name} (migrate): proc:svc1 on {node} after {:?}",
        at.elapsed()
    );
    t.cluster.stop(victim, Duration::from_secs(30)).unwrap();
    assert!(t.master_log().contains("proc:svc1"), "migration logged");
    t.observer.check();
}

#[test]
fn node_shutdown_with_the_failover_policy_recovers_the_services_after_it_is_gone() {
    let mut t = setup(3, 2, "shutdown_policy = \"failover\"\n");
    let victim = t.home(1);
    let name = t.cluster.nodes[victim].name.clone();
    std::fs::write(t.cluster.nodes[victim].dir.join("node-shutdown"), "shutdown").unwrap();
    let at = Instant::now();
    t.cluster.stop(victim, Duration::from_secs(30)).unwrap();
    assert!(
        t.cluster.service_pids(1).is_empty(),
        "a shutting down node stops its services"
    );
    let (node, _) = t.wait_running(1, Some(&name), RECOVERY_BOUND);
    println!(
        "shutdown of {name} (failover): proc:svc1 on {node} after {:?}",
        at.elapsed()
    );
    t.observer.check();
}
