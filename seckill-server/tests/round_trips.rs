//! Backend round trips on the buy's hot path (issue 17): with every Redis-backed backend on a
//! Redis of the test's own, `MONITOR` counts the commands the server sends (a script's own
//! commands not counted, only its call). A successful buy (with the per-buyer and per-IP rate limits on, with and
//! without an idempotency key) sends one: the batched reserve, which carries the limits, the
//! stock, the hold, the outbox entry and the key. A refused buy of a sold-out activity sends
//! none. Background work (the revocation feed's poll) is measured over as long with no buys
//! and subtracted.
//!
//! The negative control runs the same count with the token check going to the session store
//! itself (no revocation cache): two commands per buy, which the check refuses.

mod support;

use seckill_chaos::redis::RedisServer;
use seckill_core::conformance::service_url;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

const PORT: u16 = 18440;
const BUYS: usize = 200;

fn total(calls: &BTreeMap<String, u64>) -> f64 {
    calls.values().sum::<u64>() as f64
}

/// Commands per buy of `buys` (run by `buy`), less the background sent over as long.
async fn per_buy<F: std::future::Future<Output = ()>>(
    redis: &RedisServer,
    buys: usize,
    mut buy: impl FnMut(usize) -> F,
) -> (f64, String) {
    let monitor = redis.monitor().unwrap();
    let started = Instant::now();
    for i in 0..buys {
        buy(i).await;
    }
    let took = started.elapsed();
    let during = monitor.window().unwrap();
    let idle_for = took.max(Duration::from_millis(500));
    tokio::time::sleep(idle_for).await;
    let idle = monitor.window().unwrap();
    let idle_share = total(&idle) * took.as_secs_f64() / idle_for.as_secs_f64();
    (
        (total(&during) - idle_share) / buys as f64,
        format!("{buys} buys in {took:?} sent {during:?}; idle for {idle_for:?}: {idle:?}"),
    )
}

/// An app whose Redis-backed backends all live on `redis`, rate limits on (high enough not to
/// refuse), and an activity of `BUYS` units that one buyer may buy all of.
async fn app_on(redis: &RedisServer) -> (Api, String, String) {
    let url = format!(
        "{}?prefix=rt{}",
        redis.url(),
        seckill_core::conformance::unique_id()
    );
    let a = api_with(false, |c| {
        for b in [
            &mut c.backends.stock,
            &mut c.backends.sessions,
            &mut c.backends.rate_limit,
            &mut c.backends.idempotency,
            &mut c.backends.lock,
            &mut c.backends.delay,
            &mut c.backends.settings,
        ] {
            *b = url.clone();
        }
        c.roles = "api".into();
        c.sale.buy_rate_per_sec = 1_000_000;
        c.sale.buy_burst = 1_000_000;
        c.limits.buy_per_ip.rate = 1_000_000;
        c.limits.buy_per_ip.burst = 1_000_000;
        c.limits.login_per_ip.rate = 0;
    })
    .await;
    let admin = a.login("admin", "admin-password").await;
    let buyer = a.user("one-round-trip").await;
    let product = a.product(&admin).await;
    let activity = a
        .live_activity_limited(&admin, &product, BUYS as u32, BUYS as u32)
        .await;
    (a, buyer, activity)
}

async fn buy(a: &Api, token: &str, activity: &str, key: Option<String>) -> Resp {
    let headers: Vec<(&str, String)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(h, v)| (*h, v.as_str())).collect();
    a.raw(
        "POST",
        &format!("/api/v1/seckill/activities/{activity}/buy"),
        Some(token),
        Some(json!({"quantity": 1}).to_string()),
        &headers,
    )
    .await
}

#[tokio::test]
async fn a_buy_waits_for_one_redis_command_and_a_sold_out_refusal_for_none() {
    if service_url("SECKILL_TEST_REDIS_URL").is_none() {
        return;
    }
    let redis = RedisServer::start(PORT, &[]).unwrap();
    let (a, buyer, activity) = app_on(&redis).await;

    let (success, detail) = per_buy(&redis, BUYS, |i| {
        let (a, buyer, activity) = (&a, &buyer, &activity);
        async move {
            let key = (i % 2 == 0).then(|| format!("rt-key-{i}"));
            let r = buy(a, buyer, activity, key).await;
            assert_eq!(r.status.as_u16(), 202, "buy {i}: {}", r.body);
        }
    })
    .await;
    println!("success path: {success:.3} commands per buy ({detail})");
    assert!(
        (0.9..=1.15).contains(&success),
        "a successful buy must wait for exactly one Redis command, saw {success:.3}: {detail}"
    );

    let late = a.user("too-late").await;
    let (sold_out, detail) = per_buy(&redis, BUYS, |i| {
        let (a, buyer, activity) = (&a, &late, &activity);
        async move {
            let r = buy(a, buyer, activity, None).await;
            assert_eq!(r.code(), 3004, "refusal {i}: {}", r.body);
        }
    })
    .await;
    println!("sold-out path: {sold_out:.3} commands per buy ({detail})");
    // The first refusal finds the activity sold out in the reserve and announces it (two
    // commands); every later one is answered from the flag.
    assert!(
        sold_out <= 0.05,
        "a sold-out refusal must send no Redis command, saw {sold_out:.3}: {detail}"
    );
}

/// The negative control: with the token check on the session store itself (no revocation
/// cache), a buy sends two commands, and the bound above refuses it.
#[tokio::test]
async fn the_count_sees_a_second_command_per_buy() {
    if service_url("SECKILL_TEST_REDIS_URL").is_none() {
        return;
    }
    let redis = RedisServer::start(PORT + 1, &[]).unwrap();
    let (a, buyer, activity) = app_on(&redis).await;
    let url =
        seckill_core::registry::BackendUrl::parse(&format!("{}?prefix=rt-control", redis.url()))
            .unwrap();
    let mut backends = a.state.engine.backends().clone();
    backends.sessions = Arc::new(seckill_store::redis::RedisSessionStore::new(
        seckill_store::redis::connect(&url).await.unwrap(),
    ));
    let b = a.with_backends(backends);
    let (success, detail) = per_buy(&redis, BUYS / 2, |i| {
        let (b, buyer, activity) = (&b, &buyer, &activity);
        async move {
            let r = buy(b, buyer, activity, None).await;
            assert_eq!(r.status.as_u16(), 202, "buy {i}: {}", r.body);
        }
    })
    .await;
    println!("control: {success:.3} commands per buy ({detail})");
    assert!(
        success >= 1.8,
        "the control's second command per buy went unseen: {success:.3}: {detail}"
    );
}
