//! The admin and stock routes end to end: product update/delete/stock, activity update (the
//! stock backend follows at once), every order for admins with legal status changes only,
//! and the buyer's refund.

mod support;

use axum::http::StatusCode;
use serde_json::{json, Value};
use support::*;

#[tokio::test]
async fn products_are_updated_deleted_and_report_their_stock() {
    let a = api(false).await;
    let admin = a.login("admin", "admin-password").await;
    let alice = a.user("alice").await;
    let pid = a.product(&admin).await;
    let path = format!("/api/v1/admin/products/{pid}");

    let r = a
        .call(
            "PUT",
            &path,
            Some(&admin),
            Some(json!({"list_price": 72000})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.data()["list_price"].clone(), r.data()["name"].clone()),
        (json!(72000), json!("Jay Chou, stand"))
    );
    for (body, code) in [
        (json!({"list_price": -1}), 2002),
        (json!({"name": ""}), 2002),
        (json!({"stock": 5}), 2001),
    ] {
        let r = a.call("PUT", &path, Some(&admin), Some(body.clone())).await;
        assert_eq!(r.code(), code, "{body}: {}", r.body);
    }
    let r = a
        .call("PUT", &path, Some(&alice), Some(json!({"name": "x"})))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, 1002));
    let r = a
        .call(
            "PUT",
            "/api/v1/admin/products/1",
            Some(&admin),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, 6001));

    // Stock: none until an activity; then the activity's live figures.
    let stock = format!("/api/v1/products/{pid}/stock");
    let r = a.get(&stock, None).await;
    assert_eq!(
        (
            r.data()["available"].clone(),
            r.data()["activities"].clone()
        ),
        (json!(0), json!([]))
    );
    let act = a.live_activity(&admin, &pid, 5).await;
    let buy = a.buy(&alice, &act, 2).await;
    assert_eq!(buy.status, StatusCode::ACCEPTED, "{}", buy.body);
    let r = a.get(&stock, None).await;
    assert_eq!(r.data()["available"], 3, "{}", r.body);
    let s0 = &r.data()["activities"][0];
    assert_eq!(
        (
            s0["total"].clone(),
            s0["held"].clone(),
            s0["warmed_up"].clone()
        ),
        (json!(5), json!(2), json!(true))
    );

    // Setting the stock: never below what is held or sold; the stock backend follows at once.
    let set = format!("/api/v1/admin/products/{pid}/stock");
    let r = a
        .call(
            "POST",
            &set,
            Some(&admin),
            Some(json!({"activity_id": act, "total_stock": 1})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, 2006),
        "{}",
        r.body
    );
    let r = a
        .call(
            "POST",
            &set,
            Some(&admin),
            Some(json!({"activity_id": act, "total_stock": 8})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.data()["total"].clone(), r.data()["available"].clone()),
        (json!(8), json!(6))
    );
    let other = a.product(&admin).await;
    let r = a
        .call(
            "POST",
            &format!("/api/v1/admin/products/{other}/stock"),
            Some(&admin),
            Some(json!({"activity_id": act, "total_stock": 9})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, 3001),
        "not that product's activity"
    );

    // Deleting: refused while it has activities; a bare product goes.
    let r = a.call("DELETE", &path, Some(&admin), None).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, 2006));
    let r = a
        .call(
            "DELETE",
            &format!("/api/v1/admin/products/{other}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = a.get(&format!("/api/v1/products/{other}"), None).await;
    assert_eq!(r.code(), 6001);
    let r = a.get("/api/v1/products/1/stock", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, 6001));
}

