//! The engine suite: the never-oversell proofs, runnable on any set of backends.
//!
//! A [`Fixture`] builds the backends of a sale (in memory, or with Redis stock, …). On it:
//! - [`machine::state_machine`] drives random sequences of buys, cancels, payments, duplicate,
//!   forged, lost and late callbacks, clock jumps, duplicated and redelivered messages and
//!   crashes between any two pipeline steps, checking the guarantees after every step;
//! - [`race::ten_thousand_buyers`] races 10,000 buyers for 1,000 units with the pipeline running.
//!
//! Both also run against [`Fixture::broken_memory`], whose reserver skips the stock check, to
//! show the checker catches an oversell (the negative controls).

pub mod machine;
pub mod race;
pub mod seat_race;
pub mod stock_loss;

use crate::domain::{Activity, ActivityId, Money, OrderId, Product, ProductId};
use crate::engine::faults::FaultInjector;
use crate::engine::{Backends, Engine, EngineConfig, OrderWorker};
use crate::invariants::{check, Expect};
use crate::memory::{MemoryStockReserver, MockProvider};
use crate::repo::CatalogRepo;
use crate::{Clock, ManualClock, StockReserver, Timestamp};
use chrono::Duration as CDuration;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A future building a sale's backends.
pub type BackendsFuture = Pin<Box<dyn Future<Output = Backends> + Send>>;

/// Builds fresh backends on a clock, paying through a provider.
pub type MakeBackends = dyn Fn(Arc<dyn Clock>, Arc<MockProvider>) -> BackendsFuture + Send + Sync;

/// A future cleaning up after a sale.
pub type TeardownFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Removes what the sales built so far left on a shared service.
pub type Teardown = dyn Fn() -> TeardownFuture + Send + Sync;

/// How to build the backends of one sale (called once per case, inside its runtime). The
/// backends must measure leases on the given clock where they keep time themselves.
#[derive(Clone)]
pub struct Fixture {
    /// Shown in failures.
    pub name: &'static str,
    /// Builds fresh backends (a fresh namespace) on `clock`, paying through `provider`.
    pub make: Arc<MakeBackends>,
    /// Run after each case (in its runtime, pass or fail): deletes what the case created on a
    /// service that cannot afford to keep every case's namespace (RabbitMQ's quorum queues).
    pub teardown: Option<Arc<Teardown>>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").field("name", &self.name).finish()
    }
}

