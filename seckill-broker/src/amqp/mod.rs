//! [`AmqpBroker`] (`amqp://user:pass@host:5672/%2f?groups=a,b&prefix=NAME&expires=MS`):
//! RabbitMQ.
//!
//! - A topic is a durable fanout exchange; a consumer group is a durable **quorum** queue bound
//!   to it. RabbitMQ keeps messages only for queues that exist, so the groups named in the URL
//!   (`groups=`, e.g. `order-workers`) get their queues declared before anything is published:
//!   they receive every message, including those published before their first subscribe. A
//!   group not named there receives what is published after its first subscribe.
//! - Publishing uses publisher confirms with `mandatory`: an unroutable message (a topic with no
//!   group queue yet) is an error, never a silent ack. A batch is published, then all its
//!   confirms are awaited together.
//! - Messages are persistent. Consumers ack manually with a prefetch; a nack requeues; a
//!   dropped subscription closes its channel, which requeues what it had not acked.
//! - After `max_deliveries` deliveries the quorum queue dead-letters a message
//!   (`x-delivery-limit`) to the exchange of `<topic>.dlq`, whose groups are declared alike.
//! - `expires=MS` (for temporary namespaces such as tests) makes RabbitMQ delete a queue left
//!   unused that long (`x-expires`), messages included.

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use seckill_core::broker::{Delivery, Message, MessageBroker, Subscription};
use seckill_core::registry::BackendUrl;
use seckill_core::{Error, Result};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

fn map_err(e: lapin::Error) -> Error {
    match e {
        lapin::Error::IOError(_)
        | lapin::Error::InvalidChannelState(_)
        | lapin::Error::InvalidConnectionState(_) => Error::Unavailable {
            backend: "rabbitmq",
            message: e.to_string(),
        },
        other => Error::backend("rabbitmq", other),
    }
}

/// The RabbitMQ broker.
pub struct AmqpBroker {
    conn: Arc<Connection>,
    publisher: Mutex<Channel>,
    prefix: String,
    groups: Vec<String>,
    expires_ms: Option<u32>,
    max_deliveries: u32,
    declared: Mutex<HashSet<(String, String)>>,
}

impl std::fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBroker")
            .field("prefix", &self.prefix)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

