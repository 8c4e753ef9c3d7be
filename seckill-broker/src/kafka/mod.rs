//! [`KafkaBroker`] (`kafka://host:9092[,host2:9092]?partitions=N&prefix=NAME`): Kafka, or any
//! broker speaking its protocol (tansu, Redpanda), through rdkafka and its bundled librdkafka.
//! Options `producer.<property>=` and `consumer.<property>=` pass librdkafka properties
//! through (TLS, SASL, tuning).
//!
//! **tansu 0.6** answers a fetch that starts inside a record batch with the batches after it,
//! so a consumer resuming from a committed offset in the middle of a batch would skip the rest
//! of that batch. Against tansu, publish one message per record batch:
//! `producer.batch.num.messages=1` (the producer still pipelines requests).
//!
//! - A topic is a Kafka topic `<prefix>.<topic>` with `partitions` partitions (default
//!   [`DEFAULT_PARTITIONS`]), created on first use; a consumer group is the Kafka group
//!   `<prefix>.<topic>.<group>` (Kafka rebalances a group across all its topics), starting from the earliest offset, so a group receives what was
//!   published before its first subscribe.
//! - Publishing goes through one idempotent producer (`enable.idempotence`, `acks=all`) that
//!   lingers a few milliseconds to batch: `publish_batch` enqueues every message, then awaits
//!   all their delivery reports together. Messages are keyed, so one key (one activity's events)
//!   stays on one partition and keeps its order.
//! - Offsets are committed by hand, after the handler acked: the committed offset of a partition
//!   is the lowest offset this consumer delivered and has not acked yet, so an unacked message
//!   (and whatever follows it) is delivered again to the group when its consumer goes away.
//! - Kafka has no per-message nack. A nacked message is published again at the end of its topic
//!   with its attempt count (header `seckill-attempt`) raised, then counts as acked; after
//!   `max_deliveries` attempts it goes to `<topic>.dlq` instead. A redelivery after a consumer
//!   died is not counted (Kafka does not count deliveries).
//! - `lag`: the sum over partitions of the high watermark minus the group's committed offset.

use async_trait::async_trait;
use futures::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message as _, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use seckill_core::broker::{Delivery, Message, MessageBroker, Subscription};
use seckill_core::registry::BackendUrl;
use seckill_core::{Error, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Partitions of a topic the broker creates, unless the URL says `partitions=`.
pub const DEFAULT_PARTITIONS: i32 = 3;
/// The header carrying a message's attempt count across nacks.
const ATTEMPT: &str = "seckill-attempt";
/// How long `subscribe` waits for the group to assign the new consumer its partitions.
const JOIN_WAIT: Duration = Duration::from_secs(3);
/// How long admin, commit and offset queries may take.
const TIMEOUT: Duration = Duration::from_secs(10);

fn unavailable(message: impl std::fmt::Display) -> Error {
    Error::Unavailable {
        backend: "kafka",
        message: message.to_string(),
    }
}

fn map_err(e: KafkaError) -> Error {
    match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::QueueFull
            | RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::CoordinatorLoadInProgress
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::RebalanceInProgress,
        ) => unavailable(e),
        _ => Error::backend("kafka", e),
    }
}

/// Runs librdkafka's blocking calls (commits, offset and watermark queries) off the async
/// threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::backend("kafka", e))?
}

/// What the URL says.
#[derive(Debug, Clone)]
struct Settings {
    brokers: String,
    prefix: String,
    partitions: i32,
    /// librdkafka properties from `producer.<name>=` options.
    producer: Vec<(String, String)>,
    /// librdkafka properties from `consumer.<name>=` options.
    consumer: Vec<(String, String)>,
}

