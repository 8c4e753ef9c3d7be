//! Roles on many machines: two `api` processes and one worker process (relay, order worker,
//! timeout worker, reconciler) of the real binary, sharing Redis (stock, delay, locks, limits,
//! idempotency, sessions), PostgreSQL and a Redis Streams broker. A sale runs through both APIs
//! at once; the guarantees are checked from the data: nothing oversold, nobody above the
//! limit, every reserved unit became exactly one order, the reconciler agrees. Needs
//! `SECKILL_TEST_REDIS_URL` and `SECKILL_TEST_PG_URL`.

mod support;

use seckill_core::conformance::service_url;
use serde_json::json;
use std::time::{Duration, Instant};
use support::process::{call, data, start, SharedBackends};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_through_two_api_processes_and_a_worker_process() {
    let (Some(redis), Some(pg)) = (
        service_url("SECKILL_TEST_REDIS_URL"),
        service_url("SECKILL_TEST_PG_URL"),
    ) else {
        return;
    };
    let shared = SharedBackends::new(&redis, &pg, "roles").await;
    let env = shared.env.clone();
    // The worker first: it migrates the schema; then the two API processes.
    let _worker = start(
        "relay,order-worker,timeout-worker,reconciler",
        18183,
        None,
        &env,
    );
    let api = [18181u16, 18182];
    let _api1 = start("api", api[0], Some(18191), &env);
    let _api2 = start("api", api[1], Some(18192), &env);

    let admin_login = call(
        api[0],
        "POST",
        "/api/v1/user/login",
        None,
        Some(json!({"username": "admin", "password": "admin-password"})),
    )
    .unwrap();
    let admin = data(&admin_login)["token"].as_str().unwrap().to_string();
    let p = call(
        api[0],
        "POST",
        "/api/v1/admin/products",
        Some(&admin),
        Some(json!({"name": "two-api sale", "list_price": 1000})),
    )
    .unwrap();
    let now = chrono::Utc::now();
    let (total, limit, buyers) = (24u64, 2u64, 16usize);
    let a = call(
        api[1],
        "POST",
        "/api/v1/admin/seckill/activities",
        Some(&admin),
        Some(
            json!({"product_id": data(&p)["id"], "title": "t", "price": 900,
            "total_stock": total, "per_user_limit": limit,
            "starts_at": now - chrono::Duration::minutes(1),
            "ends_at": now + chrono::Duration::hours(1)}),
        ),
    )
    .unwrap();
    let act = data(&a)["id"].as_str().unwrap().to_string();
    let w = call(
        api[0],
        "POST",
        &format!("/api/v1/admin/seckill/warmup/{act}"),
        Some(&admin),
        None,
    )
    .unwrap();
    assert_eq!(data(&w)["available"], total, "{w}");

    // Each buyer registers on one API, logs in on the other, and buys 2 units twice (the
    // second attempt is above the limit), alternating APIs; all at once.
    let tasks: Vec<_> = (0..buyers)
        .map(|i| {
            let act = act.clone();
            tokio::task::spawn_blocking(move || {
                let (home, away) = (api[i % 2], api[(i + 1) % 2]);
                let name = format!("buyer{i}");
                let creds = json!({"username": name, "password": "correct-horse"});
                call(
                    home,
                    "POST",
                    "/api/v1/user/register",
                    None,
                    Some(creds.clone()),
                )
                .unwrap();
                let login = call(away, "POST", "/api/v1/user/login", None, Some(creds)).unwrap();
                let token = data(&login)["token"].as_str().unwrap().to_string();
                let path = format!("/api/v1/seckill/activities/{act}/buy");
                let mut codes = Vec::new();
                for port in [home, away] {
                    let r = call(
                        port,
                        "POST",
                        &path,
                        Some(&token),
                        Some(json!({"quantity": 2})),
                    )
                    .unwrap();
                    codes.push(r["code"].as_u64().unwrap());
                }
                (token, codes)
            })
        })
        .collect();
    let mut reserved = 0;
    let mut tokens = Vec::new();
    for t in tasks {
        let (token, codes) = t.await.unwrap();
        for c in &codes {
            assert!(
                [0, 3004, 3005, 3006].contains(c),
                "only reservations and defined refusals: {codes:?}"
            );
        }
        reserved += codes.iter().filter(|c| **c == 0).count() as u64;
        assert!(
            codes.iter().filter(|c| **c == 0).count() as u64 <= 1,
            "the limit holds across APIs: {codes:?}"
        );
        tokens.push(token);
    }
    assert_eq!(reserved * limit, total, "every unit sold, none twice");

    // The worker process turns every reservation into exactly one order.
    let deadline = Instant::now() + Duration::from_secs(60);
    let orders = loop {
        let o = call(
            api[1],
            "GET",
            &format!("/api/v1/admin/orders?activity_id={act}&page_size=100"),
            Some(&admin),
            None,
        )
        .unwrap();
        if data(&o)["total"].as_u64() == Some(reserved) || Instant::now() > deadline {
            break o;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let items = data(&orders)["items"].as_array().unwrap();
    assert_eq!(
        items.len() as u64,
        reserved,
        "one order per reservation: {orders}"
    );
    let units: u64 = items.iter().map(|o| o["quantity"].as_u64().unwrap()).sum();
    assert_eq!(units, total, "no oversell");
    let mut per_user = std::collections::HashMap::new();
    for o in items {
        *per_user.entry(o["user_id"].to_string()).or_insert(0) += o["quantity"].as_u64().unwrap();
    }
    assert!(per_user.values().all(|n| *n <= limit), "{per_user:?}");
    // Each buyer sees their own order through either API.
    for (i, t) in tokens.iter().enumerate() {
        let mine = call(api[i % 2], "GET", "/api/v1/orders", Some(t), None).unwrap();
        assert!(data(&mine)["total"].as_u64().unwrap() <= 1);
    }
    let st = call(
        api[0],
        "GET",
        &format!(
            "/api/v1/products/{}/stock",
            data(&p)["id"].as_str().unwrap()
        ),
        None,
        None,
    )
    .unwrap();
    assert_eq!(data(&st)["available"], 0, "{st}");
    let report = call(
        api[0],
        "POST",
        &format!("/api/v1/admin/seckill/activities/{act}/reconcile"),
        Some(&admin),
        None,
    )
    .unwrap();
    assert_eq!(data(&report)["consistent"], true, "{report}");
    // The worker process answers its ops routes and reports no outbox lag.
    let ready = call(18183, "GET", "/ready", None, None).unwrap();
    assert_eq!(data(&ready)["outbox_lag"], 0, "{ready}");
    drop((_api1, _api2, _worker));
    shared.drop_schema().await;
}
