//! # seckill-server
//!
//! The reference server of seckill-rs: the flash-sale HTTP API on top of
//! [`seckill_core::engine::Engine`], with every backend chosen by URL in the config and every
//! pipeline role (`api`, `relay`, `order-worker`, `timeout-worker`, `reconciler`) runnable in
//! one process (the default) or split across machines. With no configuration everything runs in
//! memory and a demo sale is seeded.
//!
//! `main.rs` only parses arguments; [`app::build`] wires, [`app::Server::serve`] serves.

#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod config;
pub mod demo;
pub mod error;
pub mod grpc;
pub mod idempotent;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod overload;
pub mod providers;
pub mod routes;
pub mod service;
pub mod state;
pub mod telemetry;
