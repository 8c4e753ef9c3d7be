//! Circuit breakers: a backend that fails or stops answering is cut off for a cool-down, so
//! callers fail fast with a retryable error instead of each waiting for the client's timeout.
//!
//! A [`Breaker`] watches the calls through it. **Closed**, it admits every call; a call slower
//! than `call_timeout` is cut and counts as a failure, as does a retryable error
//! ([`Error::is_retryable`]) other than an injected crash; a refusal of the backend's own (not
//! found, conflict) is a success.
//! After `failures` failures in a row, or a failed share of at least `failure_ratio` among at
//! least `min_calls` calls of the current `window`, it **opens**: every call fails at once with
//! [`Error::Unavailable`] naming the breaker, for `cool_down`. Then it is **half-open**: up to
//! `probes` calls go through; one success closes it, one failure opens it again.
//!
//! [`Guarded`] wraps a backend in a breaker and implements the backend's own trait
//! ([`StockReserver`], [`MessageBroker`], [`SessionStore`], the repositories,
//! [`PaymentProvider`]), as a `tower` layer wraps a service; [`guard_backends`] wraps a whole
//! [`Backends`](crate::engine::Backends). Cutting a call is safe wherever the backend is
//! atomic: the call either happened whole or not at all, and the pipeline's retries and
//! idempotency keys (the outbox, the order inbox, the reserve's request id) settle which.

use crate::broker::{Message, MessageBroker, Subscription};
use crate::domain::{
    Activity, ActivityId, Event, EventId, HoldId, Order, OrderId, Payment, PaymentId,
    PaymentStatus, Product, ProductId, User, UserId,
};
use crate::payment::{Callback, Checkout, Notification, PaymentProvider, PaymentProviders};
use crate::repo::{
    CatalogRepo, CreateOrder, OrderFilter, OrderRepo, Page, PageRequest, PaymentRecorded,
    PaymentRepo, StatusChange, StatusChanged, UserRepo, Voided,
};
use crate::session::{CodeCheck, RevocationFeed, SessionStore};
use crate::stock::{
    HoldRecord, OutboxEntry, ReserveOutcome, ReserveRequest, StockReserver, StockSnapshot,
    StockSpec, TierSnapshot, Transition,
};
use crate::{Error, Result, Timestamp};
use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker (0: never by count).
    pub failures: u32,
    /// The window over which the failed share is counted, in milliseconds.
    pub window_ms: u64,
    /// The failed share of a window's calls that opens the breaker (0 < r ≤ 1; 0: never by
    /// ratio).
    pub failure_ratio: f64,
    /// Calls a window needs before its ratio counts.
    pub min_calls: u32,
    /// A call slower than this is cut and fails, in milliseconds (0: never cut).
    pub call_timeout_ms: u64,
    /// How long the breaker stays open before it lets probes through, in milliseconds.
    pub cool_down_ms: u64,
    /// Calls let through at once while half-open.
    pub probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            window_ms: 10_000,
            failure_ratio: 0.5,
            min_calls: 20,
            call_timeout_ms: 1_000,
            cool_down_ms: 2_000,
            probes: 1,
        }
    }
}

impl BreakerConfig {
    /// What is wrong with the settings, if anything.
    pub fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.failure_ratio) || self.failure_ratio.is_nan() {
            return Err(Error::invalid(
                "breaker failure_ratio must be within 0 and 1",
            ));
        }
        if self.failures == 0 && self.failure_ratio == 0.0 {
            return Err(Error::invalid(
                "a breaker needs failures > 0 or failure_ratio > 0 to ever open",
            ));
        }
        if self.window_ms == 0 || self.cool_down_ms == 0 || self.probes == 0 {
            return Err(Error::invalid(
                "breaker window_ms, cool_down_ms and probes must be above 0",
            ));
        }
        Ok(())
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Every call goes through.
    Closed,
    /// Every call fails at once.
    Open,
    /// A few probes go through; the first outcome decides.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The metric's value: 0 closed, 1 open, 2 half-open.
    pub fn value(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    in_a_row: u32,
    window_start: Instant,
    calls: u32,
    failed: u32,
    open_until: Instant,
    probes: u32,
}