impl Fixture {
    /// A fixture building backends with `make`.
    pub fn new<F>(name: &'static str, make: F) -> Self
    where
        F: Fn(Arc<dyn Clock>, Arc<MockProvider>) -> BackendsFuture + Send + Sync + 'static,
    {
        Self {
            name,
            make: Arc::new(make),
            teardown: None,
        }
    }

    /// Adds a teardown, run after each case.
    pub fn with_teardown<F>(mut self, teardown: F) -> Self
    where
        F: Fn() -> TeardownFuture + Send + Sync + 'static,
    {
        self.teardown = Some(Arc::new(teardown));
        self
    }

    /// Runs the teardown, if any.
    pub async fn tear_down(&self) {
        if let Some(t) = &self.teardown {
            t().await;
        }
    }

    /// Every backend in memory.
    pub fn memory() -> Self {
        Self::new("memory", |clock, provider| {
            Box::pin(async move { Backends::in_memory(clock, provider) })
        })
    }

    /// In memory, with a **deliberately broken** reserver that skips the stock check: the
    /// negative control.
    pub fn broken_memory() -> Self {
        Self::new("broken-memory", |clock, provider| {
            Box::pin(async move {
                let mut b = Backends::in_memory(clock.clone(), provider);
                b.stock = Arc::new(MemoryStockReserver::broken_skipping_stock_check(clock))
                    as Arc<dyn StockReserver>;
                b
            })
        })
    }

    /// In memory, with a **deliberately broken** seat allocator that sells a seat twice: the
    /// negative control of the seat checks.
    pub fn double_selling_seats_memory() -> Self {
        Self::new("double-selling-seats-memory", |clock, provider| {
            Box::pin(async move {
                let mut b = Backends::in_memory(clock.clone(), provider);
                b.stock = Arc::new(MemoryStockReserver::broken_double_selling_seats(clock))
                    as Arc<dyn StockReserver>;
                b
            })
        })
    }

    /// In memory, with a **deliberately broken** stock backend that lets one document hold
    /// several tickets of a real-name session: the negative control of the holder checks.
    pub fn ignoring_documents_memory() -> Self {
        Self::new("ignoring-documents-memory", |clock, provider| {
            Box::pin(async move {
                let mut b = Backends::in_memory(clock.clone(), provider);
                b.stock = Arc::new(MemoryStockReserver::broken_ignoring_documents(clock))
                    as Arc<dyn StockReserver>;
                b
            })
        })
    }

    /// In memory, with **deliberately broken** stock buckets that never borrow from each
    /// other (an undersell): the negative control of the bucket checks.
    pub fn not_borrowing_memory() -> Self {
        Self::new("not-borrowing-memory", |clock, provider| {
            Box::pin(async move {
                let mut b = Backends::in_memory(clock.clone(), provider);
                b.stock = Arc::new(MemoryStockReserver::broken_not_borrowing(clock))
                    as Arc<dyn StockReserver>;
                b
            })
        })
    }
}

/// A sale on a fixture's backends with a manual clock.
pub struct Sale {
    /// The engine.
    pub engine: Engine,
    /// Its clock.
    pub clock: ManualClock,
    /// The payment provider (its ledger is checked).
    pub provider: Arc<MockProvider>,
    /// The activity on sale (live, warmed up).
    pub activity: ActivityId,
}

impl std::fmt::Debug for Sale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sale")
            .field("activity", &self.activity)
            .finish()
    }
}

/// The shape of a sale.
#[derive(Debug, Clone)]
pub struct SaleSpec {
    /// Units.
    pub total: u32,
    /// Per-user limit.
    pub limit: u32,
    /// Batch size of relay and workers.
    pub batch_size: usize,
    /// Crash injection.
    pub faults: Option<Arc<dyn FaultInjector>>,
    /// Start the sale's clock at the real time instead of 2030 (order ids carry the real time,
    /// and [`Engine::order_lookup`] compares the two).
    pub real_time: bool,
    /// Stock buckets (cut to what the fixture's stock backend keeps).
    pub buckets: u32,
}

impl Default for SaleSpec {
    fn default() -> Self {
        Self {
            total: 10,
            limit: 2,
            batch_size: 64,
            faults: None,
            real_time: false,
            buckets: 1,
        }
    }
}

/// Inserts a product and an activity of `total` units (at most `limit` per user), live from
/// `now` for two days, into `catalog`; returns the activity (not warmed up).
pub async fn live_activity(
    catalog: &dyn CatalogRepo,
    now: Timestamp,
    total: u32,
    limit: u32,
) -> Activity {
    live_activity_in(catalog, now, total, limit, 1).await
}

/// [`live_activity`] with its stock in `buckets` stock buckets.
pub async fn live_activity_in(
    catalog: &dyn CatalogRepo,
    now: Timestamp,
    total: u32,
    limit: u32,
    buckets: u32,
) -> Activity {
    let product = Product {
        id: ProductId(super::unique_id()),
        name: "Jay Chou — Carnival World Tour, row A".into(),
        description: "test".into(),
        list_price: Money(128_000),
        created_at: now,
    };
    catalog
        .insert_product(&product)
        .await
        .expect("insert product");
    let activity = Activity {
        real_name: false,
        id: ActivityId(super::unique_id()),
        product_id: product.id,
        title: "flash sale".into(),
        price: Money(48_000),
        total_stock: total,
        sold: 0,
        per_user_limit: limit,
        starts_at: now,
        ends_at: now + CDuration::days(2),
        cancelled: false,
        created_at: now,
        stock_buckets: buckets,
        event_id: None,
        tiers: Vec::new(),
        quotas: Vec::new(),
        seats: Vec::new(),
    };
    catalog
        .insert_activity(&activity)
        .await
        .expect("insert activity");
    activity
}

