//! [`RedisStreamBroker`] (`redis-stream://host:port/db?prefix=NAME`): a stream per topic,
//! consumer groups, manual acks.
//!
//! - `publish` / `publish_batch`: `XADD` (a batch in one `MULTI`), with approximate trimming to
//!   the newest `MAX_LEN` entries.
//! - `fetch`: one script claims first the entries whose holder let go (a nack, or a dropped
//!   subscription, marks them idle since long ago) or went silent for `redeliver_after`
//!   (`XAUTOCLAIM`, with their delivery counts), then new ones (`XREADGROUP`). It polls until
//!   something arrives or the wait ends.
//! - An entry delivered `max_deliveries` times and nacked again goes to the stream of
//!   `<topic>.dlq` and is acked in the group.
//! - `lag`: entries the group has not read plus entries read but not acked.

use async_trait::async_trait;
use redis::{Script, Value};
use seckill_core::broker::{Delivery, Message, MessageBroker, Subscription};
use seckill_core::{Error, Result};
use seckill_store::redis::codec::{int, items, string};
use seckill_store::redis::{map_err, RedisConn, RedisTarget};
use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("claim.lua")));

/// Streams keep about this many newest entries.
pub const MAX_LEN: u64 = 1_000_000;
/// A handed-back entry is marked idle for this long, so the next claim takes it at once.
const LET_GO_IDLE_MS: u64 = 1_000_000_000;

/// The Redis Streams broker.
#[derive(Debug, Clone)]
pub struct RedisStreamBroker {
    t: RedisTarget,
    max_deliveries: u32,
    redeliver_after: Duration,
}

impl RedisStreamBroker {
    /// A broker on `target` that dead-letters after `max_deliveries` and hands out deliveries
    /// left unacked for `redeliver_after` again.
    pub fn new(target: RedisTarget, max_deliveries: u32, redeliver_after: Duration) -> Self {
        Self {
            t: target,
            max_deliveries: max_deliveries.max(1),
            redeliver_after,
        }
    }

    fn key(prefix: &str, topic: &str) -> String {
        format!("{prefix}:{{s:{}}}", topic.replace(['{', '}'], "_"))
    }

    fn add(pipe: &mut redis::Pipeline, key: &str, m: &Message) -> Result<()> {
        let headers = serde_json::to_string(&m.headers).map_err(|e| Error::backend("json", e))?;
        pipe.cmd("XADD")
            .arg(key)
            .arg("MAXLEN")
            .arg("~")
            .arg(MAX_LEN)
            .arg("*")
            .arg("k")
            .arg(&m.key)
            .arg("p")
            .arg(&m.payload)
            .arg("h")
            .arg(headers)
            .ignore();
        Ok(())
    }
}

fn message(fields: Value) -> Result<Message> {
    let f = items(fields, "stream entry")?;
    let mut m = Message::default();
    for pair in f.chunks(2) {
        let [name, value] = pair else { continue };
        match string(name, "field")?.as_str() {
            "k" => m.key = string(value, "key")?,
            "p" => {
                m.payload = match value {
                    Value::BulkString(b) => b.clone(),
                    other => string(other, "payload")?.into_bytes(),
                }
            }
            "h" => {
                m.headers =
                    serde_json::from_str::<BTreeMap<String, String>>(&string(value, "headers")?)
                        .map_err(|e| Error::backend("json", e))?
            }
            _ => {}
        }
    }
    Ok(m)
}

#[async_trait]
impl MessageBroker for RedisStreamBroker {
    async fn publish(&self, topic: &str, message: Message) -> Result<()> {
        self.publish_batch(topic, vec![message]).await
    }

    async fn publish_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let key = Self::key(&self.t.prefix, topic);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for m in &messages {
            Self::add(&mut pipe, &key, m)?;
        }
        pipe.query_async::<()>(&mut self.t.conn.clone())
            .await
            .map_err(map_err)
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>> {
        if topic.is_empty() || group.is_empty() {
            return Err(Error::invalid("topic and group must not be empty"));
        }
        let key = Self::key(&self.t.prefix, topic);
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.t.conn.clone())
            .await;
        if let Err(e) = r {
            if e.code() != Some("BUSYGROUP") {
                return Err(map_err(e));
            }
        }
        Ok(Box::new(StreamSubscription {
            conn: self.t.conn.clone(),
            prefix: self.t.prefix.clone(),
            key,
            topic: topic.to_string(),
            group: group.to_string(),
            consumer: format!("c-{:016x}", rand::random::<u64>()),
            max_deliveries: self.max_deliveries,
            redeliver_after: self.redeliver_after,
            unacked: Vec::new(),
        }))
    }

    async fn lag(&self, topic: &str, group: &str) -> Result<u64> {
        let key = Self::key(&self.t.prefix, topic);
        let groups: redis::RedisResult<Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&key)
            .query_async(&mut self.t.conn.clone())
            .await;
        let groups = match groups {
            Ok(v) => v,
            Err(e) if e.code() == Some("ERR") => return Ok(0), // no such stream yet
            Err(e) => return Err(map_err(e)),
        };
        for g in items(groups, "xinfo groups")? {
            let (mut name, mut pending, mut lag) = (String::new(), 0i64, 0i64);
            let fields = match g {
                Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                other => items(other, "xinfo group")?,
            };
            for pair in fields.chunks(2) {
                let [k, v] = pair else { continue };
                match string(k, "xinfo field")?.as_str() {
                    "name" => name = string(v, "group name")?,
                    "pending" => pending = int(v, "pending")?,
                    "lag" => lag = int(v, "lag").unwrap_or(0),
                    _ => {}
                }
            }
            if name == group {
                return Ok((pending + lag).max(0) as u64);
            }
        }
        let len: u64 = redis::cmd("XLEN")
            .arg(&key)
            .query_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(len)
    }
}

