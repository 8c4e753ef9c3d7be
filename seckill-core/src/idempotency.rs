//! [`IdempotencyStore`]: remembers the first response to a request so a retry gets it again.

use crate::{Error, Result};
use async_trait::async_trait;
use std::time::Duration;

/// Most characters in an idempotency key.
pub const KEY_MAX: usize = 128;

/// The one rule for a client's idempotency key, whichever door it comes through (the buy's
/// `Idempotency-Key` header, the gRPC `idempotency_key` field, the payment routes, an
/// embedder's [`crate::engine::BuyRequest::request_id`]): 1 to [`KEY_MAX`] visible ASCII
/// characters (`!` to `~`).
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > KEY_MAX || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "Idempotency-Key: 1 to 128 visible ASCII characters",
        ));
    }
    Ok(())
}

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status (or another protocol's code).
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// The answer of [`IdempotencyStore::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First time: go ahead, then [`IdempotencyStore::complete`] (or `abandon`).
    New,
    /// Another call with the same key is running now.
    InProgress,
    /// Done before: answer with this.
    Completed(StoredResponse),
    /// The key was used with a different request (its hash differs).
    Mismatch,
}

/// Request de-duplication by key.
///
/// # Contract (checked by `conformance::idempotency`, feature `conformance`)
/// - The first `begin` of a key returns `New`; until `complete` or `abandon`, others get
///   `InProgress`; after `complete`, `Completed` with the stored response.
/// - A `begin` with the same key but another request hash gets `Mismatch`.
/// - `abandon` forgets an in-progress key so a retry starts afresh.
/// - Entries expire after `ttl`.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync + std::fmt::Debug {
    /// Starts a request under `key` with `request_hash`.
    async fn begin(&self, key: &str, request_hash: &str, ttl: Duration) -> Result<Begin>;
    /// Stores the response of the request started under `key`.
    async fn complete(&self, key: &str, response: StoredResponse) -> Result<()>;
    /// Forgets an in-progress `key`.
    async fn abandon(&self, key: &str) -> Result<()>;
}
