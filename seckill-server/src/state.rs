//! What every handler shares.

use crate::auth::Tokens;
use crate::metrics::Metrics;
use seckill_core::engine::Engine;
use seckill_core::memory::MockProvider;
use seckill_core::Notifier;
use std::sync::Arc;

/// The server's shared state.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The sale engine (and through it every backend).
    pub engine: Engine,
    /// Token issuing and verification.
    pub tokens: Arc<Tokens>,
    /// The mock provider, when it is the configured one (its pay page is served).
    pub mock: Option<Arc<MockProvider>>,
    /// Everything `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// Delivers verification codes.
    pub notifier: Arc<dyn Notifier>,
    /// The live configuration (rate limits, switches, …), reloadable.
    pub live: Arc<crate::live::Live>,
    /// Deadlines, load shedding and CORS.
    pub overload: Arc<crate::overload::Overload>,
    /// The backends' circuit breakers (for `/ready` and `/metrics`).
    pub breakers: seckill_core::breaker::Breakers,
}
