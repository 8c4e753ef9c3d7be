//! Conformance cases of [`Lock`].

use crate::lock::Lock;
use std::sync::Arc;
use std::time::Duration;

/// The backend under test.
pub type Backend = Arc<dyn Lock>;

fn key() -> String {
    format!("conf-lock-{}", super::unique_id())
}

/// One holder at a time; release lets the next one in.
pub async fn exclusive_until_released(b: &Backend) {
    let k = key();
    let g = b
        .acquire(&k, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert!(b
        .acquire(&k, Duration::from_secs(10))
        .await
        .unwrap()
        .is_none());
    assert!(b.release(&g).await.unwrap());
    assert!(!b.release(&g).await.unwrap());
    assert!(b
        .acquire(&k, Duration::from_secs(10))
        .await
        .unwrap()
        .is_some());
}

/// Fencing tokens grow with every acquire.
pub async fn fencing_tokens_increase(b: &Backend) {
    let k = key();
    let mut last = 0;
    for _ in 0..5 {
        let g = b
            .acquire(&k, Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert!(g.token > last);
        last = g.token;
        b.release(&g).await.unwrap();
    }
}

/// A lease lapses after its TTL; the old guard can neither extend nor release then.
pub async fn lease_lapses(b: &Backend) {
    let k = key();
    let old = b
        .acquire(&k, Duration::from_millis(150))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let new = b
        .acquire(&k, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert!(new.token > old.token);
    assert!(!b.extend(&old, Duration::from_secs(10)).await.unwrap());
    assert!(!b.release(&old).await.unwrap());
    assert!(b.release(&new).await.unwrap());
}

/// Extending keeps the lock past its first TTL.
pub async fn extend_keeps_it(b: &Backend) {
    let k = key();
    let g = b
        .acquire(&k, Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    assert!(b.extend(&g, Duration::from_secs(10)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(b
        .acquire(&k, Duration::from_secs(1))
        .await
        .unwrap()
        .is_none());
    assert!(b.release(&g).await.unwrap());
}

/// Stamps out every case of this suite as a test for a backend.
#[macro_export]
macro_rules! lock_conformance {
    ($make:path) => {
        $crate::__conformance_tests!(lock, $make;
            exclusive_until_released,
            fencing_tokens_increase,
            lease_lapses,
            extend_keeps_it,
        );
    };
}
