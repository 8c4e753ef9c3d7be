//! Token revocation off the buy's hot path, and still exact (issue 17):
//!
//! - a buy's token check makes no session-store call: the revocation cache answers it (a
//!   counting store under the cache; the control without the cache counts one per buy);
//! - a token revoked on one api process (logout, password change) is refused on another
//!   within one second: two real processes sharing Redis.

mod support;

use async_trait::async_trait;
use seckill_core::domain::UserId;
use seckill_core::session::{CodeCheck, RevocationCache, RevocationFeed, SessionStore};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::process::{call, data, start, SharedBackends};
use support::*;

/// Counts the token checks that reach the store.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn SessionStore>,
    checks: AtomicU64,
}

#[async_trait]
impl SessionStore for Counting {
    async fn revoke_token(&self, u: UserId, t: &str, ttl: Duration) -> seckill_core::Result<()> {
        self.inner.revoke_token(u, t, ttl).await
    }
    async fn revoke_versions_below(
        &self,
        u: UserId,
        v: u32,
        ttl: Duration,
    ) -> seckill_core::Result<()> {
        self.inner.revoke_versions_below(u, v, ttl).await
    }
    async fn is_revoked(&self, u: UserId, t: &str, v: u32) -> seckill_core::Result<bool> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        self.inner.is_revoked(u, t, v).await
    }
    async fn put_code(&self, p: &str, c: &str, ttl: Duration) -> seckill_core::Result<()> {
        self.inner.put_code(p, c, ttl).await
    }
    async fn check_code(&self, p: &str, c: &str, n: u32) -> seckill_core::Result<CodeCheck> {
        self.inner.check_code(p, c, n).await
    }
    async fn revocations_after(&self, c: &str) -> seckill_core::Result<Option<RevocationFeed>> {
        self.inner.revocations_after(c).await
    }
    fn revocation_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.revocation_signal()
    }
}

/// 20 buys through the app with the session store counted under (or, `cached = false`,
/// without) the revocation cache; the checks that reached the store.
async fn checks_per_20_buys(cached: bool) -> u64 {
    let a = api_with(true, |c| {
        c.sale.buy_rate_per_sec = 0;
        c.limits.login_per_ip.rate = 0;
    })
    .await;
    let activity = a.demo_activity().await;
    let token = a.user("counted").await;
    let counting = Arc::new(Counting {
        inner: Arc::new(seckill_core::memory::MemorySessionStore::default()),
        checks: AtomicU64::new(0),
    });
    let mut backends = a.state.engine.backends().clone();
    backends.sessions = if cached {
        RevocationCache::wrap(counting.clone(), backends.clock.clone()).await
    } else {
        counting.clone()
    };
    let b = a.with_backends(backends);
    for _ in 0..20 {
        let r = b
            .call(
                "POST",
                &format!("/api/v1/seckill/activities/{activity}/buy"),
                Some(&token),
                Some(json!({"quantity": 1})),
            )
            .await;
        // Reserved, or refused by the per-user limit after the first: either way the token
        // was checked.
        assert!(
            r.status.is_success() || r.status.as_u16() == 409,
            "{}",
            r.body
        );
    }
    counting.checks.load(Ordering::Relaxed)
}

#[tokio::test]
async fn a_buy_checks_its_token_without_a_session_store_call() {
    assert_eq!(checks_per_20_buys(true).await, 0);
    // The control: without the cache, every buy asks the store.
    assert_eq!(checks_per_20_buys(false).await, 20);
}

fn login(port: u16, user: &str, pw: &str) -> String {
    let r = call(
        port,
        "POST",
        "/api/v1/user/login",
        None,
        Some(json!({"username": user, "password": pw})),
    )
    .unwrap();
    data(&r)["token"].as_str().unwrap().to_string()
}

/// Waits until `token` is refused (1001) on `port`; how long since `since`.
fn until_refused(port: u16, token: &str, since: Instant) -> Duration {
    loop {
        let r = call(port, "GET", "/api/v1/user/profile", Some(token), None).unwrap();
        if r["code"] == 1001 {
            return since.elapsed();
        }
        assert_eq!(r["code"], 0, "{r}");
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "port {port} still accepts a revoked token"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn a_token_revoked_on_one_process_is_refused_on_the_other_within_a_second() {
    let (Some(redis), Some(pg)) = (
        seckill_core::conformance::service_url("SECKILL_TEST_REDIS_URL"),
        seckill_core::conformance::service_url("SECKILL_TEST_PG_URL"),
    ) else {
        return;
    };
    let shared = SharedBackends::new(&redis, &pg, "revoke").await;
    let (a, b) = (18251u16, 18252u16);
    let _pa = start("all", a, Some(18261), &shared.env);
    let _pb = start("api", b, Some(18262), &shared.env);
    call(
        a,
        "POST",
        "/api/v1/user/register",
        None,
        Some(json!({"username": "revoked-buyer", "password": "correct-horse"})),
    )
    .unwrap();

    // Logout on A: B refuses the token within a second.
    let t1 = login(a, "revoked-buyer", "correct-horse");
    let r = call(b, "GET", "/api/v1/user/profile", Some(&t1), None).unwrap();
    assert_eq!(r["code"], 0, "{r}");
    let r = call(a, "POST", "/api/v1/user/logout", Some(&t1), None).unwrap();
    assert_eq!(r["code"], 0, "{r}");
    let took = until_refused(b, &t1, Instant::now());
    assert!(took < Duration::from_secs(1), "B refused it after {took:?}");

    // A password change on B: A refuses the older token within a second.
    let t2 = login(b, "revoked-buyer", "correct-horse");
    let r = call(a, "GET", "/api/v1/user/profile", Some(&t2), None).unwrap();
    assert_eq!(r["code"], 0, "{r}");
    let r = call(
        b,
        "POST",
        "/api/v1/user/password",
        Some(&t2),
        Some(json!({"old_password": "correct-horse", "new_password": "battery-staple"})),
    )
    .unwrap();
    assert_eq!(r["code"], 0, "{r}");
    let took = until_refused(a, &t2, Instant::now());
    assert!(took < Duration::from_secs(1), "A refused it after {took:?}");
    // The new password's token works on both.
    let t3 = login(a, "revoked-buyer", "battery-staple");
    for port in [a, b] {
        let r = call(port, "GET", "/api/v1/user/profile", Some(&t3), None).unwrap();
        assert_eq!(r["code"], 0, "{r}");
    }
    drop((_pa, _pb));
    shared.drop_schema().await;
}
