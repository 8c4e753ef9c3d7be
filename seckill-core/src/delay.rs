//! [`DelayQueue`]: run something at a time, at least once, even if a worker dies mid-item.
//!
//! The order worker schedules every new order's payment deadline here; the timeout worker claims
//! due items, cancels the orders still unpaid, and completes the items.

use crate::{Result, Timestamp};
use async_trait::async_trait;
use std::time::Duration;

/// A due item handed to one worker until `lease_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedItem {
    /// The item's id (an order id for the timeout queue).
    pub id: String,
    /// When it was due.
    pub due: Timestamp,
    /// Proof of this claim for [`DelayQueue::complete`]; a later claim of the same item gets
    /// a different token.
    pub token: u64,
}

/// Scheduled items with claim leases.
///
/// Times are the caller's (`now` is passed in), so every node and the tests agree on what is due.
///
/// # Contract (checked by `conformance::delay`, feature `conformance`)
/// - `schedule` adds or reschedules an item (one per id per queue).
/// - `claim` hands out items whose due time is ≤ `now`, earliest first, each to one claimer,
///   leased until `now + lease`. An item whose lease lapsed without `complete` can be claimed
///   again (with a new token).
/// - `complete` removes the item if the token is the current claim's; a stale token is refused
///   (returns `false`) so a slow worker cannot remove an item someone else now owns.
/// - `cancel` removes an item whatever its state.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait DelayQueue: Send + Sync + std::fmt::Debug {
    /// Adds or reschedules `id` in `queue`.
    async fn schedule(&self, queue: &str, id: &str, due: Timestamp) -> Result<()>;
    /// Removes `id`; `true` if it was there.
    async fn cancel(&self, queue: &str, id: &str) -> Result<bool>;
    /// Claims up to `max` due items.
    async fn claim(
        &self,
        queue: &str,
        now: Timestamp,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedItem>>;
    /// Removes a claimed item; `false` if the claim is stale or the item gone.
    async fn complete(&self, queue: &str, id: &str, token: u64) -> Result<bool>;
    /// Items in the queue (due or not, claimed or not).
    async fn len(&self, queue: &str) -> Result<u64>;
}
