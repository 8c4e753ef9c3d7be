//! The one error type every backend trait returns.
//!
//! Business outcomes (sold out, limit reached, …) are *values* of the operations, never errors.
//! An [`Error`] means the operation could not be carried out: the backend is down, the caller's
//! input conflicts with stored state, or a stored record is missing. Backend crates map their
//! client errors into these semantic variants so that no `redis::RedisError` or
//! `tokio_postgres::Error` ever leaks through the traits.

use std::fmt;

/// A boxed error from a backend's client library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every backend trait.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a backend operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend cannot be reached right now (connection refused, timed out, shutting down).
    /// Retrying later may succeed.
    #[error("{backend} is unavailable: {message}")]
    Unavailable {
        /// Which backend (`"redis"`, `"memory"`, …).
        backend: &'static str,
        /// What happened.
        message: String,
    },
    /// The operation conflicts with the stored state (a unique key already taken, a
    /// compare-and-set that lost, an idempotency key reused with another request).
    #[error("conflict: {entity} {id}: {reason}")]
    Conflict {
        /// What kind of record conflicted.
        entity: Entity,
        /// Its id (or key), as text; empty when the backend cannot tell.
        id: String,
        /// Why, for humans.
        reason: String,
    },
    /// A record the operation needs does not exist.
    #[error("not found: {entity} {id}")]
    NotFound {
        /// What kind of record is missing.
        entity: Entity,
        /// Its id (or key), as text.
        id: String,
    },
    /// The caller passed something the backend refuses (empty key, zero quantity, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A signature or token failed verification.
    #[error("verification failed: {0}")]
    Unauthenticated(String),
    /// A deliberately injected crash (see [`crate::engine::faults`]); the step stopped there, as
    /// if the process had died, and must be retried.
    #[error("injected crash at {0}")]
    Crashed(&'static str),
    /// Any other failure of a backend's client library.
    #[error("{backend} error: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The client library's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. } | Error::Crashed(_) | Error::Backend { .. }
        )
    }

    /// A stable machine-readable name of the variant, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Unavailable { .. } => "unavailable",
            Error::Conflict { .. } => "conflict",
            Error::NotFound { .. } => "not_found",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Crashed(_) => "crashed",
            Error::Backend { .. } => "backend",
        }
    }

    /// Shorthand for [`Error::Backend`].
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            source: source.into(),
        }
    }

    /// Shorthand for [`Error::NotFound`]: no `entity` with `id`.
    pub fn not_found(entity: Entity, id: impl fmt::Display) -> Self {
        Error::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// Shorthand for [`Error::Conflict`]: `entity` `id` conflicts, because `reason`.
    pub fn conflict(entity: Entity, id: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Error::Conflict {
            entity,
            id: id.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The kind of record a [`Error::NotFound`] or [`Error::Conflict`] names.
    pub fn entity(&self) -> Option<Entity> {
        match self {
            Error::NotFound { entity, .. } | Error::Conflict { entity, .. } => Some(*entity),
            _ => None,
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(what: impl fmt::Display) -> Self {
        Error::InvalidArgument(what.to_string())
    }
}

/// The kinds of record an [`Error::NotFound`] or [`Error::Conflict`] names: what a caller maps
/// to its own codes (the server's table is `seckill-server/src/error.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Entity {
    /// A user, by id.
    User,
    /// A username (unique among users).
    Username,
    /// A product.
    Product,
    /// An event (a show whose sessions are activities).
    Event,
    /// A sale activity (its record or its stock).
    Activity,
    /// An activity's critical section (warm-up, reconcile, update) held by another process.
    ActivityLock,
    /// An order.
    Order,
    /// A payment.
    Payment,
    /// A payment provider, by name.
    Provider,
    /// An idempotency key (reused with another request, or still running).
    IdempotencyKey,
    /// A hold (a reservation in the stock backend).
    Hold,
    /// A lock or lease, by name.
    Lease,
    /// The shared live settings (a write that lost to another).
    Settings,
    /// Anything else (a broker queue, a provider's own record).
    Other,
}

impl Entity {
    /// The kind's name, as messages and logs show it.
    pub fn name(self) -> &'static str {
        match self {
            Entity::User => "user",
            Entity::Username => "username",
            Entity::Product => "product",
            Entity::Event => "event",
            Entity::Activity => "activity",
            Entity::ActivityLock => "activity lock",
            Entity::Order => "order",
            Entity::Payment => "payment",
            Entity::Provider => "payment provider",
            Entity::IdempotencyKey => "idempotency key",
            Entity::Hold => "hold",
            Entity::Settings => "settings",
            Entity::Lease => "lease",
            Entity::Other => "record",
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_variants() {
        assert!(Error::Unavailable {
            backend: "x",
            message: "down".into()
        }
        .is_retryable());
        assert!(Error::Crashed("relay").is_retryable());
        let dup = Error::conflict(Entity::Username, "bob", "taken");
        assert!(!dup.is_retryable());
        assert_eq!(dup.to_string(), "conflict: username bob: taken");
        assert_eq!(dup.entity(), Some(Entity::Username));
        let missing = Error::not_found(Entity::Order, 1);
        assert!(!missing.is_retryable());
        assert_eq!(missing.to_string(), "not found: order 1");
        assert_eq!(Error::invalid("q").kind(), "invalid_argument");
    }
}
