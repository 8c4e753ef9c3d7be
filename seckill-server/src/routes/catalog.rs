//! Products and activities as buyers see them: `/api/v1/products*`, `/api/v1/seckill/activities*`.

use crate::error::{ok, ApiError, ApiResult, Code, Failure, PathParam, QueryParams, Success};
use crate::state::AppState;
use axum::extract::State;
use seckill_core::domain::{Activity, ActivityId, ActivityStatus, Money, Product, ProductId};
use seckill_core::repo::{Page, PageRequest};
use seckill_core::Timestamp;
use serde::{Deserialize, Serialize};

/// `?page=&page_size=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    /// Page number, from 1.
    #[serde(default)]
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

impl Paging {
    /// From separate parameters.
    pub fn new(page: Option<u32>, page_size: Option<u32>) -> Self {
        Self { page, page_size }
    }

    /// Validated page request (page ≥ 1, page_size 1..=100, default 20).
    pub fn request(&self) -> Result<PageRequest, ApiError> {
        let page = self.page.unwrap_or(1);
        let page_size = self.page_size.unwrap_or(20);
        if page == 0 || page_size == 0 || page_size > 100 {
            return Err(ApiError::new(
                Code::InvalidParameter,
                "page must be ≥ 1 and page_size 1..=100",
            ));
        }
        Ok(PageRequest { page, page_size })
    }
}

/// An activity with its clock-derived status and live stock.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActivityView {
    pub(crate) id: ActivityId,
    pub(crate) product_id: ProductId,
    pub(crate) title: String,
    pub(crate) price: Money,
    pub(crate) total_stock: u32,
    pub(crate) per_user_limit: u32,
    #[schema(value_type = String, format = DateTime)]
    pub(crate) starts_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub(crate) ends_at: Timestamp,
    pub(crate) status: ActivityStatus,
    /// Units still available in the stock backend (`null` until warmed up).
    pub(crate) available: Option<i64>,
}

/// An activity's status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusView {
    id: ActivityId,
    status: ActivityStatus,
    available: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    starts_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    ends_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    server_time: Timestamp,
}

/// An activity as buyers see it.
pub(crate) async fn view(s: &AppState, a: Activity) -> Result<ActivityView, ApiError> {
    let available = s
        .engine
        .backends()
        .stock
        .snapshot(a.id)
        .await?
        .map(|x| x.available.max(0));
    Ok(ActivityView {
        status: a.status_at(s.engine.now()),
        id: a.id,
        product_id: a.product_id,
        title: a.title,
        price: a.price,
        total_stock: a.total_stock,
        per_user_limit: a.per_user_limit,
        starts_at: a.starts_at,
        ends_at: a.ends_at,
        available,
    })
}

/// Reads an activity or answers 3001.
pub async fn find_activity(s: &AppState, id: ActivityId) -> Result<Activity, ApiError> {
    s.engine
        .backends()
        .catalog
        .activity(id)
        .await?
        .ok_or_else(|| ApiError::new(Code::ActivityNotFound, format!("no activity {id}")))
}

/// `GET /api/v1/seckill/activities`.
#[utoipa::path(
    get,
    path = "/api/v1/seckill/activities",
    tag = "catalog",
    params(Paging),
    responses((status = 200, description = "success", body = Success<Page<ActivityView>>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure))
)]
pub async fn list_activities(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<Paging>,
) -> ApiResult<Page<ActivityView>> {
    let page = s
        .engine
        .backends()
        .catalog
        .list_activities(p.request()?)
        .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for a in page.items {
        items.push(view(&s, a).await?);
    }
    Ok(ok(Page {
        items,
        total: page.total,
        page: page.page,
        page_size: page.page_size,
    }))
}

/// `GET /api/v1/seckill/activities/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/seckill/activities/{id}",
    tag = "catalog",
    params(("id" = ActivityId, Path, description = "activity id")),
    responses((status = 200, description = "success", body = Success<ActivityView>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure))
)]
pub async fn get_activity(
    State(s): State<AppState>,
    PathParam(id): PathParam<ActivityId>,
) -> ApiResult<ActivityView> {
    let a = find_activity(&s, id).await?;
    Ok(ok(view(&s, a).await?))
}

