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
    #[error("conflict: {0}")]
    Conflict(String),
    /// A record the operation needs does not exist.
    #[error("not found: {0}")]
    NotFound(String),
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
            Error::Conflict(_) => "conflict",
            Error::NotFound(_) => "not_found",
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

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: impl fmt::Display) -> Self {
        Error::NotFound(what.to_string())
    }

    /// Shorthand for [`Error::Conflict`].
    pub fn conflict(what: impl fmt::Display) -> Self {
        Error::Conflict(what.to_string())
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(what: impl fmt::Display) -> Self {
        Error::InvalidArgument(what.to_string())
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
        assert!(!Error::conflict("dup").is_retryable());
        assert!(!Error::not_found("order 1").is_retryable());
        assert_eq!(Error::invalid("q").kind(), "invalid_argument");
    }
}
