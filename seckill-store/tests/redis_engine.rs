//! The engine's never-oversell proofs with the Redis backends: the property-based state machine
//! (with crash injection) and the 10,000-buyer race, on a standalone Redis and on a cluster.
//! Broker and repositories stay in memory here (their own issues bring Kafka/RabbitMQ/Redis
//! Streams and PostgreSQL into the same suite).

use seckill_core::conformance::engine::{machine, race, seat_race, stock_loss, Fixture};
use seckill_core::conformance::{service_url, unique_id};
use seckill_core::engine::Backends;
use seckill_core::registry::BackendUrl;
use seckill_store::redis::*;
use std::sync::Arc;

fn fixture(url: String) -> Fixture {
    Fixture::new("redis", move |clock, provider| {
        let url = url.clone();
        Box::pin(async move {
            let sep = if url.contains('?') { '&' } else { '?' };
            let url = BackendUrl::parse(&format!("{url}{sep}prefix=e{}", unique_id())).unwrap();
            let t = connect(&url).await.expect("connect to the test Redis");
            let mut b = Backends::in_memory(clock, provider);
            b.stock = Arc::new(RedisStockReserver::new(t.clone(), DEFAULT_MAX_BATCH));
            b.delay = Arc::new(RedisDelayQueue::new(t.clone()));
            b.lock = Arc::new(RedisLock::new(t.clone()));
            b.rate_limiter = Arc::new(RedisRateLimiter::new(t.clone()));
            b.idempotency = Arc::new(RedisIdempotencyStore::new(t));
            b
        })
    })
}

macro_rules! engine_suite {
    ($m:ident, $var:expr) => {
        mod $m {
            use super::*;

            #[test]
            fn guarantees_hold_under_random_interleavings_and_crashes() {
                let Some(url) = service_url($var) else { return };
                if let Err(e) = machine::state_machine(&fixture(url), machine::cases_from_env()) {
                    panic!("{e}");
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn ten_thousand_buyers_never_oversell() {
                let Some(url) = service_url($var) else { return };
                race::ten_thousand_buyers(&fixture(url)).await;
            }

            /// 10,000 buyers for a 500-seat map, best available (docs/adr/0021).
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn ten_thousand_buyers_for_500_seats_never_double_sell() {
                let Some(url) = service_url($var) else { return };
                seat_race::ten_thousand_buyers_for_500_seats(&fixture(url)).await;
            }

            #[tokio::test]
            async fn a_redis_that_lost_its_data_is_healed() {
                let Some(url) = service_url($var) else { return };
                stock_loss::a_stock_backend_that_lost_its_data_is_healed(&fixture(url)).await;
            }

            #[tokio::test]
            async fn an_acknowledged_buy_lost_with_redis_is_told_lost() {
                let Some(url) = service_url($var) else { return };
                stock_loss::an_acknowledged_buy_lost_with_the_stock_backend_is_told_lost(&fixture(
                    url,
                ))
                .await;
            }
        }
    };
}

engine_suite!(standalone, "SECKILL_TEST_REDIS_URL");
engine_suite!(cluster, "SECKILL_TEST_REDIS_CLUSTER_URL");

/// Real-name documents are never in Redis in the clear (docs/adr/0021): after the seat race,
/// whose 10,000 buyers name holders by passport numbers `P0000nnn`, no key or value of the
/// database has one (holds, outbox entries, the documents hash, request ids, everything).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_document_number_reaches_redis_in_the_clear() {
    let Some(url) = service_url("SECKILL_TEST_REDIS_URL") else {
        return;
    };
    let (s, reserved) = seat_race::race(&fixture(url.clone())).await;
    assert!(!reserved.is_empty());
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut seen = 0usize;
    let mut holders = 0usize;
    for k in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap();
        let dump: Vec<String> = match kind.as_str() {
            "string" => vec![redis::cmd("GET")
                .arg(&k)
                .query_async::<Option<Vec<u8>>>(&mut c)
                .await
                .unwrap()
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default()],
            "hash" => redis::cmd("HGETALL")
                .arg(&k)
                .query_async(&mut c)
                .await
                .unwrap(),
            "set" => redis::cmd("SMEMBERS")
                .arg(&k)
                .query_async(&mut c)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .query_async(&mut c)
                .await
                .unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .query_async(&mut c)
                .await
                .unwrap(),
            "stream" => {
                let v: redis::Value = redis::cmd("XRANGE")
                    .arg(&k)
                    .arg("-")
                    .arg("+")
                    .query_async(&mut c)
                    .await
                    .unwrap();
                vec![format!("{v:?}")]
            }
            _ => Vec::new(),
        };
        for v in std::iter::once(&k).chain(&dump) {
            seen += 1;
            holders += v.matches("Holder ").count();
            assert!(
                !v.contains("P0000"),
                "a document number in the clear in {k}: {v}"
            );
        }
    }
    assert!(
        holders > 0,
        "the scan saw the race's holders ({seen} keys and values)"
    );
    drop(s);
}
