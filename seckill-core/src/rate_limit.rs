//! [`RateLimiter`]: GCRA (generic cell rate algorithm) per key.

use crate::Result;
use async_trait::async_trait;
use std::time::Duration;

/// A rate: `rate` requests per `period`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests per period.
    pub rate: u32,
    /// The period.
    pub period: Duration,
    /// Most requests allowed at once after a quiet spell (≥ 1).
    pub burst: u32,
}

impl Quota {
    /// `rate` per second with a burst of `burst`.
    pub fn per_second(rate: u32, burst: u32) -> Self {
        Self {
            rate,
            period: Duration::from_secs(1),
            burst,
        }
    }

    /// The emission interval: one request's share of the period.
    pub fn interval(&self) -> Duration {
        self.period / self.rate.max(1)
    }
}

/// The answer of [`RateLimiter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Go ahead (the cost was charged).
    Allowed,
    /// Too fast: nothing was charged; try again after this long.
    Limited {
        /// How long until the request would be allowed.
        retry_after: Duration,
    },
}

/// GCRA rate limiting.
///
/// # Contract (checked by `conformance::rate_limit`, feature `conformance`)
/// - After a quiet spell, `burst` requests of cost 1 are allowed at once; the next is limited
///   with a positive `retry_after`.
/// - Over time, allowed requests average at most `rate` per `period`.
/// - A limited request charges nothing; keys are independent.
/// - A cost above `burst` is always limited.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug {
    /// Charges `cost` to `key` if the quota allows.
    async fn check(&self, key: &str, cost: u32, quota: Quota) -> Result<RateDecision>;
}
