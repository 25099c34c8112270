//! Node-to-node networking: QUIC with mutual TLS from a cluster CA, and
//! versioned, size-limited bincode frames. Nothing here decides anything.
//!
//! On top of them, [`cluster`]: the replicated cluster store (openraft
//! in [`raft`], peer messages in [`peer`]).

pub mod cluster;
pub mod codec;
pub mod log_limit;
pub mod peer;
pub mod quic;
pub mod raft;
pub mod tls;
