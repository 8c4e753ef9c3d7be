//! The engine's buy path on the in-memory backends (criterion): a reservation that succeeds,
//! and a buy after the last unit (the sold-out path), against reading the activity from the
//! engine's cache (the cheapest engine call, as the baseline).
//!
//! `cargo bench -p seckill-core --bench buy`

use criterion::{criterion_group, criterion_main, Criterion};
use seckill_core::conformance::engine::live_activity;
use seckill_core::domain::{ActivityId, UserId};
use seckill_core::engine::{Backends, BuyOutcome, BuyRequest, Engine, EngineConfig};
use std::sync::atomic::{AtomicI64, Ordering};

fn engine(rt: &tokio::runtime::Runtime, total: u32, limit: u32) -> (Engine, ActivityId) {
    rt.block_on(async {
        let engine = Engine::new(
            Backends::in_memory_default(b"bench"),
            EngineConfig::default(),
        );
        let a = live_activity(
            engine.backends().catalog.as_ref(),
            engine.now(),
            total,
            limit,
        )
        .await;
        engine.warm_up(a.id).await.expect("warm up");
        (engine, a.id)
    })
}

/// One buy of one unit by a user never seen before.
async fn one(e: &Engine, act: ActivityId, next_user: &AtomicI64) -> BuyOutcome {
    e.buy(BuyRequest {
        holders: Vec::new(),
        user_id: UserId(next_user.fetch_add(1, Ordering::Relaxed)),
        activity_id: act,
        quantity: 1,
        request_id: None,
        lines: Vec::new(),
    })
    .await
    .expect("buy")
}

fn buy(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let next_user = AtomicI64::new(1);
    let mut g = c.benchmark_group("engine");

    let (e, act) = engine(&rt, 10_000_000, 1);
    g.bench_function("activity_cached (baseline)", |b| {
        b.to_async(&rt)
            .iter(|| async { e.activity_cached(act).await.expect("activity") })
    });
    g.bench_function("buy: reserved", |b| {
        b.to_async(&rt).iter(|| async {
            let out = one(&e, act, &next_user).await;
            assert!(matches!(out, BuyOutcome::Reserved { .. }), "{out:?}");
        })
    });

    let (e, act) = engine(&rt, 1, 1);
    rt.block_on(one(&e, act, &next_user));
    g.bench_function("buy: sold out", |b| {
        b.to_async(&rt).iter(|| async {
            let out = one(&e, act, &next_user).await;
            assert!(matches!(out, BuyOutcome::Rejected(_)), "{out:?}");
        })
    });
    g.finish();
}

criterion_group!(benches, buy);
criterion_main!(benches);
