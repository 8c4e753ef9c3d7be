//! Paying: `POST /api/v1/orders/{id}/pay` and `/api/v1/payment/*` (create, status, refund,
//! provider callbacks, the mock provider's pay page).

use crate::auth::AuthUser;
use crate::error::{ok, ApiResult, Body, PathParam, QueryParams, Refusals, Reply, Success};
use crate::idempotent;
use crate::service::payments::{self, CallbackResp, PaymentView};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use seckill_core::domain::{OrderId, Payment, PaymentId};
use seckill_core::payment::Callback;
use serde::Deserialize;
use std::collections::BTreeMap;

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

/// `?provider=` of `POST /orders/{id}/pay`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PayQuery {
    /// The provider to pay with (`mock`, `alipay`, `wechat`; one the server is configured
    /// with). Default: the server's default provider.
    #[serde(default)]
    #[param(max_length = 32)]
    provider: Option<String>,
}

/// `POST /api/v1/orders/{id}/pay`: opens a payment for the order.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/pay",
    tag = "orders",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = r"^[!-~]+$", description = "1 to 128 visible ASCII characters; a retry with the same key replays the first answer, another request under it answers 422"), ("id" = OrderId, Path, description = "order id"), PayQuery),
    responses((status = 201, description = "success", body = Success<PaymentView>), Refusals),
    security(("bearer" = []))
)]
pub async fn pay(
    State(s): State<AppState>,
    me: AuthUser,
    PathParam(id): PathParam<OrderId>,
    QueryParams(q): QueryParams<PayQuery>,
    headers: HeaderMap,
) -> Response {
    start_once(&s, me, &headers, id, q.provider.as_deref()).await
}

/// `POST /api/v1/payment/create`.
#[utoipa::path(
    post,
    path = "/api/v1/payment/create",
    tag = "payments",
    request_body = CreateReq,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = r"^[!-~]+$", description = "1 to 128 visible ASCII characters; a retry with the same key replays the first answer, another request under it answers 422")),
    responses((status = 201, description = "success", body = Success<PaymentView>), Refusals),
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

/// Opens the payment once per `Idempotency-Key` (both payment routes share the scope: one
/// key, one answer for the order and provider).
async fn start_once(
    s: &AppState,
    me: AuthUser,
    headers: &HeaderMap,
    order: OrderId,
    provider: Option<&str>,
) -> Response {
    let key = match idempotent::key(headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let provider = match payments::provider_name(s, provider) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let request = format!("{order} {provider}");
    idempotent::once(s, &me, "pay", key, request.as_bytes(), || async {
        payments::start(s, &me, order, &provider)
            .await
            .map(|v| Reply(StatusCode::CREATED, v))
            .into_response()
    })
    .await
}

/// `GET /api/v1/payment/{id}/status`: one of the caller's payments.
#[utoipa::path(
    get,
    path = "/api/v1/payment/{id}/status",
    tag = "payments",
    params(("id" = PaymentId, Path, description = "payment id")),
    responses((status = 200, description = "success", body = Success<Payment>), Refusals),
    security(("bearer" = []))
)]
pub async fn status(
    State(s): State<AppState>,
    me: AuthUser,
    PathParam(id): PathParam<PaymentId>,
) -> ApiResult<Payment> {
    Ok(ok(payments::mine(&s, &me, id).await?))
}

/// `POST /api/v1/payment/{id}/refund`: the buyer asks for their money back on a paid order.
/// The order becomes `refunded`; its units stay sold. Someone else's payment answers 404.
#[utoipa::path(
    post,
    path = "/api/v1/payment/{id}/refund",
    tag = "payments",
    params(("id" = PaymentId, Path, description = "payment id")),
    responses((status = 200, description = "success", body = Success<Payment>), Refusals),
    security(("bearer" = []))
)]
pub async fn refund(
    State(s): State<AppState>,
    me: AuthUser,
    PathParam(id): PathParam<PaymentId>,
) -> ApiResult<Payment> {
    Ok(ok(payments::refund_mine(&s, &me, id).await?))
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
    responses((status = 200, description = "success (Alipay gets the text `success` instead of the envelope)", body = Success<CallbackResp>), Refusals)
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
    match payments::apply_callback(&s, &provider, &cb).await {
        Ok(done) => match payments::callback_ack(&s, &provider) {
            Some(text) => (
                StatusCode::OK,
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; charset=utf-8",
                )],
                text,
            )
                .into_response(),
            None => ok(done).into_response(),
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
    responses((status = 200, description = "success", body = Success<CallbackResp>), Refusals),
    security(("bearer" = []))
)]
pub async fn mock_complete(
    State(s): State<AppState>,
    me: AuthUser,
    PathParam(id): PathParam<PaymentId>,
) -> ApiResult<CallbackResp> {
    Ok(ok(payments::mock_complete(&s, &me, id).await?))
}
