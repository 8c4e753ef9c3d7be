//! [`RedisDelayQueue`]: a sorted set of due times per queue; a claim moves the item's score to
//! the end of its lease (so lapsed leases come due again) and records the claim's token.

use super::codec::{int, items, string};
use super::conn::{map_err, RedisTarget};
use async_trait::async_trait;
use chrono::DateTime;
use redis::{Script, Value};
use seckill_core::delay::{ClaimedItem, DelayQueue};
use seckill_core::{Error, Result, Timestamp};
use std::sync::LazyLock;
use std::time::Duration;

static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/delay_claim.lua")));
static COMPLETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/delay_complete.lua")));

/// The Redis delay queue.
#[derive(Debug, Clone)]
pub struct RedisDelayQueue {
    t: RedisTarget,
}

impl RedisDelayQueue {
    /// A delay queue on `target`.
    pub fn new(target: RedisTarget) -> Self {
        Self { t: target }
    }

    fn key(&self, queue: &str, part: &str) -> String {
        format!(
            "{}:{{q:{}}}:{}",
            self.t.prefix,
            queue.replace(['{', '}'], "_"),
            part
        )
    }
}

#[async_trait]
impl DelayQueue for RedisDelayQueue {
    async fn schedule(&self, queue: &str, id: &str, due: Timestamp) -> Result<()> {
        if id.is_empty() {
            return Err(Error::invalid("empty item id"));
        }
        redis::pipe()
            .atomic()
            .cmd("ZADD")
            .arg(self.key(queue, "due"))
            .arg(due.timestamp_millis())
            .arg(id)
            .ignore()
            .cmd("HDEL")
            .arg(self.key(queue, "lease"))
            .arg(id)
            .ignore()
            .query_async::<()>(&mut self.t.conn.clone())
            .await
            .map_err(map_err)
    }

    async fn cancel(&self, queue: &str, id: &str) -> Result<bool> {
        let (removed, _): (i64, i64) = redis::pipe()
            .atomic()
            .cmd("ZREM")
            .arg(self.key(queue, "due"))
            .arg(id)
            .cmd("HDEL")
            .arg(self.key(queue, "lease"))
            .arg(id)
            .query_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(removed == 1)
    }

    async fn claim(
        &self,
        queue: &str,
        now: Timestamp,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedItem>> {
        let reply: Value = CLAIM
            .key(self.key(queue, "due"))
            .key(self.key(queue, "lease"))
            .key(self.key(queue, "tok"))
            .arg(now.timestamp_millis())
            .arg(max)
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        items(reply, "delay claim")?
            .into_iter()
            .map(|e| {
                let f = items(e, "claimed item")?;
                let due = int(&f[1], "due")?;
                Ok(ClaimedItem {
                    id: string(&f[0], "id")?,
                    due: DateTime::from_timestamp_millis(due)
                        .ok_or_else(|| Error::backend("redis", "due time out of range"))?,
                    token: int(&f[2], "token")? as u64,
                })
            })
            .collect()
    }

    async fn complete(&self, queue: &str, id: &str, token: u64) -> Result<bool> {
        let n: i64 = COMPLETE
            .key(self.key(queue, "due"))
            .key(self.key(queue, "lease"))
            .arg(id)
            .arg(token)
            .invoke_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn len(&self, queue: &str) -> Result<u64> {
        redis::cmd("ZCARD")
            .arg(self.key(queue, "due"))
            .query_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)
    }
}
