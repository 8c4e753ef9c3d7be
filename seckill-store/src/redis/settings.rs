//! [`RedisSettingsStore`]: the shared live settings as one hash (`v`, the version; `doc`, the
//! document), written by a compare-and-set script, polled by its version alone.

use super::codec::{int, items, unexpected};
use super::conn::{map_err, RedisTarget};
use async_trait::async_trait;
use redis::{Script, Value};
use seckill_core::settings::{stale, SettingsStore, Versioned};
use seckill_core::Result;
use std::sync::LazyLock;

static PUT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/settings_put.lua")));

/// The Redis settings store.
#[derive(Debug, Clone)]
pub struct RedisSettingsStore {
    t: RedisTarget,
    key: String,
}

impl RedisSettingsStore {
    /// A store on `target`.
    pub fn new(target: RedisTarget) -> Self {
        let key = format!("{}:{{settings}}", target.prefix);
        Self { t: target, key }
    }
}

#[async_trait]
impl SettingsStore for RedisSettingsStore {
    async fn version(&self) -> Result<u64> {
        let v: Option<u64> = redis::cmd("HGET")
            .arg(&self.key)
            .arg("v")
            .query_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(v.unwrap_or(0))
    }

    async fn get(&self) -> Result<Versioned> {
        let (v, doc): (Option<u64>, Option<String>) = redis::cmd("HMGET")
            .arg(&self.key)
            .arg("v")
            .arg("doc")
            .query_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(Versioned {
            version: v.unwrap_or(0),
            doc,
        })
    }

    async fn put(&self, expected: u64, doc: &str) -> Result<u64> {
        let reply: Value = PUT
            .key(&self.key)
            .arg(expected)
            .arg(doc)
            .invoke_async(&mut self.t.conn.clone())
            .await
            .map_err(map_err)?;
        let f = items(reply, "settings put")?;
        match (f.first(), f.get(1)) {
            (Some(ok), Some(v)) => {
                let v = int(v, "settings version")?.max(0) as u64;
                if int(ok, "settings put")? == 1 {
                    Ok(v)
                } else {
                    Err(stale(expected, v))
                }
            }
            _ => Err(unexpected("settings put", &Value::Array(f))),
        }
    }
}
