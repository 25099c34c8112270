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
