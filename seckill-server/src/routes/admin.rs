//! `/api/v1/admin/*`: products, activities, warm-up, reconciliation.

use crate::auth::AdminUser;
use crate::error::{ok, ApiError, ApiResult, Body, Code, PathParam, QueryParams, Reply};
use crate::routes::catalog::find_activity;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use seckill_core::domain::{Activity, ActivityId, Money, Product, ProductId};
use seckill_core::engine::ReconcileReport;
use seckill_core::stock::StockSnapshot;
use seckill_core::Timestamp;
use serde::Deserialize;

/// `POST /api/v1/admin/products`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    name: String,
    #[serde(default)]
    description: String,
    list_price: Money,
}

/// `POST /api/v1/admin/seckill/activities`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateActivity {
    product_id: ProductId,
    title: String,
    price: Money,
    total_stock: u32,
    per_user_limit: u32,
    starts_at: Timestamp,
    ends_at: Timestamp,
}

/// `?repair=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairQuery {
    #[serde(default)]
    repair: bool,
}

fn invalid(m: &str) -> ApiError {
    ApiError::new(Code::InvalidField, m)
}

/// Creates a product.
pub async fn create_product(
    State(s): State<AppState>,
    _admin: AdminUser,
    Body(req): Body<CreateProduct>,
) -> ApiResult<Product> {
    if req.name.trim().is_empty() || req.name.len() > 200 {
        return Err(invalid("name: 1 to 200 characters"));
    }
    if req.list_price.0 < 0 {
        return Err(invalid("list_price must not be negative"));
    }
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
pub async fn create_activity(
    State(s): State<AppState>,
    _admin: AdminUser,
    Body(req): Body<CreateActivity>,
) -> ApiResult<Activity> {
    if req.title.trim().is_empty() || req.title.len() > 200 {
        return Err(invalid("title: 1 to 200 characters"));
    }
    if req.price.0 < 0 {
        return Err(invalid("price must not be negative"));
    }
    if req.total_stock == 0 || req.total_stock > 10_000_000 {
        return Err(invalid("total_stock: 1 to 10,000,000"));
    }
    if req.per_user_limit == 0 {
        return Err(invalid("per_user_limit must be at least 1"));
    }
    if req.starts_at >= req.ends_at {
        return Err(invalid("starts_at must be before ends_at"));
    }
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
pub async fn warm_up(
    State(s): State<AppState>,
    _admin: AdminUser,
    PathParam(id): PathParam<ActivityId>,
) -> ApiResult<StockSnapshot> {
    find_activity(&s, id).await?;
    Ok(ok(s.engine.warm_up(id).await.map_err(activity_error)?))
}

/// `POST /api/v1/admin/seckill/activities/{id}/reconcile?repair=true`.
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
