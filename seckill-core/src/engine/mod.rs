//! The sale engine: the pipeline of docs/design.md §5, one file per step.
//!
//! ```text
//! buy ─► gate (activity live? local sold-out flag? rate limit?) ─► StockReserver::reserve
//!        (one atomic step: limit, stock, hold, outbox entry) ─► {hold_id, order_id}
//! relay: outbox ─► MessageBroker::publish_batch ─► ack outbox              (relay.rs)
//! order worker: consume ─► OrderRepo::create_from_hold (inbox + guard + insert)
//!        ─► confirm hold ─► DelayQueue::schedule(deadline) ─► ack          (order_worker.rs)
//! timeout worker: claim ─► cancel if still pending (CAS) ─► release hold  (cancel.rs)
//! pay: create payment ─► signed callback ─► verify ─► pending→paid (CAS);
//!        late payment on a cancelled order ─► refund                       (pay.rs)
//! reconciler: total = available + held + sold; repairs                     (reconcile.rs)
//! ```
//!
//! Every step after the reserve is idempotent and safe to repeat, so a crash between any two
//! steps (see [`faults`]) only causes a retry.

mod buy;
mod cancel;
mod catalog;
mod controls;
pub mod faults;
mod lookup;
mod metrics;
mod order_worker;
mod pay;
mod reconcile;
mod relay;
mod retry;
mod runner;
mod sabotage;
mod warmup;

pub use buy::{BuyOutcome, BuyRejection, BuyRequest};
pub use catalog::{NewActivity, NewEvent, NewProduct, NewUser};
pub use controls::SaleControls;
pub use lookup::OrderLookup;
pub use metrics::{
    BackendMetrics, CallbackLabels, EngineMetrics, Histogram, SpecCounter, CALLBACK_OUTCOMES,
    FAIL_REASONS, FINDING_KINDS,
};
pub use order_worker::OrderWorker;
pub use pay::{CallbackOutcome, PaymentStarted, Settlement};
pub use reconcile::{Issue, ReconcileReport};
pub use runner::{runner_pace_for_tests, Pace, Role, Runner};
pub use warmup::activity_lock_key;

use crate::broker::MessageBroker;
use crate::clock::{Clock, SystemClock};
use crate::delay::DelayQueue;
use crate::domain::{Activity, ActivityId, Snowflake};
use crate::idempotency::IdempotencyStore;
use crate::lock::Lock;
use crate::memory::{
    MemoryBroker, MemoryDelayQueue, MemoryIdempotencyStore, MemoryLock, MemoryRateLimiter,
    MemorySessionStore, MemoryStockReserver, MemoryStore,
};
use crate::payment::PaymentProviders;
use crate::rate_limit::{Quota, RateLimiter};
use crate::registry::Repos;
use crate::replica::{ReadReplica, ReadSplit};
use crate::repo::{CatalogRepo, OrderRepo, PaymentRepo, UserRepo};
use crate::session::SessionStore;
use crate::stock::StockReserver;
use crate::{Error, Result, Timestamp};
use faults::{CrashPoint, FaultInjector};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The backends the engine runs on, each chosen independently.
#[derive(Debug, Clone)]
pub struct Backends {
    /// The atomic reserve step and its outbox.
    pub stock: Arc<dyn StockReserver>,
    /// Holds travel from the relay to the order workers here.
    pub broker: Arc<dyn MessageBroker>,
    /// Payment deadlines.
    pub delay: Arc<dyn DelayQueue>,
    /// Warm-up and reconciliation locks.
    pub lock: Arc<dyn Lock>,
    /// Per-user buy rate limit.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Request de-duplication for the API.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Revoked tokens and verification codes.
    pub sessions: Arc<dyn SessionStore>,
    /// The live settings every process shares.
    pub settings: Arc<dyn crate::settings::SettingsStore>,
    /// Users.
    pub users: Arc<dyn UserRepo>,
    /// Products and activities.
    pub catalog: Arc<dyn CatalogRepo>,
    /// Orders and the inbox.
    pub orders: Arc<dyn OrderRepo>,
    /// Payments.
    pub payments: Arc<dyn PaymentRepo>,
    /// The read split over the replicas, when `backends.database_read` names some (its state
    /// for `/ready` and the metrics); see [`Self::read`].
    pub replicas: Option<Arc<ReadSplit>>,
    /// The payment providers (the first is the default).
    pub providers: PaymentProviders,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// What the backends report about their own resources (none in memory).
    pub metrics: BackendMetrics,
    /// How a buy's trace crosses the outbox, the broker and the order (off by default).
    pub tracing: crate::trace::Tracing,
}

