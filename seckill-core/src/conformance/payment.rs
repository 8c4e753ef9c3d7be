//! Conformance cases of [`PaymentProvider`].
//!
//! A provider's callbacks come from the provider, so the fixture brings a `pay` function: the
//! buyer pays at the checkout the provider returned, and gets the callback the provider then
//! sends (a sandbox payment for a real provider, [`crate::memory::MockProvider::pay`] for the
//! mock).

use crate::domain::{Money, OrderId, Payment, PaymentId, PaymentStatus, UserId};
use crate::payment::{Callback, Checkout, PaymentProvider};
use crate::Error;
use std::sync::Arc;

/// The buyer paying `payment` at `checkout`; returns the callback the provider sends.
pub type PayFn = dyn Fn(&Payment, &Checkout) -> Callback + Send + Sync;

/// The provider under test and how to pay through it.
#[derive(Clone)]
pub struct Backend {
    /// The provider.
    pub provider: Arc<dyn PaymentProvider>,
    /// The buyer pays `payment` at `checkout`; returns the callback the provider sends.
    pub pay: Arc<PayFn>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("provider", &self.provider)
            .finish()
    }
}

fn payment() -> Payment {
    let t = chrono::Utc::now();
    Payment {
        id: PaymentId(super::unique_id()),
        order_id: OrderId(super::unique_id()),
        user_id: UserId(1),
        provider: "conformance".into(),
        amount: Money(12_345),
        status: PaymentStatus::Pending,
        provider_txn_id: None,
        callbacks_seen: 0,
        created_at: t,
        updated_at: t,
    }
}

/// A deadline a quarter of an hour away.
fn pay_by() -> crate::Timestamp {
    chrono::Utc::now() + chrono::Duration::minutes(15)
}

/// A checkout names where to pay; an unpaid payment queries as `None`.
pub async fn checkout_and_unpaid_query(b: &Backend) {
    let p = payment();
    let c = b.provider.create(&p, pay_by()).await.unwrap();
    assert!(!c.pay_url.is_empty() && !c.provider_ref.is_empty());
    assert_eq!(b.provider.query(&p).await.unwrap(), None);
}

/// The provider's own callback verifies and reports the payment; a query agrees with it.
pub async fn paid_callback_verifies_and_query_agrees(b: &Backend) {
    let p = payment();
    let c = b.provider.create(&p, pay_by()).await.unwrap();
    let cb = (b.pay)(&p, &c);
    let n = b.provider.verify_callback(&cb).unwrap();
    assert_eq!(
        (n.payment_id, n.amount, n.succeeded),
        (p.id, p.amount, true)
    );
    assert!(!n.txn_id.is_empty());
    let q = b.provider.query(&p).await.unwrap().expect("paid");
    assert_eq!(
        (q.payment_id, q.txn_id.as_str(), q.amount),
        (p.id, n.txn_id.as_str(), p.amount)
    );
}

/// A callback altered in transit is refused: every digit of its body changed in turn (amounts,
/// ids, and the signature where it travels in the body), a callback without the headers that
/// carry its signature, and a body in no format of the provider's.
pub async fn tampered_callbacks_are_refused(b: &Backend) {
    let p = payment();
    let c = b.provider.create(&p, pay_by()).await.unwrap();
    let cb = (b.pay)(&p, &c);
    let digits: Vec<usize> = (0..cb.body.len())
        .filter(|&i| cb.body[i].is_ascii_digit())
        .collect();
    assert!(!digits.is_empty(), "a callback names its payment");
    for i in digits {
        let mut altered = cb.clone();
        altered.body[i] = if cb.body[i] == b'9' {
            b'0'
        } else {
            cb.body[i] + 1
        };
        let r = b.provider.verify_callback(&altered);
        assert!(
            matches!(r, Err(Error::Unauthenticated(_))),
            "byte {i} altered: {r:?}"
        );
    }
    if cb.headers.keys().any(|k| k.contains("signature")) {
        let mut unsigned = cb.clone();
        unsigned.headers.clear();
        assert!(matches!(
            b.provider.verify_callback(&unsigned),
            Err(Error::Unauthenticated(_))
        ));
    }
    let garbage = Callback {
        headers: cb.headers.clone(),
        body: b"not json".to_vec(),
    };
    assert!(b.provider.verify_callback(&garbage).is_err());
}

/// Refunds return money once, and only for what was charged.
pub async fn refunds_are_idempotent(b: &Backend) {
    let never = payment();
    assert!(b.provider.refund(&never).await.is_err());
    let p = payment();
    let c = b.provider.create(&p, pay_by()).await.unwrap();
    (b.pay)(&p, &c);
    b.provider.refund(&p).await.unwrap();
    b.provider.refund(&p).await.unwrap();
}

/// Stamps out every case of this suite as a test for a backend.
#[macro_export]
macro_rules! payment_provider_conformance {
    ($make:path) => {
        $crate::__conformance_tests!(payment, $make;
            checkout_and_unpaid_query,
            paid_callback_verifies_and_query_agrees,
            tampered_callbacks_are_refused,
            refunds_are_idempotent,
        );
    };
}
