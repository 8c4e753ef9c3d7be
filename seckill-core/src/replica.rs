//! Read replicas: list and detail queries served by copies of the database that may lag.
//!
//! `backends.database_read` names one or more replicas ([`ReadReplica`], built through the
//! registry's `database_read` kind). [`ReadSplit`] checks each one's lag every
//! [`CHECK_EVERY`] and sends each read to a replica whose lag is within its bound, in turn;
//! with none (every replica behind, unreachable or still unknown), the read goes to the
//! primary. A read a replica fails as unavailable is retried on the primary at once.
//!
//! The split is a set of repositories ([`ReadSplit::repos`], [`crate::engine::Backends::read`])
//! whose read methods go to a replica and whose writes go to the primary. Callers choose it for
//! what may be a moment stale (the catalog, order lists and details, admin lists) and keep the
//! primary's repositories for everything that writes, or must read its own write: the order
//! transaction, payments, warm-up, the reconciler and the guarantee checker.

use crate::domain::{
    Activity, ActivityId, Event, EventId, HoldId, Order, OrderId, Payment, PaymentId,
    PaymentStatus, Product, ProductId, User, UserId,
};
use crate::registry::Repos;
use crate::repo::{
    CatalogRepo, CreateOrder, OrderFilter, OrderRepo, Page, PageRequest, PaymentRecorded,
    PaymentRepo, StatusChange, StatusChanged, UserRepo, Voided,
};
use crate::{Error, Result, Timestamp};
use async_trait::async_trait;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often [`ReadSplit`] measures each replica's lag.
pub const CHECK_EVERY: Duration = Duration::from_millis(200);

/// How long one lag measurement may take before its replica counts as unreachable.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// A read-only copy of the database that may be behind the primary (a streaming replica).
#[async_trait]
pub trait ReadReplica: Send + Sync + Debug {
    /// Its name in metrics and `/ready` (its URL, password redacted).
    fn name(&self) -> &str;

    /// Its repositories. Only their read methods are called.
    fn repos(&self) -> &Repos;

    /// The most it may lag and still serve reads.
    fn max_lag(&self) -> Duration;

    /// How far behind the primary it is now: how long it has been missing a change the primary
    /// had. `None` when it cannot say yet (it has not been seen to catch up to anything); an
    /// error when it cannot be reached.
    async fn lag(&self) -> Result<Option<Duration>>;
}

/// One replica and what its last check found.
#[derive(Debug)]
struct Tracked {
    replica: Arc<dyn ReadReplica>,
    /// Whether reads go to it: its last check answered with a lag within its bound.
    healthy: AtomicBool,
    /// Its last measured lag in ms; -1 when unknown or unreachable.
    lag_ms: AtomicI64,
    /// Reads it served.
    reads: AtomicU64,
}

/// What `/ready` and the metrics show of one replica.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplicaStatus {
    /// Its name (URL, password redacted).
    pub name: String,
    /// Whether reads go to it now.
    pub healthy: bool,
    /// Its last measured lag in ms (`None`: unknown or unreachable).
    pub lag_ms: Option<u64>,
    /// The lag past which it stops serving, in ms.
    pub max_lag_ms: u64,
    /// Reads it served.
    pub reads: u64,
}

/// Sends reads to replicas within their lag bound, and everything else to the primary.
#[derive(Debug)]
pub struct ReadSplit {
    primary: Repos,
    replicas: Vec<Tracked>,
    next: AtomicUsize,
    primary_reads: AtomicU64,
}