impl Settings {
    fn parse(url: &BackendUrl) -> Result<Self> {
        let raw = url.expose();
        let rest = raw
            .strip_prefix("kafka://")
            .ok_or_else(|| Error::invalid(format!("{url}: not a kafka:// URL")))?;
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let brokers = hosts.trim_end_matches('/').to_string();
        if brokers.is_empty() {
            return Err(Error::invalid(format!("{url}: no broker address")));
        }
        let mut s = Self {
            brokers,
            prefix: "seckill".into(),
            partitions: DEFAULT_PARTITIONS,
            producer: Vec::new(),
            consumer: Vec::new(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("prefix", p)) if !p.is_empty() => s.prefix = p.to_string(),
                Some(("partitions", n)) => {
                    s.partitions = n
                        .parse()
                        .ok()
                        .filter(|n| (1..=1024).contains(n))
                        .ok_or_else(|| {
                            Error::invalid(format!("{url}: partitions must be 1 to 1024"))
                        })?
                }
                Some((k, v)) if k.starts_with("producer.") && k.len() > 9 => {
                    s.producer.push((k[9..].to_string(), v.to_string()))
                }
                Some((k, v)) if k.starts_with("consumer.") && k.len() > 9 => {
                    s.consumer.push((k[9..].to_string(), v.to_string()))
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "{url}: unknown option {pair:?} (known: prefix, partitions, \
                         producer.<librdkafka property>, consumer.<librdkafka property>)"
                    )))
                }
            }
        }
        Ok(s)
    }
}

/// Topic and group names Kafka accepts: `[A-Za-z0-9._-]`.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The Kafka broker.
pub struct KafkaBroker {
    inner: Arc<Inner>,
}

/// The broker's clients, shared with its subscriptions (which republish nacked messages).
struct Inner {
    settings: Settings,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    max_deliveries: u32,
    /// Topics known to exist.
    created: tokio::sync::Mutex<HashSet<String>>,
    /// One idle consumer per group, for reading its committed offsets.
    lag_readers: Mutex<HashMap<String, Arc<BaseConsumer>>>,
}

impl std::fmt::Debug for KafkaBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.inner.settings;
        f.debug_struct("KafkaBroker")
            .field("brokers", &s.brokers)
            .field("prefix", &s.prefix)
            .field("partitions", &s.partitions)
            .finish_non_exhaustive()
    }
}

impl KafkaBroker {
    /// Connects (the producer and the admin client; consumers connect on subscribe).
    pub async fn connect(url: &BackendUrl, max_deliveries: u32) -> Result<Arc<Self>> {
        let settings = Settings::parse(url)?;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &settings.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000");
        for (k, v) in &settings.producer {
            config.set(k, v);
        }
        let producer: FutureProducer = config.create().map_err(map_err)?;
        // The admin client is a producer-type client: it takes the producer's options (TLS,
        // SASL) too.
        let mut admin_config = ClientConfig::new();
        admin_config.set("bootstrap.servers", &settings.brokers);
        for (k, v) in &settings.producer {
            admin_config.set(k, v);
        }
        let admin: AdminClient<DefaultClientContext> = admin_config.create().map_err(map_err)?;
        let inner = Arc::new(Inner {
            settings,
            producer,
            admin,
            max_deliveries: max_deliveries.max(1),
            created: tokio::sync::Mutex::new(HashSet::new()),
            lag_readers: Mutex::new(HashMap::new()),
        });
        // Fail at start, not at the first publish, when nothing answers.
        let i = inner.clone();
        blocking(move || {
            i.producer
                .client()
                .fetch_metadata(None, Duration::from_secs(5))
                .map(|_| ())
                .map_err(|e| unavailable(format!("{}: {e}", i.settings.brokers)))
        })
        .await?;
        Ok(Arc::new(Self { inner }))
    }
}

impl Inner {
    fn topic_name(&self, topic: &str) -> String {
        format!("{}.{}", self.settings.prefix, clean(topic))
    }

    /// A Kafka group per topic and group: Kafka rebalances a group across all its topics, and
    /// one topic's consumers must not wait on another's.
    fn group_id(&self, topic: &str, group: &str) -> String {
        format!("{}.{}.{}", self.settings.prefix, clean(topic), clean(group))
    }

