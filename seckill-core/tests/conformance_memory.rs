//! The in-memory backends pass every conformance suite.

use seckill_core::conformance::broker::Backend as BrokerBackend;
use seckill_core::memory::*;
use seckill_core::registry::Repos;
use seckill_core::{DelayQueue, IdempotencyStore, Lock, RateLimiter, SessionStore, StockReserver};
use std::sync::Arc;
use std::time::Duration;

async fn stock() -> Option<Arc<dyn StockReserver>> {
    Some(Arc::new(MemoryStockReserver::default()))
}
async fn broker() -> Option<BrokerBackend> {
    Some(BrokerBackend::new(
        Arc::new(MemoryBroker::new(
            Arc::new(seckill_core::SystemClock),
            3,
            Duration::from_secs(30),
        )),
        3,
    ))
}
async fn delay() -> Option<Arc<dyn DelayQueue>> {
    Some(Arc::new(MemoryDelayQueue::new()))
}
async fn lock() -> Option<Arc<dyn Lock>> {
    Some(Arc::new(MemoryLock::default()))
}
async fn rate_limiter() -> Option<Arc<dyn RateLimiter>> {
    Some(Arc::new(MemoryRateLimiter::default()))
}
async fn idempotency() -> Option<Arc<dyn IdempotencyStore>> {
    Some(Arc::new(MemoryIdempotencyStore::default()))
}
async fn sessions() -> Option<Arc<dyn SessionStore>> {
    Some(Arc::new(MemorySessionStore::default()))
}
async fn payment_provider() -> Option<seckill_core::conformance::payment::Backend> {
    let mock = Arc::new(seckill_core::memory::MockProvider::new(
        b"conformance".to_vec(),
    ));
    let pay = mock.clone();
    Some(seckill_core::conformance::payment::Backend {
        provider: mock,
        pay: Arc::new(move |p, _checkout| pay.pay(p)),
    })
}
async fn repos() -> Option<Repos> {
    let s = Arc::new(MemoryStore::new());
    Some(Repos {
        users: s.clone(),
        catalog: s.clone(),
        orders: s.clone(),
        payments: s,
    })
}

mod stock_suite {
    use super::*;
    seckill_core::stock_reserver_conformance!(stock);
}
mod broker_suite {
    use super::*;
    seckill_core::message_broker_conformance!(broker);
}
mod delay_suite {
    use super::*;
    seckill_core::delay_queue_conformance!(delay);
}
mod lock_suite {
    use super::*;
    seckill_core::lock_conformance!(lock);
}
mod rate_limit_suite {
    use super::*;
    seckill_core::rate_limiter_conformance!(rate_limiter);
}
mod idempotency_suite {
    use super::*;
    seckill_core::idempotency_conformance!(idempotency);
}
mod session_suite {
    use super::*;
    seckill_core::session_store_conformance!(sessions);
}
/// The same contract through the revocation cache (tokens checked from memory).
async fn cached_sessions() -> Option<Arc<dyn SessionStore>> {
    let inner: Arc<dyn SessionStore> = Arc::new(MemorySessionStore::default());
    Some(
        seckill_core::session::RevocationCache::wrap(inner, Arc::new(seckill_core::SystemClock))
            .await,
    )
}
mod cached_session_suite {
    use super::*;
    seckill_core::session_store_conformance!(cached_sessions);
}
async fn settings() -> Option<Arc<dyn seckill_core::SettingsStore>> {
    Some(Arc::new(
        seckill_core::settings::MemorySettingsStore::default(),
    ))
}
mod settings_suite {
    use super::*;
    seckill_core::settings_store_conformance!(settings);
}
mod repo_suite {
    use super::*;
    seckill_core::repo_conformance!(repos);
}
mod payment_suite {
    use super::*;
    seckill_core::payment_provider_conformance!(payment_provider);
}

/// The stock model with 1 to 5 buckets (docs/adr/0020): no oversell, no undersell, limits,
/// replays and balanced buckets after every step.
#[tokio::test]
async fn the_stock_model_holds_with_buckets() {
    let b = seckill_core::memory::MemoryStockReserver::default();
    if let Err(e) = seckill_core::conformance::stock_model::run(&b, 256).await {
        panic!("{e}");
    }
}

