//! `/api/v1/payment/*`: create, status, provider callbacks, and the mock provider's pay page.

use crate::auth::AuthUser;
use crate::error::{ok, ApiError, ApiResult, Body, Code, Failure, PathParam, Reply, Success};
use crate::replay;
use crate::routes::orders::order_error;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use seckill_core::domain::{Money, OrderId, OrderStatus, Payment, PaymentId, PaymentStatus};
use seckill_core::engine::CallbackOutcome;
use seckill_core::payment::Callback;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A payment opened for an order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    payment_id: PaymentId,
    order_id: OrderId,
    amount: Money,
    provider: String,
    status: PaymentStatus,
    /// Where the buyer pays.
    pay_url: String,
}

/// `POST /api/v1/payment/create`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReq {
    order_id: OrderId,
    /// The provider to pay with (`mock`, `alipay`, `wechat`; one the server is configured
    /// with). Default: the server's default provider.
    #[serde(default)]
    #[schema(max_length = 32)]
    provider: Option<String>,
}

/// What a callback did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallbackResp {
    payment_id: PaymentId,
    result: &'static str,
    order_status: Option<OrderStatus>,
}

/// The configured provider called `name` (the default one if `None`), or 5005.
fn provider_name(s: &AppState, name: Option<&str>) -> Result<String, ApiError> {
    let providers = &s.engine.backends().providers;
    match name {
        None => Ok(providers.default_provider().name().to_string()),
        Some(n) => providers
            .get(n)
            .map(|p| p.name().to_string())
            .ok_or_else(|| {
                ApiError::new(
                    Code::UnknownProvider,
                    format!(
                        "payment provider {n:?} is not configured; configured: {}",
                        providers.names().join(", ")
                    ),
                )
            }),
    }
}

/// Opens (or reopens) the payment of the caller's order with `provider`.
pub async fn start(
    s: &AppState,
    me: AuthUser,
    order: OrderId,
    provider: &str,
) -> ApiResult<PaymentView> {
    let started = s
        .engine
        .start_payment_via(me.id, order, provider)
        .await
        .map_err(order_error)?;
    let p = started.payment;
    Ok(Reply(
        StatusCode::CREATED,
        PaymentView {
            payment_id: p.id,
            order_id: p.order_id,
            amount: p.amount,
            provider: p.provider,
            status: p.status,
            pay_url: started.checkout.pay_url,
        },
    ))
}

