//! `hactor-bench failover`: N hard node losses on a local cluster of real
//! daemons (loopback QUIC, replicated store, process watchdogs), timing
//! each from the SIGKILL of the node running a service to the service
//! running on another node. Prints every run, then median and p99 per
//! timing profile.
//!
//! `hactor-bench timeline`: one cluster (by default with the `pve`
//! profile), the master's node killed, then another node, each where the
//! simulator's fault lands (just before the master's round): prints, for
//! each fault, the daemons' failover timeline next to the simulator's for
//! the same fault, and fails if a milestone is off by more than a
//! simulator round (20 s; a daemon round is 10 s with `pve`).
//!
//! `hactor-bench scale`: one node with 100 000 ignored resources: times
//! `ha-manager status` and `config` and measures the idle daemon's CPU
//! and disk writes (see `hactor::node::scale`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use hactor::node::config::{Profile, Timings};
use hactor::node::local_cluster::{LocalCluster, LocalSpec};
use hactor::node::scale;
use hactor::sim::timeline::{self, Timeline};

#[derive(Parser)]
#[command(name = "hactor-bench", about = "Benchmarks of the hactor daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Time failovers after a hard node loss (SIGKILL of its daemon).
    Failover {
        /// Failovers with the `fast` profile.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Failovers with the `pve` profile (upstream's timing: minutes each).
        #[arg(long, default_value_t = 1)]
        pve_runs: usize,
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Where the cluster's state goes (wiped first if a previous run made it).
        #[arg(long, default_value = "/tmp/hactor-bench")]
        dir: PathBuf,
        /// node N listens on 127.0.0.1:<port + N>.
        #[arg(long, default_value_t = 7600)]
        port: u16,
        /// Fence through a (fake) fence device too: `ok` (it confirms the
        /// node off, which acknowledges the fence before the lease ends),
        /// `fail` or `hang` (the lease acknowledges, as without a device).
        #[arg(long, value_parser = ["ok", "fail", "hang"])]
        fence_device: Option<String>,
        /// Overrides of the profile's [timing], e.g.
        /// `online_window_ms = 1200` (repeatable): how fast a dead node is
        /// noticed bounds a failover once a device confirms it off.
        #[arg(long = "timing", value_name = "KEY = VALUE")]
        timing: Vec<String>,
    },
    /// One node with many ignored resources: time `ha-manager status` and
    /// `config`, measure the idle daemon's CPU and disk writes.
    Scale {
        #[arg(long, default_value_t = 100_000)]
        resources: usize,
        /// Seconds the idle daemon is watched.
        #[arg(long, default_value_t = 10.0)]
        idle_secs: f64,
        /// Timed runs of each command (the median is printed).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        #[arg(long, default_value = "/tmp/hactor-bench-scale")]
        dir: PathBuf,
    },
    /// Compare the daemons' failover timeline with the simulator's: the
    /// master's node killed, then another node (`pve`: about 10 minutes).
    Timeline {
        /// Timing profile of the cluster (the simulator always uses
        /// upstream's timing, which `pve` reproduces).
        #[arg(long, default_value = "pve")]
        profile: String,
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[arg(long, default_value = "/tmp/hactor-bench-timeline")]
        dir: PathBuf,
        #[arg(long, default_value_t = 7650)]
        port: u16,
        /// Give up (and stop the cluster) after this many seconds.
        #[arg(long, default_value_t = 1200)]
        max_secs: u64,
    },
}

