//! Overload: per-route deadlines, load shedding (a concurrency limit on buys and one on the
//! rest of the API, beyond which a request is refused at once), the body size limit and CORS.
//!
//! A stampede beyond capacity gets fast, honest refusals (503, code 9003, `Retry-After`)
//! instead of a queue that grows until every request times out: a [`Gate`] admits at most its
//! limit of requests at once and answers the next one without waiting. The limits are atomics,
//! so they change under load without a restart.

use crate::config::{CorsConfig, HttpConfig};
use crate::error::{ApiError, Code};
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The route of the buy, as the router spells it: its requests pass the buy gate.
pub const BUY_ROUTE: &str = "/api/v1/seckill/activities/{id}/buy";

/// Routes never shed: probes and scrapes must answer while the API is saturated, and the
/// operator's live configuration (the kill switch, the limits) must get through an overload.
const OPS_ROUTES: [&str; 4] = ["/health", "/ready", "/metrics", "/api/v1/admin/config"];

/// A concurrency limit that refuses instead of queueing: at most `limit` passes at once.
#[derive(Debug)]
pub struct Gate {
    name: &'static str,
    limit: AtomicUsize,
    in_flight: AtomicUsize,
    refused: AtomicU64,
}

/// One admitted request; leaving the gate when dropped (answered, failed or cancelled).
#[derive(Debug)]
pub struct Pass(Arc<Gate>);

impl Drop for Pass {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// A gate named `name` (its metric label) admitting `limit` at once; 0 admits everyone.
    pub fn new(name: &'static str, limit: usize) -> Arc<Self> {
        Arc::new(Self {
            name,
            limit: AtomicUsize::new(limit),
            in_flight: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Admits one request, or `None` at once when `limit` are in flight.
    pub fn try_enter(self: &Arc<Self>) -> Option<Pass> {
        let limit = self.limit.load(Ordering::Relaxed);
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (limit == 0 || n < limit).then_some(n + 1)
            });
        if admitted.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Pass(self.clone()))
    }

    /// Changes the limit (0: none); requests in flight above a lowered limit finish.
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// The limit (0: none).
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Requests admitted and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The metric label.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// The HTTP API's overload settings and state, shared by every request.
#[derive(Debug)]
pub struct Overload {
    /// Buys in flight (HTTP and gRPC).
    pub buy: Arc<Gate>,
    /// Other API requests in flight.
    pub api: Arc<Gate>,
    default_timeout: Option<Duration>,
    route_timeouts: HashMap<String, Duration>,
    retry_after: HeaderValue,
    retry_after_ms: u64,
    /// Requests answered 504 for their deadline.
    timed_out: AtomicU64,
    /// The origins CORS allows (replaced whole on a reload).
    origins: Arc<RwLock<Origins>>,
    cors: CorsConfig,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
}

/// The origins CORS allows.
#[derive(Debug, Clone, Default)]
struct Origins {
    any: bool,
    exact: Vec<HeaderValue>,
}

impl Origins {
    fn parse(list: &[String]) -> Result<Self, String> {
        let mut o = Origins::default();
        for origin in list {
            if origin == "*" {
                o.any = true;
                continue;
            }
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && !origin[origin.find("://").map_or(0, |i| i + 3)..].contains('/');
            if !ok {
                return Err(format!(
                    "http.cors.allowed_origins: {origin:?} is not an origin (scheme://host[:port], no path)"
                ));
            }
            // Browsers send the scheme and host in lower case.
            o.exact.push(
                HeaderValue::from_str(&origin.to_ascii_lowercase())
                    .map_err(|_| format!("http.cors.allowed_origins: {origin:?} is not ASCII"))?,
            );
        }
        Ok(o)
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.any || self.exact.iter().any(|o| o == origin)
    }
}

impl Overload {
    /// The settings of `c`, checked: an invalid one is refused with what is wrong.
    pub fn new(c: &HttpConfig) -> Result<Self, String> {
        check(c)?;
        let ms = |v: u64| (v > 0).then(|| Duration::from_millis(v));
        Ok(Self {
            buy: Gate::new("buy", c.buy_concurrency),
            api: Gate::new("api", c.api_concurrency),
            default_timeout: ms(c.request_timeout_ms),
            route_timeouts: c
                .route_timeouts_ms
                .iter()
                .map(|(r, v)| (r.clone(), Duration::from_millis(*v)))
                .collect(),
            retry_after: HeaderValue::from(c.retry_after_secs.max(1)),
            retry_after_ms: c.retry_after_secs.max(1) * 1000,
            timed_out: AtomicU64::new(0),
            origins: Arc::new(RwLock::new(Origins::parse(&c.cors.allowed_origins)?)),
            cors: c.cors.clone(),
            max_body_bytes: c.max_body_bytes,
        })
    }

    /// Replaces the origins CORS allows (a live change); an invalid list changes nothing.
    pub fn set_origins(&self, list: &[String]) -> Result<(), String> {
        *self.origins.write() = Origins::parse(list)?;
        Ok(())
    }

    /// Requests answered 504 for their deadline so far.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }

    fn deadline(&self, route: &str) -> Option<Duration> {
        match self.route_timeouts.get(route) {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(*d),
            None => self.default_timeout,
        }
    }

