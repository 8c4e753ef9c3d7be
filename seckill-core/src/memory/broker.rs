//! In-memory [`MessageBroker`]: a log per topic, a cursor per consumer group, in-flight
//! deliveries that come back when nacked, when their consumer drops, or after
//! `redeliver_after` without an ack (like Redis Streams' XAUTOCLAIM or a RabbitMQ channel close).

use crate::broker::{Delivery, Message, MessageBroker, Subscription};
use crate::clock::{Clock, SystemClock};
use crate::{Error, Result, Timestamp};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug)]
struct InFlight {
    message: Arc<Message>,
    attempt: u32,
    consumer: u64,
    since: Timestamp,
}

#[derive(Debug, Default)]
struct Group {
    cursor: u64,
    ready: VecDeque<(Arc<Message>, u32)>,
    inflight: HashMap<String, InFlight>,
    tag_seq: u64,
}

#[derive(Debug, Default)]
struct Topic {
    base: u64,
    log: VecDeque<Arc<Message>>,
    groups: HashMap<String, Group>,
}

impl Topic {
    fn end(&self) -> u64 {
        self.base + self.log.len() as u64
    }

    /// Drops the log prefix every group has read.
    fn truncate(&mut self) {
        if let Some(min) = self.groups.values().map(|g| g.cursor).min() {
            while self.base < min && self.log.pop_front().is_some() {
                self.base += 1;
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    topics: Mutex<HashMap<String, Topic>>,
    notify: Notify,
    clock: Arc<dyn Clock>,
    max_deliveries: u32,
    redeliver_after: chrono::Duration,
    next_consumer: AtomicU64,
}

/// The in-memory broker (the embedded default).
#[derive(Debug, Clone)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock), 5, Duration::from_secs(30))
    }
}

impl MemoryBroker {
    /// A broker dead-lettering after `max_deliveries` and redelivering deliveries left unacked
    /// for `redeliver_after` (measured on `clock`).
    pub fn new(clock: Arc<dyn Clock>, max_deliveries: u32, redeliver_after: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                topics: Mutex::new(HashMap::new()),
                notify: Notify::new(),
                clock,
                max_deliveries: max_deliveries.max(1),
                redeliver_after: chrono::Duration::from_std(redeliver_after)
                    .unwrap_or(chrono::Duration::MAX),
                next_consumer: AtomicU64::new(1),
            }),
        }
    }
}

impl Inner {
    fn append(&self, topic: &str, messages: Vec<Message>) {
        let mut topics = self.topics.lock();
        let t = topics.entry(topic.to_string()).or_default();
        t.log.extend(messages.into_iter().map(Arc::new));
        drop(topics);
        self.notify.notify_waiters();
    }

    fn take(&self, topic: &str, group: &str, consumer: u64, max: usize) -> Vec<Delivery> {
        let now = self.clock.now();
        let mut topics = self.topics.lock();
        let Some(t) = topics.get_mut(topic) else {
            return Vec::new();
        };
        let end = t.end();
        let base = t.base;
        let Some(g) = t.groups.get_mut(group) else {
            return Vec::new();
        };
        // Reclaim deliveries left unacked too long.
        let stale: Vec<String> = g
            .inflight
            .iter()
            .filter(|(_, f)| f.since + self.redeliver_after <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for tag in stale {
            let f = g.inflight.remove(&tag).expect("listed above");
            g.ready.push_back((f.message, f.attempt));
        }
        let mut out = Vec::new();
        while out.len() < max {
            let (message, attempt) = if let Some((m, a)) = g.ready.pop_front() {
                (m, a + 1)
            } else if g.cursor < end {
                let m = t.log[(g.cursor - base) as usize].clone();
                g.cursor += 1;
                (m, 1)
            } else {
                break;
            };
            g.tag_seq += 1;
            let tag = format!("{consumer}-{}", g.tag_seq);
            out.push(Delivery {
                tag: tag.clone(),
                message: (*message).clone(),
                attempt,
            });
            g.inflight.insert(
                tag,
                InFlight {
                    message,
                    attempt,
                    consumer,
                    since: now,
                },
            );
        }
        t.truncate();
        out
    }
}

#[async_trait]
impl MessageBroker for MemoryBroker {
    async fn publish(&self, topic: &str, message: Message) -> Result<()> {
        self.inner.append(topic, vec![message]);
        Ok(())
    }

    async fn publish_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()> {
        self.inner.append(topic, messages);
        Ok(())
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>> {
        if topic.is_empty() || group.is_empty() {
            return Err(Error::invalid("topic and group must not be empty"));
        }
        {
            let mut topics = self.inner.topics.lock();
            let t = topics.entry(topic.to_string()).or_default();
            let base = t.base;
            t.groups.entry(group.to_string()).or_insert_with(|| Group {
                cursor: base,
                ..Group::default()
            });
        }
        Ok(Box::new(MemorySubscription {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            group: group.to_string(),
            consumer: self.inner.next_consumer.fetch_add(1, Ordering::Relaxed),
        }))
    }

    async fn lag(&self, topic: &str, group: &str) -> Result<u64> {
        let topics = self.inner.topics.lock();
        let Some(t) = topics.get(topic) else {
            return Ok(0);
        };
        Ok(match t.groups.get(group) {
            Some(g) => (t.end() - g.cursor) + g.ready.len() as u64 + g.inflight.len() as u64,
            None => t.log.len() as u64,
        })
    }
}

struct MemorySubscription {
    inner: Arc<Inner>,
    topic: String,
    group: String,
    consumer: u64,
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self
                .inner
                .take(&self.topic, &self.group, self.consumer, max.max(1));
            if !got.is_empty() {
                return Ok(got);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(self
                    .inner
                    .take(&self.topic, &self.group, self.consumer, max.max(1)));
            }
        }
    }

    async fn ack(&mut self, tags: &[String]) -> Result<()> {
        let mut topics = self.inner.topics.lock();
        if let Some(g) = topics
            .get_mut(&self.topic)
            .and_then(|t| t.groups.get_mut(&self.group))
        {
            for tag in tags {
                g.inflight.remove(tag);
            }
        }
        Ok(())
    }

    async fn nack(&mut self, tag: &str) -> Result<()> {
        let dead = {
            let mut topics = self.inner.topics.lock();
            let Some(g) = topics
                .get_mut(&self.topic)
                .and_then(|t| t.groups.get_mut(&self.group))
            else {
                return Ok(());
            };
            let Some(f) = g.inflight.remove(tag) else {
                return Ok(());
            };
            if f.attempt >= self.inner.max_deliveries {
                Some(f.message)
            } else {
                g.ready.push_back((f.message, f.attempt));
                None
            }
        };
        match dead {
            Some(m) => self
                .inner
                .append(&format!("{}.dlq", self.topic), vec![(*m).clone()]),
            None => self.inner.notify.notify_waiters(),
        }
        Ok(())
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        let mut topics = self.inner.topics.lock();
        if let Some(g) = topics
            .get_mut(&self.topic)
            .and_then(|t| t.groups.get_mut(&self.group))
        {
            let mine: Vec<String> = g
                .inflight
                .iter()
                .filter(|(_, f)| f.consumer == self.consumer)
                .map(|(k, _)| k.clone())
                .collect();
            for tag in mine {
                let f = g.inflight.remove(&tag).expect("listed above");
                g.ready.push_back((f.message, f.attempt));
            }
        }
        drop(topics);
        self.inner.notify.notify_waiters();
    }
}
