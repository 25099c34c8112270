//! The node daemon's glue: its configuration file, the in-process store
//! of a single node ([`memory_store`]), the replicated store's membership
//! files and lifecycle commands, the state-directory lock and the planned
//! shutdown. The store's state machine and the rounds' environment are
//! the core's (`core::store`).
//!
//! May import: `core`, `config`, `net`, `agents`, `watchdog`; never
//! `actors`, `api` or `cli`.

pub mod cluster_store;
pub mod config;
pub mod local_cluster;
pub mod membership;
pub mod memory_store;
pub mod shutdown;
pub mod state_lock;
