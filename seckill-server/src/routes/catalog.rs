//! Products, events and activities as buyers see them: `/api/v1/products*`, `/api/v1/events*`,
//! `/api/v1/seckill/activities*`.

use crate::error::{ok, ApiResult, PathParam, QueryParams, Refusals, Success};
use crate::service::catalog::{
    self, ActivityView, EventView, ProductStock, SeatMapView, StatusView,
};
use crate::service::page_request;
use crate::state::AppState;
use axum::extract::State;
use seckill_core::domain::{ActivityId, Event, EventId, Product, ProductId};
use seckill_core::repo::Page;
use serde::Deserialize;

/// `?page=&page_size=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    /// Page number, from 1.
    #[serde(default)]
    #[param(minimum = 1, maximum = 2147483647)]
    page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

/// `GET /api/v1/seckill/activities`.
#[utoipa::path(
    get,
    path = "/api/v1/seckill/activities",
    tag = "catalog",
    params(Paging),
    responses((status = 200, description = "success", body = Success<Page<ActivityView>>), Refusals)
)]
pub async fn list_activities(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<Paging>,
) -> ApiResult<Page<ActivityView>> {
    let page = page_request(p.page, p.page_size)?;
    Ok(ok(catalog::list_activities(&s, page).await?))
}

/// `GET /api/v1/seckill/activities/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/seckill/activities/{id}",
    tag = "catalog",
    params(("id" = ActivityId, Path, description = "activity id")),
    responses((status = 200, description = "success", body = Success<ActivityView>), Refusals)
)]
pub async fn get_activity(
    State(s): State<AppState>,
    PathParam(id): PathParam<ActivityId>,
) -> ApiResult<ActivityView> {
    Ok(ok(catalog::activity(&s, id).await?))
}

/// `GET /api/v1/seckill/activities/{id}/status`.
#[utoipa::path(
    get,
    path = "/api/v1/seckill/activities/{id}/status",
    tag = "catalog",
    params(("id" = ActivityId, Path, description = "activity id")),
    responses((status = 200, description = "success", body = Success<StatusView>), Refusals)
)]
pub async fn activity_status(
    State(s): State<AppState>,
    PathParam(id): PathParam<ActivityId>,
) -> ApiResult<StatusView> {
    Ok(ok(catalog::activity_status(&s, id).await?))
}

/// `GET /api/v1/products`.
#[utoipa::path(
    get,
    path = "/api/v1/products",
    tag = "catalog",
    params(Paging),
    responses((status = 200, description = "success", body = Success<Page<Product>>), Refusals)
)]
pub async fn list_products(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<Paging>,
) -> ApiResult<Page<Product>> {
    let page = page_request(p.page, p.page_size)?;
    Ok(ok(catalog::list_products(&s, page).await?))
}

/// `GET /api/v1/products/{id}/stock`: live stock of the product's activities.
#[utoipa::path(
    get,
    path = "/api/v1/products/{id}/stock",
    tag = "catalog",
    params(("id" = ProductId, Path, description = "product id")),
    responses((status = 200, description = "success", body = Success<ProductStock>), Refusals)
)]
pub async fn product_stock(
    State(s): State<AppState>,
    PathParam(id): PathParam<ProductId>,
) -> ApiResult<ProductStock> {
    Ok(ok(catalog::product_stock(&s, id).await?))
}

/// `GET /api/v1/products/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/products/{id}",
    tag = "catalog",
    params(("id" = ProductId, Path, description = "product id")),
    responses((status = 200, description = "success", body = Success<Product>), Refusals)
)]
pub async fn get_product(
    State(s): State<AppState>,
    PathParam(id): PathParam<ProductId>,
) -> ApiResult<Product> {
    Ok(ok(catalog::read_product(&s, id).await?))
}

/// `GET /api/v1/events`: every event, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "catalog",
    params(Paging),
    responses((status = 200, description = "success", body = Success<Page<Event>>), Refusals)
)]
pub async fn list_events(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<Paging>,
) -> ApiResult<Page<Event>> {
    let page = page_request(p.page, p.page_size)?;
    Ok(ok(catalog::list_events(&s, page).await?))
}

/// `GET /api/v1/events/{id}`: the event with its sessions, their status and live stock.
#[utoipa::path(
    get,
    path = "/api/v1/events/{id}",
    tag = "catalog",
    params(("id" = EventId, Path, description = "event id")),
    responses((status = 200, description = "success", body = Success<EventView>), Refusals)
)]
pub async fn get_event(
    State(s): State<AppState>,
    PathParam(id): PathParam<EventId>,
) -> ApiResult<EventView> {
    Ok(ok(catalog::event(&s, id).await?))
}

/// `GET /api/v1/seckill/activities/{id}/seats`: the session's seat map and its taken seats.
#[utoipa::path(
    get,
    path = "/api/v1/seckill/activities/{id}/seats",
    tag = "catalog",
    params(("id" = ActivityId, Path, description = "activity id")),
    responses((status = 200, description = "success", body = Success<SeatMapView>), Refusals)
)]
pub async fn seat_map(
    State(s): State<AppState>,
    PathParam(id): PathParam<ActivityId>,
) -> ApiResult<SeatMapView> {
    Ok(ok(catalog::seat_map(&s, id).await?))
}