impl ReadSplit {
    /// A split over `replicas` with `primary` for writes and fallback. A task measures every
    /// replica at once, then every [`CHECK_EVERY`], and ends when the split is dropped; until
    /// a replica's first measurement, its reads go to the primary.
    pub fn start(primary: Repos, replicas: Vec<Arc<dyn ReadReplica>>) -> Arc<Self> {
        let split = Arc::new(Self {
            primary,
            replicas: replicas
                .into_iter()
                .map(|replica| Tracked {
                    replica,
                    healthy: AtomicBool::new(false),
                    lag_ms: AtomicI64::new(-1),
                    reads: AtomicU64::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
            primary_reads: AtomicU64::new(0),
        });
        if !split.replicas.is_empty() {
            let weak: Weak<Self> = Arc::downgrade(&split);
            tokio::spawn(async move {
                loop {
                    let Some(s) = weak.upgrade() else { break };
                    s.check().await;
                    drop(s);
                    tokio::time::sleep(CHECK_EVERY).await;
                }
            });
        }
        split
    }

    /// The replicas it splits over.
    pub fn replicas(&self) -> Vec<Arc<dyn ReadReplica>> {
        self.replicas.iter().map(|t| t.replica.clone()).collect()
    }

    /// Measures every replica's lag once (all at once) and decides which serve reads.
    pub async fn check(&self) {
        let checks = self.replicas.iter().map(|t| async move {
            let lag = tokio::time::timeout(CHECK_TIMEOUT, t.replica.lag()).await;
            let lag = match lag {
                Ok(Ok(lag)) => lag,
                Ok(Err(e)) => {
                    if t.healthy.load(Ordering::Relaxed) {
                        tracing::warn!(replica = t.replica.name(), error = %e,
                            "read replica unreachable; its reads go to the primary");
                    }
                    None
                }
                Err(_) => None,
            };
            let ok = lag.is_some_and(|l| l <= t.replica.max_lag());
            let was = t.healthy.swap(ok, Ordering::Relaxed);
            if was && !ok {
                tracing::warn!(replica = t.replica.name(), lag_ms = ?lag.map(|l| l.as_millis()),
                    "read replica behind its bound or unknown; its reads go elsewhere");
            } else if ok && !was {
                tracing::info!(replica = t.replica.name(), "read replica serving reads");
            }
            t.lag_ms.store(
                lag.map_or(-1, |l| l.as_millis().min(i64::MAX as u128) as i64),
                Ordering::Relaxed,
            );
        });
        futures::future::join_all(checks).await;
    }

    /// Repositories whose reads go to a replica in bound and whose writes go to the primary.
    pub fn repos(self: &Arc<Self>) -> Repos {
        let r = Arc::new(Routed(self.clone()));
        Repos {
            users: r.clone(),
            catalog: r.clone(),
            orders: r.clone(),
            payments: r,
        }
    }

    /// Every replica's state.
    pub fn status(&self) -> Vec<ReplicaStatus> {
        self.replicas
            .iter()
            .map(|t| ReplicaStatus {
                name: t.replica.name().to_string(),
                healthy: t.healthy.load(Ordering::Relaxed),
                lag_ms: u64::try_from(t.lag_ms.load(Ordering::Relaxed)).ok(),
                max_lag_ms: t.replica.max_lag().as_millis() as u64,
                reads: t.reads.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Reads the primary served (no replica in bound, or a replica failed the read).
    pub fn primary_reads(&self) -> u64 {
        self.primary_reads.load(Ordering::Relaxed)
    }

    /// The next replica in bound, in turn.
    fn pick(&self) -> Option<&Tracked> {
        let n = self.replicas.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.replicas[(start + i) % n])
            .find(|t| t.healthy.load(Ordering::Relaxed))
    }

    /// `read` on a replica in bound; on the primary when there is none or the replica answers
    /// unavailable (it then serves no reads until its next check finds it back).
    async fn read<'a, T, F>(&'a self, read: F) -> Result<T>
    where
        F: Fn(&'a Repos) -> futures::future::BoxFuture<'a, Result<T>>,
    {
        if let Some(t) = self.pick() {
            match read(t.replica.repos()).await {
                Err(e @ Error::Unavailable { .. }) => {
                    t.healthy.store(false, Ordering::Relaxed);
                    tracing::warn!(replica = t.replica.name(), error = %e,
                        "read replica failed a read; retried on the primary");
                }
                other => {
                    t.reads.fetch_add(1, Ordering::Relaxed);
                    return other;
                }
            }
        }
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
        read(&self.primary).await
    }
}

/// The repositories [`ReadSplit::repos`] hands out.
#[derive(Debug)]
struct Routed(Arc<ReadSplit>);

/// `impl Trait for Routed`: `read` methods through [`ReadSplit::read`], `write` ones to the
/// primary.
macro_rules! routed {
    (
        $trait:ident, $field:ident;
        $( read async fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*
        $( write async fn $wname:ident(&self $(, $warg:ident : $wty:ty)*) -> $wret:ty; )*
    ) => {
        #[async_trait]
        impl $trait for Routed {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    self.0.read(|r| Box::pin(r.$field.$name($($arg),*))).await
                }
            )*
            $(
                async fn $wname(&self $(, $warg: $wty)*) -> $wret {
                    self.0.primary.$field.$wname($($warg),*).await
                }
            )*
        }
    };
}

routed! {
    UserRepo, users;
    read async fn user(&self, id: UserId) -> Result<Option<User>>;
    read async fn user_by_name(&self, username: &str) -> Result<Option<User>>;
    write async fn insert_user(&self, user: &User) -> Result<()>;
    write async fn update_user(&self, user: &User) -> Result<()>;
}

routed! {
    CatalogRepo, catalog;
    read async fn product(&self, id: ProductId) -> Result<Option<Product>>;
    read async fn list_products(&self, page: PageRequest) -> Result<Page<Product>>;
    read async fn product_activities(&self, id: ProductId) -> Result<Vec<Activity>>;
    read async fn activity(&self, id: ActivityId) -> Result<Option<Activity>>;
    read async fn list_activities(&self, page: PageRequest) -> Result<Page<Activity>>;
    read async fn event(&self, id: EventId) -> Result<Option<Event>>;
    read async fn list_events(&self, page: PageRequest) -> Result<Page<Event>>;
    read async fn event_activities(&self, id: EventId) -> Result<Vec<Activity>>;
    write async fn insert_event(&self, e: &Event) -> Result<()>;
    write async fn update_event(&self, e: &Event) -> Result<()>;
    write async fn insert_product(&self, p: &Product) -> Result<()>;
    write async fn update_product(&self, p: &Product) -> Result<()>;
    write async fn delete_product(&self, id: ProductId) -> Result<()>;
    write async fn insert_activity(&self, a: &Activity) -> Result<()>;
    write async fn update_activity(&self, a: &Activity, fence: u64) -> Result<()>;
}

routed! {
    OrderRepo, orders;
    read async fn is_voided(&self, id: OrderId) -> Result<bool>;
    read async fn order(&self, id: OrderId) -> Result<Option<Order>>;
    read async fn order_by_hold(&self, hold: HoldId) -> Result<Option<Order>>;
    read async fn list_orders(&self, filter: &OrderFilter, page: PageRequest) -> Result<Page<Order>>;
    read async fn expired_pending(&self, now: Timestamp, limit: usize) -> Result<Vec<Order>>;
    read async fn activity_orders(&self, activity: ActivityId) -> Result<Vec<Order>>;
    write async fn create_from_hold(&self, message_id: &str, order: &Order) -> Result<CreateOrder>;
    write async fn create_from_holds(&self, batch: &[(String, Order)]) -> Result<Vec<CreateOrder>>;
    write async fn void_unwritten(&self, id: OrderId, user: UserId, at: Timestamp) -> Result<Voided>;
    write async fn change_status(&self, id: OrderId, change: StatusChange) -> Result<StatusChanged>;
    write async fn cancel_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<Order>>;
}

routed! {
    PaymentRepo, payments;
    read async fn payment(&self, id: PaymentId) -> Result<Option<Payment>>;
    read async fn order_payments(&self, order: OrderId) -> Result<Vec<Payment>>;
    read async fn payments_in(&self, status: PaymentStatus, after: Option<PaymentId>, limit: usize) -> Result<Vec<Payment>>;
    write async fn insert_payment(&self, p: &Payment) -> Result<()>;
    write async fn record_result(&self, id: PaymentId, txn_id: &str, status: PaymentStatus, at: Timestamp) -> Result<PaymentRecorded>;
    write async fn mark_refunded(&self, id: PaymentId, at: Timestamp) -> Result<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use parking_lot::Mutex;

    fn repos(s: Arc<MemoryStore>) -> Repos {
        Repos {
            users: s.clone(),
            catalog: s.clone(),
            orders: s.clone(),
            payments: s,
        }
    }

    /// A replica whose lag the test sets (`Err` when "down").
    #[derive(Debug)]
    struct Fake {
        repos: Repos,
        lag: Mutex<std::result::Result<Option<Duration>, ()>>,
    }

    #[async_trait]
    impl ReadReplica for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn repos(&self) -> &Repos {
            &self.repos
        }
        fn max_lag(&self) -> Duration {
            Duration::from_millis(500)
        }
        async fn lag(&self) -> Result<Option<Duration>> {
            (*self.lag.lock()).map_err(|_| Error::Unavailable {
                backend: "fake",
                message: "down".into(),
            })
        }
    }

    fn product(name: &str) -> Product {
        Product {
            id: ProductId(1),
            name: name.into(),
            description: String::new(),
            list_price: crate::domain::Money(100),
            created_at: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn reads_go_to_a_replica_in_bound_writes_to_the_primary_and_a_lagging_one_is_skipped() {
        let primary = Arc::new(MemoryStore::new());
        let copy = Arc::new(MemoryStore::new());
        let fake = Arc::new(Fake {
            repos: repos(copy.clone()),
            lag: Mutex::new(Ok(Some(Duration::from_millis(10)))),
        });
        let split = ReadSplit::start(repos(primary.clone()), vec![fake.clone()]);
        split.check().await;
        let read = split.repos();
        // A write through the split lands on the primary only.
        read.catalog
            .insert_product(&product("primary"))
            .await
            .unwrap();
        assert!(primary.product(ProductId(1)).await.unwrap().is_some());
        assert!(copy.product(ProductId(1)).await.unwrap().is_none());
        // The replica has not caught up: the read shows its (stale) answer.
        assert_eq!(read.catalog.product(ProductId(1)).await.unwrap(), None);
        copy.insert_product(&product("replica")).await.unwrap();
        let got = read.catalog.product(ProductId(1)).await.unwrap().unwrap();
        assert_eq!(got.name, "replica");
        assert_eq!(split.status()[0].reads, 2);

        // Behind its bound: reads go to the primary.
        *fake.lag.lock() = Ok(Some(Duration::from_millis(900)));
        split.check().await;
        let got = read.catalog.product(ProductId(1)).await.unwrap().unwrap();
        assert_eq!(got.name, "primary");
        assert_eq!(split.primary_reads(), 1);
        let st = &split.status()[0];
        assert!(!st.healthy);
        assert_eq!(st.lag_ms, Some(900));

        // Unknown, then unreachable: still the primary.
        for lag in [Ok(None), Err(())] {
            *fake.lag.lock() = lag;
            split.check().await;
            let got = read.catalog.product(ProductId(1)).await.unwrap().unwrap();
            assert_eq!(got.name, "primary");
            assert_eq!(split.status()[0].lag_ms, None);
        }

        // Back in bound: the replica serves again.
        *fake.lag.lock() = Ok(Some(Duration::ZERO));
        split.check().await;
        let got = read.catalog.product(ProductId(1)).await.unwrap().unwrap();
        assert_eq!(got.name, "replica");
    }

    #[tokio::test]
    async fn no_replicas_means_the_primary() {
        let primary = Arc::new(MemoryStore::new());
        let split = ReadSplit::start(repos(primary.clone()), vec![]);
        primary.insert_product(&product("p")).await.unwrap();
        assert!(split
            .repos()
            .catalog
            .product(ProductId(1))
            .await
            .unwrap()
            .is_some());
        assert_eq!(split.primary_reads(), 1);
    }
}
