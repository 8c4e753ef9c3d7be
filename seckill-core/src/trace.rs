//! Trace context across the pipeline's hand-offs. A buy's trace starts in a transport (HTTP or
//! gRPC) and crosses three places where no call stack carries it: the outbox (stored with the
//! reserve), the broker (a message header) and the order (stored with it, for the payment
//! callback). At each, the engine writes the current span's context as a W3C `traceparent`
//! and, on the other side, makes its span a child of it.
//!
//! The engine only sees [`Propagator`], so it does not depend on OpenTelemetry: the server plugs
//! in one over `tracing-opentelemetry`; with none (the default, [`Tracing::off`]) the engine
//! makes no span for it and writes nothing: the buy path pays nothing for tracing it does not do.

use std::fmt;
use std::sync::Arc;

/// The message header (and stored field) carrying a W3C trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Reads and adopts W3C trace contexts for `tracing` spans.
pub trait Propagator: Send + Sync + fmt::Debug {
    /// The context of the current span as a `traceparent` value, or `None` if it is not traced.
    fn current(&self) -> Option<String>;
    /// Makes `span` (not yet entered) a child of the context `traceparent` names; an
    /// unparsable value leaves it a root.
    fn set_parent(&self, span: &tracing::Span, traceparent: &str);
    /// Links `span` to the context `traceparent` names (a cause that is not its parent).
    fn add_link(&self, span: &tracing::Span, traceparent: &str);
}

/// The engine's handle on a [`Propagator`] (cheap to clone; [`Tracing::off`] by default).
#[derive(Debug, Clone)]
pub struct Tracing(Option<Arc<dyn Propagator>>);

impl Default for Tracing {
    fn default() -> Self {
        Self::off()
    }
}

impl Tracing {
    /// Propagation through `p`.
    pub fn new(p: Arc<dyn Propagator>) -> Self {
        Self(Some(p))
    }

    /// No propagation.
    pub fn off() -> Self {
        Self(None)
    }

    /// Whether a propagator is plugged in (callers skip the spans they make only for it).
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// The current span's context as a `traceparent`, if traced.
    pub fn current(&self) -> Option<String> {
        self.0.as_ref()?.current()
    }

    /// The context of `span` as a `traceparent`, if traced.
    pub fn of(&self, span: &tracing::Span) -> Option<String> {
        let p = self.0.as_ref()?;
        span.in_scope(|| p.current())
    }

    /// `span`, made a child of `parent` when there is one.
    pub fn child_of(&self, span: tracing::Span, parent: Option<&str>) -> tracing::Span {
        if let (Some(p), Some(parent)) = (&self.0, parent) {
            p.set_parent(&span, parent);
        }
        span
    }

    /// Links `span` to `cause` when there is one.
    pub fn link(&self, span: &tracing::Span, cause: Option<&str>) {
        if let (Some(p), Some(c)) = (&self.0, cause) {
            p.add_link(span, c);
        }
    }
}
