//! The HTTP router: every route under `/api/v1`, the ops routes, and the middleware (trace id,
//! metrics, panic → 500 envelope, 404/405 envelopes).

pub mod admin;
pub mod catalog;
pub mod ops;
pub mod orders;
pub mod payments;
pub mod seckill;
pub mod users;

use crate::error::{ApiError, Code, TRACE_ID};
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use std::time::Instant;

/// The routes every process serves (health, readiness, metrics), whatever its roles.
pub fn ops_router() -> Router<AppState> {
    Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
}

/// The API routes (the `api` role).
pub fn api_router() -> Router<AppState> {
    let v1 = Router::new()
        .route("/user/register", post(users::register))
        .route("/user/login", post(users::login))
        .route("/user/logout", post(users::logout))
        .route(
            "/user/profile",
            get(users::profile).put(users::update_profile),
        )
        .route("/user/password", post(users::change_password))
        .route("/user/send-code", post(users::send_code))
        .route("/user/verify-code", post(users::verify_code))
        .route("/products", get(catalog::list_products))
        .route("/products/{id}", get(catalog::get_product))
        .route("/products/{id}/stock", get(catalog::product_stock))
        .route("/seckill/activities", get(catalog::list_activities))
        .route("/seckill/activities/{id}", get(catalog::get_activity))
        .route(
            "/seckill/activities/{id}/status",
            get(catalog::activity_status),
        )
        .route("/seckill/activities/{id}/buy", post(seckill::buy))
        .route("/orders", get(orders::list_mine))
        .route("/orders/{id}", get(orders::get_mine))
        .route("/orders/{id}/cancel", post(orders::cancel))
        .route("/orders/{id}/pay", post(orders::pay))
        .route("/payment/create", post(payments::create))
        .route("/payment/{id}/status", get(payments::status))
        .route("/payment/{id}/refund", post(payments::refund))
        .route("/payment/callback/{provider}", post(payments::callback))
        .route("/payment/mock/{id}/complete", post(payments::mock_complete))
        .route("/admin/products", post(admin::create_product))
        .route(
            "/admin/products/{id}",
            put(admin::update_product).delete(admin::delete_product),
        )
        .route("/admin/products/{id}/stock", post(admin::set_product_stock))
        .route("/admin/seckill/activities", post(admin::create_activity))
        .route(
            "/admin/seckill/activities/{id}",
            put(admin::update_activity),
        )
        .route("/admin/orders", get(admin::list_orders))
        .route("/admin/orders/{id}/status", put(admin::update_order_status))
        .route("/admin/seckill/warmup/{id}", post(admin::warm_up))
        .route(
            "/admin/seckill/activities/{id}/reconcile",
            post(admin::reconcile),
        );
    Router::new().nest("/api/v1", v1)
}

/// The whole app: `api` routes if `with_api`, ops routes always, middleware around both.
pub fn app(state: AppState, with_api: bool) -> Router {
    let mut r = ops_router();
    if with_api {
        r = r.merge(api_router());
    }
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
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

/// Gives every request a trace id (from `x-request-id` if sane, else fresh), a span, and
/// records its route, status and latency.
async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let trace_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let span = tracing::info_span!("http", %method, %route, trace_id = %trace_id);
    let mut resp = {
        use tracing::Instrument;
        TRACE_ID
            .scope(trace_id.clone(), next.run(req))
            .instrument(span)
            .await
    };
    if let Ok(v) = HeaderValue::from_str(&trace_id) {
        resp.headers_mut().insert("x-trace-id", v);
    }
    s.http
        .record(&method, &route, resp.status().as_u16(), start.elapsed());
    resp
}
