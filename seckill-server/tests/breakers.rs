//! Circuit breakers against a real Redis behind the fault proxy: when Redis stops answering,
//! buys fail fast (503) within the breaker's window instead of each waiting for the client's
//! timeout; `/ready` and `/metrics` show the open breaker; buys resume by themselves once Redis
//! answers again; and across it nothing is lost or oversold (the guarantee checker, after the
//! pipeline drains). The control: without breakers, a buy on the stalled Redis waits.

mod support;

use axum::http::StatusCode;
use seckill_chaos::proxy::{Fault, Proxy};
use seckill_core::breaker::BreakerConfig;
use seckill_core::conformance::{service_url, unique_id};
use seckill_core::domain::{ActivityId, OrderId};
use seckill_core::engine::{Pace, Role, Runner};
use seckill_core::invariants::{self, Expect};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;

/// The proxy's port (below 32768, as the machine's rules ask).
const PROXY_PORT: u16 = 18421;

fn redis_addr(url: &str) -> SocketAddr {
    let rest = url.trim_start_matches("redis://");
    let hostport = rest.split(['/', '?']).next().unwrap();
    hostport
        .parse()
        .expect("SECKILL_TEST_REDIS_URL names an ip:port")
}

/// The guarantee checker on `activity` at rest, `reserved` being what buyers were told.
async fn assert_guarantees(
    engine: &seckill_core::engine::Engine,
    activity: &str,
    reserved: Vec<OrderId>,
) {
    let violations = invariants::check(
        engine,
        ActivityId(activity.parse().unwrap()),
        &Expect {
            reserved,
            quiescent: true,
            ..Expect::default()
        },
    )
    .await
    .unwrap();
    assert!(violations.is_empty(), "{violations:#?}");
}

/// The fault proxy on `port` in front of `SECKILL_TEST_REDIS_URL` (`None`: the test skips).
async fn redis_proxy(port: u16) -> Option<Proxy> {
    let redis = service_url("SECKILL_TEST_REDIS_URL")?;
    let to = redis_addr(&redis);
    Some(
        Proxy::start(SocketAddr::from(([127, 0, 0, 1], port)), to)
            .await
            .unwrap(),
    )
}

async fn app(proxy: SocketAddr, breakers: bool) -> Api {
    app_with(proxy, breakers, |_| {}).await
}

async fn app_with(
    proxy: SocketAddr,
    breakers: bool,
    adjust: impl FnOnce(&mut seckill_server::config::Config),
) -> Api {
    let url = format!("redis://{proxy}/0?prefix=brk{}", unique_id());
    api_with(true, |c| {
        adjust(c);
        c.backends.stock = url;
        c.sale.buy_rate_per_sec = 0;
        c.limits.login_per_ip.rate = 0;
        c.breakers.enabled = breakers;
        c.breakers.stock = BreakerConfig {
            failures: 3,
            call_timeout_ms: 200,
            cool_down_ms: 500,
            ..BreakerConfig::default()
        };
    })
    .await
}

/// One buy, timed: (status, code, order id if reserved, how long it took).
async fn timed_buy(
    a: &Api,
    token: &str,
    activity: &str,
) -> (StatusCode, i64, Option<String>, Duration) {
    keyed_buy(a, token, activity, &format!("k{}", unique_id())).await
}

/// [`timed_buy`] under `Idempotency-Key: key`.
async fn keyed_buy(
    a: &Api,
    token: &str,
    activity: &str,
    key: &str,
) -> (StatusCode, i64, Option<String>, Duration) {
    let start = Instant::now();
    let path = format!("/api/v1/seckill/activities/{activity}/buy");
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"quantity":1}"#))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(a.router.clone(), req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let order = body["data"]["order_id"].as_str().map(str::to_string);
    (
        status,
        body["code"].as_i64().unwrap(),
        order,
        start.elapsed(),
    )
}

