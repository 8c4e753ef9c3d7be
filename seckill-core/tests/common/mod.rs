//! A sale on the in-memory backends with a manual clock, for the engine's tests.
#![allow(dead_code)]

use chrono::Duration as CDuration;
use seckill_core::domain::OrderId;
use seckill_core::domain::{Activity, ActivityId, Money, Product, ProductId};
use seckill_core::engine::faults::FaultInjector;
use seckill_core::engine::{Backends, Engine, EngineConfig, OrderWorker};
use seckill_core::invariants::{check, Expect};
use seckill_core::memory::MemoryStockReserver;
use seckill_core::payment::MockProvider;
use seckill_core::{Clock, ManualClock, StockReserver};
use std::sync::Arc;
use std::time::Duration;

pub struct Sale {
    pub engine: Engine,
    pub clock: ManualClock,
    pub provider: Arc<MockProvider>,
    pub activity: ActivityId,
}

pub struct SaleSpec {
    pub total: u32,
    pub limit: u32,
    pub broken_reserver: bool,
    pub batch_size: usize,
    pub faults: Option<Arc<dyn FaultInjector>>,
}

impl Default for SaleSpec {
    fn default() -> Self {
        Self {
            total: 10,
            limit: 2,
            broken_reserver: false,
            batch_size: 64,
            faults: None,
        }
    }
}

pub async fn sale(spec: SaleSpec) -> Sale {
    let clock = ManualClock::fixed();
    let provider = Arc::new(MockProvider::new(b"test-secret".to_vec()));
    let dyn_clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let mut backends = Backends::in_memory(dyn_clock.clone(), provider.clone());
    if spec.broken_reserver {
        backends.stock = Arc::new(MemoryStockReserver::broken_skipping_stock_check(dyn_clock))
            as Arc<dyn StockReserver>;
    }
    let cfg = EngineConfig {
        payment_timeout: Duration::from_secs(600),
        batch_size: spec.batch_size,
        reconcile_grace: Duration::from_secs(60),
        activity_cache_ttl: Duration::ZERO,
        ..EngineConfig::default()
    };
    let engine = match spec.faults {
        Some(f) => Engine::with_faults(backends, cfg, f),
        None => Engine::new(backends, cfg),
    };
    let now = clock.now();
    let product = Product {
        id: ProductId(engine.next_id()),
        name: "Jay Chou — Carnival World Tour, row A".into(),
        description: "test".into(),
        list_price: Money(128_000),
        created_at: now,
    };
    engine
        .backends()
        .catalog
        .insert_product(&product)
        .await
        .unwrap();
    let activity = Activity {
        id: ActivityId(engine.next_id()),
        product_id: product.id,
        title: "flash sale".into(),
        price: Money(48_000),
        total_stock: spec.total,
        sold: 0,
        per_user_limit: spec.limit,
        starts_at: now,
        ends_at: now + CDuration::days(2),
        cancelled: false,
        created_at: now,
    };
    engine
        .backends()
        .catalog
        .insert_activity(&activity)
        .await
        .unwrap();
    engine.warm_up(activity.id).await.unwrap();
    Sale {
        engine,
        clock,
        provider,
        activity: activity.id,
    }
}

impl Sale {
    /// The violations of the guarantees with the pipeline at rest, given what buyers were told.
    pub async fn violations_at_rest(&self, reserved: Vec<OrderId>) -> Vec<String> {
        let expect = Expect {
            reserved,
            ledger: Some(self.provider.ledger()),
            quiescent: true,
            ..Expect::default()
        };
        check(&self.engine, self.activity, &expect).await.unwrap()
    }

    /// Asserts every guarantee holds at rest.
    pub async fn assert_at_rest(&self, reserved: Vec<OrderId>) {
        let v = self.violations_at_rest(reserved).await;
        assert!(v.is_empty(), "{v:#?}");
    }

    /// Runs relay and order worker until the outbox and the broker are empty.
    pub async fn drain(&self, worker: &mut OrderWorker) {
        for _ in 0..10_000 {
            let relayed = self.engine.relay_once().await.unwrap();
            let worked = worker.run_once(Duration::ZERO).await.unwrap();
            let b = self.engine.backends();
            let lag = b
                .broker
                .lag(
                    &self.engine.config().holds_topic,
                    &self.engine.config().order_group,
                )
                .await
                .unwrap();
            if relayed == 0 && worked == 0 && lag == 0 && b.stock.outbox_len().await.unwrap() == 0 {
                return;
            }
        }
        panic!("pipeline did not drain");
    }
}
