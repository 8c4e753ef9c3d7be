//! A stock backend that loses its data mid-sale (a Redis restarted empty, or rewound to an
//! older snapshot): the engine notices on its own ([`Engine::heal_stock`]), re-warms from the
//! database's orders, and the orders written before the loss keep their units: cancelling one
//! returns them, and nothing is sold twice.
//!
//! The loss is played by swapping in a fresh stock backend of the fixture's kind (a new
//! namespace of the same service), which is what a Redis restarted without persistence is.

use super::{sale, Fixture, SaleSpec};
use crate::domain::{OrderId, UserId};
use crate::engine::{BuyOutcome, BuyRequest, Engine};
use crate::ManualClock;
use std::sync::Arc;

fn buy(user: i64, qty: u32, activity: crate::domain::ActivityId) -> BuyRequest {
    BuyRequest {
        user_id: UserId(user),
        activity_id: activity,
        quantity: qty,
        request_id: None,
    }
}

async fn reserve(e: &Engine, req: BuyRequest) -> OrderId {
    match e.buy(req).await.expect("buy") {
        BuyOutcome::Reserved { order_id, .. } => order_id,
        other => panic!("expected a reservation, got {other:?}"),
    }
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
    let empty = (fixture.make)(
        Arc::new(ManualClock::fixed()) as Arc<dyn crate::Clock>,
        s.provider.clone(),
    )
    .await;
    let mut backends = s.engine.backends().clone();
    backends.stock = empty.stock;
    let e = Engine::new(backends, s.engine.config().clone());
    let lost = super::Sale {
        engine: e.clone(),
        clock: s.clock.clone(),
        provider: s.provider.clone(),
        activity: s.activity,
    };
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
