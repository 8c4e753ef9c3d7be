//! The conformance suites: one set of `pub async fn` cases per trait, about the trait's
//! contract, and one macro per trait that stamps them out as `#[tokio::test]`s for a backend.
//!
//! A backend's test file runs the whole suite with one line:
//!
//! ```ignore
//! async fn make() -> Option<Arc<dyn StockReserver>> { Some(Arc::new(MyReserver::connect(..))) }
//! seckill_core::stock_reserver_conformance!(make);
//! ```
//!
//! `make` returns a **fresh namespace** (a new instance, key prefix or schema) per call, or
//! `None` to skip when the service is not configured (see [`skip_or_panic`]).

pub mod broker;
#[cfg(feature = "testcontainers")]
mod containers;
pub mod delay;
pub mod engine;
pub mod idempotency;
pub mod lock;
mod own_server;
pub mod payment;
pub mod rate_limit;
pub mod repo;
pub mod session;
pub mod settings;
pub mod stock;
pub mod stock_holder_model;
pub mod stock_model;
pub mod stock_seat_model;
pub mod stock_tier_model;

pub use own_server::{Launch, OwnServer};
use std::sync::atomic::{AtomicI64, Ordering};

/// A process-unique positive id, for ids and names in a case (so cases sharing a service never
/// collide).
pub fn unique_id() -> i64 {
    static NEXT: AtomicI64 = AtomicI64::new(0);
    let base = (chrono::Utc::now().timestamp_micros() & 0x3_ffff_ffff_ffff) << 10;
    base + NEXT.fetch_add(1, Ordering::Relaxed) % 1024
}

/// The URL of a test service from the environment variable `var` (e.g.
/// `SECKILL_TEST_REDIS_URL`). When it is unset: with the `testcontainers` feature and a
/// reachable Docker engine, the service is started in a container (once per process) and its
/// URL returned; otherwise `None` after [`skip_or_panic`].
pub fn service_url(var: &str) -> Option<String> {
    if let Ok(v) = std::env::var(var) {
        if !v.is_empty() {
            return Some(v);
        }
    }
    #[cfg(feature = "testcontainers")]
    if let Some(url) = containers::url_for(var) {
        return Some(url);
    }
    skip_or_panic(var);
    None
}

/// For a service test whose URL variable is unset: with `SECKILL_TEST_REQUIRE=1` this panics
/// (CI must not skip silently); otherwise it prints that the test skipped.
pub fn skip_or_panic(var: &str) {
    if std::env::var("SECKILL_TEST_REQUIRE").is_ok_and(|v| v == "1") {
        panic!("{var} is not set but SECKILL_TEST_REQUIRE=1");
    }
    eprintln!("skipped: set {var} to run this test against the service");
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($suite:ident, $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(backend) = $make().await else { return };
                $crate::conformance::$suite::$case(&backend).await;
            }
        )*
    };
}
