//! Live configuration. The kill switch set on one api process stops one activity's buys on
//! every api process within a second while another activity keeps selling, and lifting it
//! resumes them as fast (two real processes sharing Redis and PostgreSQL; a third started while
//! the switch is on refuses from its first request). The config file is
//! re-read on SIGHUP and when it changes; an invalid file or an invalid shared change is
//! refused whole, the old configuration stays, and the refusal is counted. Payment provider
//! switches refuse new payments only.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::process::{call, data, start, SharedBackends, Start};
use support::*;

fn admin_token(port: u16) -> String {
    let r = call(
        port,
        "POST",
        "/api/v1/user/login",
        None,
        Some(json!({"username": "admin", "password": "admin-password"})),
    )
    .unwrap();
    data(&r)["token"].as_str().unwrap().to_string()
}

/// A live activity of plenty of stock, warmed up; its id.
fn activity(port: u16, admin: &str, title: &str) -> String {
    let p = call(
        port,
        "POST",
        "/api/v1/admin/products",
        Some(admin),
        Some(json!({"name": title, "list_price": 1000})),
    )
    .unwrap();
    let now = chrono::Utc::now();
    let a = call(
        port,
        "POST",
        "/api/v1/admin/seckill/activities",
        Some(admin),
        Some(
            json!({"product_id": data(&p)["id"], "title": title, "price": 900,
            "total_stock": 1000, "per_user_limit": 500,
            "starts_at": now - chrono::Duration::minutes(1),
            "ends_at": now + chrono::Duration::hours(1)}),
        ),
    )
    .unwrap();
    let id = data(&a)["id"].as_str().unwrap().to_string();
    call(
        port,
        "POST",
        &format!("/api/v1/admin/seckill/warmup/{id}"),
        Some(admin),
        None,
    )
    .unwrap();
    id
}

fn buy_code(port: u16, token: &str, activity: &str) -> u64 {
    let r = call(
        port,
        "POST",
        &format!("/api/v1/seckill/activities/{activity}/buy"),
        Some(token),
        Some(json!({"quantity": 1})),
    )
    .unwrap();
    r["code"].as_u64().unwrap()
}

