//! A stock backend that loses its data mid-sale (a Redis restarted empty, or rewound to an
//! older snapshot): the engine notices on its own ([`Engine::heal_stock`]), re-warms from the
//! database's orders, and the orders written before the loss keep their units: cancelling one
//! returns them, and nothing is sold twice.
//!
//! The loss is played by swapping in a fresh stock backend of the fixture's kind (a new
//! namespace of the same service), which is what a Redis restarted without persistence is.

use super::{sale, Fixture, Sale, SaleSpec};
use crate::domain::{OrderId, UserId};
use crate::engine::{BuyOutcome, BuyRequest, Engine, OrderLookup};
use crate::ManualClock;
use std::sync::Arc;

fn buy(user: i64, qty: u32, activity: crate::domain::ActivityId) -> BuyRequest {
    BuyRequest {
        holders: Vec::new(),
        user_id: UserId(user),
        activity_id: activity,
        quantity: qty,
        request_id: None,
        lines: Vec::new(),
    }
}

async fn reserve(e: &Engine, req: BuyRequest) -> OrderId {
    match e.buy(req).await.expect("buy") {
        BuyOutcome::Reserved { order_id, .. } => order_id,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

/// The sale `s` with its stock backend swapped for an empty one of the fixture's kind (a Redis
/// restarted without its data); every other backend is kept.
async fn lose_the_stock_backend(fixture: &Fixture, s: &Sale) -> Sale {
    let empty = (fixture.make)(
        Arc::new(ManualClock::fixed()) as Arc<dyn crate::Clock>,
        s.provider.clone(),
    )
    .await;
    let mut backends = s.engine.backends().clone();
    backends.stock = empty.stock;
    s.with_backends(backends)
}

/// Runs the case on `fixture`; panics with the violations if a guarantee breaks.
pub async fn a_stock_backend_that_lost_its_data_is_healed(fixture: &Fixture) {
    let s = sale(
        fixture,
        SaleSpec {
            total: 4,
            limit: 2,
            ..SaleSpec::default()
        },
    )
    .await;
    let mut w = s.engine.order_worker().await.expect("worker");
    let first = reserve(&s.engine, buy(1, 2, s.activity)).await;
    let second = reserve(&s.engine, buy(2, 1, s.activity)).await;
    s.drain(&mut w).await;

    // The stock backend comes back empty; every other backend kept its data.
    let lost = lose_the_stock_backend(fixture, &s).await;
    let e = lost.engine.clone();
    assert!(
        matches!(
            e.buy(buy(3, 1, s.activity)).await.expect("buy"),
            BuyOutcome::Rejected(crate::engine::BuyRejection::NotWarmedUp)
        ),
        "an empty stock backend refuses buys until it is re-warmed"
    );
    assert!(
        e.heal_stock(s.activity).await.expect("heal"),
        "the loss is noticed"
    );
    assert!(
        !e.heal_stock(s.activity).await.expect("heal"),
        "and healed once"
    );
    let snap = lost.stock().await;
    assert_eq!(
        (snap.available, snap.held, snap.sold),
        (1, 0, 3),
        "the orders written before the loss keep their units"
    );
    // The first buyer cancels: the units come back (before, the backend had no hold to release).
    e.cancel_by_user(UserId(1), first).await.expect("cancel");
    let snap = lost.stock().await;
    assert_eq!((snap.available, snap.sold), (3, 1));
    // The limit still counts the second buyer's order from before the loss.
    assert!(matches!(
        e.buy(buy(2, 2, s.activity)).await.expect("buy"),
        BuyOutcome::Rejected(crate::engine::BuyRejection::LimitExceeded { held: 1, limit: 2 })
    ));
    let third = reserve(&e, buy(3, 2, s.activity)).await;
    let mut w = e.order_worker().await.expect("worker");
    lost.drain(&mut w).await;
    let report = e.reconcile(s.activity, false).await.expect("reconcile");
    assert!(report.consistent, "{report:#?}");
    lost.assert_at_rest(vec![first, second, third]).await;
}

/// Finding 1 of the chaos run: a buy answered 202 whose hold (and outbox entry) vanished with
/// the stock backend before its order was written. Its buyer hears "pending" until the hold's
/// payment deadline, then "lost" for good; a late delivery of the hold is refused (no order,
/// nothing charged), and the checker accepts the absence only because the buyer was told.
pub async fn an_acknowledged_buy_lost_with_the_stock_backend_is_told_lost(fixture: &Fixture) {
    let s = sale(
        fixture,
        SaleSpec {
            total: 4,
            limit: 2,
            real_time: true,
            ..SaleSpec::default()
        },
    )
    .await;
    let mut w = s.engine.order_worker().await.expect("worker");
    let kept = reserve(&s.engine, buy(1, 1, s.activity)).await;
    s.drain(&mut w).await;
    let BuyOutcome::Reserved {
        hold_id,
        order_id: lost_id,
        expires_at,
        ..
    } = s.engine.buy(buy(2, 2, s.activity)).await.expect("buy")
    else {
        panic!("the second buy must reserve")
    };
    // The stock backend loses everything before the relay took the hold.
    let after = lose_the_stock_backend(fixture, &s).await;
    let e = after.engine.clone();
    assert!(e.heal_stock(s.activity).await.expect("heal"));
    let lookup = |user: i64, id: OrderId| {
        let e = e.clone();
        async move { e.order_lookup(UserId(user), id).await.expect("lookup") }
    };
    assert_eq!(lookup(2, lost_id).await, OrderLookup::Pending);
    assert!(matches!(lookup(1, kept).await, OrderLookup::Written(_)));
    assert_eq!(
        lookup(1, lost_id).await,
        OrderLookup::Pending,
        "another buyer learns nothing"
    );
    // Past the hold's deadline the buyer is told it is lost.
    // The id's deadline counts from when it was minted (real time, which has moved on since
    // the sale's clock was set).
    let cfg = e.config();
    let deadline = crate::domain::Snowflake::time_of(lost_id.0).expect("a minted id")
        + chrono::Duration::from_std(cfg.payment_timeout).unwrap();
    s.clock
        .advance((deadline - e.now()).max(chrono::Duration::zero()) + chrono::Duration::seconds(1));
    let told = lookup(2, lost_id).await;
    assert!(matches!(told, OrderLookup::Lost { .. }), "{told:?}");
    assert!(matches!(lookup(2, lost_id).await, OrderLookup::Lost { .. }));
    assert!(matches!(lookup(1, kept).await, OrderLookup::Written(_)));
    // A late delivery of the lost hold (a broker that kept it) writes nothing.
    let hold = crate::domain::Hold {
        holders: Vec::new(),
        id: hold_id,
        order_id: lost_id,
        activity_id: s.activity,
        user_id: UserId(2),
        quantity: 2,
        created_at: expires_at - chrono::Duration::from_std(cfg.payment_timeout).unwrap(),
        expires_at,
        lines: Vec::new(),
    };
    let msg = crate::domain::HoldEvent { hold: hold.clone() }.message_id();
    assert_eq!(
        e.process_hold(&hold, &msg).await.expect("late delivery"),
        None
    );
    assert!(e.backends().orders.order(lost_id).await.unwrap().is_none());
    let mut w = e.order_worker().await.expect("worker");
    after.drain(&mut w).await;
    // Told lost: the checker accepts its absence where a loss is expected, and reports it
    // where none is.
    let expect = |allowed| crate::invariants::Expect {
        reserved: vec![kept, lost_id],
        ledger: Some(after.provider.ledger()),
        quiescent: true,
        told_lost_allowed: allowed,
        ..Default::default()
    };
    let v = crate::invariants::check(&e, s.activity, &expect(true))
        .await
        .unwrap();
    assert!(v.is_empty(), "{v:#?}");
    let v = crate::invariants::check(&e, s.activity, &expect(false))
        .await
        .unwrap();
    assert_eq!(
        v,
        vec![format!(
            "reserved order {lost_id} was lost (its buyer was told)"
        )]
    );
    let snap = after.stock().await;
    assert_eq!((snap.available, snap.sold), (3, 1));
}

/// The checker's side of the case above: an acknowledged order that is neither written nor
/// declared lost is reported.
pub async fn the_checker_reports_an_acknowledged_buy_nobody_was_told_about(fixture: &Fixture) {
    let s = sale(fixture, SaleSpec::default()).await;
    let never = OrderId(crate::domain::ids::Snowflake::new(1).next_id());
    let v = s.violations_at_rest(vec![never]).await;
    assert_eq!(v, vec![format!("reserved order {never} was lost")]);
}
