//! `hactor-sim`: runs HA scenarios on virtual time.
//!
//! - `hactor-sim run <scenario-dir> [--log <file>]`: run one scenario and
//!   write its log (to stdout without `--log`).
//! - `hactor-sim rules <rules.cfg> [--nodes node1,node2,node3]`: upstream's
//!   rules test for one file (which rules are dropped and why, the kept and
//!   the compiled rules).
//! - `hactor-sim bench <suite-dir> [--repeat N]`: run every scenario below a
//!   folder in this process and print the wall time.
//! - `hactor-sim bench-round`: time one master round at scale.
//! - `hactor-sim bench-scenario [--nodes 10] [--services 1000]`: simulate a
//!   generated scenario at scale (power-on, a node's network fails,
//!   recovery) and print the wall time.
//! - `hactor-sim chaos --seed S [--seeds A..B] [--nodes N] [--services M]`:
//!   the real actor trees of N nodes on virtual time under seeded faults,
//!   with invariant checkers (see `hactor::sim::chaos`); a violation
//!   prints the replay command and the last events, and fails.
//! - `hactor-sim serve [--listen ADDR] [--nodes N --services M | --scenario
//!   DIR]`: the simulator in the browser (see `hactor::web::sim_console`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

use hactor::core::usage::CrsMode;