/// How long until `port`'s buys of `activity` answer `code` (polled every 20 ms, at most 5 s).
fn until_code(port: u16, token: &str, activity: &str, code: u64, since: Instant) -> Duration {
    loop {
        if buy_code(port, token, activity) == code {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "port {port}: activity {activity} never answered {code}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn the_kill_switch_stops_one_activity_on_every_api_process_within_a_second() {
    let (Some(redis), Some(pg)) = (
        seckill_core::conformance::service_url("SECKILL_TEST_REDIS_URL"),
        seckill_core::conformance::service_url("SECKILL_TEST_PG_URL"),
    ) else {
        return;
    };
    let shared = SharedBackends::new(&redis, &pg, "live").await;
    let mut env = shared.env.clone();
    env.push(("SECKILL_SALE__BUY_RATE_PER_SEC".into(), "0".into()));
    env.push(("SECKILL_LIMITS__LOGIN_PER_IP__RATE".into(), "0".into()));
    let (a, b) = (18231u16, 18232u16);
    let _pa = start("all", a, Some(18241), &env);
    let _pb = start("api", b, Some(18242), &env);
    let admin = admin_token(a);
    let (x, y) = (
        activity(a, &admin, "paused"),
        activity(a, &admin, "selling"),
    );
    call(
        b,
        "POST",
        "/api/v1/user/register",
        None,
        Some(json!({"username": "live-buyer", "password": "correct-horse"})),
    )
    .unwrap();
    let login = call(
        a,
        "POST",
        "/api/v1/user/login",
        None,
        Some(json!({"username": "live-buyer", "password": "correct-horse"})),
    )
    .unwrap();
    let buyer = data(&login)["token"].as_str().unwrap().to_string();
    for port in [a, b] {
        for act in [&x, &y] {
            assert_eq!(buy_code(port, &buyer, act), 0);
        }
    }

    let (admin2, x2, buyer2) = (admin.clone(), x.clone(), buyer.clone());
    let (paused_in, still_selling) = tokio::task::spawn_blocking(move || {
        let set = Instant::now();
        let r = call(
            a,
            "PUT",
            "/api/v1/admin/config",
            Some(&admin2),
            Some(json!({"sale": {"paused_activities": [x2]}})),
        )
        .unwrap();
        assert_eq!(r["code"], 0, "{r}");
        let on_a = until_code(a, &buyer2, &x2, 3011, set);
        let on_b = until_code(b, &buyer2, &x2, 3011, set);
        (on_a.max(on_b), r)
    })
    .await
    .unwrap();
    assert!(
        paused_in < Duration::from_secs(1),
        "paused on both processes after {paused_in:?}"
    );
    assert_eq!(
        still_selling["data"]["values"]["sale.paused_activities"],
        json!([x])
    );
    // The other activity sells on both; the paused one is refused on both.
    for port in [a, b] {
        assert_eq!(buy_code(port, &buyer, &y), 0, "port {port}");
        assert_eq!(buy_code(port, &buyer, &x), 3011, "port {port}");
    }
    let shown = call(b, "GET", "/api/v1/admin/config", Some(&admin), None).unwrap();
    assert_eq!(
        data(&shown)["overrides"],
        json!({"sale": {"paused_activities": [x]}})
    );
    // A process started while the switch is on refuses from its first request.
    let c = 18234u16;
    let pc = start("api", c, Some(18244), &env);
    assert_eq!(buy_code(c, &buyer, &x), 3011);
    assert_eq!(buy_code(c, &buyer, &y), 0);
    drop(pc);

    // Lifted (null: back to the file's value, none), it sells again everywhere as fast.
    let (admin2, x2, buyer2) = (admin.clone(), x.clone(), buyer.clone());
    let resumed_in = tokio::task::spawn_blocking(move || {
        let set = Instant::now();
        call(
            b,
            "PUT",
            "/api/v1/admin/config",
            Some(&admin2),
            Some(json!({"sale": {"paused_activities": null}})),
        )
        .unwrap();
        until_code(a, &buyer2, &x2, 0, set).max(until_code(b, &buyer2, &x2, 0, set))
    })
    .await
    .unwrap();
    assert!(resumed_in < Duration::from_secs(1), "{resumed_in:?}");

    // A change that needs a restart, or an invalid value, is refused whole.
    for bad in [
        json!({"listen": "0.0.0.0:1"}),
        json!({"http": {"buy_concurrency": 3, "cors": {"allowed_origins": ["no-scheme"]}}}),
    ] {
        let r = call(
            a,
            "PUT",
            "/api/v1/admin/config",
            Some(&admin),
            Some(bad.clone()),
        )
        .unwrap();
        assert_eq!(r["code"], 2002, "{bad}: {r}");
    }
    let shown = call(b, "GET", "/api/v1/admin/config", Some(&admin), None).unwrap();
    assert_eq!(data(&shown)["values"]["http.buy_concurrency"], 256);
    drop((_pa, _pb));
    shared.drop_schema().await;
}

fn metric(port: u16, line_prefix: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn hup(p: &support::process::Process) {
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &p.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

fn live_value(port: u16, admin: &str, key: &str) -> Value {
    let r = call(port, "GET", "/api/v1/admin/config", Some(admin), None).unwrap();
    data(&r)["values"][key].clone()
}

fn until_value(port: u16, admin: &str, key: &str, want: Value) {
    let since = Instant::now();
    while live_value(port, admin, key) != want {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "{key} never became {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_config_file_is_reread_on_sighup_and_when_it_changes_and_a_bad_one_is_refused() {
    let dir = std::env::temp_dir().join(format!(
        "seckill-live-{}",
        seckill_core::conformance::unique_id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("seckill.toml");
    let write = |buy: u32, level: &str| {
        std::fs::write(
            &file,
            format!("[http]\nbuy_concurrency = {buy}\n[log]\nlevel = \"{level}\"\n[admin]\npassword = \"admin-password\"\n[auth]\njwt_secret = \"k\"\n"),
        )
        .unwrap();
    };
    write(5, "warn");
    let env = [(
        "SECKILL_CONFIG".to_string(),
        file.to_string_lossy().into_owned(),
    )];
    let port = 18233;
    let p = Start {
        demo: true,
        grpc: Some(18243),
        ..Start::new("all", port, &env)
    }
    .spawn();
    let admin = admin_token(port);
    assert_eq!(live_value(port, &admin, "http.buy_concurrency"), 5);

    // SIGHUP: read at once.
    write(7, "info");
    hup(&p);
    until_value(port, &admin, "http.buy_concurrency", json!(7));
    assert_eq!(live_value(port, &admin, "log.level"), "info");
    assert_eq!(
        metric(port, "seckill_http_concurrency_limit{gate=\"buy\"}"),
        Some(7.0)
    );

    // Changed on disk, no signal: the watch reads it.
    std::thread::sleep(Duration::from_millis(1100)); // a new modification time
    write(9, "info");
    until_value(port, &admin, "http.buy_concurrency", json!(9));

    // Invalid: refused whole (the concurrency in it does not apply), counted; the old stays.
    let refused = || {
        metric(
            port,
            "seckill_config_reloads_total{source=\"file\",outcome=\"refused\"}",
        )
        .unwrap_or(0.0)
    };
    let before = refused();
    let hup_until_refused = |n: f64| {
        hup(&p);
        let since = Instant::now();
        while refused() < before + n {
            assert!(since.elapsed() < Duration::from_secs(5), "never refused");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(live_value(port, &admin, "http.buy_concurrency"), 9);
    };
    std::fs::write(
        &file,
        "[http]\nbuy_concurrency = 11\n[http.cors]\nallowed_origins = [\"no-scheme\"]\n[admin]\npassword = \"admin-password\"\n[auth]\njwt_secret = \"k\"\n",
    )
    .unwrap();
    hup_until_refused(1.0);
    std::fs::write(&file, "this is = = not toml").unwrap();
    hup_until_refused(2.0);
    // The server still serves.
    assert_eq!(call(port, "GET", "/health", None, None).unwrap()["code"], 0);
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_switched_off_provider_refuses_new_payments_only() {
    let a = api_with(true, |_| {}).await;
    let admin = a.login("admin", "admin-password").await;
    let r = a
        .call(
            "PUT",
            "/api/v1/admin/config",
            Some(&admin),
            Some(json!({"payment": {"disabled": ["mock"]}})),
        )
        .await;
    assert_eq!(r.code(), 0, "{}", r.body);
    let token = a.user("switched-off").await;
    let act = a.demo_activity().await;
    let bought = a.buy(&token, &act, 1).await;
    assert_eq!(bought.code(), 0, "{}", bought.body);
    a.settle_pipeline().await;
    let order = bought.data()["order_id"].as_str().unwrap().to_string();
    let pay = a
        .call(
            "POST",
            &format!("/api/v1/orders/{order}/pay"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(pay.code(), 5006, "{}", pay.body);
    // An unknown provider cannot be switched off.
    let r = a
        .call(
            "PUT",
            "/api/v1/admin/config",
            Some(&admin),
            Some(json!({"payment": {"disabled": ["paypal"]}})),
        )
        .await;
    assert_eq!(r.code(), 2002, "{}", r.body);
    // Back on, it pays.
    a.call(
        "PUT",
        "/api/v1/admin/config",
        Some(&admin),
        Some(json!({"payment": {"disabled": null}})),
    )
    .await;
    let pay = a
        .call(
            "POST",
            &format!("/api/v1/orders/{order}/pay"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(pay.code(), 0, "{}", pay.body);
}
