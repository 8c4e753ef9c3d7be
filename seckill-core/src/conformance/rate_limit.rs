//! Conformance cases of [`RateLimiter`].

use crate::rate_limit::{Quota, RateDecision, RateLimiter};
use std::sync::Arc;
use std::time::Duration;

/// The backend under test.
pub type Backend = Arc<dyn RateLimiter>;

fn key() -> String {
    format!("conf-rl-{}", super::unique_id())
}

/// A burst is allowed at once, the next request is limited with a positive wait.
pub async fn burst_then_limited(b: &Backend) {
    let k = key();
    let q = Quota::per_second(2, 3);
    for _ in 0..3 {
        assert_eq!(b.check(&k, 1, q).await.unwrap(), RateDecision::Allowed);
    }
    match b.check(&k, 1, q).await.unwrap() {
        RateDecision::Limited { retry_after } => {
            assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_millis(500))
        }
        RateDecision::Allowed => panic!("the 4th request of a burst of 3 must be limited"),
    }
}

/// Keys do not share quota.
pub async fn keys_are_independent(b: &Backend) {
    let (k1, k2) = (key(), key());
    let q = Quota::per_second(1, 1);
    assert_eq!(b.check(&k1, 1, q).await.unwrap(), RateDecision::Allowed);
    assert!(matches!(
        b.check(&k1, 1, q).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    assert_eq!(b.check(&k2, 1, q).await.unwrap(), RateDecision::Allowed);
}

/// Quota comes back with time; limited requests charged nothing.
pub async fn quota_recovers(b: &Backend) {
    let k = key();
    let q = Quota::per_second(10, 1); // one every 100 ms
    assert_eq!(b.check(&k, 1, q).await.unwrap(), RateDecision::Allowed);
    for _ in 0..5 {
        assert!(matches!(
            b.check(&k, 1, q).await.unwrap(),
            RateDecision::Limited { .. }
        ));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(b.check(&k, 1, q).await.unwrap(), RateDecision::Allowed);
}

/// A cost above the burst is never allowed.
pub async fn cost_above_burst_is_limited(b: &Backend) {
    let k = key();
    assert!(matches!(
        b.check(&k, 5, Quota::per_second(100, 4)).await.unwrap(),
        RateDecision::Limited { .. }
    ));
}

/// Stamps out every case of this suite as a test for a backend.
#[macro_export]
macro_rules! rate_limiter_conformance {
    ($make:path) => {
        $crate::__conformance_tests!(rate_limit, $make;
            burst_then_limited,
            keys_are_independent,
            quota_recovers,
            cost_above_burst_is_limited,
        );
    };
}
