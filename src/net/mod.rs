//! QUIC transport and the replicated cluster store.
//!
//! Not built yet: this module is the place for it (issue "Cluster layer").
