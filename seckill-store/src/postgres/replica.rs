//! [`PgReplica`]: a PostgreSQL streaming replica serving reads, and how far behind it is.
//!
//! The lag is measured against the primary's WAL: each check reads the primary's position
//! (`pg_current_wal_lsn()`), then the replica's replayed position
//! (`pg_last_wal_replay_lsn()`). The replica keeps the time it first saw each primary position
//! it has not replayed yet; its lag is the age of the oldest of them: how long the replica has
//! been missing a change the primary had. An idle primary lags nothing, however old its last
//! commit, and a replica whose stream broke is found out however quiet the primary is. Until
//! the replica has been seen to replay past one measured position, its lag is unknown (a
//! replica that starts hours behind is not trusted for the first moments).

use super::{map_err, map_pool_err, pool, Pool};
use async_trait::async_trait;
use parking_lot::Mutex;
use seckill_core::registry::{BackendUrl, Repos};
use seckill_core::replica::ReadReplica;
use seckill_core::{Error, Result};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The lag bound when the URL sets no `max_lag_ms`.
pub const DEFAULT_MAX_LAG: Duration = Duration::from_millis(1000);

/// Most unreplayed primary positions kept (one per check that found the primary moved).
const KEEP: usize = 4096;

/// A PostgreSQL read replica (`database_read = "postgres://…?max_lag_ms=1000"`).
pub struct PgReplica {
    name: String,
    repos: Repos,
    replica: Pool,
    primary: Pool,
    max_lag: Duration,
    seen: Mutex<Seen>,
}

impl std::fmt::Debug for PgReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReplica")
            .field("name", &self.name)
            .field("max_lag", &self.max_lag)
            .finish_non_exhaustive()
    }
}

/// The primary positions the replica has not replayed, each with when it was first seen.
#[derive(Debug, Default)]
struct Seen {
    pending: VecDeque<(Instant, u64)>,
    /// Whether the replica was ever seen at or past a measured primary position.
    caught_up: bool,
}

impl Seen {
    /// Records the primary at `primary`, seen at `at`. Recorded before the replica is asked, so
    /// a replica that does not answer (down, timed out) keeps aging behind what the primary
    /// wrote meanwhile, and is not trusted at lag 0 when it comes back.
    fn primary_at(&mut self, at: Instant, primary: u64) {
        if self.pending.back().is_none_or(|&(_, l)| l < primary) {
            self.pending.push_back((at, primary));
        }
        if self.pending.len() > KEEP {
            // Merge the two oldest as the later position seen at the earlier time: the lag is
            // overestimated, never under.
            if let Some((t, _)) = self.pending.pop_front() {
                if let Some(next) = self.pending.front_mut() {
                    next.0 = t;
                }
            }
        }
    }

    /// Records the replica replayed up to `replay` (at `at`); the lag, `None` until it was
    /// seen at or past a recorded primary position.
    fn replayed(&mut self, at: Instant, replay: u64) -> Option<Duration> {
        while self.pending.front().is_some_and(|&(_, l)| l <= replay) {
            self.pending.pop_front();
            self.caught_up = true;
        }
        if !self.caught_up {
            return None;
        }
        Some(
            self.pending
                .front()
                .map_or(Duration::ZERO, |&(t, _)| at.saturating_duration_since(t)),
        )
    }

    #[cfg(test)]
    fn observe(&mut self, at: Instant, primary: u64, replay: u64) -> Option<Duration> {
        self.primary_at(at, primary);
        self.replayed(at, replay)
    }
}

/// `X/Y` (a `pg_lsn` as text) as one number.
fn lsn(s: &str) -> Result<u64> {
    let bad = || Error::backend("postgres", format!("unexpected WAL position {s:?}"));
    let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
    let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
    let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
    Ok(hi << 32 | lo)
}

impl PgReplica {
    /// A replica at `url` of the primary at `primary` (`url` may set `max_lag_ms`, and the
    /// same `schema` as the primary's URL).
    pub fn connect(url: &BackendUrl, primary: &BackendUrl) -> Result<Self> {
        let mut max_lag = DEFAULT_MAX_LAG;
        if let Some((_, q)) = url.expose().split_once('?') {
            for pair in q.split('&') {
                if let Some(("max_lag_ms", v)) = pair.split_once('=') {
                    let ms: u64 = v.parse().map_err(|_| {
                        Error::invalid(format!("max_lag_ms in {url} must be milliseconds"))
                    })?;
                    max_lag = Duration::from_millis(ms);
                }
            }
        }
        let replica = pool(url)?;
        let store = Arc::new(super::PgStore::new(replica.clone()));
        Ok(Self {
            name: url.to_string(),
            repos: Repos {
                users: store.clone(),
                catalog: store.clone(),
                orders: store.clone(),
                payments: store,
            },
            replica,
            primary: pool(primary)?,
            max_lag,
            seen: Mutex::new(Seen::default()),
        })
    }
}

