//! A limit on log lines that outsiders can trigger.
//!
//! Anybody who can send UDP to a node's QUIC port can make it refuse a
//! handshake, and each refusal used to log a warning: 100k garbage
//! datagrams gave thousands of lines, drowning the HA decisions and
//! filling the disk. A [`LogLimiter`] lets a few such lines through per
//! interval and counts the rest; [`LogLimiter::flush`], called once an
//! interval, reports how many were left out.

use std::time::{Duration, Instant};

/// Lines of one kind: at most `burst` per `interval`.
#[derive(Debug, Clone)]
pub struct LogLimiter {
    interval: Duration,
    burst: u32,
    window_start: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

impl LogLimiter {
    pub fn new(burst: u32, interval: Duration) -> LogLimiter {
        LogLimiter {
            interval,
            burst,
            window_start: None,
            in_window: 0,
            suppressed: 0,
        }
    }

    /// Whether a line due at `now` may be logged; a refused one is counted.
    pub fn allow(&mut self, now: Instant) -> bool {
        let fresh = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.interval);
        if fresh {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        if self.in_window < self.burst {
            self.in_window += 1;
            true
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            false
        }
    }

    /// How many lines were left out since the last call (`None`: none);
    /// the caller logs that as one summary line.
    pub fn flush(&mut self) -> Option<u64> {
        let n = std::mem::take(&mut self.suppressed);
        (n > 0).then_some(n)
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_gives_a_few_lines_per_interval_and_a_count() {
        let mut limiter = LogLimiter::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let allowed = (0..100_000)
            .filter(|i| limiter.allow(t0 + Duration::from_micros(*i)))
            .count();
        assert_eq!(allowed, 3);
        assert_eq!(limiter.flush(), Some(99_997));
        assert_eq!(limiter.flush(), None, "a summary is given once");
        // Still the same interval: suppressed.
        assert!(!limiter.allow(t0 + Duration::from_secs(9)));
        // A new interval lets a few through again.
        assert!(limiter.allow(t0 + Duration::from_secs(10)));
        assert!(limiter.allow(t0 + Duration::from_secs(10)));
        assert!(limiter.allow(t0 + Duration::from_secs(11)));
        assert!(!limiter.allow(t0 + Duration::from_secs(12)));
        assert_eq!(limiter.flush(), Some(2));
    }

    #[test]
    fn a_quiet_source_is_never_limited() {
        let mut limiter = LogLimiter::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..50 {
            assert!(limiter.allow(t0 + Duration::from_secs(i)));
        }
        assert_eq!(limiter.flush(), None);
    }

    #[test]
    fn a_clock_that_goes_back_does_not_panic() {
        let mut limiter = LogLimiter::new(1, Duration::from_secs(1));
        let t0 = Instant::now() + Duration::from_secs(5);
        assert!(limiter.allow(t0));
        assert!(!limiter.allow(t0 - Duration::from_secs(3)));
    }
}
