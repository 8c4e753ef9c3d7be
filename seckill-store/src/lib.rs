//! # seckill-store
//!
//! The networked storage backends of seckill-rs, each behind its own cargo feature:
//! Redis (`redis`: stock reservation in Lua with its outbox, delay queue, fenced lock, rate
//! limiter, idempotency store) and PostgreSQL (`postgres`: the repositories, migrations and the
//! guarded order transaction). They implement the traits of `seckill-core` and pass its
//! conformance suites.
//!
//! Status: no backend is compiled in yet; they land with their issues (see README.md). Until
//! then `memory://`, in `seckill-core`, is the only scheme, and the server's registry is
//! `seckill_core::registry::Registry::with_memory()`.

#![warn(missing_docs)]
