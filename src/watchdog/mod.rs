//! Watchdog backends: what actually fences this node when feeding stops.
//!
//! Note about why the fencing executor must not share the fate of the
//! daemon: if the daemon dies, hangs or is stopped, nothing inside it can
//! kill its services. The `device` backend hands that job to the kernel
//! (the machine resets); the `process` backend to a separate guard process
//! (`hactor fence-guard`) that kills every process group the node's
//! agents started, then the daemon. Neither can act while the whole node
//! is frozen (VM pause, cgroup freezer); fencing tokens cover that case:
//! a thawed writer presents a stale token that shared storage refuses.
//!
//! Owns: the device and fence-guard backends. May import: `core`,
//! `agents`; never `actors` or `api`.

pub mod device;
pub mod guard;
pub mod process;

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Something that resets or fences the node unless fed in time.
pub trait Backend: Send {
    /// Feed it: the node is healthy.
    fn keepalive(&mut self) -> std::io::Result<()>;
    /// Magic close: stop protecting, without fencing (only when safe).
    fn disarm(&mut self) -> std::io::Result<()>;
    /// A service process group started (the process backend kills these).
    fn track(&mut self, _pgid: i32) {}
    /// A service process group ended.
    fn untrack(&mut self, _pgid: i32) {}
}

/// A backend for tests: records when it was fed; never fences.
#[derive(Debug, Clone, Default)]
pub struct RecordingBackend {
    pub feeds: Arc<Mutex<Vec<Instant>>>,
    pub disarmed: Arc<Mutex<bool>>,
}

impl RecordingBackend {
    pub fn new() -> RecordingBackend {
        RecordingBackend::default()
    }

    /// The longest gap between two feeds so far (or since `since`).
    pub fn max_gap(&self, since: Instant) -> std::time::Duration {
        let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = since;
        let mut max = std::time::Duration::ZERO;
        for feed in feeds.iter().filter(|f| **f >= since) {
            max = max.max(feed.duration_since(last));
            last = *feed;
        }
        max
    }

    pub fn feed_count(&self) -> usize {
        self.feeds.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Backend for RecordingBackend {
    fn keepalive(&mut self) -> std::io::Result<()> {
        self.feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Instant::now());
        Ok(())
    }

    fn disarm(&mut self) -> std::io::Result<()> {
        *self.disarmed.lock().unwrap_or_else(|p| p.into_inner()) = true;
        Ok(())
    }
}
