//! Snowflake worker ids leased from the [`Lock`] backend, so two processes never share one.
//!
//! A process takes the first free key `seckill:snowflake-worker:<n>` (n = 0..=1023) and keeps
//! renewing it. If the key vanished (the lock backend lost its data: a Redis restarted empty or
//! rewound), the renewal takes it again, since nobody else holds it. If another process holds
//! it now, the process must stop generating ids.

use crate::domain::ids::MAX_WORKER_ID;
use crate::lock::{Lock, LockGuard};
use crate::{Entity, Error, Result};
use std::sync::Arc;
use std::time::Duration;

/// A leased worker id. Renew it well within its TTL; release it on shutdown.
#[derive(Debug)]
pub struct WorkerLease {
    /// The worker id.
    pub id: u16,
    /// How long each renewal holds it.
    pub ttl: Duration,
    guard: parking_lot::Mutex<LockGuard>,
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
                guard: parking_lot::Mutex::new(guard),
                lock,
            });
        }
    }
    Err(Error::conflict(
        Entity::Lease,
        "snowflake worker ids",
        "all 1024 are leased by other processes",
    ))
}

impl WorkerLease {
    /// Extends the lease; `false` means another process holds the id now, and ids must no
    /// longer be generated. A lease whose key vanished (the backend lost it) is taken again.
    pub async fn renew(&self) -> Result<bool> {
        let guard = self.guard.lock().clone();
        if self.lock.extend(&guard, self.ttl).await? {
            return Ok(true);
        }
        match self.lock.acquire(&guard.key, self.ttl).await? {
            Some(again) => {
                tracing::warn!(
                    worker_id = self.id,
                    "the snowflake worker-id lease vanished from the lock backend; took it again"
                );
                *self.guard.lock() = again;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Gives the id back.
    pub async fn release(self) -> Result<bool> {
        let guard = self.guard.into_inner();
        self.lock.release(&guard).await
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

    #[tokio::test]
    async fn a_lease_that_vanished_is_taken_again_and_one_taken_by_another_is_lost() {
        let lock: Arc<dyn Lock> = Arc::new(MemoryLock::default());
        let a = lease_worker_id(lock.clone(), Duration::from_secs(30))
            .await
            .unwrap();
        // The backend forgets the key (as a Redis restarted empty does).
        let current = a.guard.lock().clone();
        assert!(lock.release(&current).await.unwrap());
        assert!(a.renew().await.unwrap(), "nobody holds it: taken again");
        assert!(a.renew().await.unwrap(), "and renewed as usual after that");
        // Someone else takes it while it is gone: the lease is lost for good.
        let current = a.guard.lock().clone();
        assert!(lock.release(&current).await.unwrap());
        let other = lease_worker_id(lock.clone(), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(other.id, a.id);
        assert!(!a.renew().await.unwrap());
    }
}
