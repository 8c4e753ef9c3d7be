//! [`Lock`]: a lease-based mutual exclusion with fencing tokens.
//!
//! Warm-up and reconciliation of an activity run under its lock; snowflake worker ids are leased
//! with it. A lock is a lease: if its holder stalls past the TTL, someone else may take it, so
//! every holder passes its [`LockGuard::token`] along and storage refuses tokens older than the
//! newest it has seen.

use crate::{Entity, Error, Result};
use async_trait::async_trait;
use std::time::Duration;

/// Proof of holding a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockGuard {
    /// The lock's key.
    pub key: String,
    /// Fencing token: strictly greater than every token issued before for this key, and at
    /// least the lock backend's clock in microseconds, so tokens keep rising when the lock
    /// backend restarts without its data.
    pub token: u64,
    /// Random owner id; only the owner can extend or release.
    pub owner: String,
}

/// The refusal of a write fenced with `token` when storage has seen `newest` for the same
/// activity: its writer's lease lapsed and another holder has written since. One spelling for
/// every backend that checks fences.
pub fn stale_fence(activity: impl std::fmt::Display, token: u64, newest: u64) -> Error {
    Error::conflict(
        Entity::ActivityLock,
        activity,
        format!(
            "stale fencing token {token}: a later holder of the activity lock wrote with {newest}"
        ),
    )
}

/// Lease locks with fencing tokens.
///
/// # Contract (checked by `conformance::lock`, feature `conformance`)
/// - `acquire` succeeds for one caller at a time per key; it returns `None` while another
///   holder's lease runs.
/// - Every successful acquire gets a fencing token greater than all earlier ones for the key,
///   and at least the backend's clock in microseconds (a restarted backend that lost its
///   counters still issues tokens above the ones storage has seen).
/// - A lease lapses after its TTL; then anyone can acquire.
/// - `extend` and `release` work only for the current owner (a guard whose lease lapsed and was
///   taken by someone else gets `false`).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Lock: Send + Sync + std::fmt::Debug {
    /// Tries once to take `key` for `ttl`.
    async fn acquire(&self, key: &str, ttl: Duration) -> Result<Option<LockGuard>>;
    /// Pushes the lease to `ttl` from now; `false` if no longer the owner.
    async fn extend(&self, guard: &LockGuard, ttl: Duration) -> Result<bool>;
    /// Lets go; `false` if no longer the owner.
    async fn release(&self, guard: &LockGuard) -> Result<bool>;
}
