//! Trace context across the pipeline's hand-offs. A buy's trace starts in a transport (HTTP or
//! gRPC) and crosses three places where no call stack carries it: the outbox (stored with the
//! reserve), the broker (a message header) and the order (stored with it, for the payment
//! callback). At each, the engine writes the current span's context as a W3C `traceparent`
//! and, on the other side, makes its span a child of it.
//!
//! The engine only sees [`Propagator`], so it does not depend on OpenTelemetry: the server plugs
//! in one over `tracing-opentelemetry`; with none (the default, [`Tracing::off`]) nothing is
//! written and spans stay local.

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

/// A propagator that propagates nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPropagation;

impl Propagator for NoPropagation {
    fn current(&self) -> Option<String> {
        None
    }
    fn set_parent(&self, _: &tracing::Span, _: &str) {}
    fn add_link(&self, _: &tracing::Span, _: &str) {}
}

/// The engine's handle on a [`Propagator`] (cheap to clone; [`Tracing::off`] by default).
#[derive(Debug, Clone)]
pub struct Tracing(Arc<dyn Propagator>);

impl Default for Tracing {
    fn default() -> Self {
        Self::off()
    }
}

impl Tracing {
    /// Propagation through `p`.
    pub fn new(p: Arc<dyn Propagator>) -> Self {
        Self(p)
    }

    /// No propagation.
    pub fn off() -> Self {
        Self(Arc::new(NoPropagation))
    }

    /// The current span's context as a `traceparent`, if traced.
    pub fn current(&self) -> Option<String> {
        self.0.current()
    }

    /// The context of `span` as a `traceparent`, if traced.
    pub fn of(&self, span: &tracing::Span) -> Option<String> {
        span.in_scope(|| self.0.current())
    }

    /// `span`, made a child of `parent` when there is one.
    pub fn child_of(&self, span: tracing::Span, parent: Option<&str>) -> tracing::Span {
        if let Some(p) = parent {
            self.0.set_parent(&span, p);
        }
        span
    }

    /// Links `span` to `cause` when there is one.
    pub fn link(&self, span: &tracing::Span, cause: Option<&str>) {
        if let Some(c) = cause {
            self.0.add_link(span, c);
        }
    }
}
