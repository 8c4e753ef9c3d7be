//! [`MessageBroker`]: at-least-once topics with consumer groups.
//!
//! The relay publishes every hold to the `holds` topic; order workers consume it in one group.
//! Delivery is at least once: a consumer that crashes before acking gets the message again (on
//! another consumer of the group), so handlers must be idempotent.

use crate::Result;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;

/// A message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Partitioning key: messages with the same key keep their publish order (no failures).
    pub key: String,
    /// Body.
    pub payload: Vec<u8>,
    /// Headers (a message id for de-duplication, a trace id, …).
    pub headers: BTreeMap<String, String>,
}

impl Message {
    /// A message with a key and a body.
    pub fn new(key: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            payload: payload.into(),
            headers: BTreeMap::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.headers.insert(k.into(), v.into());
        self
    }
}

/// A message handed to one consumer, to be acked or nacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Identifies this delivery to [`Subscription::ack`] / [`Subscription::nack`].
    pub tag: String,
    /// The message.
    pub message: Message,
    /// 1 on the first delivery, then counting redeliveries.
    pub attempt: u32,
}

/// A consumer's membership of a group on a topic. Dropping it without acking hands its unacked
/// deliveries back to the group.
#[async_trait]
pub trait Subscription: Send {
    /// Up to `max` deliveries, waiting at most `wait` for the first one (an empty vector means
    /// nothing arrived in time).
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>>;
    /// Done with these deliveries: they are never delivered again to this group.
    async fn ack(&mut self, tags: &[String]) -> Result<()>;
    /// Failed: deliver again (to any consumer of the group). After the broker's
    /// `max_deliveries` attempts the message goes to the dead-letter topic `<topic>.dlq`.
    async fn nack(&mut self, tag: &str) -> Result<()>;
}

/// At-least-once publish/subscribe with consumer groups.
///
/// # Contract (checked by `conformance::broker`, feature `conformance`)
/// - `publish` returns once the broker holds the message durably; `publish_batch` likewise for
///   all of them, and either all or none is an error to retry (a retry may duplicate).
/// - Each group receives every message published to the topic (including those published
///   before the group's first subscribe); within a group each message goes to one consumer at a
///   time.
/// - An acked message is never delivered to the group again. A nacked one, or one whose
///   consumer dropped its subscription without acking, is delivered again.
/// - A message nacked `max_deliveries` times goes to `<topic>.dlq` instead.
/// - Messages with the same key are delivered in publish order when nothing fails.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait MessageBroker: Send + Sync + std::fmt::Debug {
    /// Publishes one message.
    async fn publish(&self, topic: &str, message: Message) -> Result<()>;
    /// Publishes many, in order.
    async fn publish_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()>;
    /// Joins `group` on `topic`.
    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>>;
    /// Messages of the group not yet acked (consumer lag).
    async fn lag(&self, topic: &str, group: &str) -> Result<u64>;
}
