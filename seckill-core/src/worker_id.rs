//! Snowflake worker ids leased from the [`Lock`] backend, so two processes never share one.
//!
//! A process takes the first free key `seckill:snowflake-worker:<n>` (n = 0..=1023) and keeps
//! renewing it. If a renewal fails, the process must stop generating ids: another process may
//! hold the id now.

use crate::domain::ids::MAX_WORKER_ID;
use crate::lock::{Lock, LockGuard};
use crate::{Error, Result};
use std::sync::Arc;
use std::time::Duration;

/// A leased worker id. Renew it well within its TTL; release it on shutdown.
#[derive(Debug)]
pub struct WorkerLease {
    /// The worker id.
    pub id: u16,
    /// How long each renewal holds it.
    pub ttl: Duration,
    guard: LockGuard,
    lock: Arc<dyn Lock>,
}

fn key(n: u16) -> String {
    format!("seckill:snowflake-worker:{n}")
}

/// Leases the lowest free worker id.
pub async fn lease_worker_id(lock: Arc<dyn Lock>, ttl: Duration) -> Result<WorkerLease> {
    for n in 0..=MAX_WORKER_ID {
        if let Some(guard) = lock.acquire(&key(n), ttl).await? {
            return Ok(WorkerLease {
                id: n,
                ttl,
                guard,
                lock,
            });
        }
    }
    Err(Error::conflict(
        "all 1024 snowflake worker ids are leased by other processes",
    ))
}

impl WorkerLease {
    /// Extends the lease; `false` means it was lost and ids must no longer be generated.
    pub async fn renew(&self) -> Result<bool> {
        self.lock.extend(&self.guard, self.ttl).await
    }

    /// Gives the id back.
    pub async fn release(self) -> Result<bool> {
        self.lock.release(&self.guard).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryLock;

    #[tokio::test]
    async fn two_processes_get_different_ids_and_a_released_one_is_reused() {
        let lock: Arc<dyn Lock> = Arc::new(MemoryLock::default());
        let a = lease_worker_id(lock.clone(), Duration::from_secs(30))
            .await
            .unwrap();
        let b = lease_worker_id(lock.clone(), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!((a.id, b.id), (0, 1));
        assert!(a.renew().await.unwrap());
        assert!(a.release().await.unwrap());
        let c = lease_worker_id(lock.clone(), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(c.id, 0);
    }
}