impl AmqpBroker {
    /// Connects; `groups=`, `prefix=` and `expires=` are read from the URL and removed before
    /// connecting.
    pub async fn connect(url: &BackendUrl, max_deliveries: u32) -> Result<Arc<Self>> {
        let raw = url.expose();
        let (base, query) = raw.split_once('?').unwrap_or((raw, ""));
        let (mut groups, mut prefix, mut rest) = (Vec::new(), "seckill".to_string(), Vec::new());
        let mut expires_ms = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("groups", g)) => {
                    groups = g
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                }
                Some(("prefix", p)) if !p.is_empty() => prefix = p.to_string(),
                Some(("expires", ms)) => {
                    expires_ms = Some(ms.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                        Error::invalid(format!("{url}: expires must be milliseconds above 0"))
                    })?)
                }
                _ => rest.push(pair),
            }
        }
        let uri = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let conn = tokio::time::timeout(
            Duration::from_secs(15),
            Connection::connect(&uri, ConnectionProperties::default()),
        )
        .await
        .map_err(|_| Error::Unavailable {
            backend: "rabbitmq",
            message: format!("connecting to {url} timed out"),
        })?
        .map_err(map_err)?;
        let publisher = conn.create_channel().await.map_err(map_err)?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(map_err)?;
        Ok(Arc::new(Self {
            conn: Arc::new(conn),
            publisher: Mutex::new(publisher),
            prefix,
            groups,
            expires_ms,
            max_deliveries: max_deliveries.max(1),
            declared: Mutex::new(HashSet::new()),
        }))
    }

    /// A new channel. lapin can hand out the id of a channel the server just closed (a passive
    /// declare of a missing queue does that, in `lag`) before that close completed; opening it
    /// then fails with `InvalidChannelState`, and a later try gets a usable one.
    async fn channel(&self) -> Result<Channel> {
        let mut tries = 0;
        loop {
            match self.conn.create_channel().await {
                Ok(ch) => return Ok(ch),
                Err(lapin::Error::InvalidChannelState(_)) if tries < 10 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => return Err(map_err(e)),
            }
        }
    }

    fn exchange(&self, topic: &str) -> String {
        format!("{}.{topic}", self.prefix)
    }

    fn queue(&self, topic: &str, group: &str) -> String {
        format!("{}.{topic}.{group}", self.prefix)
    }

    /// The arguments of a group's queue on `topic`: quorum, the URL's expiry, and (except for
    /// dead-letter topics) the delivery limit and the dead-letter exchange. A queue is always
    /// declared with exactly these, so a second declare is a no-op, never a mismatch.
    fn queue_args(&self, topic: &str) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from("quorum")),
        );
        if let Some(ms) = self.expires_ms {
            args.insert("x-expires".into(), AMQPValue::LongUInt(ms));
        }
        if !topic.ends_with(".dlq") {
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongInt(self.max_deliveries.saturating_sub(1) as i32),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(LongString::from(self.exchange(&format!("{topic}.dlq")))),
            );
        }
        args
    }

    /// Declares the topic's exchange and the group's quorum queue (with its dead-letter
    /// exchange), once per process.
    async fn declare(&self, ch: &Channel, topic: &str, group: &str) -> Result<()> {
        let key = (topic.to_string(), group.to_string());
        if self.declared.lock().await.contains(&key) {
            return Ok(());
        }
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        ch.exchange_declare(
            &self.exchange(topic),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .map_err(map_err)?;
        if !topic.ends_with(".dlq") {
            ch.exchange_declare(
                &self.exchange(&format!("{topic}.dlq")),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(map_err)?;
        }
        let q = self.queue(topic, group);
        ch.queue_declare(
            &q,
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            self.queue_args(topic),
        )
        .await
        .map_err(map_err)?;
        ch.queue_bind(
            &q,
            &self.exchange(topic),
            "",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(map_err)?;
        self.declared.lock().await.insert(key);
        Ok(())
    }

    /// Deletes every queue and exchange this broker declared, with their messages: for
    /// temporary namespaces (tests, rehearsal sales), never for a live one.
    pub async fn delete_declared(&self) -> Result<()> {
        let declared: Vec<(String, String)> = self.declared.lock().await.drain().collect();
        let ch = self.channel().await?;
        let mut exchanges = HashSet::new();
        for (topic, group) in declared {
            ch.queue_delete(&self.queue(&topic, &group), QueueDeleteOptions::default())
                .await
                .map_err(map_err)?;
            exchanges.insert(self.exchange(&topic));
            if !topic.ends_with(".dlq") {
                exchanges.insert(self.exchange(&format!("{topic}.dlq")));
            }
        }
        for x in exchanges {
            ch.exchange_delete(&x, ExchangeDeleteOptions::default())
                .await
                .map_err(map_err)?;
        }
        let _ = ch.close(200, "deleted").await;
        Ok(())
    }

    /// Declares the topic with the URL's groups (and their dead-letter queues).
    async fn declare_topic(&self, ch: &Channel, topic: &str) -> Result<()> {
        for g in &self.groups {
            self.declare(ch, topic, g).await?;
            if !topic.ends_with(".dlq") {
                self.declare(ch, &format!("{topic}.dlq"), g).await?;
            }
        }
        Ok(())
    }
}

fn properties(m: &Message) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "seckill-key".into(),
        AMQPValue::LongString(LongString::from(m.key.clone())),
    );
    for (k, v) in &m.headers {
        headers.insert(
            ShortString::from(k.clone()),
            AMQPValue::LongString(LongString::from(v.clone())),
        );
    }
    BasicProperties::default()
        .with_delivery_mode(2) // persistent
        .with_headers(headers)
}

fn text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

fn count(v: &AMQPValue) -> Option<u32> {
    Some(match v {
        AMQPValue::LongLongInt(n) => *n as u32,
        AMQPValue::LongInt(n) => *n as u32,
        AMQPValue::LongUInt(n) => *n,
        AMQPValue::ShortInt(n) => *n as u32,
        AMQPValue::ShortShortInt(n) => *n as u32,
        _ => return None,
    })
}

#[async_trait]
impl MessageBroker for AmqpBroker {
    async fn publish(&self, topic: &str, message: Message) -> Result<()> {
        self.publish_batch(topic, vec![message]).await
    }

