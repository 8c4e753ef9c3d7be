//! `/api/v1/user/*` end to end: logout and password change revoke tokens, profile updates,
//! phone verification codes (expiry of tries, rate limits), and login rate limits.

mod support;

use axum::http::StatusCode;
use serde_json::json;
use support::*;

#[tokio::test]
async fn logout_revokes_that_token_only() {
    let a = api(false).await;
    let t1 = a.user("lou").await;
    let t2 = a.login("lou", "correct-horse").await;
    let out = a.call("POST", "/api/v1/user/logout", Some(&t1), None).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    let r = a.call("GET", "/api/v1/user/profile", Some(&t1), None).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, 1001));
    assert_eq!(r.body["message"], "token revoked");
    let again = a.call("POST", "/api/v1/user/logout", Some(&t1), None).await;
    assert_eq!(
        again.status,
        StatusCode::UNAUTHORIZED,
        "a revoked token cannot log out"
    );
    let r = a.call("GET", "/api/v1/user/profile", Some(&t2), None).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the other session goes on: {}",
        r.body
    );
    let anon = a.call("POST", "/api/v1/user/logout", None, None).await;
    assert_eq!((anon.status, anon.code()), (StatusCode::UNAUTHORIZED, 1001));
}

#[tokio::test]
async fn a_password_change_revokes_every_older_token() {
    let a = api(false).await;
    let t1 = a.user("pat").await;
    let t2 = a.login("pat", "correct-horse").await;
    let change = |token: String, old: &'static str, new: &'static str| {
        let a = &a;
        async move {
            a.call(
                "POST",
                "/api/v1/user/password",
                Some(&token),
                Some(json!({"old_password": old, "new_password": new})),
            )
            .await
        }
    };
    let wrong = change(t1.clone(), "not-my-password", "battery-staple").await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::UNAUTHORIZED, 1003)
    );
    let short = change(t1.clone(), "correct-horse", "short").await;
    assert_eq!(
        (short.status, short.code()),
        (StatusCode::BAD_REQUEST, 2002)
    );
    let r = change(t1.clone(), "correct-horse", "battery-staple").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let fresh = r.data()["token"].as_str().unwrap().to_string();
    for old in [&t1, &t2] {
        let p = a.call("GET", "/api/v1/user/profile", Some(old), None).await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{}", p.body);
    }
    let p = a
        .call("GET", "/api/v1/user/profile", Some(&fresh), None)
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    // The old password no longer logs in; the new one does, with a working token.
    let old = a
        .call(
            "POST",
            "/api/v1/user/login",
            None,
            Some(json!({"username": "pat", "password": "correct-horse"})),
        )
        .await;
    assert_eq!(old.code(), 1003);
    let t3 = a.login("pat", "battery-staple").await;
    let p = a.call("GET", "/api/v1/user/profile", Some(&t3), None).await;
    assert_eq!(p.status, StatusCode::OK);
}

