//! In-memory [`DelayQueue`]: per queue, items with a due time and an optional lease.

use crate::delay::{ClaimedItem, DelayQueue};
use crate::{Error, Result, Timestamp};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug)]
struct Item {
    due: Timestamp,
    lease: Option<(Timestamp, u64)>,
}

/// The in-memory delay queue (the embedded default).
#[derive(Debug, Default)]
pub struct MemoryDelayQueue {
    queues: Mutex<HashMap<String, HashMap<String, Item>>>,
    tokens: std::sync::atomic::AtomicU64,
}

impl MemoryDelayQueue {
    /// An empty queue set.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl DelayQueue for MemoryDelayQueue {
    async fn schedule(&self, queue: &str, id: &str, due: Timestamp) -> Result<()> {
        if id.is_empty() {
            return Err(Error::invalid("empty item id"));
        }
        self.queues
            .lock()
            .entry(queue.to_string())
            .or_default()
            .insert(id.to_string(), Item { due, lease: None });
        Ok(())
    }

    async fn cancel(&self, queue: &str, id: &str) -> Result<bool> {
        Ok(self
            .queues
            .lock()
            .get_mut(queue)
            .and_then(|q| q.remove(id))
            .is_some())
    }

    async fn claim(
        &self,
        queue: &str,
        now: Timestamp,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedItem>> {
        let until = now + chrono::Duration::from_std(lease).map_err(Error::invalid)?;
        let mut queues = self.queues.lock();
        let Some(q) = queues.get_mut(queue) else {
            return Ok(Vec::new());
        };
        let mut due: Vec<(&String, &mut Item)> = q
            .iter_mut()
            .filter(|(_, it)| it.due <= now && it.lease.is_none_or(|(t, _)| t <= now))
            .collect();
        due.sort_by(|a, b| (a.1.due, a.0).cmp(&(b.1.due, b.0)));
        Ok(due
            .into_iter()
            .take(max)
            .map(|(id, it)| {
                let token = self
                    .tokens
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1;
                it.lease = Some((until, token));
                ClaimedItem {
                    id: id.clone(),
                    due: it.due,
                    token,
                }
            })
            .collect())
    }

    async fn complete(&self, queue: &str, id: &str, token: u64) -> Result<bool> {
        let mut queues = self.queues.lock();
        let Some(q) = queues.get_mut(queue) else {
            return Ok(false);
        };
        match q.get(id) {
            Some(it) if it.lease.is_some_and(|(_, t)| t == token) => {
                q.remove(id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn len(&self, queue: &str) -> Result<u64> {
        Ok(self.queues.lock().get(queue).map_or(0, |q| q.len() as u64))
    }
}
