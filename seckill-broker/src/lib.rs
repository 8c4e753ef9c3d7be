//! # seckill-broker
//!
//! The message brokers of seckill-rs behind the `MessageBroker` trait, each behind its own
//! cargo feature: Redis Streams (`redis-stream`, the default: `redis-stream://…`), RabbitMQ
//! (`amqp`, lapin: `amqp://…?groups=…`) and Kafka (`kafka`, rdkafka with its bundled
//! librdkafka: `kafka://host:9092?partitions=N`). All pass the broker conformance suite of
//! `seckill-core` and carry the engine's never-oversell proofs.
//!
//! [`register`] adds the URL schemes of the compiled features to a
//! [`seckill_core::registry::Registry`].

#![warn(missing_docs)]

#[cfg(feature = "amqp")]
pub mod amqp;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "redis-stream")]
pub mod redis_stream;

/// Deliveries of a message before it goes to its dead-letter topic.
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// How long a delivery may stay unacked before another consumer gets it.
pub const DEFAULT_REDELIVER_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Adds the schemes of the compiled features (`redis-stream://`, `amqp://`, `kafka://`) to
/// `registry`.
pub fn register(registry: &mut seckill_core::registry::Registry) {
    #[cfg(feature = "kafka")]
    registry.broker.register("kafka", |u, _| async move {
        Ok(
            kafka::KafkaBroker::connect(&u, DEFAULT_MAX_DELIVERIES).await?
                as std::sync::Arc<dyn seckill_core::MessageBroker>,
        )
    });
    #[cfg(feature = "amqp")]
    registry.broker.register("amqp", |u, _| async move {
        Ok(amqp::AmqpBroker::connect(&u, DEFAULT_MAX_DELIVERIES).await?
            as std::sync::Arc<dyn seckill_core::MessageBroker>)
    });
    #[cfg(feature = "redis-stream")]
    registry.broker.register("redis-stream", |u, _| async move {
        // The same URL shape as redis:// (host, db, ?prefix=).
        let url = seckill_core::registry::BackendUrl::parse(&u.expose().replacen(
            "redis-stream://",
            "redis://",
            1,
        ))?;
        let t = seckill_store::redis::connect(&url).await?;
        Ok(std::sync::Arc::new(redis_stream::RedisStreamBroker::new(
            t,
            DEFAULT_MAX_DELIVERIES,
            DEFAULT_REDELIVER_AFTER,
        ))
            as std::sync::Arc<dyn seckill_core::MessageBroker>)
    });
    let _ = registry;
}
