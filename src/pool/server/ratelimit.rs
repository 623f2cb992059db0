//! Token buckets: `burst` requests at once, refilled at `per_second`, one bucket per key.
//! The server keeps one limiter per miner key (only requests whose signature verified are
//! counted, so nobody can spend another miner's budget) and one per IP address (unsigned
//! requests and failed authentications).

use std::collections::HashMap;

/// Per-key token buckets.
pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: HashMap<String, (f64, f64)>,
}

/// Keys remembered before idle (full) buckets are dropped.
const MAX_KEYS: usize = 100_000;

impl RateLimiter {
    /// A limiter allowing `burst` requests at once and `per_second` on average.
    pub fn new(burst: u32, per_second: f64) -> RateLimiter {
        RateLimiter {
            burst: f64::from(burst.max(1)),
            per_second: per_second.max(0.0),
            buckets: HashMap::new(),
        }
    }

    /// Whether `key` has a token at time `now`, without taking it.
    pub fn has_room(&mut self, key: &str, now: f64) -> bool {
        match self.buckets.get(key) {
            None => true,
            Some((tokens, at)) => *tokens + (now - *at).max(0.0) * self.per_second >= 1.0,
        }
    }

    /// Take a token for `key` at time `now` (seconds, any monotonic origin); `false` when
    /// its bucket is empty.
    pub fn allow(&mut self, key: &str, now: f64) -> bool {
        if self.buckets.len() >= MAX_KEYS {
            let (burst, rate) = (self.burst, self.per_second);
            self.buckets
                .retain(|_, (tokens, at)| *tokens + (now - *at) * rate < burst);
        }
        let (burst, rate) = (self.burst, self.per_second);
        let (tokens, at) = self.buckets.entry(key.to_string()).or_insert((burst, now));
        *tokens = (*tokens + (now - *at).max(0.0) * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let mut r = RateLimiter::new(2, 1.0);
        assert!(r.allow("a", 0.0) && r.allow("a", 0.0));
        assert!(!r.allow("a", 0.0));
        assert!(r.allow("b", 0.0), "keys are independent");
        assert!(!r.allow("a", 0.5));
        assert!(r.allow("a", 1.6));
    }
}
