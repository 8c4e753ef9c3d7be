//! Test namespaces on the shared services: a fresh PostgreSQL schema, a fresh Redis prefix.
#![allow(dead_code)]

use seckill_core::conformance::{service_url, unique_id};
use seckill_core::registry::{BackendUrl, Repos};
use seckill_store::postgres::{migrate, pool, PgStore};
use seckill_store::redis::{connect, RedisTarget};
use std::sync::Arc;

/// A migrated, empty schema of its own on `SECKILL_TEST_PG_URL`, as repositories.
pub async fn pg_repos() -> Option<Repos> {
    let url = service_url("SECKILL_TEST_PG_URL")?;
    Some(pg_repos_at(&url).await)
}

/// A migrated, empty schema of its own on `url`.
pub async fn pg_repos_at(url: &str) -> Repos {
    let p = pg_schema_at(url).await;
    migrate(&p).await.unwrap();
    let s = Arc::new(PgStore::new(p));
    Repos {
        users: s.clone(),
        catalog: s.clone(),
        orders: s.clone(),
        payments: s,
    }
}

/// A pool on an empty, unmigrated schema of its own on `url`.
pub async fn pg_schema_at(url: &str) -> seckill_store::postgres::Pool {
    let schema = format!("t{}", unique_id());
    let admin = pool(&BackendUrl::parse(url).unwrap()).unwrap();
    admin
        .get()
        .await
        .expect("connect to the test PostgreSQL")
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    pool(&BackendUrl::parse(&format!("{url}{sep}schema={schema}")).unwrap()).unwrap()
}

/// A fresh key prefix on the Redis at `url`.
pub async fn redis_at(url: &str) -> RedisTarget {
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}prefix=t{}", unique_id());
    connect(&BackendUrl::parse(&url).unwrap())
        .await
        .expect("connect to the test Redis")
}

/// An activity of 10 units (10 per user) on sale from a minute ago for an hour.
pub fn open_stock(a: seckill_core::domain::ActivityId) -> seckill_core::stock::StockSpec {
    let now = chrono::Utc::now();
    seckill_core::stock::StockSpec {
        activity_id: a,
        total: 10,
        sold: 0,
        per_user_limit: 10,
        starts_at: now - chrono::Duration::minutes(1),
        ends_at: now + chrono::Duration::hours(1),
        user_counts: vec![],
        adopt: vec![],
        fence: 0,
        buckets: 1,
        tiers: Vec::new(),
        quotas: Vec::new(),
        seats: Vec::new(),
    }
}

/// User 1 asks for one unit of `a` under idempotency key `key`, now.
pub fn one_unit(
    a: seckill_core::domain::ActivityId,
    key: &str,
) -> seckill_core::stock::ReserveRequest {
    use seckill_core::domain::{HoldId, OrderId, UserId};
    let now = chrono::Utc::now();
    seckill_core::stock::ReserveRequest {
        holders: Vec::new(),
        activity_id: a,
        user_id: UserId(1),
        quantity: 1,
        request_id: key.to_string(),
        hold_id: HoldId(unique_id()),
        order_id: OrderId(unique_id()),
        now,
        expires_at: now + chrono::Duration::minutes(15),
        trace_parent: None,
        rates: Vec::new(),
        lines: Vec::new(),
    }
}
