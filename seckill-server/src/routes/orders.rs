//! `/api/v1/orders*`: my orders and cancel (paying one is in `payments.rs`).

use crate::auth::AuthUser;
use crate::error::{ok, ApiResult, PathParam, QueryParams, Refusals, Success};
use crate::service::{orders, page_request};
use crate::state::AppState;
use axum::extract::State;
use seckill_core::domain::{Order, OrderId, OrderStatus};
use seckill_core::repo::Page;
use serde::Deserialize;

/// `?page=&page_size=&status=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    /// Page number, from 1.
    #[serde(default)]
    #[param(minimum = 1, maximum = 2147483647)]
    page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
    #[serde(default)]
    status: Option<OrderStatus>,
}

/// `GET /api/v1/orders`: the caller's orders, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/orders",
    tag = "orders",
    params(OrderQuery),
    responses((status = 200, description = "success", body = Success<Page<Order>>), Refusals),
    security(("bearer" = []))
)]
pub async fn list_mine(
    State(s): State<AppState>,
    me: AuthUser,
    QueryParams(q): QueryParams<OrderQuery>,
) -> ApiResult<Page<Order>> {
    let page = page_request(q.page, q.page_size)?;
    Ok(ok(orders::list_mine(&s, &me, q.status, page).await?))
}

/// `GET /api/v1/orders/{id}`: one of the caller's orders (someone else's answers 404; one
/// whose reservation was lost, 410).
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}",
    tag = "orders",
    params(("id" = OrderId, Path, description = "order id")),
    responses((status = 200, description = "success", body = Success<Order>), Refusals),
    security(("bearer" = []))
)]
pub async fn get_mine(
    State(s): State<AppState>,
    me: AuthUser,
    PathParam(id): PathParam<OrderId>,
) -> ApiResult<Order> {
    Ok(ok(orders::mine(&s, &me, id).await?))
}

/// `POST /api/v1/orders/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/cancel",
    tag = "orders",
    params(("id" = OrderId, Path, description = "order id")),
    responses((status = 200, description = "success", body = Success<Order>), Refusals),
    security(("bearer" = []))
)]
pub async fn cancel(
    State(s): State<AppState>,
    me: AuthUser,
    PathParam(id): PathParam<OrderId>,
) -> ApiResult<Order> {
    Ok(ok(orders::cancel_mine(&s, &me, id).await?))
}
