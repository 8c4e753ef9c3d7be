//! The live settings every process of a deployment shares: one document (the server keeps JSON
//! in it) with a version that grows on every write. A process reads the version often (the
//! server: every 250 ms) and the document when the version moved, so a change set on one
//! process reaches every other one within a second, and a missed notification cannot leave a
//! process behind: the version tells.
//!
//! # Contract (checked by `conformance::settings`, feature `conformance`)
//! - `get` on a store never written is version 0 and no document.
//! - `put(expected, doc)` replaces the document only if the version is still `expected`, and
//!   returns the new version (above every earlier one); otherwise it is
//!   [`Error::Conflict`] on [`Entity::Settings`], and nothing changes.
//!   Of writers racing from one version, exactly one wins.

use crate::{Entity, Error, Result};
use async_trait::async_trait;
use parking_lot::Mutex;

/// A version of the shared settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Versioned {
    /// Grows on every write; 0 before the first.
    pub version: u64,
    /// The document, `None` before the first write.
    pub doc: Option<String>,
}

/// The shared live settings (see the module's documentation).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SettingsStore: Send + Sync + std::fmt::Debug {
    /// The version alone (cheap: what a process polls).
    async fn version(&self) -> Result<u64>;
    /// The current version and document.
    async fn get(&self) -> Result<Versioned>;
    /// Replaces the document if the version is still `expected`; the new version.
    async fn put(&self, expected: u64, doc: &str) -> Result<u64>;
}

/// The conflict of a write that lost the race (or started from an old version).
pub fn stale(expected: u64, current: u64) -> Error {
    Error::conflict(
        Entity::Settings,
        expected,
        format!("the settings are at version {current} now; read them again"),
    )
}

/// In-memory settings: one process's (the embedded default; a deployment of several processes
/// shares a networked store).
#[derive(Debug, Default)]
pub struct MemorySettingsStore {
    state: Mutex<Versioned>,
}

#[async_trait]
impl SettingsStore for MemorySettingsStore {
    async fn version(&self) -> Result<u64> {
        Ok(self.state.lock().version)
    }

    async fn get(&self) -> Result<Versioned> {
        Ok(self.state.lock().clone())
    }

    async fn put(&self, expected: u64, doc: &str) -> Result<u64> {
        let mut s = self.state.lock();
        if s.version != expected {
            return Err(stale(expected, s.version));
        }
        s.version += 1;
        s.doc = Some(doc.to_string());
        Ok(s.version)
    }
}