/// One backend's circuit breaker (see the module's documentation).
#[derive(Debug)]
pub struct Breaker {
    name: &'static str,
    config: BreakerConfig,
    inner: Mutex<Inner>,
    opened: AtomicU64,
    rejected: AtomicU64,
}

/// A call admitted through a breaker; if it is dropped before its outcome is recorded (the
/// caller gave up), a half-open probe slot is given back.
struct Admission<'a> {
    breaker: &'a Breaker,
    probe: bool,
    done: bool,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if self.probe && !self.done {
            let mut i = self.breaker.inner.lock();
            i.probes = i.probes.saturating_sub(1);
        }
    }
}

impl Breaker {
    /// A closed breaker for the backend `name` (`stock`, `broker`, `database`, …).
    pub fn new(name: &'static str, config: BreakerConfig) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            name,
            config,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                in_a_row: 0,
                window_start: now,
                calls: 0,
                failed: 0,
                open_until: now,
                probes: 0,
            }),
            opened: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        })
    }

    /// The backend's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Where it stands now (an open breaker past its cool-down reads half-open).
    pub fn state(&self) -> BreakerState {
        let i = self.inner.lock();
        match i.state {
            BreakerState::Open if Instant::now() >= i.open_until => BreakerState::HalfOpen,
            s => s,
        }
    }

    /// Times it opened.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Calls it failed at once.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    fn fast_fail(&self) -> Error {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        Error::Unavailable {
            backend: self.name,
            message: "circuit breaker open: the backend failed recently; retry shortly".into(),
        }
    }

    fn admit(&self) -> Result<Admission<'_>> {
        let mut i = self.inner.lock();
        let now = Instant::now();
        if i.state == BreakerState::Open && now >= i.open_until {
            i.state = BreakerState::HalfOpen;
            i.probes = 0;
        }
        match i.state {
            BreakerState::Closed => Ok(Admission {
                breaker: self,
                probe: false,
                done: false,
            }),
            BreakerState::Open => {
                drop(i);
                Err(self.fast_fail())
            }
            BreakerState::HalfOpen if i.probes < self.config.probes => {
                i.probes += 1;
                Ok(Admission {
                    breaker: self,
                    probe: true,
                    done: false,
                })
            }
            BreakerState::HalfOpen => {
                drop(i);
                Err(self.fast_fail())
            }
        }
    }

    fn open(&self, i: &mut Inner, now: Instant) {
        i.state = BreakerState::Open;
        i.open_until = now + Duration::from_millis(self.config.cool_down_ms);
        i.in_a_row = 0;
        i.calls = 0;
        i.failed = 0;
        i.window_start = now;
        i.probes = 0;
        self.opened.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            backend = self.name,
            cool_down_ms = self.config.cool_down_ms,
            "circuit breaker opened: calls fail fast until the backend answers again"
        );
    }

    fn record(&self, mut a: Admission<'_>, ok: bool) {
        a.done = true;
        let mut i = self.inner.lock();
        let now = Instant::now();
        if a.probe {
            i.probes = i.probes.saturating_sub(1);
            if i.state != BreakerState::HalfOpen {
                return;
            }
            if ok {
                i.state = BreakerState::Closed;
                i.in_a_row = 0;
                i.calls = 0;
                i.failed = 0;
                i.window_start = now;
                tracing::info!(
                    backend = self.name,
                    "circuit breaker closed: the backend answers"
                );
            } else {
                self.open(&mut i, now);
            }
            return;
        }
        if i.state != BreakerState::Closed {
            return;
        }
        if now.duration_since(i.window_start) >= Duration::from_millis(self.config.window_ms) {
            i.window_start = now;
            i.calls = 0;
            i.failed = 0;
        }
        i.calls += 1;
        if ok {
            i.in_a_row = 0;
            return;
        }
        i.failed += 1;
        i.in_a_row += 1;
        let c = &self.config;
        let by_count = c.failures > 0 && i.in_a_row >= c.failures;
        let by_ratio = c.failure_ratio > 0.0
            && i.calls >= c.min_calls.max(1)
            && f64::from(i.failed) >= c.failure_ratio * f64::from(i.calls);
        if by_count || by_ratio {
            self.open(&mut i, now);
        }
    }

    /// Runs `call` through the breaker: at once [`Error::Unavailable`] when open; otherwise the
    /// call, cut after `call_timeout_ms`, its outcome counted.
    pub async fn call<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.call_within(self.config.call_timeout_ms, call).await
    }

    /// [`Breaker::call`] without the cut: for bulk calls whose time grows with the data (a
    /// warm-up's load, a reconciliation's scans), which a cut sized for one buy would fail on
    /// every pass of a large sale.
    pub async fn call_uncut<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.call_within(0, call).await
    }

    async fn call_within<T>(
        &self,
        timeout_ms: u64,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let admission = self.admit()?;
        let out = match timeout_ms {
            0 => call.await,
            ms => match tokio::time::timeout(Duration::from_millis(ms), call).await {
                Ok(r) => r,
                Err(_) => Err(Error::Unavailable {
                    backend: self.name,
                    message: format!("no answer within the breaker's {ms} ms"),
                }),
            },
        };
        let ok = match &out {
            Ok(_) => true,
            Err(Error::Crashed(_)) => true,
            Err(e) => !e.is_retryable(),
        };
        self.record(admission, ok);
        out
    }
}