#[async_trait]
impl ReadReplica for PgReplica {
    fn name(&self) -> &str {
        &self.name
    }

    fn repos(&self) -> &Repos {
        &self.repos
    }

    fn max_lag(&self) -> Duration {
        self.max_lag
    }

    async fn lag(&self) -> Result<Option<Duration>> {
        let p = self.primary.get().await.map_err(map_pool_err)?;
        let at = Instant::now();
        let primary: String = p
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(map_err)?
            .get(0);
        drop(p);
        self.seen.lock().primary_at(at, lsn(&primary)?);
        let r = self.replica.get().await.map_err(map_pool_err)?;
        let row = r
            .query_one(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text",
                &[],
            )
            .await
            .map_err(map_err)?;
        if !row.get::<_, bool>(0) {
            // Not in recovery: promoted (or a primary named here by mistake), it no longer
            // receives this primary's writes. Never served.
            return Ok(None);
        }
        let Some(replay) = row.get::<_, Option<String>>(1) else {
            return Ok(None);
        };
        Ok(self.seen.lock().replayed(Instant::now(), lsn(&replay)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse() {
        assert_eq!(lsn("0/0").unwrap(), 0);
        assert_eq!(lsn("16/B374D848").unwrap(), 0x16_B374_D848);
        assert!(lsn("nope").is_err());
    }

    #[test]
    fn the_lag_is_the_age_of_the_oldest_unreplayed_position() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let mut seen = Seen::default();
        // Behind the first position seen: unknown (it may be hours behind).
        assert_eq!(seen.observe(s(0), 100, 90), None);
        assert_eq!(seen.observe(s(200), 100, 90), None);
        // Caught up: no lag, however long the primary stays idle.
        assert_eq!(seen.observe(s(400), 100, 100), Some(Duration::ZERO));
        assert_eq!(seen.observe(s(5_000), 100, 100), Some(Duration::ZERO));
        // The primary moves on and the replica stops replaying: the lag grows from when the
        // new position was first seen.
        assert_eq!(seen.observe(s(5_200), 150, 100), Some(Duration::ZERO));
        assert_eq!(
            seen.observe(s(5_400), 160, 100),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            seen.observe(s(6_200), 160, 100),
            Some(Duration::from_millis(1_000))
        );
        // It replays part of it: the lag is now that of the next unreplayed position.
        assert_eq!(
            seen.observe(s(6_400), 160, 150),
            Some(Duration::from_millis(1_000))
        );
        assert_eq!(seen.observe(s(6_600), 160, 160), Some(Duration::ZERO));
    }

    #[test]
    fn a_replica_back_from_an_outage_is_as_late_as_what_it_missed() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let mut seen = Seen::default();
        assert_eq!(seen.observe(s(0), 100, 100), Some(Duration::ZERO));
        // The replica answers no check for ten seconds; the primary writes on.
        for (i, at) in (200..10_000).step_by(200).enumerate() {
            seen.primary_at(s(at), 101 + i as u64);
        }
        // Back, still at 100: as late as the first position it missed.
        assert_eq!(
            seen.replayed(s(10_000), 100),
            Some(Duration::from_millis(9_800))
        );
    }

    #[test]
    fn a_full_history_overestimates_the_lag_never_under() {
        let t0 = Instant::now();
        let mut seen = Seen::default();
        assert_eq!(seen.observe(t0, 0, 0), Some(Duration::ZERO));
        for i in 1..=(KEEP as u64 + 10) {
            seen.primary_at(t0 + Duration::from_millis(i), i);
        }
        assert_eq!(seen.pending.len(), KEEP);
        // Replayed past the first 20: the oldest unreplayed (21, seen at 21 ms) is older than
        // the merged entry claims at most.
        let lag = seen
            .replayed(t0 + Duration::from_millis(10_000), 20)
            .unwrap();
        assert!(lag >= Duration::from_millis(10_000 - 21), "{lag:?}");
    }
}
