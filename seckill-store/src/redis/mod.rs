//! The Redis backends (feature `redis`): stock reserver with its outbox, delay queue, lock,
//! rate limiter, idempotency store and session store. Every key of an activity (or queue, lock, rate-limit
//! key) shares one hash tag, so each Lua script touches one slot and the same code runs on a
//! standalone Redis (`redis://`) and on a Redis Cluster (`redis-cluster://`).

pub mod codec;
mod conn;
mod delay;
mod idempotency;
mod lock;
mod metrics;
mod rate_limit;
mod session;
mod settings;
mod stock;

pub use conn::{connect, map_err, Ack, RedisConn, RedisTarget};
pub use delay::RedisDelayQueue;
pub use idempotency::RedisIdempotencyStore;
pub use lock::RedisLock;
pub use metrics::{connection_errors, RedisCollector};
pub use rate_limit::RedisRateLimiter;
pub use session::RedisSessionStore;
pub use settings::RedisSettingsStore;
pub use stock::RedisStockReserver;

use seckill_core::registry::Registry;
use std::sync::Arc;

/// Reserves coalesced into one script call at most (per activity).
pub const DEFAULT_MAX_BATCH: usize = 64;

/// Registers `redis://` and `redis-cluster://` for the stock, delay, lock, rate-limit,
/// idempotency, sessions and settings kinds.
pub fn register(r: &mut Registry) {
    for scheme in ["redis", "redis-cluster"] {
        r.stock.register(scheme, |u, ctx| async move {
            ctx.metrics.add("redis", RedisCollector);
            Ok(Arc::new(RedisStockReserver::new(
                connect(&u).await?,
                DEFAULT_MAX_BATCH,
            )) as Arc<dyn seckill_core::StockReserver>)
        });
        r.delay.register(scheme, |u, ctx| async move {
            ctx.metrics.add("redis", RedisCollector);
            Ok(Arc::new(RedisDelayQueue::new(connect(&u).await?))
                as Arc<dyn seckill_core::DelayQueue>)
        });
        r.lock.register(scheme, |u, ctx| async move {
            ctx.metrics.add("redis", RedisCollector);
            Ok(Arc::new(RedisLock::new(connect(&u).await?)) as Arc<dyn seckill_core::Lock>)
        });
        r.rate_limit.register(scheme, |u, ctx| async move {
            ctx.metrics.add("redis", RedisCollector);
            Ok(Arc::new(RedisRateLimiter::new(connect(&u).await?))
                as Arc<dyn seckill_core::RateLimiter>)
        });
        r.idempotency.register(scheme, |u, ctx| async move {
            ctx.metrics.add("redis", RedisCollector);
            Ok(Arc::new(RedisIdempotencyStore::new(connect(&u).await?))
                as Arc<dyn seckill_core::IdempotencyStore>)
        });
        r.sessions.register(scheme, |u, ctx| async move {
            ctx.metrics.add("redis", RedisCollector);
            Ok(Arc::new(RedisSessionStore::new(connect(&u).await?))
                as Arc<dyn seckill_core::SessionStore>)
        });
        r.settings.register(scheme, |u, ctx| async move {
            ctx.metrics.add("redis", RedisCollector);
            Ok(Arc::new(RedisSettingsStore::new(connect(&u).await?))
                as Arc<dyn seckill_core::SettingsStore>)
        });
    }
}
