//! The pipeline step by step: buy → relay → order → pay / cancel / timeout, on memory backends.

use chrono::Duration as CDuration;
use seckill_core::conformance::engine::{sale, Fixture, Sale, SaleSpec};
use seckill_core::domain::{CancelReason, OrderStatus, PaymentStatus, UserId};
use seckill_core::engine::{BuyOutcome, BuyRejection, BuyRequest, CallbackOutcome};
use seckill_core::invariants::{check, Expect};
use seckill_core::Error;

fn buy(user: i64, qty: u32, key: Option<&str>, s: &Sale) -> BuyRequest {
    BuyRequest {
        holders: Vec::new(),
        user_id: UserId(user),
        activity_id: s.activity,
        quantity: qty,
        request_id: key.map(str::to_string),
        lines: Vec::new(),
    }
}

#[tokio::test]
async fn a_sale_end_to_end() {
    let s = sale(
        &Fixture::memory(),
        SaleSpec {
            total: 3,
            limit: 2,
            ..SaleSpec::default()
        },
    )
    .await;
    let e = &s.engine;
    let mut w = e.order_worker().await.unwrap();

    let BuyOutcome::Reserved { order_id, .. } = e.buy(buy(1, 2, Some("k1"), &s)).await.unwrap()
    else {
        panic!("first buyer must win");
    };
    // The order id is known before the order exists.
    assert!(e.backends().orders.order(order_id).await.unwrap().is_none());
    // Replaying the key returns the same order.
    match e.buy(buy(1, 2, Some("k1"), &s)).await.unwrap() {
        BuyOutcome::Reserved {
            order_id: again,
            replayed: true,
            ..
        } => assert_eq!(again, order_id),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.buy(buy(1, 1, None, &s)).await.unwrap(),
        BuyOutcome::Rejected(BuyRejection::LimitExceeded { held: 2, limit: 2 })
    );
    assert!(matches!(
        e.buy(buy(2, 2, None, &s)).await.unwrap(),
        BuyOutcome::Rejected(BuyRejection::InsufficientStock { available: 1 })
    ));
    let BuyOutcome::Reserved { order_id: o2, .. } = e.buy(buy(2, 1, None, &s)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(
        e.buy(buy(3, 1, None, &s)).await.unwrap(),
        BuyOutcome::Rejected(BuyRejection::SoldOut)
    );
    // The local sold-out flag answers without the backend now.
    assert_eq!(
        e.buy(buy(4, 1, None, &s)).await.unwrap(),
        BuyOutcome::Rejected(BuyRejection::SoldOut)
    );

    s.drain(&mut w).await;
    let order = e.backends().orders.order(order_id).await.unwrap().unwrap();
    assert_eq!(order.status, OrderStatus::PendingPayment);
    assert_eq!(order.amount.0, 2 * 48_000);

    // Pay the first order; a duplicate callback changes nothing.
    let started = e.start_payment(UserId(1), order_id).await.unwrap();
    let cb = s.provider.pay(&started.payment);
    assert_eq!(
        e.handle_callback("mock", &cb).await.unwrap().outcome,
        CallbackOutcome::Paid
    );
    assert_eq!(
        e.handle_callback("mock", &cb).await.unwrap().outcome,
        CallbackOutcome::Paid
    );
    assert_eq!(
        e.backends()
            .orders
            .order(order_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        OrderStatus::Paid
    );
    // Another user cannot see or pay it.
    assert!(matches!(
        e.start_payment(UserId(2), order_id).await,
        Err(Error::NotFound { .. })
    ));

    // The second order times out; its unit comes back and clears the sold-out flag.
    s.clock.advance(CDuration::seconds(601));
    assert_eq!(e.timeout_once().await.unwrap(), 1);
    let o = e.backends().orders.order(o2).await.unwrap().unwrap();
    assert_eq!(
        (o.status, o.cancel_reason),
        (OrderStatus::Cancelled, Some(CancelReason::Timeout))
    );
    assert!(matches!(
        e.buy(buy(5, 1, None, &s)).await.unwrap(),
        BuyOutcome::Reserved { .. }
    ));
    s.drain(&mut w).await;

    s.assert_at_rest(vec![]).await;
}

#[tokio::test]
async fn late_payment_on_a_cancelled_order_is_refunded() {
    let s = sale(&Fixture::memory(), SaleSpec::default()).await;
    let e = &s.engine;
    let mut w = e.order_worker().await.unwrap();
    let BuyOutcome::Reserved { order_id, .. } = e.buy(buy(1, 1, None, &s)).await.unwrap() else {
        panic!()
    };
    s.drain(&mut w).await;
    let started = e.start_payment(UserId(1), order_id).await.unwrap();
    e.cancel_by_user(UserId(1), order_id).await.unwrap();
    let cb = s.provider.pay(&started.payment);
    assert_eq!(
        e.handle_callback("mock", &cb).await.unwrap().outcome,
        CallbackOutcome::Refunded
    );
    assert_eq!(
        e.handle_callback("mock", &cb).await.unwrap().outcome,
        CallbackOutcome::Refunded
    );
    let p = e
        .backends()
        .payments
        .payment(started.payment.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.status, PaymentStatus::Refunded);
    let ledger = s.provider.ledger();
    assert_eq!(ledger.refunded.get(&p.id), ledger.charged.get(&p.id));
}

#[tokio::test]
async fn a_second_payment_for_a_paid_order_is_refunded() {
    let s = sale(&Fixture::memory(), SaleSpec::default()).await;
    let e = &s.engine;
    let mut w = e.order_worker().await.unwrap();
    let BuyOutcome::Reserved { order_id, .. } = e.buy(buy(1, 1, None, &s)).await.unwrap() else {
        panic!()
    };
    s.drain(&mut w).await;
    let p1 = e.start_payment(UserId(1), order_id).await.unwrap().payment;
    // Asking again returns the open payment.
    assert_eq!(
        e.start_payment(UserId(1), order_id)
            .await
            .unwrap()
            .payment
            .id,
        p1.id
    );
    // Two checkouts raced (two devices): a second payment exists for the same order.
    let p2 = seckill_core::domain::Payment {
        id: seckill_core::domain::PaymentId(e.next_id()),
        ..p1.clone()
    };
    e.backends().payments.insert_payment(&p2).await.unwrap();
    assert_eq!(
        e.handle_callback("mock", &s.provider.pay(&p1))
            .await
            .unwrap()
            .outcome,
        CallbackOutcome::Paid
    );
    assert_eq!(
        e.handle_callback("mock", &s.provider.pay(&p2))
            .await
            .unwrap()
            .outcome,
        CallbackOutcome::Refunded
    );
    let v = check(
        e,
        s.activity,
        &Expect {
            quiescent: true,
            ledger: Some(s.provider.ledger()),
            paid: vec![p1.id],
            ..Expect::default()
        },
    )
    .await
    .unwrap();
    assert!(v.is_empty(), "{v:#?}");
}

#[tokio::test]
async fn forged_callbacks_are_refused() {
    let s = sale(&Fixture::memory(), SaleSpec::default()).await;
    let e = &s.engine;
    let mut w = e.order_worker().await.unwrap();
    let BuyOutcome::Reserved { order_id, .. } = e.buy(buy(1, 1, None, &s)).await.unwrap() else {
        panic!()
    };
    s.drain(&mut w).await;
    let p = e.start_payment(UserId(1), order_id).await.unwrap().payment;
    let mut cb = s.provider.pay(&p);
    cb.headers.insert(
        seckill_core::payment::MOCK_SIGNATURE_HEADER.into(),
        "00".repeat(32),
    );
    assert!(matches!(
        e.handle_callback("mock", &cb).await,
        Err(Error::Unauthenticated(_))
    ));
    assert!(matches!(
        e.handle_callback("alipay", &cb).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        e.backends()
            .orders
            .order(order_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        OrderStatus::PendingPayment
    );
}

#[tokio::test]
async fn gate_rejects_outside_the_window_and_bad_input() {
    let s = sale(&Fixture::memory(), SaleSpec::default()).await;
    let e = &s.engine;
    assert!(matches!(
        e.buy(buy(1, 0, None, &s)).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        e.buy(buy(1, 3, None, &s)).await.unwrap(),
        BuyOutcome::Rejected(BuyRejection::LimitExceeded { held: 0, limit: 2 })
    ));
    let unknown = BuyRequest {
        activity_id: seckill_core::domain::ActivityId(1),
        ..buy(1, 1, None, &s)
    };
    assert_eq!(
        e.buy(unknown).await.unwrap(),
        BuyOutcome::Rejected(BuyRejection::UnknownActivity)
    );
    s.clock.advance(CDuration::days(3));
    assert_eq!(
        e.buy(buy(1, 1, None, &s)).await.unwrap(),
        BuyOutcome::Rejected(BuyRejection::Ended)
    );
    s.clock.advance(CDuration::days(-4));
    assert_eq!(
        e.buy(buy(1, 1, None, &s)).await.unwrap(),
        BuyOutcome::Rejected(BuyRejection::NotStarted)
    );
}

#[tokio::test]
async fn rewarming_a_live_activity_never_resells() {
    let s = sale(
        &Fixture::memory(),
        SaleSpec {
            total: 4,
            limit: 4,
            ..SaleSpec::default()
        },
    )
    .await;
    let e = &s.engine;
    let mut w = e.order_worker().await.unwrap();
    e.buy(buy(1, 3, None, &s)).await.unwrap();
    s.drain(&mut w).await;
    e.buy(buy(2, 1, None, &s)).await.unwrap(); // held, not yet an order
    let snap = e.warm_up(s.activity).await.unwrap();
    assert_eq!((snap.available, snap.held, snap.sold), (0, 1, 3));
    assert_eq!(
        e.buy(buy(3, 1, None, &s)).await.unwrap(),
        BuyOutcome::Rejected(BuyRejection::SoldOut)
    );
}

#[tokio::test]
async fn the_reconciler_repairs_a_crash_between_insert_and_confirm() {
    use seckill_core::engine::faults::{CrashOnce, CrashPoint};
    use std::sync::Arc;
    let faults = Arc::new(CrashOnce::new());
    let s = sale(
        &Fixture::memory(),
        SaleSpec {
            faults: Some(faults.clone()),
            ..SaleSpec::default()
        },
    )
    .await;
    let e = &s.engine;
    let mut w = e.order_worker().await.unwrap();
    e.buy(buy(1, 1, None, &s)).await.unwrap();
    e.relay_once().await.unwrap();
    faults.arm(CrashPoint::WorkerAfterInsert);
    assert!(matches!(
        w.run_once(std::time::Duration::ZERO).await,
        Err(Error::Crashed(_))
    ));
    drop(w); // the process died
    let report = e.reconcile(s.activity, false).await.unwrap();
    assert!(!report.consistent, "{report:#?}");
    // The reconciler role's pass reports the finding in seckill_reconcile_findings (read by
    // the dashboard and the stock-invariant alert), repairs it, and the next pass clears it.
    let m = e.metrics();
    let found = e.reconcile_pass().await;
    assert_eq!(found, vec![("unconfirmed_hold", 1)]);
    assert_eq!(m.findings("unconfirmed_hold"), 1);
    assert_eq!(m.findings("inconsistent"), 0, "repaired in the same pass");
    assert!(e.reconcile_pass().await.is_empty());
    assert_eq!(m.findings("unconfirmed_hold"), 0);
    assert!(report
        .issues
        .iter()
        .any(|i| matches!(i, seckill_core::engine::Issue::UnconfirmedHold { .. })));
    let report = e.reconcile(s.activity, true).await.unwrap();
    assert!(report.consistent, "{report:#?}");
    // The redelivered message is absorbed.
    let mut w = e.order_worker().await.unwrap();
    s.drain(&mut w).await;
    s.assert_at_rest(vec![]).await;
}

#[tokio::test]
async fn relay_does_not_ack_what_the_broker_refused() {
    use seckill_core::broker::MockMessageBroker;
    use std::sync::Arc;
    let s = sale(&Fixture::memory(), SaleSpec::default()).await;
    let mut backends = s.engine.backends().clone();
    let mut broker = MockMessageBroker::new();
    broker.expect_publish_batch().returning(|_, _| {
        Err(Error::Unavailable {
            backend: "mock",
            message: "broker down".into(),
        })
    });
    backends.broker = Arc::new(broker);
    let e = seckill_core::engine::Engine::new(backends, s.engine.config().clone());
    e.buy(buy(1, 1, None, &s)).await.unwrap();
    let err = e.relay_once().await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(e.backends().stock.outbox_len().await.unwrap(), 1);
}

/// A broker that is down for a moment is waited out by the relay while it holds the entries:
/// they are published and acked in the same pass (before, they waited for their lease to lapse,
/// 30 s by default, found by the chaos run's broker faults).
#[tokio::test]
async fn the_relay_waits_out_a_short_broker_outage() {
    use seckill_core::broker::MockMessageBroker;
    use std::sync::Arc;
    let s = sale(&Fixture::memory(), SaleSpec::default()).await;
    let mut backends = s.engine.backends().clone();
    let mut broker = MockMessageBroker::new();
    broker.expect_publish_batch().times(2).returning(|_, _| {
        Err(Error::Unavailable {
            backend: "mock",
            message: "broker restarting".into(),
        })
    });
    broker
        .expect_publish_batch()
        .times(1)
        .returning(|_, _| Ok(()));
    backends.broker = Arc::new(broker);
    let mut cfg = s.engine.config().clone();
    cfg.outbox_lease = std::time::Duration::from_secs(2);
    let e = seckill_core::engine::Engine::new(backends, cfg);
    e.buy(buy(1, 1, None, &s)).await.unwrap();
    assert_eq!(e.relay_once().await.unwrap(), 1);
    assert_eq!(e.backends().stock.outbox_len().await.unwrap(), 0);
}

/// A buyer's refund: the order goes paid → refunded and the money goes back once, even when
/// the process dies after the order's change and before the provider was asked (the reconciler
/// finishes it) and when the refund is asked again.
#[tokio::test]
async fn a_refund_returns_the_money_once_even_across_a_crash() {
    use seckill_core::repo::StatusChange;
    let s = sale(&Fixture::memory(), SaleSpec::default()).await;
    let e = &s.engine;
    let mut w = e.order_worker().await.unwrap();
    let mut paid = Vec::new();
    for user in [1, 2] {
        let BuyOutcome::Reserved { order_id, .. } = e.buy(buy(user, 1, None, &s)).await.unwrap()
        else {
            panic!()
        };
        s.drain(&mut w).await;
        let p = e
            .start_payment(UserId(user), order_id)
            .await
            .unwrap()
            .payment;
        e.handle_callback("mock", &s.provider.pay(&p))
            .await
            .unwrap();
        paid.push(p);
    }
    // Buyer 1 asks, twice.
    let r = e.refund_payment(paid[0].id).await.unwrap();
    assert_eq!(r.status, PaymentStatus::Refunded);
    assert_eq!(
        e.refund_payment(paid[0].id).await.unwrap().status,
        PaymentStatus::Refunded
    );
    // Buyer 2's refund dies right after the order changed (the step `refund_payment` does
    // first): the payment still says succeeded, the order refunded.
    let change = StatusChange {
        from: OrderStatus::Paid,
        to: OrderStatus::Refunded,
        at: e.now(),
        payment_id: None,
        cancel_reason: None,
    };
    e.backends()
        .orders
        .change_status(paid[1].order_id, change)
        .await
        .unwrap();
    e.reconcile_payments().await.unwrap();
    let p2 = e
        .backends()
        .payments
        .payment(paid[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        p2.status,
        PaymentStatus::Refunded,
        "the reconciler finished it"
    );
    let ledger = s.provider.ledger();
    assert_eq!(ledger.refunded.len(), 2, "{ledger:?}");
    assert!(ledger.refunded.contains_key(&paid[0].id) && ledger.refunded.contains_key(&paid[1].id));
    // The first order stays refunded; the sale at rest passes the invariant checker.
    let o = e
        .backends()
        .orders
        .order(paid[0].order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.status, OrderStatus::Refunded);
    let v = check(
        e,
        s.activity,
        &Expect {
            quiescent: true,
            ledger: Some(s.provider.ledger()),
            ..Expect::default()
        },
    )
    .await
    .unwrap();
    assert!(v.is_empty(), "{v:#?}");
}

/// The reconciler pages through payments and goes on where the last pass stopped: a lost
/// callback behind any number of older pending payments is still found. (Read from the start
/// each time, a page of two would never reach it.)
#[tokio::test]
async fn the_reconciler_reaches_a_lost_callback_behind_older_pending_payments() {
    let s = sale(&Fixture::memory(), SaleSpec::default()).await;
    let cfg = seckill_core::engine::EngineConfig {
        reconcile_page: 2,
        ..s.engine.config().clone()
    };
    let e = seckill_core::engine::Engine::new(s.engine.backends().clone(), cfg);
    let mut w = s.engine.order_worker().await.unwrap();
    let mut payments = Vec::new();
    for user in 1..=6 {
        let BuyOutcome::Reserved { order_id, .. } = e.buy(buy(user, 1, None, &s)).await.unwrap()
        else {
            panic!("user {user} could not buy")
        };
        s.drain(&mut w).await;
        payments.push(
            e.start_payment(UserId(user), order_id)
                .await
                .unwrap()
                .payment,
        );
    }
    // Five buyers never pay; the last one pays, and the provider's callback is lost.
    let last = payments.last().unwrap().clone();
    s.provider.pay(&last);
    let status = || async {
        e.backends()
            .payments
            .payment(last.id)
            .await
            .unwrap()
            .unwrap()
            .status
    };
    e.reconcile_payments().await.unwrap();
    assert_eq!(
        status().await,
        PaymentStatus::Pending,
        "page 1: the oldest two"
    );
    e.reconcile_payments().await.unwrap();
    e.reconcile_payments().await.unwrap();
    assert_eq!(
        status().await,
        PaymentStatus::Succeeded,
        "page 3 reaches it"
    );
    let order = e
        .backends()
        .orders
        .order(last.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
}

/// An order repository whose first `failures` order transactions fail as a database that is
/// failing over does.
#[derive(Debug)]
struct FlakyOrders {
    inner: std::sync::Arc<dyn seckill_core::repo::OrderRepo>,
    failures: std::sync::atomic::AtomicU32,
    /// The next order transaction loses a race: another copy of the hold writes the order
    /// first, and this one is refused.
    race_lost: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl seckill_core::repo::OrderRepo for FlakyOrders {
    async fn create_from_hold(
        &self,
        message_id: &str,
        order: &seckill_core::domain::Order,
    ) -> seckill_core::Result<seckill_core::repo::CreateOrder> {
        use std::sync::atomic::Ordering;
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::Unavailable {
                backend: "flaky",
                message: "connection reset".into(),
            });
        }
        if self.race_lost.swap(false, Ordering::SeqCst) {
            self.inner
                .create_from_hold(&format!("{message_id}-other-copy"), order)
                .await?;
            return Ok(seckill_core::repo::CreateOrder::Rejected(
                seckill_core::repo::OrderRejection::LimitExceeded,
            ));
        }
        self.inner.create_from_hold(message_id, order).await
    }
    async fn void_unwritten(
        &self,
        id: seckill_core::domain::OrderId,
        user: UserId,
        at: seckill_core::Timestamp,
    ) -> seckill_core::Result<seckill_core::repo::Voided> {
        self.inner.void_unwritten(id, user, at).await
    }
    async fn is_voided(&self, id: seckill_core::domain::OrderId) -> seckill_core::Result<bool> {
        self.inner.is_voided(id).await
    }
    async fn order(
        &self,
        id: seckill_core::domain::OrderId,
    ) -> seckill_core::Result<Option<seckill_core::domain::Order>> {
        self.inner.order(id).await
    }
    async fn order_by_hold(
        &self,
        hold: seckill_core::domain::HoldId,
    ) -> seckill_core::Result<Option<seckill_core::domain::Order>> {
        self.inner.order_by_hold(hold).await
    }
    async fn list_orders(
        &self,
        filter: &seckill_core::repo::OrderFilter,
        page: seckill_core::repo::PageRequest,
    ) -> seckill_core::Result<seckill_core::repo::Page<seckill_core::domain::Order>> {
        self.inner.list_orders(filter, page).await
    }
    async fn change_status(
        &self,
        id: seckill_core::domain::OrderId,
        change: seckill_core::repo::StatusChange,
    ) -> seckill_core::Result<seckill_core::repo::StatusChanged> {
        self.inner.change_status(id, change).await
    }
    async fn expired_pending(
        &self,
        now: seckill_core::Timestamp,
        limit: usize,
    ) -> seckill_core::Result<Vec<seckill_core::domain::Order>> {
        self.inner.expired_pending(now, limit).await
    }
    async fn activity_orders(
        &self,
        activity: seckill_core::domain::ActivityId,
    ) -> seckill_core::Result<Vec<seckill_core::domain::Order>> {
        self.inner.activity_orders(activity).await
    }
}

/// Finding 6 of the chaos run: an order batch that failed during a short outage waited for the
/// broker's redelivery (30 s on Redis Streams) while its buyers' orders answered 404. The worker
/// now retries it in place: the same pass writes the orders, with no nack (the delivery is
/// acked on its first attempt).
#[tokio::test]
async fn an_order_batch_that_meets_a_short_outage_is_retried_in_place() {
    use std::sync::Arc;
    let s = sale(&Fixture::memory(), SaleSpec::default()).await;
    let mut backends = s.engine.backends().clone();
    backends.orders = Arc::new(FlakyOrders {
        inner: backends.orders.clone(),
        failures: 3.into(),
        race_lost: false.into(),
    });
    let e = seckill_core::engine::Engine::new(backends, s.engine.config().clone());
    let BuyOutcome::Reserved { order_id, .. } = e.buy(buy(1, 1, None, &s)).await.unwrap() else {
        panic!("the buy must reserve")
    };
    assert_eq!(e.relay_once().await.unwrap(), 1);
    let mut w = e.order_worker().await.unwrap();
    let acked = w
        .run_once(std::time::Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(
        acked, 1,
        "the batch is written and acked in the pass that fetched it"
    );
    let order = e.backends().orders.order(order_id).await.unwrap();
    assert_eq!(order.map(|o| o.status), Some(OrderStatus::PendingPayment));
}

/// Finding 2 of the chaos run: after the stock backend lost its data, reconcile could not
/// repair the orders without holds and a cancel never gave their units back.
#[tokio::test]
async fn a_stock_backend_that_lost_its_data_is_healed() {
    seckill_core::conformance::engine::stock_loss::a_stock_backend_that_lost_its_data_is_healed(
        &Fixture::memory(),
    )
    .await;
}

/// Finding 1 of the chaos run: an acknowledged buy lost with the stock backend is told lost.
#[tokio::test]
async fn an_acknowledged_buy_lost_with_the_stock_backend_is_told_lost() {
    use seckill_core::conformance::engine::stock_loss;
    stock_loss::an_acknowledged_buy_lost_with_the_stock_backend_is_told_lost(&Fixture::memory())
        .await;
    stock_loss::the_checker_reports_an_acknowledged_buy_nobody_was_told_about(&Fixture::memory())
        .await;
}

/// A hold the database's guard refuses (here a reserver that skips the stock check lets a
/// fourth buyer past three units) is declared so by the order worker: its buyer hears "lost"
/// at once, not at the payment deadline; the units go back.
#[tokio::test]
async fn a_hold_the_database_refuses_is_told_lost_at_once() {
    use seckill_core::engine::OrderLookup;
    let s = sale(
        &Fixture::broken_memory(),
        SaleSpec {
            total: 1,
            limit: 1,
            real_time: true,
            ..SaleSpec::default()
        },
    )
    .await;
    let e = &s.engine;
    let mut ids = Vec::new();
    for user in 1..=2 {
        let BuyOutcome::Reserved { order_id, .. } = e.buy(buy(user, 1, None, &s)).await.unwrap()
        else {
            panic!("the broken reserver lets everyone through")
        };
        ids.push((user, order_id));
    }
    let mut w = e.order_worker().await.unwrap();
    s.drain(&mut w).await;
    let mut answers = Vec::new();
    for (user, id) in &ids {
        answers.push(e.order_lookup(UserId(*user), *id).await.unwrap());
    }
    assert!(matches!(answers[0], OrderLookup::Written(_)), "{answers:?}");
    assert!(
        matches!(answers[1], OrderLookup::Lost { .. }),
        "{answers:?}"
    );
}

/// A copy of a hold that the database refuses while another copy wrote its order (a refusal
/// keeps no inbox entry, so a redelivery or the reconciler can win meanwhile): the written
/// order keeps its hold (found by the final review: the refusal released it, leaving a live
/// order whose units were on sale again).
#[tokio::test]
async fn a_refused_copy_of_a_hold_whose_order_was_written_keeps_the_hold() {
    use std::sync::Arc;
    let s = sale(&Fixture::memory(), SaleSpec::default()).await;
    let mut backends = s.engine.backends().clone();
    backends.orders = Arc::new(FlakyOrders {
        inner: backends.orders.clone(),
        failures: 0.into(),
        race_lost: true.into(),
    });
    let after = s.with_backends(backends);
    let e = &after.engine;
    let BuyOutcome::Reserved { order_id, .. } = e.buy(buy(1, 2, None, &s)).await.unwrap() else {
        panic!("the buy must reserve")
    };
    let mut w = e.order_worker().await.unwrap();
    after.drain(&mut w).await;
    let o = e.backends().orders.order(order_id).await.unwrap().unwrap();
    assert_eq!(o.status, OrderStatus::PendingPayment);
    let snap = after.stock().await;
    assert_eq!(
        (snap.held, snap.sold),
        (0, 2),
        "the order's units stay sold"
    );
    after.assert_at_rest(vec![order_id]).await;
}

/// An activity's stock buckets are fixed at creation (docs/adr/0020): an update that changes
/// them is refused and changes nothing, an out-of-range count is invalid, and the stock keeps
/// its buckets.
#[tokio::test]
async fn stock_buckets_are_fixed_at_creation() {
    use seckill_core::conformance::engine::live_activity_in;
    use seckill_core::domain::Activity;
    use seckill_core::engine::{Backends, Engine, EngineConfig};
    let e = Engine::new(Backends::in_memory_default(b"k"), EngineConfig::default());
    let b = e.backends().clone();
    let a = live_activity_in(b.catalog.as_ref(), e.now(), 9, 3, 3).await;
    e.warm_up(a.id).await.unwrap();
    assert_eq!(b.stock.buckets(a.id).await.unwrap().len(), 3);
    let changed = Activity {
        stock_buckets: 1,
        ..a.clone()
    };
    let r = e.update_activity(&changed).await;
    assert!(
        matches!(r, Err(seckill_core::Error::Conflict { .. })),
        "{r:?}"
    );
    let bad = Activity {
        stock_buckets: 65,
        ..a.clone()
    };
    let r = e.update_activity(&bad).await;
    assert!(
        matches!(r, Err(seckill_core::Error::InvalidArgument(_))),
        "{r:?}"
    );
    assert_eq!(
        b.catalog
            .activity(a.id)
            .await
            .unwrap()
            .unwrap()
            .stock_buckets,
        3
    );
    assert_eq!(b.stock.buckets(a.id).await.unwrap().len(), 3);
}

/// Without a document key (a deployment that has not set one: each process would hash a
/// document differently) a real-name session is refused at creation, with a conflict that says
/// what to set; a plain one is created as ever.
#[tokio::test]
async fn a_real_name_session_needs_a_document_key() {
    use seckill_core::engine::{Backends, Engine, EngineConfig, NewActivity, NewProduct};
    let e = Engine::new(
        Backends::in_memory_default(b"secret"),
        EngineConfig {
            document_key: None,
            ..EngineConfig::default()
        },
    );
    let p = e
        .create_product(
            serde_json::from_value::<NewProduct>(
                serde_json::json!({"name": "ticket", "list_price": 100}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let session = |real_name: bool| {
        serde_json::from_value::<NewActivity>(serde_json::json!({
            "product_id": p.id, "title": "night", "price": 100, "total_stock": 5,
            "per_user_limit": 2, "starts_at": now, "ends_at": now + chrono::Duration::hours(1),
            "real_name": real_name,
        }))
        .unwrap()
    };
    match e.create_activity(session(true)).await {
        Err(seckill_core::Error::Conflict { reason, .. }) => {
            assert!(reason.contains("sale.document_key"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(e.create_activity(session(false)).await.is_ok());
}
