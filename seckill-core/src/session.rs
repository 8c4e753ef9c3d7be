//! [`SessionStore`]: what makes a token stop working before it expires (logout, password
//! change) and the phone verification codes, shared by every API process.

use crate::clock::Clock;
use crate::domain::UserId;
use crate::{Result, Timestamp};
use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

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

    /// The revocations made after `cursor` (`""`: every one still in force), oldest first,
    /// and the cursor to ask from next; `None` when the store keeps no such feed (the default:
    /// then [`RevocationCache`] does not wrap it). Every revocation still in force is in the
    /// feed, so a cache that read it from `""` on knows every one.
    async fn revocations_after(&self, cursor: &str) -> Result<Option<RevocationFeed>> {
        let _ = cursor;
        Ok(None)
    }

    /// Notified (soon after) when any process revokes something: the push that wakes a
    /// [`RevocationCache`] before its next poll. `None`: no push (the cache polls only).
    fn revocation_signal(&self) -> Option<Arc<Notify>> {
        None
    }
}

/// One revocation, as [`SessionStore::revocations_after`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// [`SessionStore::revoke_token`].
    Token {
        /// Whose.
        user: UserId,
        /// The token's id.
        token_id: String,
        /// Revoked until.
        until: Timestamp,
    },
    /// [`SessionStore::revoke_versions_below`].
    Below {
        /// Whose.
        user: UserId,
        /// Tokens below this version are revoked.
        version: u32,
        /// Revoked until.
        until: Timestamp,
    },
}

/// What [`SessionStore::revocations_after`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RevocationFeed {
    /// The revocations, oldest first.
    pub entries: Vec<Revocation>,
    /// Where to ask from next (the last entry's, or the one asked with when there is none).
    pub cursor: String,
}

/// How often [`RevocationCache`] reads the feed when no push came (it catches a missed one).
pub const REVOCATION_POLL: Duration = Duration::from_millis(250);

/// How old the last read of the feed may be for [`RevocationCache`] to answer alone; past it
/// (the store unreachable) each check asks the store, as without a cache.
pub const REVOCATION_STALE: Duration = Duration::from_secs(1);

/// The revocations in force, as a cache holds them.
#[derive(Debug, Default)]
struct Revoked {
    tokens: HashMap<(UserId, String), Timestamp>,
    below: HashMap<UserId, (u32, Timestamp)>,
}

impl Revoked {
    fn apply(&mut self, r: Revocation, now: Timestamp) {
        match r {
            Revocation::Token {
                user,
                token_id,
                until,
            } => {
                let e = self.tokens.entry((user, token_id)).or_insert(until);
                *e = (*e).max(until);
            }
            Revocation::Below {
                user,
                version,
                until,
            } => {
                let e = self.below.entry(user).or_insert((0, until));
                if e.1 <= now {
                    *e = (0, until);
                }
                e.0 = e.0.max(version);
                e.1 = e.1.max(until);
            }
        }
    }

    fn is_revoked(&self, user: UserId, token_id: &str, version: u32, now: Timestamp) -> bool {
        self.tokens
            .get(&(user, token_id.to_string()))
            .is_some_and(|until| *until > now)
            || self
                .below
                .get(&user)
                .is_some_and(|(below, until)| *until > now && version < *below)
    }

    fn sweep(&mut self, now: Timestamp) {
        self.tokens.retain(|_, until| *until > now);
        self.below.retain(|_, (_, until)| *until > now);
    }
}

/// A [`SessionStore`] that answers [`SessionStore::is_revoked`] from memory: it reads every
/// revocation in force from the store's feed at start, then follows it (woken by the store's
/// push, and every [`REVOCATION_POLL`] in any case). A buy's token check then costs no round
/// trip. Exact within a second: a revocation made by any process is seen on the next push or
/// poll, one made through this cache at once; and while the feed cannot be read for
/// [`REVOCATION_STALE`], every check goes to the store itself. Everything else passes through.
#[derive(Debug)]
pub struct RevocationCache {
    inner: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    revoked: RwLock<Revoked>,
    cursor: Mutex<String>,
    synced: Mutex<Option<Instant>>,
    /// One read of the feed at a time.
    syncing: tokio::sync::Mutex<()>,
}

