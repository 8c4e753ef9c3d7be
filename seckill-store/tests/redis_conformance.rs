//! The Redis backends run every conformance suite of their traits, on a standalone Redis
//! (`SECKILL_TEST_REDIS_URL`) and on a Redis Cluster (`SECKILL_TEST_REDIS_CLUSTER_URL`), each
//! case under its own key prefix. The stock suite runs with and without batching.

use seckill_core::conformance::{service_url, unique_id};
use seckill_core::registry::BackendUrl;
use seckill_core::{DelayQueue, IdempotencyStore, Lock, RateLimiter, SessionStore, StockReserver};
use seckill_store::redis::*;
use std::sync::Arc;

async fn target(var: &str) -> Option<RedisTarget> {
    let url = service_url(var)?;
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}prefix=t{}", unique_id());
    Some(
        connect(&BackendUrl::parse(&url).unwrap())
            .await
            .expect("connect to the test Redis"),
    )
}

macro_rules! suites {
    ($m:ident, $var:expr) => {
        mod $m {
            use super::*;

            async fn stock_batched() -> Option<Arc<dyn StockReserver>> {
                Some(Arc::new(RedisStockReserver::new(
                    target($var).await?,
                    DEFAULT_MAX_BATCH,
                )))
            }
            async fn stock_unbatched() -> Option<Arc<dyn StockReserver>> {
                Some(Arc::new(RedisStockReserver::new(target($var).await?, 1)))
            }
            async fn delay() -> Option<Arc<dyn DelayQueue>> {
                Some(Arc::new(RedisDelayQueue::new(target($var).await?)))
            }
            async fn lock() -> Option<Arc<dyn Lock>> {
                Some(Arc::new(RedisLock::new(target($var).await?)))
            }
            async fn rate_limiter() -> Option<Arc<dyn RateLimiter>> {
                Some(Arc::new(RedisRateLimiter::new(target($var).await?)))
            }
            async fn idempotency() -> Option<Arc<dyn IdempotencyStore>> {
                Some(Arc::new(RedisIdempotencyStore::new(target($var).await?)))
            }
            async fn sessions() -> Option<Arc<dyn SessionStore>> {
                Some(Arc::new(RedisSessionStore::new(target($var).await?)))
            }
            async fn settings() -> Option<Arc<dyn seckill_core::SettingsStore>> {
                Some(Arc::new(RedisSettingsStore::new(target($var).await?)))
            }

            mod stock_batched_suite {
                use super::*;
                seckill_core::stock_reserver_conformance!(stock_batched);
            }
            mod stock_unbatched_suite {
                use super::*;
                seckill_core::stock_reserver_conformance!(stock_unbatched);
            }
            /// The stock model (docs/adr/0020), with as many buckets as the backend keeps.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_stock_model_holds() {
                let Some(b) = stock_batched().await else {
                    return;
                };
                if let Err(e) = seckill_core::conformance::stock_model::run(&*b, 64).await {
                    panic!("{e}");
                }
            }
            /// The seat model (docs/adr/0021): the reserve script's allocator against the
            /// contract's.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_seat_model_holds() {
                let Some(b) = stock_batched().await else {
                    return;
                };
                if let Err(e) = seckill_core::conformance::stock_seat_model::run(&*b, 64).await {
                    panic!("{e}");
                }
            }
            /// The holder model (docs/adr/0021): one document, one live ticket, in the reserve,
            /// release and load scripts.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_holder_model_holds() {
                let Some(b) = stock_batched().await else {
                    return;
                };
                if let Err(e) = seckill_core::conformance::stock_holder_model::run(&*b, 64).await {
                    panic!("{e}");
                }
            }
            /// The tier model (docs/adr/0021): tiers and a quota in the reserve script.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_tier_model_holds() {
                let Some(b) = stock_batched().await else {
                    return;
                };
                if let Err(e) = seckill_core::conformance::stock_tier_model::run(&*b, 64).await {
                    panic!("{e}");
                }
            }
            mod delay_suite {
                use super::*;
                seckill_core::delay_queue_conformance!(delay);
            }
            mod lock_suite {
                use super::*;
                seckill_core::lock_conformance!(lock);
            }
            mod rate_limit_suite {
                use super::*;
                seckill_core::rate_limiter_conformance!(rate_limiter);
            }
            mod idempotency_suite {
                use super::*;
                seckill_core::idempotency_conformance!(idempotency);
            }
            mod session_suite {
                use super::*;
                seckill_core::session_store_conformance!(sessions);
            }
            /// The same contract through the revocation cache.
            async fn cached_sessions() -> Option<Arc<dyn SessionStore>> {
                Some(
                    seckill_core::session::RevocationCache::wrap(
                        sessions().await?,
                        Arc::new(seckill_core::SystemClock),
                    )
                    .await,
                )
            }
            mod cached_session_suite {
                use super::*;
                seckill_core::session_store_conformance!(cached_sessions);
            }
            mod settings_suite {
                use super::*;
                seckill_core::settings_store_conformance!(settings);
            }
        }
    };
}

