//! Both providers against the local sandbox of their gateway: the shared `PaymentProvider`
//! conformance suite of seckill-core runs on each, then the money moved and each provider's own
//! refusals, with the sandbox's demo keys.

use seckill_core::domain::{Money, OrderId, Payment, PaymentId, PaymentStatus, UserId};
use seckill_core::payment::{Callback, PaymentProvider};
use seckill_core::Error;
use seckill_pay::alipay::{Alipay, AlipayConfig};
use seckill_pay::keys::Signer;
use seckill_pay::sandbox::{demo_keys, loopback_listener, Sandbox, SandboxKeys};
use seckill_pay::wechat::{WechatConfig, WechatPay};
use std::sync::Arc;

const MERCHANT_PUB: &str = demo_keys::MERCHANT_PUBLIC;
const PROVIDER_KEY: &str = demo_keys::PROVIDER_PRIVATE;

async fn sandbox() -> Sandbox {
    Sandbox::start(
        loopback_listener(7310).await.expect("a port"),
        SandboxKeys::demo(),
    )
    .await
    .unwrap()
}

fn alipay_config(s: &Sandbox) -> AlipayConfig {
    s.alipay_config("http://127.0.0.1:18080/api/v1/payment/callback/alipay")
}

fn wechat_config(s: &Sandbox) -> WechatConfig {
    s.wechat_config("http://127.0.0.1:18080/api/v1/payment/callback/wechat")
}

/// A WeChat Pay merchant whose API is at `api_base`.
fn wechat_at(api_base: &str) -> WechatConfig {
    WechatConfig {
        api_base: api_base.into(),
        mch_id: "1".into(),
        app_id: "wx".into(),
        merchant_serial: "s".into(),
        merchant_private_key: demo_keys::MERCHANT_PRIVATE.into(),
        platform_public_key: demo_keys::PROVIDER_PUBLIC.into(),
        platform_serial: "p".into(),
        api_v3_key: demo_keys::API_V3.into(),
        notify_url: "http://x/".into(),
    }
}

/// A payment deadline a quarter of an hour away.
fn soon() -> seckill_core::Timestamp {
    chrono::Utc::now() + chrono::Duration::minutes(15)
}

fn payment(id: i64, fen: i64) -> Payment {
    let t = chrono::Utc::now();
    Payment {
        id: PaymentId(id),
        order_id: OrderId(id * 10),
        user_id: UserId(1),
        provider: String::new(),
        amount: Money(fen),
        status: PaymentStatus::Pending,
        provider_txn_id: None,
        callbacks_seen: 0,
        created_at: t,
        updated_at: t,
    }
}

/// A fresh sandbox and `make` of its provider, as the shared conformance suite takes them.
async fn conformance(
    make: fn(&Sandbox) -> Arc<dyn PaymentProvider>,
) -> Option<seckill_core::conformance::payment::Backend> {
    let s = Arc::new(sandbox().await);
    let provider = make(&s);
    Some(seckill_core::conformance::payment::Backend {
        provider,
        pay: Arc::new(move |_, checkout| s.pay(&checkout.pay_url).expect("the sandbox takes it")),
    })
}

async fn alipay() -> Option<seckill_core::conformance::payment::Backend> {
    conformance(|s| Arc::new(Alipay::new(alipay_config(s)).unwrap())).await
}

async fn wechat() -> Option<seckill_core::conformance::payment::Backend> {
    conformance(|s| Arc::new(WechatPay::new(wechat_config(s)).unwrap())).await
}

mod alipay_suite {
    use super::*;
    seckill_core::payment_provider_conformance!(alipay);
}

mod wechat_suite {
    use super::*;
    seckill_core::payment_provider_conformance!(wechat);
}

