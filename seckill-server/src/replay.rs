//! `Idempotency-Key` for the payment routes (`POST /orders/{id}/pay`, `POST /payment/create`):
//! the first answer under a key is stored and replayed to every retry with the same request;
//! the same key with another request answers 422 (code 2005). (The buy route has its key
//! handled inside the engine's atomic reserve step instead.)

use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::state::AppState;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use seckill_core::idempotency::{Begin, StoredResponse};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::time::Duration;

/// How long a key is kept: the payment window (an order cannot be paid after it anyway), and
/// at least a minute. It also bounds how long a key stays "in progress" if the process died
/// while answering.
fn ttl(s: &AppState) -> Duration {
    s.engine
        .config()
        .payment_timeout
        .max(Duration::from_secs(60))
}

/// The request's `Idempotency-Key`, if it sent one.
pub fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let k = v.to_str().map_err(|_| bad_key())?.to_string();
    checked(Some(k))
}

/// An idempotency key as every route takes it (HTTP header or gRPC field): 1 to 128 visible
/// ASCII characters.
pub fn checked(key: Option<String>) -> Result<Option<String>, ApiError> {
    match key {
        Some(k) if k.is_empty() || k.len() > 128 || !k.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(bad_key())
        }
        other => Ok(other),
    }
}

fn bad_key() -> ApiError {
    ApiError::new(
        Code::InvalidParameter,
        "Idempotency-Key: 1 to 128 visible ASCII characters",
    )
}

/// Runs `handler` once per `(caller, scope, key)`: a retry with the same `request` gets the
/// stored answer (header `idempotent-replayed: true`), another request under the key a 422, a
/// retry while the first still runs a 409. Only successful answers are stored; after a
/// refusal or a failure the key is free again, so a retry runs afresh.
pub async fn once<F, Fut>(
    s: &AppState,
    me: &AuthUser,
    scope: &str,
    key: Option<String>,
    request: &[u8],
    handler: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Response>,
{
    let Some(key) = key else {
        return handler().await;
    };
    let store = &s.engine.backends().idempotency;
    let key = format!("api:{scope}:{}:{key}", me.id);
    let hash = hex::encode(Sha256::digest(request));
    match store.begin(&key, &hash, ttl(s)).await {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Begin::Mismatch) => ApiError::new(
            Code::IdempotencyMismatch,
            "this Idempotency-Key was used with another request",
        )
        .into_response(),
        Ok(Begin::InProgress) => ApiError::new(
            Code::Conflict,
            "a request with this Idempotency-Key is still running; retry shortly",
        )
        .into_response(),
        Ok(Begin::Completed(stored)) => replayed(stored),
        Ok(Begin::New) => {
            let resp = handler().await;
            if !resp.status().is_success() {
                if let Err(e) = store.abandon(&key).await {
                    tracing::warn!(error = %e, "could not free an idempotency key");
                }
                return resp;
            }
            let (parts, body) = resp.into_parts();
            let bytes = match axum::body::to_bytes(body, 1 << 20).await {
                Ok(b) => b,
                Err(e) => {
                    let _ = store.abandon(&key).await;
                    return ApiError::new(Code::Internal, format!("reading the answer: {e}"))
                        .into_response();
                }
            };
            let stored = StoredResponse {
                status: parts.status.as_u16(),
                body: bytes.to_vec(),
            };
            if let Err(e) = store.complete(&key, stored).await {
                tracing::warn!(error = %e, "could not store an idempotent answer");
            }
            Response::from_parts(parts, axum::body::Body::from(bytes))
        }
    }
}

fn replayed(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut r = (status, stored.body).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    r
}
