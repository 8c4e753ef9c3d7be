//! The HTTP router: every route under `/api/v1`, the ops routes, and the middleware (CORS,
//! trace id, metrics, load shedding and deadlines, body size, panic → 500 envelope, 404/405
//! envelopes). Each route module is a thin HTTP door
//! over [`crate::service`]; no route module imports another.

pub mod admin;
pub mod buy;
pub mod catalog;
pub mod ops;
pub mod orders;
pub mod payments;
pub mod users;

use crate::error::{ApiError, Code, TRACE_ID};
use crate::openapi::ApiDoc;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::time::Instant;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

/// The routes every process serves (health, readiness, metrics), whatever its roles.
pub fn ops_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ops::health))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
}

/// The API routes (the `api` role), each with its OpenAPI description.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(users::register))
        .routes(routes!(users::login))
        .routes(routes!(users::logout))
        .routes(routes!(users::profile, users::update_profile))
        .routes(routes!(users::change_password))
        .routes(routes!(users::send_code))
        .routes(routes!(users::verify_code))
        .routes(routes!(catalog::list_products))
        .routes(routes!(catalog::get_product))
        .routes(routes!(catalog::product_stock))
        .routes(routes!(catalog::list_activities))
        .routes(routes!(catalog::get_activity))
        .routes(routes!(catalog::activity_status))
        .routes(routes!(catalog::seat_map))
        .routes(routes!(catalog::list_events))
        .routes(routes!(catalog::get_event))
        .routes(routes!(buy::buy))
        .routes(routes!(orders::list_mine))
        .routes(routes!(orders::get_mine))
        .routes(routes!(orders::cancel))
        .routes(routes!(payments::pay))
        .routes(routes!(payments::create))
        .routes(routes!(payments::status))
        .routes(routes!(payments::refund))
        .routes(routes!(payments::callback))
        .routes(routes!(payments::mock_complete))
        .routes(routes!(admin::create_product))
        .routes(routes!(admin::update_product, admin::delete_product))
        .routes(routes!(admin::set_product_stock))
        .routes(routes!(admin::create_event))
        .routes(routes!(admin::update_event))
        .routes(routes!(admin::create_activity))
        .routes(routes!(admin::update_activity))
        .routes(routes!(admin::warm_up))
        .routes(routes!(admin::reconcile))
        .routes(routes!(admin::list_orders))
        .routes(routes!(admin::update_order_status))
        .routes(routes!(admin::get_config, admin::set_config))
}

/// The OpenAPI document of the routes a process with (or without) the `api` role serves.
pub fn openapi(with_api: bool) -> utoipa::openapi::OpenApi {
    routers(with_api).split_for_parts().1
}

fn routers(with_api: bool) -> OpenApiRouter<AppState> {
    let r = OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(ops_router());
    if with_api {
        r.merge(api_router())
    } else {
        r
    }
}

/// The whole app: `api` routes if `with_api`, ops routes always, `/openapi.json` and `/docs`,
/// middleware around all of them.
pub fn app(state: AppState, with_api: bool) -> Router {
    let (r, doc) = routers(with_api).split_for_parts();
    r.merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::overload::guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.overload.max_body_bytes,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(state.overload.cors_layer())
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(Code::RouteNotFound, "no such route")
}

async fn method_not_allowed() -> Response {
    let mut r =
        ApiError::new(Code::RouteNotFound, "method not allowed on this route").into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(Code::Internal, "internal error").into_response()
}

/// Gives every request a span (a child of the caller's `traceparent`, if any) and a trace id
/// (OpenTelemetry's when traced; else `x-request-id` if sane, else fresh), and records its
/// route, status and latency.
async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let parent = req
        .headers()
        .get(seckill_core::trace::TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok());
    let span = crate::telemetry::request_span(&format!("{method} {route}"), parent);
    let trace_id = crate::telemetry::request_trace_id(&span, || {
        req.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_string)
            .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()))
    });
    let mut resp = {
        use tracing::Instrument;
        let inner = async {
            let resp = next.run(req).await;
            // The access log: off at the default `info` level (RUST_LOG=seckill_server::access=debug).
            tracing::debug!(target: "seckill_server::access", status = resp.status().as_u16(),
                micros = start.elapsed().as_micros() as u64, "answered");
            resp
        };
        TRACE_ID
            .scope(trace_id.clone(), inner)
            .instrument(span)
            .await
    };
    if let Ok(v) = HeaderValue::from_str(&trace_id) {
        resp.headers_mut().insert("x-trace-id", v);
    }
    s.metrics
        .http
        .record(&method, &route, resp.status().as_u16(), start.elapsed());
    resp
}
