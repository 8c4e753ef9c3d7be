//! Conformance cases of [`IdempotencyStore`].

use crate::idempotency::{Begin, IdempotencyStore, StoredResponse};
use std::sync::Arc;
use std::time::Duration;

/// The backend under test.
pub type Backend = Arc<dyn IdempotencyStore>;

fn key() -> String {
    format!("conf-idem-{}", super::unique_id())
}

const TTL: Duration = Duration::from_secs(60);

/// New, then in progress, then the stored response.
pub async fn first_wins_and_is_replayed(b: &Backend) {
    let k = key();
    assert_eq!(b.begin(&k, "h", TTL).await.unwrap(), Begin::New);
    assert_eq!(b.begin(&k, "h", TTL).await.unwrap(), Begin::InProgress);
    let r = StoredResponse {
        status: 202,
        body: b"{\"ok\":true}".to_vec(),
    };
    b.complete(&k, r.clone()).await.unwrap();
    assert_eq!(b.begin(&k, "h", TTL).await.unwrap(), Begin::Completed(r));
}

/// The same key with another request is refused.
pub async fn other_request_mismatches(b: &Backend) {
    let k = key();
    assert_eq!(b.begin(&k, "h1", TTL).await.unwrap(), Begin::New);
    assert_eq!(b.begin(&k, "h2", TTL).await.unwrap(), Begin::Mismatch);
}

/// Abandoning lets a retry start afresh.
pub async fn abandon_allows_retry(b: &Backend) {
    let k = key();
    assert_eq!(b.begin(&k, "h", TTL).await.unwrap(), Begin::New);
    b.abandon(&k).await.unwrap();
    assert_eq!(b.begin(&k, "h", TTL).await.unwrap(), Begin::New);
}

/// Entries expire.
pub async fn entries_expire(b: &Backend) {
    let k = key();
    assert_eq!(
        b.begin(&k, "h", Duration::from_millis(150)).await.unwrap(),
        Begin::New
    );
    b.complete(
        &k,
        StoredResponse {
            status: 200,
            body: vec![],
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.begin(&k, "other", TTL).await.unwrap(), Begin::New);
}

/// Stamps out every case of this suite as a test for a backend.
#[macro_export]
macro_rules! idempotency_conformance {
    ($make:path) => {
        $crate::__conformance_tests!(idempotency, $make;
            first_wins_and_is_replayed,
            other_request_mismatches,
            abandon_allows_retry,
            entries_expire,
        );
    };
}
