//! The property-based state machine over the whole pipeline, with crash injection. See the
//! module docs of [`super`] and docs/guarantees.md.

use super::{sale, Fixture, Sale, SaleSpec};
use crate::broker::Message;
use crate::domain::TierLine;
use crate::domain::{HoldEvent, OrderId, Payment, PaymentId, UserId};
use crate::engine::faults::{CrashOnce, CrashPoint};
use crate::engine::{
    BuyOutcome, BuyRejection, BuyRequest, CallbackOutcome, OrderWorker, Settlement,
};
use crate::invariants::{check, Expect};
use crate::payment::{Callback, Notification, MOCK_SIGNATURE_HEADER};
use crate::Error;
use chrono::Duration as CDuration;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// One step of the state machine.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Op {
    Buy {
        user: i64,
        qty: u32,
        key: Option<u8>,
    },
    Cancel {
        pick: usize,
        wrong_user: bool,
    },
    StartPay {
        pick: usize,
    },
    Pay {
        pick: usize,
        duplicate: bool,
    },
    /// The buyer pays but the provider's callback is lost.
    PayCallbackLost {
        pick: usize,
    },
    ForgedCallback {
        pick: usize,
    },
    RetryCallbacks,
    Advance {
        secs: i64,
    },
    Relay,
    Work,
    /// Relay then work: the pipeline moving on.
    Pump,
    Timeout,
    Sweep,
    RestartWorker,
    DuplicateMessage {
        pick: usize,
    },
    Reconcile,
    ReconcilePayments,
    Crash(CrashPoint),
}

/// The strategy of one step.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0i64..6, 1u32..=3, proptest::option::of(0u8..3))
            .prop_map(|(user, qty, key)| Op::Buy { user, qty, key }),
        2 => (any::<usize>(), proptest::bool::weighted(0.2))
            .prop_map(|(pick, wrong_user)| Op::Cancel { pick, wrong_user }),
        2 => any::<usize>().prop_map(|pick| Op::StartPay { pick }),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(pick, duplicate)| Op::Pay { pick, duplicate }),
        1 => any::<usize>().prop_map(|pick| Op::ForgedCallback { pick }),
        1 => any::<usize>().prop_map(|pick| Op::PayCallbackLost { pick }),
        1 => Just(Op::RetryCallbacks),
        2 => prop_oneof![Just(5i64), Just(45), Just(300), Just(700)].prop_map(|secs| Op::Advance { secs }),
        2 => Just(Op::Relay),
        2 => Just(Op::Work),
        5 => Just(Op::Pump),
        2 => Just(Op::Timeout),
        1 => Just(Op::Sweep),
        1 => Just(Op::RestartWorker),
        1 => any::<usize>().prop_map(|pick| Op::DuplicateMessage { pick }),
        1 => Just(Op::Reconcile),
        1 => Just(Op::ReconcilePayments),
        3 => proptest::sample::select(CrashPoint::ALL.to_vec()).prop_map(Op::Crash),
    ]
}

/// What the buyers and the provider were told.
struct Model {
    reserved: Vec<(OrderId, UserId)>,
    keys: HashMap<(i64, u8), (OrderId, u32)>,
    payments: Vec<Payment>,
    unanswered: Vec<Callback>,
    paid: Vec<PaymentId>,
}

fn pick<T: Clone>(v: &[T], i: usize) -> Option<T> {
    (!v.is_empty()).then(|| v[i % v.len()].clone())
}

fn fail(msg: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(msg.to_string())
}

/// A crash is fine (the process died, the step will be retried); anything else fails the case.
fn crashed_or<T>(
    r: Result<T, Error>,
    ok: impl FnOnce(T) -> Result<(), TestCaseError>,
) -> Result<bool, TestCaseError> {
    match r {
        Ok(v) => ok(v).map(|_| false),
        Err(Error::Crashed(_)) => Ok(true),
        Err(e) => Err(fail(format!("unexpected error: {e}"))),
    }
}

async fn callback(s: &Sale, m: &mut Model, cb: Callback) -> Result<(), TestCaseError> {
    match s.engine.handle_callback("mock", &cb).await {
        Ok(Settlement {
            payment,
            outcome: CallbackOutcome::Paid,
            ..
        }) => m.paid.push(payment.id),
        Ok(_) => {}
        // The provider did not get a 2xx: it will call again.
        Err(Error::Crashed(_)) => m.unanswered.push(cb),
        Err(e) => return Err(fail(format!("callback failed: {e}"))),
    }
    Ok(())
}

