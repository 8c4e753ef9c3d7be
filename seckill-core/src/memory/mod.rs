//! In-memory backends: real implementations of every trait with the same semantics as the
//! networked ones (leases expire, unacked deliveries come back, locks time out). They are what
//! the server runs on with no configuration, and what the property tests drive. The repositories
//! are one [`MemoryStore`] (`store.rs`, its impls in `users.rs`, `catalog.rs`, `orders.rs` and
//! `payments.rs`); the payment provider is [`MockProvider`] (`payment.rs`).

mod broker;
mod catalog;
mod delay;
mod idempotency;
mod lock;
mod orders;
mod payment;
mod payments;
mod rate_limit;
mod session;
mod stock;
mod store;
mod users;

pub use broker::MemoryBroker;
pub use delay::MemoryDelayQueue;
pub use idempotency::MemoryIdempotencyStore;
pub use lock::MemoryLock;
pub use payment::MockProvider;
pub use rate_limit::MemoryRateLimiter;
pub use session::MemorySessionStore;
pub use stock::MemoryStockReserver;
pub use store::MemoryStore;
