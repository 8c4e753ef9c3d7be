//! `/api/v1/admin/*`: products, events, activities, warm-up, reconciliation, orders, the live
//! configuration.

use crate::auth::AdminUser;
use crate::error::{ok, ApiResult, Body, PathParam, QueryParams, Refusals, Reply, Success};
use crate::service::catalog::{self, ActivityChange, ActivityStock, EventChange, ProductChange};
use crate::service::{orders, page_request};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use seckill_core::domain::{
    Activity, ActivityId, Event, EventId, Order, OrderId, OrderStatus, Product, ProductId, UserId,
};
use seckill_core::engine::{NewActivity, NewEvent, NewProduct, ReconcileReport};
use seckill_core::repo::{OrderFilter, Page};
use seckill_core::stock::StockSnapshot;
use serde::Deserialize;
use serde_json::json;

/// `?repair=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RepairQuery {
    #[serde(default)]
    repair: bool,
}

/// Creates a product.
#[utoipa::path(
    post,
    path = "/api/v1/admin/products",
    tag = "admin",
    request_body = NewProduct,
    responses((status = 201, description = "success", body = Success<Product>), Refusals),
    security(("bearer" = []))
)]
pub async fn create_product(
    State(s): State<AppState>,
    _admin: AdminUser,
    Body(new): Body<NewProduct>,
) -> ApiResult<Product> {
    let p = catalog::create_product(&s, new).await?;
    Ok(Reply(StatusCode::CREATED, p))
}

/// Creates an event; its sessions are activities created with its `event_id`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/events",
    tag = "admin",
    request_body = NewEvent,
    responses((status = 201, description = "success", body = Success<Event>), Refusals),
    security(("bearer" = []))
)]
pub async fn create_event(
    State(s): State<AppState>,
    _admin: AdminUser,
    Body(new): Body<NewEvent>,
) -> ApiResult<Event> {
    let e = catalog::create_event(&s, new).await?;
    Ok(Reply(StatusCode::CREATED, e))
}

/// Updates an event's title, venue or description.
#[utoipa::path(
    put,
    path = "/api/v1/admin/events/{id}",
    tag = "admin",
    params(("id" = EventId, Path, description = "event id")),
    request_body = EventChange,
    responses((status = 200, description = "success", body = Success<Event>), Refusals),
    security(("bearer" = []))
)]
pub async fn update_event(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<EventId>,
    Body(change): Body<EventChange>,
) -> ApiResult<Event> {
    Ok(ok(catalog::update_event(&s, id, change).await?))
}

/// Creates an activity (warm it up before it starts).
#[utoipa::path(
    post,
    path = "/api/v1/admin/seckill/activities",
    tag = "admin",
    request_body = NewActivity,
    responses((status = 201, description = "success", body = Success<Activity>), Refusals),
    security(("bearer" = []))
)]
pub async fn create_activity(
    State(s): State<AppState>,
    _admin: AdminUser,
    Body(new): Body<NewActivity>,
) -> ApiResult<Activity> {
    let a = catalog::create_activity(&s, new).await?;
    Ok(Reply(StatusCode::CREATED, a))
}

/// `POST /api/v1/admin/seckill/warmup/{id}`: loads the stock (idempotent; never re-sells).
#[utoipa::path(
    post,
    path = "/api/v1/admin/seckill/warmup/{id}",
    tag = "admin",
    params(("id" = ActivityId, Path, description = "activity id")),
    responses((status = 200, description = "success", body = Success<StockSnapshot>), Refusals),
    security(("bearer" = []))
)]
pub async fn warm_up(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<ActivityId>,
) -> ApiResult<StockSnapshot> {
    Ok(ok(catalog::warm_up(&s, id).await?))
}

/// `POST /api/v1/admin/seckill/activities/{id}/reconcile?repair=true`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/seckill/activities/{id}/reconcile",
    tag = "admin",
    params(("id" = ActivityId, Path, description = "activity id"), RepairQuery),
    responses((status = 200, description = "success", body = Success<ReconcileReport>), Refusals),
    security(("bearer" = []))
)]
pub async fn reconcile(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<ActivityId>,
    QueryParams(q): QueryParams<RepairQuery>,
) -> ApiResult<ReconcileReport> {
    Ok(ok(catalog::reconcile(&s, id, q.repair).await?))
}

/// Updates a product.
#[utoipa::path(
    put,
    path = "/api/v1/admin/products/{id}",
    tag = "admin",
    params(("id" = ProductId, Path, description = "product id")),
    request_body = ProductChange,
    responses((status = 200, description = "success", body = Success<Product>), Refusals),
    security(("bearer" = []))
)]
pub async fn update_product(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<ProductId>,
    Body(change): Body<ProductChange>,
) -> ApiResult<Product> {
    Ok(ok(catalog::update_product(&s, id, change).await?))
}

