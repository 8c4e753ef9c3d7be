//! `POST /api/v1/payment/callback/alipay` and `…/wechat` end to end: the server configured with
//! each real provider, against seckill-pay's sandbox of its gateway. A buyer pays, the signed
//! notification is applied once however often it comes, a forged one is refused, a lost one is
//! recovered by the reconciler asking the provider, and a refund returns the money once.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use seckill_core::payment::Callback;
use seckill_pay::sandbox::{loopback_listener, Sandbox, SandboxKeys};
use seckill_server::config::{Config, Secret};
use serde_json::Value;
use support::*;
use tower::ServiceExt;

async fn sandbox() -> Sandbox {
    Sandbox::start(
        loopback_listener(7410).await.expect("a port"),
        SandboxKeys::demo(),
    )
    .await
    .unwrap()
}

/// Pays through the sandbox with `provider` (comma-separated), its merchants' settings as the
/// sandbox gives them.
fn configure(cfg: &mut Config, provider: &str, s: &Sandbox) {
    let (alipay, wechat) = (s.alipay_config(""), s.wechat_config(""));
    let p = &mut cfg.payment;
    p.provider = provider.into();
    p.public_url = Some("https://tickets.example.com".into());
    p.alipay.gateway = alipay.gateway;
    p.alipay.app_id = alipay.app_id;
    p.alipay.app_private_key = Some(Secret(alipay.app_private_key));
    p.alipay.alipay_public_key = alipay.alipay_public_key;
    p.wechat.api_base = wechat.api_base;
    p.wechat.mch_id = wechat.mch_id;
    p.wechat.app_id = wechat.app_id;
    p.wechat.merchant_serial = wechat.merchant_serial;
    p.wechat.merchant_private_key = Some(Secret(wechat.merchant_private_key));
    p.wechat.platform_public_key = wechat.platform_public_key;
    p.wechat.platform_serial = wechat.platform_serial;
    p.wechat.api_v3_key = Some(Secret(wechat.api_v3_key));
}

