//! Conformance cases of [`PaymentProvider`].
//!
//! A provider's callbacks come from the provider, so the fixture brings a `pay` function that
//! makes the provider take a payment and returns the callback it then sends (a sandbox payment
//! for a real provider, [`crate::payment::MockProvider::pay`] for the mock).

use crate::domain::{Money, OrderId, Payment, PaymentId, PaymentStatus, UserId};
use crate::payment::{Callback, PaymentProvider};
use crate::Error;
use std::sync::Arc;

/// The provider under test and how to pay through it.
#[derive(Clone)]
pub struct Backend {
    /// The provider.
    pub provider: Arc<dyn PaymentProvider>,
    /// Makes the provider take `payment` and returns the callback it sends.
    pub pay: Arc<dyn Fn(&Payment) -> Callback + Send + Sync>,
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

/// A checkout names where to pay; an unpaid payment queries as `None`.
pub async fn checkout_and_unpaid_query(b: &Backend) {
    let p = payment();
    let c = b.provider.create(&p).await.unwrap();
    assert!(!c.pay_url.is_empty() && !c.provider_ref.is_empty());
    assert_eq!(b.provider.query(&p).await.unwrap(), None);
}

/// The provider's own callback verifies and reports the payment; a query agrees with it.
pub async fn paid_callback_verifies_and_query_agrees(b: &Backend) {
    let p = payment();
    b.provider.create(&p).await.unwrap();
    let cb = (b.pay)(&p);
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

/// A callback altered in transit, or unsigned, is refused.
pub async fn tampered_callbacks_are_refused(b: &Backend) {
    let p = payment();
    b.provider.create(&p).await.unwrap();
    let cb = (b.pay)(&p);
    let mut body = cb.clone();
    body.body = String::from_utf8(cb.body.clone())
        .unwrap()
        .replace("12345", "1")
        .into_bytes();
    assert_ne!(
        body.body, cb.body,
        "the amount must appear in the signed body"
    );
    assert!(matches!(
        b.provider.verify_callback(&body),
        Err(Error::Unauthenticated(_))
    ));
    let mut unsigned = cb.clone();
    unsigned.headers.clear();
    assert!(matches!(
        b.provider.verify_callback(&unsigned),
        Err(Error::Unauthenticated(_))
    ));
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
    b.provider.create(&p).await.unwrap();
    (b.pay)(&p);
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
