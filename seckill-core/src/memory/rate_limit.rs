//! In-memory [`RateLimiter`]: GCRA on a [`Clock`], the same algorithm as the Redis script, so
//! both backends answer alike (see docs/adr/0003).

use crate::clock::{Clock, SystemClock};
use crate::rate_limit::{gcra, Quota, RateDecision, RateLimiter};
use crate::{Error, Result};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// The in-memory rate limiter (the embedded default).
#[derive(Debug)]
pub struct MemoryRateLimiter {
    // key → theoretical arrival time, in microseconds since the epoch
    tat: Mutex<HashMap<String, i64>>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl MemoryRateLimiter {
    /// A limiter running on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            tat: Mutex::new(HashMap::new()),
            clock,
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: &str, cost: u32, quota: Quota) -> Result<RateDecision> {
        if quota.rate == 0 || quota.burst == 0 {
            return Err(Error::invalid("quota rate and burst must be at least 1"));
        }
        let now = self.clock.now().timestamp_micros();
        let tolerance = quota.interval().as_micros() as i64 * i64::from(quota.burst - 1);
        let mut map = self.tat.lock();
        // Forget keys idle long enough to have a full burst again, so the map stays small.
        if map.len() > 100_000 {
            map.retain(|_, tat| *tat + tolerance > now);
        }
        let new_tat = match gcra(map.get(key).copied(), now, quota, cost) {
            Ok(t) => t,
            Err(retry_after) => return Ok(RateDecision::Limited { retry_after }),
        };
        map.insert(key.to_string(), new_tat);
        Ok(RateDecision::Allowed)
    }
}