/// The concert session of a case (docs/adr/0021): real-name, a VIP tier seated in row A-1 (4
/// seats) and a standing tier of 4, a quota of 6 over both and a capacity of 7, limit 3.
async fn concert_session(s: &Sale) -> crate::domain::ActivityId {
    use crate::domain::{Activity, ActivityId, Quota, SeatBlock, Tier};
    let catalog = &s.engine.backends().catalog;
    let a = catalog
        .activity(s.activity)
        .await
        .expect("read the sale's activity")
        .expect("the sale's activity");
    let tier = |id: u32, name: &str, price: i64| Tier {
        id,
        name: name.into(),
        price: crate::domain::Money(price),
        stock: 4,
    };
    let concert = Activity {
        id: ActivityId(super::super::unique_id()),
        title: "concert session".into(),
        price: crate::domain::Money(38_000),
        total_stock: 7,
        per_user_limit: 3,
        stock_buckets: 1,
        tiers: vec![tier(1, "VIP", 128_000), tier(2, "380", 38_000)],
        quotas: vec![Quota {
            id: 1,
            name: "student".into(),
            cap: 6,
            tiers: vec![1, 2],
        }],
        seats: vec![SeatBlock {
            section: "A".into(),
            row: "1".into(),
            tier: 1,
            from: 1,
            to: 4,
        }],
        real_name: true,
        ..a
    };
    concert.validate().expect("a valid concert session");
    catalog.insert_activity(&concert).await.expect("insert");
    s.engine.warm_up(concert.id).await.expect("warm up");
    concert.id
}

/// A concert buy of `qty` units by `user`: its lines (VIP best available and standing) and a
/// holder per unit from a pool of 5 documents (so buyers clash on documents), all a function
/// of the buyer and the quantity, so an idempotency key's retry asks the same.
fn concert_buy(user: i64, qty: u32) -> (Vec<TierLine>, Vec<crate::domain::HolderInput>) {
    let lines = match qty {
        1 => vec![TierLine::new(1 + (user % 2) as u32, 1)],
        n => vec![TierLine::new(1, 1), TierLine::new(2, n - 1)],
    };
    let holders = (0..i64::from(qty))
        .map(|k| crate::domain::HolderInput {
            name: format!("Holder {}", (user * 3 + k) % 5),
            id_type: crate::domain::IdType::Passport,
            id_number: format!("E{:07}", (user * 3 + k) % 5),
        })
        .collect();
    (lines, holders)
}

