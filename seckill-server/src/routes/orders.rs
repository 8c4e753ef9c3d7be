//! `/api/v1/orders*`: my orders, cancel, pay.

use crate::auth::AuthUser;
use crate::error::{ok, ApiError, ApiResult, Code, Failure, PathParam, QueryParams, Success};
use crate::routes::catalog::Paging;
use crate::routes::payments::{start_once, PaymentView};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use seckill_core::domain::{Order, OrderId, OrderStatus};
use seckill_core::engine::OrderLookup;
use seckill_core::repo::{OrderFilter, Page};
use serde::Deserialize;

/// `?page=&page_size=&status=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    /// Page number, from 1.
    #[serde(default)]
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
    #[serde(default)]
    status: Option<OrderStatus>,
}

/// Maps an order operation's engine error.
pub fn order_error(e: seckill_core::Error) -> ApiError {
    match e {
        seckill_core::Error::NotFound(m) => ApiError::new(Code::OrderNotFound, m),
        seckill_core::Error::Conflict(m) => ApiError::new(Code::OrderStateConflict, m),
        other => other.into(),
    }
}

/// `GET /api/v1/orders`: the caller's orders, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/orders",
    tag = "orders",
    params(OrderQuery),
    responses((status = 200, description = "success", body = Success<Page<Order>>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn list_mine(
    State(s): State<AppState>,
    me: AuthUser,
    QueryParams(q): QueryParams<OrderQuery>,
) -> ApiResult<Page<Order>> {
    let filter = OrderFilter {
        user_id: Some(me.id),
        status: q.status,
        ..OrderFilter::default()
    };
    page_of(&s, &filter, Paging::new(q.page, q.page_size)).await
}

/// One page of the orders `filter` selects, newest first (the buyer's list and the admin's).
pub async fn page_of(s: &AppState, filter: &OrderFilter, paging: Paging) -> ApiResult<Page<Order>> {
    Ok(ok(s
        .engine
        .backends()
        .orders
        .list_orders(filter, paging.request()?)
        .await?))
}

/// `GET /api/v1/orders/{id}`: one of the caller's orders (someone else's answers 404).
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}",
    tag = "orders",
    params(("id" = OrderId, Path, description = "order id")),
    responses((status = 200, description = "success", body = Success<Order>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn get_mine(
    State(s): State<AppState>,
    me: AuthUser,
    PathParam(id): PathParam<OrderId>,
) -> ApiResult<Order> {
    Ok(ok(lookup_mine(&s, &me, id).await?))
}

/// The caller's order as both APIs answer it: the order; 404 (4001) while it is not written
/// yet (or is someone else's); 410 (4003) once its reservation is known lost.
pub async fn lookup_mine(s: &AppState, me: &AuthUser, id: OrderId) -> Result<Order, ApiError> {
    match s.engine.order_lookup(me.id, id).await? {
        OrderLookup::Written(o) => Ok(o),
        OrderLookup::Pending => Err(ApiError::new(
            Code::OrderNotFound,
            format!("no order {id} (a new order appears within moments of the buy; retry shortly)"),
        )),
        OrderLookup::Lost { deadline } => Err(ApiError::new(
            Code::OrderLost,
            format!(
                "order {id} was never written: its reservation was lost before {deadline}; \
                 the buy failed and nothing is charged"
            ),
        )),
    }
}

/// `POST /api/v1/orders/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/cancel",
    tag = "orders",
    params(("id" = OrderId, Path, description = "order id")),
    responses((status = 200, description = "success", body = Success<Order>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn cancel(
    State(s): State<AppState>,
    me: AuthUser,
    PathParam(id): PathParam<OrderId>,
) -> ApiResult<Order> {
    Ok(ok(s
        .engine
        .cancel_by_user(me.id, id)
        .await
        .map_err(order_error)?))
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
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 128 visible ASCII characters; a retry with the same key replays the first answer, another request under it answers 422"), ("id" = OrderId, Path, description = "order id"), PayQuery),
    responses((status = 201, description = "success", body = Success<PaymentView>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
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
