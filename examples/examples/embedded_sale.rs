//! A whole flash sale embedded in one process on the in-memory backends:
//! 2,000 buyers race for 100 units, the pipeline turns holds into orders, half the buyers pay,
//! the rest time out, and the guarantees are checked at the end.
//!
//! Run it with `cargo run -p seckill-examples --example embedded_sale`.

use chrono::Duration as CDuration;
use seckill_core::domain::{Money, UserId};
use seckill_core::engine::{
    Backends, BuyOutcome, BuyRequest, Engine, EngineConfig, NewActivity, NewProduct, Pace, Role,
    Runner,
};
use seckill_core::invariants::{check, Expect};
use seckill_core::memory::MockProvider;
use seckill_core::{Clock, ManualClock};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> seckill_core::Result<()> {
    // A manual clock lets the example jump past payment deadlines instead of waiting.
    let clock = ManualClock::new(chrono::Utc::now());
    let provider = Arc::new(MockProvider::new(b"example-secret".to_vec()));
    let backends = Backends::in_memory(Arc::new(clock.clone()), provider.clone());
    let engine = Engine::new(backends, EngineConfig::default());

    // Through the engine, which checks each against the domain's rules (as the server does).
    let now = clock.now();
    let product = engine
        .create_product(NewProduct {
            name: "Stadium concert, block A".into(),
            description: String::new(),
            list_price: Money(98_000),
        })
        .await?;
    let activity = engine
        .create_activity(NewActivity {
            real_name: false,
            product_id: product.id,
            title: "100 tickets at half price".into(),
            price: Money(49_000),
            total_stock: 100,
            per_user_limit: 2,
            starts_at: now,
            ends_at: now + CDuration::hours(1),
            stock_buckets: 1,
            event_id: None,
            tiers: Vec::new(),
            quotas: Vec::new(),
            seats: Vec::new(),
        })
        .await?;
    engine.warm_up(activity.id).await?;

    // Relay and order workers run in the background, as the server runs them.
    let runner = Runner::start(&engine, &[Role::Relay, Role::OrderWorker], Pace::default());
    let mut buyers = Vec::new();
    for u in 0..2_000 {
        let e = engine.clone();
        buyers.push(tokio::spawn(async move {
            e.buy(BuyRequest {
                holders: Vec::new(),
                user_id: UserId(u),
                activity_id: activity.id,
                quantity: 1,
                request_id: None,
                lines: Vec::new(),
            })
            .await
        }));
    }
    let mut reserved = Vec::new();
    for b in buyers {
        if let BuyOutcome::Reserved { order_id, .. } = b.await.expect("buyer task")? {
            reserved.push(order_id);
        }
    }
    println!("{} of 2000 buyers reserved a ticket", reserved.len());
    while engine.backends().stock.outbox_len().await? > 0
        || engine
            .backends()
            .broker
            .lag(&engine.config().holds_topic, &engine.config().order_group)
            .await?
            > 0
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    runner.stop().await;

    // Every other buyer pays through the mock provider's signed callback.
    let mut paid = Vec::new();
    for order_id in reserved.iter().step_by(2) {
        let order = engine
            .backends()
            .orders
            .order(*order_id)
            .await?
            .expect("order written");
        let started = engine.start_payment(order.user_id, order.id).await?;
        let callback = provider.pay(&started.payment);
        engine.handle_callback("mock", &callback).await?;
        paid.push(started.payment.id);
    }
    // The others miss their deadline; the timeout worker cancels them and returns the stock.
    clock.advance(CDuration::minutes(16));
    while engine.timeout_once().await? > 0 {}

    let snapshot = engine
        .backends()
        .stock
        .snapshot(activity.id)
        .await?
        .expect("warmed up");
    println!(
        "paid {}, stock now: total {} = available {} + held {} + sold {}",
        paid.len(),
        snapshot.total,
        snapshot.available,
        snapshot.held,
        snapshot.sold
    );
    let violations = check(
        &engine,
        activity.id,
        &Expect {
            reserved,
            paid,
            ledger: Some(provider.ledger()),
            quiescent: true,
            told_lost_allowed: false,
        },
    )
    .await?;
    assert!(violations.is_empty(), "{violations:#?}");
    println!("all guarantees hold");
    Ok(())
}
