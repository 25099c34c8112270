//! The harness's seeded randomness: splitmix64, as the election guard's
//! jitter (`net::cluster::election`). Every random choice of a run comes
//! from one of these, forked from the seed, so a seed replays.

/// A splitmix64 generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (modulo bias is irrelevant at these ranges).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True `per_mille` times in a thousand.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next_u64() % 1000 < per_mille
    }

    /// `a` or `b`, half the time each (one draw).
    pub fn either<T>(&mut self, a: T, b: T) -> T {
        if self.chance(500) { a } else { b }
    }

    /// An independent stream for one consumer (a node's agent), so that
    /// its draws do not shift everybody else's.
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_draws_and_ranges_hold() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let draws: Vec<u64> = (0..100).map(|_| a.range(3, 9)).collect();
        assert_eq!(draws, (0..100).map(|_| b.range(3, 9)).collect::<Vec<_>>());
        assert!(draws.iter().all(|d| (3..=9).contains(d)));
        assert!(draws.contains(&3) && draws.contains(&9));
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }
}
