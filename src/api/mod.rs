//! The daemon's client API: `ha-manager` talks to the local `hactor` over
//! a Unix socket.
//!
//! | module | what |
//! |---|---|
//! | [`protocol`] | the versioned request and response types, JSON-lines framing with a size limit |
//! | [`status`] | `status` entries (upstream's `status/current`), pure |
//! | [`plan`] | validation of every request against a snapshot, and the store operations an edit turns into, pure |
//! | [`server`] | the socket listener on the daemon's actix system: owner-only socket, peer uid check, edits as compare-and-swap on the configuration digest |
//!
//! The server reaches the cluster state only through a snapshot and an
//! apply call ([`server::StoreAccess`], the LockActor in the daemon), so it
//! works the same over the in-process store and the replicated one.
//!
//! Owns: the socket protocol and request planning. May import: `core`,
//! `config`, `net`, `node`; never `actors` (the daemon hands the server
//! its store behind [`server::StoreAccess`]).

pub mod plan;
pub mod protocol;
pub mod server;
pub mod status;
