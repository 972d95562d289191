//! Token buckets by key: a rate limit per bearer token and per source address (HTTP), and
//! pacing per source address (MLLP). A bucket holds up to `burst` tokens and refills at
//! `per_second`; a request takes one. Memory is bounded: past [`MAX_KEYS`] keys, buckets
//! that have refilled (idle clients) are dropped first.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys tracked at once.
pub const MAX_KEYS: usize = 10_000;

/// Buckets by key.
#[derive(Debug)]
pub struct RateLimiter<K> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter of `per_second` with bursts of `burst` (at least 1); none when
    /// `per_second` is 0 (no limit).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        (per_second > 0).then(|| RateLimiter {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one token from `key`'s bucket, or says how long until one is there.
    pub fn take(&self, key: &K) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    fn take_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| refill(b, now, rate, burst) < burst);
            if buckets.len() >= MAX_KEYS {
                // Every tracked client is busy: the oldest half makes room.
                let mut ages: Vec<Instant> = buckets.values().map(|b| b.at).collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                buckets.retain(|_, b| b.at > cut);
            }
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = refill(bucket, now, self.per_second, self.burst);
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Ok(())
        } else {
            bucket.tokens = tokens;
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second))
        }
    }
}

/// Tops `bucket` up for the time since it was last looked at; returns its tokens.
fn refill(bucket: &mut Bucket, now: Instant, per_second: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
    bucket.at = now;
    bucket.tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_per_key() {
        let limiter = RateLimiter::new(10, 3).unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take_at(&"a", t0).is_ok());
        }
        let wait = limiter.take_at(&"a", t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(
            limiter.take_at(&"b", t0).is_ok(),
            "another key has its own bucket"
        );
        assert!(limiter
            .take_at(&"a", t0 + Duration::from_millis(100))
            .is_ok());
        assert!(limiter
            .take_at(&"a", t0 + Duration::from_millis(100))
            .is_err());
        assert!(RateLimiter::<&str>::new(0, 5).is_none(), "0 is no limit");
    }

    #[test]
    fn the_keys_tracked_stay_bounded() {
        let limiter = RateLimiter::new(1, 1).unwrap();
        let t0 = Instant::now();
        for k in 0..(MAX_KEYS * 3) {
            let _ = limiter.take_at(&k, t0 + Duration::from_micros(k as u64));
        }
        assert!(limiter.buckets.lock().unwrap().len() <= MAX_KEYS);
    }
}
