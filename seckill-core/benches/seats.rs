//! Seat allocation in the reserve step (docs/adr/0021), on the in-memory stock backend
//! (criterion): a best-available reserve of 2 seats on a 2,000-seat map half sold, against a
//! reserve of 2 units of an unseated tier of the same session (the baseline, same run). Each
//! iteration reserves and releases, so the map stays as full as it started.
//!
//! `cargo bench -p seckill-core --bench seats` (the target: seated within 3× the baseline)

use chrono::{Duration as CDuration, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use seckill_core::domain::{ActivityId, HoldId, OrderId, TierLine, UserId};
use seckill_core::memory::MemoryStockReserver;
use seckill_core::stock::{ReserveOutcome, ReserveRequest, StockReserver, StockSpec};
use std::sync::atomic::{AtomicI64, Ordering};

const ROWS: u32 = 40;
const PER_ROW: u32 = 50;

fn spec(a: ActivityId) -> StockSpec {
    seckill_core::conformance::stock_seat_model::bench_session(a, ROWS, PER_ROW)
}

fn request(a: ActivityId, user: i64, tier: u32) -> ReserveRequest {
    let now = Utc::now();
    ReserveRequest {
        holders: Vec::new(),
        activity_id: a,
        user_id: UserId(user),
        quantity: 2,
        request_id: format!("r{user}"),
        hold_id: HoldId(user),
        order_id: OrderId(user),
        now,
        expires_at: now + CDuration::minutes(15),
        trace_parent: None,
        rates: Vec::new(),
        lines: vec![TierLine::new(tier, 2)],
    }
}

async fn reserve_release(b: &MemoryStockReserver, a: ActivityId, user: i64, tier: u32) {
    let hold = match b.reserve(&request(a, user, tier)).await.expect("reserve") {
        ReserveOutcome::Reserved { hold, .. } => hold,
        other => panic!("{other:?}"),
    };
    b.release(a, hold.id).await.expect("release");
}

fn seats(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let b = MemoryStockReserver::default();
    let a = ActivityId(1);
    let next = AtomicI64::new(1);
    rt.block_on(async {
        b.load(&spec(a)).await.expect("load");
        // Half the map sold, two seats at a time, the best first.
        for _ in 0..ROWS * PER_ROW / 4 {
            let u = next.fetch_add(1, Ordering::Relaxed);
            b.reserve(&request(a, u, 1)).await.expect("fill");
        }
    });
    let mut g = c.benchmark_group("seats");
    g.bench_function("reserve 2 of an unseated tier (baseline)", |bench| {
        bench.to_async(&rt).iter(|| async {
            reserve_release(&b, a, next.fetch_add(1, Ordering::Relaxed), 2).await
        })
    });
    g.bench_function(
        "reserve 2 best-available seats, 2,000-seat map half sold",
        |bench| {
            bench.to_async(&rt).iter(|| async {
                reserve_release(&b, a, next.fetch_add(1, Ordering::Relaxed), 1).await
            })
        },
    );
    g.finish();
}

criterion_group!(benches, seats);
criterion_main!(benches);