#[tokio::test]
async fn the_profile_takes_only_what_a_user_may_change() {
    let a = api(false).await;
    let t = a.user("pia").await;
    let put = |body: serde_json::Value| {
        let (a, t) = (&a, t.clone());
        async move {
            a.call("PUT", "/api/v1/user/profile", Some(&t), Some(body))
                .await
        }
    };
    let r = put(json!({"phone": "+8613800000000"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["phone"], "+8613800000000");
    let r = a.call("GET", "/api/v1/user/profile", Some(&t), None).await;
    assert_eq!(r.data()["phone"], "+8613800000000");
    for bad in [
        json!({"phone": "12"}),
        json!({"phone": "+86+138000"}),
        json!({"phone": "not-a-phone"}),
    ] {
        let r = put(bad.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, 2002),
            "{bad}"
        );
    }
    for not_yours in [json!({"role": "admin"}), json!({"username": "root"})] {
        let r = put(not_yours.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, 2001),
            "{not_yours}"
        );
    }
    let r = a.call("GET", "/api/v1/user/profile", Some(&t), None).await;
    assert_eq!(r.data()["role"], "user");
    let r = put(json!({"phone": null})).await;
    assert_eq!(r.data()["phone"], serde_json::Value::Null);
    let anon = a
        .call(
            "PUT",
            "/api/v1/user/profile",
            None,
            Some(json!({"phone": null})),
        )
        .await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_verification_code_works_once_and_wrong_tries_are_limited() {
    let a = api(false).await;
    let phone = "+8613912345678";
    let send = || {
        a.call(
            "POST",
            "/api/v1/user/send-code",
            None,
            Some(json!({"phone": phone})),
        )
    };
    let verify = |code: String| {
        a.call(
            "POST",
            "/api/v1/user/verify-code",
            None,
            Some(json!({"phone": phone, "code": code})),
        )
    };
    let none = verify("123456".into()).await;
    assert_eq!((none.status, none.code()), (StatusCode::BAD_REQUEST, 1006));
    let r = send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["expires_in_secs"], 300);
    let code = a.codes.last(phone).expect("a code was sent");
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let w = verify(wrong.into()).await;
    assert_eq!((w.status, w.code()), (StatusCode::BAD_REQUEST, 1005));
    assert_eq!(w.data()["tries_left"], 4);
    let ok = verify(code.clone()).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.data()["verified"], true);
    let used = verify(code).await;
    assert_eq!(used.code(), 1006, "a code works once");

    // Sending again right away is rate-limited per phone.
    let again = send().await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::TOO_MANY_REQUESTS, 3007)
    );
    assert!(again.data()["retry_after_ms"].as_u64().unwrap() > 0);
    let bad = a
        .call(
            "POST",
            "/api/v1/user/send-code",
            None,
            Some(json!({"phone": "call me"})),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, 2002));
    let bad = verify("12ab56".into()).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, 2002));
}

#[tokio::test]
async fn too_many_wrong_codes_drop_the_code() {
    let a = api_with(false, |c| c.limits.code_max_tries = 3).await;
    let phone = "+8613900000001";
    a.call(
        "POST",
        "/api/v1/user/send-code",
        None,
        Some(json!({"phone": phone})),
    )
    .await;
    let code = a.codes.last(phone).unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in [2, 1, 0] {
        let r = a
            .call(
                "POST",
                "/api/v1/user/verify-code",
                None,
                Some(json!({"phone": phone, "code": wrong})),
            )
            .await;
        assert_eq!(r.data()["tries_left"], left, "{}", r.body);
    }
    let r = a
        .call(
            "POST",
            "/api/v1/user/verify-code",
            None,
            Some(json!({"phone": phone, "code": code})),
        )
        .await;
    assert_eq!(r.code(), 1006, "the right code no longer works: {}", r.body);
}

#[tokio::test]
async fn logins_are_rate_limited_per_username() {
    let a = api(false).await;
    a.user("rita").await;
    let attempt = |pw: &'static str| {
        a.call(
            "POST",
            "/api/v1/user/login",
            None,
            Some(json!({"username": "rita", "password": pw})),
        )
    };
    // The default allows a burst of 5 per username (one login already happened).
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(attempt("guess-guess").await.code());
    }
    assert_eq!(&codes[..4], &[1003; 4], "{codes:?}");
    assert!(codes[4..].contains(&3007), "{codes:?}");
    let right = attempt("correct-horse").await;
    assert_eq!(
        right.code(),
        3007,
        "the right password waits too: {}",
        right.body
    );
}