/// One failover: which node died, whether it was the master, how long.
struct Run {
    victim: String,
    was_master: bool,
    took: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn failovers(
    program: &std::path::Path,
    spec: LocalSpec,
    dir: &std::path::Path,
    runs: usize,
) -> Result<Vec<Run>, String> {
    let round = if spec.profile == "pve" { 10 } else { 1 };
    let bound = Duration::from_secs(60 * round);
    let cluster = LocalCluster::create(dir, program, spec)?;
    let mut cluster = cluster;
    let mut results = Vec::new();
    let services = cluster.spec.services;
    // A service's one live process, if it is not `not`.
    let wait_one = |cluster: &LocalCluster, s: usize, not: Option<i32>| -> Option<i32> {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            let pids = cluster.service_pids(s);
            if pids.len() == 1 && Some(pids[0]) != not {
                return Some(pids[0]);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    };
    for s in 0..services {
        wait_one(&cluster, s, None).ok_or("the services never started")?;
    }
    // Run r kills the node running service r mod services: one service per
    // node at the start, so the master's node is among the victims.
    for run in 0..runs {
        let s = run % services;
        let sid = format!("proc:svc{s}");
        let pid = wait_one(&cluster, s, None).ok_or("service not running")?;
        let any = cluster.any_running().ok_or("no node running")?;
        let view = cluster.view(any).ok_or("no view")?;
        let node = view
            .services
            .iter()
            .find(|x| x.0 == sid)
            .map(|x| x.1.clone())
            .ok_or("service not placed")?;
        let victim = cluster.index(&node).ok_or("unknown node")?;
        let was_master = view.master.as_deref() == Some(node.as_str());
        let killed = Instant::now();
        cluster.kill(victim);
        if wait_one(&cluster, s, Some(pid)).is_none() {
            return Err(format!("run {}: {sid} not recovered within {bound:?}", run + 1));
        }
        let took = killed.elapsed();
        println!(
            "run {:>2}: killed {node}{} running {sid}: running elsewhere after {:.3} s",
            run + 1,
            if was_master { " (the master)" } else { "" },
            took.as_secs_f64()
        );
        results.push(Run {
            victim: node,
            was_master,
            took,
        });
        // Bring the node back and let the cluster settle before the next run.
        cluster.start(victim)?;
        cluster.wait_settled(bound)?;
        std::thread::sleep(Duration::from_secs(round * 2));
    }
    Ok(results)
}

fn report(profile: &str, runs: &[Run]) {
    if runs.is_empty() {
        return;
    }
    let mut times: Vec<Duration> = runs.iter().map(|r| r.took).collect();
    times.sort();
    let masters = runs.iter().filter(|r| r.was_master).count();
    let victims: std::collections::BTreeSet<&str> = runs.iter().map(|r| r.victim.as_str()).collect();
    println!(
        "{profile}: {} failovers ({masters} of the master's node, nodes {victims:?}): median {:.3} s, p99 {:.3} s, max {:.3} s",
        runs.len(),
        percentile(&times, 50.0).as_secs_f64(),
        percentile(&times, 99.0).as_secs_f64(),
        times[times.len() - 1].as_secs_f64()
    );
}

/// Seconds since the Unix epoch, on the clock the daemons stamp their
/// log lines with.
fn wall_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Sleeps until `lead` before the master's next regular CRM round and
/// returns `lead`, or `None` (at once) when the round's time is unknown.
/// The master renews `ha_manager_lock` in every round with the round's
/// time, so the lease's expiry minus its lifetime is the last round; the
/// rounds follow each other a round apart.
fn before_master_round(cluster: &LocalCluster, master: &str, timings: &Timings, lead: Duration) -> Option<Duration> {
    let any = cluster.any_running()?;
    let view = cluster.view(any)?;
    let (_, _, expires_ms) = view
        .leases
        .iter()
        .find(|(lock, holder, _)| lock == "ha_manager_lock" && holder == master)?;
    let last = expires_ms.checked_sub(timings.lease_ms)? as f64 / 1000.0;
    let round = timings.round_ms as f64 / 1000.0;
    let lead_s = lead.as_secs_f64();
    // The next round far enough ahead to sleep until `lead` before it.
    let now = wall_secs();
    let mut next = last + round;
    while next - lead_s < now + 0.2 {
        next += round;
    }
    std::thread::sleep(Duration::from_secs_f64(next - lead_s - wall_secs()));
    Some(lead)
}

/// Moves the Raft leadership away from `from` by an election on `to`
/// (fault injection's `fault-elect`), and lets the cluster settle for
/// three rounds: losing the Raft leader costs an election, which the
/// simulator has no counterpart for, so another node's loss is measured
/// on a follower.
fn move_raft_leader(
    cluster: &LocalCluster,
    from: &str,
    to: &str,
    timings: &Timings,
    deadline: Instant,
) -> Result<(), String> {
    let to = cluster.index(to).ok_or("unknown node")?;
    let any = cluster.any_running().ok_or("no node running")?;
    let round = timings.round();
    for _ in 0..5 {
        std::fs::write(cluster.nodes[to].dir.join("fault-elect"), "").map_err(|e| e.to_string())?;
        let wait = round.min(deadline.saturating_duration_since(Instant::now()));
        if cluster
            .wait_view(any, wait, |v| {
                v.leader.as_deref().is_some_and(|l| l != from) && v.quorate
            })
            .is_ok()
        {
            std::thread::sleep(round * 3);
            return Ok(());
        }
    }
    Err(format!("the Raft leadership did not move away from {from}"))
}

/// Kills `victim` (the master's node, or a node that is not the master but
/// runs a service), waits until its services run elsewhere and returns the
/// daemons' timeline of that failover with a description of the victim.
///
/// The fault is placed where the simulator's lands: the simulator powers
/// a node off at the start of a round, just before the master's CRM runs,
/// so the master last renewed its lock a round before the fault and its
/// very next round can see the node gone. Here the master's node dies
/// 1.5 s before the master's round; another node dies the online window
/// plus 1.5 s before it, so that round already sees it offline.
fn daemon_timeline(
    cluster: &mut LocalCluster,
    master: bool,
    timings: &Timings,
    deadline: Instant,
) -> Result<(String, Timeline), String> {
    let any = cluster.any_running().ok_or("no node running")?;
    let view = cluster.view(any).ok_or("no view")?;
    let current = view.master.clone().ok_or("no master")?;
    // The simulator has no Raft leader: for "another node" prefer one that
    // is neither the master nor the Raft leader, whose loss also costs an
    // election; if only the leader qualifies, the leadership moves first
    // (the label says if the victim was the leader after all).
    let leader = view.leader.clone();
    let victim_name = if master {
        current.clone()
    } else {
        let candidates: Vec<String> = view
            .services
            .iter()
            .map(|(_, node, _)| node.clone())
            .filter(|node| *node != current)
            .collect();
        candidates
            .iter()
            .find(|node| Some(*node) != leader.as_ref())
            .or(candidates.first())
            .cloned()
            .ok_or("no service outside the master's node")?
    };
    if !master && leader.as_deref() == Some(victim_name.as_str()) {
        move_raft_leader(cluster, &victim_name, &current, timings, deadline)?;
    }
    let any = cluster.any_running().ok_or("no node running")?;
    let view = cluster.view(any).ok_or("no view")?;
    let leader = view.leader.clone();
    let mut victim_label = if leader.as_deref() == Some(victim_name.as_str()) {
        format!("{victim_name}, the Raft leader")
    } else {
        victim_name.clone()
    };
    let victim = cluster.index(&victim_name).ok_or("unknown node")?;
    // The victim's services with their one live process each.
    let mut moved = Vec::new();
    for (sid, node, _) in &view.services {
        if *node == victim_name {
            let s: usize = sid
                .strip_prefix("proc:svc")
                .and_then(|n| n.parse().ok())
                .ok_or("unexpected sid")?;
            let pids = cluster.service_pids(s);
            moved.push((s, pids.first().copied()));
        }
    }
    let margin = Duration::from_millis(1_500);
    let lead = if master {
        margin
    } else {
        Duration::from_millis(timings.online_window_ms) + margin
    };
    match before_master_round(cluster, &current, timings, lead) {
        Some(lead) => victim_label = format!("{victim_label}, {:.1} s before the master's round", lead.as_secs_f64()),
        None => victim_label = format!("{victim_label}, the master's round unknown"),
    }
    let fault = wall_secs();
    cluster.kill(victim);
    for (s, old) in moved {
        loop {
            let pids = cluster.service_pids(s);
            if pids.len() == 1 && Some(pids[0]) != old {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("proc:svc{s} not recovered in time"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut entries = Vec::new();
    for i in 0..cluster.spec.nodes {
        let text = std::fs::read_to_string(cluster.log_path(i)).unwrap_or_default();
        entries.extend(text.lines().filter_map(timeline::parse_daemon_line));
    }
    let t = timeline::timeline(&entries, &victim_name, fault);
    cluster.start(victim)?;
    cluster.wait_settled(deadline.saturating_duration_since(Instant::now()))?;
    Ok((victim_label, t))
}

fn timelines(
    program: &std::path::Path,
    profile: &str,
    nodes: usize,
    dir: &std::path::Path,
    port: u16,
    max: Duration,
) -> Result<bool, String> {
    if nodes < 3 {
        return Err("--nodes: at least 3 (a node loss must leave a quorum)".into());
    }
    let timings = match profile {
        "pve" => Timings::of(Profile::Pve),
        "fast" => Timings::of(Profile::Fast),
        other => return Err(format!("--profile: 'fast' or 'pve', not '{other}'")),
    };
    let round = timings.round().as_secs_f64();
    let deadline = Instant::now() + max;
    let spec = LocalSpec {
        nodes,
        services: nodes,
        profile: profile.into(),
        base_port: port,
        marker: format!("{port}222"),
        // `fault-elect` moves the Raft leader off the next victim.
        extra: "fault_injection = true\n".into(),
        script: None,
    };
    let mut cluster = LocalCluster::create(dir, program, spec)?;
    while (0..nodes).any(|s| cluster.service_pids(s).len() != 1) {
        if Instant::now() > deadline {
            return Err("the services never started".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The cluster's rounds must have settled (every LRM active) before the
    // fault, as in the simulator.
    std::thread::sleep(Duration::from_secs_f64(round * 3.0));
    // The simulator's clock moves a round at a time: each of its daemons
    // runs once per `max(20, 2 × nodes)` s, so its master last renewed its
    // lock and last saw a node online a whole round of its own before the
    // fault, where a daemon did at most one of its rounds before. Its
    // figures are exact only to that round, the coarser of the two.
    let tolerance = timeline::simulator_round(nodes).max(round);
    let mut all = true;
    for (master, sim_victim) in [(true, 1), (false, 2)] {
        let (victim, daemon) = daemon_timeline(&mut cluster, master, &timings, deadline)?;
        let simulated = timeline::simulated(nodes, sim_victim).map_err(|e| e.to_string())?;
        let title = format!(
            "{} killed ({profile} profile; the simulator kills node{sim_victim}), seconds after the kill:",
            if master {
                format!("the master's node ({victim})")
            } else {
                format!("another node ({victim})")
            }
        );
        let (table, ok) = timeline::compare(&title, &simulated, &daemon, round, tolerance);
        print!("{table}");
        all &= ok;
        std::thread::sleep(Duration::from_secs_f64(round * 3.0));
    }
    cluster.shutdown();
    println!(
        "{}",
        if all {
            format!("every milestone within one simulator round ({tolerance:.0} s) of the simulator")
        } else {
            format!("some milestones are off by more than a simulator round ({tolerance:.0} s)")
        }
    );
    Ok(all)
}

fn main() -> ExitCode {
    let program = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("hactor"),
        Err(e) => {
            eprintln!("hactor-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (runs, pve_runs, nodes, dir, port, fence_device, timing) = match Cli::parse().command {
        Command::Failover {
            runs,
            pve_runs,
            nodes,
            dir,
            port,
            fence_device,
            timing,
        } => (runs, pve_runs, nodes, dir, port, fence_device, timing),
        Command::Scale {
            resources,
            idle_secs,
            repeat,
            dir,
        } => {
            let spec = scale::ScaleSpec {
                resources,
                idle: Duration::from_secs_f64(idle_secs.max(0.1)),
                dir,
                ha_manager: program.with_file_name("ha-manager"),
                hactor: program,
                repeat,
            };
            return match scale::run(&spec) {
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
            };
        }
        Command::Timeline {
            profile,
            nodes,
            dir,
            port,
            max_secs,
        } => {
            return match timelines(&program, &profile, nodes, &dir, port, Duration::from_secs(max_secs)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("hactor-bench: timeline: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let mut failed = false;
    for (profile, count) in [("fast", runs), ("pve", pve_runs)] {
        if count == 0 {
            continue;
        }
        let mut extra = match &fence_device {
            None => String::new(),
            Some(mode) => {
                let fence_dir = dir.join(format!("{profile}-fence"));
                match hactor::node::local_fence::setup(&fence_dir, &dir.join(profile), nodes, mode) {
                    Ok(fence) => fence.extra,
                    Err(e) => {
                        eprintln!("hactor-bench: fence device: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        };
        if !timing.is_empty() {
            extra.push_str(&format!("\n[timing]\n{}\n", timing.join("\n")));
        }
        let device = fence_device
            .as_deref()
            .map(|m| format!(", fence device '{m}'"))
            .unwrap_or_default();
        println!("== {profile} profile: {count} failover(s) on {nodes} nodes{device}");
        let spec = LocalSpec {
            nodes,
            services: nodes,
            profile: profile.into(),
            base_port: port,
            marker: format!("{port}111"),
            extra,
            script: None,
        };
        match failovers(&program, spec, &dir.join(profile), count) {
            Ok(results) => report(profile, &results),
            Err(e) => {
                eprintln!("hactor-bench: {profile}: {e}");
                failed = true;
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
