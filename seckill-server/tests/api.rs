//! The HTTP API end to end, in process: the README walkthrough, admin flows, and every bad
//! input answering a 4xx envelope with a code (never a 5xx).

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use support::*;
use tower::ServiceExt;

#[tokio::test]
async fn the_readme_walkthrough() {
    let a = api(true).await;
    let alice = a.user("alice").await;
    let act = a.demo_activity().await;
    let status = a
        .call(
            "GET",
            &format!("/api/v1/seckill/activities/{act}/status"),
            None,
            None,
        )
        .await;
    assert_eq!(status.data()["status"], "live");
    assert_eq!(status.data()["available"], 100);

    let r = a.buy(&alice, &act, 1).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let order = r.data()["order_id"].as_str().unwrap().to_string();
    a.settle_pipeline().await;

    let o = a
        .call(
            "GET",
            &format!("/api/v1/orders/{order}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(o.data()["status"], "pending_payment");
    assert_eq!(o.data()["amount"], 128_000);
    let mine = a.call("GET", "/api/v1/orders", Some(&alice), None).await;
    assert_eq!(mine.data()["total"], 1);

    let pay = a
        .call(
            "POST",
            &format!("/api/v1/orders/{order}/pay"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(pay.status, StatusCode::CREATED, "{}", pay.body);
    let pay_url = pay.data()["pay_url"].as_str().unwrap().to_string();
    let done = a.call("POST", &pay_url, Some(&alice), None).await;
    assert_eq!(done.data()["result"], "paid", "{}", done.body);

    let o = a
        .call(
            "GET",
            &format!("/api/v1/orders/{order}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(o.data()["status"], "paid");
    let pid = pay.data()["payment_id"].as_str().unwrap();
    let p = a
        .call(
            "GET",
            &format!("/api/v1/payment/{pid}/status"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(p.data()["status"], "succeeded");
}

#[tokio::test]
async fn signed_callbacks_are_verified_and_deduplicated() {
    let a = api(true).await;
    let alice = a.user("alice").await;
    let act = a.demo_activity().await;
    let order = a.buy(&alice, &act, 1).await.data()["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    a.settle_pipeline().await;
    let pay = a
        .call(
            "POST",
            "/api/v1/payment/create",
            Some(&alice),
            Some(json!({"order_id": order})),
        )
        .await;
    let payment = a.payment_record(&pay.data()["payment_id"]).await;
    let cb = a.state.mock.as_ref().unwrap().pay(&payment);
    let body = String::from_utf8(cb.body.clone()).unwrap();
    let sig = cb.headers["x-mock-signature"].clone();
    for _ in 0..2 {
        let r = a
            .raw(
                "POST",
                "/api/v1/payment/callback/mock",
                None,
                Some(body.clone()),
                &[("x-mock-signature", &sig)],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["result"], "paid");
    }
    let forged = body.replace("128000", "1");
    let r = a
        .raw(
            "POST",
            "/api/v1/payment/callback/mock",
            None,
            Some(forged),
            &[("x-mock-signature", &sig)],
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, 5002));
    let r = a
        .raw(
            "POST",
            "/api/v1/payment/callback/wechat",
            None,
            Some(body),
            &[("x-mock-signature", &sig)],
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, 5005));
    // Each callback is counted by provider and outcome (what the dashboard and the
    // verification alert read).
    let m = a.state.engine.metrics();
    let counted = |p: &str, o: &'static str| m.callbacks_counted(p, o);
    assert_eq!(counted("mock", "accepted"), 1);
    assert_eq!(counted("mock", "duplicate"), 1);
    assert_eq!(counted("mock", "invalid_signature"), 1);
}

#[tokio::test]
async fn cancel_returns_the_unit_and_others_cannot_touch_my_order() {
    let a = api(true).await;
    let alice = a.user("alice").await;
    let bob = a.user("bob").await;
    let act = a.demo_activity().await;
    let order = a.buy(&alice, &act, 2).await.data()["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    a.settle_pipeline().await;
    for (m, p) in [
        ("GET", format!("/api/v1/orders/{order}")),
        ("POST", format!("/api/v1/orders/{order}/cancel")),
        ("POST", format!("/api/v1/orders/{order}/pay")),
    ] {
        let r = a.call(m, &p, Some(&bob), None).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, 4001),
            "{m} {p}"
        );
    }
    let r = a
        .call(
            "POST",
            &format!("/api/v1/orders/{order}/cancel"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.data()["status"], "cancelled");
    let again = a
        .call(
            "POST",
            &format!("/api/v1/orders/{order}/pay"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, 4002));
    let st = a
        .call(
            "GET",
            &format!("/api/v1/seckill/activities/{act}"),
            None,
            None,
        )
        .await;
    assert_eq!(st.data()["available"], 100);
    // Her quota came back too.
    assert_eq!(a.buy(&alice, &act, 2).await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn admin_creates_warms_up_and_the_window_is_enforced() {
    let a = api(false).await;
    let admin = a.login("admin", "admin-password").await;
    let alice = a.user("alice").await;
    let p = a
        .call(
            "POST",
            "/api/v1/admin/products",
            Some(&admin),
            Some(json!({"name": "Mayday 2030, floor", "list_price": 98000})),
        )
        .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    let pid = p.data()["id"].as_str().unwrap().to_string();
    let now = chrono::Utc::now();
    let mk = |start: chrono::DateTime<chrono::Utc>, end: chrono::DateTime<chrono::Utc>| {
        json!({"product_id": pid, "title": "t", "price": 50000, "total_stock": 2, "per_user_limit": 1,
               "starts_at": start, "ends_at": end})
    };
    let future = a
        .call(
            "POST",
            "/api/v1/admin/seckill/activities",
            Some(&admin),
            Some(mk(
                now + chrono::Duration::hours(1),
                now + chrono::Duration::hours(2),
            )),
        )
        .await;
    let past = a
        .call(
            "POST",
            "/api/v1/admin/seckill/activities",
            Some(&admin),
            Some(mk(
                now - chrono::Duration::hours(2),
                now - chrono::Duration::hours(1),
            )),
        )
        .await;
    let live = a
        .call(
            "POST",
            "/api/v1/admin/seckill/activities",
            Some(&admin),
            Some(mk(
                now - chrono::Duration::minutes(1),
                now + chrono::Duration::hours(1),
            )),
        )
        .await;
    let [future, past, live] = [future, past, live].map(|r| {
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.data()["id"].as_str().unwrap().to_string()
    });
    // Not warmed up yet.
    let r = a.buy(&alice, &live, 1).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, 3008));
    for id in [&future, &past, &live] {
        let w = a
            .call(
                "POST",
                &format!("/api/v1/admin/seckill/warmup/{id}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(w.status, StatusCode::OK, "{}", w.body);
    }
    let r = a.buy(&alice, &future, 1).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, 3002));
    let r = a.buy(&alice, &past, 1).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, 3003));
    assert_eq!(a.buy(&alice, &live, 1).await.status, StatusCode::ACCEPTED);
    let bob = a.user("bob").await;
    assert_eq!(a.buy(&bob, &live, 1).await.status, StatusCode::ACCEPTED);
    let carol = a.user("carol").await;
    let r = a.buy(&carol, &live, 1).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, 3004));
    a.settle_pipeline().await;
    let rec = a
        .call(
            "POST",
            &format!("/api/v1/admin/seckill/activities/{live}/reconcile"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(rec.data()["consistent"], true, "{}", rec.body);
    // Validation of admin input.
    let bad = a
        .call(
            "POST",
            "/api/v1/admin/seckill/activities",
            Some(&admin),
            Some(mk(now, now - chrono::Duration::hours(1))),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, 2002));
    let r = a
        .call(
            "POST",
            "/api/v1/admin/seckill/warmup/42",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, 3001));
    let r = a
        .call(
            "POST",
            "/api/v1/admin/products",
            Some(&alice),
            Some(json!({"name": "x", "list_price": 1})),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, 1002));
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_code() {
    let a = api(true).await;
    let alice = a.user("alice").await;
    let act = a.demo_activity().await;
    let buy = format!("/api/v1/seckill/activities/{act}/buy");
    // (method, path, token, body, expected status, expected code)
    type Case<'a> = (
        &'a str,
        String,
        Option<&'a str>,
        Option<String>,
        StatusCode,
        i64,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            buy.clone(),
            Some(&alice),
            Some("{\"quantity\":".into()),
            StatusCode::BAD_REQUEST,
            2001,
        ),
        (
            "POST",
            buy.clone(),
            Some(&alice),
            Some("{\"quantity\":1,\"price\":1}".into()),
            StatusCode::BAD_REQUEST,
            2001,
        ),
        (
            "POST",
            buy.clone(),
            Some(&alice),
            Some("{\"quantity\":0}".into()),
            StatusCode::BAD_REQUEST,
            2002,
        ),
        (
            "POST",
            buy.clone(),
            Some(&alice),
            Some("{\"quantity\":-3}".into()),
            StatusCode::BAD_REQUEST,
            2001,
        ),
        (
            "POST",
            buy.clone(),
            Some(&alice),
            Some("{\"quantity\":3}".into()),
            StatusCode::CONFLICT,
            3006,
        ),
        (
            "POST",
            buy.clone(),
            None,
            Some("{\"quantity\":1}".into()),
            StatusCode::UNAUTHORIZED,
            1001,
        ),
        (
            "POST",
            buy.clone(),
            Some("not-a-jwt"),
            Some("{\"quantity\":1}".into()),
            StatusCode::UNAUTHORIZED,
            1001,
        ),
        (
            "POST",
            "/api/v1/seckill/activities/1/buy".into(),
            Some(&alice),
            Some("{}".into()),
            StatusCode::NOT_FOUND,
            3001,
        ),
        (
            "POST",
            "/api/v1/seckill/activities/x/buy".into(),
            Some(&alice),
            Some("{}".into()),
            StatusCode::BAD_REQUEST,
            2003,
        ),
        (
            "GET",
            "/api/v1/seckill/activities/99".into(),
            None,
            None,
            StatusCode::NOT_FOUND,
            3001,
        ),
        (
            "GET",
            "/api/v1/seckill/activities?page_size=1000".into(),
            None,
            None,
            StatusCode::BAD_REQUEST,
            2003,
        ),
        (
            "GET",
            "/api/v1/orders?status=bogus".into(),
            Some(&alice),
            None,
            StatusCode::BAD_REQUEST,
            2003,
        ),
        (
            "GET",
            "/api/v1/nothing".into(),
            None,
            None,
            StatusCode::NOT_FOUND,
            2004,
        ),
        (
            "GET",
            "/api/v1/user/profile".into(),
            None,
            None,
            StatusCode::UNAUTHORIZED,
            1001,
        ),
        (
            "POST",
            "/api/v1/user/register".into(),
            None,
            Some("{\"username\":\"a b\",\"password\":\"long-enough\"}".into()),
            StatusCode::BAD_REQUEST,
            2002,
        ),
        (
            "POST",
            "/api/v1/user/login".into(),
            None,
            Some("{\"username\":\"alice\",\"password\":\"nope-nope\"}".into()),
            StatusCode::UNAUTHORIZED,
            1003,
        ),
        (
            "POST",
            "/api/v1/user/login".into(),
            None,
            Some("{\"username\":\"ghost\",\"password\":\"nope-nope\"}".into()),
            StatusCode::UNAUTHORIZED,
            1003,
        ),
    ];
    for (m, path, tok, body, status, code) in cases {
        let r = a.raw(m, &path, tok, body.clone(), &[]).await;
        assert_eq!(
            (r.status, r.code()),
            (status, code),
            "{m} {path} {body:?}: {}",
            r.body
        );
    }
    // An idempotency key replays the same order, and refuses another request.
    let with_key = |q: u32| {
        (
            Some(format!("{{\"quantity\":{q}}}")),
            [("idempotency-key", "k-1")],
        )
    };
    let (body, h) = with_key(1);
    let first = a.raw("POST", &buy, Some(&alice), body.clone(), &h).await;
    let again = a.raw("POST", &buy, Some(&alice), body, &h).await;
    assert_eq!(first.data()["order_id"], again.data()["order_id"]);
    assert_eq!(again.data()["replayed"], true);
    let (body, h) = with_key(2);
    let other = a.raw("POST", &buy, Some(&alice), body, &h).await;
    assert_eq!(
        (other.status, other.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, 2005)
    );
    // An expired token (signed with the right key).
    let tokens = &a.state.tokens;
    let old = chrono::Utc::now().timestamp() - 48 * 3600;
    let (expired, _) = tokens
        .issue(
            seckill_core::domain::UserId(1),
            seckill_core::domain::Role::User,
            0,
            old,
        )
        .unwrap();
    let r = a.buy(&expired, &act, 1).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, 1001));
    assert_eq!(r.body["message"], "token expired");
}

