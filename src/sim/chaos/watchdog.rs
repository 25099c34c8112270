//! The simulated watchdog device of one node incarnation: remembers when
//! the node's WatchdogActor last fed it. The harness looks at every step
//! and resets the node once a feed is more than the device timeout old
//! (the node's actors stop, its instances die).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::watchdog::Backend;

use super::ledger::SharedLedger;

/// The device, as the node's WatchdogActor holds it.
pub struct SimWatchdog {
    ledger: SharedLedger,
    probe: WatchdogProbe,
}

/// The harness's view of the device.
#[derive(Clone, Default)]
pub struct WatchdogProbe {
    /// Virtual ms of the last feed.
    last_feed_ms: Arc<AtomicU64>,
    /// Magic close: the device no longer resets the node.
    disarmed: Arc<AtomicBool>,
}

impl SimWatchdog {
    /// A device armed now.
    pub fn new(ledger: SharedLedger) -> SimWatchdog {
        let probe = WatchdogProbe::default();
        probe.last_feed_ms.store(ledger.now_ms(), Ordering::SeqCst);
        SimWatchdog { ledger, probe }
    }

    pub fn probe(&self) -> WatchdogProbe {
        self.probe.clone()
    }
}

impl WatchdogProbe {
    /// Whether the device has reset the node by `now_ms`.
    pub fn fired(&self, now_ms: u64, device_timeout_ms: u64) -> bool {
        !self.disarmed.load(Ordering::SeqCst)
            && now_ms.saturating_sub(self.last_feed_ms.load(Ordering::SeqCst)) > device_timeout_ms
    }
}

impl WatchdogProbe {
    /// The last feed (virtual ms), or `None` once the device was closed.
    pub fn last_feed_ms(&self) -> Option<u64> {
        (!self.disarmed.load(Ordering::SeqCst)).then(|| self.last_feed_ms.load(Ordering::SeqCst))
    }
}

impl Backend for SimWatchdog {
    fn keepalive(&mut self) -> std::io::Result<()> {
        self.probe.last_feed_ms.store(self.ledger.now_ms(), Ordering::SeqCst);
        Ok(())
    }

    fn disarm(&mut self) -> std::io::Result<()> {
        self.probe.disarmed.store(true, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::chaos::journal::Journal;

    #[tokio::test(start_paused = true)]
    async fn the_device_fires_once_feeding_stopped_for_its_timeout() {
        let ledger = SharedLedger::new(Journal::default());
        let mut device = SimWatchdog::new(ledger.clone());
        let probe = device.probe();
        tokio::time::sleep(std::time::Duration::from_millis(900)).await;
        device.keepalive().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        assert!(!probe.fired(ledger.now_ms(), 1000), "fed 1000 ms ago");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        assert!(probe.fired(ledger.now_ms(), 1000));
        device.disarm().unwrap();
        assert!(!probe.fired(ledger.now_ms(), 1000), "a disarmed device never fires");
    }
}