#[tokio::test]
async fn paying_twice_takes_the_money_once_and_refunding_twice_returns_it_once() {
    let s = sandbox().await;
    let providers: [Arc<dyn PaymentProvider>; 2] = [
        Arc::new(Alipay::new(alipay_config(&s)).unwrap()),
        Arc::new(WechatPay::new(wechat_config(&s)).unwrap()),
    ];
    for (i, p) in providers.iter().enumerate() {
        let pay = payment(100 + i as i64, 128_000);
        let checkout = p.create(&pay, soon()).await.unwrap();
        let n = p
            .verify_callback(&s.pay(&checkout.pay_url).unwrap())
            .unwrap();
        // The provider retries its notification; the buyer reloads the page and pays again.
        assert_eq!(
            p.verify_callback(&s.pay(&checkout.pay_url).unwrap())
                .unwrap(),
            n
        );
        p.refund(&pay).await.unwrap();
        p.refund(&pay).await.unwrap();
        assert_eq!(
            s.ledger().charged.get(&pay.id),
            Some(&pay.amount),
            "{}",
            p.name()
        );
        assert_eq!(
            s.ledger().refunded.get(&pay.id),
            Some(&pay.amount),
            "{}",
            p.name()
        );
    }
    assert_eq!(
        (s.ledger().charged.len(), s.ledger().refunded.len()),
        (2, 2)
    );
    assert_eq!(providers[0].callback_ack(), Some("success"));
    assert_eq!(providers[1].callback_ack(), None);
}

#[tokio::test]
async fn a_trade_past_its_deadline_cannot_be_paid_and_queries_as_failed() {
    let s = sandbox().await;
    let providers: [Arc<dyn PaymentProvider>; 2] = [
        Arc::new(Alipay::new(alipay_config(&s)).unwrap()),
        Arc::new(WechatPay::new(wechat_config(&s)).unwrap()),
    ];
    for (i, p) in providers.iter().enumerate() {
        let late = payment(200 + i as i64, 990);
        let past = chrono::Utc::now() - chrono::Duration::seconds(5);
        let checkout = p.create(&late, past).await.unwrap();
        let refused = s.pay(&checkout.pay_url).unwrap_err();
        assert!(
            refused.to_string().contains("time_expire"),
            "{}: {refused}",
            p.name()
        );
        let closed = p
            .query(&late)
            .await
            .unwrap()
            .expect("a closed trade is an answer");
        assert!(!closed.succeeded, "{}: {closed:?}", p.name());
    }
    assert!(s.ledger().charged.is_empty());
}

#[tokio::test]
async fn alipay_refuses_what_it_did_not_sign_or_is_for_another_app() {
    let s = sandbox().await;
    let p = Alipay::new(alipay_config(&s)).unwrap();
    let checkout = p.create(&payment(7, 1280), soon()).await.unwrap();
    let cb = s.pay(&checkout.pay_url).unwrap();
    // Signed by the merchant's key instead of Alipay's.
    let other = Alipay::new(AlipayConfig {
        alipay_public_key: MERCHANT_PUB.into(),
        ..alipay_config(&s)
    })
    .unwrap();
    assert!(matches!(
        other.verify_callback(&cb),
        Err(Error::Unauthenticated(_))
    ));
    // Signed by Alipay, but for another application.
    let elsewhere = Alipay::new(AlipayConfig {
        app_id: "2021000000000002".into(),
        ..alipay_config(&s)
    })
    .unwrap();
    assert!(matches!(
        elsewhere.verify_callback(&cb),
        Err(Error::InvalidArgument(_))
    ));
    // A sign_type other than RSA2 is refused before anything else.
    let md5 = Callback {
        body: [cb.body.as_slice(), b"&sign_type=RSA"].concat(),
        ..cb.clone()
    };
    assert!(p.verify_callback(&md5).is_err());
    // A merchant signing with a key the gateway does not know: the pay URL and the API refuse.
    let wrong_merchant = Alipay::new(AlipayConfig {
        app_private_key: PROVIDER_KEY.into(),
        ..alipay_config(&s)
    })
    .unwrap();
    let bad = wrong_merchant
        .create(&payment(8, 1280), soon())
        .await
        .unwrap();
    assert!(s.pay(&bad.pay_url).is_err());
    let refused = wrong_merchant.query(&payment(7, 1280)).await.unwrap_err();
    assert!(
        refused.to_string().contains("isv.invalid-signature"),
        "{refused}"
    );
}