#[tokio::test]
async fn ops_routes_answer() {
    let a = api(true).await;
    assert_eq!(
        a.call("GET", "/health", None, None).await.status,
        StatusCode::OK
    );
    let r = a.call("GET", "/ready", None, None).await;
    assert_eq!(r.data()["ready"], true);
    let scrape = |accept: Option<&'static str>| {
        let router = a.router.clone();
        async move {
            let mut req = Request::get("/metrics");
            if let Some(v) = accept {
                req = req.header("accept", v);
            }
            let resp = router
                .oneshot(req.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (kind, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    // Prometheus asks for OpenMetrics.
    let (kind, text) = scrape(Some(
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    ))
    .await;
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    for name in [
        "seckill_request_total",
        "seckill_success_total",
        "seckill_fail_reason{reason=\"sold_out\"} 0",
        "order_create_duration_seconds_bucket",
        "seckill_buy_duration_seconds_bucket",
        "seckill_consumer_lag{topic=",
        "seckill_reconcile_findings{kind=\"unbalanced\"} 0",
        "http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "seckill_build_info{version=",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    assert!(
        text.ends_with("# EOF\n"),
        "the exposition ends with its EOF marker"
    );
    // Anything else (curl, promtool) gets the text format 0.0.4: the same samples, counter
    // families under their samples' names, no UNIT or EOF lines.
    let (kind, plain) = scrape(None).await;
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    assert!(
        plain.contains("# TYPE seckill_request_total counter\n"),
        "{plain}"
    );
    assert!(
        plain.contains("# TYPE seckill_fail_reason untyped\n"),
        "{plain}"
    );
    assert!(
        !plain.contains("# EOF") && !plain.contains("# UNIT"),
        "{plain}"
    );
    let seckill = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("seckill_"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        seckill(&plain),
        seckill(&text),
        "the same samples in both formats"
    );
}

#[tokio::test]
async fn the_server_serves_and_shuts_down_gracefully() {
    let mut a = api(true).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(a.server.take().unwrap().serve(listener, async {
        let _ = rx.await;
    }));
    // A raw HTTP/1.1 request over TCP.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    assert!(buf.starts_with("HTTP/1.1 200"), "{buf}");
    tx.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
