//! Backends by URL: a registry maps each URL scheme to a constructor, per backend kind.
//!
//! Core registers `memory://` for every kind. `seckill-store` and `seckill-broker` add their
//! schemes (`redis://`, `postgres://`, `kafka://`, `amqp://`, `redis-stream://`) for the features
//! they were compiled with. An unknown scheme is an error that lists the available ones. URLs
//! print with their password redacted.

use crate::clock::Clock;
use crate::engine::{BackendMetrics, Backends};
use crate::memory::{
    MemoryBroker, MemoryDelayQueue, MemoryIdempotencyStore, MemoryLock, MemoryRateLimiter,
    MemorySessionStore, MemoryStockReserver, MemoryStore,
};
use crate::payment::PaymentProviders;
use crate::replica::ReadReplica;
use crate::repo::{CatalogRepo, OrderRepo, PaymentRepo, UserRepo};
use crate::settings::{MemorySettingsStore, SettingsStore};
use crate::{
    DelayQueue, Error, IdempotencyStore, Lock, MessageBroker, RateLimiter, Result, SessionStore,
    StockReserver,
};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A backend URL. `Debug` and `Display` redact the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendUrl {
    raw: String,
    scheme_len: usize,
}

impl BackendUrl {
    /// Parses `scheme://rest`.
    pub fn parse(s: &str) -> Result<Self> {
        let Some(i) = s.find("://") else {
            return Err(Error::invalid(format!(
                "backend URL {:?} has no scheme (expected e.g. memory://)",
                redact(s)
            )));
        };
        let scheme = &s[..i];
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '+' || c == '.')
        {
            return Err(Error::invalid(format!(
                "backend URL {:?} has an invalid scheme",
                redact(s)
            )));
        }
        Ok(Self {
            raw: s.to_string(),
            scheme_len: i,
        })
    }

    /// The scheme (`memory`, `redis`, …).
    pub fn scheme(&self) -> &str {
        &self.raw[..self.scheme_len]
    }

    /// The full URL, secrets included: hand it only to the client library.
    pub fn expose(&self) -> &str {
        &self.raw
    }
}

/// `scheme://user:secret@host/…?sasl.password=secret` → `scheme://user:***@host/…?sasl.password=***`:
/// the userinfo password, and the value of every query option whose name says it holds a secret
/// (`password`, `secret`, `token`, `key`).
fn redact(s: &str) -> String {
    let Some(start) = s.find("://").map(|i| i + 3) else {
        return s.to_string();
    };
    let (head, query) = match s.find('?') {
        Some(q) if q >= start => (&s[..q], Some(&s[q + 1..])),
        _ => (s, None),
    };
    let rest = &head[start..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!(
                "{}{}:***{}",
                &head[..start],
                &authority[..colon],
                &rest[at..]
            )
        }
        _ => head.to_string(),
    };
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _))
                    if ["password", "secret", "token", "key"]
                        .iter()
                        .any(|w| k.to_ascii_lowercase().contains(w)) =>
                {
                    format!("{k}=***")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.raw))
    }
}

impl fmt::Debug for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackendUrl({})", redact(&self.raw))
    }
}

/// The repositories, which one database URL provides together.
#[derive(Debug, Clone)]
pub struct Repos {
    /// Users.
    pub users: Arc<dyn UserRepo>,
    /// Catalog.
    pub catalog: Arc<dyn CatalogRepo>,
    /// Orders and inbox.
    pub orders: Arc<dyn OrderRepo>,
    /// Payments.
    pub payments: Arc<dyn PaymentRepo>,
}

/// What a constructor gets besides its URL.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The clock backends measure leases on.
    pub clock: Arc<dyn Clock>,
    /// Where a backend adds the collectors of its own resources (pool sizes, connection
    /// errors); they end up in [`Backends::metrics`].
    pub metrics: BackendMetrics,
    /// The primary database's URL, given to `database_read` constructors (a replica measures
    /// its lag against it); `None` for every other kind.
    pub primary: Option<BackendUrl>,
}

impl BuildContext {
    /// A context on `clock`, collecting into a new [`BackendMetrics`].
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            metrics: BackendMetrics::default(),
            primary: None,
        }
    }
}

/// A boxed future returned by constructors.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

type Factory<T> = Arc<dyn Fn(BackendUrl, BuildContext) -> BoxFuture<T> + Send + Sync>;

/// The constructors of one backend kind, by scheme.
pub struct Schemes<T> {
    kind: &'static str,
    map: BTreeMap<String, Factory<T>>,
}