#[derive(Parser)]
#[command(
    name = "hactor-sim",
    version,
    about = "Run HA scenarios in upstream's regression-test format on virtual time"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the built-in demonstration (3 nodes, 6 VMs, a node failure).
    Demo,
    /// Run one scenario directory.
    Run {
        /// Folder with cmdlist, hardware_status, service_config, ...
        scenario: PathBuf,
        /// Write the log here (atomically); stdout when absent.
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Check one rules.cfg as upstream's rules test does: the dropped rules
    /// with upstream's messages, the kept rules, the compiled rules.
    Rules {
        /// The rules.cfg to check.
        file: PathBuf,
        /// The cluster's nodes (comma-separated).
        #[arg(long, default_value = "node1,node2,node3")]
        nodes: String,
    },
    /// Time one master round at scale (static and dynamic scheduling).
    BenchRound {
        /// `nodes:services` sizes to measure.
        #[arg(long, value_delimiter = ',', default_values = ["32:1000", "64:10000"])]
        sizes: Vec<String>,
        /// Rounds per configuration (the median is printed).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Simulate a generated scenario at scale (every node powered on, the
    /// last node's network fails, its services are recovered) and print
    /// the wall time.
    BenchScenario {
        #[arg(long, default_value_t = 10)]
        nodes: usize,
        #[arg(long, default_value_t = 1000)]
        services: usize,
        /// Scheduler mode (`crs: ha=`): basic, static or dynamic.
        #[arg(long, default_value = "static")]
        crs: String,
    },
    /// Serve the simulator as a web page: nodes, services, timeline and
    /// log, live; every control of upstream's simulator; export of the
    /// session as a scenario folder.
    Serve {
        /// Address to listen on (loopback only).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Nodes of the generated cluster.
        #[arg(long, default_value_t = 3, conflicts_with = "scenario")]
        nodes: usize,
        /// Services (vm:101, ...) of the generated cluster, spread over the nodes.
        #[arg(long, default_value_t = 6, conflicts_with = "scenario")]
        services: usize,
        /// Start from this scenario folder's inputs and cmdlist instead.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Where "Export scenario" writes when the page names no folder.
        #[arg(long, default_value = "hactor-sim-export")]
        export_dir: PathBuf,
        /// Start with virtual time paused.
        #[arg(long)]
        paused: bool,
    },
    /// Run the real actor trees of a simulated cluster under seeded
    /// faults, with invariant checkers (no double run, fencing tokens,
    /// liveness).
    Chaos {
        /// The seed to run (the default when --seeds is absent: 1).
        #[arg(long, conflicts_with = "seeds")]
        seed: Option<u64>,
        /// A range of seeds, `A..B` (B excluded).
        #[arg(long)]
        seeds: Option<String>,
        /// Nodes (default: drawn from the seed, 3 to 5).
        #[arg(long)]
        nodes: Option<usize>,
        /// Services (default: drawn from the seed, 2 to 8).
        #[arg(long)]
        services: Option<usize>,
        /// Print every event of each run.
        #[arg(long)]
        verbose: bool,
        /// The nodes' store: `shared` (one in-process store with a
        /// cuttable link per node) or `raft` (the daemon's Raft member per
        /// node, over an in-process network: slower, consensus under test).
        #[arg(long, default_value = "shared")]
        store: hactor::sim::chaos::StoreKind,
        /// Break a safety rule on purpose (a cut node keeps petting its
        /// watchdog), to see the checkers catch it.
        #[arg(long, hide = true)]
        pet_without_renewal: bool,
        /// Break a safety rule on purpose, by name (pet-without-renewal,
        /// keep-first-epochs, restart-old-services).
        #[arg(long, hide = true, conflicts_with = "pet_without_renewal")]
        sabotage: Option<String>,
        /// Do not inject these faults (indices, as a shrunk run's replay
        /// command gives them: `1,4,7`).
        #[arg(long, value_delimiter = ',')]
        skip_faults: Vec<u32>,
        /// On a violation, drop the seed's faults one at a time while the
        /// violation stays, and print the faults left and their replay.
        #[arg(long)]
        shrink: bool,
        /// Seeds run at once, one thread each (default: the machine's
        /// cores; `--verbose` runs one). Reports come in seed order.
        #[arg(long)]
        jobs: Option<usize>,
        /// The fault model a seed was found under (a replay command gives
        /// it): 1 without clock drift, disarm windows and disk faults; 2
        /// without the `pve` profile.
        #[arg(long, default_value_t = hactor::sim::chaos::FAULT_MODEL,
              value_parser = clap::value_parser!(u8).range(1..=hactor::sim::chaos::FAULT_MODEL as i64))]
        fault_model: u8,
        /// Run every seed under this timing profile (`fast` or `pve`)
        /// instead of its own (fault model 3 draws `pve` for a fifth).
        #[arg(long, value_parser = parse_profile)]
        profile: Option<hactor::node::config::Profile>,
    },
    /// Run every scenario below a folder and print the wall time.
    Bench {
        /// Folder holding scenario folders (those with a cmdlist).
        suite: PathBuf,
        /// Run the whole suite this many times.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
    },
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn run(scenario: &Path, log: Option<&Path>) -> Result<(), String> {
    let lines = hactor::sim::run_scenario(scenario).map_err(|e| e.to_string())?;
    let mut text = lines.join("\n");
    text.push('\n');
    match log {
        Some(path) => write_atomically(path, &text).map_err(|e| format!("{}: {e}", path.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn rules(file: &Path, nodes: &str) -> Result<(), String> {
    use hactor::sim::rules_check;
    let nodes = rules_check::parse_nodes(nodes)?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let report = rules_check::report(&text, &nodes).map_err(|e| format!("{}: {e}", file.display()))?;
    print!("{report}");
    Ok(())
}

fn demo() -> Result<(), String> {
    let mut sim = hactor::sim::Simulator::new(hactor::sim::Scenario::demo());
    sim.run().map_err(|e| e.to_string())?;
    for line in sim.log() {
        println!("{line}");
    }
    Ok(())
}

/// CPU time of this (single-threaded) process so far, from
/// `/proc/thread-self/schedstat` (nanoseconds on a CPU); `None` off Linux.
/// Printed next to wall times, which a loaded machine inflates.
fn cpu_secs() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// ` (cpu X s)` between two [`cpu_secs`] readings, or nothing.
fn cpu_note(before: Option<f64>) -> String {
    match (before, cpu_secs()) {
        (Some(a), Some(b)) => format!(" (cpu {:.3} s)", b - a),
        _ => String::new(),
    }
}

fn bench(suite: &Path, repeat: u32) -> Result<(), String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(suite)
        .map_err(|e| format!("{}: {e}", suite.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("cmdlist").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(format!(
            "{}: no scenario folders (with a cmdlist) found",
            suite.display()
        ));
    }
    let cpu = cpu_secs();
    let started = Instant::now();
    let mut failed = 0;
    for _ in 0..repeat {
        for dir in &dirs {
            if let Err(err) = hactor::sim::run_scenario(dir) {
                failed += 1;
                eprintln!("{}: {err}", dir.display());
            }
        }
    }
    let elapsed = started.elapsed();
    let runs = u32::try_from(dirs.len()).unwrap_or(u32::MAX).saturating_mul(repeat);
    println!(
        "{runs} scenario runs ({} scenarios x {repeat}) in {:.3} s{}, {:.2} ms per scenario, {failed} failed",
        dirs.len(),
        elapsed.as_secs_f64(),
        cpu_note(cpu),
        elapsed.as_secs_f64() * 1000.0 / f64::from(runs)
    );
    if failed > 0 {
        Err(format!("{failed} scenario runs failed"))
    } else {
        Ok(())
    }
}

fn bench_round(sizes: &[String], rounds: usize) -> Result<(), String> {
    for size in sizes {
        let parsed = size
            .split_once(':')
            .and_then(|(n, s)| Some((n.parse::<usize>().ok()?, s.parse::<usize>().ok()?)));
        let Some((nodes, services)) = parsed.filter(|(n, s)| *n > 0 && *s > 0 && rounds > 0) else {
            return Err(format!(
                "invalid size '{size}' (expected <nodes>:<services>, both positive)"
            ));
        };
        for mode in [CrsMode::Static, CrsMode::Dynamic] {
            let t = hactor::sim::bench::bench_round(mode, nodes, services, rounds);
            println!(
                "{:<8} {:>3} nodes {:>6} services: steady round {:>8.3} ms (a new master's first {:>8.3} ms), placement round (every service scored) {:>8.3} ms",
                t.mode.as_str(),
                t.nodes,
                t.services,
                t.steady.as_secs_f64() * 1000.0,
                t.first.as_secs_f64() * 1000.0,
                t.placement.as_secs_f64() * 1000.0
            );
        }
    }
    Ok(())
}

fn bench_scenario(nodes: usize, services: usize, crs: &str) -> Result<(), String> {
    if nodes < 2 || services == 0 {
        return Err("bench-scenario needs at least 2 nodes and 1 service".into());
    }
    let Some(mode) = CrsMode::parse(crs) else {
        return Err(format!("invalid scheduler mode '{crs}' (basic, static or dynamic)"));
    };
    let cpu = cpu_secs();
    let t = hactor::sim::bench::bench_scenario(mode, nodes, services).map_err(|e| e.to_string())?;
    println!(
        "{crs:<8} {:>3} nodes {:>6} services: power-on, network failure, recovery simulated in {:.3} s{} ({} virtual s, {} log lines; {} of {} services started, {} off the failed node)",
        t.nodes,
        t.services,
        t.elapsed.as_secs_f64(),
        cpu_note(cpu),
        t.sim_secs,
        t.log_lines,
        t.started,
        t.services,
        t.started_elsewhere
    );
    if t.started_elsewhere != t.services {
        return Err("not every service was recovered off the failed node".into());
    }
    Ok(())
}

fn serve(
    listen: std::net::SocketAddr,
    (nodes, services): (usize, usize),
    scenario: Option<&Path>,
    export_dir: PathBuf,
    paused: bool,
) -> Result<(), String> {
    use hactor::sim::session::Session;
    let session = match scenario {
        Some(dir) => Session::load(dir).map_err(|e| e.to_string())?,
        None => {
            // A generated cluster is written out and loaded like any
            // scenario, so that its export holds the same input files.
            let files = Session::generated_files(nodes, services)?;
            let dir = std::env::temp_dir().join(format!("hactor-sim-serve-{}", std::process::id()));
            hactor::web::sim_console::write_export(&dir, &files)?;
            let session = Session::load(&dir).map_err(|e| e.to_string());
            let _ = std::fs::remove_dir_all(&dir);
            session?
        }
    };
    let config = hactor::web::sim_console::SimConsoleConfig {
        listen,
        export_dir,
        run: !paused,
        limits: hactor::web::http::Limits::default(),
    };
    actix_rt::System::new().block_on(hactor::web::sim_console::serve(session, config))
}

/// `A..B` → the seeds from A up to B (excluded).
fn seed_range(text: &str) -> Result<std::ops::Range<u64>, String> {
    let parsed = text
        .split_once("..")
        .and_then(|(a, b)| Some(a.trim().parse::<u64>().ok()?..b.trim().parse::<u64>().ok()?));
    match parsed {
        Some(range) if !range.is_empty() => Ok(range),
        _ => Err(format!("invalid seed range '{text}' (expected A..B with A < B)")),
    }
}

/// Stamps the actors' log lines with the run's virtual time (seconds
/// since the first line; one seed per `--verbose` run reads best).
struct VirtualTime(std::sync::OnceLock<tokio::time::Instant>);

impl tracing_subscriber::fmt::time::FormatTime for VirtualTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let start = *self.0.get_or_init(tokio::time::Instant::now);
        let ms = start.elapsed().as_millis();
        write!(w, "{:>4}.{:03}", ms / 1000, ms % 1000)
    }
}

/// What `hactor-sim chaos` runs besides the seeds.
struct ChaosArgs {
    nodes: Option<usize>,
    services: Option<usize>,
    verbose: bool,
    store: hactor::sim::chaos::StoreKind,
    sabotage: Option<hactor::actors::round::Sabotage>,
    skip_faults: std::collections::BTreeSet<u32>,
    shrink: bool,
    jobs: usize,
    fault_model: u8,
    profile: Option<hactor::node::config::Profile>,
}

fn parse_profile(text: &str) -> Result<hactor::node::config::Profile, String> {
    match text {
        "fast" => Ok(hactor::node::config::Profile::Fast),
        "pve" => Ok(hactor::node::config::Profile::Pve),
        _ => Err(format!("unknown profile '{text}' (expected fast or pve)")),
    }
}

fn chaos(seeds: std::ops::Range<u64>, args: &ChaosArgs) -> Result<(), String> {
    use hactor::sim::chaos::{self, ChaosConfig, Outcome};
    if args.verbose {
        // The actors' own log (RUST_LOG=info, ...), on virtual time.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_timer(VirtualTime(std::sync::OnceLock::new()))
            .with_ansi(false)
            .init();
    } else {
        // Nothing is logged, and a subscriber that says so up front lets
        // every span and event of the actors and openraft stop at its
        // level check. Without one, tracing hands each of them to the
        // `log` crate instead (its `log` feature, which quinn turns on):
        // about 2 % of a Raft-mode seed.
        tracing_subscriber::fmt()
            .with_max_level(tracing::level_filters::LevelFilter::OFF)
            .init();
    }
    if args.store == chaos::StoreKind::Raft && !chaos::REPLAY_EXACT {
        println!(
            "note: built without --cfg tokio_unstable (.cargo/config.toml): a Raft-mode seed may not replay to the same hash"
        );
    }
    let started = Instant::now();
    let (mut virtual_ms, mut failed) = (0u64, None);
    let configure = |seed: u64| {
        let mut config = ChaosConfig::for_seed(seed, args.nodes, args.services);
        config.keep_events = args.verbose;
        config.sabotage = args.sabotage;
        config.store = args.store;
        config.skip_faults = args.skip_faults.clone();
        config.fault_model = args.fault_model;
        config.profile = args.profile;
        config
    };
    let jobs = if args.verbose { 1 } else { args.jobs };
    let runs = chaos::batch::run_ordered(seeds, jobs, configure, |report| {
        let report = match report {
            Ok(report) => report,
            Err(e) => {
                failed = Some(e);
                return false;
            }
        };
        virtual_ms += report.virtual_ms;
        for line in report.all.iter().flatten() {
            println!("{line}");
        }
        println!(
            "seed {} ({} nodes, {} services, {}): {} after {:.1} virtual s, {} events, hash {:016x}",
            report.seed,
            report.nodes,
            report.services,
            chaos::pace::Pace::of(report.profile).name(),
            report.outcome,
            report.virtual_ms as f64 / 1000.0,
            report.events,
            report.hash
        );
        if let Outcome::Violation(_) = &report.outcome {
            println!("replay: {}", report.replay_command());
            println!("last events:");
            for line in &report.tail {
                println!("  {line}");
            }
            failed = Some(violation(configure(report.seed), &report, args.shrink));
            return false;
        }
        true
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{runs} seeds in {wall:.2} s wall on {jobs} threads: {:.0} simulated s per wall s, {:.0} seeds per minute",
        virtual_ms as f64 / 1000.0 / wall,
        runs as f64 * 60.0 / wall
    );
    Ok(())
}

/// A violation's error line, after shrinking it if asked.
fn violation(config: hactor::sim::chaos::ChaosConfig, report: &hactor::sim::chaos::Report, shrink: bool) -> String {
    if shrink {
        match hactor::sim::chaos::shrink(config, report.clone()) {
            Ok(shrunk) => {
                println!(
                    "shrunk to {} of {} faults in {} runs: {}",
                    shrunk.faults.len(),
                    report.faults.len(),
                    shrunk.runs,
                    shrunk.last.outcome
                );
                for (index, what) in &shrunk.faults {
                    println!("  fault #{index}: {what}");
                }
                println!("replay: {}", shrunk.last.replay_command());
            }
            Err(e) => println!("shrinking failed: {e}"),
        }
    }
    format!("seed {}: {}", report.seed, report.outcome)
}

/// `hactor-sim chaos`: one seed (the default 1) or a range.
fn chaos_command(seed: Option<u64>, seeds: Option<&str>, args: &ChaosArgs) -> Result<(), String> {
    match seeds.map(seed_range) {
        Some(Ok(range)) => chaos(range, args),
        Some(Err(e)) => Err(e),
        None => {
            let seed = seed.unwrap_or(1);
            chaos(seed..seed.saturating_add(1), args)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo => demo(),
        Command::Run { scenario, log } => run(&scenario, log.as_deref()),
        Command::Rules { file, nodes } => rules(&file, &nodes),
        Command::Bench { suite, repeat } => bench(&suite, repeat),
        Command::Chaos {
            seed,
            seeds,
            nodes,
            services,
            verbose,
            store,
            pet_without_renewal,
            sabotage,
            skip_faults,
            shrink,
            jobs,
            fault_model,
            profile,
        } => {
            let sabotage = match (pet_without_renewal, sabotage.as_deref()) {
                (true, _) => Ok(Some(hactor::actors::round::Sabotage::PetWithoutRenewal)),
                (false, None) => Ok(None),
                (false, Some(name)) => hactor::actors::round::Sabotage::from_name(name)
                    .map(Some)
                    .ok_or_else(|| format!("no sabotage named '{name}'")),
            };
            let args = sabotage.map(|sabotage| ChaosArgs {
                nodes,
                services,
                verbose,
                store,
                sabotage,
                skip_faults: skip_faults.into_iter().collect(),
                shrink,
                jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                fault_model,
                profile,
            });
            match args {
                Err(e) => Err(e),
                Ok(args) => chaos_command(seed, seeds.as_deref(), &args),
            }
        }
        Command::Serve {
            listen,
            nodes,
            services,
            scenario,
            export_dir,
            paused,
        } => serve(listen, (nodes, services), scenario.as_deref(), export_dir, paused),
        Command::BenchRound { sizes, rounds } => bench_round(&sizes, rounds),
        Command::BenchScenario { nodes, services, crs } => bench_scenario(nodes, services, &crs),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hactor-sim: {err}");
            ExitCode::FAILURE
        }
    }
}
