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

/// A rate charge carried by a reserve (see [`ReserveRequest::rates`](crate::stock::ReserveRequest::rates)):
/// one request charged to `key` under `quota`, checked and charged in the reserve's own atomic
/// step, so a rate-limited buy costs no call of its own (docs/adr/0019).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCharge {
    /// What is charged, unique within the activity (`u:<user id>`, `buy-ip:<address>`).
    pub key: String,
    /// Its quota (rate and burst ≥ 1).
    pub quota: Quota,
    /// Only the reserving buyer's own requests charge this key (`u:<user id>`), so a backend
    /// that splits an activity into stock buckets may keep it in the buyer's bucket; `false`
    /// for a key buyers share (a client address), which the activity keeps in one place.
    pub buyer_only: bool,
}

impl RateCharge {
    /// A charge of one request to `key` under `quota`, a key buyers may share.
    pub fn new(key: impl Into<String>, quota: Quota) -> Self {
        Self {
            key: key.into(),
            quota,
            buyer_only: false,
        }
    }

    /// A charge of one request to a key only the reserving buyer charges (their own quota).
    pub fn buyer(key: impl Into<String>, quota: Quota) -> Self {
        Self {
            buyer_only: true,
            ..Self::new(key, quota)
        }
    }
}

/// Refuses charges a backend cannot apply: a rate or burst of 0, or an empty key.
pub fn check_charges(rates: &[RateCharge]) -> Result<()> {
    for c in rates {
        if c.quota.rate == 0 || c.quota.burst == 0 || c.quota.interval().as_micros() == 0 {
            return Err(crate::Error::invalid(format!(
                "rate charge {:?}: rate and burst must be above 0, and at most one request \
                 per microsecond",
                c.key
            )));
        }
        if c.key.is_empty() {
            return Err(crate::Error::invalid("a rate charge needs a key"));
        }
    }
    Ok(())
}

/// One GCRA step: charging `cost` to a key whose theoretical arrival time is `tat` (µs since
/// the epoch; `None` for a key never charged) at `now` (µs). `Ok(new_tat)` when allowed (the
/// caller stores it), `Err(retry_after)` when limited (nothing changes). Every backend runs
/// this same step (the Redis scripts in Lua), so they answer alike.
pub fn gcra(
    tat: Option<i64>,
    now: i64,
    quota: Quota,
    cost: u32,
) -> std::result::Result<i64, Duration> {
    let interval = quota.interval().as_micros() as i64;
    let tolerance = interval * i64::from(quota.burst.max(1) - 1);
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + interval * i64::from(cost.max(1));
    let allow_at = new_tat - tolerance - interval;
    if allow_at > now {
        Err(Duration::from_micros((allow_at - now) as u64))
    } else {
        Ok(new_tat)
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
