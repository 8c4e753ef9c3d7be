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
//! - When the connection dies (a broker restart, a network cut) the call that finds it dead
//!   fails with a retryable `Unavailable`, and the next call connects again: the publisher
//!   channel and every subscription's consumer are opened anew. Deliveries a dead channel had
//!   not acked went back to the queue; their tags carry their channel's generation, so acking
//!   one later is a no-op rather than an ack of another channel's delivery.

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
use seckill_core::{Entity, Error, Result};
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

/// The connection to RabbitMQ, made again when it died.
struct Link {
    /// The AMQP URI (secrets included): kept to reconnect, never shown.
    uri: String,
    /// The live connection and how many connections were made before it.
    conn: Mutex<(Arc<Connection>, u64)>,
}

impl Link {
    async fn open(uri: &str) -> Result<Connection> {
        tokio::time::timeout(
            Duration::from_secs(15),
            Connection::connect(uri, ConnectionProperties::default()),
        )
        .await
        .map_err(|_| Error::Unavailable {
            backend: "rabbitmq",
            message: "connecting timed out".into(),
        })?
        .map_err(map_err)
    }

    /// The live connection and its generation, connecting again if the last one died.
    async fn get(&self) -> Result<(Arc<Connection>, u64)> {
        let mut c = self.conn.lock().await;
        if !c.0.status().connected() {
            let fresh = Arc::new(Self::open(&self.uri).await?);
            *c = (fresh, c.1 + 1);
            tracing::info!(generation = c.1, "reconnected to rabbitmq");
        }
        Ok(c.clone())
    }

    async fn channel(&self) -> Result<Channel> {
        self.get().await?.0.create_channel().await.map_err(map_err)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // The broker and its subscriptions are gone: close the connection (and every channel
        // on it) even without a runtime at hand.
        let conn = self.conn.get_mut().0.clone();
        std::thread::spawn(move || {
            let _ = futures::executor::block_on(conn.close(200, "broker dropped"));
        });
    }
}