impl<T> fmt::Debug for Schemes<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schemes")
            .field("kind", &self.kind)
            .field("schemes", &self.map.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<T: 'static> Schemes<T> {
    fn new(kind: &'static str) -> Self {
        Self {
            kind,
            map: BTreeMap::new(),
        }
    }

    /// Registers (or replaces) the constructor of `scheme`.
    pub fn register<F, Fut>(&mut self, scheme: &str, f: F)
    where
        F: Fn(BackendUrl, BuildContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        self.map.insert(
            scheme.to_string(),
            Arc::new(move |u, c| Box::pin(f(u, c)) as BoxFuture<T>),
        );
    }

    /// The registered schemes.
    pub fn schemes(&self) -> Vec<&str> {
        self.map.keys().map(String::as_str).collect()
    }

    /// Builds the backend `url` names.
    pub async fn build(&self, url: &str, ctx: &BuildContext) -> Result<T> {
        let url = BackendUrl::parse(url)?;
        let Some(f) = self.map.get(url.scheme()) else {
            return Err(Error::invalid(format!(
                "unknown {} backend scheme {:?} in {url}; available: {}",
                self.kind,
                url.scheme(),
                self.schemes()
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        f(url, ctx.clone()).await
    }
}

/// Which URL each backend kind uses. Every one is `memory://` by default.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendUrls {
    /// Stock reserver and outbox.
    pub stock: String,
    /// Message broker.
    pub broker: String,
    /// Delay queue.
    pub delay: String,
    /// Lock.
    pub lock: String,
    /// Rate limiter.
    pub rate_limit: String,
    /// Idempotency store.
    pub idempotency: String,
    /// Session store (revoked tokens, verification codes).
    pub sessions: String,
    /// The live settings every process shares (kill switch, limits, CORS origins, …).
    pub settings: String,
    /// Repositories.
    pub database: String,
    /// Read replicas of `database` for list and detail queries (none by default). In TOML a
    /// list or one string; in the environment one string, URLs separated by commas.
    #[serde(deserialize_with = "one_or_many")]
    pub database_read: Vec<String>,
}

/// A list of URLs given as a list, or as one string of comma-separated URLs.
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let all = match <OneOrMany as serde::Deserialize>::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_string).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(all
        .into_iter()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect())
}

impl Default for BackendUrls {
    fn default() -> Self {
        let m = || "memory://".to_string();
        Self {
            stock: m(),
            broker: m(),
            delay: m(),
            lock: m(),
            rate_limit: m(),
            idempotency: m(),
            sessions: m(),
            settings: m(),
            database: m(),
            database_read: Vec::new(),
        }
    }
}

/// Every backend kind's constructors.
#[derive(Debug)]
pub struct Registry {
    /// Stock reservers.
    pub stock: Schemes<Arc<dyn StockReserver>>,
    /// Brokers.
    pub broker: Schemes<Arc<dyn MessageBroker>>,
    /// Delay queues.
    pub delay: Schemes<Arc<dyn DelayQueue>>,
    /// Locks.
    pub lock: Schemes<Arc<dyn Lock>>,
    /// Rate limiters.
    pub rate_limit: Schemes<Arc<dyn RateLimiter>>,
    /// Idempotency stores.
    pub idempotency: Schemes<Arc<dyn IdempotencyStore>>,
    /// Session stores.
    pub sessions: Schemes<Arc<dyn SessionStore>>,
    /// Shared settings stores.
    pub settings: Schemes<Arc<dyn SettingsStore>>,
    /// Repositories.
    pub database: Schemes<Repos>,
    /// Read replicas of the database (none in memory: a memory store has no replicas).
    pub database_read: Schemes<Arc<dyn ReadReplica>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::with_memory()
    }
}

impl Registry {
    /// A registry with nothing registered.
    pub fn empty() -> Self {
        Self {
            stock: Schemes::new("stock"),
            broker: Schemes::new("broker"),
            delay: Schemes::new("delay"),
            lock: Schemes::new("lock"),
            rate_limit: Schemes::new("rate_limit"),
            idempotency: Schemes::new("idempotency"),
            sessions: Schemes::new("sessions"),
            settings: Schemes::new("settings"),
            database: Schemes::new("database"),
            database_read: Schemes::new("database_read"),
        }
    }

    /// A registry with `memory://` for every kind.
    pub fn with_memory() -> Self {
        let mut r = Self::empty();
        r.stock.register("memory", |_, c| async move {
            Ok(Arc::new(MemoryStockReserver::new(c.clock)) as Arc<dyn StockReserver>)
        });
        r.broker.register("memory", |_, c| async move {
            Ok(
                Arc::new(MemoryBroker::new(c.clock, 5, Duration::from_secs(30)))
                    as Arc<dyn MessageBroker>,
            )
        });
        r.delay.register("memory", |_, _| async move {
            Ok(Arc::new(MemoryDelayQueue::new()) as Arc<dyn DelayQueue>)
        });
        r.lock.register("memory", |_, c| async move {
            Ok(Arc::new(MemoryLock::new(c.clock)) as Arc<dyn Lock>)
        });
        r.rate_limit.register("memory", |_, c| async move {
            Ok(Arc::new(MemoryRateLimiter::new(c.clock)) as Arc<dyn RateLimiter>)
        });
        r.idempotency.register("memory", |_, c| async move {
            Ok(Arc::new(MemoryIdempotencyStore::new(c.clock)) as Arc<dyn IdempotencyStore>)
        });
        r.sessions.register("memory", |_, c| async move {
            Ok(Arc::new(MemorySessionStore::new(c.clock)) as Arc<dyn SessionStore>)
        });
        r.settings.register("memory", |_, _| async move {
            Ok(Arc::new(MemorySettingsStore::default()) as Arc<dyn SettingsStore>)
        });
        r.database.register("memory", |_, _| async move {
            let s = Arc::new(MemoryStore::new());
            Ok(Repos {
                users: s.clone(),
                catalog: s.clone(),
                orders: s.clone(),
                payments: s,
            })
        });
        r
    }

