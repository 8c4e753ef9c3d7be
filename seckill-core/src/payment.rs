//! [`PaymentProvider`]: the payment service provider behind `POST /orders/{id}/pay`, and the
//! `mock` provider that signs its callbacks with HMAC-SHA256.

use crate::domain::{Money, Payment, PaymentId};
use crate::{Entity, Error, Result, Timestamp};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the buyer needs to pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// The provider's reference of the payment.
    pub provider_ref: String,
    /// Where to send the buyer.
    pub pay_url: String,
}

/// A callback as it arrives over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    /// Headers, lower-case names.
    pub headers: BTreeMap<String, String>,
    /// Raw body.
    pub body: Vec<u8>,
}

/// A callback's verified content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Our payment id (the merchant reference).
    pub payment_id: PaymentId,
    /// The provider's transaction id.
    pub txn_id: String,
    /// Amount taken, in minor units.
    pub amount: Money,
    /// Whether the money was taken.
    pub succeeded: bool,
}

/// A payment service provider.
///
/// # Contract
/// - `verify_callback` accepts only callbacks the provider signed, and parses them; anything
///   else is [`Error::Unauthenticated`] (bad or missing signature) or
///   [`Error::InvalidArgument`] (malformed body).
/// - `refund` is idempotent per payment id: refunding twice returns money once.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PaymentProvider: Send + Sync + std::fmt::Debug {
    /// The provider's name in routes and records (`mock`, `alipay`, `wechat`, …).
    fn name(&self) -> &str;
    /// Opens a payment at the provider, payable until `pay_by` (the order's payment deadline;
    /// a provider that can close the trade then does, so nobody pays an order already
    /// cancelled).
    async fn create(&self, payment: &Payment, pay_by: Timestamp) -> Result<Checkout>;
    /// Verifies and parses a callback.
    fn verify_callback(&self, callback: &Callback) -> Result<Notification>;
    /// Asks the provider where a payment stands: `None` while the buyer has not paid. Used to
    /// settle payments whose callback never arrived.
    async fn query(&self, payment: &Payment) -> Result<Option<Notification>>;
    /// Gives the money of a succeeded payment back.
    async fn refund(&self, payment: &Payment) -> Result<()>;
    /// The plain-text body the provider expects for a callback it may stop retrying (Alipay:
    /// `success`); `None`, the default: the server's JSON envelope with a 2xx status.
    fn callback_ack(&self) -> Option<&'static str> {
        None
    }
}

/// The providers a deployment takes payments through, by name; the first is the default. A
/// payment remembers its provider's name, so its callback, query and refund go to the provider
/// that opened it.
#[derive(Debug, Clone)]
pub struct PaymentProviders {
    list: Vec<Arc<dyn PaymentProvider>>,
}

impl PaymentProviders {
    /// The providers in `list`, the first the default; refuses an empty list and two providers
    /// of one name.
    pub fn new(list: Vec<Arc<dyn PaymentProvider>>) -> Result<Self> {
        if list.is_empty() {
            return Err(Error::invalid("at least one payment provider is needed"));
        }
        for (i, p) in list.iter().enumerate() {
            if list[..i].iter().any(|q| q.name() == p.name()) {
                return Err(Error::invalid(format!(
                    "payment provider {:?} is named twice",
                    p.name()
                )));
            }
        }
        Ok(Self { list })
    }

    /// The default provider (the first).
    pub fn default_provider(&self) -> &Arc<dyn PaymentProvider> {
        &self.list[0]
    }

    /// The provider called `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn PaymentProvider>> {
        self.list.iter().find(|p| p.name() == name)
    }

    /// The provider called `name`, or [`Error::NotFound`] naming the configured ones.
    pub fn named(&self, name: &str) -> Result<&Arc<dyn PaymentProvider>> {
        self.get(name).ok_or_else(|| {
            Error::not_found(
                Entity::Provider,
                format!("{name:?} (configured: {})", self.names().join(", ")),
            )
        })
    }

    /// The configured providers' names, the default first.
    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(|p| p.name()).collect()
    }
}

impl From<Arc<dyn PaymentProvider>> for PaymentProviders {
    fn from(p: Arc<dyn PaymentProvider>) -> Self {
        Self { list: vec![p] }
    }
}

impl<P: PaymentProvider + 'static> From<Arc<P>> for PaymentProviders {
    fn from(p: Arc<P>) -> Self {
        Self { list: vec![p] }
    }
}

/// The header carrying the mock provider's signature (hex HMAC-SHA256 of the body).
pub const MOCK_SIGNATURE_HEADER: &str = "x-mock-signature";

/// Money movements the mock provider made, to check that nobody is charged twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MockLedger {
    /// Payment id → amount charged.
    pub charged: BTreeMap<PaymentId, Money>,
    /// Payment id → amount refunded.
    pub refunded: BTreeMap<PaymentId, Money>,
}

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
