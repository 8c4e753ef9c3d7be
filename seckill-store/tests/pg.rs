//! The PostgreSQL repositories: the repository conformance suite, and the engine's
//! never-oversell proofs with PostgreSQL as the system of record (stock in memory, and stock in
//! Redis), each case in a schema of its own.

mod support;

use seckill_core::conformance::engine::{machine, race, Fixture};
use seckill_core::conformance::service_url;
use seckill_core::engine::Backends;
use seckill_store::redis::{RedisDelayQueue, RedisLock, RedisStockReserver, DEFAULT_MAX_BATCH};
use std::sync::Arc;

mod repo_suite {
    use super::support::pg_repos;
    seckill_core::repo_conformance!(pg_repos);
}

fn with_pg(name: &'static str, pg: String, redis: Option<String>) -> Fixture {
    Fixture {
        name,
        make: Arc::new(move |clock, provider| {
            let (pg, redis) = (pg.clone(), redis.clone());
            Box::pin(async move {
                let repos = support::pg_repos_at(&pg).await;
                let mut b = Backends::in_memory(clock, provider);
                b.users = repos.users;
                b.catalog = repos.catalog;
                b.orders = repos.orders;
                b.payments = repos.payments;
                if let Some(r) = redis {
                    let t = support::redis_at(&r).await;
                    b.stock = Arc::new(RedisStockReserver::new(t.clone(), DEFAULT_MAX_BATCH));
                    b.delay = Arc::new(RedisDelayQueue::new(t.clone()));
                    b.lock = Arc::new(RedisLock::new(t));
                }
                b
            })
        }),
    }
}

fn cases() -> u32 {
    // Each case creates a schema; a quarter of the in-memory count keeps CI time in check.
    (machine::cases_from_env() / 4).max(16)
}

#[test]
fn guarantees_hold_with_postgres_and_memory_stock() {
    let Some(pg) = service_url("SECKILL_TEST_PG_URL") else {
        return;
    };
    if let Err(e) = machine::state_machine(&with_pg("pg+memory", pg, None), cases()) {
        panic!("{e}");
    }
}

#[test]
fn guarantees_hold_with_postgres_and_redis_stock() {
    let Some(pg) = service_url("SECKILL_TEST_PG_URL") else {
        return;
    };
    let Some(redis) = service_url("SECKILL_TEST_REDIS_URL") else {
        return;
    };
    if let Err(e) = machine::state_machine(&with_pg("pg+redis", pg, Some(redis)), cases()) {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_buyers_with_postgres_and_redis_stock() {
    let Some(pg) = service_url("SECKILL_TEST_PG_URL") else {
        return;
    };
    let Some(redis) = service_url("SECKILL_TEST_REDIS_URL") else {
        return;
    };
    race::ten_thousand_buyers(&with_pg("pg+redis", pg, Some(redis))).await;
}