/// `GET /api/v1/seckill/activities/{id}/status`.
#[utoipa::path(
    get,
    path = "/api/v1/seckill/activities/{id}/status",
    tag = "catalog",
    params(("id" = ActivityId, Path, description = "activity id")),
    responses((status = 200, description = "success", body = Success<StatusView>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure))
)]
pub async fn activity_status(
    State(s): State<AppState>,
    PathParam(id): PathParam<ActivityId>,
) -> ApiResult<StatusView> {
    let a = find_activity(&s, id).await?;
    let v = view(&s, a).await?;
    Ok(ok(StatusView {
        id: v.id,
        status: v.status,
        available: v.available,
        starts_at: v.starts_at,
        ends_at: v.ends_at,
        server_time: s.engine.now(),
    }))
}

/// `GET /api/v1/products`.
#[utoipa::path(
    get,
    path = "/api/v1/products",
    tag = "catalog",
    params(Paging),
    responses((status = 200, description = "success", body = Success<Page<Product>>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure))
)]
pub async fn list_products(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<Paging>,
) -> ApiResult<Page<Product>> {
    Ok(ok(s
        .engine
        .backends()
        .catalog
        .list_products(p.request()?)
        .await?))
}

/// Stock figures of one activity.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActivityStock {
    activity_id: ActivityId,
    title: String,
    status: ActivityStatus,
    total: u32,
    /// Units left to buy (from the stock backend once warmed up, else total − sold).
    available: i64,
    /// Units in holds whose order is not written yet.
    held: u32,
    sold: u32,
    warmed_up: bool,
}

/// A product's stock: the stock of its sale activities (seckill-rs keeps stock per activity).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProductStock {
    product_id: ProductId,
    /// Units left over the activities that have not ended.
    available: i64,
    activities: Vec<ActivityStock>,
}

/// The stock figures of an activity, live from the stock backend when warmed up.
pub async fn activity_stock(s: &AppState, a: Activity) -> Result<ActivityStock, ApiError> {
    let snap = s.engine.backends().stock.snapshot(a.id).await?;
    let status = a.status_at(s.engine.now());
    Ok(match snap {
        Some(x) => ActivityStock {
            activity_id: a.id,
            title: a.title,
            status,
            total: x.total,
            available: x.available.max(0),
            held: x.held,
            sold: x.sold,
            warmed_up: true,
        },
        None => ActivityStock {
            activity_id: a.id,
            title: a.title,
            status,
            total: a.total_stock,
            available: i64::from(a.total_stock) - i64::from(a.sold),
            held: 0,
            sold: a.sold,
            warmed_up: false,
        },
    })
}

/// `GET /api/v1/products/{id}/stock`: live stock of the product's activities.
#[utoipa::path(
    get,
    path = "/api/v1/products/{id}/stock",
    tag = "catalog",
    params(("id" = ProductId, Path, description = "product id")),
    responses((status = 200, description = "success", body = Success<ProductStock>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure))
)]
pub async fn product_stock(
    State(s): State<AppState>,
    PathParam(id): PathParam<ProductId>,
) -> ApiResult<ProductStock> {
    find_product(&s, id).await?;
    let mut activities = Vec::new();
    for a in s.engine.backends().catalog.product_activities(id).await? {
        activities.push(activity_stock(&s, a).await?);
    }
    let available = activities
        .iter()
        .filter(|a| !matches!(a.status, ActivityStatus::Ended | ActivityStatus::Cancelled))
        .map(|a| a.available)
        .sum();
    Ok(ok(ProductStock {
        product_id: id,
        available,
        activities,
    }))
}

/// Reads a product or answers 6001.
pub async fn find_product(s: &AppState, id: ProductId) -> Result<Product, ApiError> {
    s.engine
        .backends()
        .catalog
        .product(id)
        .await?
        .ok_or_else(|| ApiError::new(Code::ProductNotFound, format!("no product {id}")))
}

/// `GET /api/v1/products/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/products/{id}",
    tag = "catalog",
    params(("id" = ProductId, Path, description = "product id")),
    responses((status = 200, description = "success", body = Success<Product>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure))
)]
pub async fn get_product(
    State(s): State<AppState>,
    PathParam(id): PathParam<ProductId>,
) -> ApiResult<Product> {
    Ok(ok(find_product(&s, id).await?))
}
