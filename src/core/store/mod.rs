//! The cluster store, pure: the state every node shares, the operations
//! that change it and their replies, lease locks, fencing epochs,
//! compare-and-swap and proposal guards ([`state`]); the checks a state
//! loaded from outside must pass ([`check`]); the [`Env`](crate::core::env::Env)
//! a CRM or LRM round runs against over a snapshot of it ([`round_env`]);
//! and what a round's proposal, once answered, lets stand ([`outcome`]).
//!
//! Time comes in as arguments (`now_ms` in operations and contexts); no
//! I/O happens here. The node's in-process store (`node::memory_store`)
//! and the replicated one (`net::raft`) both apply these operations, and
//! the simulator runs its rounds through the same code.

pub mod check;
pub mod lock_name;
pub mod outcome;
pub mod round_env;
pub mod shared;
pub mod state;

pub use lock_name::LockName;
pub use outcome::{RoundOutcome, round_outcome};
pub use round_env::{Outgoing, RoundContext, RoundEnv};
pub use shared::Shared;
pub use state::{ClusterState, Lease, Op, Reply, Snapshot, StoreError, StoredGroup};
