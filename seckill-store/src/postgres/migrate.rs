//! Embedded migrations: applied in order, each once, in a transaction, serialized across
//! processes by an advisory lock.

use super::{map_err, map_pool_err};
use deadpool_postgres::Pool;
use seckill_core::Result;

/// Every migration: (version, SQL).
pub const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_one_succeeded_payment.sql")),
    (3, include_str!("migrations/0003_voided_orders.sql")),
    (4, include_str!("migrations/0004_activity_fence.sql")),
    (5, include_str!("migrations/0005_order_trace.sql")),
    (6, include_str!("migrations/0006_partitioned_orders.sql")),
    (7, include_str!("migrations/0007_stock_buckets.sql")),
    (8, include_str!("migrations/0008_events.sql")),
    (9, include_str!("migrations/0009_tiers.sql")),
    (10, include_str!("migrations/0010_seats.sql")),
    (11, include_str!("migrations/0011_holders.sql")),
    (12, include_str!("migrations/0012_tier_and_seat_guards.sql")),
];

const LOCK_KEY: i64 = 0x005e_c411_0001;

/// Applies the migrations not applied yet; returns the versions it applied.
pub async fn migrate(pool: &Pool) -> Result<Vec<i32>> {
    migrate_to(pool, i32::MAX).await
}

/// Applies the migrations not applied yet up to version `last` (a schema as an older release
/// left it: the migration tests and the order-sink benchmark's "before" start from one).
pub async fn migrate_to(pool: &Pool, last: i32) -> Result<Vec<i32>> {
    let mut client = pool.get().await.map_err(map_pool_err)?;
    let tx = client.transaction().await.map_err(map_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(map_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS seckill_schema_version (
             version INT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(map_err)?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM seckill_schema_version", &[])
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= last) {
        if done.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(map_err)?;
        tx.execute(
            "INSERT INTO seckill_schema_version (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(map_err)?;
        applied.push(*version);
    }
    tx.commit().await.map_err(map_err)?;
    Ok(applied)
}