impl Backends {
    /// The four repositories of the primary database.
    pub fn primary(&self) -> Repos {
        Repos {
            users: self.users.clone(),
            catalog: self.catalog.clone(),
            orders: self.orders.clone(),
            payments: self.payments.clone(),
        }
    }

    /// Where list and detail queries that may be a moment stale go: the read replicas in
    /// their lag bound when there are any (writes through it go to the primary), else the
    /// primary's repositories themselves. See [`crate::replica`].
    pub fn read(&self) -> Repos {
        match &self.replicas {
            Some(split) => split.repos(),
            None => self.primary(),
        }
    }

    /// Sends [`Self::read`] to `replicas` (in their lag bound) over the repositories the
    /// primary has now (none: the primary's). The split keeps those repositories for writes
    /// and fallback: call it again after replacing or wrapping them (breakers do).
    pub fn route_reads(&mut self, replicas: Vec<Arc<dyn ReadReplica>>) {
        self.replicas = (!replicas.is_empty()).then(|| ReadSplit::start(self.primary(), replicas));
    }

    /// Every backend in memory, on `clock`, paying through `providers`.
    pub fn in_memory(clock: Arc<dyn Clock>, providers: impl Into<PaymentProviders>) -> Self {
        let store = Arc::new(MemoryStore::new());
        Self {
            stock: Arc::new(MemoryStockReserver::new(clock.clone())),
            broker: Arc::new(MemoryBroker::new(clock.clone(), 5, Duration::from_secs(30))),
            delay: Arc::new(MemoryDelayQueue::new()),
            lock: Arc::new(MemoryLock::new(clock.clone())),
            rate_limiter: Arc::new(MemoryRateLimiter::new(clock.clone())),
            idempotency: Arc::new(MemoryIdempotencyStore::new(clock.clone())),
            sessions: Arc::new(MemorySessionStore::new(clock.clone())),
            settings: Arc::new(crate::settings::MemorySettingsStore::default()),
            replicas: None,
            users: store.clone(),
            catalog: store.clone(),
            orders: store.clone(),
            payments: store,
            providers: providers.into(),
            clock,
            metrics: BackendMetrics::default(),
            tracing: crate::trace::Tracing::off(),
        }
    }

    /// Every backend in memory on the system clock with the `mock` provider signing with
    /// `secret`.
    pub fn in_memory_default(secret: &[u8]) -> Self {
        Self::in_memory(
            Arc::new(SystemClock),
            Arc::new(crate::memory::MockProvider::new(secret.to_vec())),
        )
    }
}

/// Tunables of the pipeline.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long a new order waits for payment.
    pub payment_timeout: Duration,
    /// Topic the relay publishes holds to.
    pub holds_topic: String,
    /// Consumer group of the order workers.
    pub order_group: String,
    /// Delay queue of payment deadlines.
    pub timeout_queue: String,
    /// Per-user buy rate, if any.
    pub buy_quota: Option<Quota>,
    /// How long a relay owns claimed outbox entries.
    pub outbox_lease: Duration,
    /// How long a timeout worker owns claimed deadlines.
    pub timeout_lease: Duration,
    /// Items per batch in the relay and the workers.
    pub batch_size: usize,
    /// A hold older than this with no order is treated as stranded by the reconciler.
    pub reconcile_grace: Duration,
    /// How long the buy gate trusts its cached copy of an activity.
    pub activity_cache_ttl: Duration,
    /// Payments per status the reconciler looks at in one pass; the next pass goes on after
    /// the last one, so every payment is reached however many there are.
    pub reconcile_page: usize,
    /// Snowflake worker id of this process.
    pub worker_id: u16,
    /// The key real-name holders' document numbers are hashed under (docs/adr/0021): the same
    /// in every process of a deployment, and kept. The default is random, for this process
    /// alone (right for in-memory backends, which live and die with it); `None` refuses to
    /// create or sell real-name sessions.
    pub document_key: Option<crate::domain::DocumentKey>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            payment_timeout: Duration::from_secs(15 * 60),
            holds_topic: "seckill.holds".into(),
            order_group: "order-workers".into(),
            timeout_queue: "order-timeouts".into(),
            buy_quota: None,
            outbox_lease: Duration::from_secs(30),
            timeout_lease: Duration::from_secs(30),
            batch_size: 256,
            reconcile_grace: Duration::from_secs(60),
            activity_cache_ttl: Duration::from_secs(1),
            reconcile_page: 500,
            worker_id: 0,
            document_key: Some(crate::domain::DocumentKey::random()),
        }
    }
}

