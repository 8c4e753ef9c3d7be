//! Logs and traces. One `tracing` subscriber writes the logs (JSON lines with `trace_id` and
//! `span_id`, or human-readable text) and, when `[telemetry] otlp_endpoint` is set, exports
//! spans over OTLP/HTTP through OpenTelemetry. [`OtelPropagator`] is what the engine uses to
//! carry a buy's trace across the outbox, the broker and the order (see
//! `seckill_core::trace`); the transports start each request's span with [`request_span`].

use crate::config::{LogConfig, TelemetryConfig};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use seckill_core::trace::{Propagator, TRACEPARENT_HEADER};
use std::collections::HashMap;
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

/// The span exporter, when tracing is on. Flushes what it holds on [`Telemetry::shutdown`].
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Builds the OTLP exporter `cfg` asks for (none without an endpoint).
    pub fn new(cfg: &TelemetryConfig) -> Result<Self, String> {
        let Some(endpoint) = cfg.otlp_endpoint.clone().filter(|_| cfg.enabled()) else {
            return Ok(Self::default());
        };
        if !(0.0..=1.0).contains(&cfg.sample_ratio) {
            return Err(format!(
                "telemetry.sample_ratio must be within 0.0 and 1.0, not {}",
                cfg.sample_ratio
            ));
        }
        let endpoint = traces_url(&endpoint)?;
        // The blocking HTTP client must not be built (nor dropped) on a runtime thread.
        let exporter = std::thread::spawn(move || {
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(endpoint)
                .build()
        })
        .join()
        .map_err(|_| "building the OTLP exporter panicked".to_string())?
        .map_err(|e| format!("telemetry.otlp_endpoint: {e}"))?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(cfg.service_name.clone())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                cfg.sample_ratio,
            ))))
            .with_resource(resource)
            .with_batch_exporter(exporter)
            .build();
        Ok(Self {
            provider: Some(provider),
        })
    }

    /// Whether spans are exported.
    pub fn enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports every span ended so far (tests; shutdown).
    pub fn flush(&self) {
        if let Some(p) = &self.provider {
            if let Err(e) = p.force_flush() {
                eprintln!("seckill-server: flushing spans failed: {e}");
            }
        }
    }

    /// Flushes and stops the exporter.
    pub fn shutdown(&self) {
        if let Some(p) = &self.provider {
            if let Err(e) = p.shutdown() {
                eprintln!("seckill-server: stopping the span exporter failed: {e}");
            }
        }
    }

    /// The subscriber for `log` and this exporter: an `EnvFilter` (`RUST_LOG` overrides
    /// `log.level`), the OpenTelemetry layer when on, the log lines.
    pub fn subscriber(&self, log: &LogConfig) -> Box<dyn Subscriber + Send + Sync> {
        self.subscriber_to(log, std::io::stdout)
    }

    /// [`Telemetry::subscriber`] writing its log lines to `out`.
    pub fn subscriber_to<W>(&self, log: &LogConfig, out: W) -> Box<dyn Subscriber + Send + Sync>
    where
        W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    {
        self.reloadable_subscriber_to(log, out).0
    }

    /// [`Telemetry::subscriber`], with the handle that changes its filter live (a live change
    /// of `log.level` replaces `RUST_LOG`'s filter too).
    pub fn reloadable_subscriber(
        &self,
        log: &LogConfig,
    ) -> (Box<dyn Subscriber + Send + Sync>, crate::live::LogReload) {
        self.reloadable_subscriber_to(log, std::io::stdout)
    }

    fn reloadable_subscriber_to<W>(
        &self,
        log: &LogConfig,
        out: W,
    ) -> (Box<dyn Subscriber + Send + Sync>, crate::live::LogReload)
    where
        W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    {
        let filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
        let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
        let reload: crate::live::LogReload = Box::new(move |level: &str| {
            let f = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
            handle.reload(f).map_err(|e| e.to_string())
        });
        let otel = self
            .provider
            .as_ref()
            .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("seckill-server")));
        let json = match log.format.as_str() {
            "json" => true,
            "pretty" => false,
            _ => !cfg!(debug_assertions),
        };
        let lines = if json {
            tracing_subscriber::fmt::layer()
                .event_format(JsonLines)
                .with_writer(out)
                .boxed()
        } else {
            tracing_subscriber::fmt::layer().with_writer(out).boxed()
        };
        (
            Box::new(
                tracing_subscriber::registry()
                    .with(filter)
                    .with(RequestIds)
                    .with(otel)
                    .with(lines),
            ),
            reload,
        )
    }
}

/// `endpoint` with the OTLP traces path when it has none.
fn traces_url(endpoint: &str) -> Result<String, String> {
    let uri: axum::http::Uri = endpoint
        .parse()
        .map_err(|e| format!("telemetry.otlp_endpoint {endpoint:?}: {e}"))?;
    if uri.scheme().is_none() {
        return Err(format!(
            "telemetry.otlp_endpoint {endpoint:?}: an http:// URL is needed"
        ));
    }
    Ok(if matches!(uri.path(), "" | "/") {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    } else {
        endpoint.to_string()
    })
}

/// W3C trace context in and out of `tracing` spans, through `tracing-opentelemetry`. Without
/// the OpenTelemetry layer every span is untraced and this propagates nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtelPropagator;