async fn step(
    s: &Sale,
    concert: bool,
    faults: &CrashOnce,
    w: &mut Option<OrderWorker>,
    m: &mut Model,
    op: &Op,
) -> Result<(), TestCaseError> {
    let e = &s.engine;
    match op {
        Op::Buy { user, qty, key } => {
            let earlier = key.and_then(|k| m.keys.get(&(*user, k)).copied());
            let (lines, holders) = if concert {
                concert_buy(*user, *qty)
            } else {
                (Vec::new(), Vec::new())
            };
            let r = e
                .buy(BuyRequest {
                    holders,
                    user_id: UserId(*user),
                    activity_id: s.activity,
                    quantity: *qty,
                    request_id: key.map(|k| format!("key-{k}")),
                    lines,
                })
                .await;
            let r = match (r, earlier) {
                // The same key with another quantity is refused, never reserved again.
                (Err(Error::Conflict { .. }), Some((_, q))) if q != *qty => return Ok(()),
                (r, _) => r.map_err(fail)?,
            };
            if let BuyOutcome::Reserved {
                order_id, replayed, ..
            } = r
            {
                if let Some((prev, q)) = earlier {
                    prop_assert!(
                        q == *qty && replayed && prev == order_id,
                        "a key's replay must return its first order"
                    );
                }
                if let Some(k) = key {
                    m.keys.insert((*user, *k), (order_id, *qty));
                }
                if !replayed {
                    m.reserved.push((order_id, UserId(*user)));
                }
            } else {
                prop_assert!(earlier.is_none(), "a key that reserved must replay: {r:?}");
                if let BuyOutcome::Rejected(
                    BuyRejection::SoldOut | BuyRejection::InsufficientStock { .. },
                ) = r
                {
                    // No undersell: refused for stock only when the activity as a whole (every
                    // stock bucket) had fewer units than asked.
                    let snap = e
                        .backends()
                        .stock
                        .snapshot(s.activity)
                        .await
                        .map_err(fail)?;
                    let left = snap.map_or(0, |x| x.available);
                    prop_assert!(
                        left < i64::from(*qty),
                        "undersold: refused ({r:?}) while {left} units were available"
                    );
                }
            }
        }
        Op::Cancel {
            pick: i,
            wrong_user,
        } => {
            if let Some((id, user)) = pick(&m.reserved, *i) {
                let who = if *wrong_user {
                    UserId(user.0 + 100)
                } else {
                    user
                };
                let before = e.backends().orders.order(id).await.map_err(fail)?;
                match e.cancel_by_user(who, id).await {
                    Err(Error::NotFound { .. })
                    | Err(Error::Conflict { .. })
                    | Err(Error::Crashed(_))
                    | Ok(_) => {}
                    Err(other) => return Err(fail(other)),
                }
                if *wrong_user {
                    // Someone else's order is untouched.
                    let after = e.backends().orders.order(id).await.map_err(fail)?;
                    prop_assert_eq!(before, after);
                }
            }
        }
        Op::StartPay { pick: i } => {
            if let Some((id, user)) = pick(&m.reserved, *i) {
                match e.start_payment(user, id).await {
                    Ok(p) => m.payments.push(p.payment),
                    Err(Error::NotFound { .. }) | Err(Error::Conflict { .. }) => {}
                    Err(other) => return Err(fail(other)),
                }
            }
        }
        Op::Pay { pick: i, duplicate } => {
            // The buyer of a reserved order opens (or reopens) its payment and pays.
            let Some((id, user)) = pick(&m.reserved, *i) else {
                return Ok(());
            };
            let p = match e.start_payment(user, id).await {
                Ok(p) => p.payment,
                Err(Error::NotFound { .. }) | Err(Error::Conflict { .. }) => {
                    match pick(&m.payments, *i) {
                        Some(p) => p, // pay an older payment instead: late or duplicate payments
                        None => return Ok(()),
                    }
                }
                Err(other) => return Err(fail(other)),
            };
            m.payments.push(p.clone());
            {
                let cb = s.provider.pay(&p);
                callback(s, m, cb.clone()).await?;
                if *duplicate {
                    callback(s, m, cb).await?;
                }
            }
        }
        Op::PayCallbackLost { pick: i } => {
            if let Some(p) = pick(&m.payments, *i) {
                s.provider.pay(&p);
            }
        }
        Op::ForgedCallback { pick: i } => {
            if let Some(p) = pick(&m.payments, *i) {
                // A callback claiming success for a payment nobody made, with a bad signature.
                let mut cb = s.provider.callback_for(&Notification {
                    payment_id: p.id,
                    txn_id: "forged".into(),
                    amount: p.amount,
                    succeeded: true,
                });
                cb.headers
                    .insert(MOCK_SIGNATURE_HEADER.into(), "ab".repeat(32));
                prop_assert!(matches!(
                    e.handle_callback("mock", &cb).await,
                    Err(Error::Unauthenticated(_))
                ));
            }
        }
        Op::RetryCallbacks => {
            for cb in std::mem::take(&mut m.unanswered) {
                callback(s, m, cb).await?;
            }
        }
        Op::Advance { secs } => s.clock.advance(CDuration::seconds(*secs)),
        Op::Relay => {
            crashed_or(e.relay_once().await, |_| Ok(()))?;
        }
        Op::Pump => {
            Box::pin(step(s, concert, faults, w, m, &Op::Relay)).await?;
            Box::pin(step(s, concert, faults, w, m, &Op::Work)).await?;
        }
        Op::Work => {
            if w.is_none() {
                *w = Some(e.order_worker().await.map_err(fail)?);
            }
            let r = w.as_mut().unwrap().run_once(Duration::ZERO).await;
            if crashed_or(r, |_| Ok(()))? {
                *w = None; // the process died; its deliveries go back to the group
            }
        }
        Op::Timeout => {
            crashed_or(e.timeout_once().await, |_| Ok(()))?;
        }
        Op::Sweep => {
            crashed_or(e.sweep_expired().await, |_| Ok(()))?;
        }
        Op::RestartWorker => *w = None,
        Op::DuplicateMessage { pick: i } => {
            // The broker delivers a message twice (an at-least-once duplicate).
            let holds = e
                .backends()
                .stock
                .live_holds(s.activity)
                .await
                .map_err(fail)?;
            if let Some(rec) = pick(&holds, *i) {
                let payload = serde_json::to_vec(&HoldEvent { hold: rec.hold }).unwrap();
                e.backends()
                    .broker
                    .publish(&e.config().holds_topic, Message::new("dup", payload))
                    .await
                    .map_err(fail)?;
            }
        }
        Op::Reconcile => {
            crashed_or(e.reconcile(s.activity, true).await, |_| Ok(()))?;
        }
        Op::ReconcilePayments => {
            crashed_or(e.reconcile_payments().await, |_| Ok(()))?;
        }
        Op::Crash(at) => faults.arm(*at),
    }
    Ok(())
}

