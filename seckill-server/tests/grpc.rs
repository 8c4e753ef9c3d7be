//! The gRPC services with a tonic client against a served process: the same engine, tokens and
//! rules as HTTP (buy → result → order, ownership, cancel, validation, error codes).

mod support;

use seckill_server::grpc::pb;
use serde_json::json;
use support::*;
use tonic::transport::Channel;
use tonic::{Code, Request};

struct Served {
    channel: Channel,
    api: Api,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn served() -> Served {
    let mut api = api(true).await;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // Served over TCP; the in-process router on the same state stays usable for setup.
    let server = api.server.take().unwrap();
    let task = tokio::spawn(async move {
        server
            .serve_with_grpc(http, Some(grpc), async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Served {
        channel,
        api,
        stop: Some(tx),
        task,
    }
}

fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn seckill_code(s: &tonic::Status) -> u32 {
    s.metadata()
        .get("seckill-code")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn buy_result_and_orders_over_grpc() {
    let mut s = served().await;
    let a = &s.api;
    let alice = a.user("alice").await;
    let bob = a.user("bob").await;
    let act: i64 = a.demo_activity().await.parse().unwrap();
    let mut seckill = pb::seckill_service_client::SeckillServiceClient::new(s.channel.clone());
    let mut orders = pb::order_service_client::OrderServiceClient::new(s.channel.clone());
    let mut users = pb::user_service_client::UserServiceClient::new(s.channel.clone());

    let info = seckill
        .get_activity(pb::GetActivityRequest { id: act })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((info.status.as_str(), info.available), ("live", Some(100)));

    // No token, a bad token: unauthenticated with the HTTP API's code.
    let buy = |qty| pb::BuyRequest {
        activity_id: act,
        quantity: qty,
        idempotency_key: "k1".into(),
    };
    let e = seckill.buy(Request::new(buy(1))).await.unwrap_err();
    assert_eq!((e.code(), seckill_code(&e)), (Code::Unauthenticated, 1001));
    let e = seckill.buy(authed(buy(1), "junk")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    let r = seckill
        .buy(authed(buy(1), &alice))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.replayed && r.order_id > 0);
    let again = seckill
        .buy(authed(buy(1), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.order_id, again.replayed),
        (r.order_id, true),
        "idempotent"
    );
    let e = seckill.buy(authed(buy(2), &alice)).await.unwrap_err();
    assert_eq!(
        (e.code(), seckill_code(&e)),
        (Code::FailedPrecondition, 2005),
        "same key, other body"
    );
    let e = seckill
        .buy(authed(
            pb::BuyRequest {
                activity_id: act,
                quantity: 5,
                idempotency_key: String::new(),
            },
            &alice,
        ))
        .await
        .unwrap_err();
    assert_eq!(seckill_code(&e), 3006, "above the per-user limit: {e:?}");

    a.settle_pipeline().await;
    let res = seckill
        .get_result(authed(
            pb::GetResultRequest {
                order_id: r.order_id,
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.status, "pending_payment");
    assert_eq!(res.order.unwrap().amount, 128_000);
    // Bob sees nothing of Alice's.
    let res = seckill
        .get_result(authed(
            pb::GetResultRequest {
                order_id: r.order_id,
            },
            &bob,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((res.status.as_str(), res.order), ("processing", None));
    let e = orders
        .get_order(authed(pb::GetOrderRequest { id: r.order_id }, &bob))
        .await
        .unwrap_err();
    assert_eq!((e.code(), seckill_code(&e)), (Code::NotFound, 4001));
    let e = orders
        .cancel_order(authed(pb::CancelOrderRequest { id: r.order_id }, &bob))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    let list = orders
        .list_orders(authed(pb::ListOrdersRequest::default(), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((list.total, list.items[0].id), (1, r.order_id));
    let e = orders
        .list_orders(authed(
            pb::ListOrdersRequest {
                status: "lost".into(),
                ..Default::default()
            },
            &alice,
        ))
        .await
        .unwrap_err();
    assert_eq!((e.code(), seckill_code(&e)), (Code::InvalidArgument, 2003));
    let c = orders
        .cancel_order(authed(pb::CancelOrderRequest { id: r.order_id }, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (c.status.as_str(), c.cancel_reason.as_deref()),
        ("cancelled", Some("user"))
    );
    // The same state over HTTP.
    let h = a
        .get(&format!("/api/v1/orders/{}", r.order_id), Some(&alice))
        .await;
    assert_eq!(h.data()["status"], "cancelled");

    // Tokens and users.
    let t = users
        .validate_token(pb::ValidateTokenRequest {
            token: alice.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.role, "user");
    let me = users
        .get_user(authed(pb::GetUserRequest { id: t.user_id }, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.username, "alice");
    let e = users
        .get_user(authed(pb::GetUserRequest { id: t.user_id }, &bob))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "someone else's record");
    let out = a
        .call("POST", "/api/v1/user/logout", Some(&alice), Some(json!({})))
        .await;
    assert_eq!(out.status, 200, "{}", out.body);
    let e = users
        .validate_token(pb::ValidateTokenRequest { token: alice })
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::Unauthenticated,
        "logged out over HTTP: revoked over gRPC too"
    );
    // The gRPC buy checks the revocation too (after the engine's in-memory refusals): bob has
    // bought nothing, so only his revoked token can refuse him.
    let out = a
        .call("POST", "/api/v1/user/logout", Some(&bob), Some(json!({})))
        .await;
    assert_eq!(out.status, 200, "{}", out.body);
    let e = seckill
        .buy(authed(
            pb::BuyRequest {
                activity_id: act,
                quantity: 1,
                idempotency_key: String::new(),
            },
            &bob,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), seckill_code(&e)),
        (Code::Unauthenticated, 1001),
        "a revoked token buys nothing over gRPC: {e:?}"
    );

    s.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), &mut s.task)
        .await
        .expect("gRPC and HTTP drain on shutdown")
        .unwrap();
}