/// `POST /api/v1/payment/create`.
#[utoipa::path(
    post,
    path = "/api/v1/payment/create",
    tag = "payments",
    request_body = CreateReq,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 128 visible ASCII characters; a retry with the same key replays the first answer, another request under it answers 422")),
    responses((status = 201, description = "success", body = Success<PaymentView>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn create(
    State(s): State<AppState>,
    me: AuthUser,
    headers: HeaderMap,
    Body(req): Body<CreateReq>,
) -> Response {
    start_once(&s, me, &headers, req.order_id, req.provider.as_deref()).await
}

/// [`start`] once per `Idempotency-Key` (both payment routes share the scope: one key, one
/// answer for the order and provider).
pub async fn start_once(
    s: &AppState,
    me: AuthUser,
    headers: &HeaderMap,
    order: OrderId,
    provider: Option<&str>,
) -> Response {
    let key = match replay::key(headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let provider = match provider_name(s, provider) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let request = format!("{order} {provider}");
    replay::once(s, &me, "pay", key, request.as_bytes(), || async {
        start(s, me.clone(), order, &provider).await.into_response()
    })
    .await
}

/// `GET /api/v1/payment/{id}/status`: one of the caller's payments.
#[utoipa::path(
    get,
    path = "/api/v1/payment/{id}/status",
    tag = "payments",
    params(("id" = PaymentId, Path, description = "payment id")),
    responses((status = 200, description = "success", body = Success<Payment>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn status(
    State(s): State<AppState>,
    me: AuthUser,
    PathParam(id): PathParam<PaymentId>,
) -> ApiResult<Payment> {
    s.engine
        .payment_of(me.id, id)
        .await?
        .map(ok)
        .ok_or_else(|| ApiError::new(Code::PaymentNotFound, format!("no payment {id}")))
}

/// `POST /api/v1/payment/{id}/refund`: the buyer asks for their money back on a paid order.
/// The order becomes `refunded`; its units stay sold. Someone else's payment answers 404.
#[utoipa::path(
    post,
    path = "/api/v1/payment/{id}/refund",
    tag = "payments",
    params(("id" = PaymentId, Path, description = "payment id")),
    responses((status = 200, description = "success", body = Success<Payment>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn refund(
    State(s): State<AppState>,
    me: AuthUser,
    PathParam(id): PathParam<PaymentId>,
) -> ApiResult<Payment> {
    if s.engine.payment_of(me.id, id).await?.is_none() {
        return Err(ApiError::new(
            Code::PaymentNotFound,
            format!("no payment {id}"),
        ));
    }
    refund_payment(&s, id).await
}

/// Refunds a payment that paid its order (the buyer's route and the admin's status change).
pub async fn refund_payment(s: &AppState, id: PaymentId) -> ApiResult<Payment> {
    s.engine
        .refund_payment(id)
        .await
        .map(ok)
        .map_err(|e| match e {
            seckill_core::Error::NotFound(m) => ApiError::new(Code::PaymentNotFound, m),
            seckill_core::Error::Conflict(m) => ApiError::new(Code::PaymentConflict, m),
            other => other.into(),
        })
}

async fn apply(s: &AppState, provider: &str, cb: &Callback) -> ApiResult<CallbackResp> {
    use seckill_core::Error as E;
    provider_name(s, Some(provider))?;
    let settled = s
        .engine
        .handle_callback(provider, cb)
        .await
        .map_err(|e| match e {
            E::Unauthenticated(m) => ApiError::new(Code::BadSignature, m),
            E::InvalidArgument(m) => ApiError::new(Code::BadCallback, m),
            E::NotFound(m) => ApiError::new(Code::PaymentNotFound, m),
            E::Conflict(m) => ApiError::new(Code::PaymentConflict, m),
            other => other.into(),
        })?;
    let order_status = s
        .engine
        .backends()
        .orders
        .order(settled.payment.order_id)
        .await?
        .map(|o| o.status);
    Ok(ok(CallbackResp {
        payment_id: settled.payment.id,
        result: match settled.outcome {
            CallbackOutcome::Paid => "paid",
            CallbackOutcome::Failed => "failed",
            CallbackOutcome::Refunded => "refunded",
        },
        order_status,
    }))
}

/// `POST /api/v1/payment/callback/{provider}`: the provider's signed notification. Answered
/// 2xx only once its effect is committed: with the envelope, or with the plain text the provider
/// expects (`success` for Alipay), so it stops retrying.
#[utoipa::path(
    post,
    path = "/api/v1/payment/callback/{provider}",
    tag = "payments",
    params(("provider" = String, Path, description = "a configured provider's name: `mock`, `alipay` or `wechat`")),
    request_body(content = String, content_type = "application/json", description = "the provider's signed notification, as it sends it (Alipay: a form, `application/x-www-form-urlencoded`)"),
    responses((status = 200, description = "success (Alipay gets the text `success` instead of the envelope)", body = Success<CallbackResp>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure))
)]
pub async fn callback(
    State(s): State<AppState>,
    PathParam(provider): PathParam<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    let cb = Callback {
        headers,
        body: body.to_vec(),
    };
    match apply(&s, &provider, &cb).await {
        Ok(done) => match s
            .engine
            .backends()
            .providers
            .get(&provider)
            .and_then(|p| p.callback_ack())
        {
            Some(text) => (
                StatusCode::OK,
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; charset=utf-8",
                )],
                text,
            )
                .into_response(),
            None => done.into_response(),
        },
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v1/payment/mock/{id}/complete`: the mock provider's pay page. The buyer "pays";
/// the provider then sends its signed callback, which is verified and applied as any other.
#[utoipa::path(
    post,
    path = "/api/v1/payment/mock/{id}/complete",
    tag = "payments",
    params(("id" = PaymentId, Path, description = "payment id")),
    responses((status = 200, description = "success", body = Success<CallbackResp>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn mock_complete(
    State(s): State<AppState>,
    me: AuthUser,
    PathParam(id): PathParam<PaymentId>,
) -> ApiResult<CallbackResp> {
    let Some(mock) = s.mock.clone() else {
        return Err(ApiError::new(
            Code::UnknownProvider,
            "the mock provider is not configured",
        ));
    };
    let payment = s
        .engine
        .payment_of(me.id, id)
        .await?
        .ok_or_else(|| ApiError::new(Code::PaymentNotFound, format!("no payment {id}")))?;
    let cb = mock.pay(&payment);
    apply(&s, "mock", &cb).await
}