    /// Creates the Kafka topic unless this process knows it exists.
    async fn ensure_topic(&self, name: &str) -> Result<()> {
        let mut created = self.created.lock().await;
        if created.contains(name) {
            return Ok(());
        }
        let topic = NewTopic::new(name, self.settings.partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let results = self
            .admin
            .create_topics(&[topic], &opts)
            .await
            .map_err(map_err)?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => {
                    return Err(map_err(KafkaError::AdminOp(code)))
                        .map_err(|e| Error::backend("kafka", format!("create topic {t}: {e}")))
                }
            }
        }
        created.insert(name.to_string());
        Ok(())
    }

    /// Enqueues one message (waiting while the producer's queue is full).
    async fn enqueue(&self, name: &str, m: &Message, attempt: u32) -> Result<DeliveryFuture> {
        let attempt = attempt.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(m.headers.len() + 1).insert(Header {
            key: ATTEMPT,
            value: Some(attempt.as_bytes()),
        });
        for (k, v) in &m.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let mut record = FutureRecord::to(name)
            .key(m.key.as_bytes())
            .payload(&m.payload)
            .headers(headers);
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match self.producer.send_result(record) {
                Ok(f) => return Ok(f),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                    if tokio::time::Instant::now() < deadline =>
                {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(map_err(e)),
            }
        }
    }

    /// Awaits delivery reports: all must be acknowledged by the broker.
    async fn delivered(futures: Vec<DeliveryFuture>) -> Result<()> {
        for f in futures {
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(map_err(e)),
                Err(_) => return Err(unavailable("the producer went away")),
            }
        }
        Ok(())
    }

    /// Publishes `(message, attempt)` pairs to a Kafka topic and waits for all of them.
    async fn send(&self, name: &str, messages: &[(&Message, u32)]) -> Result<()> {
        self.ensure_topic(name).await?;
        let mut futures = Vec::with_capacity(messages.len());
        for (m, attempt) in messages {
            futures.push(self.enqueue(name, m, *attempt).await?);
        }
        Self::delivered(futures).await
    }

    fn lag_reader(&self, topic: &str, group: &str) -> Result<Arc<BaseConsumer>> {
        let id = self.group_id(topic, group);
        let mut readers = self.lag_readers.lock().expect("lag readers");
        if let Some(c) = readers.get(&id) {
            return Ok(c.clone());
        }
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.settings.brokers)
            .set("group.id", &id)
            .set("enable.auto.commit", "false");
        for (k, v) in &self.settings.consumer {
            config.set(k, v);
        }
        let c: BaseConsumer = config.create().map_err(map_err)?;
        let c = Arc::new(c);
        readers.insert(id, c.clone());
        Ok(c)
    }
}

#[async_trait]
impl MessageBroker for KafkaBroker {
    async fn publish(&self, topic: &str, message: Message) -> Result<()> {
        self.inner
            .send(&self.inner.topic_name(topic), &[(&message, 1)])
            .await
    }

    async fn publish_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()> {
        let batch: Vec<(&Message, u32)> = messages.iter().map(|m| (m, 1)).collect();
        self.inner.send(&self.inner.topic_name(topic), &batch).await
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>> {
        if topic.is_empty() || group.is_empty() {
            return Err(Error::invalid("topic and group must not be empty"));
        }
        let name = self.inner.topic_name(topic);
        self.inner.ensure_topic(&name).await?;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.inner.settings.brokers)
            .set("group.id", self.inner.group_id(topic, group))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("fetch.wait.max.ms", "50")
            .set("topic.metadata.refresh.interval.ms", "2000");
        for (k, v) in &self.inner.settings.consumer {
            config.set(k, v);
        }
        let consumer: StreamConsumer = config.create().map_err(map_err)?;
        consumer.subscribe(&[&name]).map_err(map_err)?;
        let mut sub = Box::new(KafkaSubscription {
            consumer: Some(Arc::new(consumer)),
            broker: self.inner.clone(),
            topic: topic.to_string(),
            name,
            held: HashMap::new(),
            unacked: HashMap::new(),
            next: HashMap::new(),
            pending: VecDeque::new(),
            uncommitted: HashMap::new(),
        });
        sub.join(JOIN_WAIT).await?;
        Ok(sub)
    }

    async fn lag(&self, topic: &str, group: &str) -> Result<u64> {
        let name = self.inner.topic_name(topic);
        let reader = self.inner.lag_reader(topic, group)?;
        blocking(move || {
            let meta = match reader.fetch_metadata(Some(&name), TIMEOUT) {
                Ok(m) => m,
                Err(e) => return Err(map_err(e)),
            };
            let Some(t) = meta.topics().iter().find(|t| t.name() == name) else {
                return Ok(0);
            };
            if t.partitions().is_empty() {
                return Ok(0); // not created yet: nothing waits
            }
            let mut tpl = TopicPartitionList::new();
            for p in t.partitions() {
                tpl.add_partition(&name, p.id());
            }
            let committed = reader.committed_offsets(tpl, TIMEOUT).map_err(map_err)?;
            let mut lag = 0u64;
            for e in committed.elements() {
                let (low, high) = reader
                    .fetch_watermarks(&name, e.partition(), TIMEOUT)
                    .map_err(map_err)?;
                let from = match e.offset() {
                    Offset::Offset(o) => o.max(low),
                    _ => low,
                };
                lag += (high - from).max(0) as u64;
            }
            Ok(lag)
        })
        .await
    }
}

