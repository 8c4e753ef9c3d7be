//! [`SessionStore`]: what makes a token stop working before it expires (logout, password
//! change) and the phone verification codes, shared by every API process.

use crate::domain::UserId;
use crate::Result;
use async_trait::async_trait;
use std::time::Duration;

/// The answer of [`SessionStore::check_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// The code matched; it is used up.
    Valid,
    /// The code did not match; `left` more tries are allowed.
    Wrong {
        /// Tries left before the code is dropped.
        left: u32,
    },
    /// No code is pending for this phone (never sent, expired, used, or dropped after too
    /// many wrong tries).
    Missing,
}

/// Revoked tokens and pending verification codes.
///
/// # Contract (checked by `conformance::session`, feature `conformance`)
/// - A token revoked with [`SessionStore::revoke_token`] is revoked for `ttl`; other tokens of
///   the user are not.
/// - After [`SessionStore::revoke_versions_below`]`(user, v, ttl)`, every token of the user with
///   a version below `v` is revoked (for `ttl`); tokens at `v` or above are not. A later call
///   with a lower `v` does not un-revoke anything.
/// - [`SessionStore::put_code`] replaces the phone's pending code and resets its tries.
///   [`SessionStore::check_code`] is atomic: a right code is `Valid` once, then `Missing`; a
///   wrong one uses a try, and the try that reaches `max_tries` drops the code.
/// - Everything expires after its `ttl`.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Revokes one token (by its id) of `user` for `ttl` (its remaining lifetime).
    async fn revoke_token(&self, user: UserId, token_id: &str, ttl: Duration) -> Result<()>;
    /// Revokes every token of `user` whose version is below `version`, for `ttl` (the token
    /// lifetime: older tokens have expired by then).
    async fn revoke_versions_below(&self, user: UserId, version: u32, ttl: Duration) -> Result<()>;
    /// Whether the token `(user, token_id, version)` was revoked, in one round trip.
    async fn is_revoked(&self, user: UserId, token_id: &str, version: u32) -> Result<bool>;
    /// Stores `code` as the phone's pending code for `ttl`, with no tries used.
    async fn put_code(&self, phone: &str, code: &str, ttl: Duration) -> Result<()>;
    /// Checks `code` against the phone's pending code.
    async fn check_code(&self, phone: &str, code: &str, max_tries: u32) -> Result<CodeCheck>;
}

/// Compares two codes in time independent of where they differ.
pub fn same_code(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
