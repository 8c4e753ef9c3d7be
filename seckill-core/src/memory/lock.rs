//! In-memory [`Lock`]: leases on a [`Clock`]; fencing tokens above every earlier one of the key
//! and at least the clock in microseconds, so they keep rising across a restart of the process
//! (storage that keeps fences, such as PostgreSQL, outlives this lock).

use crate::clock::{Clock, SystemClock};
use crate::lock::{Lock, LockGuard};
use crate::{Error, Result, Timestamp};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Default)]
struct Entry {
    fence: u64,
    holder: Option<(String, Timestamp)>,
}

/// The in-memory lock (the embedded default).
#[derive(Debug)]
pub struct MemoryLock {
    keys: Mutex<HashMap<String, Entry>>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryLock {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl MemoryLock {
    /// A lock whose leases run on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            keys: Mutex::new(HashMap::new()),
            clock,
        }
    }

    fn until(&self, ttl: Duration) -> Result<Timestamp> {
        Ok(self.clock.now() + chrono::Duration::from_std(ttl).map_err(Error::invalid)?)
    }
}

#[async_trait]
impl Lock for MemoryLock {
    async fn acquire(&self, key: &str, ttl: Duration) -> Result<Option<LockGuard>> {
        let now = self.clock.now();
        let until = self.until(ttl)?;
        let mut keys = self.keys.lock();
        let e = keys.entry(key.to_string()).or_default();
        if e.holder.as_ref().is_some_and(|(_, t)| *t > now) {
            return Ok(None);
        }
        let micros = u64::try_from(now.timestamp_micros()).unwrap_or(0);
        e.fence = (e.fence + 1).max(micros);
        let owner = format!("{:032x}", rand::random::<u128>());
        e.holder = Some((owner.clone(), until));
        Ok(Some(LockGuard {
            key: key.to_string(),
            token: e.fence,
            owner,
        }))
    }

    async fn extend(&self, guard: &LockGuard, ttl: Duration) -> Result<bool> {
        let now = self.clock.now();
        let until = self.until(ttl)?;
        let mut keys = self.keys.lock();
        match keys.get_mut(&guard.key).and_then(|e| e.holder.as_mut()) {
            Some((owner, t)) if *owner == guard.owner && *t > now => {
                *t = until;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, guard: &LockGuard) -> Result<bool> {
        let now = self.clock.now();
        let mut keys = self.keys.lock();
        let Some(e) = keys.get_mut(&guard.key) else {
            return Ok(false);
        };
        match &e.holder {
            Some((owner, t)) if *owner == guard.owner && *t > now => {
                e.holder = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