fn expect(s: &Sale, m: &Model, quiescent: bool) -> Expect {
    Expect {
        reserved: m.reserved.iter().map(|(o, _)| *o).collect(),
        paid: m.paid.clone(),
        ledger: Some(s.provider.ledger()),
        quiescent,
        told_lost_allowed: false,
    }
}

/// Runs `ops`, checking the guarantees after every step, then drains the pipeline (every
/// crashed step retried, every deadline passed) and checks what must hold at rest. `buckets`
/// 0 sells the concert session instead ([`concert_session`]: tiers, a quota, seats, real
/// names).
async fn run(fixture: &Fixture, buckets: u32, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let faults = Arc::new(CrashOnce::new());
    let concert = buckets == 0;
    let mut s = sale(
        fixture,
        SaleSpec {
            total: 8,
            limit: 3,
            batch_size: 3,
            faults: Some(faults.clone()),
            real_time: false,
            buckets: buckets.max(1),
        },
    )
    .await;
    if concert {
        s.activity = concert_session(&s).await;
    }
    let mut m = Model {
        reserved: vec![],
        keys: HashMap::new(),
        payments: vec![],
        unanswered: vec![],
        paid: vec![],
    };
    let mut w = None;
    for (i, op) in ops.iter().enumerate() {
        step(&s, concert, &faults, &mut w, &mut m, op).await?;
        let v = check(&s.engine, s.activity, &expect(&s, &m, false))
            .await
            .map_err(fail)?;
        prop_assert!(v.is_empty(), "after step {i} {op:?}: {v:#?}");
    }
    // Recovery: no more crashes; restart everything and let time run out.
    faults.clear();
    let e = &s.engine;
    for cb in std::mem::take(&mut m.unanswered) {
        callback(&s, &mut m, cb).await?;
    }
    // Leases of dead relays and workers lapse.
    s.clock.advance(CDuration::seconds(120));
    // The step phase's worker is gone too: a live member that stops fetching would keep its
    // share of the group's work (Kafka partitions) until the broker evicts it.
    drop(w);
    let mut w = e.order_worker().await.map_err(fail)?;
    s.drain(&mut w).await;
    s.clock.advance(CDuration::seconds(3600)); // every payment deadline passes
    while e.timeout_once().await.map_err(fail)? > 0 {}
    e.reconcile(s.activity, true).await.map_err(fail)?;
    e.reconcile_payments().await.map_err(fail)?;
    s.drain(&mut w).await;
    let v = check(e, s.activity, &expect(&s, &m, true))
        .await
        .map_err(fail)?;
    prop_assert!(v.is_empty(), "at rest: {v:#?}");
    let report = e.reconcile(s.activity, false).await.map_err(fail)?;
    prop_assert!(report.consistent, "reconciler at rest: {report:#?}");
    Ok(())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// Runs `cases` random sequences (of 1 to 80 steps) on the fixture, each on a plain sale of
/// 1 to 3 stock buckets or on the concert session (a quarter of them). `Err` carries proptest's
/// minimal failing sequence and the violations it found.
pub fn state_machine(fixture: &Fixture, cases: u32) -> Result<(), String> {
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(0u32..=3, proptest::collection::vec(op(), 1..80)),
            |(buckets, ops)| {
                block_on(async {
                    let result = run(fixture, buckets, ops).await;
                    fixture.tear_down().await;
                    result
                })
            },
        )
        .map_err(|e| format!("[{}] {e}", fixture.name))
}

/// The number of cases: `PROPTEST_CASES`, else 256.
pub fn cases_from_env() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}
