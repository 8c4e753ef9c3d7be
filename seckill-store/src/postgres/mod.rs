//! The PostgreSQL repositories (feature `postgres`): schema and embedded migrations, every
//! repository trait of `seckill-core`, and the order transaction with its guards. [`PgStore`]
//! and its query helpers are in `store.rs`; each trait's impl in `users.rs`, `catalog.rs`,
//! `orders.rs` and `payments.rs`.

mod catalog;
mod metrics;
mod migrate;
mod orders;
mod payments;
mod replica;
mod store;
mod users;

/// The connection pool [`pool`] builds (deadpool-postgres's).
pub use deadpool_postgres::Pool;
pub use metrics::PoolCollector;
pub use migrate::{migrate, migrate_to, MIGRATIONS};
pub use replica::PgReplica;
pub use store::PgStore;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use seckill_core::registry::{BackendUrl, Registry, Repos};
use seckill_core::{Entity, Error};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Maps a client error: lost connections are `Unavailable` (retryable), unique and check
/// violations `Conflict`, foreign-key violations `NotFound`, the rest `Backend`.
pub fn map_err(e: tokio_postgres::Error) -> Error {
    use tokio_postgres::error::SqlState;
    if let Some(db) = e.as_db_error() {
        let msg = format!("{}: {}", db.code().code(), db.message());
        let c = db.code();
        // The constraint's name, never its detail: the detail quotes the row's values, and a
        // conflict's reason reaches the caller.
        let constraint = db.constraint().unwrap_or("a constraint");
        return if *c == SqlState::UNIQUE_VIOLATION || *c == SqlState::CHECK_VIOLATION {
            Error::conflict(
                entity_of(db),
                "",
                format!("the database's {constraint} refused the write"),
            )
        } else if *c == SqlState::FOREIGN_KEY_VIOLATION {
            // Callers that know the record referred to say which; this names the constraint.
            Error::not_found(Entity::Other, format!("(referred to by {constraint})"))
        } else if *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::ADMIN_SHUTDOWN
            || *c == SqlState::CANNOT_CONNECT_NOW
        {
            Error::Unavailable {
                backend: "postgres",
                message: msg,
            }
        } else {
            Error::backend("postgres", msg)
        };
    }
    // No server error: the connection failed or closed.
    Error::Unavailable {
        backend: "postgres",
        message: e.to_string(),
    }
}

/// The kind of record a constraint of `db`'s table guards.
fn entity_of(db: &tokio_postgres::error::DbError) -> Entity {
    match db.table() {
        Some("users") if db.constraint().is_some_and(|c| c.contains("username")) => {
            Entity::Username
        }
        Some("users") => Entity::User,
        Some("products") => Entity::Product,
        Some("events") => Entity::Event,
        Some("activities" | "activity_user_units") => Entity::Activity,
        // Orders and the inbox are partitioned: a key's violation names the partition.
        Some(t) if is_table_or_partition(t, "orders") || is_table_or_partition(t, "inbox") => {
            Entity::Order
        }
        Some("payments") => Entity::Payment,
        _ => Entity::Other,
    }
}

/// Whether `table` is `name` or one of its partitions (`{name}_p{n}`).
fn is_table_or_partition(table: &str, name: &str) -> bool {
    table.strip_prefix(name).is_some_and(|rest| {
        rest.is_empty()
            || rest
                .strip_prefix("_p")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Maps a pool error (no connection to be had) to `Unavailable`.
pub fn map_pool_err(e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => map_err(e),
        other => Error::Unavailable {
            backend: "postgres",
            message: other.to_string(),
        },
    }
}

/// Opens a pool for `postgres://user[:password]@host[:port]/db[?schema=NAME&migrate=false&…]`.
/// `schema` sets the search path of every connection (tests use one schema each); `migrate` is
/// read by [`register`], `max_lag_ms` by [`PgReplica`]; other parameters go to the driver.
pub fn pool(url: &BackendUrl) -> Result<Pool, Error> {
    let raw = url.expose();
    let (base, query) = raw.split_once('?').unwrap_or((raw, ""));
    let mut schema = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("schema", s))
                if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                schema = Some(s.to_string())
            }
            Some(("schema", _)) => {
                return Err(Error::invalid("schema must be letters, digits and '_'"))
            }
            Some(("migrate" | "max_lag_ms", _)) => {}
            _ => rest.push(pair),
        }
    }
    let driver_url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut cfg = tokio_postgres::Config::from_str(&driver_url)
        .map_err(|e| Error::invalid(format!("PostgreSQL URL {url}: {e}")))?;
    cfg.connect_timeout(Duration::from_secs(2));
    if let Some(s) = &schema {
        cfg.options(format!("-c search_path={s}"));
    }
    let mgr = Manager::from_config(
        cfg,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(16)
        .wait_timeout(Some(Duration::from_secs(2)))
        .create_timeout(Some(Duration::from_secs(2)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::invalid(format!("PostgreSQL pool: {e}")))
}

/// Whether the URL asks to migrate at connect (`migrate=false` turns it off; default on).
pub fn migrates_at_connect(url: &BackendUrl) -> bool {
    !url.expose()
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|p| p == "migrate=false"))
}

/// Registers `postgres://` (and `postgresql://`) for the repositories. Unless the URL says
/// `migrate=false` (then run `seckill migrate`), migrations run at connect (idempotent,
/// serialized by an advisory lock). `database_read` URLs of the same schemes are streaming
/// replicas of the database ([`PgReplica`]; never migrated: a replica is read-only).
pub fn register(r: &mut Registry) {
    for scheme in ["postgres", "postgresql"] {
        r.database_read.register(scheme, |u, ctx| async move {
            let Some(primary) = ctx.primary else {
                return Err(Error::invalid("a read replica needs its primary's URL"));
            };
            if !matches!(primary.scheme(), "postgres" | "postgresql") {
                return Err(Error::invalid(format!(
                    "backends.database_read {u} is a PostgreSQL replica, but backends.database \
                     is {primary}: replicas need a PostgreSQL primary"
                )));
            }
            Ok(Arc::new(PgReplica::connect(&u, &primary)?)
                as Arc<dyn seckill_core::replica::ReadReplica>)
        });
        r.database.register(scheme, |u, ctx| async move {
            let pool = pool(&u)?;
            ctx.metrics.add("postgres", PoolCollector(pool.clone()));
            if migrates_at_connect(&u) {
                migrate(&pool).await?;
            }
            let s = Arc::new(PgStore::new(pool));
            Ok(Repos {
                users: s.clone(),
                catalog: s.clone(),
                orders: s.clone(),
                payments: s,
            })
        });
    }
}