/// The breakers a set of backends runs through, for metrics and readiness.
#[derive(Debug, Clone, Default)]
pub struct Breakers(pub Arc<[Arc<Breaker>]>);

impl Breakers {
    /// Each breaker's name and state.
    pub fn states(&self) -> Vec<(&'static str, BreakerState)> {
        self.0.iter().map(|b| (b.name(), b.state())).collect()
    }
}

/// A backend behind a breaker: it implements the backend's trait, every call through
/// [`Breaker::call`] (calls answered from memory, like
/// [`StockReserver::sold_out_hint`], pass straight through).
#[derive(Debug)]
pub struct Guarded<T: ?Sized> {
    inner: Arc<T>,
    breaker: Arc<Breaker>,
}

impl<T: ?Sized> Guarded<T> {
    /// `inner` behind `breaker`.
    pub fn new(inner: Arc<T>, breaker: Arc<Breaker>) -> Self {
        Self { inner, breaker }
    }
}

/// `impl Trait for Guarded<T>`: each listed async method through the breaker (`bulk` ones
/// without its cut), each sync one straight to the inner backend.
macro_rules! guarded {
    (
        $trait:ident;
        $( async fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*
        $( bulk async fn $bname:ident(&self $(, $barg:ident : $bty:ty)*) -> $bret:ty; )*
        $( fn $sname:ident(&self $(, $sarg:ident : $sty:ty)*) -> $sret:ty; )*
    ) => {
        #[async_trait]
        impl<T: $trait + ?Sized> $trait for Guarded<T> {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    self.breaker.call(self.inner.$name($($arg),*)).await
                }
            )*
            $(
                async fn $bname(&self $(, $barg: $bty)*) -> $bret {
                    self.breaker.call_uncut(self.inner.$bname($($barg),*)).await
                }
            )*
            $(
                fn $sname(&self $(, $sarg: $sty)*) -> $sret {
                    self.inner.$sname($($sarg),*)
                }
            )*
        }
    };
}

guarded! {
    StockReserver;
    async fn reserve(&self, req: &ReserveRequest) -> Result<ReserveOutcome>;
    async fn confirm(&self, activity: ActivityId, hold: HoldId) -> Result<Transition>;
    async fn release(&self, activity: ActivityId, hold: HoldId) -> Result<Transition>;
    async fn snapshot(&self, activity: ActivityId) -> Result<Option<StockSnapshot>>;
    async fn hold(&self, activity: ActivityId, hold: HoldId) -> Result<Option<HoldRecord>>;
    async fn user_count(&self, activity: ActivityId, user: UserId) -> Result<u32>;
    async fn outbox_claim(&self, max: usize, lease: Duration) -> Result<Vec<OutboxEntry>>;
    async fn outbox_ack(&self, ids: &[String]) -> Result<()>;
    async fn outbox_lag(&self) -> Result<Vec<(ActivityId, u64)>>;
    async fn outbox_len(&self) -> Result<u64>;
    bulk async fn load(&self, spec: &StockSpec) -> Result<()>;
    bulk async fn live_holds(&self, activity: ActivityId) -> Result<Vec<HoldRecord>>;
    bulk async fn buckets(&self, activity: ActivityId) -> Result<Vec<StockSnapshot>>;
    bulk async fn tiers(&self, activity: ActivityId) -> Result<Vec<TierSnapshot>>;
    bulk async fn taken_seats(&self, activity: ActivityId) -> Result<Vec<String>>;
    fn sold_out_hint(&self, activity: ActivityId) -> bool;
    fn max_buckets(&self) -> u32;
    fn sells_tiers(&self) -> bool;
    fn sells_seats(&self) -> bool;
    fn sells_holders(&self) -> bool;
}

