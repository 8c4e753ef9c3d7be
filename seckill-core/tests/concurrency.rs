//! 10,000 buyers race for 1,000 units on the multi-threaded runtime, with the relay and two
//! order workers running concurrently; then the pipeline drains and the guarantees are checked.
//! The negative control runs the same race against a reserver that skips the stock check and
//! asserts the checker reports the oversell.

mod common;

use common::{sale, Sale, SaleSpec};
use seckill_core::domain::{OrderStatus, UserId};
use seckill_core::engine::{BuyOutcome, BuyRequest};
use seckill_core::repo::OrderFilter;
use std::collections::HashMap;
use std::time::Duration;

const BUYERS: i64 = 10_000;
const UNITS: u32 = 1_000;
const LIMIT: u32 = 2;

/// Fires the race; returns the sale and the order ids the buyers were told about.
async fn race(broken: bool) -> (Sale, Vec<seckill_core::domain::OrderId>) {
    let s = sale(SaleSpec {
        total: UNITS,
        limit: LIMIT,
        broken_reserver: broken,
        batch_size: 128,
        faults: None,
    })
    .await;
    // The pipeline runs while the buyers race.
    let runner = seckill_core::engine::Runner::start(
        &s.engine,
        &[
            seckill_core::engine::Role::Relay,
            seckill_core::engine::Role::OrderWorker,
            seckill_core::engine::Role::OrderWorker,
        ],
        seckill_core::engine::runner_pace_for_tests(),
    );
    let mut tasks = Vec::with_capacity(BUYERS as usize);
    for i in 0..BUYERS {
        let e = s.engine.clone();
        let activity = s.activity;
        tasks.push(tokio::spawn(async move {
            // 2,500 distinct users, each trying four times with quantities 1 or 2.
            let user = UserId(i % 2_500);
            e.buy(BuyRequest {
                user_id: user,
                activity_id: activity,
                quantity: 1 + (i as u32 / 2_500) % 2,
                request_id: None,
            })
            .await
            .unwrap()
        }));
    }
    let mut reserved = Vec::new();
    for t in tasks {
        if let BuyOutcome::Reserved { order_id, .. } = t.await.unwrap() {
            reserved.push(order_id);
        }
    }
    // Let the running pipeline finish, then stop it and drain what is left.
    tokio::time::sleep(Duration::from_millis(50)).await;
    runner.stop().await;
    let mut w = s.engine.order_worker().await.unwrap();
    s.drain(&mut w).await;
    (s, reserved)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_buyers_never_oversell() {
    let (s, reserved) = race(false).await;
    let e = &s.engine;
    let orders = e
        .backends()
        .orders
        .activity_orders(s.activity)
        .await
        .unwrap();
    let sold: u32 = orders.iter().map(|o| o.quantity).sum();
    assert_eq!(sold, UNITS, "exactly the stock is sold");
    assert_eq!(orders.len(), reserved.len(), "every hold became an order");
    assert!(orders
        .iter()
        .all(|o| o.status == OrderStatus::PendingPayment));
    let mut per_user: HashMap<UserId, u32> = HashMap::new();
    for o in &orders {
        *per_user.entry(o.user_id).or_default() += o.quantity;
    }
    assert!(
        per_user.values().all(|n| *n <= LIMIT),
        "nobody above the limit"
    );
    let snap = e
        .backends()
        .stock
        .snapshot(s.activity)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((snap.available, snap.held, snap.sold), (0, 0, UNITS));
    assert!(snap.balanced());
    let page = e
        .backends()
        .orders
        .list_orders(
            &OrderFilter::default(),
            seckill_core::repo::PageRequest::DEFAULT,
        )
        .await
        .unwrap();
    assert_eq!(page.total, orders.len() as u64);
    s.assert_at_rest(reserved).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checker_catches_an_oversell_in_the_race() {
    let (s, reserved) = race(true).await;
    // The broken reserver told far more buyers they had a unit than there are units.
    assert!(reserved.len() > UNITS as usize);
    let told = reserved.len();
    let v = s.violations_at_rest(reserved).await;
    // The database guard still held (never more than the stock sold) and released the extra
    // holds, so the oversell shows up as buyers' reserved orders that never came to be.
    let a = s
        .engine
        .backends()
        .catalog
        .activity(s.activity)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.sold, a.total_stock);
    let orders = s
        .engine
        .backends()
        .orders
        .activity_orders(s.activity)
        .await
        .unwrap()
        .len();
    let lost = v.iter().filter(|m| m.contains("was lost")).count();
    assert!(lost > 0, "the broken reserver must be caught: {v:#?}");
    assert_eq!(lost, told - orders);
}
