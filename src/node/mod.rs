//! The node daemon's side of the core: configuration, the cluster store's
//! state machine (with the in-process store), and the [`env::RoundEnv`]
//! through which actors run CRM and LRM rounds.

pub mod config;
pub mod env;
pub mod store;