guarded! {
    MessageBroker;
    async fn publish(&self, topic: &str, message: Message) -> Result<()>;
    async fn publish_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()>;
    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>>;
    async fn lag(&self, topic: &str, group: &str) -> Result<u64>;
}

guarded! {
    SessionStore;
    async fn revoke_token(&self, user: UserId, token_id: &str, ttl: Duration) -> Result<()>;
    async fn revoke_versions_below(&self, user: UserId, version: u32, ttl: Duration) -> Result<()>;
    async fn is_revoked(&self, user: UserId, token_id: &str, version: u32) -> Result<bool>;
    async fn put_code(&self, phone: &str, code: &str, ttl: Duration) -> Result<()>;
    async fn check_code(&self, phone: &str, code: &str, max_tries: u32) -> Result<CodeCheck>;
    bulk async fn revocations_after(&self, cursor: &str) -> Result<Option<RevocationFeed>>;
    fn revocation_signal(&self) -> Option<Arc<tokio::sync::Notify>>;
}

guarded! {
    UserRepo;
    async fn insert_user(&self, user: &User) -> Result<()>;
    async fn user(&self, id: UserId) -> Result<Option<User>>;
    async fn user_by_name(&self, username: &str) -> Result<Option<User>>;
    async fn update_user(&self, user: &User) -> Result<()>;
}

guarded! {
    CatalogRepo;
    async fn insert_product(&self, p: &Product) -> Result<()>;
    async fn product(&self, id: ProductId) -> Result<Option<Product>>;
    async fn list_products(&self, page: PageRequest) -> Result<Page<Product>>;
    async fn update_product(&self, p: &Product) -> Result<()>;
    async fn delete_product(&self, id: ProductId) -> Result<()>;
    async fn product_activities(&self, id: ProductId) -> Result<Vec<Activity>>;
    async fn insert_activity(&self, a: &Activity) -> Result<()>;
    async fn activity(&self, id: ActivityId) -> Result<Option<Activity>>;
    async fn list_activities(&self, page: PageRequest) -> Result<Page<Activity>>;
    async fn update_activity(&self, a: &Activity, fence: u64) -> Result<()>;
    async fn insert_event(&self, e: &Event) -> Result<()>;
    async fn event(&self, id: EventId) -> Result<Option<Event>>;
    async fn list_events(&self, page: PageRequest) -> Result<Page<Event>>;
    async fn update_event(&self, e: &Event) -> Result<()>;
    async fn event_activities(&self, id: EventId) -> Result<Vec<Activity>>;
}

guarded! {
    OrderRepo;
    async fn create_from_hold(&self, message_id: &str, order: &Order) -> Result<CreateOrder>;
    async fn create_from_holds(&self, batch: &[(String, Order)]) -> Result<Vec<CreateOrder>>;
    async fn void_unwritten(&self, id: OrderId, user: UserId, at: Timestamp) -> Result<Voided>;
    async fn is_voided(&self, id: OrderId) -> Result<bool>;
    async fn order(&self, id: OrderId) -> Result<Option<Order>>;
    async fn order_by_hold(&self, hold: HoldId) -> Result<Option<Order>>;
    async fn list_orders(&self, filter: &OrderFilter, page: PageRequest) -> Result<Page<Order>>;
    async fn change_status(&self, id: OrderId, change: StatusChange) -> Result<StatusChanged>;
    async fn expired_pending(&self, now: Timestamp, limit: usize) -> Result<Vec<Order>>;
    async fn cancel_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<Order>>;
    bulk async fn activity_orders(&self, activity: ActivityId) -> Result<Vec<Order>>;
}

