//! Time: every timestamp is UTC, and every component reads it from a [`Clock`] so that tests can
//! move time by hand with a [`ManualClock`].

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A UTC timestamp.
pub type Timestamp = DateTime<Utc>;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current UTC time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Utc::now()
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            micros: Arc::new(AtomicI64::new(start.timestamp_micros())),
        }
    }

    /// A clock stopped at 2030-01-01T00:00:00Z, a fixed point for tests.
    pub fn fixed() -> Self {
        Self::new(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap())
    }

    /// Moves the clock forward by `by` (a negative duration moves it back).
    pub fn advance(&self, by: Duration) {
        self.micros
            .fetch_add(by.num_microseconds().unwrap_or(i64::MAX), Ordering::SeqCst);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: Timestamp) {
        self.micros.store(to.timestamp_micros(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let micros = self.micros.load(Ordering::SeqCst);
        DateTime::from_timestamp_micros(micros).expect("manual clock within chrono's range")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::fixed();
        let t0 = c.now();
        assert_eq!(c.now(), t0);
        c.advance(Duration::seconds(90));
        assert_eq!(c.now() - t0, Duration::seconds(90));
        let shared = c.clone();
        shared.advance(Duration::milliseconds(5));
        assert_eq!(c.now() - t0, Duration::milliseconds(90_005));
    }
}
