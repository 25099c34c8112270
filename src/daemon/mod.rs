//! The daemon's assembly: everything `hactor` and `hactor-bench` do over
//! the folders below, so that the binaries are short `main`s (parse the
//! arguments, dispatch here).
//!
//! - [`args`]: `hactor`'s command line (what `man` and `completions`
//!   render too).
//! - [`load_config`], [`logging`]: the node configuration with its state
//!   directory made ready; the log format and filter.
//! - [`run`]: the node's life (state-directory lock and pid file,
//!   startup, signals, shutdown choreography, fail-stop), over `store`
//!   (the in-process or replicated store with its Raft wiring, seeding),
//!   `fault_injection` (testing only), `server_config` (the API socket's
//!   and live view's settings), `node_shutdown` (whether the node goes
//!   down too) and [`LockStore`], the LockActor behind
//!   `api::server::StoreAccess`: what joins the actor tree to the client
//!   API.
//! - [`commands`]: `local-cluster`, `cluster ...`, `check-config` (with
//!   the running daemon's HA configuration), `man`, `completions`.
//! - [`bench`]: `hactor-bench`'s failover, timeline and scale benchmarks.
//!
//! May import every other folder of the crate; nothing imports it but
//! the binaries (and tests).

pub mod args;
pub mod bench;
pub mod commands;
mod fault_injection;
pub mod load_config;
pub mod logging;
mod node_shutdown;
pub mod run;
mod server_config;
mod store;
mod store_access;

pub use store_access::LockStore;

/// Target of the daemon's own log lines: `hactor`, the binary's crate,
/// as when this code was the binary's, so that the lines (and
/// `HACTOR_LOG` filters on them) read as before.
const LOG_TARGET: &str = "hactor";