#[derive(Debug)]
struct Inner {
    b: Backends,
    cfg: EngineConfig,
    ids: Snowflake,
    activities: RwLock<HashMap<ActivityId, (Arc<Activity>, Instant)>>,
    fetching: parking_lot::Mutex<HashMap<ActivityId, Arc<tokio::sync::Mutex<()>>>>,
    faults: Option<Arc<dyn FaultInjector>>,
    metrics: EngineMetrics,
    /// The kill switch and the live buy quota.
    controls: SaleControls,
    /// Where each payment status's reconciliation scan goes on.
    payment_cursors:
        parking_lot::Mutex<HashMap<crate::domain::PaymentStatus, crate::domain::PaymentId>>,
}

/// The sale engine. Cheap to clone; every clone shares the same state.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// An engine on `backends`.
    pub fn new(backends: Backends, cfg: EngineConfig) -> Self {
        Self::build(backends, cfg, None)
    }

    /// An engine that crashes where `faults` says (tests only).
    pub fn with_faults(
        backends: Backends,
        cfg: EngineConfig,
        faults: Arc<dyn FaultInjector>,
    ) -> Self {
        Self::build(backends, cfg, Some(faults))
    }

    fn build(
        backends: Backends,
        cfg: EngineConfig,
        faults: Option<Arc<dyn FaultInjector>>,
    ) -> Self {
        let metrics = EngineMetrics::default();
        let controls = SaleControls::new(cfg.buy_quota);
        // Every provider's callback series from the start, so dashboards and alerts see zeros
        // rather than no series.
        for provider in backends.providers.names() {
            metrics.expect_callbacks(provider);
        }
        Self {
            inner: Arc::new(Inner {
                ids: Snowflake::new(cfg.worker_id),
                b: backends,
                cfg,
                activities: RwLock::new(HashMap::new()),
                fetching: parking_lot::Mutex::new(HashMap::new()),
                faults,
                metrics,
                controls,
                payment_cursors: parking_lot::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The backends.
    pub fn backends(&self) -> &Backends {
        &self.inner.b
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.cfg
    }

    /// The live controls: the per-activity kill switch and the buy quota.
    pub fn controls(&self) -> &SaleControls {
        &self.inner.controls
    }

    /// The metrics.
    pub fn metrics(&self) -> &EngineMetrics {
        &self.inner.metrics
    }

    /// The current time on the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.b.clock.now()
    }

    /// A fresh snowflake id.
    pub fn next_id(&self) -> i64 {
        self.inner.ids.next_id()
    }

    /// Stops with [`Error::Crashed`] if the fault injector says the process dies at `at`.
    fn crash_point(&self, at: CrashPoint) -> Result<()> {
        match &self.inner.faults {
            Some(f) if f.crash_at(at) => Err(Error::Crashed(at.name())),
            _ => Ok(()),
        }
    }

    /// The activity, from a short-lived cache (the buy gate reads it on every request). A miss
    /// fetches it once: concurrent callers wait for that fetch instead of all going to the
    /// database (a sale's first second would otherwise stampede the connection pool).
    pub async fn activity_cached(&self, id: ActivityId) -> Result<Option<Arc<Activity>>> {
        let ttl = self.inner.cfg.activity_cache_ttl;
        let fresh = |c: &HashMap<ActivityId, (Arc<Activity>, Instant)>| {
            c.get(&id)
                .filter(|(_, at)| at.elapsed() < ttl)
                .map(|(a, _)| a.clone())
        };
        if let Some(a) = fresh(&self.inner.activities.read()) {
            return Ok(Some(a));
        }
        let gate = self
            .inner
            .fetching
            .lock()
            .entry(id)
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        let _one_at_a_time = gate.lock().await;
        if let Some(a) = fresh(&self.inner.activities.read()) {
            return Ok(Some(a));
        }
        let Some(a) = self.inner.b.catalog.activity(id).await? else {
            self.inner.activities.write().remove(&id);
            return Ok(None);
        };
        let a = Arc::new(a);
        self.inner
            .activities
            .write()
            .insert(id, (a.clone(), Instant::now()));
        Ok(Some(a))
    }

    /// Forgets the cached copy of an activity (after an admin update in this process).
    pub fn invalidate_activity(&self, id: ActivityId) {
        self.inner.activities.write().remove(&id);
    }
}