/// `DELETE /api/v1/admin/products/{id}`: only a product without activities.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/products/{id}",
    tag = "admin",
    params(("id" = ProductId, Path, description = "product id")),
    responses((status = 200, description = "success", body = Success<serde_json::Value>), Refusals),
    security(("bearer" = []))
)]
pub async fn delete_product(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<ProductId>,
) -> ApiResult<serde_json::Value> {
    catalog::delete_product(&s, id).await?;
    Ok(ok(json!({ "deleted": true, "id": id })))
}

/// `POST /api/v1/admin/products/{id}/stock`: sets the total stock of one of the product's
/// activities (stock lives per activity); never below what is held or sold.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStock {
    activity_id: ActivityId,
    #[schema(minimum = 1, maximum = 10_000_000)]
    total_stock: u32,
}

/// Sets an activity's stock through its product.
#[utoipa::path(
    post,
    path = "/api/v1/admin/products/{id}/stock",
    tag = "admin",
    params(("id" = ProductId, Path, description = "product id")),
    request_body = SetStock,
    responses((status = 200, description = "success", body = Success<ActivityStock>), Refusals),
    security(("bearer" = []))
)]
pub async fn set_product_stock(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<ProductId>,
    Body(req): Body<SetStock>,
) -> ApiResult<ActivityStock> {
    Ok(ok(catalog::set_product_stock(
        &s,
        id,
        req.activity_id,
        req.total_stock,
    )
    .await?))
}

/// Updates an activity.
#[utoipa::path(
    put,
    path = "/api/v1/admin/seckill/activities/{id}",
    tag = "admin",
    params(("id" = ActivityId, Path, description = "activity id")),
    request_body = ActivityChange,
    responses((status = 200, description = "success", body = Success<Activity>), Refusals),
    security(("bearer" = []))
)]
pub async fn update_activity(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<ActivityId>,
    Body(change): Body<ActivityChange>,
) -> ApiResult<Activity> {
    Ok(ok(catalog::update_activity(&s, id, change).await?))
}

/// `?page=&page_size=&status=&activity_id=&user_id=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdminOrderQuery {
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
    #[serde(default)]
    activity_id: Option<ActivityId>,
    #[serde(default)]
    user_id: Option<UserId>,
}

/// `GET /api/v1/admin/orders`: every order, newest first, filtered.
#[utoipa::path(
    get,
    path = "/api/v1/admin/orders",
    tag = "admin",
    params(AdminOrderQuery),
    responses((status = 200, description = "success", body = Success<Page<Order>>), Refusals),
    security(("bearer" = []))
)]
pub async fn list_orders(
    State(s): State<AppState>,
    _admin: AdminUser,
    QueryParams(q): QueryParams<AdminOrderQuery>,
) -> ApiResult<Page<Order>> {
    let filter = OrderFilter {
        user_id: q.user_id,
        activity_id: q.activity_id,
        status: q.status,
    };
    let page = page_request(q.page, q.page_size)?;
    Ok(ok(orders::page_of(&s, &filter, page).await?))
}

/// `PUT /api/v1/admin/orders/{id}/status`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderStatusChange {
    status: OrderStatus,
}

/// Moves an order along a legal transition an operator may take: `pending_payment →
/// cancelled` (its units go back to stock) and `paid → refunded` (its payment is refunded).
/// An order becomes paid only through its payment.
#[utoipa::path(
    put,
    path = "/api/v1/admin/orders/{id}/status",
    tag = "admin",
    params(("id" = OrderId, Path, description = "order id")),
    request_body = OrderStatusChange,
    responses((status = 200, description = "success", body = Success<Order>), Refusals),
    security(("bearer" = []))
)]
pub async fn update_order_status(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<OrderId>,
    Body(req): Body<OrderStatusChange>,
) -> ApiResult<Order> {
    Ok(ok(orders::set_status(&s, id, req.status).await?))
}

/// The live configuration: every reloadable key's value now, the shared overrides and their
/// version.
#[utoipa::path(
    get,
    path = "/api/v1/admin/config",
    tag = "admin",
    responses((status = 200, description = "success", body = Success<crate::live::LiveView>), Refusals),
    security(("bearer" = []))
)]
pub async fn get_config(
    State(s): State<AppState>,
    _admin: AdminUser,
) -> ApiResult<crate::live::LiveView> {
    Ok(ok(s.live.view()))
}

/// Changes live configuration on every process: a JSON merge patch of reloadable keys
/// (`{"sale": {"paused_activities": ["42"]}}`; `null` returns a key to the file's value).
/// Checked whole: a key that needs a restart or a value that does not check answers 2002 and
/// nothing changes.
#[utoipa::path(
    put,
    path = "/api/v1/admin/config",
    tag = "admin",
    request_body(content = Object, description = "a JSON merge patch of reloadable keys"),
    responses((status = 200, description = "success", body = Success<crate::live::LiveView>), Refusals),
    security(("bearer" = []))
)]
pub async fn set_config(
    State(s): State<AppState>,
    _admin: AdminUser,
    Body(patch): Body<serde_json::Value>,
) -> ApiResult<crate::live::LiveView> {
    Ok(ok(s.set_live(patch).await?))
}
