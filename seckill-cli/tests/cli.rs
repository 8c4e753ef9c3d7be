//! The `seckill` binary against a served in-process server: products, activities, warm-up,
//! live status, orders, reconcile, `--json`, and the exit codes scripts rely on.

use serde_json::{json, Value};
use std::process::Command;

struct Served {
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _rt: tokio::runtime::Runtime,
}

fn served() -> Served {
    use seckill_server::app::build;
    use seckill_server::config::{Config, Secret};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let addr = rt.block_on(async {
        let mut cfg = Config {
            demo: false,
            grpc_listen: None,
            ..Config::default()
        };
        cfg.admin.password = Some(Secret("admin-password".into()));
        cfg.auth.jwt_secret = Some(Secret("cli-test".into()));
        let server = build(cfg).await.unwrap();
        server.seed().await.unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(server.serve(l, async {
            let _ = rx.await;
        }));
        addr
    });
    Served {
        url: format!("http://{addr}"),
        _stop: tx,
        _rt: rt,
    }
}

/// Runs `seckill --server URL [--token T] --json ARGS…`: exit code and parsed stdout.
fn seckill(url: &str, token: Option<&str>, args: &[&str]) -> (i32, Value) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_seckill"));
    c.args(["--server", url]);
    if let Some(t) = token {
        c.args(["--token", t]);
    }
    let out = c.arg("--json").args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

fn id(v: &Value) -> String {
    v["data"]["id"].as_str().unwrap().to_string()
}