struct StreamSubscription {
    conn: RedisConn,
    prefix: String,
    key: String,
    topic: String,
    group: String,
    consumer: String,
    max_deliveries: u32,
    redeliver_after: Duration,
    /// Deliveries handed out and not yet acked or nacked (handed back on drop).
    unacked: Vec<String>,
}

impl StreamSubscription {
    /// Marks entries as let go: idle since long ago, so the next claim by anyone takes them.
    async fn let_go(&mut self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        redis::cmd("XCLAIM")
            .arg(&self.key)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(0)
            .arg(ids)
            .arg("IDLE")
            .arg(LET_GO_IDLE_MS)
            .arg("JUSTID")
            .query_async::<Value>(&mut self.conn)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn claim(&mut self, max: usize) -> Result<Vec<Delivery>> {
        let reply: Value = CLAIM
            .key(&self.key)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(self.redeliver_after.as_millis().max(1) as u64)
            .arg(max)
            .invoke_async(&mut self.conn)
            .await
            .map_err(map_err)?;
        let mut out = Vec::new();
        for e in items(reply, "claim")? {
            let mut f = items(e, "claimed entry")?.into_iter();
            let (Some(id), Some(fields), Some(n)) = (f.next(), f.next(), f.next()) else {
                return Err(Error::backend("redis", "malformed claimed entry"));
            };
            let id = string(&id, "entry id")?;
            let attempt = int(&n, "delivery count")? as u32;
            let message = message(fields)?;
            if attempt > self.max_deliveries {
                // Failed too often: to the dead-letter stream, and out of this group.
                let dlq = RedisStreamBroker::key(&self.prefix, &format!("{}.dlq", self.topic));
                let mut pipe = redis::pipe();
                pipe.atomic();
                RedisStreamBroker::add(&mut pipe, &dlq, &message)?;
                pipe.cmd("XACK")
                    .arg(&self.key)
                    .arg(&self.group)
                    .arg(&id)
                    .ignore();
                pipe.query_async::<()>(&mut self.conn)
                    .await
                    .map_err(map_err)?;
                tracing::warn!(topic = %self.topic, id = %id, "message dead-lettered");
                continue;
            }
            self.unacked.push(id.clone());
            out.push(Delivery {
                tag: id,
                message,
                attempt,
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl Subscription for StreamSubscription {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(2);
        loop {
            let got = self.claim(max.max(1)).await?;
            if !got.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(got);
            }
            tokio::time::sleep(pause.min(deadline - tokio::time::Instant::now())).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    async fn ack(&mut self, tags: &[String]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        redis::cmd("XACK")
            .arg(&self.key)
            .arg(&self.group)
            .arg(tags)
            .query_async::<i64>(&mut self.conn)
            .await
            .map_err(map_err)?;
        self.unacked.retain(|t| !tags.contains(t));
        Ok(())
    }

    async fn nack(&mut self, tag: &str) -> Result<()> {
        self.let_go(&[tag.to_string()]).await?;
        self.unacked.retain(|t| t != tag);
        Ok(())
    }
}

impl Drop for StreamSubscription {
    fn drop(&mut self) {
        // Hand unacked deliveries back at once (a crashed process's come back after
        // `redeliver_after` instead).
        let ids = std::mem::take(&mut self.unacked);
        if ids.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut conn = self.conn.clone();
        let (key, group, consumer) = (self.key.clone(), self.group.clone(), self.consumer.clone());
        rt.spawn(async move {
            let r: redis::RedisResult<Value> = redis::cmd("XCLAIM")
                .arg(&key)
                .arg(&group)
                .arg(&consumer)
                .arg(0)
                .arg(&ids)
                .arg("IDLE")
                .arg(LET_GO_IDLE_MS)
                .arg("JUSTID")
                .query_async(&mut conn)
                .await;
            if let Err(e) = r {
                tracing::debug!(error = %e, "could not hand deliveries back; they return after the redelivery timeout");
            }
        });
    }
}