#[tokio::test]
async fn an_activity_update_reaches_the_buy_path_at_once() {
    let a = api(false).await;
    let admin = a.login("admin", "admin-password").await;
    let bob = a.user("bob").await;
    let pid = a.product(&admin).await;
    let act = a.live_activity(&admin, &pid, 5).await;
    let path = format!("/api/v1/admin/seckill/activities/{act}");
    assert_eq!(a.buy(&bob, &act, 1).await.status, StatusCode::ACCEPTED);

    // A higher per-user limit and a new title.
    let r = a
        .call(
            "PUT",
            &path,
            Some(&admin),
            Some(json!({"per_user_limit": 3, "title": "encore"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (
            r.data()["title"].clone(),
            r.data()["per_user_limit"].clone()
        ),
        (json!("encore"), json!(3))
    );
    assert_eq!(
        a.buy(&bob, &act, 2).await.status,
        StatusCode::ACCEPTED,
        "limit 3 now"
    );
    // Called off: nobody buys.
    let r = a
        .call("PUT", &path, Some(&admin), Some(json!({"cancelled": true})))
        .await;
    assert_eq!(r.data()["cancelled"], true, "{}", r.body);
    let carol = a.user("carol").await;
    let b = a.buy(&carol, &act, 1).await;
    assert_eq!(
        (b.status, b.code()),
        (StatusCode::CONFLICT, 3009),
        "{}",
        b.body
    );
    let st = a
        .get(&format!("/api/v1/seckill/activities/{act}/status"), None)
        .await;
    assert_eq!(st.data()["status"], "cancelled");

    for (body, code) in [
        (
            json!({"starts_at": chrono::Utc::now() + chrono::Duration::days(9)}),
            2002,
        ),
        (json!({"total_stock": 0}), 2002),
        (json!({"sold": 0}), 2001),
    ] {
        let r = a.call("PUT", &path, Some(&admin), Some(body.clone())).await;
        assert_eq!(r.code(), code, "{body}: {}", r.body);
    }
    let r = a
        .call("PUT", &path, Some(&bob), Some(json!({"title": "mine"})))
        .await;
    assert_eq!(r.code(), 1002);
    let r = a
        .call(
            "PUT",
            "/api/v1/admin/seckill/activities/1",
            Some(&admin),
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, 3001));
}

fn ids(r: &Resp) -> Vec<Value> {
    r.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].clone())
        .collect()
}