    /// Builds every backend from `urls`.
    pub async fn build(
        &self,
        urls: &BackendUrls,
        clock: Arc<dyn Clock>,
        providers: impl Into<PaymentProviders>,
    ) -> Result<Backends> {
        let ctx = BuildContext::new(clock.clone());
        let repos = self.database.build(&urls.database, &ctx).await?;
        let mut replicas = Vec::new();
        if !urls.database_read.is_empty() {
            let read_ctx = BuildContext {
                primary: Some(BackendUrl::parse(&urls.database)?),
                ..ctx.clone()
            };
            for url in &urls.database_read {
                replicas.push(self.database_read.build(url, &read_ctx).await?);
            }
        }
        let mut b = Backends {
            stock: self.stock.build(&urls.stock, &ctx).await?,
            broker: self.broker.build(&urls.broker, &ctx).await?,
            delay: self.delay.build(&urls.delay, &ctx).await?,
            lock: self.lock.build(&urls.lock, &ctx).await?,
            rate_limiter: self.rate_limit.build(&urls.rate_limit, &ctx).await?,
            idempotency: self.idempotency.build(&urls.idempotency, &ctx).await?,
            sessions: self.sessions.build(&urls.sessions, &ctx).await?,
            settings: self.settings.build(&urls.settings, &ctx).await?,
            replicas: None,
            users: repos.users,
            catalog: repos.catalog,
            orders: repos.orders,
            payments: repos.payments,
            providers: providers.into(),
            clock,
            metrics: ctx.metrics,
            tracing: crate::trace::Tracing::off(),
        };
        b.route_reads(replicas);
        if let Some(split) = &b.replicas {
            // Measured once before serving, so that an in-bound replica serves from the start.
            split.check().await;
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    #[test]
    fn urls_redact_passwords() {
        let u = BackendUrl::parse("amqp://guest:s3cret@localhost:5672/%2f").unwrap();
        assert_eq!(u.scheme(), "amqp");
        assert_eq!(u.to_string(), "amqp://guest:***@localhost:5672/%2f");
        assert!(!format!("{u:?}").contains("s3cret"));
        assert_eq!(
            BackendUrl::parse("redis://localhost:6379/0")
                .unwrap()
                .to_string(),
            "redis://localhost:6379/0"
        );
        assert!(BackendUrl::parse("no-scheme").is_err());
        // Secrets passed as options (librdkafka properties, tokens) are masked too.
        let k = BackendUrl::parse(
            "kafka://k1:9092?prefix=shop&producer.sasl.password=hunter2\
             &consumer.ssl.key.password=pw2&partitions=3",
        )
        .unwrap();
        assert_eq!(
            k.to_string(),
            "kafka://k1:9092?prefix=shop&producer.sasl.password=***\
             &consumer.ssl.key.password=***&partitions=3"
        );
        let both = BackendUrl::parse("amqp://u:pw@h:5672/%2f?groups=a&token=t0k").unwrap();
        assert_eq!(
            both.to_string(),
            "amqp://u:***@h:5672/%2f?groups=a&token=***"
        );
    }

    #[test]
    fn read_replicas_are_a_list_or_one_comma_separated_string() {
        let one: BackendUrls = serde_json::from_value(serde_json::json!({
            "database_read": "postgres://a/db, postgres://b/db"
        }))
        .unwrap();
        assert_eq!(one.database_read, ["postgres://a/db", "postgres://b/db"]);
        let many: BackendUrls =
            serde_json::from_value(serde_json::json!({"database_read": ["postgres://a/db"]}))
                .unwrap();
        assert_eq!(many.database_read, ["postgres://a/db"]);
        assert!(BackendUrls::default().database_read.is_empty());
    }

    #[tokio::test]
    async fn a_read_replica_of_a_memory_database_is_refused_with_the_available_schemes() {
        let urls = BackendUrls {
            database_read: vec!["memory://".into()],
            ..BackendUrls::default()
        };
        let err = Registry::with_memory()
            .build(
                &urls,
                Arc::new(SystemClock),
                Arc::new(crate::memory::MockProvider::new(b"s".to_vec())),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown database_read backend scheme \"memory\""),
            "{err}"
        );
    }

    #[tokio::test]
    async fn unknown_scheme_lists_the_available_ones() {
        let r = Registry::with_memory();
        let ctx = BuildContext::new(Arc::new(SystemClock));
        let err = r
            .broker
            .build("kafka://user:pw@localhost:9092", &ctx)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("unknown broker backend scheme \"kafka\""),
            "{msg}"
        );
        assert!(msg.contains("available: memory://"), "{msg}");
        assert!(!msg.contains("pw@"), "{msg}");
        assert!(r.stock.build("memory://", &ctx).await.is_ok());
    }
}
