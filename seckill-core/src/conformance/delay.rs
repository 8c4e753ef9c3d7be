//! Conformance cases of [`DelayQueue`].

use crate::delay::DelayQueue;
use chrono::{Duration as CDuration, TimeZone, Utc};
use std::sync::Arc;
use std::time::Duration;

/// The backend under test.
pub type Backend = Arc<dyn DelayQueue>;

fn queue() -> String {
    format!("conf-delay-{}", super::unique_id())
}

const LEASE: Duration = Duration::from_secs(10);

/// Only due items are claimed, earliest first.
pub async fn claims_due_items_earliest_first(b: &Backend) {
    let q = queue();
    let t = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    b.schedule(&q, "late", t + CDuration::seconds(30))
        .await
        .unwrap();
    b.schedule(&q, "second", t + CDuration::seconds(2))
        .await
        .unwrap();
    b.schedule(&q, "first", t + CDuration::seconds(1))
        .await
        .unwrap();
    assert!(b.claim(&q, t, 10, LEASE).await.unwrap().is_empty());
    let got = b
        .claim(&q, t + CDuration::seconds(5), 10, LEASE)
        .await
        .unwrap();
    let ids: Vec<_> = got.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["first", "second"]);
    assert_eq!(b.len(&q).await.unwrap(), 3);
}

/// A claimed item is not handed out again until its lease lapses; then the old claim is stale.
pub async fn lease_lapses_and_stale_claims_are_refused(b: &Backend) {
    let q = queue();
    let t = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    b.schedule(&q, "x", t).await.unwrap();
    let first = b.claim(&q, t, 10, LEASE).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(b
        .claim(&q, t + CDuration::seconds(5), 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    let second = b
        .claim(&q, t + CDuration::seconds(11), 10, LEASE)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_ne!(first[0].token, second[0].token);
    assert!(!b.complete(&q, "x", first[0].token).await.unwrap());
    assert!(b.complete(&q, "x", second[0].token).await.unwrap());
    assert_eq!(b.len(&q).await.unwrap(), 0);
}

/// Scheduling an id again moves it; cancel removes it.
pub async fn reschedule_and_cancel(b: &Backend) {
    let q = queue();
    let t = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    b.schedule(&q, "x", t).await.unwrap();
    b.schedule(&q, "x", t + CDuration::minutes(5))
        .await
        .unwrap();
    assert_eq!(b.len(&q).await.unwrap(), 1);
    assert!(b.claim(&q, t, 10, LEASE).await.unwrap().is_empty());
    assert!(b.cancel(&q, "x").await.unwrap());
    assert!(!b.cancel(&q, "x").await.unwrap());
    assert!(b
        .claim(&q, t + CDuration::minutes(10), 10, LEASE)
        .await
        .unwrap()
        .is_empty());
}

/// `max` bounds a claim; the rest stay for the next one.
pub async fn claim_respects_max(b: &Backend) {
    let q = queue();
    let t = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    for i in 0..5 {
        b.schedule(&q, &format!("i{i}"), t).await.unwrap();
    }
    assert_eq!(b.claim(&q, t, 3, LEASE).await.unwrap().len(), 3);
    assert_eq!(b.claim(&q, t, 3, LEASE).await.unwrap().len(), 2);
}

/// Stamps out every case of this suite as a test for a backend.
#[macro_export]
macro_rules! delay_queue_conformance {
    ($make:path) => {
        $crate::__conformance_tests!(delay, $make;
            claims_due_items_earliest_first,
            lease_lapses_and_stale_claims_are_refused,
            reschedule_and_cancel,
            claim_respects_max,
        );
    };
}
