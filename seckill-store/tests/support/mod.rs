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
    let p = pool(&BackendUrl::parse(&format!("{url}{sep}schema={schema}")).unwrap()).unwrap();
    migrate(&p).await.unwrap();
    let s = Arc::new(PgStore::new(p));
    Repos {
        users: s.clone(),
        catalog: s.clone(),
        orders: s.clone(),
        payments: s,
    }
}

/// A fresh key prefix on the Redis at `url`.
pub async fn redis_at(url: &str) -> RedisTarget {
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}prefix=t{}", unique_id());
    connect(&BackendUrl::parse(&url).unwrap())
        .await
        .expect("connect to the test Redis")
}
