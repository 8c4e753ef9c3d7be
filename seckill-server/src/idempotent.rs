//! Idempotency keys over HTTP. [`check_key`] is the one rule for a client's key (core's
//! [`seckill_core::idempotency::check_key`]) as every door answers it: the buy's
//! `Idempotency-Key` header and the gRPC `idempotency_key` field (whose key the engine's atomic
//! reserve step keeps) and the payment routes (`POST /orders/{id}/pay`, `POST
//! /payment/create`), whose first answer [`once`] stores and replays to every retry with the
//! same request; the same key with another request answers 422 (code 2005).

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

/// The request's `Idempotency-Key` header, if it sent one, checked by [`check_key`].
pub fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let k = v.to_str().map_err(|_| bad_key())?;
    check_key(k)?;
    Ok(Some(k.to_string()))
}

/// A client's idempotency key, from a header or a gRPC field: core's one rule, answered as a
/// malformed parameter (2003).
pub fn check_key(key: &str) -> Result<(), ApiError> {
    seckill_core::idempotency::check_key(key).map_err(|_| bad_key())
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
            // A request dropped before it answers (its deadline passed, the client went away)
            // frees its key, so a retry runs afresh instead of meeting "still running".
            let mut guard = FreeOnDrop {
                store: store.clone(),
                key: Some(key.clone()),
            };
            let resp = handler().await;
            guard.key = None;
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

/// Frees an idempotency key whose request was dropped mid-way.
struct FreeOnDrop {
    store: std::sync::Arc<dyn seckill_core::idempotency::IdempotencyStore>,
    key: Option<String>,
}

impl Drop for FreeOnDrop {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let store = self.store.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = store.abandon(&key).await {
                        tracing::warn!(error = %e, "could not free a dropped request's idempotency key");
                    }
                });
            }
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