guarded! {
    PaymentRepo;
    async fn insert_payment(&self, p: &Payment) -> Result<()>;
    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>>;
    async fn order_payments(&self, order: OrderId) -> Result<Vec<Payment>>;
    async fn record_result(&self, id: PaymentId, txn_id: &str, status: PaymentStatus, at: Timestamp) -> Result<PaymentRecorded>;
    async fn mark_refunded(&self, id: PaymentId, at: Timestamp) -> Result<bool>;
    async fn payments_in(&self, status: PaymentStatus, after: Option<PaymentId>, limit: usize) -> Result<Vec<Payment>>;
}

guarded! {
    PaymentProvider;
    async fn create(&self, payment: &Payment, pay_by: Timestamp) -> Result<Checkout>;
    async fn query(&self, payment: &Payment) -> Result<Option<Notification>>;
    async fn refund(&self, payment: &Payment) -> Result<()>;
    fn name(&self) -> &str;
    fn verify_callback(&self, callback: &Callback) -> Result<Notification>;
    fn callback_ack(&self) -> Option<&'static str>;
}

/// Which backends get a breaker, and with what settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakersConfig {
    /// Breakers on at all.
    pub enabled: bool,
    /// The stock backend's.
    pub stock: BreakerConfig,
    /// The broker's.
    pub broker: BreakerConfig,
    /// The database's (users, catalog, orders, payments share one).
    pub database: BreakerConfig,
    /// The session store's.
    pub sessions: BreakerConfig,
    /// Each payment provider's (one breaker per provider, these settings).
    pub payment: BreakerConfig,
}

impl Default for BreakersConfig {
    fn default() -> Self {
        // Below the HTTP deadline (10 s by default), so a hung provider opens its breaker
        // rather than every payment request running into the route's 504.
        let payment = BreakerConfig {
            call_timeout_ms: 5_000,
            ..BreakerConfig::default()
        };
        Self {
            enabled: true,
            stock: BreakerConfig::default(),
            broker: BreakerConfig::default(),
            database: BreakerConfig {
                call_timeout_ms: 5_000,
                ..BreakerConfig::default()
            },
            sessions: BreakerConfig::default(),
            payment,
        }
    }
}

impl BreakersConfig {
    /// What is wrong with the settings, if anything.
    pub fn check(&self) -> Result<()> {
        for (name, c) in [
            ("stock", &self.stock),
            ("broker", &self.broker),
            ("database", &self.database),
            ("sessions", &self.sessions),
            ("payment", &self.payment),
        ] {
            c.check()
                .map_err(|e| Error::invalid(format!("breakers.{name}: {e}")))?;
        }
        Ok(())
    }
}

