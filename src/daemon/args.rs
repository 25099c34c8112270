//! The daemon's command line: what `hactor` parses, and what `hactor man`
//! and `hactor completions` render (the manual page and the completions
//! are made from these definitions, so they live beside the commands).
//!
//! The doc comments below are the help text: changing one changes
//! `hactor --help`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hactor",
    version,
    about = "High-availability cluster resource manager: the node daemon"
)]
pub struct Cli {
    /// Node configuration file (TOML) [default: /etc/hactor/hactor.toml].
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    /// Override the configured log format.
    #[arg(long, value_parser = ["plain", "json"])]
    pub log_format: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a demo cluster of N daemons on this machine's loopback (each
    /// its own process, state dir, socket and process watchdog) with a few
    /// `proc:` services, until Ctrl-C.
    LocalCluster {
        /// Where the nodes keep their state (wiped when it holds an
        /// earlier local cluster; refused when it holds anything else).
        #[arg(long, default_value = "/tmp/hactor-local")]
        dir: PathBuf,
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
        nodes: u16,
        /// `proc:` services to seed (at most 1000).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=1000))]
        services: u64,
        /// node N listens on 127.0.0.1:<port + N> (port at most 65525, so
        /// the ninth node's port exists).
        #[arg(long, default_value_t = 7400, value_parser = clap::value_parser!(u16).range(1..=65525))]
        port: u16,
        #[arg(long, default_value = "fast", value_parser = ["fast", "pve"])]
        profile: String,
        /// Serve every node's read-only live view (`[web]`) on a free
        /// loopback port; the addresses are printed.
        #[arg(long)]
        web: bool,
    },
    /// Cluster membership: create, grow, shrink, inspect.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Validate the node configuration and print the timing inequalities
    /// with their figures; on a running node also check the HA
    /// configuration. With --fence, print what each node's hardware fence
    /// would run, try by try. Exit code 1 when anything is refused.
    CheckConfig {
        /// A fence.cfg to check instead of the node configuration.
        #[arg(long, value_name = "FENCE_CFG")]
        fence: Option<PathBuf>,
        /// The nodes to show fence commands for (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "node1,node2,node3")]
        nodes: Vec<String>,
    },
    /// Print the manual page (roff), or write it to a file.
    Man {
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Internal: the fence guard of the `process` watchdog backend.
    #[command(hide = true)]
    FenceGuard {
        #[arg(long)]
        timeout_ms: u64,
        #[arg(long)]
        daemon_pid: i32,
        #[arg(long)]
        log: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Create a new cluster with this node as its first member.
    Init {
        /// Cluster name.
        #[arg(long, default_value = "hactor")]
        name: String,
    },
    /// Issue a certificate for a new node and write its join bundle
    /// (run on the node holding the cluster CA key).
    AddNode {
        /// The new node's name.
        node: String,
        /// Where to write the bundle (it holds the new node's key).
        #[arg(long)]
        out: PathBuf,
    },
    /// Join the cluster a bundle is from.
    Join {
        #[arg(long)]
        bundle: PathBuf,
    },
    /// Remove a member (stop its daemon first).
    RemoveNode { node: String },
    /// Rebuild this member's damaged or lost Raft state from the other
    /// members (stop its daemon first).
    ///
    /// For a daemon that refuses to start because its Raft state cannot be
    /// trusted: moves <state_dir>/raft aside, has the cluster remove this
    /// node and admit it again as a learner (same name and certificate,
    /// new Raft id). Start the daemon after it: it catches up from the
    /// others and becomes a voter. The cluster's data is not changed.
    ResetLocal {
        /// Another member as NAME=ADDRESS (repeatable), if neither the
        /// configuration's [peers] nor the damaged Raft state name one.
        #[arg(long = "peer", value_name = "NAME=ADDRESS")]
        peers: Vec<String>,
    },
    /// This node's view of the cluster.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}