#[tokio::test]
async fn admins_see_every_order_and_move_it_along_legal_transitions_only() {
    let a = api(false).await;
    let admin = a.login("admin", "admin-password").await;
    let (dan, eve) = (a.user("dan").await, a.user("eve").await);
    let pid = a.product(&admin).await;
    let act = a.live_activity(&admin, &pid, 10).await;
    let o1 = a.buy(&dan, &act, 1).await.data()["order_id"].clone();
    let o2 = a.buy(&eve, &act, 2).await.data()["order_id"].clone();
    a.settle_pipeline().await;

    let all = a
        .get(
            &format!("/api/v1/admin/orders?activity_id={act}"),
            Some(&admin),
        )
        .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(ids(&all), [o2.clone(), o1.clone()], "newest first");
    let r = a
        .get("/api/v1/admin/orders?status=paid", Some(&admin))
        .await;
    assert_eq!(r.data()["total"], 0);
    let r = a.get("/api/v1/admin/orders", Some(&dan)).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, 1002));
    let r = a
        .get("/api/v1/admin/orders?status=lost", Some(&admin))
        .await;
    assert_eq!(r.code(), 2003);

    let status = |o: &Value| format!("/api/v1/admin/orders/{}/status", o.as_str().unwrap());
    let set = |o: Value, to: &'static str| {
        let (a, admin, path) = (&a, admin.clone(), status(&o));
        async move {
            a.call("PUT", &path, Some(&admin), Some(json!({"status": to})))
                .await
        }
    };
    let r = set(o1.clone(), "paid").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, 4002),
        "never paid by hand"
    );
    let r = set(o1.clone(), "refunded").await;
    assert_eq!(r.code(), 4002, "pending → refunded is illegal");
    let r = set(o1.clone(), "cancelled").await;
    assert_eq!(r.data()["status"], "cancelled", "{}", r.body);
    assert_eq!(r.data()["cancel_reason"], "admin");
    let r = set(o1.clone(), "pending_payment").await;
    assert_eq!(r.code(), 4002, "cancelled is final");
    let st = a.get(&format!("/api/v1/products/{pid}/stock"), None).await;
    assert_eq!(
        st.data()["available"],
        8,
        "the cancelled unit is back: {}",
        st.body
    );

    // Eve pays, then asks for her money back; Dan cannot touch her payment.
    let pay = a
        .call(
            "POST",
            &format!("/api/v1/orders/{}/pay", o2.as_str().unwrap()),
            Some(&eve),
            None,
        )
        .await;
    let pay_url = pay.data()["pay_url"].as_str().unwrap().to_string();
    let pid2 = pay.data()["payment_id"].as_str().unwrap().to_string();
    let refund = format!("/api/v1/payment/{pid2}/refund");
    let early = a.call("POST", &refund, Some(&eve), None).await;
    assert_eq!(
        (early.status, early.code()),
        (StatusCode::CONFLICT, 5003),
        "not paid yet"
    );
    assert_eq!(
        a.call("POST", &pay_url, Some(&eve), None).await.data()["result"],
        "paid"
    );
    let r = a.call("POST", &refund, Some(&dan), None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, 5001),
        "someone else's payment"
    );
    let r = a.call("POST", &refund, Some(&eve), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["status"], "refunded");
    let again = a.call("POST", &refund, Some(&eve), None).await;
    assert_eq!(again.data()["status"], "refunded", "a repeat is harmless");
    let o = a
        .get(
            &format!("/api/v1/orders/{}", o2.as_str().unwrap()),
            Some(&eve),
        )
        .await;
    assert_eq!(o.data()["status"], "refunded");
    let ledger = a.state.mock.as_ref().unwrap().ledger();
    assert_eq!(
        ledger.refunded.len(),
        1,
        "the money went back once: {ledger:?}"
    );
    let report = a
        .call(
            "POST",
            &format!("/api/v1/admin/seckill/activities/{act}/reconcile"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(report.data()["consistent"], true, "{}", report.body);
}

#[tokio::test]
async fn payment_routes_replay_an_idempotency_key() {
    let a = api(true).await;
    let fay = a.user("fay").await;
    let act = a.demo_activity().await;
    let o1 = a.buy(&fay, &act, 1).await.data()["order_id"].clone();
    let o2 = a.buy(&fay, &act, 1).await.data()["order_id"].clone();
    a.settle_pipeline().await;
    let pay = |order: &Value, key: &'static str| {
        let (a, fay, path) = (
            &a,
            fay.clone(),
            format!("/api/v1/orders/{}/pay", order.as_str().unwrap()),
        );
        async move {
            a.raw("POST", &path, Some(&fay), None, &[("idempotency-key", key)])
                .await
        }
    };
    let first = pay(&o1, "pay-1").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = pay(&o1, "pay-1").await;
    assert_eq!(
        again.body, first.body,
        "the stored answer, trace id included"
    );
    // The other payment route under the same key and order: the same answer.
    let via_create = a
        .raw(
            "POST",
            "/api/v1/payment/create",
            Some(&fay),
            Some(json!({"order_id": o1}).to_string()),
            &[("idempotency-key", "pay-1")],
        )
        .await;
    assert_eq!(via_create.body, first.body);
    let other = pay(&o2, "pay-1").await;
    assert_eq!(
        (other.status, other.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, 2005)
    );
    let bad = pay(&o2, "").await;
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, 2003));
    // A refusal is not stored: after it, the key runs afresh.
    let (ghost, fresh) = (
        pay(&json!("1"), "pay-2").await,
        pay(&json!("1"), "pay-2").await,
    );
    assert_eq!(ghost.code(), 4001);
    assert_ne!(
        fresh.body["trace_id"], ghost.body["trace_id"],
        "not replayed"
    );
}

/// An activity split into stock buckets (docs/adr/0020): created with `stock_buckets`, shown
/// with it, and one buyer can still buy every unit (their bucket borrows from the others);
/// out-of-range counts are refused.
#[tokio::test]
async fn an_activity_in_stock_buckets_sells_every_unit() {
    sells_every_unit_in_buckets(api(false).await).await;
}

