//! The Redis backends run every conformance suite of their traits, on a standalone Redis
//! (`SECKILL_TEST_REDIS_URL`) and on a Redis Cluster (`SECKILL_TEST_REDIS_CLUSTER_URL`), each
//! case under its own key prefix. The stock suite runs with and without batching.

use seckill_core::conformance::{service_url, unique_id};
use seckill_core::registry::BackendUrl;
use seckill_core::{DelayQueue, IdempotencyStore, Lock, RateLimiter, StockReserver};
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

            mod stock_batched_suite {
                use super::*;
                seckill_core::stock_reserver_conformance!(stock_batched);
            }
            mod stock_unbatched_suite {
                use super::*;
                seckill_core::stock_reserver_conformance!(stock_unbatched);
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
        }
    };
}

suites!(standalone, "SECKILL_TEST_REDIS_URL");
suites!(cluster, "SECKILL_TEST_REDIS_CLUSTER_URL");
