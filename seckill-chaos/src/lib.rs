//! `seckill-chaos`: a fault harness in the manner of Jepsen for seckill-rs. It starts the real
//! `seckill-server` binaries split into roles, on their own Redis and PostgreSQL, with a TCP
//! fault proxy on every link; runs a flash sale with many buyers (random quantities up to the
//! limit + 1, idempotent retries, payments, cancels, timeouts); kills, pauses, cuts, stalls and
//! rewinds components mid-sale; records every request in a history; and checks from the history
//! and the database that nothing was oversold, no acknowledged buy was left unresolved, no
//! order was duplicated, no paid order was lost and nothing was charged twice.
//!
//! The short form runs in CI (`seckill-chaos short`); the long form runs a seeded schedule of
//! every fault for a given time (`seckill-chaos long --minutes 30 --seed 1`).

#![warn(missing_docs)]

pub mod checker;
pub mod client;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod load;
pub mod postgres;
pub mod proxy;
pub mod redis;
pub mod run;