/// Builds a sale: backends from the fixture, a product, a live activity, warmed up.
pub async fn sale(fixture: &Fixture, spec: SaleSpec) -> Sale {
    let clock = if spec.real_time {
        ManualClock::new(chrono::Utc::now())
    } else {
        ManualClock::fixed()
    };
    let provider = Arc::new(MockProvider::new(b"test-secret".to_vec()));
    let dyn_clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let backends = (fixture.make)(dyn_clock, provider.clone()).await;
    let cfg = EngineConfig {
        payment_timeout: Duration::from_secs(600),
        batch_size: spec.batch_size,
        reconcile_grace: Duration::from_secs(60),
        activity_cache_ttl: Duration::from_millis(200),
        // Backends that lease on real time (Redis streams) hand lapsed entries back quickly.
        outbox_lease: Duration::from_millis(50),
        ..EngineConfig::default()
    };
    let engine = match spec.faults {
        Some(f) => Engine::with_faults(backends, cfg, f),
        None => Engine::new(backends, cfg),
    };
    let activity = live_activity_in(
        engine.backends().catalog.as_ref(),
        clock.now(),
        spec.total,
        spec.limit,
        spec.buckets.clamp(1, engine.backends().stock.max_buckets()),
    )
    .await;
    engine.warm_up(activity.id).await.expect("warm up");
    Sale {
        engine,
        clock,
        provider,
        activity: activity.id,
    }
}

impl Sale {
    /// Runs relay and order worker until the outbox and the broker are empty (entries leased by
    /// a crashed relay come back when their lease lapses).
    pub async fn drain(&self, worker: &mut OrderWorker) {
        for _ in 0..20_000 {
            let relayed = self.engine.relay_once().await.expect("relay");
            let worked = worker.run_once(Duration::ZERO).await.expect("order worker");
            let b = self.engine.backends();
            let cfg = self.engine.config();
            let lag = b
                .broker
                .lag(&cfg.holds_topic, &cfg.order_group)
                .await
                .expect("lag");
            let outbox = b.stock.outbox_len().await.expect("outbox");
            if relayed == 0 && worked == 0 && lag == 0 && outbox == 0 {
                return;
            }
            if relayed == 0 && worked == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        panic!("pipeline did not drain");
    }

    /// The same sale on other backends (one of them swapped: a stock backend that lost its
    /// data, a repository that fails), with the same configuration, clock and provider.
    pub fn with_backends(&self, backends: Backends) -> Sale {
        Sale {
            engine: Engine::new(backends, self.engine.config().clone()),
            clock: self.clock.clone(),
            provider: self.provider.clone(),
            activity: self.activity,
        }
    }

    /// The activity's stock figures in the stock backend (panics if it has none).
    pub async fn stock(&self) -> crate::stock::StockSnapshot {
        self.engine
            .backends()
            .stock
            .snapshot(self.activity)
            .await
            .expect("snapshot")
            .expect("the activity's stock is loaded")
    }

    /// The violations of the guarantees with the pipeline at rest, given what buyers were told.
    pub async fn violations_at_rest(&self, reserved: Vec<OrderId>) -> Vec<String> {
        let expect = Expect {
            reserved,
            ledger: Some(self.provider.ledger()),
            quiescent: true,
            ..Expect::default()
        };
        check(&self.engine, self.activity, &expect)
            .await
            .expect("check")
    }

    /// Asserts every guarantee holds at rest.
    pub async fn assert_at_rest(&self, reserved: Vec<OrderId>) {
        let v = self.violations_at_rest(reserved).await;
        assert!(v.is_empty(), "{v:#?}");
    }
}
