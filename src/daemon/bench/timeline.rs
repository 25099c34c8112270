//! `hactor-bench timeline`: one cluster (by default with the `pve`
//! profile), the master's node killed, then another node, each where the
//! simulator's fault lands (just before the master's round): prints, for
//! each fault, the daemons' failover timeline next to the simulator's for
//! the same fault, and fails if a milestone is off by more than a
//! simulator round (20 s; a daemon round is 10 s with `pve`).

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::node::config::{Profile, Timings};
use crate::node::local_cluster::{LocalCluster, LocalSpec};
use crate::sim::timeline::{self, Timeline};

/// `hactor-bench timeline` on a cluster of `nodes` daemons (`program`)
/// with `profile`, given up after `max`; exit code 1 when a milestone is
/// off or the run failed.
pub fn main(program: &Path, profile: &str, nodes: usize, dir: &Path, port: u16, max: Duration) -> ExitCode {
    match timelines(program, profile, nodes, dir, port, max) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("hactor-bench: timeline: {e}");
            ExitCode::FAILURE
        }
    }
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
    program: &Path,
    profile: &str,
    nodes: usize,
    dir: &Path,
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
