//! In-memory [`RateLimiter`]: GCRA on a [`Clock`], the same algorithm as the Redis script, so
//! both backends answer alike (see docs/adr/0003).

use crate::clock::{Clock, SystemClock};
use crate::rate_limit::{Quota, RateDecision, RateLimiter};
use crate::{Error, Result};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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
        let interval = quota.interval().as_micros() as i64;
        let tolerance = interval * i64::from(quota.burst - 1);
        let mut map = self.tat.lock();
        // Forget keys idle long enough to have a full burst again, so the map stays small.
        if map.len() > 100_000 {
            map.retain(|_, tat| *tat + tolerance > now);
        }
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + interval * i64::from(cost.max(1));
        let allow_at = new_tat - tolerance - interval;
        if allow_at > now {
            let wait = (allow_at - now) as u64;
            return Ok(RateDecision::Limited {
                retry_after: Duration::from_micros(wait),
            });
        }
        map.insert(key.to_string(), new_tat);
        Ok(RateDecision::Allowed)
    }
}
