//! [`Lock`]: a lease-based mutual exclusion with fencing tokens.
//!
//! Warm-up and reconciliation of an activity run under its lock; snowflake worker ids are leased
//! with it. A lock is a lease: if its holder stalls past the TTL, someone else may take it, so
//! every holder passes its [`LockGuard::token`] along and storage refuses tokens older than the
//! newest it has seen.

use crate::Result;
use async_trait::async_trait;
use std::time::Duration;

/// Proof of holding a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockGuard {
    /// The lock's key.
    pub key: String,
    /// Fencing token: strictly greater than every token issued before for this key.
    pub token: u64,
    /// Random owner id; only the owner can extend or release.
    pub owner: String,
}

/// Lease locks with fencing tokens.
///
/// # Contract (checked by `conformance::lock`, feature `conformance`)
/// - `acquire` succeeds for one caller at a time per key; it returns `None` while another
///   holder's lease runs.
/// - Every successful acquire gets a fencing token greater than all earlier ones for the key.
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
