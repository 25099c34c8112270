//! Container tier: the nodes of a cluster as Docker containers on a
//! private network of their own, failed the way a real host fails —
//! `docker kill` (power loss), `docker network disconnect` (partition),
//! `docker pause` (the whole node frozen by the cgroup freezer).
//!
//! There is no image registry: the image is built here, from scratch, out
//! of the test's own `hactor` binary, the libraries it links and `sleep`.
//! Without a Docker engine the test says so and passes, unless
//! `HACTOR_CONTAINER_TESTS=1` (as `.ci/run` sets on a machine with an
//! engine), which makes a missing engine a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hactor::net::peer::ClusterView;
use hactor::node::local_cluster::pids;

mod seeded;

const HACTOR: &str = env!("CARGO_BIN_EXE_hactor");
const IMAGE: &str = "hactor-test:local";
const NODES: usize = 3;
/// The daemons' log filter unless `HACTOR_LOG` says otherwise: hactor at
/// info, the election guard at debug, openraft's elections (not its
/// replication chatter).
const ELECTION_LOG: &str = "info,openraft=info,openraft::replication=off,\
    openraft::engine::handler::replication_handler=off,hactor::net::cluster=debug";
/// Log lines that tell how an election went (for the dump of a failure).
const ELECTION_LINES: [&str; 6] = [
    "do trigger election",
    "a quorum granted my vote",
    "reject vote-request",
    "handle vote request result",
    "starting an election",
    "elections",
];

/// The container tests run one at a time (each builds a cluster of its
/// own; two at once overload a 2-core machine).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn engine_available() -> bool {
    docker(&["info", "--format", "{{.ServerVersion}}"]).is_ok()
}

/// Without a Docker engine the container tests say so and pass, unless
/// `HACTOR_CONTAINER_TESTS=1` demands the tier (then a missing engine
/// fails them).
fn skipped_without_engine() -> bool {
    if engine_available() {
        return false;
    }
    assert!(
        std::env::var("HACTOR_CONTAINER_TESTS").as_deref() != Ok("1"),
        "HACTOR_CONTAINER_TESTS=1 but no Docker engine answers"
    );
    println!("skipped: no Docker engine");
    true
}

/// The shared libraries `program` loads (from `ldd`).
fn libraries(program: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(program).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')).map(PathBuf::from))
        .collect()
}

