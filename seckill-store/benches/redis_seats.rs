//! Seat allocation in the Redis reserve script (docs/adr/0021), in one run on one machine: a
//! best-available reserve of 2 seats on a 2,000-seat map (40 rows of 50) half sold, against the
//! baseline, a reserve of 2 units of an unseated tier of the same session. 50 concurrent callers
//! through the batched reserver; each operation reserves and then releases, so the map stays as
//! full as it started. Prints each rate and the seated case's time per reserve as a multiple of
//! the baseline's (the target: within 3×; docs/benchmarks.md).
//!
//! Run: `cargo bench -p seckill-store --bench redis_seats` (Redis at `SECKILL_BENCH_REDIS_URL`,
//! default `redis://127.0.0.1:6379/0`).

use chrono::{Duration as CDuration, Utc};
use seckill_core::domain::{ActivityId, HoldId, OrderId, TierLine, UserId};
use seckill_core::registry::BackendUrl;
use seckill_core::stock::{ReserveOutcome, ReserveRequest, StockSpec};
use seckill_core::StockReserver;
use seckill_store::redis::{connect, RedisStockReserver, DEFAULT_MAX_BATCH};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

const CLIENTS: i64 = 50;
const OPS: i64 = 20_000;
const ROWS: u32 = 40;
const PER_ROW: u32 = 50;

static IDS: AtomicI64 = AtomicI64::new(1);

fn next_id() -> i64 {
    IDS.fetch_add(1, Ordering::Relaxed)
}

fn spec(a: ActivityId) -> StockSpec {
    seckill_core::conformance::stock_seat_model::bench_session(a, ROWS, PER_ROW)
}

fn request(a: ActivityId, user: i64, line: TierLine) -> ReserveRequest {
    let now = Utc::now();
    ReserveRequest {
        activity_id: a,
        user_id: UserId(user),
        quantity: line.quantity,
        request_id: format!("r{}", next_id()),
        hold_id: HoldId(next_id()),
        order_id: OrderId(next_id()),
        now,
        expires_at: now + CDuration::minutes(15),
        trace_parent: None,
        rates: Vec::new(),
        lines: vec![line],
        holders: Vec::new(),
    }
}

/// `OPS` reserve-and-release operations of `tier` by `CLIENTS` callers; operations per second.
async fn rate(r: Arc<RedisStockReserver>, a: ActivityId, tier: u32) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..OPS / CLIENTS {
                let user = c * 1_000_000 + i;
                let hold = match r
                    .reserve(&request(a, user, TierLine::new(tier, 2)))
                    .await
                    .expect("reserve")
                {
                    ReserveOutcome::Reserved { hold, .. } => hold,
                    other => panic!("{other:?}"),
                };
                r.release(a, hold.id).await.expect("release");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    OPS as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::var("SECKILL_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let prefix = format!("seatbench{}", Utc::now().timestamp());
    let t = connect(&BackendUrl::parse(&format!("{url}?prefix={prefix}")).unwrap())
        .await
        .expect("connect");
    let r = Arc::new(RedisStockReserver::new(t.clone(), DEFAULT_MAX_BATCH));
    let a = ActivityId(Utc::now().timestamp_micros());
    r.load(&spec(a)).await.expect("load");
    // Half the map sold: rows 1 to 20, by named seats.
    for row in 1..=ROWS / 2 {
        let line = TierLine {
            seats: (1..=PER_ROW).map(|n| format!("A-{row}-{n}")).collect(),
            ..TierLine::new(1, PER_ROW)
        };
        match r
            .reserve(&request(a, -i64::from(row), line))
            .await
            .expect("fill")
        {
            ReserveOutcome::Reserved { .. } => {}
            other => panic!("filling row {row}: {other:?}"),
        }
    }
    println!(
        "seat allocation on Redis, {OPS} reserve+release of 2 units, {CLIENTS} concurrent callers, \
         batched (max_batch {DEFAULT_MAX_BATCH}), a {}-seat map half sold",
        ROWS * PER_ROW
    );
    // Warm the connection and the scripts, then measure both, the baseline first and last.
    rate(r.clone(), a, 2).await;
    let base1 = rate(r.clone(), a, 2).await;
    let seated = rate(r.clone(), a, 1).await;
    let base2 = rate(r.clone(), a, 2).await;
    let base = (base1 + base2) / 2.0;
    println!("baseline  2 units of an unseated tier:        {base:>9.0} ops/s  (runs {base1:.0}, {base2:.0})");
    println!(
        "seated    2 best-available seats:              {seated:>9.0} ops/s  time per op {:.2}x the baseline",
        base / seated
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut t.conn.clone())
        .await
        .unwrap_or_default();
    for k in keys {
        let _: redis::RedisResult<i64> = redis::cmd("DEL")
            .arg(k)
            .query_async(&mut t.conn.clone())
            .await;
    }
}
