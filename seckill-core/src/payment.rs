//! [`PaymentProvider`]: the payment service provider behind `POST /orders/{id}/pay`, and what
//! the `mock` provider's callbacks carry ([`MOCK_SIGNATURE_HEADER`], [`MockLedger`]); the provider
//! itself, [`crate::memory::MockProvider`], lives with the other in-memory backends.

use crate::domain::{Money, Payment, PaymentId};
use crate::{Entity, Error, Result, Timestamp};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
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

    /// The configured providers, the default first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn PaymentProvider>> {
        self.list.iter()
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