/// The same on Redis stock, where each bucket is its own hash tag and a borrow is a journaled
/// transfer between them.
#[tokio::test]
async fn an_activity_in_stock_buckets_sells_every_unit_on_redis() {
    let Some(redis) = seckill_core::conformance::service_url("SECKILL_TEST_REDIS_URL") else {
        return;
    };
    let a = api_with(false, |c| {
        c.backends.stock = format!(
            "{redis}{}prefix=buckets{}",
            if redis.contains('?') { '&' } else { '?' },
            seckill_core::conformance::unique_id()
        );
    })
    .await;
    sells_every_unit_in_buckets(a).await;
}

async fn sells_every_unit_in_buckets(a: Api) {
    let admin = a.login("admin", "admin-password").await;
    let pid = a.product(&admin).await;
    let create = |buckets: u32| activity_body(&pid, 6, 6, buckets);
    for bad in [0, 65] {
        let r = a
            .call(
                "POST",
                "/api/v1/admin/seckill/activities",
                Some(&admin),
                Some(create(bad)),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    let r = a
        .call(
            "POST",
            "/api/v1/admin/seckill/activities",
            Some(&admin),
            Some(create(3)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let act = r.data()["id"].as_str().unwrap().to_string();
    let w = a
        .call(
            "POST",
            &format!("/api/v1/admin/seckill/warmup/{act}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(w.status, StatusCode::OK, "{}", w.body);
    let shown = a
        .get(&format!("/api/v1/seckill/activities/{act}"), None)
        .await;
    assert_eq!(shown.data()["stock_buckets"], 3, "{}", shown.body);
    let buyer = a.user("bucket-buyer").await;
    for i in 0..6 {
        let r = a.buy(&buyer, &act, 1).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "unit {i}: {}", r.body);
    }
    let late = a.user("bucket-late").await;
    assert_eq!(a.buy(&late, &act, 1).await.code(), 3004);
    let parts = a
        .state
        .engine
        .backends()
        .stock
        .buckets(
            act.parse::<i64>()
                .map(seckill_core::domain::ActivityId)
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert!(parts.iter().all(|p| p.available == 0), "{parts:?}");
}

/// Events group sessions (docs/adr/0021): an admin creates an event and its sessions
/// (activities naming it), a buyer browses the event with each session's status and live
/// stock; an unknown event is 404 (6002) whether browsed, changed or named by a new session,
/// and a buyer may not create or change one.
#[tokio::test]
async fn an_event_lists_its_sessions_with_live_stock() {
    let a = api(false).await;
    let admin = a.login("admin", "admin-password").await;
    let buyer = a.user("event-buyer").await;
    let body = json!({"title": "Jay Chou 2027", "venue": "Shanghai Stadium"});
    let r = a
        .call(
            "POST",
            "/api/v1/admin/events",
            Some(&buyer),
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.code(), 1002, "{}", r.body);
    for bad in [
        json!({"title": " "}),
        json!({"title": "t", "venue": "a\u{7}"}),
        json!({"title": "t", "seats": 3}),
    ] {
        let r = a
            .call(
                "POST",
                "/api/v1/admin/events",
                Some(&admin),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    let r = a
        .call("POST", "/api/v1/admin/events", Some(&admin), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let event = r.data()["id"].as_str().unwrap().to_string();
    assert_eq!(r.data()["venue"], "Shanghai Stadium");
    let r = a
        .call(
            "PUT",
            &format!("/api/v1/admin/events/{event}"),
            Some(&buyer),
            Some(json!({"title": "mine"})),
        )
        .await;
    assert_eq!(r.code(), 1002, "{}", r.body);

    let pid = a.product(&admin).await;
    let session = |total: u32, event: &str| {
        let mut b = activity_body(&pid, total, 2, 1);
        b["event_id"] = json!(event);
        b
    };
    let missing = a
        .call(
            "POST",
            "/api/v1/admin/seckill/activities",
            Some(&admin),
            Some(session(5, "1")),
        )
        .await;
    assert_eq!(missing.code(), 6002, "{}", missing.body);
    let mut ids = Vec::new();
    for total in [5, 7] {
        let r = a
            .call(
                "POST",
                "/api/v1/admin/seckill/activities",
                Some(&admin),
                Some(session(total, &event)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.data()["event_id"], event.as_str());
        ids.push(r.data()["id"].as_str().unwrap().to_string());
    }
    let w = a
        .call(
            "POST",
            &format!("/api/v1/admin/seckill/warmup/{}", ids[0]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(w.status, StatusCode::OK, "{}", w.body);
    assert_eq!(a.buy(&buyer, &ids[0], 2).await.status, StatusCode::ACCEPTED);

    let shown = a.get(&format!("/api/v1/events/{event}"), None).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let d = shown.data();
    assert_eq!(d["title"], "Jay Chou 2027");
    let sessions = d["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{d}");
    let by_id = |id: &str| sessions.iter().find(|s| s["id"] == id).unwrap();
    assert_eq!(
        by_id(&ids[0])["available"],
        3,
        "live stock after a buy: {d}"
    );
    assert_eq!(
        by_id(&ids[1])["available"],
        Value::Null,
        "not warmed up: {d}"
    );
    assert_eq!(by_id(&ids[0])["status"], "live");

    let list = a.get("/api/v1/events?page_size=100", None).await;
    assert!(list.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["id"] == event.as_str()));
    let plain = a
        .get(&format!("/api/v1/seckill/activities/{}", ids[1]), None)
        .await;
    assert_eq!(plain.data()["event_id"], event.as_str());

    let r = a
        .call(
            "PUT",
            &format!("/api/v1/admin/events/{event}"),
            Some(&admin),
            Some(json!({"venue": "Beijing Bird's Nest"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.data()["venue"].as_str(), r.data()["title"].as_str()),
        (Some("Beijing Bird's Nest"), Some("Jay Chou 2027"))
    );
    for (method, path) in [
        ("GET", "/api/v1/events/1"),
        ("PUT", "/api/v1/admin/events/1"),
    ] {
        let r = a
            .call(
                method,
                path,
                Some(&admin),
                Some(json!({"title": "x"})).filter(|_| method == "PUT"),
            )
            .await;
        assert_eq!(r.code(), 6002, "{method} {path}: {}", r.body);
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}

/// A session with price tiers and a quota (docs/adr/0021): created with its tiers (the price
/// becomes the cheapest tier's), shown with each tier's live availability; a buy of several
/// tiers is all or nothing, a short tier answers 3012 and a short quota 3013, the order
/// carries its lines and the sum of their prices, and lines on a plain sale are refused.
#[tokio::test]
async fn a_tiered_session_sells_lines_all_or_nothing() {
    let a = api(false).await;
    let admin = a.login("admin", "admin-password").await;
    let pid = a.product(&admin).await;
    let mut body = activity_body(&pid, 7, 4, 1);
    body["tiers"] = json!([
        {"id": 1, "name": "380", "price": 38000, "stock": 4},
        {"id": 2, "name": "580", "price": 58000, "stock": 3},
        {"id": 3, "name": "VIP", "price": 128000, "stock": 2},
    ]);
    body["quotas"] = json!([{"id": 1, "name": "student", "cap": 3, "tiers": [1, 2]}]);
    for (field, bad) in [
        ("total_stock", json!(10)),
        ("stock_buckets", json!(2)),
        (
            "quotas",
            json!([{"id": 1, "name": "q", "cap": 1, "tiers": [9]}]),
        ),
        (
            "tiers",
            json!([{"id": 1, "name": "a", "price": 1, "stock": 1, "seats": 1}]),
        ),
    ] {
        let mut b = body.clone();
        b[field] = bad;
        let r = a
            .call(
                "POST",
                "/api/v1/admin/seckill/activities",
                Some(&admin),
                Some(b),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}: {}", r.body);
    }
    let act = a.create_warm(&admin, body).await;
    let shown = a
        .get(&format!("/api/v1/seckill/activities/{act}"), None)
        .await;
    assert_eq!(shown.data()["price"], 38000, "the cheapest tier's");

    let buyer = a.user("tier-buyer").await;
    let other = a.user("tier-student").await;
    let path = format!("/api/v1/seckill/activities/{act}/buy");
    let buy_as = |token: &str, body: Value| {
        let (a, path, token) = (&a, path.clone(), token.to_string());
        async move { a.call("POST", &path, Some(&token), Some(body)).await }
    };
    let buy = |lines: Value| buy_as(&buyer, json!({ "lines": lines }));
    let r = buy(json!([{"tier": 2, "quantity": 2}, {"tier": 3, "quantity": 1}])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.data()["quantity"], 3);
    let order = r.data()["order_id"].as_str().unwrap().to_string();
    // Above the limit (4) across tiers.
    let r = buy(json!([{"tier": 1, "quantity": 2}])).await;
    assert_eq!(r.code(), 3006, "{}", r.body);
    // Tier 2 has one left; the quota (3 over tiers 1 and 2) has one left.
    let r = buy_as(&other, json!({"lines": [{"tier": 2, "quantity": 2}]})).await;
    assert_eq!(
        (r.code(), r.data()["tier"].clone()),
        (3012, json!(2)),
        "{}",
        r.body
    );
    let r = buy_as(&other, json!({"lines": [{"tier": 1, "quantity": 2}]})).await;
    assert_eq!(
        (r.code(), r.data()["available"].clone()),
        (3013, json!(1)),
        "{}",
        r.body
    );
    for bad in [
        json!({"lines": [{"tier": 9, "quantity": 1}]}),
        json!({"lines": [{"tier": 1, "quantity": 1}, {"tier": 1, "quantity": 1}]}),
        json!({"lines": [{"tier": 1, "quantity": 1}], "quantity": 2}),
        json!({"quantity": 1}),
    ] {
        let r = buy_as(&other, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    let shown = a
        .get(&format!("/api/v1/seckill/activities/{act}"), None)
        .await;
    let tiers = shown.data()["tiers"].as_array().unwrap().clone();
    let avail: Vec<_> = tiers.iter().map(|t| t["available"].clone()).collect();
    // Tier 1: 4 of its own, but the quota leaves 1; tier 2: 1; VIP: 1; capacity 7 − 3 = 4.
    assert_eq!(avail, [json!(1), json!(1), json!(1)], "{}", shown.body);
    assert_eq!(shown.data()["available"], 4);

    a.settle_pipeline().await;
    let o = a
        .get(&format!("/api/v1/orders/{order}"), Some(&buyer))
        .await;
    assert_eq!(o.status, StatusCode::OK, "{}", o.body);
    assert_eq!(o.data()["amount"], 2 * 58000 + 128000);
    assert_eq!(
        o.data()["lines"],
        json!([{"tier": 2, "quantity": 2}, {"tier": 3, "quantity": 1}])
    );
    let c = a
        .call(
            "POST",
            &format!("/api/v1/orders/{order}/cancel"),
            Some(&buyer),
            None,
        )
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    let shown = a
        .get(&format!("/api/v1/seckill/activities/{act}"), None)
        .await;
    let avail: Vec<_> = shown.data()["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["available"].clone())
        .collect();
    assert_eq!(avail, [json!(3), json!(3), json!(2)], "{}", shown.body);

    let plain = a.live_activity(&admin, &pid, 5).await;
    let r = a
        .call(
            "POST",
            &format!("/api/v1/seckill/activities/{plain}/buy"),
            Some(&buyer),
            Some(json!({"lines": [{"tier": 1, "quantity": 1}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}

/// A seated session (docs/adr/0021): created with its seat map, a buy names seats or takes
/// the best available, a taken seat answers 3014 with the seats, the seat map shows what is
/// taken, the order's lines list its seats, and a cancel frees them.
#[tokio::test]
async fn a_seated_session_sells_each_seat_once() {
    let a = api(false).await;
    let admin = a.login("admin", "admin-password").await;
    let pid = a.product(&admin).await;
    let mut body = activity_body(&pid, 6, 4, 1);
    body["tiers"] = json!([{"id": 1, "name": "580", "price": 58000, "stock": 6}]);
    body["seats"] = json!([
        {"section": "A", "row": "1", "tier": 1, "from": 1, "to": 3},
        {"section": "A", "row": "2", "tier": 1, "from": 1, "to": 3},
    ]);
    let mut short = body.clone();
    short["seats"][1]["to"] = json!(2);
    let r = a
        .call(
            "POST",
            "/api/v1/admin/seckill/activities",
            Some(&admin),
            Some(short),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "5 seats for a stock of 6: {}",
        r.body
    );
    let act = a.create_warm(&admin, body).await;
    let path = format!("/api/v1/seckill/activities/{act}/buy");
    let alice = a.user("seat-alice").await;
    let bob = a.user("seat-bob").await;
    let r = a
        .call(
            "POST",
            &path,
            Some(&alice),
            Some(json!({"lines": [{"tier": 1, "quantity": 2, "seats": ["A-1-2", "A-1-3"]}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.data()["lines"][0]["seats"], json!(["A-1-2", "A-1-3"]));
    let order = r.data()["order_id"].as_str().unwrap().to_string();
    let r = a
        .call(
            "POST",
            &path,
            Some(&bob),
            Some(json!({"lines": [{"tier": 1, "quantity": 1, "seats": ["A-1-3"]}]})),
        )
        .await;
    assert_eq!(
        (r.code(), r.data()["seats"].clone()),
        (3014, json!(["A-1-3"])),
        "{}",
        r.body
    );
    let r = a
        .call(
            "POST",
            &path,
            Some(&bob),
            Some(json!({"lines": [{"tier": 1, "quantity": 1, "seats": ["Z-9-9"]}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // Two adjacent: row A-1 has only seat 1 left, so row A-2.
    let r = a
        .call(
            "POST",
            &path,
            Some(&bob),
            Some(json!({"lines": [{"tier": 1, "quantity": 2}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.data()["lines"][0]["seats"], json!(["A-2-1", "A-2-2"]));
    let map = a
        .get(&format!("/api/v1/seckill/activities/{act}/seats"), None)
        .await;
    assert_eq!(
        map.data()["taken"],
        json!(["A-1-2", "A-1-3", "A-2-1", "A-2-2"]),
        "{}",
        map.body
    );
    assert_eq!(map.data()["blocks"].as_array().unwrap().len(), 2);
    a.settle_pipeline().await;
    let o = a
        .get(&format!("/api/v1/orders/{order}"), Some(&alice))
        .await;
    assert_eq!(
        o.data()["lines"][0]["seats"],
        json!(["A-1-2", "A-1-3"]),
        "{}",
        o.body
    );
    let c = a
        .call(
            "POST",
            &format!("/api/v1/orders/{order}/cancel"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    let map = a
        .get(&format!("/api/v1/seckill/activities/{act}/seats"), None)
        .await;
    assert_eq!(
        map.data()["taken"],
        json!(["A-2-1", "A-2-2"]),
        "{}",
        map.body
    );
}

/// A real-name session (docs/adr/0021): each ticket of a buy names its holder; the answer and
/// the order show the document masked, never in the clear; a document holding a ticket is
/// refused for another (3015, the masked numbers), a bad number or a missing holder is a 400
/// that does not repeat the number, and a cancel frees the document.
#[tokio::test]
async fn a_real_name_session_sells_one_ticket_per_document() {
    const CARD: &str = "11010519491231002X";
    let a = api(false).await;
    let admin = a.login("admin", "admin-password").await;
    let pid = a.product(&admin).await;
    let mut body = activity_body(&pid, 6, 4, 1);
    body["tiers"] = json!([
        {"id": 1, "name": "580", "price": 58000, "stock": 3},
        {"id": 2, "name": "380", "price": 38000, "stock": 3},
    ]);
    body["seats"] = json!([{"section": "A", "row": "1", "tier": 1, "from": 1, "to": 3}]);
    body["real_name"] = json!(true);
    let act = a.create_warm(&admin, body).await;
    let view = a
        .get(&format!("/api/v1/seckill/activities/{act}"), None)
        .await;
    assert_eq!(view.data()["real_name"], json!(true), "{}", view.body);
    let path = format!("/api/v1/seckill/activities/{act}/buy");
    let alice = a.user("rn-alice").await;
    let bob = a.user("rn-bob").await;
    let lines = json!([
        {"tier": 1, "quantity": 1, "seats": ["A-1-1"]},
        {"tier": 2, "quantity": 1},
    ]);
    let zhang = json!({"name": "张三", "id_type": "id_card", "id_number": CARD});
    let li = json!({"name": "Li Si", "id_type": "passport", "id_number": "E12345678"});
    for (holders, why) in [
        (json!([zhang.clone()]), "one holder for two tickets"),
        (json!([zhang.clone(), zhang.clone()]), "one document twice"),
        (
            json!([zhang.clone(), {"name": "Li Si", "id_type": "id_card", "id_number": "110105194912310021"}]),
            "a wrong check digit",
        ),
    ] {
        let r = a
            .call(
                "POST",
                &path,
                Some(&alice),
                Some(json!({"lines": lines, "holders": holders})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{why}: {}", r.body);
        assert!(
            !r.body.to_string().contains(CARD)
                && !r.body.to_string().contains("110105194912310021"),
            "{}",
            r.body
        );
    }
    let r = a
        .call(
            "POST",
            &path,
            Some(&alice),
            Some(json!({"lines": lines, "holders": [zhang.clone(), li]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert!(!r.body.to_string().contains(CARD), "{}", r.body);
    assert_eq!(r.data()["holders"][0]["id_masked"], "110***********002X");
    assert_eq!(r.data()["holders"][1]["id_masked"], "E1*****78");
    assert_eq!(r.data()["lines"][0]["seats"], json!(["A-1-1"]));
    let order = r.data()["order_id"].as_str().unwrap().to_string();
    // 张三's card holds a ticket: Bob cannot name it, whatever the name or the letter case.
    let other =
        json!({"name": "Zhang San", "id_type": "id_card", "id_number": CARD.to_lowercase()});
    let bobs = json!({"lines": [{"tier": 2, "quantity": 1}], "holders": [other]});
    let r = a.call("POST", &path, Some(&bob), Some(bobs.clone())).await;
    assert_eq!(
        (r.code(), r.data()["holders"].clone()),
        (3015, json!(["110***********002X"])),
        "{}",
        r.body
    );
    a.settle_pipeline().await;
    let o = a
        .get(&format!("/api/v1/orders/{order}"), Some(&alice))
        .await;
    assert_eq!(o.data()["holders"][0]["name"], "张三", "{}", o.body);
    assert_eq!(o.data()["holders"][0]["id_masked"], "110***********002X");
    assert!(!o.body.to_string().contains(CARD), "{}", o.body);
    let (_, metrics) = a.text("/metrics").await;
    assert!(
        metrics.contains("seckill_fail_reason{reason=\"holder_taken\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains(CARD));
    let c = a
        .call(
            "POST",
            &format!("/api/v1/orders/{order}/cancel"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    let r = a.call("POST", &path, Some(&bob), Some(bobs)).await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "a cancel frees it: {}",
        r.body
    );
    // A session that is not real-name takes no holders.
    let plain = a.create_warm(&admin, activity_body(&pid, 5, 2, 1)).await;
    let r = a
        .call(
            "POST",
            &format!("/api/v1/seckill/activities/{plain}/buy"),
            Some(&bob),
            Some(json!({"holders": [zhang]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}
