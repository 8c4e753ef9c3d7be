//! The same answers from every door and every backend: a retryable backend failure answers 503
//! (HTTP, with `Retry-After`) or UNAVAILABLE (gRPC) with code 9002 and none of the client
//! library's text; the engine refuses what HTTP refuses, with the same code; a NUL in any text
//! field of any route is refused before a backend sees it, alike on memory and PostgreSQL.

mod support;

use async_trait::async_trait;
use axum::http::StatusCode;
use seckill_core::conformance::{service_url, unique_id};
use seckill_core::domain::{Activity, ActivityId, Event, EventId, Money, Product, ProductId};
use seckill_core::engine::{Engine, NewActivity};
use seckill_core::repo::{CatalogRepo, Page, PageRequest};
use seckill_core::{Error, Result};
use seckill_server::error::{ApiError, Code};
use seckill_server::grpc::{pb, Grpc};
use seckill_server::state::AppState;
use serde_json::{json, Value};
use std::sync::Arc;
use support::*;

/// What a client library says when its server is gone: it must reach the log, never a caller.
const CLIENT_TEXT: &str = "FATAL: terminating connection due to administrator command";

/// A catalog whose database is down: every call fails retryably, with the client's text.
#[derive(Debug)]
struct DownCatalog;

fn down<T>() -> Result<T> {
    Err(Error::backend("postgres", CLIENT_TEXT))
}

#[async_trait]
impl CatalogRepo for DownCatalog {
    async fn insert_product(&self, _: &Product) -> Result<()> {
        down()
    }
    async fn product(&self, _: ProductId) -> Result<Option<Product>> {
        down()
    }
    async fn list_products(&self, _: PageRequest) -> Result<Page<Product>> {
        down()
    }
    async fn update_product(&self, _: &Product) -> Result<()> {
        down()
    }
    async fn delete_product(&self, _: ProductId) -> Result<()> {
        down()
    }
    async fn product_activities(&self, _: ProductId) -> Result<Vec<Activity>> {
        down()
    }
    async fn insert_activity(&self, _: &Activity) -> Result<()> {
        down()
    }
    async fn activity(&self, _: ActivityId) -> Result<Option<Activity>> {
        Err(Error::Unavailable {
            backend: "postgres",
            message: CLIENT_TEXT.into(),
        })
    }
    async fn list_activities(&self, _: PageRequest) -> Result<Page<Activity>> {
        down()
    }
    async fn update_activity(&self, _: &Activity, _: u64) -> Result<()> {
        down()
    }
    async fn insert_event(&self, _: &Event) -> Result<()> {
        down()
    }
    async fn event(&self, _: EventId) -> Result<Option<Event>> {
        down()
    }
    async fn list_events(&self, _: PageRequest) -> Result<Page<Event>> {
        down()
    }
    async fn update_event(&self, _: &Event) -> Result<()> {
        down()
    }
    async fn event_activities(&self, _: EventId) -> Result<Vec<Activity>> {
        down()
    }
}

/// `a`'s state with its catalog replaced by one whose database is down.
fn with_catalog_down(a: &Api) -> AppState {
    let mut backends = a.state.engine.backends().clone();
    backends.catalog = Arc::new(DownCatalog);
    AppState {
        engine: Engine::new(backends, a.state.engine.config().clone()),
        ..a.state.clone()
    }
}

#[tokio::test]
async fn a_retryable_backend_failure_answers_503_over_http_without_its_text() {
    let a = api(true).await;
    let router = seckill_server::routes::app(with_catalog_down(&a), true);
    for path in ["/api/v1/products", "/api/v1/seckill/activities/1"] {
        let req = axum::http::Request::builder()
            .uri(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = tower::ServiceExt::oneshot(router.clone(), req)
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(resp.headers().contains_key("retry-after"), "{path}");
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["code"], 9002, "{path}: {body}");
        let text = body.to_string();
        for leak in ["FATAL", "administrator", "postgres"] {
            assert!(!text.contains(leak), "{path} shows {leak:?}: {text}");
        }
    }
}

