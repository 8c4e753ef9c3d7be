//! `/health`, `/ready`, `/metrics`.

use crate::error::{ok, ApiResult, Refusals, Reply, Success};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use seckill_core::repo::PageRequest;
use serde::Serialize;
use std::collections::BTreeMap;

/// Liveness.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
}

/// `GET /health`: the process is alive.
#[utoipa::path(
    get,
    path = "/health",
    tag = "ops",
    responses((status = 200, description = "success", body = Success<Health>), Refusals)
)]
pub async fn health() -> ApiResult<Health> {
    Ok(ok(Health { status: "ok" }))
}

/// Readiness detail.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ready {
    ready: bool,
    checks: BTreeMap<&'static str, String>,
    outbox_lag: Option<u64>,
    consumer_lag: Option<u64>,
    /// Each backend's circuit breaker: `closed`, `open` (calls fail fast) or `half_open`.
    breakers: BTreeMap<&'static str, &'static str>,
    /// Each read replica: whether it serves reads and its lag. A replica behind or down does
    /// not make the server unready (its reads go to the primary).
    replicas: Vec<seckill_core::replica::ReplicaStatus>,
}

/// `GET /ready`: every backend answers and no backend's circuit breaker is open (a payment
/// provider's may be); outbox and consumer
/// lag; each breaker's state.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "ops",
    responses((status = 200, description = "every backend answers", body = Success<Ready>), (status = 503, description = "a backend does not answer", body = Success<Ready>))
)]
pub async fn ready(State(s): State<AppState>) -> ApiResult<Ready> {
    let e = &s.engine;
    let b = e.backends();
    let cfg = e.config();
    let outbox = b.stock.outbox_len().await;
    let lag = b.broker.lag(&cfg.holds_topic, &cfg.order_group).await;
    let delay = b.delay.len(&cfg.timeout_queue).await;
    let db = b
        .catalog
        .list_activities(PageRequest {
            page: 1,
            page_size: 1,
        })
        .await
        .map(|_| 0);
    let sessions = b
        .sessions
        .is_revoked(seckill_core::domain::UserId(0), "ready-probe", 0)
        .await
        .map(|_| 0);
    let all = [&outbox, &lag, &delay, &db, &sessions]
        .iter()
        .all(|r| r.is_ok());
    let checks = [
        ("stock", &outbox),
        ("broker", &lag),
        ("delay", &delay),
        ("database", &db),
        ("sessions", &sessions),
    ]
    .into_iter()
    .map(|(name, r)| {
        (
            name,
            r.as_ref().map_or_else(|e| e.to_string(), |_| "ok".into()),
        )
    })
    .collect();
    let breakers: BTreeMap<&'static str, &'static str> = s
        .breakers
        .states()
        .into_iter()
        .map(|(name, state)| (name, state.name()))
        .collect();
    // A payment provider's open breaker fails only its new payments: the API (callbacks of the
    // other providers included) stays ready.
    let all = all
        && !breakers.iter().any(|(name, st)| {
            !name.starts_with("payment") && *st == seckill_core::breaker::BreakerState::Open.name()
        });
    let status = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(Reply(
        status,
        Ready {
            ready: all,
            checks,
            outbox_lag: outbox.ok(),
            consumer_lag: lag.ok(),
            breakers,
            replicas: b.replicas.as_ref().map(|r| r.status()).unwrap_or_default(),
        },
    ))
}

/// `GET /metrics`: the OpenMetrics text format when `Accept` asks for it (as Prometheus does),
/// else the Prometheus text format 0.0.4.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "OpenMetrics, or the Prometheus text format 0.0.4, by `Accept`",
        content((String = "application/openmetrics-text"), (String = "text/plain"))))
)]
pub async fn metrics(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    use crate::metrics::{to_text_format, wants_openmetrics, CONTENT_TYPE, TEXT_CONTENT_TYPE};
    let out = s.metrics.render(&s.engine).await;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if wants_openmetrics(accept) {
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], out).into_response()
    } else {
        let text = to_text_format(&out);
        ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], text).into_response()
    }
}
