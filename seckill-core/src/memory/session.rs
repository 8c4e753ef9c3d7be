//! In-memory [`SessionStore`].

use crate::clock::{Clock, SystemClock};
use crate::domain::UserId;
use crate::session::{CodeCheck, Revocation, RevocationFeed, SessionStore};
use crate::{Error, Result, Timestamp};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Default)]
struct State {
    /// (user, token id) → revoked until.
    tokens: HashMap<(UserId, String), Timestamp>,
    /// user → (versions below this are revoked, until).
    versions: HashMap<UserId, (u32, Timestamp)>,
    /// phone → (code, tries used, until).
    codes: HashMap<String, (String, u32, Timestamp)>,
    /// Every revocation in force, numbered from 1 in the order made (the feed).
    feed: Vec<(u64, Revocation)>,
    /// The last number given.
    seq: u64,
}

impl State {
    /// Drops what expired, once the maps grow (they hold only live entries otherwise).
    fn sweep(&mut self, now: Timestamp) {
        if self.tokens.len() + self.versions.len() + self.codes.len() > 10_000 {
            self.tokens.retain(|_, until| *until > now);
            self.versions.retain(|_, (_, until)| *until > now);
            self.codes.retain(|_, (_, _, until)| *until > now);
        }
        if self.feed.len() > 10_000 {
            self.feed.retain(|(_, r)| match r {
                Revocation::Token { until, .. } | Revocation::Below { until, .. } => *until > now,
            });
        }
    }

    fn log(&mut self, r: Revocation) {
        self.seq += 1;
        let n = self.seq;
        self.feed.push((n, r));
    }
}

/// The in-memory session store (the embedded default).
#[derive(Debug)]
pub struct MemorySessionStore {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    signal: Arc<tokio::sync::Notify>,
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl MemorySessionStore {
    /// A store whose entries expire on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            clock,
            signal: Arc::new(tokio::sync::Notify::new()),
        }
    }

    fn until(&self, ttl: Duration) -> Result<(Timestamp, Timestamp)> {
        let now = self.clock.now();
        Ok((
            now,
            now + chrono::Duration::from_std(ttl).map_err(Error::invalid)?,
        ))
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn revoke_token(&self, user: UserId, token_id: &str, ttl: Duration) -> Result<()> {
        let (now, until) = self.until(ttl)?;
        let mut s = self.state.lock();
        s.sweep(now);
        s.tokens.insert((user, token_id.to_string()), until);
        s.log(Revocation::Token {
            user,
            token_id: token_id.to_string(),
            until,
        });
        drop(s);
        self.signal.notify_waiters();
        Ok(())
    }

    async fn revoke_versions_below(&self, user: UserId, version: u32, ttl: Duration) -> Result<()> {
        let (now, until) = self.until(ttl)?;
        let mut s = self.state.lock();
        s.sweep(now);
        let e = s.versions.entry(user).or_insert((0, until));
        if e.1 <= now {
            *e = (0, until);
        }
        e.0 = e.0.max(version);
        e.1 = e.1.max(until);
        s.log(Revocation::Below {
            user,
            version,
            until,
        });
        drop(s);
        self.signal.notify_waiters();
        Ok(())
    }

    async fn is_revoked(&self, user: UserId, token_id: &str, version: u32) -> Result<bool> {
        let now = self.clock.now();
        let s = self.state.lock();
        let by_id = s
            .tokens
            .get(&(user, token_id.to_string()))
            .is_some_and(|until| *until > now);
        let by_version = s
            .versions
            .get(&user)
            .is_some_and(|(below, until)| *until > now && version < *below);
        Ok(by_id || by_version)
    }

    async fn put_code(&self, phone: &str, code: &str, ttl: Duration) -> Result<()> {
        let (now, until) = self.until(ttl)?;
        let mut s = self.state.lock();
        s.sweep(now);
        s.codes
            .insert(phone.to_string(), (code.to_string(), 0, until));
        Ok(())
    }

    async fn check_code(&self, phone: &str, code: &str, max_tries: u32) -> Result<CodeCheck> {
        let now = self.clock.now();
        let mut s = self.state.lock();
        let Some((pending, tries, until)) = s.codes.get_mut(phone) else {
            return Ok(CodeCheck::Missing);
        };
        if *until <= now {
            s.codes.remove(phone);
            return Ok(CodeCheck::Missing);
        }
        if crate::session::same_code(pending, code) {
            s.codes.remove(phone);
            return Ok(CodeCheck::Valid);
        }
        *tries += 1;
        let left = max_tries.saturating_sub(*tries);
        if left == 0 {
            s.codes.remove(phone);
        }
        Ok(CodeCheck::Wrong { left })
    }

    async fn revocations_after(&self, cursor: &str) -> Result<Option<RevocationFeed>> {
        let after: u64 = if cursor.is_empty() {
            0
        } else {
            cursor
                .parse()
                .map_err(|_| Error::invalid(format!("revocation cursor {cursor:?}")))?
        };
        let s = self.state.lock();
        let entries: Vec<Revocation> = s
            .feed
            .iter()
            .filter(|(n, _)| *n > after)
            .map(|(_, r)| r.clone())
            .collect();
        let last = s.feed.last().map_or(after, |(n, _)| (*n).max(after));
        Ok(Some(RevocationFeed {
            entries,
            cursor: last.to_string(),
        }))
    }

    fn revocation_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.signal.clone())
    }
}
