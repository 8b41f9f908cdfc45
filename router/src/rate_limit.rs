//! Rate limits: how many requests a client address, and how many a user, may send per second.
//! Each key has a bucket of `burst` requests that refills at `per_second`; a request finding it
//! empty is refused 429 `rate_limited` with `Retry-After`, the seconds until one request's worth
//! is back (`retry_after_secs`, a pure function tested below).
//!
//! The user is the address a signature recovers to, never the address a body claims (which
//! anyone could name to use up someone else's requests); the client address is the TCP peer.
//! Buckets live in the process: with several instances behind a load balancer each instance
//! limits what reaches it.

use std::{collections::HashMap, hash::Hash, sync::Mutex, time::Instant};

/// Buckets kept before full (idle) ones are dropped.
const MAX_KEYS: usize = 100_000;

/// A limit: `per_second` requests on average, `burst` at once. `per_second` 0 means none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second refilled.
    pub per_second: f64,
    /// Requests at once (the bucket's size); at least 1.
    pub burst: f64,
}

impl RateLimit {
    /// No limit.
    pub const OFF: Self = Self {
        per_second: 0.0,
        burst: 0.0,
    };

    /// Whether it limits anything.
    pub fn is_on(&self) -> bool {
        self.per_second > 0.0
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets per key under one limit.
#[derive(Debug)]
pub(crate) struct Limiter<K> {
    limit: RateLimit,
    buckets: Mutex<HashMap<K, Bucket>>,
}

/// Seconds to wait before a bucket holding `tokens` (below 1) at `per_second` holds one: at
/// least 1, rounded up (`Retry-After` is whole seconds).
pub(crate) fn retry_after_secs(tokens: f64, per_second: f64) -> u64 {
    let wait = (1.0 - tokens).max(0.0) / per_second;
    (wait.ceil() as u64).max(1)
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::default(),
        }
    }

    /// Takes one request from `key`'s bucket now, or refuses it as [`Error::RateLimited`]
    /// naming `who`.
    pub(crate) fn take_or_refuse(
        &self,
        key: &K,
        who: impl FnOnce() -> String,
    ) -> crate::Result<()> {
        self.take(key, Instant::now())
            .map_err(|retry_after| crate::Error::RateLimited {
                who: who(),
                retry_after,
            })
    }

    /// Takes one request from `key`'s bucket at `now`, or the seconds to wait.
    pub(crate) fn take(&self, key: &K, now: Instant) -> Result<(), u64> {
        let RateLimit { per_second, burst } = self.limit;
        if per_second <= 0.0 {
            return Ok(());
        }
        let burst = burst.max(1.0);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            // Idle keys (full again) carry nothing: forget them before growing further.
            buckets.retain(|_, b| {
                let refilled =
                    b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_second;
                refilled < burst
            });
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at);
        bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(retry_after_secs(bucket.tokens, per_second))
        }
    }
}

/// How long a full bucket takes to empty at `limit` with no refill: the burst's worth of
/// requests arrives at once. For docs and tests.
#[cfg(test)]
fn burst_window(limit: RateLimit) -> std::time::Duration {
    std::time::Duration::from_secs_f64(limit.burst / limit.per_second)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_with_retry_after() {
        let limit = RateLimit {
            per_second: 2.0,
            burst: 3.0,
        };
        let limiter = Limiter::new(limit);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take(&"a", t0), Ok(()));
        }
        assert_eq!(
            limiter.take(&"a", t0),
            Err(1),
            "empty: half a second, said as 1 s"
        );
        assert_eq!(
            limiter.take(&"b", t0),
            Ok(()),
            "another key has its own bucket"
        );
        assert_eq!(limiter.take(&"a", t0 + Duration::from_millis(500)), Ok(()));
        assert!(limiter.take(&"a", t0 + Duration::from_millis(500)).is_err());
        // Refilled to the burst at most, never beyond it.
        let later = t0 + burst_window(limit) * 10;
        for _ in 0..3 {
            assert_eq!(limiter.take(&"a", later), Ok(()));
        }
        assert!(limiter.take(&"a", later).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(0.0, 0.1), 10);
        assert_eq!(retry_after_secs(0.5, 0.2), 3);
        assert_eq!(retry_after_secs(0.99, 1000.0), 1);
    }

    #[test]
    fn off_limits_nothing_and_idle_keys_are_forgotten() {
        let off = Limiter::new(RateLimit::OFF);
        let t0 = Instant::now();
        for _ in 0..1_000 {
            assert_eq!(off.take(&1u32, t0), Ok(()));
        }
        let limiter = Limiter::new(RateLimit {
            per_second: 1000.0,
            burst: 1.0,
        });
        for k in 0..MAX_KEYS as u32 {
            assert_eq!(limiter.take(&k, t0), Ok(()));
        }
        // A second on, every bucket is full again: the next new key drops them all.
        assert_eq!(limiter.take(&u32::MAX, t0 + Duration::from_secs(1)), Ok(()));
        assert_eq!(limiter.buckets.lock().expect("lock").len(), 1);
    }
}
