//! Reconnect delays: exponential with jitter, capped.

/// Produces the delays between reconnect attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    base_ms: u64,
    max_ms: u64,
    attempt: u32,
    seed: u64,
}

impl Backoff {
    /// Delays start near `base_ms`, double per attempt and stop growing at `max_ms`.
    /// `seed` drives the jitter (the monotonic clock will do).
    pub fn new(base_ms: u64, max_ms: u64, seed: u64) -> Self {
        Backoff { base_ms, max_ms: max_ms.max(base_ms), attempt: 0, seed: seed | 1 }
    }

    /// Consecutive failures so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Forgets past failures (after a connection that worked).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay: `min(max, base * 2^attempt)`, scaled by a random factor in
    /// [0.5, 1.0] so that many calls dropped at once do not reconnect in step.
    pub fn next_delay_ms(&mut self) -> u64 {
        let exponent = self.attempt.min(20);
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = self.base_ms.saturating_mul(1 << exponent).min(self.max_ms);
        // xorshift64
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let fraction = 0.5 + (self.seed % 1_000) as f64 / 2_000.0;
        ((ceiling as f64) * fraction).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_within_bounds() {
        let mut backoff = Backoff::new(100, 1_000, 42);
        let delays: Vec<u64> = (0..8).map(|_| backoff.next_delay_ms()).collect();
        let ceilings = [100, 200, 400, 800, 1_000, 1_000, 1_000, 1_000];
        for (delay, ceiling) in delays.iter().zip(ceilings) {
            assert!(*delay >= ceiling / 2 && *delay <= ceiling, "{delays:?}");
        }
        assert_eq!(backoff.attempts(), 8);
        backoff.reset();
        assert!(backoff.next_delay_ms() <= 100);
    }
}