    /// The refusal of a request the gate `gate` did not admit: 503, code 9003, `Retry-After`.
    pub fn refusal(&self, gate: &Gate) -> ApiError {
        ApiError::new(
            Code::Overloaded,
            format!(
                "the server is at its limit of {} concurrent {} requests; retry after the Retry-After delay",
                gate.limit(),
                gate.name()
            ),
        )
        .with_data(serde_json::json!({ "retry_after_ms": self.retry_after_ms }))
    }

    fn refuse(&self, gate: &Gate) -> Response {
        let mut r = self.refusal(gate).into_response();
        r.headers_mut()
            .insert("retry-after", self.retry_after.clone());
        r
    }

    /// The CORS layer, whose origins [`Overload::set_origins`] can change live.
    pub fn cors_layer(&self) -> tower_http::cors::CorsLayer {
        use tower_http::cors::{AllowOrigin, CorsLayer};
        let c = &self.cors;
        let origins = self.origins.clone();
        let parse = |v: &[String]| -> Vec<HeaderName> {
            v.iter()
                .filter_map(|h| HeaderName::try_from(h.as_str()).ok())
                .collect()
        };
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                origins.read().allows(origin)
            }))
            .allow_methods(
                c.allowed_methods
                    .iter()
                    .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                    .collect::<Vec<_>>(),
            )
            .allow_headers(parse(&c.allowed_headers))
            .expose_headers(parse(&c.expose_headers))
            .max_age(Duration::from_secs(c.max_age_secs))
            .allow_credentials(c.allow_credentials)
    }
}

/// What is wrong with `c`, if anything.
pub fn check(c: &HttpConfig) -> Result<(), String> {
    Origins::parse(&c.cors.allowed_origins)?;
    if c.cors.allow_credentials && c.cors.allowed_origins.iter().any(|o| o == "*") {
        return Err(
            "http.cors: allow_credentials cannot go with the origin \"*\"; list the origins".into(),
        );
    }
    for m in &c.cors.allowed_methods {
        Method::from_bytes(m.as_bytes())
            .map_err(|_| format!("http.cors.allowed_methods: {m:?} is not a method"))?;
    }
    for h in c.cors.allowed_headers.iter().chain(&c.cors.expose_headers) {
        if h == "*" {
            return Err("http.cors: name the headers; \"*\" is not allowed".into());
        }
        HeaderName::try_from(h.as_str())
            .map_err(|_| format!("http.cors: {h:?} is not a header name"))?;
    }
    if c.max_body_bytes == 0 {
        return Err("http.max_body_bytes must be above 0".into());
    }
    Ok(())
}

/// The middleware: admits the request through its gate (the buy's, or the API's; ops routes
/// pass freely), then runs it under its route's deadline. A refusal answers at once; a request
/// past its deadline is dropped and answered 504 (code 9004): a buy's effect is then unknown to
/// the caller, who retries with the same `Idempotency-Key` to learn it.
pub async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let o = &s.overload;
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let route = route.as_deref().unwrap_or("unmatched");
    let gate = if route == BUY_ROUTE {
        Some(&o.buy)
    } else if OPS_ROUTES.contains(&route) {
        None
    } else {
        Some(&o.api)
    };
    let _pass = match gate {
        Some(g) => match g.try_enter() {
            Some(p) => Some(p),
            None => return o.refuse(g),
        },
        None => None,
    };
    match o.deadline(route) {
        None => next.run(req).await,
        Some(d) => match tokio::time::timeout(d, next.run(req)).await {
            Ok(r) => r,
            Err(_) => {
                o.timed_out.fetch_add(1, Ordering::Relaxed);
                ApiError::new(
                    Code::DeadlineExceeded,
                    format!(
                        "no answer within {} ms; the request's effect is unknown: retry it with the same Idempotency-Key",
                        d.as_millis()
                    ),
                )
                .into_response()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_admits_its_limit_and_refuses_the_next_at_once() {
        let g = Gate::new("buy", 2);
        let a = g.try_enter().unwrap();
        let _b = g.try_enter().unwrap();
        assert!(g.try_enter().is_none());
        assert_eq!(g.refused(), 1);
        drop(a);
        let _c = g.try_enter().expect("a pass freed");
        g.set_limit(0);
        let more: Vec<_> = (0..10).map(|_| g.try_enter().unwrap()).collect();
        assert_eq!(g.in_flight(), 12);
        drop(more);
        g.set_limit(1);
        assert!(
            g.try_enter().is_none(),
            "two in flight, limit lowered to one"
        );
    }

    #[test]
    fn origins_are_checked() {
        let mut c = HttpConfig::default();
        c.cors.allowed_origins = vec!["https://tickets.example.com".into()];
        assert!(check(&c).is_ok());
        let o = Origins::parse(&["https://Tickets.Example.com".into()]).unwrap();
        assert!(o.allows(&HeaderValue::from_static("https://tickets.example.com")));
        for bad in ["tickets.example.com", "https://a.example/", "https://a/b"] {
            c.cors.allowed_origins = vec![bad.into()];
            assert!(check(&c).is_err(), "{bad}");
        }
        c.cors.allowed_origins = vec!["*".into()];
        c.cors.allow_credentials = true;
        assert!(check(&c).unwrap_err().contains("allow_credentials"));
    }
}