#[tokio::test]
async fn a_retryable_backend_failure_answers_unavailable_over_grpc_without_its_text() {
    use pb::seckill_service_server::SeckillService;
    let a = api(true).await;
    let grpc = Grpc::new(with_catalog_down(&a));
    let e = grpc
        .get_activity(tonic::Request::new(pb::GetActivityRequest { id: 1 }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    assert_eq!(
        e.metadata().get("seckill-code").unwrap().to_str().unwrap(),
        "9002"
    );
    for leak in ["FATAL", "administrator", "postgres"] {
        assert!(!e.message().contains(leak), "{}", e.message());
    }
}

#[tokio::test]
async fn the_engine_refuses_an_invalid_activity_with_the_code_http_answers() {
    let a = api(true).await;
    let admin = a.login("admin", "admin-password").await;
    let product = a
        .call(
            "POST",
            "/api/v1/admin/products",
            Some(&admin),
            Some(json!({"name": "p", "list_price": 100})),
        )
        .await;
    let pid: i64 = product.data()["id"].as_str().unwrap().parse().unwrap();
    let now = a.state.engine.now();
    type Spoil = fn(&mut NewActivity);
    let invalid: [(&str, Value, Spoil); 5] = [
        ("title", json!(""), |n| n.title = String::new()),
        ("title", json!("a\u{0}b"), |n| n.title = "a\0b".into()),
        ("total_stock", json!(0), |n| n.total_stock = 0),
        ("per_user_limit", json!(0), |n| n.per_user_limit = 0),
        ("price", json!(-1), |n| n.price = Money(-1)),
    ];
    for (field, value, spoil) in invalid {
        let mut new = NewActivity {
            real_name: false,
            product_id: ProductId(pid),
            title: "a sale".into(),
            price: Money(100),
            total_stock: 10,
            per_user_limit: 1,
            starts_at: now,
            ends_at: now + chrono::Duration::hours(1),
            stock_buckets: 1,
            event_id: None,
            tiers: Vec::new(),
            quotas: Vec::new(),
            seats: Vec::new(),
        };
        spoil(&mut new);
        let direct = a.state.engine.create_activity(new).await.unwrap_err();
        let direct = ApiError::from(direct);
        let mut body = json!({
            "product_id": pid.to_string(), "title": "a sale", "price": 100, "total_stock": 10,
            "per_user_limit": 1, "starts_at": now, "ends_at": now + chrono::Duration::hours(1),
        });
        body[field] = value;
        let http = a
            .call(
                "POST",
                "/api/v1/admin/seckill/activities",
                Some(&admin),
                Some(body),
            )
            .await;
        assert_eq!(
            http.status,
            StatusCode::BAD_REQUEST,
            "{field}: {}",
            http.body
        );
        assert_eq!(
            direct.code,
            Code::InvalidField,
            "{field}: {}",
            direct.message
        );
        assert_eq!(http.code(), direct.code as i64, "{field}");
        assert_eq!(http.body["message"], direct.message, "{field}");
    }
}

/// Every text field of every route, each in turn carrying a NUL: `(route, answer)` pairs.
async fn nul_answers(a: &Api) -> Vec<(String, (u16, i64))> {
    let admin = a.login("admin", "admin-password").await;
    let user = a.user(&format!("nul{}", unique_id() % 1_000_000)).await;
    let activity = a.demo_activity().await;
    let bought = a.buy(&user, &activity, 1).await;
    assert_eq!(bought.status, StatusCode::ACCEPTED, "{}", bought.body);
    let order = bought.data()["order_id"].as_str().unwrap().to_string();
    a.settle_pipeline().await;
    let product = a
        .call(
            "POST",
            "/api/v1/admin/products",
            Some(&admin),
            Some(json!({"name": "p", "list_price": 1})),
        )
        .await;
    let product = product.data()["id"].as_str().unwrap().to_string();
    let now = a.state.engine.now();
    let nul = "ok\u{0}nul";
    // (method, path, who, a valid body, its text fields)
    type Route<'a> = (&'a str, String, Option<&'a str>, Value, &'a [&'a str]);
    let routes: Vec<Route> = vec![
        (
            "POST",
            "/api/v1/user/register".into(),
            None,
            json!({"username": "fresh_user", "password": "correct-horse", "phone": "+8613800138000"}),
            &["username", "password", "phone"],
        ),
        (
            "POST",
            "/api/v1/user/login".into(),
            None,
            json!({"username": "admin", "password": "admin-password"}),
            &["username", "password"],
        ),
        (
            "PUT",
            "/api/v1/user/profile".into(),
            Some(&user),
            json!({"phone": "13800138000"}),
            &["phone"],
        ),
        (
            "POST",
            "/api/v1/user/password".into(),
            Some(&user),
            json!({"old_password": "correct-horse", "new_password": "battery-staple"}),
            &["old_password", "new_password"],
        ),
        (
            "POST",
            "/api/v1/user/send-code".into(),
            None,
            json!({"phone": "13800138000"}),
            &["phone"],
        ),
        (
            "POST",
            "/api/v1/user/verify-code".into(),
            None,
            json!({"phone": "13800138000", "code": "123456"}),
            &["phone", "code"],
        ),
        (
            "POST",
            "/api/v1/admin/products".into(),
            Some(&admin),
            json!({"name": "n", "description": "d", "list_price": 1}),
            &["name", "description"],
        ),
        (
            "PUT",
            format!("/api/v1/admin/products/{product}"),
            Some(&admin),
            json!({"name": "n", "description": "d"}),
            &["name", "description"],
        ),
        (
            "POST",
            "/api/v1/admin/seckill/activities".into(),
            Some(&admin),
            json!({"product_id": product, "title": "t", "price": 1, "total_stock": 1,
                "per_user_limit": 1, "starts_at": now, "ends_at": now + chrono::Duration::hours(1)}),
            &["title"],
        ),
        (
            "PUT",
            format!("/api/v1/admin/seckill/activities/{activity}"),
            Some(&admin),
            json!({"title": "t"}),
            &["title"],
        ),
        (
            "POST",
            "/api/v1/payment/create".into(),
            Some(&user),
            json!({"order_id": order, "provider": "mock"}),
            &["provider"],
        ),
    ];
    let mut answers = Vec::new();
    for (method, path, token, valid, fields) in routes {
        for field in fields {
            let mut body = valid.clone();
            body[*field] = json!(nul);
            let r = a.call(method, &path, token, Some(body)).await;
            assert!(
                r.status.is_client_error(),
                "{method} {path} {field}: {}",
                r.body
            );
            answers.push((
                format!("{method} {path} {field}"),
                (r.status.as_u16(), r.code()),
            ));
        }
    }
    // Text in the path and the query.
    for (method, path, token) in [
        (
            "POST",
            format!("/api/v1/orders/{order}/pay?provider=ok%00nul"),
            Some(&user),
        ),
        (
            "POST",
            "/api/v1/payment/callback/ok%00nul".to_string(),
            None,
        ),
    ] {
        let r = a
            .call(method, &path, token.map(|t| t.as_str()), Some(json!({})))
            .await;
        assert!(r.status.is_client_error(), "{method} {path}: {}", r.body);
        answers.push((format!("{method} {path}"), (r.status.as_u16(), r.code())));
    }
    // The paths' ids differ per run: compare routes by shape.
    for (route, _) in &mut answers {
        *route = route
            .replace(&order, "{order}")
            .replace(&product, "{product}")
            .replace(&activity, "{activity}");
    }
    answers
}

#[tokio::test]
async fn a_nul_in_any_text_field_is_refused_before_a_backend_sees_it() {
    let memory = nul_answers(&api(true).await).await;
    for (route, (status, code)) in &memory {
        assert_ne!(*code, 0, "{route}");
        assert!((400..500).contains(status), "{route}");
    }
    let Some(pg) = service_url("SECKILL_TEST_PG_URL") else {
        return;
    };
    let schema = format!("nul{}", unique_id());
    let db =
        seckill_store::postgres::pool(&seckill_core::registry::BackendUrl::parse(&pg).unwrap())
            .unwrap();
    db.get()
        .await
        .unwrap()
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let sep = if pg.contains('?') { '&' } else { '?' };
    let url = format!("{pg}{sep}schema={schema}");
    let on_pg = api_with(true, |c| c.backends.database = url).await;
    let postgres = nul_answers(&on_pg).await;
    db.get()
        .await
        .unwrap()
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    assert_eq!(memory, postgres, "memory and PostgreSQL answer alike");
}
