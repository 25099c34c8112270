//! The node daemon's glue: its configuration file, the in-process store
//! of a single node ([`memory_store`], a snapshot with a [`journal`]), the
//! replicated store's membership files and lifecycle commands, the
//! state-directory lock, the planned shutdown, the simulator's
//! [`shared_store`], and the local cluster of
//! daemons that `hactor local-cluster`, the benchmarks (`daemon::bench`)
//! and the tests run ([`local_cluster`], [`local_fence`]). The store's
//! state machine and the rounds' environment are the core's
//! (`core::store`).
//!
//! May import: `core`, `config`, `net`, `agents`, `watchdog`; never
//! `actors`, `api` or `cli`.

pub mod check_config;
pub mod cluster_store;
pub mod config;
pub mod journal;
pub mod local_cluster;
pub mod local_fence;
pub mod membership;
pub mod memory_store;
pub mod shared_store;
pub mod shutdown;
pub mod state_lock;
