//! # seckill-store
//!
//! The networked storage backends of seckill-rs, each behind its own cargo feature:
//! Redis (`redis`, on by default: stock reservation in Lua with its outbox, delay queue, fenced
//! lock, GCRA rate limiter, idempotency store; standalone and Cluster) and
//! PostgreSQL (`postgres`: the repositories, migrations and the guarded order transaction).
//! They implement the traits of `seckill-core` and pass its conformance suites.
//!
//! [`register`] adds the URL schemes of the compiled features to a
//! [`seckill_core::registry::Registry`].

#![warn(missing_docs)]

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

/// Adds the schemes of the compiled features (`redis://`, `redis-cluster://`, `postgres://`)
/// to `registry`.
pub fn register(registry: &mut seckill_core::registry::Registry) {
    #[cfg(feature = "redis")]
    redis::register(registry);
    #[cfg(feature = "postgres")]
    postgres::register(registry);
    let _ = registry;
}
