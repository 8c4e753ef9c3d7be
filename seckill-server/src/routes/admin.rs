//! `/api/v1/admin/*`: products, activities, warm-up, reconciliation, orders.

use crate::auth::AdminUser;
use crate::error::{
    ok, ApiError, ApiResult, Body, Code, Failure, PathParam, QueryParams, Reply, Success,
};
use crate::routes::catalog::{activity_stock, find_activity, find_product, ActivityStock, Paging};
use crate::routes::orders::{order_error, page_of};
use crate::routes::payments::refund_payment;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use seckill_core::domain::{
    Activity, ActivityId, CancelReason, Money, Order, OrderId, OrderStatus, Product, ProductId,
    UserId,
};
use seckill_core::engine::ReconcileReport;
use seckill_core::repo::{OrderFilter, Page};
use seckill_core::stock::StockSnapshot;
use seckill_core::Timestamp;
use serde::Deserialize;
use serde_json::json;

/// `POST /api/v1/admin/products`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    name: String,
    #[serde(default)]
    description: String,
    list_price: Money,
}

/// `POST /api/v1/admin/seckill/activities`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateActivity {
    product_id: ProductId,
    title: String,
    price: Money,
    total_stock: u32,
    per_user_limit: u32,
    #[schema(value_type = String, format = DateTime)]
    starts_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    ends_at: Timestamp,
}

/// `?repair=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RepairQuery {
    #[serde(default)]
    repair: bool,
}

fn invalid(m: &str) -> ApiError {
    ApiError::new(Code::InvalidField, m)
}

fn check_product(name: &str, list_price: Money) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(invalid("name: 1 to 200 characters"));
    }
    if list_price.0 < 0 {
        return Err(invalid("list_price must not be negative"));
    }
    Ok(())
}

fn check_activity(a: &Activity) -> Result<(), ApiError> {
    if a.title.trim().is_empty() || a.title.len() > 200 {
        return Err(invalid("title: 1 to 200 characters"));
    }
    if a.price.0 < 0 {
        return Err(invalid("price must not be negative"));
    }
    if a.total_stock == 0 || a.total_stock > 10_000_000 {
        return Err(invalid("total_stock: 1 to 10,000,000"));
    }
    if a.per_user_limit == 0 {
        return Err(invalid("per_user_limit must be at least 1"));
    }
    if a.starts_at >= a.ends_at {
        return Err(invalid("starts_at must be before ends_at"));
    }
    Ok(())
}

