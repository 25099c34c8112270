//! `hactor-bench`: benchmarks of the hactor daemon on real daemons
//! started as processes (`hactor::daemon::bench` runs them):
//!
//! - `failover`: failover times after hard node losses, median and p99
//!   per timing profile;
//! - `timeline`: the daemons' failover timeline next to the simulator's
//!   for the same faults;
//! - `scale`: one node with 100 000 ignored resources: `ha-manager`
//!   times, the idle daemon's CPU and disk writes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hactor::daemon::bench::failover::{self, FailoverOptions};
use hactor::daemon::bench::scale::{self, ScaleSpec};
use hactor::daemon::bench::timeline;

#[derive(Parser)]
#[command(name = "hactor-bench", about = "Benchmarks of the hactor daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Time failovers after a hard node loss (SIGKILL of its daemon).
    Failover(FailoverOptions),
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

fn main() -> ExitCode {
    let program = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("hactor"),
        Err(e) => {
            eprintln!("hactor-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match Cli::parse().command {
        Command::Failover(options) => failover::main(&program, &options),
        Command::Scale {
            resources,
            idle_secs,
            repeat,
            dir,
        } => scale::main(&ScaleSpec {
            resources,
            idle: Duration::from_secs_f64(idle_secs.max(0.1)),
            dir,
            ha_manager: program.with_file_name("ha-manager"),
            hactor: program,
            repeat,
        }),
        Command::Timeline {
            profile,
            nodes,
            dir,
            port,
            max_secs,
        } => timeline::main(&program, &profile, nodes, &dir, port, Duration::from_secs(max_secs)),
    }
}
