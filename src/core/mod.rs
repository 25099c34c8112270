//! The pure HA decision core: no I/O, no clock, no async runtime.
//!
//! ```text
//!            ┌──────────── Env (trait) ────────────┐
//!  shell ──► │ now, quorum, locks, status, config, │ ◄── sim::World / node daemon
//!            │ watchdog, agents, log(Event)        │
//!            └─────────────────────────────────────┘
//!                  ▲                     ▲
//!         Crm::iterate ── Manager   Lrm::iterate
//! ```
//!
//! Every round the shell calls [`crm::Crm::iterate`] and
//! [`lrm::Lrm::iterate`]; the core asks the world only through [`env::Env`]
//! and reports what it decided as typed [`event::Event`]s. The same code runs
//! in the simulator (virtual time) and in the daemon.
//!
//! The pure store ([`store`]) is part of the core: the state every node
//! shares, its operations and guards, and what a round's proposal lets
//! stand once answered.
//!
//! Owns: every HA decision and the safety rules. May import: nothing else
//! of the crate (no `config`, `node`, `sim`...), and no actix, tokio,
//! sockets, files or clocks.

pub mod agent;
pub mod crm;
pub mod env;
pub mod event;
pub mod group_migration;
pub mod lrm;
pub mod manager;
pub mod node_status;
pub mod rules;
pub mod select;
pub mod status;
pub mod store;
pub mod timing;
pub mod types;
pub mod usage;
pub mod watchdog;
