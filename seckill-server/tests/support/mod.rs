//! The HTTP API in process, for the server's end-to-end tests.
#![allow(dead_code)] // each test binary uses its own part

pub mod process;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use seckill_server::app::{build, Server};
use seckill_server::config::{Config, Secret};
use seckill_server::routes::app;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

/// A notifier that keeps every code sent, for tests to read.
#[derive(Debug, Default)]
pub struct Codes(Mutex<Vec<(String, String)>>);

#[async_trait::async_trait]
impl seckill_core::Notifier for Codes {
    async fn send_code(&self, phone: &str, code: &str, _: Duration) -> seckill_core::Result<()> {
        self.0.lock().unwrap().push((phone.into(), code.into()));
        Ok(())
    }
}

impl Codes {
    /// The last code sent to `phone`.
    pub fn last(&self, phone: &str) -> Option<String> {
        let sent = self.0.lock().unwrap();
        sent.iter()
            .rev()
            .find(|(p, _)| p == phone)
            .map(|(_, c)| c.clone())
    }
}

/// The app in process, with its server (for its engine).
pub struct Api {
    pub router: axum::Router,
    /// The app's state (engine, tokens, mock provider).
    pub state: seckill_server::state::AppState,
    /// The built server, until a test takes it to serve it.
    pub server: Option<Server>,
    /// Every verification code sent.
    pub codes: Arc<Codes>,
}

/// An answer: status and JSON body.
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> i64 {
        self.body["code"].as_i64().unwrap()
    }
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
}

/// The app on memory backends, seeded (with the demo sale if `demo`).
pub async fn api(demo: bool) -> Api {
    api_with(demo, |_| {}).await
}

/// [`api`] with the config adjusted by `adjust` and every verification code captured.
pub async fn api_with(demo: bool, adjust: impl FnOnce(&mut Config)) -> Api {
    let mut cfg = Config {
        demo,
        ..Config::default()
    };
    cfg.admin.password = Some(Secret("admin-password".into()));
    cfg.auth.jwt_secret = Some(Secret("test-secret".into()));
    adjust(&mut cfg);
    let mut server = build(cfg).await.unwrap();
    let codes = Arc::new(Codes::default());
    server.state.notifier = codes.clone();
    server.seed().await.unwrap();
    Api {
        router: app(server.state.clone(), true),
        state: server.state.clone(),
        server: Some(server),
        codes,
    }
}

impl Api {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.raw(method, path, token, body.map(|b| b.to_string()), &[])
            .await
    }

    /// `GET path` as text (for non-JSON answers).
    pub async fn text(&self, path: &str) -> (StatusCode, String) {
        let req = Request::builder().uri(path).body(Body::empty()).unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `GET path` with an optional token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call("GET", path, token, None).await
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(
            !status.is_server_error(),
            "{method} {path} answered {status}: {body}"
        );
        if body != Value::Null {
            assert!(
                body["trace_id"].as_str().is_some_and(|t| !t.is_empty()),
                "{body}"
            );
        }
        Resp { status, body }
    }

    pub async fn user(&self, name: &str) -> String {
        let r = self
            .call(
                "POST",
                "/api/v1/user/register",
                None,
                Some(json!({"username": name, "password": "correct-horse"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        self.login(name, "correct-horse").await
    }

    pub async fn login(&self, name: &str, pw: &str) -> String {
        let r = self
            .call(
                "POST",
                "/api/v1/user/login",
                None,
                Some(json!({"username": name, "password": pw})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.data()["token"].as_str().unwrap().to_string()
    }

    pub async fn demo_activity(&self) -> String {
        let r = self
            .call("GET", "/api/v1/seckill/activities", None, None)
            .await;
        r.data()["items"][0]["id"].as_str().unwrap().to_string()
    }

    pub async fn buy(&self, token: &str, activity: &str, qty: i64) -> Resp {
        self.call(
            "POST",
            &format!("/api/v1/seckill/activities/{activity}/buy"),
            Some(token),
            Some(json!({"quantity": qty})),
        )
        .await
    }

    /// The same app on an engine over `backends` (one of this app's, changed), sharing its
    /// state otherwise; no server process behind it.
    pub fn with_backends(&self, backends: seckill_core::engine::Backends) -> Api {
        let state = seckill_server::state::AppState {
            engine: seckill_core::engine::Engine::new(backends, self.state.engine.config().clone()),
            ..self.state.clone()
        };
        Api {
            router: app(state.clone(), true),
            state,
            server: None,
            codes: self.codes.clone(),
        }
    }

    /// Creates a product; its id.
    pub async fn product(&self, admin: &str) -> String {
        let p = self
            .call(
                "POST",
                "/api/v1/admin/products",
                Some(admin),
                Some(json!({"name": "Jay Chou, stand", "list_price": 68000})),
            )
            .await;
        assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
        p.data()["id"].as_str().unwrap().to_string()
    }

    /// Creates an activity of `product` on sale now (`total` units, 2 per user) and warms it
    /// up; its id.
    pub async fn live_activity(&self, admin: &str, product: &str, total: u32) -> String {
        self.live_activity_limited(admin, product, total, 2).await
    }

    /// [`live_activity`](Self::live_activity) with `per_user_limit` units per user.
    pub async fn live_activity_limited(
        &self,
        admin: &str,
        product: &str,
        total: u32,
        per_user_limit: u32,
    ) -> String {
        self.create_warm(admin, activity_body(product, total, per_user_limit, 1))
            .await
    }

    /// Creates the activity `body` describes and warms it up; its id.
    pub async fn create_warm(&self, admin: &str, body: Value) -> String {
        let r = self
            .call(
                "POST",
                "/api/v1/admin/seckill/activities",
                Some(admin),
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let id = r.data()["id"].as_str().unwrap().to_string();
        let w = self
            .call(
                "POST",
                &format!("/api/v1/admin/seckill/warmup/{id}"),
                Some(admin),
                None,
            )
            .await;
        assert_eq!(w.status, StatusCode::OK, "{}", w.body);
        id
    }

    /// The stored payment whose id an answer carries (`payment_id`, a string).
    pub async fn payment_record(&self, payment_id: &Value) -> seckill_core::domain::Payment {
        let id = payment_id.as_str().expect("a payment id").parse().unwrap();
        self.state
            .engine
            .backends()
            .payments
            .payment(seckill_core::domain::PaymentId(id))
            .await
            .unwrap()
            .expect("the payment is stored")
    }

    /// Runs relay and order worker until the order is written.
    pub async fn settle_pipeline(&self) {
        let e = &self.state.engine;
        let mut w = e.order_worker().await.unwrap();
        while e.relay_once().await.unwrap() > 0 {}
        while w
            .run_once(std::time::Duration::from_millis(10))
            .await
            .unwrap()
            > 0
        {}
    }
}

/// The body of `POST /api/v1/admin/seckill/activities`: `product` on sale from a minute ago for
/// an hour, `total` units, `per_user_limit` each, in `stock_buckets` buckets.
pub fn activity_body(product: &str, total: u32, per_user_limit: u32, stock_buckets: u32) -> Value {
    let now = chrono::Utc::now();
    json!({"product_id": product, "title": "flash", "price": 38000,
        "total_stock": total, "per_user_limit": per_user_limit, "stock_buckets": stock_buckets,
        "starts_at": now - chrono::Duration::minutes(1),
        "ends_at": now + chrono::Duration::hours(1)})
}
