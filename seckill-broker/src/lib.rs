//! # seckill-broker
//!
//! The message brokers of seckill-rs behind the `MessageBroker` trait, each behind its own
//! cargo feature (none in the default build): Kafka (`kafka`, rdkafka with its bundled
//! librdkafka), RabbitMQ (`amqp`, lapin) and Redis Streams (`redis-stream`). They pass the
//! broker conformance suite of `seckill-core`.
//!
//! Status: no backend is compiled in yet; they land with their issues (see README.md). Until
//! then `memory://`, in `seckill-core`, is the only scheme, and the server's registry is
//! `seckill_core::registry::Registry::with_memory()`.

#![warn(missing_docs)]
