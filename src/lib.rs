//! hactor: a high-availability cluster resource manager compatible with the
//! Proxmox VE HA stack.
//!
//! # Layout
//! - [`core`]: the pure decision core (CRM, LRM, manager round, node
//!   selection). No I/O, no clock: everything comes in through `core::env::Env`.
//! - [`sim`]: the scenario simulator driving the core on virtual time, in
//!   upstream's regression-test format.
//! - [`config`]: configuration text parsers.
//! - `actors`, `net`: the node daemon's actor tree and QUIC transport (see
//!   their module docs for status).
//! - [`api`], [`cli`]: the daemon's client socket and `ha-manager`.

pub mod actors;
pub mod agents;
pub mod api;
pub mod cli;
pub mod config;
pub mod core;
pub mod daemon;
pub mod net;
pub mod node;
pub mod sim;
pub mod watchdog;
pub mod web;