    async fn publish_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()> {
        let ch = self.publisher.lock().await;
        self.declare_topic(&ch, topic).await?;
        let mut confirms = Vec::with_capacity(messages.len());
        for m in &messages {
            let mandatory = BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            };
            confirms.push(
                ch.basic_publish(
                    &self.exchange(topic),
                    "",
                    mandatory,
                    &m.payload,
                    properties(m),
                )
                .await
                .map_err(map_err)?,
            );
        }
        for c in confirms {
            match c.await.map_err(map_err)? {
                Confirmation::Ack(None) | Confirmation::NotRequested => {}
                Confirmation::Ack(Some(_)) => {
                    return Err(Error::conflict(format!(
                        "message to topic {topic:?} is unroutable: no group queue is bound \
                         (name the groups in the URL: ?groups=…)"
                    )))
                }
                Confirmation::Nack(_) => {
                    return Err(Error::Unavailable {
                        backend: "rabbitmq",
                        message: "the broker refused a message (nack)".into(),
                    })
                }
            }
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>> {
        if topic.is_empty() || group.is_empty() {
            return Err(Error::invalid("topic and group must not be empty"));
        }
        let ch = self.channel().await?;
        self.declare(&ch, topic, group).await?;
        ch.basic_qos(256, BasicQosOptions::default())
            .await
            .map_err(map_err)?;
        let tag = format!("c-{:016x}", rand::random::<u64>());
        let consumer = ch
            .basic_consume(
                &self.queue(topic, group),
                &tag,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(map_err)?;
        Ok(Box::new(AmqpSubscription {
            ch,
            tag,
            consumer: Some(consumer),
        }))
    }

    async fn lag(&self, topic: &str, group: &str) -> Result<u64> {
        // A passive declare of a missing queue would make the server close the channel (404),
        // and lapin may hand that channel's id to a new channel before the close completes.
        // Declaring the queue with its own arguments is idempotent and never fails that way;
        // a group asked about keeps its messages from then on, which is what lag watches.
        let ch = self.publisher.lock().await;
        self.declare(&ch, topic, group).await?;
        let q = ch
            .queue_declare(
                &self.queue(topic, group),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                self.queue_args(topic),
            )
            .await
            .map_err(map_err)?;
        Ok(u64::from(q.message_count()))
    }
}

impl Drop for AmqpBroker {
    fn drop(&mut self) {
        // Close the connection (and every channel on it) even without a runtime at hand.
        // The publisher channel goes along, so that its last handle drops after the close
        // rather than racing it with a channel close of its own.
        let conn = self.conn.clone();
        let publisher = self.publisher.get_mut().clone();
        std::thread::spawn(move || {
            let _ = futures::executor::block_on(conn.close(200, "broker dropped"));
            drop(publisher);
        });
    }
}

struct AmqpSubscription {
    ch: Channel,
    tag: String,
    /// `None` only once dropped.
    consumer: Option<lapin::Consumer>,
}

impl AmqpSubscription {
    fn delivery(d: lapin::message::Delivery) -> Delivery {
        let mut headers = BTreeMap::new();
        let mut key = String::new();
        let mut attempt = 1;
        if let Some(h) = d.properties.headers() {
            for (k, v) in h.inner() {
                match k.as_str() {
                    "seckill-key" => key = text(v).unwrap_or_default(),
                    "x-delivery-count" => attempt = count(v).unwrap_or(0) + 1,
                    other => {
                        if let Some(t) = text(v) {
                            headers.insert(other.to_string(), t);
                        }
                    }
                }
            }
        }
        if d.redelivered && attempt == 1 {
            attempt = 2;
        }
        Delivery {
            tag: d.delivery_tag.to_string(),
            message: Message {
                key,
                payload: d.data,
                headers,
            },
            attempt,
        }
    }
}

#[async_trait]
impl Subscription for AmqpSubscription {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let mut out = Vec::new();
        let Some(consumer) = self.consumer.as_mut() else {
            return Ok(out);
        };
        let first = match tokio::time::timeout(wait, consumer.next()).await {
            Err(_) | Ok(None) => return Ok(out),
            Ok(Some(d)) => d.map_err(map_err)?,
        };
        out.push(Self::delivery(first));
        while out.len() < max.max(1) {
            match consumer.next().now_or_never() {
                Some(Some(d)) => out.push(Self::delivery(d.map_err(map_err)?)),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn ack(&mut self, tags: &[String]) -> Result<()> {
        for t in tags {
            let tag: u64 = t
                .parse()
                .map_err(|_| Error::invalid(format!("delivery tag {t:?}")))?;
            self.ch
                .basic_ack(tag, BasicAckOptions::default())
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    async fn nack(&mut self, tag: &str) -> Result<()> {
        let tag: u64 = tag
            .parse()
            .map_err(|_| Error::invalid(format!("delivery tag {tag:?}")))?;
        self.ch
            .basic_nack(
                tag,
                BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                },
            )
            .await
            .map_err(map_err)
    }
}

impl Drop for AmqpSubscription {
    fn drop(&mut self) {
        // Cancel the consumer, then close the channel (which requeues every delivery it had not
        // acked), in that order and off any runtime. Dropping lapin's consumer while its channel
        // closes races a `basic.cancel` against the close, and lapin turns the cancel's failure
        // into an error of the whole connection.
        let (ch, tag, consumer) = (self.ch.clone(), self.tag.clone(), self.consumer.take());
        std::thread::spawn(move || {
            futures::executor::block_on(async move {
                let _ = ch.basic_cancel(&tag, BasicCancelOptions::default()).await;
                let _ = ch.close(200, "subscription dropped").await;
                drop(consumer);
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_expires_is_refused_before_connecting() {
        for bad in ["expires=0", "expires=soon", "expires=-5"] {
            let url = BackendUrl::parse(&format!("amqp://u:p@127.0.0.1:1/%2f?{bad}")).unwrap();
            let e = AmqpBroker::connect(&url, 3).await.unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e:?}");
            assert!(
                !e.to_string().contains(":p@"),
                "the password is redacted: {e}"
            );
        }
    }
}