#[test]
fn the_cli_runs_a_sale() {
    let s = served();
    let url = s.url.as_str();
    let (code, login) = seckill(
        url,
        None,
        &["login", "admin", "--password", "admin-password"],
    );
    assert_eq!(code, 0, "{login}");
    let admin = login["data"]["token"].as_str().unwrap().to_string();
    let admin = Some(admin.as_str());

    let (code, p) = seckill(
        url,
        admin,
        &["products", "create", "--name", "Encore", "--price", "50000"],
    );
    assert_eq!(code, 0, "{p}");
    let pid = id(&p);
    let (_, p) = seckill(
        url,
        admin,
        &["products", "update", &pid, "--price", "52000"],
    );
    assert_eq!(
        (p["data"]["list_price"].clone(), p["data"]["name"].clone()),
        (json!(52000), json!("Encore"))
    );
    let (_, list) = seckill(url, None, &["products", "list"]);
    assert_eq!(list["data"]["total"], 1);

    let now = chrono::Utc::now();
    let starts = (now - chrono::Duration::minutes(1)).to_rfc3339();
    let ends = (now + chrono::Duration::hours(1)).to_rfc3339();
    let (code, a) = seckill(
        url,
        admin,
        &[
            "activities",
            "create",
            "--product",
            &pid,
            "--title",
            "flash",
            "--price",
            "30000",
            "--stock",
            "3",
            "--limit",
            "2",
            "--starts",
            &starts,
            "--ends",
            &ends,
        ],
    );
    assert_eq!(code, 0, "{a}");
    let act = id(&a);
    let (code, w) = seckill(url, admin, &["activities", "warmup", &act]);
    assert_eq!((code, w["data"]["available"].clone()), (0, json!(3)), "{w}");
    let (_, a) = seckill(url, admin, &["activities", "update", &act, "--stock", "4"]);
    assert_eq!(a["data"]["total_stock"], 4);

    // A buyer (registered over HTTP) buys; the CLI shows, lists and cancels the order.
    let agent = ureq::agent();
    agent
        .post(&format!("{url}/api/v1/user/register"))
        .send_json(json!({"username": "cli-buyer", "password": "correct-horse"}))
        .unwrap();
    let (_, l) = seckill(
        url,
        None,
        &["login", "cli-buyer", "--password", "correct-horse"],
    );
    let buyer = l["data"]["token"].as_str().unwrap().to_string();
    let bought: Value = agent
        .post(&format!("{url}/api/v1/seckill/activities/{act}/buy"))
        .set("authorization", &format!("Bearer {buyer}"))
        .send_json(json!({"quantity": 2}))
        .unwrap()
        .into_json()
        .unwrap();
    let order = bought["data"]["order_id"].as_str().unwrap().to_string();
    let buyer_token = buyer.clone();
    let buyer = Some(buyer.as_str());
    let mut shown = (1, Value::Null);
    for _ in 0..100 {
        shown = seckill(url, buyer, &["orders", "show", &order]);
        if shown.0 == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(shown.1["data"]["status"], "pending_payment", "{}", shown.1);
    let (_, mine) = seckill(url, buyer, &["orders", "list"]);
    assert_eq!(mine["data"]["total"], 1);
    let (_, st) = seckill(url, admin, &["activities", "status", &act]);
    let stock = &st["data"]["stock"];
    assert_eq!(
        (stock["total"].clone(), stock["available"].clone()),
        (json!(4), json!(2)),
        "{st}"
    );
    assert_eq!(st["data"]["orders"]["pending_payment"], 1, "{st}");
    let (code, c) = seckill(url, buyer, &["orders", "cancel", &order]);
    assert_eq!((code, c["data"]["status"].clone()), (0, json!("cancelled")));
    let (_, all) = seckill(
        url,
        admin,
        &["orders", "list", "--all", "--status", "cancelled"],
    );
    assert_eq!(all["data"]["total"], 1);
    let (code, r) = seckill(url, admin, &["reconcile", &act]);
    assert_eq!(
        (code, r["data"]["consistent"].clone()),
        (0, json!(true)),
        "{r}"
    );

    // The live configuration: the kill switch set by the CLI stops the activity's buys; a key
    // that needs a restart is refused (exit 1, nothing changed); lifted, it sells again.
    let paused = format!("sale.paused_activities=[\"{act}\"]");
    let (code, set) = seckill(url, admin, &["config", "set", &paused]);
    assert_eq!(code, 0, "{set}");
    assert_eq!(
        set["data"]["values"]["sale.paused_activities"],
        json!([act])
    );
    let refused = match agent
        .post(&format!("{url}/api/v1/seckill/activities/{act}/buy"))
        .set("authorization", &format!("Bearer {buyer_token}"))
        .send_json(json!({"quantity": 1}))
    {
        Err(ureq::Error::Status(409, r)) => r.into_json::<Value>().unwrap(),
        other => panic!("a paused activity's buy answered {other:?}"),
    };
    assert_eq!(refused["code"], 3011, "{refused}");
    let (code, bad) = seckill(url, admin, &["config", "set", "listen=0.0.0.0:1"]);
    assert_eq!((code, bad["code"].clone()), (1, json!(2002)), "{bad}");
    let (code, _) = seckill(
        url,
        admin,
        &["config", "set", "sale.paused_activities=null"],
    );
    assert_eq!(code, 0);
    let (_, shown) = seckill(url, admin, &["config", "show"]);
    assert_eq!(shown["data"]["values"]["sale.paused_activities"], json!([]));

    // A bench: a small sale, closed loop, with the baseline; the verdict from the server's data.
    let (code, b) = seckill(
        url,
        None,
        &[
            "bench",
            "--buyers",
            "6",
            "--stock",
            "4",
            "--limit",
            "1",
            "--requests",
            "40",
            "--concurrency",
            "4",
            "--baseline",
            "--admin-password",
            "admin-password",
        ],
    );
    assert_eq!(code, 0, "{b}");
    assert_eq!(b["verdict"]["clean"], true, "{b}");
    assert_eq!(
        (
            b["verdict"]["units_sold"].clone(),
            b["buy"]["outcomes"]["reserved"].clone()
        ),
        (json!(4), json!(4))
    );
    assert_eq!(b["buy"]["requests"], 40);
    assert!(b["ratio_to_baseline"].as_f64().unwrap() > 0.0);
    // Open loop at a fixed rate.
    let (code, b) = seckill(
        url,
        None,
        &[
            "bench",
            "--buyers",
            "3",
            "--stock",
            "2",
            "--requests",
            "20",
            "--rate",
            "200",
            "--concurrency",
            "4",
            "--admin-password",
            "admin-password",
        ],
    );
    assert_eq!(
        (code, b["verdict"]["clean"].clone()),
        (0, json!(true)),
        "{b}"
    );

    // Exit codes: 1 refused, 2 bad usage, 3 unreachable.
    assert_eq!(seckill(url, None, &["products", "show", "1"]).0, 1);
    assert_eq!(
        seckill(
            url,
            buyer,
            &["products", "create", "--name", "x", "--price", "1"]
        )
        .0,
        1
    );
    assert_eq!(seckill(url, None, &["products", "frobnicate"]).0, 2);
    assert_eq!(seckill("http://127.0.0.1:9", None, &["health"]).0, 3);
}

/// `seckill events create --file` makes an event, its product and its sessions (tiers, a seat
/// map, real names) from TOML, warmed up; `events show` prints each tier's availability; a file
/// with a mistake creates nothing; and `bench --seats --real-name` fires a seated real-name
/// sale whose verdict covers seats and documents.
#[test]
fn the_cli_creates_an_event_from_a_file_and_benches_a_seated_real_name_sale() {
    let s = served();
    let url = &s.url;
    let (_, login) = seckill(
        url,
        None,
        &["login", "admin", "--password", "admin-password"],
    );
    let admin = login["data"]["token"].as_str().map(str::to_string);
    let admin = admin.as_deref();
    let now = chrono::Utc::now();
    let plan = format!(
        r#"
title = "Jay Chou 2027"
venue = "Shanghai Stadium"
[product]
name = "Jay Chou 2027 ticket"
list_price = 38000
[[sessions]]
title = "Saturday night"
starts_at = "{}"
ends_at = "{}"
per_user_limit = 4
real_name = true
tiers = [{{ id = 1, name = "380", price = 38000, stock = 8 }},
         {{ id = 2, name = "VIP", price = 128000, stock = 2 }}]
seats = [{{ section = "VIP", row = "1", tier = 2, from = 1, to = 2 }}]
[[sessions]]
title = "Sunday matinee"
starts_at = "{}"
ends_at = "{}"
total_stock = 5
per_user_limit = 2
price = 38000
warm_up = false
"#,
        (now - chrono::Duration::minutes(1)).to_rfc3339(),
        (now + chrono::Duration::hours(1)).to_rfc3339(),
        (now + chrono::Duration::days(1)).to_rfc3339(),
        (now + chrono::Duration::days(1) + chrono::Duration::hours(2)).to_rfc3339(),
    );
    let dir = std::env::temp_dir().join(format!("seckill-cli-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("concert.toml");
    std::fs::write(&good, &plan).unwrap();
    // 1 VIP seat for a VIP stock of 2: refused before anything is created.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, plan.replace("from = 1, to = 2", "from = 1, to = 1")).unwrap();
    let (_, before) = seckill(url, None, &["events", "list"]);
    let (code, refused) = seckill(
        url,
        admin,
        &["events", "create", "--file", bad.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("session 1"),
        "{refused}"
    );
    let (_, after) = seckill(url, None, &["events", "list"]);
    assert_eq!(
        before["data"]["total"], after["data"]["total"],
        "nothing created"
    );
    let (code, made) = seckill(
        url,
        admin,
        &["events", "create", "--file", good.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{made}");
    let sessions = made["data"]["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{made}");
    let sat = &sessions[0];
    assert_eq!(
        (
            sat["real_name"].clone(),
            sat["status"].clone(),
            sat["available"].clone()
        ),
        (json!(true), json!("live"), json!(10)),
        "{made}"
    );
    assert_eq!(sat["tiers"][1]["available"], json!(2), "warmed up: {made}");
    assert_eq!(
        sessions[1]["available"],
        Value::Null,
        "not warmed up: {made}"
    );
    // The summary: each tier of each session with what is left.
    let event = made["data"]["id"].as_str().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_seckill"))
        .args(["--server", url, "events", "show", &event])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Jay Chou 2027 @ Shanghai Stadium"), "{text}");
    assert!(text.contains("(real name)"), "{text}");
    assert!(
        text.lines().any(|l| l.contains("VIP") && l.contains("2/2")),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // A seated real-name bench: 12 seats, 20 buyers naming 10 passports.
    let (code, b) = seckill(
        url,
        None,
        &[
            "bench",
            "--buyers",
            "20",
            "--seats",
            "12",
            "--real-name",
            "--limit",
            "1",
            "--requests",
            "80",
            "--concurrency",
            "4",
            "--admin-password",
            "admin-password",
        ],
    );
    assert_eq!(code, 0, "{b}");
    assert_eq!(b["verdict"]["clean"], true, "{b}");
    assert_eq!(
        b["verdict"]["units_sold"],
        json!(10),
        "10 documents, one ticket each: {b}"
    );
    assert!(
        b["buy"]["outcomes"]["holder_taken"].as_u64().unwrap_or(0) > 0,
        "{b}"
    );
}
