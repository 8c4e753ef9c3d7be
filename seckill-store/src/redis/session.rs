//! [`RedisSessionStore`]: revoked token ids and a user's revoked-below version under the user's
//! hash tag (so one script checks both), and one hash per phone with its pending code and the
//! tries used; everything expires with its TTL.
//!
//! Every revocation is also appended, with its end time, to one stream (`{rev}:feed`, trimmed
//! of what has expired) and announced on a channel: the feed a [`RevocationCache`] reads at
//! start and follows, woken by the announcement. The stream is written first, so a revocation
//! a cache may miss does not exist yet anywhere.
//!
//! [`RevocationCache`]: seckill_core::session::RevocationCache

use super::codec::{int, items, unexpected};
use super::conn::{map_err, RedisTarget};
use async_trait::async_trait;
use redis::{Script, Value};
use seckill_core::domain::UserId;
use seckill_core::session::{CodeCheck, Revocation, RevocationFeed, SessionStore};
use seckill_core::{Error, Result};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

static BELOW: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/session_below.lua")));
static REVOKED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/session_revoked.lua")));
static PUT_CODE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/code_put.lua")));
static CHECK_CODE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/code_check.lua")));
static LOG: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/revocation_log.lua")));

/// Most feed entries read per call.
const PAGE: usize = 1000;

/// The Redis session store.
#[derive(Debug, Clone)]
pub struct RedisSessionStore {
    t: RedisTarget,
    /// Woken by every revocation announced (the listener starts with the first caller).
    signal: Arc<OnceLock<Arc<Notify>>>,
}

impl RedisSessionStore {
    /// A store on `target`.
    pub fn new(target: RedisTarget) -> Self {
        Self {
            t: target,
            signal: Arc::new(OnceLock::new()),
        }
    }

    fn feed_key(&self) -> String {
        format!("{}:{{rev}}:feed", self.t.prefix)
    }

    fn longest_key(&self) -> String {
        format!("{}:{{rev}}:ttl", self.t.prefix)
    }

    fn channel(&self) -> String {
        format!("{}:revoked", self.t.prefix)
    }

    /// Appends a revocation to the feed and announces it.
    async fn log(&self, kind: &str, user: UserId, what: &str, ttl: Duration) -> Result<()> {
        LOG.key(self.feed_key())
            .key(self.longest_key())
            .arg(kind)
            .arg(user.0)
            .arg(what)
            .arg(ms(ttl))
            .arg(self.channel())
            .invoke_async::<String>(&mut self.t.conn.clone())
            .await
            .map_err(map_err)
            .map(|_| ())
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
        self.log("t", user, token_id, ttl).await?;
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
        self.log("b", user, &version.to_string(), ttl).await?;
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

    async fn revocations_after(&self, cursor: &str) -> Result<Option<RevocationFeed>> {
        let mut entries = Vec::new();
        let mut cursor = cursor.to_string();
        loop {
            let start = if cursor.is_empty() {
                "-".to_string()
            } else {
                format!("({cursor}")
            };
            let page: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(self.feed_key())
                .arg(start)
                .arg("+")
                .arg("COUNT")
                .arg(PAGE)
                .query_async(&mut self.t.conn.clone())
                .await
                .map_err(map_err)?;
            let n = page.ids.len();
            for e in page.ids {
                entries.push(revocation(&e)?);
                cursor = e.id;
            }
            if n < PAGE {
                return Ok(Some(RevocationFeed { entries, cursor }));
            }
        }
    }

    fn revocation_signal(&self) -> Option<Arc<Notify>> {
        let mut first = false;
        let n = self
            .signal
            .get_or_init(|| {
                first = true;
                Arc::new(Notify::new())
            })
            .clone();
        if first {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(listen(
                    self.t.pubsub.clone(),
                    self.channel(),
                    Arc::downgrade(&n),
                ));
            }
        }
        Some(n)
    }
}

/// One feed entry.
fn revocation(e: &redis::streams::StreamId) -> Result<Revocation> {
    let field = |k: &str| -> Result<String> {
        e.get::<String>(k)
            .ok_or_else(|| Error::backend("redis", format!("revocation {} has no {k}", e.id)))
    };
    let num = |k: &str| -> Result<i64> {
        field(k)?
            .parse()
            .map_err(|_| Error::backend("redis", format!("revocation {}: bad {k}", e.id)))
    };
    let user = UserId(num("u")?);
    let until = chrono::DateTime::from_timestamp_millis(num("until")?)
        .ok_or_else(|| Error::backend("redis", format!("revocation {}: bad until", e.id)))?;
    Ok(match field("k")?.as_str() {
        "t" => Revocation::Token {
            user,
            token_id: field("x")?,
            until,
        },
        "b" => Revocation::Below {
            user,
            version: num("x")? as u32,
            until,
        },
        k => return Err(Error::backend("redis", format!("revocation kind {k:?}"))),
    })
}

/// Wakes `signal` on every announcement until nobody holds it; resubscribes after a loss
/// (the cache's poll covers what was announced meanwhile).
async fn listen(client: redis::Client, channel: String, signal: std::sync::Weak<Notify>) {
    use futures::StreamExt;
    loop {
        let session = async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            let mut messages = ps.on_message();
            loop {
                tokio::select! {
                    m = messages.next() => {
                        let (Some(_), Some(n)) = (m, signal.upgrade()) else { break };
                        n.notify_waiters();
                    }
                    // Nobody left to wake: let the connection go.
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {
                        if signal.strong_count() == 0 {
                            break;
                        }
                    }
                }
            }
            Ok::<(), redis::RedisError>(())
        };
        if let Err(e) = session.await {
            tracing::debug!(error = %e, "revocation subscription lost; resubscribing");
        }
        if signal.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