/// The negative controls of the model: buckets that never borrow undersell, a reserver that
/// skips the stock check oversells; the model catches both.
#[tokio::test]
async fn the_stock_model_catches_an_undersell_and_an_oversell() {
    use seckill_core::memory::MemoryStockReserver;
    let clock = std::sync::Arc::new(seckill_core::clock::SystemClock);
    let lazy = MemoryStockReserver::broken_not_borrowing(clock.clone());
    let err = seckill_core::conformance::stock_model::run(&lazy, 256)
        .await
        .expect_err("buckets that do not borrow must be caught");
    // Caught as a refusal while the activity had the units, or as a refusal that reports the
    // bucket's remainder instead of the activity's (when neither had enough): both are the
    // missing borrow.
    assert!(
        err.contains("undersold") || err.contains("InsufficientStock"),
        "{err}"
    );
    eprintln!("caught: {}", err.lines().next().unwrap_or(""));
    let greedy = MemoryStockReserver::broken_skipping_stock_check(clock);
    let err = seckill_core::conformance::stock_model::run(&greedy, 256)
        .await
        .expect_err("an oversell must be caught");
    assert!(
        err.contains("the model says") || err.contains("do not balance"),
        "{err}"
    );
    eprintln!("caught: {}", err.lines().next().unwrap_or(""));
}

/// The tier model (docs/adr/0021): multi-tier reserves, confirms and releases against plain
/// counters per tier, per quota and for the capacity; no tier or quota oversold, no undersell,
/// the limit across tiers, balanced tier figures after every step.
#[tokio::test]
async fn the_tier_model_holds() {
    let b = seckill_core::memory::MemoryStockReserver::default();
    if let Err(e) = seckill_core::conformance::stock_tier_model::run(&b, 256).await {
        panic!("{e}");
    }
}

/// The negative control of the tier model: a reserver that checks the session's capacity
/// but neither the tiers' stock nor the quotas oversells a tier or a quota, and the model
/// catches it.
#[tokio::test]
async fn the_tier_model_catches_an_oversold_tier() {
    let clock = std::sync::Arc::new(seckill_core::clock::SystemClock);
    let broken = seckill_core::memory::MemoryStockReserver::broken_skipping_tier_check(clock);
    let err = seckill_core::conformance::stock_tier_model::run(&broken, 256)
        .await
        .expect_err("an oversold tier must be caught");
    assert!(err.contains("the model says"), "{err}");
    eprintln!("caught: {}", err.lines().next().unwrap_or(""));
}

/// The seat model (docs/adr/0021): best-available and named seats against a plain map of
/// taken seats and the contract's allocation.
#[tokio::test]
async fn the_seat_model_holds() {
    let b = seckill_core::memory::MemoryStockReserver::default();
    if let Err(e) = seckill_core::conformance::stock_seat_model::run(&b, 256).await {
        panic!("{e}");
    }
}

/// Its negative control: an allocator that hands out taken seats is caught.
#[tokio::test]
async fn the_seat_model_catches_a_seat_sold_twice() {
    let clock = std::sync::Arc::new(seckill_core::clock::SystemClock);
    let broken = seckill_core::memory::MemoryStockReserver::broken_double_selling_seats(clock);
    let err = seckill_core::conformance::stock_seat_model::run(&broken, 256)
        .await
        .expect_err("a seat sold twice must be caught");
    eprintln!("caught: {}", err.lines().next().unwrap_or(""));
}

/// The holder model (docs/adr/0021): documents clashing from a small pool, against a plain
/// model of which document holds a live ticket.
#[tokio::test]
async fn the_holder_model_holds() {
    let b = seckill_core::memory::MemoryStockReserver::default();
    if let Err(e) = seckill_core::conformance::stock_holder_model::run(&b, 256).await {
        panic!("{e}");
    }
}

/// Its negative control: a reserve that never checks documents is caught.
#[tokio::test]
async fn the_holder_model_catches_a_document_holding_two_tickets() {
    let clock = std::sync::Arc::new(seckill_core::clock::SystemClock);
    let broken = seckill_core::memory::MemoryStockReserver::broken_ignoring_documents(clock);
    let err = seckill_core::conformance::stock_holder_model::run(&broken, 256)
        .await
        .expect_err("a document holding two tickets must be caught");
    assert!(err.contains("HolderTaken"), "{err}");
    eprintln!("caught: {}", err.lines().next().unwrap_or(""));
}
