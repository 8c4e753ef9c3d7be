//! Read replicas on a real streaming replica: the test starts a PostgreSQL primary of its own
//! and a replica made from it with `pg_basebackup` (ports `SECKILL_TEST_PG_PAIR_PORT` and the
//! next one), and two servers on them: A tolerates a minute of lag, B 300 ms.
//!
//! - List and detail queries are served by the replica: while its replay is paused, A still
//!   answers them from the replica (a product created a moment ago is not there yet).
//! - Writes, and what reads its own write, stay on the primary while the replica lags: the
//!   product is updated, an activity on it is warmed up, bought and its order written.
//! - Past its bound the replica stops serving: B's reads go to the primary (the new product
//!   and the order are there), and B stays ready.
//! - Once it replays again the replica serves again; when it dies, reads go to the primary at
//!   once, with no error.

mod support;

use axum::http::StatusCode;
use seckill_chaos::postgres::PgPair;
use seckill_core::conformance::{service_url, unique_id};
use seckill_core::registry::BackendUrl;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::*;

async fn sql(url: &str, q: &str) {
    let pool = seckill_store::postgres::pool(&BackendUrl::parse(url).unwrap()).unwrap();
    pool.get().await.unwrap().batch_execute(q).await.unwrap();
}

async fn server(primary: &str, replica: &str, max_lag_ms: u64) -> Api {
    let (primary, replica) = (primary.to_string(), replica.to_string());
    api_with(false, move |c| {
        c.backends.database = primary;
        c.backends.database_read = vec![format!("{replica}&max_lag_ms={max_lag_ms}")];
        c.limits.login_per_ip.rate = 0;
        c.sale.buy_rate_per_sec = 0;
    })
    .await
}

/// The replica's entry in `/ready`.
async fn replica_state(a: &Api) -> Value {
    let (status, body) = a.text("/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["data"]["replicas"][0].clone()
}

/// Waits until the replica of `a` serves (or stops serving) reads.
async fn until_serving(a: &Api, serving: bool, within: Duration) -> Value {
    let until = Instant::now() + within;
    loop {
        let st = replica_state(a).await;
        if st["healthy"] == serving {
            return st;
        }
        assert!(
            Instant::now() < until,
            "the replica did not {} serving within {within:?}: {st}",
            if serving { "start" } else { "stop" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_replica_within_its_lag_bound_and_writes_to_the_primary() {
    let Some(port) = service_url("SECKILL_TEST_PG_PAIR_PORT") else {
        return;
    };
    let port: u16 = port.parse().expect("SECKILL_TEST_PG_PAIR_PORT is a port");
    let mut pair = PgPair::start(port)
        .await
        .expect("primary and replica start");
    let schema = format!("rr{}", unique_id());
    sql(&pair.primary_url(), &format!("CREATE SCHEMA {schema}")).await;
    let primary = format!("{}?schema={schema}", pair.primary_url());
    let replica = format!("{}?schema={schema}", pair.replica_url());
    let a = server(&primary, &replica, 60_000).await;
    let b = server(&primary, &replica, 300).await;
    until_serving(&a, true, Duration::from_secs(10)).await;
    until_serving(&b, true, Duration::from_secs(10)).await;

    let admin = a.login("admin", "admin-password").await;
    let create = |name: &'static str| {
        let admin = admin.clone();
        let a = &a;
        async move {
            let r = a
                .call(
                    "POST",
                    "/api/v1/admin/products",
                    Some(&admin),
                    Some(json!({"name": name, "list_price": 68000})),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.data()["id"].as_str().unwrap().to_string()
        }
    };
    // Replicated within moments, and read from the replica.
    let p1 = create("stand").await;
    let until = Instant::now() + Duration::from_secs(10);
    while a.get(&format!("/api/v1/products/{p1}"), None).await.status != StatusCode::OK {
        assert!(
            Instant::now() < until,
            "the product never reached the replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let served = replica_state(&a).await["reads"].as_u64().unwrap();
    assert!(served > 0, "no read went to the replica");

    // The replica stops replaying: it lags from the next write on.
    sql(&replica, "SELECT pg_wal_replay_pause()").await;
    let p2 = create("floor").await;
    // A query served while the replica lags: A (in bound) answers from the replica, where the
    // new product is not yet.
    let r = a.get(&format!("/api/v1/products/{p2}"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(r.code(), 6001);
    let list = a.get("/api/v1/products?page_size=100", None).await;
    assert_eq!(list.data()["total"], 1, "{}", list.body);
    assert!(replica_state(&a).await["reads"].as_u64().unwrap() > served);

    // Writes and what reads its own write stay on the primary meanwhile.
    let r = a
        .call(
            "PUT",
            &format!("/api/v1/admin/products/{p2}"),
            Some(&admin),
            Some(json!({"name": "floor, front"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["name"], "floor, front");
    let act = a.live_activity(&admin, &p2, 5).await;
    let alice = a.user("alice").await;
    let r = a.buy(&alice, &act, 2).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let order = r.data()["order_id"].as_str().unwrap().to_string();
    a.settle_pipeline().await;
    let written = a
        .state
        .engine
        .backends()
        .orders
        .order(order.parse().unwrap())
        .await
        .unwrap();
    assert!(written.is_some(), "the order was written on the primary");
    // A, in bound, still reads from the replica: the order is on its way (404, 4001).
    let r = a
        .get(&format!("/api/v1/orders/{order}"), Some(&alice))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, 4001),
        "{}",
        r.body
    );

    // B's bound (300 ms) passes: B reads from the primary, and stays ready.
    let st = until_serving(&b, false, Duration::from_secs(5)).await;
    assert!(st["lag_ms"].as_u64().is_some_and(|l| l > 300), "{st}");
    let r = b.get(&format!("/api/v1/products/{p2}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["name"], "floor, front");
    let alice_b = b.login("alice", "correct-horse").await;
    let r = b
        .get(&format!("/api/v1/orders/{order}"), Some(&alice_b))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (_, metrics) = b.text("/metrics").await;
    assert!(
        metrics.contains("seckill_db_replica_serving{replica=")
            && metrics.contains("seckill_db_replica_reads_total{target=\"primary\"}"),
        "{metrics}"
    );

    // Replaying again: the replica catches up and serves again, everything in it.
    sql(&replica, "SELECT pg_wal_replay_resume()").await;
    until_serving(&b, true, Duration::from_secs(10)).await;
    let before = replica_state(&a).await["reads"].as_u64().unwrap();
    let r = a
        .get(&format!("/api/v1/orders/{order}"), Some(&alice))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = a.get(&format!("/api/v1/products/{p2}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(replica_state(&a).await["reads"].as_u64().unwrap() >= before + 2);

    // The replica dies: reads go to the primary at once, without an error.
    pair.kill_replica().await;
    for _ in 0..3 {
        let r = a.get(&format!("/api/v1/products/{p2}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = a.get("/api/v1/orders", Some(&alice)).await;
        assert_eq!(r.data()["total"], 1, "{}", r.body);
    }
    until_serving(&a, false, Duration::from_secs(5)).await;
    drop((a, b));
    drop(pair);
}
