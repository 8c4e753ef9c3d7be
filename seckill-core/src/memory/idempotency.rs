//! In-memory [`IdempotencyStore`].

use crate::clock::{Clock, SystemClock};
use crate::idempotency::{Begin, IdempotencyStore, StoredResponse};
use crate::{Entity, Error, Result, Timestamp};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
struct Entry {
    hash: String,
    response: Option<StoredResponse>,
    expires: Timestamp,
}

/// The in-memory idempotency store (the embedded default).
#[derive(Debug)]
pub struct MemoryIdempotencyStore {
    entries: Mutex<HashMap<String, Entry>>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryIdempotencyStore {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl MemoryIdempotencyStore {
    /// A store whose entries expire on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            clock,
        }
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn begin(&self, key: &str, request_hash: &str, ttl: Duration) -> Result<Begin> {
        let now = self.clock.now();
        let expires = now + chrono::Duration::from_std(ttl).map_err(Error::invalid)?;
        let mut map = self.entries.lock();
        if map.len() > 100_000 {
            map.retain(|_, e| e.expires > now);
        }
        if map.get(key).is_some_and(|e| e.expires <= now) {
            map.remove(key);
        }
        match map.get(key) {
            None => {
                map.insert(
                    key.to_string(),
                    Entry {
                        hash: request_hash.to_string(),
                        response: None,
                        expires,
                    },
                );
                Ok(Begin::New)
            }
            Some(e) if e.hash != request_hash => Ok(Begin::Mismatch),
            Some(Entry {
                response: Some(r), ..
            }) => Ok(Begin::Completed(r.clone())),
            Some(_) => Ok(Begin::InProgress),
        }
    }

    async fn complete(&self, key: &str, response: StoredResponse) -> Result<()> {
        match self.entries.lock().get_mut(key) {
            Some(e) => {
                e.response = Some(response);
                Ok(())
            }
            None => Err(Error::not_found(Entity::IdempotencyKey, format!("{key:?}"))),
        }
    }

    async fn abandon(&self, key: &str) -> Result<()> {
        let mut map = self.entries.lock();
        if map.get(key).is_some_and(|e| e.response.is_none()) {
            map.remove(key);
        }
        Ok(())
    }
}
