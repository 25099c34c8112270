//! The node daemon's side of the core: configuration, the cluster store's
//! state machine (with the in-process store), the replicated store's
//! membership files and lifecycle commands, and the [`env::RoundEnv`]
//! through which actors run CRM and LRM rounds.

pub mod check_config;
pub mod cluster_store;
pub mod config;
pub mod env;
pub mod local_cluster;
pub mod local_fence;
pub mod membership;
pub mod shutdown;
pub mod state_lock;
pub mod store;
pub mod store_check;
