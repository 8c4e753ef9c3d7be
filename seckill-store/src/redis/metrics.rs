//! Redis connections of this process, at each scrape: `redis_pool_connections` (the seed
//! spec's name: the multiplexed connections the Redis backends hold, one each) and
//! `seckill_redis_connection_errors_total` (commands that failed for want of a connection:
//! refused, dropped, timed out, or a server still loading). Process-wide, as the
//! connections are.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::atomic::{AtomicU64, Ordering};

static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
static CONNECTION_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Counts a connection opened.
pub(crate) fn connected() {
    CONNECTIONS.fetch_add(1, Ordering::Relaxed);
}

/// Counts a command that failed for want of a connection.
pub(crate) fn connection_error() {
    CONNECTION_ERRORS.fetch_add(1, Ordering::Relaxed);
}

/// Connection errors counted so far in this process.
pub fn connection_errors() -> u64 {
    CONNECTION_ERRORS.load(Ordering::Relaxed)
}

/// Reports the process's Redis connections when scraped.
#[derive(Debug, Default)]
pub struct RedisCollector;

impl Collector for RedisCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let g = ConstGauge::new(CONNECTIONS.load(Ordering::Relaxed) as i64);
        g.encode(encoder.encode_descriptor(
            "redis_pool_connections",
            "Redis connections this process holds (multiplexed: one per Redis backend).",
            None,
            g.metric_type(),
        )?)?;
        let c = ConstCounter::new(connection_errors());
        c.encode(encoder.encode_descriptor(
            "seckill_redis_connection_errors",
            "Redis commands that failed for want of a connection.",
            None,
            c.metric_type(),
        )?)?;
        Ok(())
    }
}