/// A revoked token cannot buy. The buy checks the revocation after the engine's in-memory
/// refusals and before any stock step (`Engine::buy_gated`): the stock is untouched and the
/// refusal is counted. Once a sale is sold out it answers "sold out" to every verified token
/// with no I/O; a revoked token gets nothing either way.
#[tokio::test]
async fn a_revoked_token_cannot_buy() {
    let a = api(true).await;
    let act = a.demo_activity().await;
    let status = format!("/api/v1/seckill/activities/{act}/status");
    let before = a.get(&status, None).await.data()["available"].clone();
    let t = a.user("rex").await;
    let out = a.call("POST", "/api/v1/user/logout", Some(&t), None).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    let r = a.buy(&t, &act, 1).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, 1001));
    assert_eq!(r.body["message"], "token revoked");
    let after = a.get(&status, None).await.data()["available"].clone();
    assert_eq!(
        (after, before.as_i64()),
        (before.clone(), Some(100)),
        "no stock was taken"
    );
    let (_, metrics) = a.text("/metrics").await;
    assert!(
        metrics.contains("seckill_fail_reason{reason=\"unauthenticated\"} 1"),
        "{metrics}"
    );
    // A token of a password changed since is refused the same way.
    let old = a.user("pam").await;
    let change = a
        .call(
            "POST",
            "/api/v1/user/password",
            Some(&old),
            Some(json!({"old_password": "correct-horse", "new_password": "battery-staple"})),
        )
        .await;
    assert_eq!(change.status, StatusCode::OK, "{}", change.body);
    let r = a.buy(&old, &act, 1).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, 1001));
    // A token that does not verify is refused before anything else.
    let r = a.buy("not-a-token", &act, 1).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, 1001));
}

/// The buy limits (per buyer, per client IP) answer 429 with a wait, take no stock, and leave
/// a retry under a known idempotency key alone: they are charged in the reserve, after the
/// replay (ADR 0019).
#[tokio::test]
async fn buys_are_rate_limited_per_buyer_and_per_ip() {
    let a = api_with(false, |c| {
        c.sale.buy_rate_per_sec = 1;
        c.sale.buy_burst = 1;
        c.limits.login_per_ip.rate = 0;
    })
    .await;
    let admin = a.login("admin", "admin-password").await;
    let product = a.product(&admin).await;
    let act = a.live_activity_limited(&admin, &product, 10, 5).await;
    let path = format!("/api/v1/seckill/activities/{act}/buy");
    let body = json!({"quantity": 1}).to_string();
    let buy = |t: &str, key: &str| {
        let (t, key, path, body) = (t.to_string(), key.to_string(), path.clone(), body.clone());
        let a = &a;
        async move {
            a.raw(
                "POST",
                &path,
                Some(&t),
                Some(body),
                &[("idempotency-key", &key)],
            )
            .await
        }
    };
    let rhea = a.user("rhea").await;
    let first = buy(&rhea, "rhea-1").await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let fast = buy(&rhea, "rhea-2").await;
    assert_eq!(
        (fast.status, fast.code()),
        (StatusCode::TOO_MANY_REQUESTS, 3007)
    );
    assert!(
        fast.data()["retry_after_ms"].as_u64().unwrap() > 0,
        "{}",
        fast.body
    );
    let retry = buy(&rhea, "rhea-1").await;
    assert_eq!(
        retry.status,
        StatusCode::ACCEPTED,
        "a replay is not charged: {}",
        retry.body
    );
    assert_eq!(retry.data()["replayed"], true);
    let status = a
        .get(&format!("/api/v1/seckill/activities/{act}/status"), None)
        .await;
    assert_eq!(status.data()["available"], 9, "a limited buy takes nothing");

    // Per IP: every in-process request comes from the same (unknown) address.
    let b = api_with(false, |c| {
        c.sale.buy_rate_per_sec = 0;
        c.limits.buy_per_ip.rate = 1;
        c.limits.login_per_ip.rate = 0;
    })
    .await;
    let admin = b.login("admin", "admin-password").await;
    let product = b.product(&admin).await;
    let act = b.live_activity_limited(&admin, &product, 10, 5).await;
    for (name, status) in [
        ("ida", StatusCode::ACCEPTED),
        ("theo", StatusCode::TOO_MANY_REQUESTS),
    ] {
        let t = b.user(name).await;
        let r = b.buy(&t, &act, 1).await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
    }
}
