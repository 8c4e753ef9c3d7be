//! [`RedisRateLimiter`]: GCRA in Lua on the Redis server's clock.

use super::codec::{int, items};
use super::conn::{map_err, RedisTarget};
use async_trait::async_trait;
use redis::{Script, Value};
use seckill_core::rate_limit::{Quota, RateDecision, RateLimiter};
use seckill_core::{Error, Result};
use std::sync::LazyLock;
use std::time::Duration;

static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/gcra.lua")));

/// The Redis rate limiter.
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    t: RedisTarget,
}

impl RedisRateLimiter {
    /// A rate limiter on `target`.
    pub fn new(target: RedisTarget) -> Self {
        Self { t: target }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, cost: u32, quota: Quota) -> Result<RateDecision> {
        if quota.rate == 0 || quota.burst == 0 {
            return Err(Error::invalid("quota rate and burst must be at least 1"));
        }
        let reply: Value = GCRA
            .key(format!(
                "{}:{{r:{}}}",
                self.t.prefix,
                key.replace(['{', '}'], "_")
            ))
            .arg(quota.interval().as_micros() as u64)
            .arg(quota.burst)
            .arg(cost.max(1))
            .invoke_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        let f = items(reply, "gcra")?;
        Ok(match f.first().map(|c| int(c, "gcra code")).transpose()? {
            Some(1) => RateDecision::Allowed,
            _ => RateDecision::Limited {
                retry_after: Duration::from_micros(
                    f.get(1)
                        .map(|v| int(v, "retry"))
                        .transpose()?
                        .unwrap_or(1)
                        .max(1) as u64,
                ),
            },
        })
    }
}
