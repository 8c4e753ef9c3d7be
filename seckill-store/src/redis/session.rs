//! [`RedisSessionStore`]: revoked token ids and a user's revoked-below version under the user's
//! hash tag (so one script checks both), and one hash per phone with its pending code and the
//! tries used; everything expires with its TTL.

use super::codec::{int, items, unexpected};
use super::conn::{map_err, RedisTarget};
use async_trait::async_trait;
use redis::{Script, Value};
use seckill_core::domain::UserId;
use seckill_core::session::{CodeCheck, SessionStore};
use seckill_core::Result;
use std::sync::LazyLock;
use std::time::Duration;

static BELOW: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/session_below.lua")));
static REVOKED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/session_revoked.lua")));
static PUT_CODE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/code_put.lua")));
static CHECK_CODE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/code_check.lua")));

/// The Redis session store.
#[derive(Debug, Clone)]
pub struct RedisSessionStore {
    t: RedisTarget,
}

impl RedisSessionStore {
    /// A store on `target`.
    pub fn new(target: RedisTarget) -> Self {
        Self { t: target }
    }

    fn token_key(&self, user: UserId, token_id: &str) -> String {
        format!(
            "{}:{{s:{}}}:tok:{}",
            self.t.prefix,
            user.0,
            token_id.replace(['{', '}'], "_")
        )
    }

    fn below_key(&self, user: UserId) -> String {
        format!("{}:{{s:{}}}:below", self.t.prefix, user.0)
    }

    fn code_key(&self, phone: &str) -> String {
        format!("{}:{{c:{}}}", self.t.prefix, phone.replace(['{', '}'], "_"))
    }
}

fn ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn revoke_token(&self, user: UserId, token_id: &str, ttl: Duration) -> Result<()> {
        redis::cmd("SET")
            .arg(self.token_key(user, token_id))
            .arg(1)
            .arg("PX")
            .arg(ms(ttl))
            .query_async::<()>(&mut self.t.conn.clone())
            .await
            .map_err(map_err)
    }

    async fn revoke_versions_below(&self, user: UserId, version: u32, ttl: Duration) -> Result<()> {
        BELOW
            .key(self.below_key(user))
            .arg(version)
            .arg(ms(ttl))
            .invoke_async::<i64>(&mut self.t.conn.clone())
            .await
            .map_err(map_err)
            .map(|_| ())
    }

    async fn is_revoked(&self, user: UserId, token_id: &str, version: u32) -> Result<bool> {
        let n: i64 = REVOKED
            .key(self.token_key(user, token_id))
            .key(self.below_key(user))
            .arg(version)
            .invoke_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn put_code(&self, phone: &str, code: &str, ttl: Duration) -> Result<()> {
        PUT_CODE
            .key(self.code_key(phone))
            .arg(code)
            .arg(ms(ttl))
            .invoke_async::<i64>(&mut self.t.conn.clone())
            .await
            .map_err(map_err)
            .map(|_| ())
    }

    async fn check_code(&self, phone: &str, code: &str, max_tries: u32) -> Result<CodeCheck> {
        let reply: Value = CHECK_CODE
            .key(self.code_key(phone))
            .arg(code)
            .arg(max_tries)
            .invoke_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        let f = items(reply, "code check")?;
        Ok(match f.first().map(|c| int(c, "code check")).transpose()? {
            Some(0) => CodeCheck::Missing,
            Some(1) => CodeCheck::Valid,
            Some(2) if f.len() == 2 => CodeCheck::Wrong {
                left: int(&f[1], "tries left")?.max(0) as u32,
            },
            _ => return Err(unexpected("code check", &Value::Array(f))),
        })
    }
}
