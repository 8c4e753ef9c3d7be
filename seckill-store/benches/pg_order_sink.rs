//! Order-sink throughput (orders written per second) through the batched order transaction
//! (`OrderRepo::create_from_holds`: inbox + guarded stock update + per-user units + multi-row
//! insert, one transaction per batch), against `COPY` of the same rows into a scratch table with
//! the orders table's columns, in the same run, on the same database. Target ≥ 0.3× COPY.
//!
//! It runs twice, each time in a schema of its own: **before**, the schema as migration 5 left
//! it (one `orders` table), and **after**, fully migrated (migration 6: `orders` and `inbox`
//! partitioned). Target: the partitioned ratio at least 0.9× the unpartitioned one.
//! `SECKILL_BENCH_ROUNDS` (default 1) repeats the pair.
//!
//! Run: `cargo bench -p seckill-store --bench pg_order_sink` (PostgreSQL at
//! `SECKILL_BENCH_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`).

use chrono::{Duration as CDuration, Utc};
use futures::SinkExt;
use seckill_core::domain::*;
use seckill_core::registry::BackendUrl;
use seckill_core::repo::{CatalogRepo, CreateOrder, OrderRepo};
use seckill_store::postgres::{migrate_to, pool, PgStore};
use std::time::Instant;

const ROWS: usize = 60_000;
const BATCH: usize = 256;
const WORKERS: usize = 2;

fn orders(a: &Activity, base: i64) -> Vec<(String, Order)> {
    let now = Utc::now();
    (0..ROWS as i64)
        .map(|i| {
            let o = Order {
                holders: Vec::new(),
                id: OrderId(base + i),
                hold_id: HoldId(base + ROWS as i64 + i),
                user_id: UserId(i % 20_000),
                activity_id: a.id,
                quantity: 1,
                amount: a.price,
                status: OrderStatus::PendingPayment,
                expires_at: now + CDuration::minutes(15),
                payment_id: None,
                cancel_reason: None,
                created_at: now,
                updated_at: now,
                trace_parent: None,
                lines: Vec::new(),
            };
            (format!("hold-{}", o.hold_id), o)
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let url = std::env::var("SECKILL_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let rounds: usize = std::env::var("SECKILL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    println!("order sink, {ROWS} orders, batches of {BATCH}, {WORKERS} workers");
    for round in 1..=rounds {
        let (copy_before, before) = run(&url, 5).await;
        let (copy_after, after) = run(&url, i32::MAX).await;
        let (rb, ra) = (before / copy_before, after / copy_after);
        println!("round {round}");
        println!("  before (one orders table)   COPY {copy_before:>8.0} rows/s  ours {before:>8.0} rows/s  {rb:.2}x");
        println!("  after (partitioned orders)  COPY {copy_after:>8.0} rows/s  ours {after:>8.0} rows/s  {ra:.2}x");
        println!(
            "  after / before: {:.2} (target >= 0.90) {}",
            ra / rb,
            if ra / rb >= 0.9 { "met" } else { "NOT met" }
        );
    }
}

/// COPY's rate and ours (rows/s) in a fresh schema migrated up to `last`.
async fn run(url: &str, last: i32) -> (f64, f64) {
    let schema = format!("bench{}", Utc::now().timestamp_micros());
    let admin = pool(&BackendUrl::parse(url).unwrap()).unwrap();
    let admin = admin.get().await.expect("connect");
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let p = pool(&BackendUrl::parse(&format!("{url}{sep}schema={schema}")).unwrap()).unwrap();
    migrate_to(&p, last).await.unwrap();
    // Migrations 7 to 10 (the activities' stock_buckets, event_id, tiers and seats columns and
    // the orders' tier lines, which today's store writes; empty here) do not change what is
    // measured: add them to the older schema too.
    for &(version, sql) in &seckill_store::postgres::MIGRATIONS[6..10] {
        if last < version {
            p.get().await.unwrap().batch_execute(sql).await.unwrap();
        }
    }
    let store = PgStore::new(p.clone());
    let now = Utc::now();
    let product = Product {
        id: ProductId(1),
        name: "p".into(),
        description: String::new(),
        list_price: Money(100),
        created_at: now,
    };
    store.insert_product(&product).await.unwrap();
    let activity = Activity {
        real_name: false,
        id: ActivityId(1),
        product_id: product.id,
        title: "bench".into(),
        price: Money(100),
        total_stock: 10_000_000,
        sold: 0,
        per_user_limit: 1_000,
        starts_at: now,
        ends_at: now + CDuration::hours(1),
        cancelled: false,
        created_at: now,
        stock_buckets: 1,
        event_id: None,
        tiers: Vec::new(),
        quotas: Vec::new(),
        seats: Vec::new(),
    };
    store.insert_activity(&activity).await.unwrap();

    // Baseline: COPY the same rows into a scratch table shaped like `orders`.
    let rows = orders(&activity, 1);
    let client = p.get().await.unwrap();
    client
        .batch_execute("CREATE TABLE scratch (LIKE orders INCLUDING ALL)")
        .await
        .unwrap();
    let started = Instant::now();
    let mut csv = String::with_capacity(ROWS * 160);
    for (_, o) in &rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},,,{},{}\n",
            o.id,
            o.hold_id,
            o.user_id,
            o.activity_id,
            o.quantity,
            o.amount.0,
            o.status,
            o.expires_at.to_rfc3339(),
            o.created_at.to_rfc3339(),
            o.updated_at.to_rfc3339()
        ));
    }
    let sink = client
        .copy_in("COPY scratch (id, hold_id, user_id, activity_id, quantity, amount, status, expires_at, payment_id, cancel_reason, created_at, updated_at) FROM STDIN (FORMAT csv)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(csv)).await.unwrap();
    let copied = sink.finish().await.unwrap();
    let copy_rate = copied as f64 / started.elapsed().as_secs_f64();
    assert_eq!(copied as usize, ROWS);

    // Ours: the batched order transaction, WORKERS concurrent workers.
    let rows = orders(&activity, 10_000_000);
    let started = Instant::now();
    let chunks: Vec<Vec<(String, Order)>> =
        rows.chunks(ROWS / WORKERS).map(|c| c.to_vec()).collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut created = 0;
            for batch in chunk.chunks(BATCH) {
                for r in store.create_from_holds(batch).await.unwrap() {
                    if let CreateOrder::Created(_) = r {
                        created += 1;
                    }
                }
            }
            created
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += t.await.unwrap();
    }
    let ours = created as f64 / started.elapsed().as_secs_f64();
    assert_eq!(created, ROWS);
    let sold = store.activity(activity.id).await.unwrap().unwrap().sold as usize;
    assert_eq!(sold, ROWS);

    drop(client);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    (copy_rate, ours)
}