struct KafkaSubscription {
    /// `None` only while dropping.
    consumer: Option<Arc<StreamConsumer>>,
    broker: Arc<Inner>,
    topic: String,
    name: String,
    /// Deliveries handed out and not yet acked or nacked, by tag.
    held: HashMap<String, Held>,
    /// Unacked offsets per partition.
    unacked: HashMap<i32, BTreeSet<i64>>,
    /// One past the highest offset delivered, per partition.
    next: HashMap<i32, i64>,
    /// Messages received while waiting for the first assignment, not yet handed out.
    pending: VecDeque<OwnedMessage>,
    /// Offsets to commit, per partition, that the coordinator has not taken yet (a commit
    /// refused during a rebalance): committed on the next fetch or ack while the partition is
    /// still ours. Without this a refused last commit would leave the group's offset behind
    /// for good, and its lag above zero with nothing left to deliver.
    uncommitted: HashMap<i32, i64>,
}

struct Held {
    partition: i32,
    offset: i64,
    message: Message,
    attempt: u32,
}

impl KafkaSubscription {
    fn consumer(&self) -> &Arc<StreamConsumer> {
        self.consumer.as_ref().expect("consumer present until drop")
    }

    /// Polls until the group gave this consumer its first partitions (or `wait` ran out:
    /// a group with more members than partitions, or a member that is not polling, delays
    /// it), keeping what arrives meanwhile. A consumer that leaves before its join completed
    /// can stay in some coordinators' groups (tansu 0.6) and hold partitions it never reads.
    async fn join(&mut self, wait: Duration) -> Result<()> {
        let consumer = self.consumer().clone();
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            if consumer.assignment().map_err(map_err)?.count() > 0 {
                return Ok(());
            }
            if let Ok(Ok(m)) =
                tokio::time::timeout(Duration::from_millis(20), consumer.recv()).await
            {
                self.pending.push_back(m.detach());
            }
        }
        Ok(())
    }

    fn take(&mut self, m: OwnedMessage) -> Delivery {
        let mut headers = BTreeMap::new();
        let mut attempt = 1;
        if let Some(h) = m.headers() {
            for header in h.iter() {
                let value = String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned();
                if header.key == ATTEMPT {
                    attempt = value.parse().unwrap_or(1);
                } else {
                    headers.insert(header.key.to_string(), value);
                }
            }
        }
        let message = Message {
            key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers,
        };
        let (partition, offset) = (m.partition(), m.offset());
        let tag = format!("{partition}:{offset}");
        self.unacked.entry(partition).or_default().insert(offset);
        let next = self.next.entry(partition).or_insert(0);
        *next = (*next).max(offset + 1);
        self.held.insert(
            tag.clone(),
            Held {
                partition,
                offset,
                message: message.clone(),
                attempt,
            },
        );
        Delivery {
            tag,
            message,
            attempt,
        }
    }

    /// Forgets the deliveries and commits, for each partition they touched, the lowest offset
    /// still unacked (or one past the highest delivered).
    async fn settle(&mut self, tags: &[String]) -> Result<()> {
        let mut touched = BTreeSet::new();
        for t in tags {
            let Some(h) = self.held.remove(t) else {
                continue; // unknown or already settled: acking twice is harmless
            };
            if let Some(set) = self.unacked.get_mut(&h.partition) {
                set.remove(&h.offset);
            }
            touched.insert(h.partition);
        }
        if touched.is_empty() {
            return Ok(());
        }
        for p in touched {
            let commit = self
                .unacked
                .get(&p)
                .and_then(|s| s.first().copied())
                .or_else(|| self.next.get(&p).copied())
                .unwrap_or(0);
            self.uncommitted.insert(p, commit);
        }
        self.commit_pending().await
    }

    /// Commits the offsets waiting in `uncommitted` for the partitions still assigned to this
    /// consumer (the others' new owners deliver again from the group's offset: at least once).
    /// A refusal because of a rebalance keeps them for the next try.
    async fn commit_pending(&mut self) -> Result<()> {
        if self.uncommitted.is_empty() {
            return Ok(());
        }
        let consumer = self.consumer().clone();
        let assigned: BTreeSet<i32> = consumer
            .assignment()
            .map_err(map_err)?
            .elements()
            .iter()
            .filter(|e| e.topic() == self.name)
            .map(|e| e.partition())
            .collect();
        self.uncommitted.retain(|p, _| assigned.contains(p));
        if self.uncommitted.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (p, offset) in &self.uncommitted {
            tpl.add_partition_offset(&self.name, *p, Offset::Offset(*offset))
                .map_err(map_err)?;
        }
        let done = blocking(move || match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => Ok(true),
            // A rebalance is under way: try again on the next fetch or ack.
            Err(e)
                if matches!(
                    e.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::RebalanceInProgress
                            | RDKafkaErrorCode::IllegalGeneration
                            | RDKafkaErrorCode::UnknownMemberId
                            | RDKafkaErrorCode::State
                    )
                ) =>
            {
                tracing::debug!(error = %e, "kafka commit refused during a rebalance; retrying later");
                Ok(false)
            }
            Err(e) => Err(map_err(e)),
        })
        .await?;
        if done {
            self.uncommitted.clear();
        }
        Ok(())
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        self.commit_pending().await?;
        let consumer = self.consumer().clone();
        let mut out = Vec::new();
        while out.len() < max.max(1) {
            let Some(m) = self.pending.pop_front() else {
                break;
            };
            out.push(self.take(m));
        }
        if out.is_empty() {
            let first = match tokio::time::timeout(wait, consumer.recv()).await {
                Err(_) => return Ok(out),
                Ok(Err(e)) => return Err(map_err(e)),
                Ok(Ok(m)) => m.detach(),
            };
            out.push(self.take(first));
        }
        while out.len() < max.max(1) {
            match consumer.recv().now_or_never() {
                Some(Ok(m)) => {
                    let m = m.detach();
                    out.push(self.take(m));
                }
                _ => break,
            }
        }
        Ok(out)
    }

    async fn ack(&mut self, tags: &[String]) -> Result<()> {
        self.settle(tags).await
    }

    async fn nack(&mut self, tag: &str) -> Result<()> {
        let Some(h) = self.held.get(tag) else {
            return Err(Error::invalid(format!("delivery tag {tag:?} is not held")));
        };
        let (target, attempt) = if h.attempt >= self.broker.max_deliveries {
            (format!("{}.dlq", self.topic), 1)
        } else {
            (self.topic.clone(), h.attempt + 1)
        };
        let name = self.broker.topic_name(&target);
        let message = h.message.clone();
        self.broker.send(&name, &[(&message, attempt)]).await?;
        self.settle(&[tag.to_string()]).await
    }
}