/// `b`'s stock, broker, database, sessions and payment providers, each behind a breaker of
/// `c`'s (the database's four repositories behind one), and the breakers; `b` unchanged when
/// breakers are off.
pub fn guard_backends(
    mut b: crate::engine::Backends,
    c: &BreakersConfig,
) -> Result<(crate::engine::Backends, Breakers)> {
    c.check()?;
    if !c.enabled {
        return Ok((b, Breakers::default()));
    }
    let stock = Breaker::new("stock", c.stock.clone());
    let broker = Breaker::new("broker", c.broker.clone());
    let database = Breaker::new("database", c.database.clone());
    let sessions = Breaker::new("sessions", c.sessions.clone());
    b.stock = Arc::new(Guarded::new(b.stock, stock.clone()));
    b.broker = Arc::new(Guarded::new(b.broker, broker.clone()));
    b.users = Arc::new(Guarded::new(b.users, database.clone()));
    b.catalog = Arc::new(Guarded::new(b.catalog, database.clone()));
    b.orders = Arc::new(Guarded::new(b.orders, database.clone()));
    b.payments = Arc::new(Guarded::new(b.payments, database.clone()));
    b.sessions = Arc::new(Guarded::new(b.sessions, sessions.clone()));
    // The split's fallback reads go to the guarded primary; a replica's own failures are the
    // split's to handle (it stops reading from it).
    let replicas = b
        .replicas
        .as_ref()
        .map(|s| s.replicas())
        .unwrap_or_default();
    b.route_reads(replicas);
    let mut all = vec![stock, broker, database, sessions];
    let mut providers: Vec<Arc<dyn PaymentProvider>> = Vec::new();
    for p in b.providers.iter() {
        // A breaker's name is static: the known providers' names, else "payment".
        let name: &'static str = match p.name() {
            "mock" => "payment:mock",
            "alipay" => "payment:alipay",
            "wechat" => "payment:wechat",
            _ => "payment",
        };
        let breaker = Breaker::new(name, c.payment.clone());
        all.push(breaker.clone());
        providers.push(Arc::new(Guarded::new(p.clone(), breaker)));
    }
    b.providers = PaymentProviders::new(providers)?;
    Ok((b, Breakers(all.into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> BreakerConfig {
        BreakerConfig {
            failures: 3,
            window_ms: 1_000,
            failure_ratio: 0.5,
            min_calls: 10,
            call_timeout_ms: 50,
            cool_down_ms: 200,
            probes: 1,
        }
    }

    fn down() -> Result<()> {
        Err(Error::Unavailable {
            backend: "test",
            message: "down".into(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_in_a_row_fails_fast_then_half_opens_and_closes() {
        let b = Breaker::new("stock", quick());
        for _ in 0..2 {
            assert!(b.call(async { down() }).await.is_err());
        }
        assert_eq!(b.state(), BreakerState::Closed);
        // A backend's own refusal is no failure and breaks the run.
        let refused: Result<()> = Err(Error::invalid("no"));
        assert!(b.call(async { refused }).await.is_err());
        for _ in 0..2 {
            assert!(b.call(async { down() }).await.is_err());
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.call(async { down() }).await.is_err());
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.opened(), 1);
        // Open: the call is not even made.
        let mut made = false;
        let e = b
            .call(async {
                made = true;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(!made && e.is_retryable(), "{e}");
        assert!(e.to_string().contains("circuit breaker open"));
        assert_eq!(b.rejected(), 1);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // A failed probe opens it again; a good one closes it.
        assert!(b.call(async { down() }).await.is_err());
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_millis(200)).await;
        b.call(async { Ok(()) }).await.unwrap();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_call_is_cut_and_slow_calls_open_it() {
        let b = Breaker::new("stock", quick());
        for _ in 0..3 {
            let e = b
                .call(async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(())
                })
                .await
                .unwrap_err();
            assert!(e.to_string().contains("50 ms"), "{e}");
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bulk_call_is_not_cut_but_still_fails_fast_when_open() {
        let b = Breaker::new("stock", quick());
        b.call_uncut(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await
        .unwrap();
        for _ in 0..3 {
            let _ = b.call(async { down() }).await;
        }
        let e = b.call_uncut(async { Ok(()) }).await.unwrap_err();
        assert!(e.to_string().contains("circuit breaker open"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_failed_share_of_a_window_opens_it() {
        let b = Breaker::new(
            "database",
            BreakerConfig {
                failures: 0,
                ..quick()
            },
        );
        // Alternating: never 3 in a row, but half of 10 calls failed.
        for i in 0..9 {
            let _ = b
                .call(async move {
                    if i % 2 == 0 {
                        down()
                    } else {
                        Ok(())
                    }
                })
                .await;
            assert_eq!(b.state(), BreakerState::Closed, "call {i}");
        }
        let _ = b.call(async { down() }).await;
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_its_probes_through_and_no_more() {
        let b = Breaker::new("broker", quick());
        for _ in 0..3 {
            let _ = b.call(async { down() }).await;
        }
        tokio::time::advance(Duration::from_millis(200)).await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let b2 = b.clone();
        let probe = tokio::spawn(async move {
            b2.call(async {
                let _ = rx.await;
                Ok(())
            })
            .await
        });
        tokio::task::yield_now().await;
        let e = b.call(async { Ok(()) }).await.unwrap_err();
        assert!(e.to_string().contains("open"));
        tx.send(()).unwrap();
        probe.await.unwrap().unwrap();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn settings_are_checked() {
        assert!(BreakersConfig::default().check().is_ok());
        let bad = BreakerConfig {
            failure_ratio: 1.5,
            ..BreakerConfig::default()
        };
        assert!(bad.check().is_err());
        let never = BreakerConfig {
            failures: 0,
            failure_ratio: 0.0,
            ..BreakerConfig::default()
        };
        assert!(never.check().is_err());
    }
}
