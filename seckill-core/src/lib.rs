//! # seckill-core
//!
//! The domain, the backend traits, their in-memory implementations and the sale engine of
//! seckill-rs — a flash-sale (秒杀) system that never oversells, never loses an order and never
//! charges twice, whatever crashes.
//!
//! ## The pipeline in one page
//!
//! ```text
//! buy ─► gate: activity live? local sold-out flag? rate limit?
//!     ─► StockReserver::reserve — ONE atomic step: idempotency, window, per-user limit, stock,
//!        decrement, hold record, outbox entry ─► 202 {hold_id, order_id}
//! relay:          outbox ─► MessageBroker::publish_batch ─► ack outbox
//! order worker:   consume ─► OrderRepo::create_from_hold (inbox + `sold + n <= total` guard +
//!                 insert, one transaction) ─► confirm hold ─► DelayQueue::schedule ─► ack
//! timeout worker: DelayQueue::claim ─► cancel if still pending (CAS) ─► release hold
//! pay:            create payment ─► signed callback ─► verify ─► pending→paid (CAS);
//!                 late payment on a cancelled order ─► refund
//! reconciler:     total = available + held + sold per activity; repairs crash leftovers
//! ```
//!
//! Every backend is a trait object (`Arc<dyn StockReserver>`, …) chosen by URL through the
//! [`registry`]. With no configuration every one is the in-memory implementation in [`memory`].
//!
//! ## Embedding
//!
//! ```
//! use seckill_core::engine::{Backends, BuyOutcome, BuyRequest, Engine, EngineConfig};
//! # async fn demo(activity: seckill_core::domain::ActivityId) -> seckill_core::Result<()> {
//! let engine = Engine::new(Backends::in_memory_default(b"secret"), EngineConfig::default());
//! // … create a product and an activity through engine.backends().catalog, then:
//! engine.warm_up(activity).await?;
//! let outcome = engine
//!     .buy(BuyRequest {
//!         user_id: seckill_core::domain::UserId(1),
//!         activity_id: activity,
//!         quantity: 1,
//!         request_id: Some("req-1".into()),
//!         lines: Vec::new(),
//!         holders: Vec::new(),
//!     })
//!     .await?;
//! if let BuyOutcome::Reserved { order_id, .. } = outcome {
//!     println!("order {order_id} is on its way");
//! }
//! # Ok(()) }
//! ```
//!
//! See `examples/` for a complete runnable sale.

#![warn(missing_docs)]

pub mod breaker;
pub mod broker;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod delay;
pub mod domain;
pub mod engine;
mod error;
pub mod idempotency;
pub mod invariants;
pub mod lock;
pub mod memory;
pub mod notify;
pub mod payment;
pub mod rate_limit;
pub mod registry;
pub mod replica;
pub mod repo;
pub mod session;
pub mod settings;
pub mod stock;
pub mod trace;
pub mod worker_id;

pub use broker::{Delivery, Message, MessageBroker, Subscription};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use delay::{ClaimedItem, DelayQueue};
pub use error::{BoxError, Entity, Error, Result};
pub use idempotency::{Begin, IdempotencyStore, StoredResponse};
pub use lock::{Lock, LockGuard};
pub use notify::{LogNotifier, Notifier};
pub use payment::{PaymentProvider, PaymentProviders};
pub use rate_limit::{Quota, RateCharge, RateDecision, RateLimiter};
pub use session::{CodeCheck, SessionStore};
pub use settings::SettingsStore;
pub use stock::StockReserver;
