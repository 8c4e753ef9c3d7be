//! The concurrency race: many buyer tasks against one activity on the multi-threaded runtime,
//! with the relay and two order workers running meanwhile.

use super::{sale, Fixture, Sale, SaleSpec};
use crate::domain::{OrderId, OrderStatus, UserId};
use crate::engine::{BuyOutcome, BuyRequest};
use crate::repo::OrderFilter;
use std::collections::HashMap;
use std::time::Duration;

/// Buyer tasks.
pub const BUYERS: i64 = 10_000;
/// Units for sale.
pub const UNITS: u32 = 1_000;
/// Per-user limit.
pub const LIMIT: u32 = 2;

/// Fires the race; returns the sale and the order ids the buyers were told about.
pub async fn race(fixture: &Fixture, buckets: u32) -> (Sale, Vec<OrderId>) {
    let s = sale(
        fixture,
        SaleSpec {
            total: UNITS,
            limit: LIMIT,
            batch_size: 128,
            faults: None,
            real_time: false,
            buckets,
        },
    )
    .await;
    // 2,500 distinct users, each trying four times with quantities 1 or 2. With buckets, all
    // of them belong to the first half of the buckets: the other half must lend every unit.
    let k = s
        .engine
        .backends()
        .stock
        .buckets(s.activity)
        .await
        .unwrap()
        .len() as u32;
    let users: Vec<UserId> = (0..)
        .map(UserId)
        .filter(|u| k <= 1 || crate::stock::bucket_of(*u, k) < k.div_ceil(2))
        .take(2_500)
        .collect();
    let activity = s.activity;
    let reserved = buyers(&s, BUYERS, |i| BuyRequest {
        holders: Vec::new(),
        user_id: users[(i % 2_500) as usize],
        activity_id: activity,
        quantity: 1 + (i as u32 / 2_500) % 2,
        request_id: None,
        lines: Vec::new(),
    })
    .await;
    (s, reserved)
}

/// Fires `n` buyer tasks, buyer `i` sending `buy(i)`, while the relay and two order workers
/// run; then stops them and drains what is left. The order ids the buyers were told about.
pub async fn buyers(s: &Sale, n: i64, buy: impl Fn(i64) -> BuyRequest) -> Vec<OrderId> {
    // The pipeline runs while the buyers race.
    let runner = crate::engine::Runner::start(
        &s.engine,
        &[
            crate::engine::Role::Relay,
            crate::engine::Role::OrderWorker,
            crate::engine::Role::OrderWorker,
        ],
        crate::engine::runner_pace_for_tests(),
    );
    let mut tasks = Vec::with_capacity(n as usize);
    for i in 0..n {
        let e = s.engine.clone();
        let req = buy(i);
        tasks.push(tokio::spawn(async move { e.buy(req).await.unwrap() }));
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
    reserved
}

/// 10,000 buyers race for 1,000 units (limit 2) with relay and two order workers running:
/// exactly the stock is sold, every hold became an order, nobody is above the limit, and every
/// guarantee holds at rest. Run it on a multi-threaded runtime.
pub async fn ten_thousand_buyers(fixture: &Fixture) {
    ten_thousand_buyers_in(fixture, 1).await
}

/// [`ten_thousand_buyers`] with the stock in `buckets` stock buckets (cut to what the backend
/// keeps) and every buyer in the first half of them: exactly the stock is sold still, so the
/// other half lent all their units (no undersell).
pub async fn ten_thousand_buyers_in(fixture: &Fixture, buckets: u32) {
    let (s, reserved) = race(fixture, buckets).await;
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
    let snap = s.stock().await;
    assert_eq!((snap.available, snap.held, snap.sold), (0, 0, UNITS));
    assert!(snap.balanced());
    let page = e
        .backends()
        .orders
        .list_orders(&OrderFilter::default(), crate::repo::PageRequest::DEFAULT)
        .await
        .unwrap();
    assert_eq!(page.total, orders.len() as u64);
    s.assert_at_rest(reserved).await;
    drop(s);
    fixture.tear_down().await;
}

/// The negative control of [`ten_thousand_buyers`]: on a broken fixture the checker must
/// report buyers whose reserved units the database then refused.
pub async fn ten_thousand_buyers_catch_a_broken_reserver(fixture: &Fixture) {
    let (s, reserved) = race(fixture, 1).await;
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
