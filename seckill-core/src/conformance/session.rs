//! Conformance cases of [`SessionStore`].

use crate::domain::UserId;
use crate::session::{CodeCheck, Revocation, SessionStore};
use std::sync::Arc;
use std::time::Duration;

/// The backend under test.
pub type Backend = Arc<dyn SessionStore>;

const TTL: Duration = Duration::from_secs(60);

fn user() -> UserId {
    UserId(super::unique_id())
}

fn phone() -> String {
    format!("+86{}", super::unique_id())
}

/// A revoked token is revoked; the user's other tokens and other users' are not.
pub async fn revoked_token_is_revoked_alone(b: &Backend) {
    let (u, other) = (user(), user());
    assert!(!b.is_revoked(u, "t1", 0).await.unwrap());
    b.revoke_token(u, "t1", TTL).await.unwrap();
    assert!(b.is_revoked(u, "t1", 0).await.unwrap());
    assert!(
        b.is_revoked(u, "t1", 7).await.unwrap(),
        "whatever its version"
    );
    assert!(!b.is_revoked(u, "t2", 0).await.unwrap());
    assert!(!b.is_revoked(other, "t1", 0).await.unwrap());
}

/// Revoking versions below `v` revokes older tokens only, and never goes back down.
pub async fn versions_below_are_revoked(b: &Backend) {
    let u = user();
    b.revoke_versions_below(u, 2, TTL).await.unwrap();
    assert!(b.is_revoked(u, "a", 0).await.unwrap());
    assert!(b.is_revoked(u, "b", 1).await.unwrap());
    assert!(!b.is_revoked(u, "c", 2).await.unwrap());
    assert!(!b.is_revoked(u, "d", 3).await.unwrap());
    b.revoke_versions_below(u, 1, TTL).await.unwrap();
    assert!(
        b.is_revoked(u, "b", 1).await.unwrap(),
        "a lower version un-revokes nothing"
    );
    assert!(!b.is_revoked(user(), "a", 0).await.unwrap(), "other users");
}

/// A right code is valid once; a new code replaces the old one.
pub async fn a_code_is_valid_once(b: &Backend) {
    let p = phone();
    assert_eq!(
        b.check_code(&p, "123456", 5).await.unwrap(),
        CodeCheck::Missing
    );
    b.put_code(&p, "111111", TTL).await.unwrap();
    b.put_code(&p, "123456", TTL).await.unwrap();
    assert_eq!(
        b.check_code(&p, "111111", 5).await.unwrap(),
        CodeCheck::Wrong { left: 4 },
        "the replaced code no longer works"
    );
    assert_eq!(
        b.check_code(&p, "123456", 5).await.unwrap(),
        CodeCheck::Valid
    );
    assert_eq!(
        b.check_code(&p, "123456", 5).await.unwrap(),
        CodeCheck::Missing
    );
}

/// Wrong tries are counted; the last allowed one drops the code; a new code resets the count.
pub async fn wrong_tries_are_limited(b: &Backend) {
    let p = phone();
    b.put_code(&p, "123456", TTL).await.unwrap();
    for left in (0..3).rev() {
        assert_eq!(
            b.check_code(&p, "000000", 3).await.unwrap(),
            CodeCheck::Wrong { left }
        );
    }
    assert_eq!(
        b.check_code(&p, "123456", 3).await.unwrap(),
        CodeCheck::Missing,
        "dropped after the last try: the right code no longer works"
    );
    b.put_code(&p, "654321", TTL).await.unwrap();
    assert_eq!(
        b.check_code(&p, "000000", 3).await.unwrap(),
        CodeCheck::Wrong { left: 2 }
    );
    assert_eq!(
        b.check_code(&p, "654321", 3).await.unwrap(),
        CodeCheck::Valid
    );
}

/// Concurrent checks of the right code: exactly one is `Valid`.
pub async fn a_code_is_used_once_under_races(b: &Backend) {
    let p = phone();
    b.put_code(&p, "424242", TTL).await.unwrap();
    let checks = (0..16).map(|_| {
        let (b, p) = (b.clone(), p.clone());
        tokio::spawn(async move { b.check_code(&p, "424242", 5).await.unwrap() })
    });
    let mut valid = 0;
    for c in checks {
        if c.await.unwrap() == CodeCheck::Valid {
            valid += 1;
        }
    }
    assert_eq!(valid, 1);
}

/// Revocations and codes expire.
pub async fn entries_expire(b: &Backend) {
    let (u, p) = (user(), phone());
    let short = Duration::from_millis(150);
    b.revoke_token(u, "t", short).await.unwrap();
    b.revoke_versions_below(u, 5, short).await.unwrap();
    b.put_code(&p, "123456", short).await.unwrap();
    assert!(b.is_revoked(u, "x", 1).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!b.is_revoked(u, "t", 9).await.unwrap());
    assert!(!b.is_revoked(u, "x", 1).await.unwrap());
    assert_eq!(
        b.check_code(&p, "123456", 5).await.unwrap(),
        CodeCheck::Missing
    );
}

/// A store with a revocation feed lists each revocation once, in order, after the cursor it
/// was asked from; from `""` it lists every one in force. (A store without a feed says so and
/// has nothing more to check.)
pub async fn the_revocation_feed_lists_each_revocation_once_in_order(b: &Backend) {
    let Some(start) = b.revocations_after("").await.unwrap() else {
        return;
    };
    let u = user();
    let of = |entries: &[Revocation]| -> Vec<(String, u32)> {
        entries
            .iter()
            .filter_map(|r| match r {
                Revocation::Token { user, token_id, .. } if *user == u => {
                    Some((token_id.clone(), 0))
                }
                Revocation::Below { user, version, .. } if *user == u => {
                    Some(("below".into(), *version))
                }
                _ => None,
            })
            .collect()
    };
    b.revoke_token(u, "t1", TTL).await.unwrap();
    b.revoke_versions_below(u, 3, TTL).await.unwrap();
    let feed = b.revocations_after(&start.cursor).await.unwrap().unwrap();
    let want = vec![("t1".to_string(), 0), ("below".to_string(), 3)];
    assert_eq!(of(&feed.entries), want);
    assert_eq!(
        of(&b.revocations_after("").await.unwrap().unwrap().entries),
        want
    );
    let next = b.revocations_after(&feed.cursor).await.unwrap().unwrap();
    assert!(of(&next.entries).is_empty(), "{next:?}");
    b.revoke_token(u, "t2", TTL).await.unwrap();
    let more = b.revocations_after(&feed.cursor).await.unwrap().unwrap();
    assert_eq!(of(&more.entries), [("t2".to_string(), 0)]);
    let Revocation::Token { until, .. } = &more.entries.last().unwrap() else {
        panic!("{more:?}");
    };
    let ahead = *until - chrono::Utc::now();
    assert!(
        ahead > chrono::Duration::seconds(50) && ahead <= chrono::Duration::seconds(61),
        "revoked until {until}"
    );
}

/// Stamps out every case of this suite as a test for a backend.
#[macro_export]
macro_rules! session_store_conformance {
    ($make:path) => {
        $crate::__conformance_tests!(session, $make;
            revoked_token_is_revoked_alone,
            versions_below_are_revoked,
            a_code_is_valid_once,
            wrong_tries_are_limited,
            a_code_is_used_once_under_races,
            entries_expire,
            the_revocation_feed_lists_each_revocation_once_in_order,
        );
    };
}