/// `GET /ready`, whatever its status: (status, body).
async fn ready(a: &Api) -> (StatusCode, serde_json::Value) {
    let req = axum::http::Request::builder()
        .uri("/ready")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(a.router.clone(), req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_stalled_redis_makes_buys_fail_fast_and_they_resume_by_themselves() {
    let Some(proxy) = redis_proxy(PROXY_PORT).await else {
        return;
    };
    let a = app(proxy.local_addr(), true).await;
    let activity = a.demo_activity().await;
    let mut tokens = Vec::new();
    for i in 0..40 {
        tokens.push(a.user(&format!("brk-{i}")).await);
    }
    let mut told = Vec::new();
    for t in &tokens[..5] {
        let (status, code, order, _) = timed_buy(&a, t, &activity).await;
        assert_eq!(status, StatusCode::ACCEPTED, "code {code}");
        told.push(order.unwrap());
    }

    // Redis stops answering: the first calls are cut at the breaker's 200 ms (not the client's
    // 2 s), then the breaker opens and every buy fails at once.
    proxy.set(Fault::Stall);
    let stalled = Instant::now();
    let mut slow = 0;
    for t in &tokens[5..25] {
        let (status, code, _, took) = timed_buy(&a, t, &activity).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "code {code}");
        assert_eq!(code, 9002);
        assert!(took < Duration::from_millis(1500), "a buy waited {took:?}");
        if took >= Duration::from_millis(50) {
            slow += 1;
        }
    }
    assert!(slow <= 3, "{slow} buys waited before the breaker opened");
    assert!(
        stalled.elapsed() < Duration::from_secs(3),
        "20 buys took {:?}",
        stalled.elapsed()
    );
    let (status, body) = ready(&a).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["data"]["breakers"]["stock"], "open", "{body}");
    let (_, metrics) = a.text("/metrics").await;
    assert!(
        metrics.contains("seckill_breaker_state{backend=\"stock\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("seckill_breaker_opened_total{backend=\"stock\"} 1"));

    // Redis answers again: after the cool-down a probe closes the breaker and buys resume,
    // with nobody restarting anything.
    proxy.set(Fault::None);
    let back = Instant::now();
    let mut i = 25;
    loop {
        let (status, _, order, _) = timed_buy(&a, &tokens[i], &activity).await;
        if status == StatusCode::ACCEPTED {
            told.push(order.unwrap());
            i += 1;
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "buys did not resume"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in &tokens[i..] {
        let (status, code, order, _) = timed_buy(&a, t, &activity).await;
        assert_eq!(status, StatusCode::ACCEPTED, "code {code}");
        told.push(order.unwrap());
    }
    let ready = a.get("/ready", None).await;
    assert_eq!(
        ready.data()["breakers"]["stock"],
        "closed",
        "{}",
        ready.body
    );

    // The pipeline drains; then nothing told reserved is lost, nothing is oversold.
    let engine = a.state.engine.clone();
    let runner = Runner::start(&engine, &[Role::Relay, Role::OrderWorker], Pace::default());
    let reserved: Vec<OrderId> = told.iter().map(|o| OrderId(o.parse().unwrap())).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in &reserved {
        while engine.backends().orders.order(*id).await.unwrap().is_none() {
            assert!(Instant::now() < deadline, "order {id} was never written");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    runner.stop().await;
    assert_guarantees(&engine, &activity, reserved).await;
    drop(proxy);
}

#[tokio::test]
async fn control_without_breakers_a_buy_on_a_stalled_redis_waits() {
    let Some(proxy) = redis_proxy(PROXY_PORT + 1).await else {
        return;
    };
    let a = app(proxy.local_addr(), false).await;
    let activity = a.demo_activity().await;
    let token = a.user("brk-control").await;
    proxy.set(Fault::Stall);
    let (status, _, _, took) = timed_buy(&a, &token, &activity).await;
    // The client's own timeout (2 s) or the buy route's deadline (3 s), whichever first.
    assert!(status.is_server_error());
    assert!(took >= Duration::from_millis(1500), "answered in {took:?}");
    assert!(a.state.breakers.0.is_empty(), "breakers are off");
    proxy.set(Fault::None);
}

/// "Never lose an order" across the buy route's deadline: Redis answers slower than the
/// deadline, so the reserve reaches Redis and is applied there, but the buyer is answered 504
/// first (the request is dropped). That hold still becomes the buyer's order once the pipeline
/// runs (it shows in their orders), a retry with the same key answers with that same order,
/// and the guarantee checker finds nothing lost, leaked or oversold.
#[tokio::test]
async fn a_buy_cut_at_its_deadline_after_reserving_still_becomes_an_order() {
    let Some(proxy) = redis_proxy(PROXY_PORT + 2).await else {
        return;
    };
    let a = app_with(proxy.local_addr(), false, |c| {
        c.http
            .route_timeouts_ms
            .insert(seckill_server::overload::BUY_ROUTE.into(), 300);
    })
    .await;
    let activity = a.demo_activity().await;
    let token = a.user("brk-deadline").await;
    proxy.set(Fault::Latency(Duration::from_millis(700)));
    let (status, code, order, took) = keyed_buy(&a, &token, &activity, "cut-1").await;
    assert_eq!(
        (status, code),
        (StatusCode::GATEWAY_TIMEOUT, 9004),
        "took {took:?}"
    );
    assert!(order.is_none());
    // The reserve was on its way to Redis: it lands there after the answer.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    proxy.set(Fault::None);

    let engine = a.state.engine.clone();
    let runner = Runner::start(&engine, &[Role::Relay, Role::OrderWorker], Pace::default());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mine = loop {
        let r = a.get("/api/v1/orders", Some(&token)).await;
        if r.data()["total"] == 1 {
            break r.data()["items"][0]["id"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the hold reserved behind the 504 never became an order: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The buyer retries with the same key: the same order, not a second one.
    let (status, code, again, _) = keyed_buy(&a, &token, &activity, "cut-1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "code {code}");
    assert_eq!(again.as_deref(), Some(mine.as_str()));
    runner.stop().await;
    assert_guarantees(&engine, &activity, vec![OrderId(mine.parse().unwrap())]).await;
    drop(proxy);
}