/// Builds the image from scratch: hactor, sleep, and what they link.
fn build_image(work: &Path) {
    let root = work.join("rootfs");
    let sleep = PathBuf::from("/bin/sleep");
    let mut files = vec![
        (PathBuf::from(HACTOR), PathBuf::from("/usr/bin/hactor")),
        (sleep.clone(), sleep.clone()),
    ];
    for program in [PathBuf::from(HACTOR), sleep] {
        for lib in libraries(&program) {
            files.push((lib.clone(), lib));
        }
    }
    for (from, to) in files {
        let target = root.join(to.strip_prefix("/").unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(std::fs::canonicalize(&from).unwrap(), &target).unwrap();
    }
    for dir in ["tmp", "etc/hactor", "var/lib/hactor", "run/hactor"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/usr/bin/hactor\n").unwrap();
    std::fs::write(
        work.join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/usr/bin/hactor\"]\n",
    )
    .unwrap();
    docker(&["build", "-q", "-t", IMAGE, work.to_str().unwrap()]).unwrap();
}

struct Net {
    name: String,
    prefix: String,
}

/// A private network of our own, on a subnet nothing else uses.
fn create_network(tag: &str) -> Net {
    for third in 80..200 {
        let prefix = format!("172.29.{third}");
        let name = format!("hactor-test-{tag}");
        let subnet = format!("{prefix}.0/24");
        if docker(&["network", "create", "--internal", "--subnet", &subnet, &name]).is_ok() {
            return Net { name, prefix };
        }
    }
    panic!("no free subnet for the test network");
}

struct Containers {
    work: tempfile::TempDir,
    net: Net,
    tag: String,
}

impl Containers {
    fn name(&self, i: usize) -> String {
        format!("hactor-{}-node{}", self.tag, i + 1)
    }

    fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.net.prefix, 11 + i)
    }

    fn dir(&self, i: usize) -> PathBuf {
        self.work.path().join(format!("node{}", i + 1))
    }

    fn volumes(&self, i: usize) -> Vec<String> {
        vec![
            "-v".into(),
            format!("{}:/var/lib/hactor", self.dir(i).join("state").display()),
            "-v".into(),
            format!("{}:/etc/hactor", self.dir(i).join("etc").display()),
        ]
    }

    /// `hactor --config … args` in a one-off container with node i's address.
    fn once(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let mut cmd: Vec<String> = vec!["run".into(), "--rm".into(), "--network".into(), self.net.name.clone()];
        cmd.extend(["--ip".into(), self.ip(i)]);
        cmd.extend(self.volumes(i));
        cmd.extend([IMAGE.into(), "--config".into(), "/etc/hactor/node.toml".into()]);
        cmd.extend(args.iter().map(|a| a.to_string()));
        docker(&cmd.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn start(&self, i: usize) {
        let _ = docker(&["rm", "-f", &self.name(i)]);
        // --init: the daemon must not be PID 1, which ignores the SIGKILL
        // its fence guard sends when it fences the node (hactor refuses to
        // start as PID 1 with the process watchdog).
        let mut cmd: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--init".into(),
            "--name".into(),
            self.name(i),
            "--network".into(),
            self.net.name.clone(),
        ];
        cmd.extend(["--ip".into(), self.ip(i)]);
        // `HACTOR_LOG` (the daemon's log filter) reaches the nodes, to
        // look closer at a failing seed; by default they log their
        // elections, so that a failure in CI comes with its story.
        let filter = std::env::var("HACTOR_LOG").unwrap_or_else(|_| ELECTION_LOG.into());
        cmd.extend(["-e".into(), format!("HACTOR_LOG={filter}")]);
        cmd.extend(self.volumes(i));
        cmd.extend([IMAGE.into(), "--config".into(), "/etc/hactor/node.toml".into()]);
        docker(&cmd.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
    }

    /// Starts node `i` again and waits until `asking` sees the cluster
    /// whole, node `i` itself commits again, and a few seconds pass: one
    /// fault at a time.
    fn restart_settled(&self, i: usize, asking: usize, what: &str) {
        self.start(i);
        self.wait_view(asking, what, Duration::from_secs(60), |v| v.quorate && v.settled);
        self.wait_view(i, what, Duration::from_secs(60), |v| v.quorate);
        std::thread::sleep(Duration::from_secs(3));
    }

    fn exec(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let name = self.name(i);
        let mut cmd = vec![
            "exec",
            name.as_str(),
            "/usr/bin/hactor",
            "--config",
            "/etc/hactor/node.toml",
        ];
        cmd.extend(args);
        docker(&cmd)
    }

    fn view(&self, i: usize) -> Option<ClusterView> {
        serde_json::from_str(&self.exec(i, &["cluster", "status", "--json"]).ok()?).ok()
    }

    fn wait_view(&self, i: usize, what: &str, timeout: Duration, mut f: impl FnMut(&ClusterView) -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.view(i).is_some_and(|v| f(&v)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.dump();
        if !self.alive(i) {
            panic!(
                "{}: down while waiting for {what} (it fenced itself: see its log above)",
                self.name(i)
            );
        }
        panic!("{}: timed out waiting for {what}", self.name(i));
    }

    /// Whether node i's container is running (a node that fenced itself
    /// has exited: its guard killed the daemon).
    fn alive(&self, i: usize) -> bool {
        docker(&["inspect", "-f", "{{.State.Running}}", &self.name(i)]).is_ok_and(|out| out.trim() == "true")
    }

    /// Panics if a node other than `victim` is down: one fault on one
    /// node of three must never fence a node of the healthy majority.
    fn assert_majority_alive(&self, victim: usize, what: &str) {
        if let Some(down) = (0..NODES).find(|i| *i != victim && !self.alive(*i)) {
            self.dump();
            panic!(
                "{} fenced itself during {what} on {} (the majority lost its leader for longer than the \
                 watchdog client timeout?)",
                self.name(down),
                self.name(victim)
            );
        }
    }

    /// Node i's log so far, also kept as `<tmp>/hactor-container-logs/
    /// <container>[-<suffix>].log` (a removed container's log is gone
    /// otherwise).
    fn keep_logs(&self, i: usize, suffix: &str) -> String {
        let logs = Command::new("docker")
            .args(["logs", &self.name(i)])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default();
        let keep = std::env::temp_dir().join("hactor-container-logs");
        let _ = std::fs::create_dir_all(&keep);
        let name = match suffix {
            "" => format!("{}.log", self.name(i)),
            _ => format!("{}-{suffix}.log", self.name(i)),
        };
        let _ = std::fs::write(keep.join(name), &logs);
        logs
    }

    fn dump(&self) {
        let last = |lines: Vec<&str>, n: usize| lines[lines.len().saturating_sub(n)..].join("\n");
        for i in 0..NODES {
            let logs = self.keep_logs(i, "");
            let hactor = logs.lines().filter(|l| !l.contains("openraft")).collect();
            let elections = logs
                .lines()
                .filter(|l| ELECTION_LINES.iter().any(|w| l.contains(w)))
                .collect();
            eprintln!(
                "==== {}\n{}\n---- its last election lines\n{}",
                self.name(i),
                last(hactor, 40),
                last(elections, 25)
            );
        }
    }

    /// The node the service's one live process runs on (its
    /// `HACTOR_NODE`): ground truth, whatever any replica believes.
    fn running(&self, _asking: usize, needle: &str) -> Option<String> {
        let live = pids(needle, false);
        let [pid] = live[..] else { return None };
        let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        environ
            .split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .find_map(|kv| kv.strip_prefix("HACTOR_NODE=").map(String::from))
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        for i in 0..NODES {
            let _ = docker(&["rm", "-f", &self.name(i)]);
        }
        let _ = docker(&["network", "rm", &self.net.name]);
    }
}

fn form(tag: &str, marker: &str, services: usize) -> Containers {
    let work = tempfile::tempdir().unwrap();
    build_image(work.path());
    let net = create_network(tag);
    let c = Containers {
        work,
        net,
        tag: tag.into(),
    };
    for i in 0..NODES {
        std::fs::create_dir_all(c.dir(i).join("state")).unwrap();
        std::fs::create_dir_all(c.dir(i).join("etc")).unwrap();
        let mut config = format!(
            "node = \"node{}\"\nstate_dir = \"/var/lib/hactor\"\nlisten = \"{}:7400\"\n\
             socket = \"/run/hactor/hactor.sock\"\n\n[watchdog]\nbackend = \"process\"\n",
            i + 1,
            c.ip(i)
        );
        for s in 0..services {
            config.push_str(&format!(
                "\n[proc.svc{s}]\ncommand = \"/bin/sleep\"\nargs = [\"{marker}{s}\"]\n"
            ));
            if i == 0 {
                config.push_str(&format!(
                    "\n[resource.\"proc:svc{s}\"]\nnode = \"node{}\"\n",
                    s % NODES + 1
                ));
            }
        }
        std::fs::write(c.dir(i).join("etc/node.toml"), config).unwrap();
    }
    c.once(0, &["cluster", "init", "--name", "containers"]).unwrap();
    c.start(0);
    c.wait_view(0, "a leader", Duration::from_secs(60), |v| v.leader.is_some());
    for i in 1..NODES {
        let bundle = format!("/var/lib/hactor/node{}.bundle", i + 1);
        c.exec(0, &["cluster", "add-node", &format!("node{}", i + 1), "--out", &bundle])
            .unwrap();
        let from = c.dir(0).join("state").join(format!("node{}.bundle", i + 1));
        std::fs::copy(&from, c.dir(i).join("state/join.bundle")).unwrap();
        c.once(i, &["cluster", "join", "--bundle", "/var/lib/hactor/join.bundle"])
            .unwrap();
        c.start(i);
    }
    for i in 0..NODES {
        c.wait_view(i, "every node a voter", Duration::from_secs(60), |v| {
            v.settled && v.members.len() == NODES && v.members.iter().all(|m| m.2)
        });
    }
    c
}

/// Waits until svc1 runs on a node other than `not_on`, sampling that it
/// never runs twice (when `sample`), and returns where and how long.
fn recovered(c: &Containers, asking: usize, needle: &str, not_on: &str, sample: bool) -> (String, Duration) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if sample {
            let live = pids(needle, false);
            assert!(live.len() <= 1, "svc1 runs twice: {live:?}");
        }
        if let Some(node) = c.running(asking, needle)
            && node != not_on
        {
            return (node, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    c.dump();
    panic!("svc1 not recovered away from {not_on}");
}

#[test]
fn containers_survive_kill_partition_and_pause() {
    if skipped_without_engine() {
        return;
    }
    let tag = format!("{}", std::process::id());
    let marker = format!("8{}", 10_000_000 + std::process::id() % 1_000_000);
    let _one_cluster_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let c = form(&tag, &marker, 2);
    let needle = format!("{marker}1 ");
    let wait_started = |c: &Containers| {
        let start = Instant::now();
        while c.running(0, &needle).is_none() {
            assert!(start.elapsed() < Duration::from_secs(60), "svc1 never started");
            std::thread::sleep(Duration::from_millis(100));
        }
        c.running(0, &needle).unwrap()
    };
    let index = |name: &str| name.trim_start_matches("node").parse::<usize>().unwrap() - 1;

    // 1. Power loss: docker kill.
    let home = wait_started(&c);
    let victim = index(&home);
    let asking = (victim + 1) % NODES;
    docker(&["kill", &c.name(victim)]).unwrap();
    let (node, took) = recovered(&c, asking, &needle, &home, true);
    println!("docker kill {home}: svc1 on {node} after {took:?}");
    c.restart_settled(victim, asking, "the killed node back");

    // 2. Partition: docker network disconnect of the node running svc1.
    let home = wait_started(&c);
    let victim = index(&home);
    let asking = (victim + 1) % NODES;
    docker(&["network", "disconnect", &c.net.name, &c.name(victim)]).unwrap();
    let (node, took) = recovered(&c, asking, &needle, &home, true);
    println!("network disconnect {home}: svc1 on {node} after {took:?}");
    // The isolated node fenced itself: its daemon is gone with its services.
    let start = Instant::now();
    while docker(&["inspect", "-f", "{{.State.Running}}", &c.name(victim)]).as_deref() == Ok("true") {
        if start.elapsed() > Duration::from_secs(30) {
            eprintln!("{}", docker(&["top", &c.name(victim)]).unwrap_or_default());
            panic!("the partitioned node did not fence itself");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = docker(&["rm", "-f", &c.name(victim)]);
    c.restart_settled(victim, asking, "the healed node back");

    // 3. The whole node frozen: docker pause. Frozen processes look alive
    // from outside, so instead of sampling, check the old one is gone once
    // the node thaws.
    let home = wait_started(&c);
    let victim = index(&home);
    let asking = (victim + 1) % NODES;
    let old = pids(&needle, true);
    docker(&["pause", &c.name(victim)]).unwrap();
    let start = Instant::now();
    let node = loop {
        let live: Vec<i32> = pids(&needle, false).into_iter().filter(|p| !old.contains(p)).collect();
        if live.len() == 1
            && let Some(view) = c.view(asking)
            && let Some(s) = view
                .services
                .iter()
                .find(|s| s.0 == "proc:svc1" && s.2 == "started" && s.1 != home)
        {
            break s.1.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "svc1 not recovered from the paused node"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("docker pause {home}: svc1 on {node} after {:?}", start.elapsed());
    docker(&["unpause", &c.name(victim)]).unwrap();
    let thawed = Instant::now();
    while old.iter().any(|p| pids(&needle, true).contains(p)) {
        assert!(
            thawed.elapsed() < Duration::from_secs(5),
            "the stale instance outlived the thaw"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("unpause: the stale instance died after {:?}", thawed.elapsed());
}

/// The host pids of every process of container `name`.
fn container_pids(name: &str) -> std::collections::BTreeSet<i32> {
    docker(&["top", name, "-eo", "pid"])
        .map(|out| out.lines().skip(1).filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The fencing token (`HACTOR_FENCING_TOKEN`) a service process was
/// started with.
fn token_of(pid: i32) -> Option<u64> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ
        .split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix("HACTOR_FENCING_TOKEN=")?.parse().ok())
}

/// What the container soak watches: live instances per service, and the
/// token of every instance ever seen.
struct Watch {
    marker: String,
    services: usize,
    /// The highest token seen per service.
    newest: Vec<u64>,
    seen: std::collections::BTreeSet<i32>,
    /// Processes of a paused (frozen) container: the cgroup freezer does
    /// not show in their state, so they are left out until they are gone.
    frozen: std::collections::BTreeSet<i32>,
}

impl Watch {
    /// One sample: never two live instances of a service, and no new
    /// instance with a token lower than one already handed out.
    fn sample(&mut self) {
        for s in 0..self.services {
            let live: Vec<i32> = pids(&format!("{}{s} ", self.marker), false)
                .into_iter()
                .filter(|p| !self.frozen.contains(p))
                .collect();
            assert!(live.len() <= 1, "svc{s} runs twice: {live:?}");
            for pid in live {
                if self.seen.insert(pid)
                    && let Some(token) = token_of(pid)
                {
                    assert!(
                        token >= self.newest[s],
                        "svc{s} started with token {token}, below {} already handed out",
                        self.newest[s]
                    );
                    self.newest[s] = token;
                }
            }
        }
    }

    /// Samples for `d`.
    fn during(&mut self, d: Duration) {
        let start = Instant::now();
        while start.elapsed() < d {
            self.sample();
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Samples until every service runs once; returns how long it took.
    fn until_all_running(&mut self, c: &Containers, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            self.sample();
            if (0..self.services).all(|s| pids(&format!("{}{s} ", self.marker), false).len() == 1) {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                c.dump();
                panic!("not every service running within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The soak test of the container tier: random `docker kill`, `docker
/// network disconnect` and `docker pause` of random nodes (the Raft leader
/// and the master among them), each node restarted after a random delay,
/// 6 services, and at every sample: nothing runs twice and no instance
/// starts under a token older than one handed out. `HACTOR_SOAK_SEED`
/// replays a fault sequence, `HACTOR_CONTAINER_SOAK_FAULTS` sets the count
/// (default 30).
#[test]
fn containers_soak_random_faults_with_restarts() {
    if skipped_without_engine() {
        return;
    }
    let _one_cluster_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let services = 6;
    let seed = seeded::seed();
    let faults = seeded::count("HACTOR_CONTAINER_SOAK_FAULTS", 30);
    println!("container soak seed {seed} ({faults} faults); replay with HACTOR_SOAK_SEED={seed}");
    let mut rng = seeded::Rng(seed);
    let mut next = move |n: u64| rng.below(n);
    let tag = format!("{}s", std::process::id());
    let marker = format!("7{}", 10_000_000 + std::process::id() % 1_000_000);
    let c = form(&tag, &marker, services);
    let mut watch = Watch {
        marker: marker.clone(),
        services,
        newest: vec![0; services],
        seen: Default::default(),
        frozen: Default::default(),
    };
    watch.until_all_running(&c, Duration::from_secs(60));
    let mut worst = Duration::ZERO;
    for n in 0..faults {
        let asking_any = (0..NODES).find(|i| c.view(*i).is_some()).unwrap_or(0);
        let view = c.view(asking_any);
        let index_of = |name: &str| name.trim_start_matches("node").parse::<usize>().ok().map(|i| i - 1);
        let victim = match next(3) {
            0 => view.as_ref().and_then(|v| v.leader.as_deref()).and_then(index_of),
            1 => view.as_ref().and_then(|v| v.master.as_deref()).and_then(index_of),
            _ => None,
        }
        .unwrap_or_else(|| next(NODES as u64) as usize);
        let fault = ["kill", "disconnect", "pause"][next(3) as usize];
        let delay = Duration::from_millis(next(15_000));
        if fault == "pause" {
            watch.frozen = container_pids(&c.name(victim));
        }
        match fault {
            "kill" => docker(&["kill", &c.name(victim)]).map(|_| ()),
            "disconnect" => docker(&["network", "disconnect", &c.net.name, &c.name(victim)]).map(|_| ()),
            _ => docker(&["pause", &c.name(victim)]).map(|_| ()),
        }
        .unwrap();
        watch.during(delay);
        c.assert_majority_alive(victim, &format!("docker {fault}"));
        // A frozen node is power-cycled, never thawed: its instances die
        // with it (a thawed one would run beside its successor until its
        // guard kills it, which only the fencing token makes harmless).
        c.keep_logs(victim, &format!("fault{n}"));
        let _ = docker(&["rm", "-f", &c.name(victim)]);
        let gone = Instant::now();
        while watch.frozen.iter().any(|p| Path::new(&format!("/proc/{p}")).exists()) {
            assert!(
                gone.elapsed() < Duration::from_secs(10),
                "the removed container's processes live on"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        watch.frozen.clear();
        let asking = (victim + 1) % NODES;
        c.restart_settled(victim, asking, "the node back after a fault");
        let back = watch.until_all_running(&c, Duration::from_secs(60));
        worst = worst.max(back);
        watch.during(Duration::from_secs(2));
        c.assert_majority_alive(victim, &format!("the restart after docker {fault}"));
        println!(
            "fault {n}: docker {fault} node{} for {delay:.1?}; every service running {back:.1?} after the restart",
            victim + 1
        );
    }
    println!(
        "container soak: {faults} faults, double runs: 0, stale starts: 0, worst time to all running: {worst:.1?}"
    );
}