impl Drop for KafkaSubscription {
    fn drop(&mut self) {
        // Leaving the group blocks until the coordinator answers: do it off the async threads.
        if let Some(c) = self.consumer.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn_blocking(move || drop(c));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Settings> {
        Settings::parse(&BackendUrl::parse(url).unwrap())
    }

    #[test]
    fn url_options_are_read() {
        let s = parse(
            "kafka://k1:9092,k2:9092?partitions=6&prefix=shop\
             &producer.linger.ms=20&consumer.fetch.min.bytes=1024",
        )
        .unwrap();
        assert_eq!(s.brokers, "k1:9092,k2:9092");
        assert_eq!((s.prefix.as_str(), s.partitions), ("shop", 6));
        assert_eq!(s.producer, [("linger.ms".to_string(), "20".to_string())]);
        assert_eq!(
            s.consumer,
            [("fetch.min.bytes".to_string(), "1024".to_string())]
        );
        let d = parse("kafka://localhost:9092").unwrap();
        assert_eq!(
            (d.prefix.as_str(), d.partitions),
            ("seckill", DEFAULT_PARTITIONS)
        );
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (url, why) in [
            ("kafka://?prefix=x", "no broker address"),
            (
                "kafka://k:9092?partitions=0",
                "partitions must be 1 to 1024",
            ),
            (
                "kafka://k:9092?partitions=many",
                "partitions must be 1 to 1024",
            ),
            ("kafka://k:9092?partition=3", "unknown option"),
            ("kafka://k:9092?producer.=1", "unknown option"),
        ] {
            let e = parse(url).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{url}: {e:?}");
            assert!(e.to_string().contains(why), "{url}: {e}");
        }
    }

    #[test]
    fn names_are_what_kafka_accepts() {
        assert_eq!(clean("seckill.holds"), "seckill.holds");
        assert_eq!(clean("a b/c{d}"), "a_b_c_d_");
    }
}
