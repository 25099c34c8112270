//! The `hactor` subcommands other than running the node: the demo local
//! cluster, cluster membership, `check-config`, the manual page and the
//! shell completions. Each prints its own report; failures go to stderr
//! as `hactor: <reason>` with exit code 1.

mod check_config;
mod cluster;
mod local_cluster;
mod man;

use std::process::ExitCode;

pub use check_config::check_config;
pub use cluster::cluster;
pub use local_cluster::{local_cluster, local_spec};
pub use man::{completions, man};

/// A command's outcome as its exit code, its error on stderr.
pub fn exit_code(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hactor: {e}");
            ExitCode::FAILURE
        }
    }
}
