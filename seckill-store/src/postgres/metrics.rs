//! The connection pool's figures at each scrape: `seckill_db_pool_connections{state}` (idle,
//! in use), `seckill_db_pool_max_connections` and `seckill_db_pool_waiting` (tasks waiting for
//! a connection: above zero, the pool is the bottleneck).

use deadpool_postgres::Pool;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

/// Reports a pool's status when scraped.
#[derive(Debug)]
pub struct PoolCollector(pub Pool);

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.status();
        let in_use = s.size.saturating_sub(s.available);
        let g = ConstGauge::new(0i64);
        let mut e = encoder.encode_descriptor(
            "seckill_db_pool_connections",
            "PostgreSQL pool connections by state.",
            None,
            g.metric_type(),
        )?;
        for (state, n) in [("idle", s.available), ("in_use", in_use)] {
            ConstGauge::new(n as i64).encode(e.encode_family(&[("state", state)])?)?;
        }
        for (name, help, n) in [
            (
                "seckill_db_pool_max_connections",
                "PostgreSQL pool size limit.",
                s.max_size,
            ),
            (
                "seckill_db_pool_waiting",
                "Tasks waiting for a PostgreSQL connection.",
                s.waiting,
            ),
        ] {
            let g = ConstGauge::new(n as i64);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}
