//! [`RedisLock`]: `SET NX PX` with a fencing token above every earlier one and at least
//! Redis's clock in microseconds (so it keeps rising across a restart that lost the counter);
//! extend and release only by the owner, in Lua.

use super::conn::{map_err, RedisTarget};
use async_trait::async_trait;
use redis::Script;
use seckill_core::lock::{Lock, LockGuard};
use seckill_core::Result;
use std::sync::LazyLock;
use std::time::Duration;

static ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/lock_acquire.lua")));
static EXTEND: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/lock_extend.lua")));
static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/lock_release.lua")));

/// The Redis lock.
#[derive(Debug, Clone)]
pub struct RedisLock {
    t: RedisTarget,
}

impl RedisLock {
    /// A lock on `target`.
    pub fn new(target: RedisTarget) -> Self {
        Self { t: target }
    }

    fn key(&self, key: &str, part: &str) -> String {
        format!(
            "{}:{{l:{}}}:{}",
            self.t.prefix,
            key.replace(['{', '}'], "_"),
            part
        )
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

#[async_trait]
impl Lock for RedisLock {
    async fn acquire(&self, key: &str, ttl: Duration) -> Result<Option<LockGuard>> {
        let owner = format!("{:032x}", rand::random::<u128>());
        let token: Option<u64> = ACQUIRE
            .key(self.key(key, "lock"))
            .key(self.key(key, "fence"))
            .arg(&owner)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(token.map(|token| LockGuard {
            key: key.to_string(),
            token,
            owner,
        }))
    }

    async fn extend(&self, g: &LockGuard, ttl: Duration) -> Result<bool> {
        let n: i64 = EXTEND
            .key(self.key(&g.key, "lock"))
            .arg(&g.owner)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn release(&self, g: &LockGuard) -> Result<bool> {
        let n: i64 = RELEASE
            .key(self.key(&g.key, "lock"))
            .arg(&g.owner)
            .invoke_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(n == 1)
    }
}
