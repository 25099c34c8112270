//! The core's timing constants. Upstream's values are the default (and
//! what the simulator uses); the node daemon's `fast` profile shortens them.

use super::types::Time;

/// Delays (seconds) and round counts the core decides with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a node must have been offline before its services are
    /// fenced. Shorter than the lock lease, so it never lengthens a
    /// failover on its own.
    pub fence_delay: Time,
    /// A node missing from the membership this long is forgotten.
    pub gone_node_delay: Time,
    /// Master rounds with nothing configured before the CRM goes idle.
    pub crm_idle_rounds: u32,
    /// LRM rounds with no service on the node before it releases its lock.
    pub lrm_idle_rounds: u32,
    /// An LRM restarting while it lost its lock gives up after this long.
    pub lost_lock_restart_giveup: Time,
    /// Lock acquisition retries stop after this many seconds.
    pub lock_retry_window: Time,
}

impl Timing {
    /// pve-ha-manager's constants.
    pub const UPSTREAM: Timing = Timing {
        fence_delay: 60,
        gone_node_delay: 3600,
        crm_idle_rounds: 90,
        lrm_idle_rounds: 60,
        lost_lock_restart_giveup: 90,
        lock_retry_window: 5,
    };
}

impl Default for Timing {
    fn default() -> Self {
        Timing::UPSTREAM
    }
}

/// Upper bound of every `[timing]` value of the node configuration, in
/// milliseconds (one hour). Far above any sensible setting (upstream's
/// longest is the 120 s lease), and low enough that the sums and products
/// the daemon forms from them (the safety inequality, election hold-offs)
/// cannot overflow: a larger value is refused with its key.
pub const MAX_TIMING_MS: u64 = 3_600_000;

/// Upper bound of every agent and service timeout in seconds (one day):
/// the node configuration's `*_timeout_secs` keys and the timeout of
/// `crm-command stop <sid> <timeout>`. A deadline `now + timeout` of at
/// most a day can always be represented, so no agent can panic on it.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

/// Upper bound of the node configuration's `max_worker` (concurrent agent
/// jobs): a semaphore of more permits cannot be built.
pub const MAX_WORKERS: usize = 1024;