/// POSTs a provider's notification as it sends it; the answer as text.
async fn deliver(a: &Api, provider: &str, cb: &Callback) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method("POST")
        .uri(format!("/api/v1/payment/callback/{provider}"));
    for (k, v) in &cb.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = a
        .router
        .clone()
        .oneshot(req.body(Body::from(cb.body.clone())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// A settled order of `token`'s: its id.
async fn new_order(a: &Api, token: &str) -> String {
    let act = a.demo_activity().await;
    let order = a.buy(token, &act, 1).await.data()["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    a.settle_pipeline().await;
    order
}

/// Opens a payment of `order` with `provider`: the payment's JSON.
async fn pay_with(a: &Api, token: &str, order: &str, provider: &str) -> Value {
    let pay = a
        .call(
            "POST",
            &format!("/api/v1/orders/{order}/pay?provider={provider}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(pay.status, StatusCode::CREATED, "{}", pay.body);
    assert_eq!(pay.data()["provider"], provider);
    pay.data().clone()
}

/// A settled order of `token`'s and the payment opened for it with `provider`.
async fn order_and_payment(a: &Api, token: &str, provider: &str) -> (String, Value) {
    let order = new_order(a, token).await;
    let pay = pay_with(a, token, &order, provider).await;
    (order, pay)
}

async fn order_status(a: &Api, token: &str, order: &str) -> Value {
    a.get(&format!("/api/v1/orders/{order}"), Some(token))
        .await
        .data()["status"]
        .clone()
}

async fn pays_once_refuses_forgeries_and_recovers_lost_callbacks(provider: &str, ack: &str) {
    let s = sandbox().await;
    let a = api_with(true, |c| configure(c, "alipay,wechat", &s)).await;
    let alice = a.user("alice").await;

    let (order, pay) = order_and_payment(&a, &alice, provider).await;
    let cb = s.pay(pay["pay_url"].as_str().unwrap()).unwrap();

    // Forged: one byte of the signed body changed.
    let mut forged = cb.clone();
    let at = forged.body.iter().position(|b| b.is_ascii_digit()).unwrap();
    forged.body[at] = if forged.body[at] == b'9' { b'8' } else { b'9' };
    let (status, text) = deliver(&a, provider, &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["code"], 5002);
    assert_eq!(order_status(&a, &alice, &order).await, "pending_payment");

    // The real one, delivered twice (providers retry): paid once, acknowledged each time.
    for _ in 0..2 {
        let (status, text) = deliver(&a, provider, &cb).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        if ack.is_empty() {
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(body["data"]["result"], "paid", "{body}");
        } else {
            assert_eq!(text, ack);
        }
    }
    assert_eq!(order_status(&a, &alice, &order).await, "paid");
    // A provider this server is not configured with has no callback here; the other one
    // does not take this provider's notification.
    let (status, _) = deliver(&a, "mock", &cb).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let other = if provider == "alipay" {
        "wechat"
    } else {
        "alipay"
    };
    let (status, text) = deliver(&a, other, &cb).await;
    assert!(status.is_client_error(), "{status} {text}");

    // A callback that never arrives: the reconciler asks the provider and settles the order.
    let bob = a.user("bob").await;
    let (lost_order, lost_pay) = order_and_payment(&a, &bob, provider).await;
    s.pay(lost_pay["pay_url"].as_str().unwrap()).unwrap();
    assert_eq!(order_status(&a, &bob, &lost_order).await, "pending_payment");
    assert!(a.state.engine.reconcile_payments().await.unwrap() >= 1);
    assert_eq!(order_status(&a, &bob, &lost_order).await, "paid");

    // The buyer's refund goes back through the provider, once.
    let pid = pay["payment_id"].as_str().unwrap();
    let refund_path = format!("/api/v1/payment/{pid}/refund");
    let refund = || a.call("POST", &refund_path, Some(&alice), None);
    for _ in 0..2 {
        let r = refund().await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["status"], "refunded");
    }
    assert_eq!(order_status(&a, &alice, &order).await, "refunded");
    let ledger = s.ledger();
    assert_eq!(ledger.charged.len(), 2, "{ledger:?}");
    assert_eq!(ledger.refunded.len(), 1, "{ledger:?}");
    // The guarantee checker, with the provider's ledger: nobody charged twice, every refund
    // matches a payment its order could not keep.
    let act: seckill_core::domain::ActivityId = a.demo_activity().await.parse().unwrap();
    let expect = seckill_core::invariants::Expect {
        reserved: vec![order.parse().unwrap(), lost_order.parse().unwrap()],
        paid: vec![lost_pay["payment_id"].as_str().unwrap().parse().unwrap()],
        ledger: Some(ledger),
        quiescent: true,
        told_lost_allowed: false,
    };
    let violations = seckill_core::invariants::check(&a.state.engine, act, &expect)
        .await
        .unwrap();
    assert!(violations.is_empty(), "{violations:?}");
}

#[tokio::test]
async fn alipay_end_to_end() {
    pays_once_refuses_forgeries_and_recovers_lost_callbacks("alipay", "success").await;
}

#[tokio::test]
async fn wechat_end_to_end() {
    pays_once_refuses_forgeries_and_recovers_lost_callbacks("wechat", "").await;
}

#[tokio::test]
async fn paying_at_both_providers_charges_once_net() {
    let s = sandbox().await;
    let a = api_with(true, |c| configure(c, "alipay,wechat", &s)).await;
    let alice = a.user("alice").await;
    let order = new_order(&a, &alice).await;
    // The default is the first configured provider; asking again reuses the open payment.
    let default = a
        .call(
            "POST",
            &format!("/api/v1/orders/{order}/pay"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(default.data()["provider"], "alipay");
    let alipay = pay_with(&a, &alice, &order, "alipay").await;
    assert_eq!(alipay["payment_id"], default.data()["payment_id"]);
    let wechat = pay_with(&a, &alice, &order, "wechat").await;
    assert_ne!(wechat["payment_id"], alipay["payment_id"]);
    let unknown = a
        .call(
            "POST",
            &format!("/api/v1/orders/{order}/pay?provider=paypal"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, 5005)
    );

    // The buyer pays at both: the first callback pays the order, the second is refunded.
    for (name, p) in [("wechat", &wechat), ("alipay", &alipay)] {
        let cb = s.pay(p["pay_url"].as_str().unwrap()).unwrap();
        let (status, text) = deliver(&a, name, &cb).await;
        assert_eq!(status, StatusCode::OK, "{name}: {text}");
    }
    assert_eq!(order_status(&a, &alice, &order).await, "paid");
    let ledger = s.ledger();
    assert_eq!(ledger.charged.len(), 2, "{ledger:?}");
    let refunded: Vec<_> = ledger.refunded.keys().map(|k| k.to_string()).collect();
    assert_eq!(refunded, [alipay["payment_id"].as_str().unwrap()]);
    let paid_by = a
        .get(&format!("/api/v1/orders/{order}"), Some(&alice))
        .await
        .data()["payment_id"]
        .clone();
    assert_eq!(paid_by, wechat["payment_id"]);

    // A notification WeChat Pay signed for a payment that Alipay holds (an Alipay payment id
    // opened at WeChat Pay behind the server's back) is refused: its money and refunds would
    // not be where the record says.
    let bob = a.user("bob").await;
    let bobs = new_order(&a, &bob).await;
    let at_alipay = pay_with(&a, &bob, &bobs, "alipay").await;
    let record = a.payment_record(&at_alipay["payment_id"]).await;
    let mut cfg = Config::default();
    configure(&mut cfg, "wechat", &s);
    let behind = seckill_server::providers::build(&cfg.payment, String::new).unwrap();
    let checkout = behind
        .providers
        .default_provider()
        .create(&record, chrono::Utc::now() + chrono::Duration::minutes(15))
        .await
        .unwrap();
    let cb = s.pay(&checkout.pay_url).unwrap();
    let (status, text) = deliver(&a, "wechat", &cb).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(order_status(&a, &bob, &bobs).await, "pending_payment");
}

#[tokio::test]
async fn a_payment_past_its_order_deadline_closes_at_the_provider() {
    let s = sandbox().await;
    let a = api_with(true, |c| {
        configure(c, "alipay,wechat", &s);
        c.sale.payment_timeout_secs = 2;
    })
    .await;
    let alice = a.user("alice").await;
    let mut payments = Vec::new();
    for provider in ["alipay", "wechat"] {
        payments.push(order_and_payment(&a, &alice, provider).await.1);
    }
    // The providers were told the order's deadline: once it has passed, nobody can pay.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    for p in &payments {
        let refused = s.pay(p["pay_url"].as_str().unwrap()).unwrap_err();
        assert!(refused.to_string().contains("time_expire"), "{refused}");
    }
    // The reconciler hears "closed" and records the payments failed, so it stops asking.
    assert_eq!(a.state.engine.reconcile_payments().await.unwrap(), 2);
    for p in &payments {
        let record = a.payment_record(&p["payment_id"]).await;
        assert_eq!(record.status, seckill_core::domain::PaymentStatus::Failed);
    }
    assert_eq!(a.state.engine.reconcile_payments().await.unwrap(), 0);
    assert!(s.ledger().charged.is_empty());
}

#[tokio::test]
async fn a_provider_without_its_settings_does_not_start() {
    let s = sandbox().await;
    for (provider, breaks, says) in [
        ("alipay", "public_url", "payment.public_url"),
        ("alipay", "key", "payment.alipay"),
        ("wechat", "v3", "payment.wechat"),
        ("paypal", "", "available: mock, alipay, wechat"),
        ("alipay,alipay", "", "named twice"),
    ] {
        let mut cfg = Config::default();
        configure(&mut cfg, provider, &s);
        match breaks {
            "public_url" => cfg.payment.public_url = None,
            "key" => cfg.payment.alipay.app_private_key = Some(Secret("garbage".into())),
            "v3" => cfg.payment.wechat.api_v3_key = Some(Secret("short".into())),
            _ => {}
        }
        let err = seckill_server::app::build(cfg)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{provider}/{breaks}: {err}");
    }
}
