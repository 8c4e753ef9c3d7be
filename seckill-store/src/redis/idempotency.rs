//! [`RedisIdempotencyStore`]: one hash per key with the request's hash, its state and, once
//! complete, the stored response; expires with its TTL.

use super::codec::{int, items, unexpected};
use super::conn::{map_err, RedisTarget};
use async_trait::async_trait;
use redis::{Script, Value};
use seckill_core::idempotency::{Begin, IdempotencyStore, StoredResponse};
use seckill_core::{Entity, Error, Result};
use std::sync::LazyLock;
use std::time::Duration;

static BEGIN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/idem_begin.lua")));
static COMPLETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/idem_complete.lua")));
static ABANDON: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/idem_abandon.lua")));

/// The Redis idempotency store.
#[derive(Debug, Clone)]
pub struct RedisIdempotencyStore {
    t: RedisTarget,
}

impl RedisIdempotencyStore {
    /// A store on `target`.
    pub fn new(target: RedisTarget) -> Self {
        Self { t: target }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{{i:{}}}", self.t.prefix, key.replace(['{', '}'], "_"))
    }
}

#[async_trait]
impl IdempotencyStore for RedisIdempotencyStore {
    async fn begin(&self, key: &str, request_hash: &str, ttl: Duration) -> Result<Begin> {
        let reply: Value = BEGIN
            .key(self.key(key))
            .arg(request_hash)
            .arg((ttl.as_millis() as u64).max(1))
            .invoke_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        let f = items(reply, "idempotency begin")?;
        Ok(match f.first().map(|c| int(c, "begin code")).transpose()? {
            Some(0) => Begin::New,
            Some(1) => Begin::InProgress,
            Some(2) => Begin::Completed(StoredResponse {
                status: int(&f[1], "status")? as u16,
                body: match &f[2] {
                    Value::BulkString(b) => b.clone(),
                    other => return Err(unexpected("stored body", other)),
                },
            }),
            Some(3) => Begin::Mismatch,
            _ => return Err(unexpected("idempotency begin", &Value::Array(f))),
        })
    }

    async fn complete(&self, key: &str, response: StoredResponse) -> Result<()> {
        let n: i64 = COMPLETE
            .key(self.key(key))
            .arg(response.status)
            .arg(response.body)
            .invoke_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        if n == 1 {
            Ok(())
        } else {
            Err(Error::not_found(Entity::IdempotencyKey, format!("{key:?}")))
        }
    }

    async fn abandon(&self, key: &str) -> Result<()> {
        ABANDON
            .key(self.key(key))
            .invoke_async::<i64>(&mut self.t.conn.clone())
            .await
            .map_err(map_err)
            .map(|_| ())
    }
}
