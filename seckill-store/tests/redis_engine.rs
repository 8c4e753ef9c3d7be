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