#[tokio::test]
async fn wechat_refuses_a_replay_an_unknown_key_and_another_merchant() {
    let s = sandbox().await;
    let p = WechatPay::new(wechat_config(&s)).unwrap();
    let checkout = p.create(&payment(9, 990), soon()).await.unwrap();
    assert!(checkout.pay_url.starts_with("weixin://wxpay/bizpayurl?pr="));
    let cb = s.pay(&checkout.pay_url).unwrap();
    p.verify_callback(&cb).unwrap();

    let with = |name: &str, value: String| {
        let mut c = cb.clone();
        c.headers.insert(name.into(), value);
        c
    };
    // A notification WeChat Pay signed six minutes ago (a replay) is refused, though the
    // signature over its old timestamp verifies.
    let stale = (chrono::Utc::now().timestamp() - 360).to_string();
    let nonce = &cb.headers["wechatpay-nonce"];
    let mut message = format!("{stale}\n{nonce}\n").into_bytes();
    message.extend_from_slice(&cb.body);
    message.push(b'\n');
    let mut replay = with("wechatpay-timestamp", stale);
    replay.headers.insert(
        "wechatpay-signature".into(),
        Signer::from_key(PROVIDER_KEY)
            .unwrap()
            .sign(&message)
            .unwrap(),
    );
    let refused = p.verify_callback(&replay).unwrap_err();
    assert!(refused.to_string().contains("five minutes"), "{refused}");
    assert!(matches!(
        p.verify_callback(&with("wechatpay-serial", "PUB_KEY_ID_OTHER".into())),
        Err(Error::Unauthenticated(_))
    ));
    // Signed by WeChat Pay, but the transaction is another merchant's.
    let other = WechatPay::new(WechatConfig {
        mch_id: "1900000002".into(),
        ..wechat_config(&s)
    })
    .unwrap();
    assert!(matches!(
        other.verify_callback(&cb),
        Err(Error::InvalidArgument(_))
    ));
    // Another API v3 key cannot read the resource.
    let other_key = WechatPay::new(WechatConfig {
        api_v3_key: "fedcba9876543210fedcba9876543210".into(),
        ..wechat_config(&s)
    })
    .unwrap();
    assert!(other_key.verify_callback(&cb).is_err());
    // Paid: opening the same order again is refused as paid.
    assert!(matches!(
        p.create(&payment(9, 990), soon()).await,
        Err(Error::Conflict { .. })
    ));
    // A merchant key the platform does not know: every call is refused.
    let wrong_merchant = WechatPay::new(WechatConfig {
        merchant_private_key: PROVIDER_KEY.into(),
        ..wechat_config(&s)
    })
    .unwrap();
    assert!(wrong_merchant
        .create(&payment(10, 990), soon())
        .await
        .is_err());
    // And answers not signed by the platform are not believed.
    let wrong_platform = WechatPay::new(WechatConfig {
        platform_public_key: MERCHANT_PUB.into(),
        ..wechat_config(&s)
    })
    .unwrap();
    assert!(matches!(
        wrong_platform.query(&payment(9, 990)).await,
        Err(Error::Unauthenticated(_))
    ));
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let short_key = WechatConfig {
        api_v3_key: "short".into(),
        ..wechat_at("http://127.0.0.1:1")
    };
    assert!(matches!(
        WechatPay::new(short_key),
        Err(Error::InvalidArgument(_))
    ));
    let bad_pem = WechatConfig {
        merchant_private_key: "nope".into(),
        ..wechat_at("http://127.0.0.1:1")
    };
    assert!(matches!(
        WechatPay::new(bad_pem),
        Err(Error::InvalidArgument(_))
    ));
    let debug = format!(
        "{:?} {:?}",
        wechat_at("http://127.0.0.1:1"),
        Alipay::new(AlipayConfig {
            gateway: "g".into(),
            app_id: "a".into(),
            app_private_key: demo_keys::MERCHANT_PRIVATE.into(),
            alipay_public_key: demo_keys::PROVIDER_PUBLIC.into(),
            notify_url: "n".into(),
            return_url: None,
        })
        .unwrap()
    );
    assert!(!debug.contains("PRIVATE"), "secrets are redacted: {debug}");
    assert!(
        !debug.contains(demo_keys::API_V3),
        "secrets are redacted: {debug}"
    );
}

#[tokio::test]
async fn an_unreachable_gateway_is_unavailable_and_retryable() {
    let p = WechatPay::new(wechat_at("http://127.0.0.1:1")).unwrap();
    let e = p.query(&payment(1, 1)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
}
