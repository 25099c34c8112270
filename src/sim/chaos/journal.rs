//! The run's event log: every fault, node life event and agent action,
//! stamped with virtual time. Its hash is the replay check (the same seed
//! must give the same hash); its tail is what a violation report shows.

use std::collections::VecDeque;

/// How many events a violation report shows.
pub const TAIL: usize = 30;

/// FNV-1a over every event line, and the last [`TAIL`] lines.
#[derive(Debug, Clone)]
pub struct Journal {
    hash: u64,
    count: u64,
    tail: VecDeque<String>,
    /// Every line too (the `--verbose` CLI and tests); off by default.
    keep_all: Option<Vec<String>>,
}

impl Default for Journal {
    fn default() -> Journal {
        Journal {
            hash: 0xcbf2_9ce4_8422_2325,
            count: 0,
            tail: VecDeque::with_capacity(TAIL),
            keep_all: None,
        }
    }
}

impl Journal {
    pub fn keeping_all() -> Journal {
        Journal {
            keep_all: Some(Vec::new()),
            ..Journal::default()
        }
    }

    /// Records `what` at virtual time `now_ms`.
    pub fn record(&mut self, now_ms: u64, what: &str) {
        let line = format!("{:>4}.{:03} {what}", now_ms / 1000, now_ms % 1000);
        for byte in line.bytes().chain(std::iter::once(b'\n')) {
            self.hash ^= u64::from(byte);
            self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.count += 1;
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        if let Some(all) = &mut self.keep_all {
            all.push(line.clone());
        }
        self.tail.push_back(line);
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    pub fn all(&self) -> Option<&[String]> {
        self.keep_all.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_follows_every_line_and_the_tail_is_bounded() {
        let (mut a, mut b) = (Journal::default(), Journal::default());
        for i in 0..40 {
            a.record(i * 10, &format!("event {i}"));
            b.record(i * 10, &format!("event {i}"));
        }
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.tail().len(), TAIL);
        assert_eq!(a.tail().last().map(String::as_str), Some("   0.390 event 39"));
        b.record(400, "one more");
        assert_ne!(a.hash(), b.hash());
    }
}
