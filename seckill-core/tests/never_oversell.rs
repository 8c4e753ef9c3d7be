//! The proof that the pipeline never oversells, never loses an order and never charges twice:
//! a proptest state machine drives random sequences of buys, cancels, payments, duplicate,
//! forged and late callbacks, clock jumps, duplicated and redelivered messages, and crashes
//! between any two pipeline steps, and checks the guarantees of DESIGN §5 after every step.
//!
//! `the_checker_catches_a_broken_reserver` is the negative control: the same machine against a
//! reserver that skips the stock check must find a violation.

mod common;

use chrono::Duration as CDuration;
use common::{sale, Sale, SaleSpec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use seckill_core::broker::Message;
use seckill_core::domain::{HoldEvent, OrderId, Payment, PaymentId, UserId};
use seckill_core::engine::faults::{CrashOnce, CrashPoint};
use seckill_core::engine::{BuyOutcome, BuyRequest, CallbackOutcome, OrderWorker, Settlement};
use seckill_core::invariants::{check, Expect};
use seckill_core::payment::{Callback, Notification, MOCK_SIGNATURE_HEADER};
use seckill_core::Error;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
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

fn op() -> impl Strategy<Value = Op> {
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
        }) => m.paid.push(payment.id),
        Ok(_) => {}
        // The provider did not get a 2xx: it will call again.
        Err(Error::Crashed(_)) => m.unanswered.push(cb),
        Err(e) => return Err(fail(format!("callback failed: {e}"))),
    }
    Ok(())
}

async fn step(
    s: &Sale,
    faults: &CrashOnce,
    w: &mut Option<OrderWorker>,
    m: &mut Model,
    op: &Op,
) -> Result<(), TestCaseError> {
    let e = &s.engine;
    match op {
        Op::Buy { user, qty, key } => {
            let earlier = key.and_then(|k| m.keys.get(&(*user, k)).copied());
            let r = e
                .buy(BuyRequest {
                    user_id: UserId(*user),
                    activity_id: s.activity,
                    quantity: *qty,
                    request_id: key.map(|k| format!("key-{k}")),
                })
                .await;
            let r = match (r, earlier) {
                // The same key with another quantity is refused, never reserved again.
                (Err(Error::Conflict(_)), Some((_, q))) if q != *qty => return Ok(()),
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
                    Err(Error::NotFound(_))
                    | Err(Error::Conflict(_))
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
                    Err(Error::NotFound(_)) | Err(Error::Conflict(_)) => {}
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
                Err(Error::NotFound(_)) | Err(Error::Conflict(_)) => match pick(&m.payments, *i) {
                    Some(p) => p, // pay an older payment instead: late or duplicate payments
                    None => return Ok(()),
                },
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
            Box::pin(step(s, faults, w, m, &Op::Relay)).await?;
            Box::pin(step(s, faults, w, m, &Op::Work)).await?;
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
    }
}

/// Runs `ops`, checking the guarantees after every step, then drains the pipeline (every
/// crashed step retried, every deadline passed) and checks what must hold at rest.
async fn run(ops: Vec<Op>, broken: bool) -> Result<(), TestCaseError> {
    let faults = Arc::new(CrashOnce::new());
    let s = sale(SaleSpec {
        total: 8,
        limit: 3,
        broken_reserver: broken,
        batch_size: 3,
        faults: Some(faults.clone()),
    })
    .await;
    let mut m = Model {
        reserved: vec![],
        keys: HashMap::new(),
        payments: vec![],
        unanswered: vec![],
        paid: vec![],
    };
    let mut w = None;
    for (i, op) in ops.iter().enumerate() {
        step(&s, &faults, &mut w, &mut m, op).await?;
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
    s.clock.advance(CDuration::seconds(120)); // leases of dead relays and workers lapse
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
    if std::env::var("SALE_STATS").is_ok() {
        let a = e
            .backends()
            .catalog
            .activity(s.activity)
            .await
            .map_err(fail)?
            .unwrap();
        eprintln!(
            "STATS sold={} reserved={} payments={}",
            a.sold,
            m.reserved.len(),
            m.payments.len()
        );
    }
    prop_assert!(v.is_empty(), "at rest: {v:#?}");
    let report = e.reconcile(s.activity, false).await.map_err(fail)?;
    prop_assert!(report.consistent, "reconciler at rest: {report:#?}");
    Ok(())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(Config { cases: cases(), max_shrink_iters: 2000, ..Config::default() })]

    #[test]
    fn guarantees_hold_under_random_interleavings_and_crashes(ops in proptest::collection::vec(op(), 1..80)) {
        block_on(run(ops, false))?;
    }
}

/// Negative control: against a reserver that skips the stock check, the same machine and
/// checker must find a violation (if it could not, the test above would prove nothing).
#[test]
fn the_checker_catches_a_broken_reserver() {
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..80), |ops| {
        block_on(run(ops, true))
    });
    let err = result.expect_err("the broken reserver must be caught");
    let msg = err.to_string();
    assert!(
        msg.contains("oversold") || msg.contains("balance") || msg.contains("lost"),
        "{msg}"
    );
    eprintln!(
        "negative control caught the broken reserver: {}",
        msg.lines().take(3).collect::<Vec<_>>().join(" ")
    );
}
