//! [`MockProvider`]: the in-memory payment provider, which takes the money when asked and signs
//! its callbacks with HMAC-SHA256 (the header [`MOCK_SIGNATURE_HEADER`]); its money movements are
//! a [`MockLedger`].

use crate::domain::{Money, Payment, PaymentId};
use crate::payment::{
    Callback, Checkout, MockLedger, Notification, PaymentProvider, MOCK_SIGNATURE_HEADER,
};
use crate::{Entity, Error, Result, Timestamp};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeMap;

/// A provider that takes the money when asked ([`MockProvider::pay`]) and then produces
/// the callback a real provider would send, signed with HMAC-SHA256 over the body.
pub struct MockProvider {
    secret: Vec<u8>,
    ledger: Mutex<MockLedger>,
}

impl std::fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockProvider")
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct MockBody {
    payment_id: PaymentId,
    txn_id: String,
    amount: Money,
    status: String,
}

impl MockProvider {
    /// A provider signing with `secret`.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
            ledger: Mutex::new(MockLedger::default()),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length")
    }

    /// Signs `body` as the provider does.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    /// A signed callback reporting `notification` (does not move money).
    pub fn callback_for(&self, n: &Notification) -> Callback {
        let body = serde_json::to_vec(&MockBody {
            payment_id: n.payment_id,
            txn_id: n.txn_id.clone(),
            amount: n.amount,
            status: if n.succeeded { "succeeded" } else { "failed" }.into(),
        })
        .expect("mock body serializes");
        let mut headers = BTreeMap::new();
        headers.insert(MOCK_SIGNATURE_HEADER.to_string(), self.sign(&body));
        Callback { headers, body }
    }

    /// The buyer pays: the provider takes `payment.amount` (once per payment: paying again
    /// returns the same transaction) and returns the callback it sends.
    pub fn pay(&self, payment: &Payment) -> Callback {
        self.ledger
            .lock()
            .charged
            .entry(payment.id)
            .or_insert(payment.amount);
        self.callback_for(&Self::succeeded(payment.id, payment.amount))
    }

    fn succeeded(id: PaymentId, amount: Money) -> Notification {
        Notification {
            payment_id: id,
            txn_id: format!("mock-txn-{id}"),
            amount,
            succeeded: true,
        }
    }

    /// A copy of the money movements so far.
    pub fn ledger(&self) -> MockLedger {
        self.ledger.lock().clone()
    }
}

#[async_trait]
impl PaymentProvider for MockProvider {
    fn name(&self) -> &str {
        "mock"
    }

    async fn create(&self, payment: &Payment, _pay_by: Timestamp) -> Result<Checkout> {
        Ok(Checkout {
            provider_ref: format!("mock-{}", payment.id),
            pay_url: format!("/api/v1/payment/mock/{}/complete", payment.id),
        })
    }

    fn verify_callback(&self, cb: &Callback) -> Result<Notification> {
        let sig = cb
            .headers
            .get(MOCK_SIGNATURE_HEADER)
            .ok_or_else(|| Error::Unauthenticated(format!("missing {MOCK_SIGNATURE_HEADER}")))?;
        let sig =
            hex::decode(sig).map_err(|_| Error::Unauthenticated("signature is not hex".into()))?;
        let mut mac = self.mac();
        mac.update(&cb.body);
        mac.verify_slice(&sig)
            .map_err(|_| Error::Unauthenticated("bad signature".into()))?;
        let body: MockBody = serde_json::from_slice(&cb.body)
            .map_err(|e| Error::invalid(format!("callback body: {e}")))?;
        let succeeded = match body.status.as_str() {
            "succeeded" => true,
            "failed" => false,
            other => return Err(Error::invalid(format!("callback status {other:?}"))),
        };
        Ok(Notification {
            payment_id: body.payment_id,
            txn_id: body.txn_id,
            amount: body.amount,
            succeeded,
        })
    }

    async fn query(&self, payment: &Payment) -> Result<Option<Notification>> {
        Ok(self
            .ledger
            .lock()
            .charged
            .get(&payment.id)
            .map(|amount| Self::succeeded(payment.id, *amount)))
    }

    async fn refund(&self, payment: &Payment) -> Result<()> {
        let mut ledger = self.ledger.lock();
        let Some(&charged) = ledger.charged.get(&payment.id) else {
            return Err(Error::conflict(
                Entity::Payment,
                payment.id,
                "it was never charged",
            ));
        };
        ledger.refunded.entry(payment.id).or_insert(charged);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrderId, PaymentStatus, UserId};

    fn payment() -> Payment {
        let t = chrono::Utc::now();
        Payment {
            id: PaymentId(9),
            order_id: OrderId(1),
            user_id: UserId(2),
            provider: "mock".into(),
            amount: Money(1500),
            status: PaymentStatus::Pending,
            provider_txn_id: None,
            callbacks_seen: 0,
            created_at: t,
            updated_at: t,
        }
    }

    #[tokio::test]
    async fn refunds_once_and_only_what_was_charged() {
        let p = MockProvider::new(b"k".to_vec());
        assert!(p.refund(&payment()).await.is_err());
        p.pay(&payment());
        p.pay(&payment());
        p.refund(&payment()).await.unwrap();
        p.refund(&payment()).await.unwrap();
        let l = p.ledger();
        assert_eq!(l.charged.len(), 1);
        assert_eq!(l.refunded.get(&PaymentId(9)), Some(&Money(1500)));
    }
}
