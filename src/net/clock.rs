//! The wall clock a node's rounds stamp leases with and its replica
//! stamps heartbeats and commits with, injected so that the actor-level
//! simulator (`sim::chaos`) can run every node on virtual time. The
//! daemon always uses [`Clock::system`]. It lives in `net` because the
//! replicated store (here) and the node's rounds (above) both read it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, from wherever this clock reads them.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The system's wall clock (the daemon's).
    pub fn system() -> Clock {
        Clock(Arc::new(system_ms))
    }

    /// A clock reading `now` (a simulator's virtual time).
    pub fn from_fn(now: impl Fn() -> u64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

fn system_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_injected_clock_reads_what_it_is_given() {
        let clock = Clock::from_fn(|| 42);
        assert_eq!(clock.now_ms(), 42);
        assert!(Clock::system().now_ms() > 1_600_000_000_000, "after 2020");
    }
}
