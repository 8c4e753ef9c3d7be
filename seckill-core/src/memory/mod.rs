//! In-memory backends: real implementations of every trait with the same semantics as the
//! networked ones (leases expire, unacked deliveries come back, locks time out). They are what
//! the server runs on with no configuration, and what the property tests drive.

mod broker;
mod delay;
mod idempotency;
mod lock;
mod rate_limit;
mod session;
mod stock;
mod store;

pub use broker::MemoryBroker;
pub use delay::MemoryDelayQueue;
pub use idempotency::MemoryIdempotencyStore;
pub use lock::MemoryLock;
pub use rate_limit::MemoryRateLimiter;
pub use session::MemorySessionStore;
pub use stock::MemoryStockReserver;
pub use store::MemoryStore;
