//! `hactor`: the per-node HA daemon.
//!
//! - `hactor --config <file>`: run the node (CRM, LRM, worker pool,
//!   watchdog, store) until SIGTERM; SIGHUP re-reads the configuration.
//! - `hactor cluster init|add-node|join|remove-node|status|reset-local
//!   --config <file>`: cluster membership (see `hactor::node::membership`).
//! - `hactor fence-guard ...`: the separate fence guard process of the
//!   `process` watchdog backend (started by the daemon itself).
//! - `hactor check-config [--config <file>] [--fence <fence.cfg>]`:
//!   validate a node configuration (and fence.cfg) without starting.
//! - `hactor man`, `hactor completions <shell>`: the manual page and shell
//!   completions (the Debian package ships both).
//!
//! Without `--config`, the host's `/etc/hactor/hactor.toml` is used.
//! Under systemd (`Type=notify`) the daemon reports readiness once its
//! API socket serves and its actors run.
//!
//! A node whose state directory holds cluster membership runs on the
//! replicated store; otherwise on the in-process store of a single node.
//! The daemon, `cluster init` and `cluster join` hold the state
//! directory's lock (`hactor::node::state_lock`) while they run; the
//! daemon writes `<state_dir>/hactor.pid` and removes it when it exits.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use hactor::daemon::args::{Cli, Command};
use hactor::daemon::commands::{self, exit_code};
use hactor::daemon::load_config::load_config;
use hactor::daemon::logging::{init_logging, log_format};
use hactor::daemon::run::run_daemon;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::FenceGuard {
            timeout_ms,
            daemon_pid,
            log,
        }) => {
            let options = hactor::watchdog::guard::GuardOptions {
                timeout: Duration::from_millis(timeout_ms),
                daemon_pid,
                log,
            };
            ExitCode::from(u8::try_from(hactor::watchdog::guard::main(options)).unwrap_or(1))
        }
        Some(Command::LocalCluster {
            dir,
            nodes,
            services,
            port,
            profile,
            web,
        }) => exit_code(commands::local_cluster(
            &dir,
            commands::local_spec(nodes, services, port, profile, web),
        )),
        Some(Command::Man { output }) => commands::man(output.as_deref()),
        Some(Command::Completions { shell }) => commands::completions(shell),
        Some(Command::CheckConfig { fence, nodes }) => {
            commands::check_config(cli.config.as_deref(), fence.as_deref(), &nodes)
        }
        Some(Command::Cluster(command)) => match load_config(cli.config, false) {
            Ok((_, config)) => commands::cluster(&config, command),
            Err(code) => code,
        },
        None => match load_config(cli.config, true) {
            Ok((config_path, config)) => {
                init_logging(log_format(cli.log_format.as_deref(), config.log_format));
                run_daemon(config_path, config)
            }
            Err(code) => code,
        },
    }
}