suites!(standalone, "SECKILL_TEST_REDIS_URL");
suites!(cluster, "SECKILL_TEST_REDIS_CLUSTER_URL");

/// Two nodes on one Redis: when one finds the activity sold out, the other learns it through
/// pub/sub and answers from its flag; a release on either clears it on both.
async fn sold_out_spreads_between_nodes(var: &str) {
    use chrono::{Duration as CDuration, Utc};
    use seckill_core::domain::{ActivityId, HoldId, OrderId, UserId};
    use seckill_core::stock::{ReserveOutcome, ReserveRequest, StockSpec};
    let Some(t) = target(var).await else { return };
    let a_node = RedisStockReserver::new(t.clone(), DEFAULT_MAX_BATCH);
    let b_node = RedisStockReserver::new(t, DEFAULT_MAX_BATCH);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await; // both subscribed
    let act = ActivityId(unique_id());
    let now = Utc::now();
    a_node
        .load(&StockSpec {
            activity_id: act,
            total: 1,
            sold: 0,
            per_user_limit: 1,
            starts_at: now - CDuration::minutes(1),
            ends_at: now + CDuration::hours(1),
            user_counts: vec![],
            adopt: vec![],
            fence: 0,
            buckets: 1,
            tiers: Vec::new(),
            quotas: Vec::new(),
            seats: Vec::new(),
        })
        .await
        .unwrap();
    let req = |user: i64| ReserveRequest {
        holders: Vec::new(),
        activity_id: act,
        user_id: UserId(user),
        quantity: 1,
        request_id: format!("r{user}"),
        hold_id: HoldId(unique_id()),
        order_id: OrderId(unique_id()),
        now,
        expires_at: now + CDuration::minutes(15),
        trace_parent: None,
        rates: Vec::new(),
        lines: Vec::new(),
    };
    let ReserveOutcome::Reserved { hold, .. } = a_node.reserve(&req(1)).await.unwrap() else {
        panic!("the only unit")
    };
    assert!(!b_node.sold_out_hint(act));
    assert_eq!(
        a_node.reserve(&req(2)).await.unwrap(),
        ReserveOutcome::SoldOut
    );
    assert!(a_node.sold_out_hint(act));
    let mut spread = false;
    for _ in 0..50 {
        if b_node.sold_out_hint(act) {
            spread = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(spread, "node B must learn the sell-out through pub/sub");
    b_node.release(act, hold.id).await.unwrap();
    assert!(!b_node.sold_out_hint(act));
    let mut cleared = false;
    for _ in 0..50 {
        if !a_node.sold_out_hint(act) {
            cleared = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(cleared, "a release must clear the flag on every node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sold_out_spreads_between_nodes_standalone() {
    sold_out_spreads_between_nodes("SECKILL_TEST_REDIS_URL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sold_out_spreads_between_nodes_cluster() {
    sold_out_spreads_between_nodes("SECKILL_TEST_REDIS_CLUSTER_URL").await;
}

/// Bad input reaching the reserve script directly (a negative or fractional quantity, a
/// missing time) is a typed refusal, never a Lua runtime error.
#[tokio::test]
async fn the_reserve_script_refuses_bad_input() {
    use chrono::{Duration as CDuration, Utc};
    use seckill_core::domain::ActivityId;
    use seckill_core::stock::StockSpec;
    let Some(t) = target("SECKILL_TEST_REDIS_URL").await else {
        return;
    };
    let r = RedisStockReserver::new(t.clone(), 1);
    let act = ActivityId(unique_id());
    let now = Utc::now();
    r.load(&StockSpec {
        activity_id: act,
        total: 5,
        sold: 0,
        per_user_limit: 5,
        starts_at: now - CDuration::minutes(1),
        ends_at: now + CDuration::hours(1),
        user_counts: vec![],
        adopt: vec![],
        fence: 0,
        buckets: 1,
        tiers: Vec::new(),
        quotas: Vec::new(),
        seats: Vec::new(),
    })
    .await
    .unwrap();
    let script = redis::Script::new(include_str!("../src/redis/lua/stock_reserve.lua"));
    let now_ms = now.timestamp_millis().to_string();
    for (qty, at) in [
        ("-1", now_ms.as_str()),
        ("1.5", &now_ms),
        ("x", &now_ms),
        ("1", ""),
    ] {
        let mut inv = script.prepare_invoke();
        for part in ["stock", "holds", "users", "req", "outbox", "rate"] {
            inv.key(format!("{}:{{a{}}}:{}", t.prefix, act, part));
        }
        inv.arg(1)
            .arg(7)
            .arg(qty)
            .arg("rid")
            .arg(1)
            .arg(2)
            .arg(&now_ms)
            .arg(at)
            .arg("") // no traceparent
            .arg(0); // no rate charges
        let reply: Vec<Vec<i64>> = inv.invoke_async(&mut t.conn.clone()).await.unwrap();
        assert_eq!(reply, vec![vec![7]], "qty {qty:?} at {at:?}");
    }
    assert_eq!(r.snapshot(act).await.unwrap().unwrap().available, 5);
}
