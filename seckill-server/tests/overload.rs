//! Overload: CORS (a preflight, a refused origin), load shedding (a full gate refuses at once
//! with 503, code 9003 and `Retry-After`, probes still answer, the gate frees), deadlines (a
//! slow route answers 504, code 9004, at its deadline and leaves its gate) and the body limit
//! (413, code 2008).

mod support;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use seckill_core::domain::{Activity, ActivityId, Event, EventId, Product, ProductId};
use seckill_core::engine::Engine;
use seckill_core::repo::{CatalogRepo, Page, PageRequest};
use seckill_core::Result;
use seckill_server::state::AppState;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use tower::ServiceExt;

const ORIGIN: &str = "https://tickets.example.com";

/// One request through `router`, whatever its status: (status, headers, JSON body or null).
async fn send(
    router: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn cors_answers_a_preflight_from_an_allowed_origin_and_nothing_to_another() {
    let a = api_with(true, |c| {
        c.http.cors.allowed_origins = vec![ORIGIN.into()];
    })
    .await;
    let activity = a.demo_activity().await;
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri(format!("/api/v1/seckill/activities/{activity}/buy"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,idempotency-key",
            )
            .body(Body::empty())
            .unwrap()
    };
    let (status, h, _) = send(&a.router, preflight(ORIGIN)).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let headers = h["access-control-allow-headers"].to_str().unwrap();
    assert!(headers.contains("idempotency-key"), "{headers}");
    assert_eq!(h["access-control-max-age"], "600");
    assert!(
        !h.contains_key("access-control-allow-credentials"),
        "credentials are off by default"
    );

    // Another origin gets no grant: the browser refuses the call.
    let (_, h, _) = send(&a.router, preflight("https://evil.example")).await;
    assert!(!h.contains_key("access-control-allow-origin"), "{h:?}");

    // A simple request: the allowed origin may read the answer and its trace id.
    let get = |origin: &str| {
        Request::builder()
            .uri("/api/v1/seckill/activities")
            .header("origin", origin)
            .body(Body::empty())
            .unwrap()
    };
    let (status, h, _) = send(&a.router, get(ORIGIN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    assert!(h["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("x-trace-id"));
    let (_, h, _) = send(&a.router, get("https://evil.example")).await;
    assert!(!h.contains_key("access-control-allow-origin"));

    // The origins change live; an invalid list changes nothing.
    a.state
        .overload
        .set_origins(&["https://evil.example".into()])
        .unwrap();
    let (_, h, _) = send(&a.router, get("https://evil.example")).await;
    assert_eq!(h["access-control-allow-origin"], "https://evil.example");
    assert!(a.state.overload.set_origins(&["no-scheme".into()]).is_err());
    let (_, h, _) = send(&a.router, get("https://evil.example")).await;
    assert_eq!(h["access-control-allow-origin"], "https://evil.example");
}

#[tokio::test]
async fn an_invalid_cors_config_is_refused_at_start() {
    let mut cfg = seckill_server::config::Config::default();
    cfg.http.cors.allowed_origins = vec!["*".into()];
    cfg.http.cors.allow_credentials = true;
    let e = seckill_server::app::build(cfg).await.unwrap_err();
    assert!(e.to_string().contains("allow_credentials"), "{e}");
}

#[tokio::test]
async fn a_full_buy_gate_refuses_at_once_and_probes_still_answer() {
    let a = api_with(true, |c| {
        c.http.buy_concurrency = 2;
        c.http.retry_after_secs = 2;
    })
    .await;
    let token = a.user("shed-buyer").await;
    let activity = a.demo_activity().await;
    // Two buys in flight (held by the test): the gate is full.
    let gate = &a.state.overload.buy;
    let held = [gate.try_enter().unwrap(), gate.try_enter().unwrap()];
    let buy = || {
        Request::builder()
            .method("POST")
            .uri(format!("/api/v1/seckill/activities/{activity}/buy"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(json!({"quantity": 1}).to_string()))
            .unwrap()
    };
    let start = Instant::now();
    let (status, h, body) = send(&a.router, buy()).await;
    assert!(start.elapsed() < Duration::from_millis(500));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], 9003, "{body}");
    assert_eq!(h["retry-after"], "2");
    assert_eq!(body["data"]["retry_after_ms"], 2000);
    assert!(body["trace_id"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(gate.refused(), 1);
    // Nothing was reserved by the refused buy.
    let status_path = format!("/api/v1/seckill/activities/{activity}/status");
    assert_eq!(a.get(&status_path, None).await.data()["available"], 100);
    // The rest of the API and the probes are not behind the buy gate.
    assert_eq!(a.get("/health", None).await.status, StatusCode::OK);
    assert_eq!(a.get(&status_path, None).await.status, StatusCode::OK);
    // The refusal is counted where Prometheus reads it.
    let (_, metrics) = a.text("/metrics").await;
    assert!(
        metrics.contains("seckill_http_shed_total{gate=\"buy\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("seckill_http_in_flight{gate=\"buy\"} 2"));
    drop(held);
    let r = a.buy(&token, &activity, 1).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);

    // The API gate: full, it refuses other routes but never the probes.
    a.state.overload.api.set_limit(1);
    let _held = a.state.overload.api.try_enter().unwrap();
    let (status, _, body) = send(
        &a.router,
        Request::builder()
            .uri("/api/v1/products")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], 9003);
    for probe in ["/health", "/ready"] {
        assert_eq!(a.get(probe, None).await.status, StatusCode::OK, "{probe}");
    }
    assert_eq!(a.text("/metrics").await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_grpc_buy_shares_the_buy_gate() {
    use seckill_server::grpc::{pb, Grpc};
    let a = api_with(true, |c| c.http.buy_concurrency = 1).await;
    let token = a.user("grpc-shed").await;
    let activity: i64 = a.demo_activity().await.parse().unwrap();
    let _held = a.state.overload.buy.try_enter().unwrap();
    let svc = Grpc::new(a.state.clone());
    let mut req = tonic::Request::new(pb::BuyRequest {
        activity_id: activity,
        quantity: 1,
        idempotency_key: String::new(),
    });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let e = pb::seckill_service_server::SeckillService::buy(&svc, req)
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    assert_eq!(e.metadata().get("seckill-code").unwrap(), "9003");
}

/// A catalog that answers product lists only after `delay`.
#[derive(Debug)]
struct SlowCatalog {
    inner: Arc<dyn CatalogRepo>,
    delay: Duration,
}

#[async_trait]
impl CatalogRepo for SlowCatalog {
    async fn insert_product(&self, p: &Product) -> Result<()> {
        self.inner.insert_product(p).await
    }
    async fn product(&self, id: ProductId) -> Result<Option<Product>> {
        self.inner.product(id).await
    }
    async fn list_products(&self, page: PageRequest) -> Result<Page<Product>> {
        tokio::time::sleep(self.delay).await;
        self.inner.list_products(page).await
    }
    async fn update_product(&self, p: &Product) -> Result<()> {
        self.inner.update_product(p).await
    }
    async fn delete_product(&self, id: ProductId) -> Result<()> {
        self.inner.delete_product(id).await
    }
    async fn product_activities(&self, id: ProductId) -> Result<Vec<Activity>> {
        self.inner.product_activities(id).await
    }
    async fn insert_activity(&self, a: &Activity) -> Result<()> {
        self.inner.insert_activity(a).await
    }
    async fn activity(&self, id: ActivityId) -> Result<Option<Activity>> {
        self.inner.activity(id).await
    }
    async fn list_activities(&self, page: PageRequest) -> Result<Page<Activity>> {
        self.inner.list_activities(page).await
    }
    async fn update_activity(&self, a: &Activity, fence: u64) -> Result<()> {
        self.inner.update_activity(a, fence).await
    }
    async fn insert_event(&self, e: &Event) -> Result<()> {
        self.inner.insert_event(e).await
    }
    async fn event(&self, id: EventId) -> Result<Option<Event>> {
        self.inner.event(id).await
    }
    async fn list_events(&self, page: PageRequest) -> Result<Page<Event>> {
        self.inner.list_events(page).await
    }
    async fn update_event(&self, e: &Event) -> Result<()> {
        self.inner.update_event(e).await
    }
    async fn event_activities(&self, id: EventId) -> Result<Vec<Activity>> {
        self.inner.event_activities(id).await
    }
}

#[tokio::test]
async fn a_slow_route_answers_504_at_its_deadline_and_frees_its_gate() {
    let a = api_with(true, |c| {
        c.http
            .route_timeouts_ms
            .insert("/api/v1/products".into(), 100);
    })
    .await;
    let mut backends = a.state.engine.backends().clone();
    backends.catalog = Arc::new(SlowCatalog {
        inner: backends.catalog.clone(),
        delay: Duration::from_secs(5),
    });
    let state = AppState {
        engine: Engine::new(backends, a.state.engine.config().clone()),
        ..a.state.clone()
    };
    let router = seckill_server::routes::app(state.clone(), true);
    let start = Instant::now();
    let (status, _, body) = send(
        &router,
        Request::builder()
            .uri("/api/v1/products")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let took = start.elapsed();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["code"], 9004, "{body}");
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(state.overload.timed_out(), 1);
    assert_eq!(
        state.overload.api.in_flight(),
        0,
        "the dropped request left"
    );
    // Other routes keep the default deadline and answer.
    let (status, _, _) = send(
        &router,
        Request::builder()
            .uri("/api/v1/seckill/activities")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_body_over_the_limit_answers_413_with_a_code() {
    let a = api_with(true, |c| c.http.max_body_bytes = 1024).await;
    let big = json!({"username": "x".repeat(2048), "password": "correct-horse"}).to_string();
    let (status, _, body) = send(
        &a.router,
        Request::builder()
            .method("POST")
            .uri("/api/v1/user/register")
            .header("content-type", "application/json")
            .body(Body::from(big))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], 2008, "{body}");
    // Under the limit, the same route works.
    let r = a
        .call(
            "POST",
            "/api/v1/user/register",
            None,
            Some(json!({"username": "small", "password": "correct-horse"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}