/// The RabbitMQ broker.
pub struct AmqpBroker {
    link: Arc<Link>,
    /// The confirm-mode channel publishes (and lag queries) go through; `None` until opened,
    /// and again after it failed.
    publisher: Mutex<Option<Channel>>,
    prefix: String,
    groups: Vec<String>,
    expires_ms: Option<u32>,
    max_deliveries: u32,
    /// The (topic, group) pairs declared, and on which connection generation: a new connection
    /// declares again (idempotent), in case the broker came back without them.
    declared: Mutex<(u64, HashSet<(String, String)>)>,
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
        let conn = Link::open(&uri).await.map_err(|e| Error::Unavailable {
            backend: "rabbitmq",
            message: format!("{url}: {e}"),
        })?;
        let broker = Arc::new(Self {
            link: Arc::new(Link {
                uri,
                conn: Mutex::new((Arc::new(conn), 0)),
            }),
            publisher: Mutex::new(None),
            prefix,
            groups,
            expires_ms,
            max_deliveries: max_deliveries.max(1),
            declared: Mutex::new((0, HashSet::new())),
        });
        drop(broker.publisher().await?);
        Ok(broker)
    }

    /// The publishing channel (in confirm mode), opened again after it failed.
    async fn publisher(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Channel>>> {
        let mut p = self.publisher.lock().await;
        if !p.as_ref().is_some_and(|c| c.status().connected()) {
            *p = None;
            let ch = self.link.channel().await?;
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(map_err)?;
            *p = Some(ch);
        }
        Ok(p)
    }

    /// After a failure that left the publisher channel unusable, the next call opens a fresh
    /// one (on a fresh connection, if need be).
    fn forget_if_broken<T>(publisher: &mut Option<Channel>, result: &Result<T>) {
        if matches!(result, Err(Error::Unavailable { .. })) {
            *publisher = None;
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
        let generation = self.link.conn.lock().await.1;
        {
            let mut d = self.declared.lock().await;
            if d.0 != generation {
                *d = (generation, HashSet::new());
            }
            if d.1.contains(&key) {
                return Ok(());
            }
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
        let mut d = self.declared.lock().await;
        if d.0 == generation {
            d.1.insert(key);
        }
        Ok(())
    }

    /// Deletes every queue and exchange this broker declared, with their messages: for
    /// temporary namespaces (tests, rehearsal sales), never for a live one.
    pub async fn delete_declared(&self) -> Result<()> {
        let declared: Vec<(String, String)> = self.declared.lock().await.1.drain().collect();
        let ch = self.link.channel().await?;
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

impl AmqpBroker {
    /// Publishes on `ch` and awaits every confirm.
    async fn publish_on(&self, ch: &Channel, topic: &str, messages: &[Message]) -> Result<()> {
        self.declare_topic(ch, topic).await?;
        let mut confirms = Vec::with_capacity(messages.len());
        for m in messages {
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
                    return Err(Error::conflict(
                        Entity::Other,
                        format!("topic {topic:?}"),
                        "a message to it is unroutable: no group queue is bound \
                         (name the groups in the URL: ?groups=…)",
                    ))
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

    /// The number of ready messages in the group's queue.
    async fn lag_on(&self, ch: &Channel, topic: &str, group: &str) -> Result<u64> {
        // Not a passive declare: on a missing queue the server would close the channel (404).
        // Declaring the queue with its own arguments is idempotent and never fails that way;
        // a group asked about keeps its messages from then on, which is what lag watches.
        self.declare(ch, topic, group).await?;
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

#[async_trait]
impl MessageBroker for AmqpBroker {
    async fn publish(&self, topic: &str, message: Message) -> Result<()> {
        self.publish_batch(topic, vec![message]).await
    }

    async fn publish_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()> {
        let mut p = self.publisher().await?;
        let result = self
            .publish_on(p.as_ref().expect("opened"), topic, &messages)
            .await;
        Self::forget_if_broken(&mut p, &result);
        result
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>> {
        if topic.is_empty() || group.is_empty() {
            return Err(Error::invalid("topic and group must not be empty"));
        }
        {
            let mut p = self.publisher().await?;
            let result = self
                .declare(p.as_ref().expect("opened"), topic, group)
                .await;
            Self::forget_if_broken(&mut p, &result);
            result?;
        }
        let mut sub = AmqpSubscription {
            link: self.link.clone(),
            queue: self.queue(topic, group),
            generation: 0,
            live: None,
        };
        sub.consume().await?;
        Ok(Box::new(sub))
    }

    async fn lag(&self, topic: &str, group: &str) -> Result<u64> {
        let mut p = self.publisher().await?;
        let result = self.lag_on(p.as_ref().expect("opened"), topic, group).await;
        Self::forget_if_broken(&mut p, &result);
        result
    }
}

/// A channel consuming a queue, with the consumer's tag.
struct Consuming {
    ch: Channel,
    tag: String,
    consumer: lapin::Consumer,
}

impl Consuming {
    /// Cancels the consumer, then closes the channel (which requeues every delivery it had not
    /// acked), in that order and off any runtime. Dropping lapin's consumer while its channel
    /// closes races a `basic.cancel` against the close, and lapin turns the cancel's failure
    /// into an error of the whole connection.
    fn close(self) {
        std::thread::spawn(move || {
            futures::executor::block_on(async move {
                let Self { ch, tag, consumer } = self;
                if ch.status().connected() {
                    let _ = ch.basic_cancel(&tag, BasicCancelOptions::default()).await;
                    let _ = ch.close(200, "subscription closed").await;
                }
                drop(consumer);
            })
        });
    }
}

struct AmqpSubscription {
    link: Arc<Link>,
    queue: String,
    /// Counts the channels this subscription consumed on; a delivery tag names its channel's
    /// generation, because a tag means nothing on another channel.
    generation: u64,
    /// `None` after the channel died, until the next fetch consumes again.
    live: Option<Consuming>,
}

fn unavailable(message: &str) -> Error {
    Error::Unavailable {
        backend: "rabbitmq",
        message: message.into(),
    }
}

impl AmqpSubscription {
    /// Opens a channel (connecting again if need be) and consumes the queue on it. What the
    /// previous channel had not acked went back to the queue when it closed.
    async fn consume(&mut self) -> Result<()> {
        if let Some(old) = self.live.take() {
            old.close();
        }
        let ch = self.link.channel().await?;
        ch.basic_qos(256, BasicQosOptions::default())
            .await
            .map_err(map_err)?;
        let tag = format!("c-{:016x}", rand::random::<u64>());
        let consumer = ch
            .basic_consume(
                &self.queue,
                &tag,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(map_err)?;
        self.generation += 1;
        self.live = Some(Consuming { ch, tag, consumer });
        Ok(())
    }

    /// The delivery tag on the current channel, or `None` for a tag of an earlier channel
    /// (whose deliveries went back to the queue when it closed).
    fn current_tag(&self, tag: &str) -> Result<Option<u64>> {
        let parsed = tag
            .split_once('.')
            .and_then(|(g, t)| Some((g.parse::<u64>().ok()?, t.parse::<u64>().ok()?)));
        match parsed {
            Some((g, t)) if g == self.generation && self.live.is_some() => Ok(Some(t)),
            Some(_) => Ok(None),
            None => Err(Error::invalid(format!("delivery tag {tag:?}"))),
        }
    }

    fn delivery(&self, d: lapin::message::Delivery) -> Delivery {
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
            tag: format!("{}.{}", self.generation, d.delivery_tag),
            message: Message {
                key,
                payload: d.data,
                headers,
            },
            attempt,
        }
    }

    /// Acks (or nacks with requeue) a delivery of the current channel; if the channel died
    /// meanwhile, the subscription consumes again on its next fetch.
    async fn settle(&mut self, tag: u64, ack: bool) -> Result<()> {
        let live = self
            .live
            .as_ref()
            .ok_or_else(|| unavailable("no channel"))?;
        let result = if ack {
            live.ch.basic_ack(tag, BasicAckOptions::default()).await
        } else {
            let requeue = BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            };
            live.ch.basic_nack(tag, requeue).await
        }
        .map_err(map_err);
        if result.is_err() && !live.ch.status().connected() {
            if let Some(dead) = self.live.take() {
                dead.close();
            }
        }
        result
    }
}

#[async_trait]
impl Subscription for AmqpSubscription {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        if self.live.is_none() {
            self.consume().await?;
        }
        let consumer = &mut self.live.as_mut().expect("consumed above").consumer;
        let first = match tokio::time::timeout(wait, consumer.next()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(Some(Ok(d))) => d,
            // The channel or the connection died: consume again on the next fetch.
            Ok(None) | Ok(Some(Err(_))) => {
                if let Some(dead) = self.live.take() {
                    dead.close();
                }
                return Err(unavailable(
                    "the consumer's channel closed; the next fetch consumes again",
                ));
            }
        };
        let mut got = vec![first];
        while got.len() < max.max(1) {
            match consumer.next().now_or_never() {
                Some(Some(Ok(d))) => got.push(d),
                _ => break,
            }
        }
        Ok(got.into_iter().map(|d| self.delivery(d)).collect())
    }

    async fn ack(&mut self, tags: &[String]) -> Result<()> {
        for t in tags {
            // An earlier channel's delivery is back in the queue already: nothing to ack.
            if let Some(tag) = self.current_tag(t)? {
                self.settle(tag, true).await?;
            }
        }
        Ok(())
    }

    async fn nack(&mut self, tag: &str) -> Result<()> {
        let Some(tag) = self.current_tag(tag)? else {
            return Ok(()); // back in the queue already
        };
        self.settle(tag, false).await
    }
}

impl Drop for AmqpSubscription {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            live.close();
        }
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