impl RevocationCache {
    /// `inner` behind a cache when it keeps a revocation feed (else `inner` itself). Reads
    /// the feed once before it returns (a store that does not answer leaves the cache stale:
    /// checks go to the store until the feed is read), then follows it in a task that ends
    /// when the cache is dropped.
    pub async fn wrap(
        inner: Arc<dyn SessionStore>,
        clock: Arc<dyn Clock>,
    ) -> Arc<dyn SessionStore> {
        if inner.revocations_after("").await.is_ok_and(|f| f.is_none()) {
            return inner;
        }
        let cache = Arc::new(Self {
            inner,
            clock,
            revoked: RwLock::new(Revoked::default()),
            cursor: Mutex::new(String::new()),
            synced: Mutex::new(None),
            syncing: tokio::sync::Mutex::new(()),
        });
        if let Err(e) = cache.sync().await {
            tracing::warn!(error = %e, "revocations not read yet; token checks ask the store");
        }
        let signal = cache.inner.revocation_signal();
        let weak: Weak<Self> = Arc::downgrade(&cache);
        tokio::spawn(async move {
            loop {
                match &signal {
                    Some(n) => {
                        let _ = tokio::time::timeout(REVOCATION_POLL, n.notified()).await;
                    }
                    None => tokio::time::sleep(REVOCATION_POLL).await,
                }
                let Some(c) = weak.upgrade() else { break };
                if let Err(e) = c.sync().await {
                    tracing::debug!(error = %e, "reading the revocations failed; retrying");
                }
            }
        });
        cache
    }

    /// Reads the feed from where the last read ended and applies it.
    pub async fn sync(&self) -> Result<()> {
        let _one = self.syncing.lock().await;
        let started = Instant::now();
        let from = self.cursor.lock().clone();
        let Some(feed) = self.inner.revocations_after(&from).await? else {
            return Ok(());
        };
        let now = self.clock.now();
        {
            let mut r = self.revoked.write();
            if r.tokens.len() + r.below.len() > 10_000 {
                r.sweep(now);
            }
            for e in feed.entries {
                r.apply(e, now);
            }
        }
        *self.cursor.lock() = feed.cursor;
        // Fresh as of when the read started: what was revoked before then is in it.
        *self.synced.lock() = Some(started);
        Ok(())
    }

    fn fresh(&self) -> bool {
        self.synced
            .lock()
            .is_some_and(|at| at.elapsed() < REVOCATION_STALE)
    }

    fn until(&self, ttl: Duration) -> Timestamp {
        chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|d| self.clock.now().checked_add_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    }
}

#[async_trait]
impl SessionStore for RevocationCache {
    async fn revoke_token(&self, user: UserId, token_id: &str, ttl: Duration) -> Result<()> {
        self.inner.revoke_token(user, token_id, ttl).await?;
        let r = Revocation::Token {
            user,
            token_id: token_id.to_string(),
            until: self.until(ttl),
        };
        self.revoked.write().apply(r, self.clock.now());
        Ok(())
    }

    async fn revoke_versions_below(&self, user: UserId, version: u32, ttl: Duration) -> Result<()> {
        self.inner.revoke_versions_below(user, version, ttl).await?;
        let r = Revocation::Below {
            user,
            version,
            until: self.until(ttl),
        };
        self.revoked.write().apply(r, self.clock.now());
        Ok(())
    }

    async fn is_revoked(&self, user: UserId, token_id: &str, version: u32) -> Result<bool> {
        if self.fresh() {
            let now = self.clock.now();
            return Ok(self.revoked.read().is_revoked(user, token_id, version, now));
        }
        self.inner.is_revoked(user, token_id, version).await
    }

    async fn put_code(&self, phone: &str, code: &str, ttl: Duration) -> Result<()> {
        self.inner.put_code(phone, code, ttl).await
    }

    async fn check_code(&self, phone: &str, code: &str, max_tries: u32) -> Result<CodeCheck> {
        self.inner.check_code(phone, code, max_tries).await
    }

    async fn revocations_after(&self, cursor: &str) -> Result<Option<RevocationFeed>> {
        self.inner.revocations_after(cursor).await
    }

    fn revocation_signal(&self) -> Option<Arc<Notify>> {
        self.inner.revocation_signal()
    }
}

/// Compares two codes in time independent of where they differ.
pub fn same_code(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