fn parse(traceparent: &str) -> opentelemetry::Context {
    let carrier = HashMap::from([(TRACEPARENT_HEADER.to_string(), traceparent.to_string())]);
    TraceContextPropagator::new().extract(&carrier)
}

/// The `traceparent` of an OpenTelemetry context, if it holds a valid span.
fn format(cx: &opentelemetry::Context) -> Option<String> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier.remove(TRACEPARENT_HEADER)
}

impl Propagator for OtelPropagator {
    fn current(&self) -> Option<String> {
        format(&tracing::Span::current().context())
    }

    fn set_parent(&self, span: &tracing::Span, traceparent: &str) {
        let cx = parse(traceparent);
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }

    fn add_link(&self, span: &tracing::Span, traceparent: &str) {
        let cx = parse(traceparent);
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            span.add_link(sc);
        }
    }
}

/// The server span of one request (HTTP or gRPC): named `name`, a child of the caller's
/// `traceparent` when it sent one. Its `trace_id` field is recorded by [`request_trace_id`].
pub fn request_span(name: &str, traceparent: Option<&str>) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        otel.name = %name,
        otel.kind = "server",
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    if let Some(tp) = traceparent {
        OtelPropagator.set_parent(&span, tp);
    }
    span
}

/// The id the request's answers and logs carry: the OpenTelemetry trace id when the request is
/// traced, else `fallback`. Recorded in `span`'s `trace_id` field (and, when traced, its
/// OpenTelemetry span id in `span_id`), for the log lines of the events inside it.
pub fn request_trace_id(span: &tracing::Span, fallback: impl FnOnce() -> String) -> String {
    let sc = span.context().span().span_context().clone();
    let id = if sc.is_valid() {
        span.record("span_id", sc.span_id().to_string().as_str());
        sc.trace_id().to_string()
    } else {
        fallback()
    };
    span.record("trace_id", id.as_str());
    id
}

/// The `trace_id` and `span_id` fields a span was given, kept for the log lines of the
/// events inside it. (A log line cannot ask OpenTelemetry itself: `tracing` answers no
/// dispatcher to a lookup made while it formats an event.)
#[derive(Default)]
struct RequestId {
    trace_id: Option<String>,
    span_id: Option<String>,
}

/// Keeps each span's `trace_id` and `span_id` fields as [`RequestId`].
struct RequestIds;

impl Visit for RequestId {
    fn record_str(&mut self, field: &Field, value: &str) {
        let slot = match field.name() {
            "trace_id" => &mut self.trace_id,
            "span_id" => &mut self.span_id,
            _ => return,
        };
        if !value.is_empty() {
            *slot = Some(value.to_string());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if matches!(field.name(), "trace_id" | "span_id") {
            self.record_str(field, &format!("{value:?}"));
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for RequestIds {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: LayerContext<'_, S>,
    ) {
        let mut v = RequestId::default();
        attrs.record(&mut v);
        if let (true, Some(span)) = (v.trace_id.is_some() || v.span_id.is_some(), ctx.span(id)) {
            span.extensions_mut().insert(v);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: LayerContext<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        match ext.get_mut::<RequestId>() {
            Some(ids) => values.record(ids),
            None => {
                let mut v = RequestId::default();
                values.record(&mut v);
                if v.trace_id.is_some() || v.span_id.is_some() {
                    ext.insert(v);
                }
            }
        }
    }
}

/// Log lines as JSON objects, one per line, for Filebeat or Vector: `timestamp` (RFC 3339,
/// UTC), `level`, `target`, `message`, `trace_id` and `span_id` (OpenTelemetry's when the
/// span is traced; else the request id and the local span id), `span` (the current span's
/// name) and the event's other fields beside them (the names above win a clash). The ids are those a span was given in
/// its `trace_id` and `span_id` fields ([`request_span`] records OpenTelemetry's), the nearest
/// first; with no `span_id`, the local span's id.
pub struct JsonLines;

struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        use serde_json::{json, Value};
        let mut fields = JsonFields(serde_json::Map::new());
        event.record(&mut fields);
        let message = fields.0.remove("message").unwrap_or(Value::Null);
        let meta = event.metadata();
        let mut line = json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": meta.level().as_str(),
            "target": meta.target(),
            "message": message,
        });
        let current = ctx.lookup_current();
        let recorded = |pick: fn(&RequestId) -> Option<String>| {
            current.as_ref().and_then(|s| {
                s.scope()
                    .find_map(|s| s.extensions().get::<RequestId>().and_then(pick))
            })
        };
        let trace_id = recorded(|r| r.trace_id.clone());
        let span_id = recorded(|r| r.span_id.clone()).or_else(|| {
            current
                .as_ref()
                .map(|s| format!("{:016x}", s.id().into_u64()))
        });
        let obj = line.as_object_mut().expect("an object");
        if let Some(t) = trace_id {
            obj.insert("trace_id".into(), t.into());
        }
        if let Some(s) = span_id {
            obj.insert("span_id".into(), s.into());
        }
        if let Some(s) = &current {
            obj.insert("span".into(), s.name().into());
        }
        // The event's own fields at the top level, after the ones above (which win).
        for (k, v) in fields.0 {
            obj.entry(k).or_insert(v);
        }
        writeln!(writer, "{line}")
    }
}