/// Creates a product.
#[utoipa::path(
    post,
    path = "/api/v1/admin/products",
    tag = "admin",
    request_body = CreateProduct,
    responses((status = 201, description = "success", body = Success<Product>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn create_product(
    State(s): State<AppState>,
    _admin: AdminUser,
    Body(req): Body<CreateProduct>,
) -> ApiResult<Product> {
    check_product(&req.name, req.list_price)?;
    let p = Product {
        id: ProductId(s.engine.next_id()),
        name: req.name,
        description: req.description,
        list_price: req.list_price,
        created_at: s.engine.now(),
    };
    s.engine.backends().catalog.insert_product(&p).await?;
    Ok(Reply(StatusCode::CREATED, p))
}

/// Creates an activity (warm it up before it starts).
#[utoipa::path(
    post,
    path = "/api/v1/admin/seckill/activities",
    tag = "admin",
    request_body = CreateActivity,
    responses((status = 201, description = "success", body = Success<Activity>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn create_activity(
    State(s): State<AppState>,
    _admin: AdminUser,
    Body(req): Body<CreateActivity>,
) -> ApiResult<Activity> {
    let a = Activity {
        id: ActivityId(s.engine.next_id()),
        product_id: req.product_id,
        title: req.title,
        price: req.price,
        total_stock: req.total_stock,
        sold: 0,
        per_user_limit: req.per_user_limit,
        starts_at: req.starts_at,
        ends_at: req.ends_at,
        cancelled: false,
        created_at: s.engine.now(),
    };
    check_activity(&a)?;
    match s.engine.backends().catalog.insert_activity(&a).await {
        Ok(()) => Ok(Reply(StatusCode::CREATED, a)),
        Err(seckill_core::Error::NotFound(_)) => Err(ApiError::new(
            Code::ProductNotFound,
            format!("no product {}", a.product_id),
        )),
        Err(e) => Err(e.into()),
    }
}

fn activity_error(e: seckill_core::Error) -> ApiError {
    match e {
        seckill_core::Error::NotFound(m) => ApiError::new(Code::ActivityNotFound, m),
        seckill_core::Error::Conflict(m) => ApiError::new(Code::ActivityBusy, m),
        other => other.into(),
    }
}

/// `POST /api/v1/admin/seckill/warmup/{id}`: loads the stock (idempotent; never re-sells).
#[utoipa::path(
    post,
    path = "/api/v1/admin/seckill/warmup/{id}",
    tag = "admin",
    params(("id" = ActivityId, Path, description = "activity id")),
    responses((status = 200, description = "success", body = Success<StockSnapshot>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn warm_up(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<ActivityId>,
) -> ApiResult<StockSnapshot> {
    find_activity(&s, id).await?;
    Ok(ok(s.engine.warm_up(id).await.map_err(activity_error)?))
}

/// `POST /api/v1/admin/seckill/activities/{id}/reconcile?repair=true`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/seckill/activities/{id}/reconcile",
    tag = "admin",
    params(("id" = ActivityId, Path, description = "activity id"), RepairQuery),
    responses((status = 200, description = "success", body = Success<ReconcileReport>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn reconcile(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<ActivityId>,
    QueryParams(q): QueryParams<RepairQuery>,
) -> ApiResult<ReconcileReport> {
    find_activity(&s, id).await?;
    Ok(ok(s
        .engine
        .reconcile(id, q.repair)
        .await
        .map_err(activity_error)?))
}

/// `PUT /api/v1/admin/products/{id}`: the fields to change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    list_price: Option<Money>,
}

/// Updates a product.
#[utoipa::path(
    put,
    path = "/api/v1/admin/products/{id}",
    tag = "admin",
    params(("id" = ProductId, Path, description = "product id")),
    request_body = UpdateProduct,
    responses((status = 200, description = "success", body = Success<Product>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn update_product(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<ProductId>,
    Body(req): Body<UpdateProduct>,
) -> ApiResult<Product> {
    let old = find_product(&s, id).await?;
    let p = Product {
        name: req.name.unwrap_or(old.name),
        description: req.description.unwrap_or(old.description),
        list_price: req.list_price.unwrap_or(old.list_price),
        ..old
    };
    check_product(&p.name, p.list_price)?;
    s.engine.backends().catalog.update_product(&p).await?;
    Ok(ok(p))
}

/// `DELETE /api/v1/admin/products/{id}`: only a product without activities.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/products/{id}",
    tag = "admin",
    params(("id" = ProductId, Path, description = "product id")),
    responses((status = 200, description = "success", body = Success<serde_json::Value>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn delete_product(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<ProductId>,
) -> ApiResult<serde_json::Value> {
    match s.engine.backends().catalog.delete_product(id).await {
        Ok(()) => Ok(ok(json!({ "deleted": true, "id": id }))),
        Err(seckill_core::Error::NotFound(_)) => Err(ApiError::new(
            Code::ProductNotFound,
            format!("no product {id}"),
        )),
        Err(seckill_core::Error::Conflict(_)) => Err(ApiError::new(
            Code::Conflict,
            format!("product {id} has sale activities: it cannot be deleted"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Saves an activity changed by an admin, through the engine (under the activity's lock; a
/// warmed-up activity's stock follows at once).
async fn save_activity(s: &AppState, a: &Activity) -> Result<(), ApiError> {
    check_activity(a)?;
    s.engine.update_activity(a).await.map_err(|e| match e {
        seckill_core::Error::Conflict(m) => ApiError::new(Code::Conflict, m),
        other => activity_error(other),
    })
}

/// `POST /api/v1/admin/products/{id}/stock`: sets the total stock of one of the product's
/// activities (stock lives per activity); never below what is held or sold.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStock {
    activity_id: ActivityId,
    total_stock: u32,
}

/// Sets an activity's stock through its product.
#[utoipa::path(
    post,
    path = "/api/v1/admin/products/{id}/stock",
    tag = "admin",
    params(("id" = ProductId, Path, description = "product id")),
    request_body = SetStock,
    responses((status = 200, description = "success", body = Success<ActivityStock>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn set_product_stock(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<ProductId>,
    Body(req): Body<SetStock>,
) -> ApiResult<ActivityStock> {
    find_product(&s, id).await?;
    let a = find_activity(&s, req.activity_id).await?;
    if a.product_id != id {
        return Err(ApiError::new(
            Code::ActivityNotFound,
            format!("product {id} has no activity {}", req.activity_id),
        ));
    }
    let new = Activity {
        total_stock: req.total_stock,
        ..a.clone()
    };
    save_activity(&s, &new).await?;
    Ok(ok(
        activity_stock(&s, find_activity(&s, new.id).await?).await?
    ))
}

/// `PUT /api/v1/admin/seckill/activities/{id}`: the fields to change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateActivity {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    price: Option<Money>,
    #[serde(default)]
    total_stock: Option<u32>,
    #[serde(default)]
    per_user_limit: Option<u32>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    starts_at: Option<Timestamp>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    ends_at: Option<Timestamp>,
    /// `true` calls the sale off.
    #[serde(default)]
    cancelled: Option<bool>,
}

/// Updates an activity.
#[utoipa::path(
    put,
    path = "/api/v1/admin/seckill/activities/{id}",
    tag = "admin",
    params(("id" = ActivityId, Path, description = "activity id")),
    request_body = UpdateActivity,
    responses((status = 200, description = "success", body = Success<Activity>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn update_activity(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<ActivityId>,
    Body(req): Body<UpdateActivity>,
) -> ApiResult<Activity> {
    let old = find_activity(&s, id).await?;
    let a = Activity {
        title: req.title.unwrap_or_else(|| old.title.clone()),
        price: req.price.unwrap_or(old.price),
        total_stock: req.total_stock.unwrap_or(old.total_stock),
        per_user_limit: req.per_user_limit.unwrap_or(old.per_user_limit),
        starts_at: req.starts_at.unwrap_or(old.starts_at),
        ends_at: req.ends_at.unwrap_or(old.ends_at),
        cancelled: req.cancelled.unwrap_or(old.cancelled),
        ..old.clone()
    };
    save_activity(&s, &a).await?;
    Ok(ok(find_activity(&s, id).await?))
}

/// `?page=&page_size=&status=&activity_id=&user_id=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdminOrderQuery {
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
    responses((status = 200, description = "success", body = Success<Page<Order>>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
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
    page_of(&s, &filter, Paging::new(q.page, q.page_size)).await
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
    responses((status = 200, description = "success", body = Success<Order>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn update_order_status(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<OrderId>,
    Body(req): Body<OrderStatusChange>,
) -> ApiResult<Order> {
    let Some(order) = s.engine.backends().orders.order(id).await? else {
        return Err(ApiError::new(Code::OrderNotFound, format!("no order {id}")));
    };
    let conflict = |why: String| ApiError::new(Code::OrderStateConflict, why);
    if order.status == req.status {
        return Ok(ok(order));
    }
    if !order.status.can_become(req.status) {
        return Err(conflict(format!(
            "an order cannot go from {} to {}",
            order.status, req.status
        )));
    }
    match req.status {
        OrderStatus::Cancelled => Ok(ok(s
            .engine
            .cancel(id, CancelReason::Admin)
            .await
            .map_err(order_error)?)),
        OrderStatus::Refunded => {
            let Some(payment) = order.payment_id else {
                return Err(conflict(format!("order {id} has no payment to refund")));
            };
            refund_payment(&s, payment).await?;
            s.engine
                .backends()
                .orders
                .order(id)
                .await?
                .map(ok)
                .ok_or_else(|| ApiError::new(Code::OrderNotFound, format!("no order {id}")))
        }
        other => Err(conflict(format!(
            "an order becomes {other} only through its payment, never by hand"
        ))),
    }
}
