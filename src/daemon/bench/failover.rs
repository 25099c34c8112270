//! `hactor-bench failover`: N hard node losses on a local cluster of real
//! daemons (loopback QUIC, replicated store, process watchdogs), timing
//! each from the SIGKILL of the node running a service to the service
//! running on another node. Prints every run, then median and p99 per
//! timing profile.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::node::local_cluster::{LocalCluster, LocalSpec};

/// What `hactor-bench failover` runs (its arguments).
#[derive(clap::Args)]
pub struct FailoverOptions {
    /// Failovers with the `fast` profile.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Failovers with the `pve` profile (upstream's timing: minutes each).
    #[arg(long, default_value_t = 1)]
    pub pve_runs: usize,
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Where the cluster's state goes (wiped first if a previous run made it).
    #[arg(long, default_value = "/tmp/hactor-bench")]
    pub dir: PathBuf,
    /// node N listens on 127.0.0.1:<port + N>.
    #[arg(long, default_value_t = 7600)]
    pub port: u16,
    /// Fence through a (fake) fence device too: `ok` (it confirms the
    /// node off, which acknowledges the fence before the lease ends),
    /// `fail` or `hang` (the lease acknowledges, as without a device).
    #[arg(long, value_parser = ["ok", "fail", "hang"])]
    pub fence_device: Option<String>,
    /// Overrides of the profile's [timing], e.g.
    /// `online_window_ms = 1200` (repeatable): how fast a dead node is
    /// noticed bounds a failover once a device confirms it off.
    #[arg(long = "timing", value_name = "KEY = VALUE")]
    pub timing: Vec<String>,
}

/// `hactor-bench failover`: the `fast` runs, then the `pve` runs, each on
/// a cluster of its own (`program` is the `hactor` daemon); exit code 1
/// when a profile's runs failed.
pub fn main(program: &Path, options: &FailoverOptions) -> ExitCode {
    let (nodes, port, dir) = (options.nodes, options.port, &options.dir);
    let mut failed = false;
    for (profile, count) in [("fast", options.runs), ("pve", options.pve_runs)] {
        if count == 0 {
            continue;
        }
        let mut extra = match &options.fence_device {
            None => String::new(),
            Some(mode) => {
                let fence_dir = dir.join(format!("{profile}-fence"));
                match crate::node::local_fence::setup(&fence_dir, &dir.join(profile), nodes, mode) {
                    Ok(fence) => fence.extra,
                    Err(e) => {
                        eprintln!("hactor-bench: fence device: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        };
        if !options.timing.is_empty() {
            extra.push_str(&format!("\n[timing]\n{}\n", options.timing.join("\n")));
        }
        let device = options
            .fence_device
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
        match failovers(program, spec, &dir.join(profile), count) {
            Ok(results) => report(profile, &results),
            Err(e) => {
                eprintln!("hactor-bench: {profile}: {e}");
                failed = true;
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
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

fn failovers(program: &Path, spec: LocalSpec, dir: &Path, runs: usize) -> Result<Vec<Run>, String> {
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
