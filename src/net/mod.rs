//! Node-to-node networking: QUIC with mutual TLS from a cluster CA (or an
//! in-process network for the seeded harness, [`memory`]), and
//! versioned, size-limited bincode frames. Nothing here decides anything.
//!
//! On top of them, [`cluster`]: the replicated cluster store (openraft
//! in [`raft`], peer messages in [`peer`]), applying the core store's
//! operations.
//!
//! May import: `core`, `config`; never `node`, `actors` or `api`.

/// Where the daemon's client socket (the `ha-manager` API) is unless the
/// node configuration says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/hactor/hactor.sock";

pub mod clock;
pub mod cluster;
pub mod codec;
pub mod log_limit;
pub mod memory;
pub mod peer;
pub mod quic;
pub mod raft;
pub mod record;
pub mod tls;
pub mod transport;
