//! Conformance cases of the repositories ([`Repos`]).

use crate::domain::{
    Activity, ActivityId, CancelReason, Event, EventId, HoldId, Money, Order, OrderId, OrderStatus,
    Payment, PaymentId, PaymentStatus, Product, ProductId, Role, User, UserId,
};
use crate::registry::Repos;
use crate::repo::{
    CreateOrder, OrderFilter, OrderRejection, PageRequest, PaymentRecorded, StatusChange,
    StatusChanged, Voided,
};
use crate::{Error, Timestamp};
use chrono::{Duration as CDuration, TimeZone, Utc};

/// The backend under test.
pub type Backend = Repos;

fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
}

fn id() -> i64 {
    super::unique_id()
}

async fn activity(b: &Backend, total: u32, limit: u32) -> Activity {
    let p = Product {
        id: ProductId(id()),
        name: "Concert A".into(),
        description: "front row".into(),
        list_price: Money(10_000),
        created_at: t0(),
    };
    b.catalog.insert_product(&p).await.unwrap();
    let a = Activity {
        real_name: false,
        id: ActivityId(id()),
        product_id: p.id,
        title: "flash".into(),
        price: Money(4_800),
        total_stock: total,
        sold: 0,
        per_user_limit: limit,
        starts_at: t0(),
        ends_at: t0() + CDuration::hours(1),
        cancelled: false,
        created_at: t0(),
        stock_buckets: 3,
        event_id: None,
        tiers: Vec::new(),
        quotas: Vec::new(),
        seats: Vec::new(),
    };
    b.catalog.insert_activity(&a).await.unwrap();
    a
}

fn order(a: &Activity, user: i64, qty: u32) -> Order {
    Order {
        holders: Vec::new(),
        id: OrderId(id()),
        hold_id: HoldId(id()),
        user_id: UserId(user),
        activity_id: a.id,
        quantity: qty,
        amount: Money(a.price.0 * i64::from(qty)),
        status: OrderStatus::PendingPayment,
        expires_at: t0() + CDuration::minutes(15),
        payment_id: None,
        cancel_reason: None,
        created_at: t0(),
        updated_at: t0(),
        trace_parent: None,
        lines: Vec::new(),
    }
}

fn to(from: OrderStatus, to: OrderStatus) -> StatusChange {
    StatusChange {
        from,
        to,
        at: t0() + CDuration::minutes(1),
        payment_id: None,
        cancel_reason: (to == OrderStatus::Cancelled).then_some(CancelReason::User),
    }
}

/// Usernames are unique; users read back by id and name.
pub async fn users_are_unique(b: &Backend) {
    let name = format!("alice{}", id());
    let u = User {
        id: UserId(id()),
        username: name.clone(),
        phone: Some("13800000000".into()),
        password_hash: "$argon2id$x".into(),
        role: Role::User,
        token_version: 0,
        created_at: t0(),
    };
    b.users.insert_user(&u).await.unwrap();
    let dup = User {
        id: UserId(id()),
        ..u.clone()
    };
    // Every backend names the taken username alike (the API's 1004 and its message).
    match b.users.insert_user(&dup).await {
        Err(Error::Conflict {
            entity: crate::Entity::Username,
            id,
            ..
        }) => assert_eq!(id, name),
        other => panic!("a taken username must be a Conflict on it: {other:?}"),
    }
    assert_eq!(b.users.user(u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(b.users.user_by_name(&name).await.unwrap(), Some(u.clone()));
    let changed = User {
        token_version: 1,
        ..u.clone()
    };
    b.users.update_user(&changed).await.unwrap();
    assert_eq!(b.users.user(u.id).await.unwrap().unwrap().token_version, 1);
}

/// Activities need their product; updates never touch `sold` and never drop below it.
pub async fn catalog_round_trips(b: &Backend) {
    let a = activity(b, 10, 2).await;
    assert_eq!(b.catalog.activity(a.id).await.unwrap(), Some(a.clone()));
    assert!(b.catalog.product(a.product_id).await.unwrap().is_some());
    let orphan = Activity {
        id: ActivityId(id()),
        product_id: ProductId(id()),
        ..a.clone()
    };
    // The missing product is named, alike on every backend (the API's 6001).
    assert!(matches!(
        b.catalog.insert_activity(&orphan).await,
        Err(Error::NotFound {
            entity: crate::Entity::Product,
            ..
        })
    ));
    let o = order(&a, 1, 2);
    b.orders.create_from_hold("m1", &o).await.unwrap();
    let update = Activity {
        title: "renamed".into(),
        sold: 0,
        ..a.clone()
    };
    b.catalog.update_activity(&update, 0).await.unwrap();
    let now = b.catalog.activity(a.id).await.unwrap().unwrap();
    assert_eq!((now.title.as_str(), now.sold), ("renamed", 2));
    let too_small = Activity {
        total_stock: 1,
        ..a.clone()
    };
    assert!(matches!(
        b.catalog.update_activity(&too_small, 0).await,
        Err(Error::Conflict { .. })
    ));
    let page = b
        .catalog
        .list_activities(PageRequest::DEFAULT)
        .await
        .unwrap();
    assert!(page.items.iter().any(|x| x.id == a.id));
}

/// Events read back, list newest first and update; an activity names its event, which must
/// exist (`NotFound` on the event), and an event lists its sessions earliest first; an update
/// of an activity keeps its event.
pub async fn events_group_sessions(b: &Backend) {
    let e = Event {
        id: EventId(id()),
        title: "Tour 2027".into(),
        venue: "Stadium".into(),
        description: "two nights".into(),
        created_at: t0(),
    };
    b.catalog.insert_event(&e).await.unwrap();
    assert!(matches!(
        b.catalog.insert_event(&e).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(b.catalog.event(e.id).await.unwrap(), Some(e.clone()));
    assert_eq!(b.catalog.event(EventId(id())).await.unwrap(), None);
    let later = Event {
        id: EventId(id()),
        title: "Tour 2028".into(),
        ..e.clone()
    };
    b.catalog.insert_event(&later).await.unwrap();
    let page = b.catalog.list_events(PageRequest::DEFAULT).await.unwrap();
    let at = |id: EventId| page.items.iter().position(|x| x.id == id);
    assert!(at(later.id).unwrap() < at(e.id).unwrap(), "newest first");
    let renamed = Event {
        venue: "Arena".into(),
        created_at: t0() + CDuration::days(1),
        ..e.clone()
    };
    b.catalog.update_event(&renamed).await.unwrap();
    let now = b.catalog.event(e.id).await.unwrap().unwrap();
    assert_eq!((now.venue.as_str(), now.created_at), ("Arena", t0()));
    assert!(matches!(
        b.catalog
            .update_event(&Event {
                id: EventId(id()),
                ..e.clone()
            })
            .await,
        Err(Error::NotFound {
            entity: crate::Entity::Event,
            ..
        })
    ));

    let plain = activity(b, 10, 2).await;
    let night = |day: i64| Activity {
        id: ActivityId(id()),
        event_id: Some(e.id),
        starts_at: t0() + CDuration::days(day),
        ends_at: t0() + CDuration::days(day) + CDuration::hours(1),
        ..plain.clone()
    };
    let (second, first) = (night(2), night(1));
    b.catalog.insert_activity(&second).await.unwrap();
    b.catalog.insert_activity(&first).await.unwrap();
    let sessions: Vec<ActivityId> = b
        .catalog
        .event_activities(e.id)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(sessions, [first.id, second.id]);
    assert!(b
        .catalog
        .event_activities(later.id)
        .await
        .unwrap()
        .is_empty());
    let orphan = Activity {
        id: ActivityId(id()),
        event_id: Some(EventId(id())),
        ..plain.clone()
    };
    assert!(matches!(
        b.catalog.insert_activity(&orphan).await,
        Err(Error::NotFound {
            entity: crate::Entity::Event,
            ..
        })
    ));
    assert_eq!(b.catalog.activity(orphan.id).await.unwrap(), None);
    let moved = Activity {
        event_id: None,
        title: "renamed".into(),
        ..first.clone()
    };
    b.catalog.update_activity(&moved, 0).await.unwrap();
    let kept = b.catalog.activity(first.id).await.unwrap().unwrap();
    assert_eq!(
        (kept.title.as_str(), kept.event_id),
        ("renamed", Some(e.id))
    );
}

/// A session's tiers and quotas read back as written, and so do its orders' tier lines,
/// written one at a time or in a batch (docs/adr/0021).
pub async fn tiers_and_lines_round_trip(b: &Backend) {
    use crate::domain::{Quota, Tier, TierLine};
    let plain = activity(b, 10, 4).await;
    let tier = |id: u32, price: i64, stock: u32| Tier {
        id,
        name: format!("tier {id}"),
        price: Money(price),
        stock,
    };
    let a = Activity {
        id: ActivityId(id()),
        price: Money(38_000),
        total_stock: 9,
        stock_buckets: 1,
        tiers: vec![tier(1, 38_000, 6), tier(2, 58_000, 4)],
        quotas: vec![Quota {
            id: 3,
            name: "student".into(),
            cap: 5,
            tiers: vec![1, 2],
        }],
        ..plain.clone()
    };
    b.catalog.insert_activity(&a).await.unwrap();
    assert_eq!(b.catalog.activity(a.id).await.unwrap(), Some(a.clone()));
    let with = |user: i64, lines: &[(u32, u32)]| Order {
        lines: lines
            .iter()
            .map(|&(tier, quantity)| TierLine::new(tier, quantity))
            .collect(),
        ..order(&a, user, lines.iter().map(|l| l.1).sum())
    };
    let one = with(1, &[(1, 1), (2, 2)]);
    assert!(matches!(
        b.orders
            .create_from_hold(&format!("t{}", one.id), &one)
            .await
            .unwrap(),
        CreateOrder::Created(_)
    ));
    let batch = vec![
        (format!("t{}", id()), with(2, &[(2, 1)])),
        (format!("t{}", id()), with(3, &[(1, 2), (2, 1)])),
    ];
    b.orders.create_from_holds(&batch).await.unwrap();
    for o in std::iter::once(&one).chain(batch.iter().map(|(_, o)| o)) {
        let got = b.orders.order(o.id).await.unwrap().expect("written");
        assert_eq!(got.lines, o.lines);
        assert_eq!(got.hold().lines, o.lines);
    }
    let all = b.orders.activity_orders(a.id).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|o| !o.lines.is_empty()));
}

/// An update fenced with a token below the highest one the activity was updated with is
/// refused and changes nothing; the same or a higher token updates; token 0 is unfenced.
pub async fn stale_fenced_update_is_refused(b: &Backend) {
    let a = activity(b, 10, 2).await;
    let (old, new) = (1_900_000_000_000_000u64, 1_900_000_000_000_001u64);
    let named = |title: &str| Activity {
        title: title.into(),
        ..a.clone()
    };
    b.catalog
        .update_activity(&named("by the newest holder"), new)
        .await
        .unwrap();
    let stale = b
        .catalog
        .update_activity(&named("by a stale holder"), old)
        .await;
    assert!(
        matches!(
            &stale,
            Err(Error::Conflict {
                entity: crate::Entity::ActivityLock,
                ..
            })
        ),
        "a stale token must be refused: {stale:?}"
    );
    let title = b.catalog.activity(a.id).await.unwrap().unwrap().title;
    assert_eq!(title, "by the newest holder");
    b.catalog
        .update_activity(&named("again"), new)
        .await
        .unwrap();
    b.catalog
        .update_activity(&named("a later holder"), new + 1)
        .await
        .unwrap();
    assert!(b
        .catalog
        .update_activity(&named("now stale"), new)
        .await
        .is_err());
    let title = b.catalog.activity(a.id).await.unwrap().unwrap().title;
    assert_eq!(title, "a later holder");
}

/// Products are updated (never their creation time), listed with their activities, and
/// deleted only while they have none.
pub async fn products_update_and_delete(b: &Backend) {
    let a = activity(b, 10, 2).await;
    let p = b.catalog.product(a.product_id).await.unwrap().unwrap();
    let renamed = Product {
        name: "Concert B".into(),
        list_price: Money(12_000),
        created_at: t0() + CDuration::days(1),
        ..p.clone()
    };
    b.catalog.update_product(&renamed).await.unwrap();
    let now = b.catalog.product(p.id).await.unwrap().unwrap();
    assert_eq!(
        (now.name.as_str(), now.list_price),
        ("Concert B", Money(12_000))
    );
    assert_eq!(now.created_at, p.created_at, "the creation time stays");
    let ghost = Product {
        id: ProductId(id()),
        ..p.clone()
    };
    assert!(matches!(
        b.catalog.update_product(&ghost).await,
        Err(Error::NotFound { .. })
    ));
    let later = Activity {
        id: ActivityId(id()),
        starts_at: a.starts_at + CDuration::hours(2),
        ends_at: a.ends_at + CDuration::hours(2),
        ..a.clone()
    };
    b.catalog.insert_activity(&later).await.unwrap();
    let ids: Vec<ActivityId> = b
        .catalog
        .product_activities(p.id)
        .await
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(ids, [later.id, a.id], "newest start first");
    assert!(matches!(
        b.catalog.delete_product(p.id).await,
        Err(Error::Conflict { .. })
    ));
    let lone = Product {
        id: ProductId(id()),
        ..p.clone()
    };
    b.catalog.insert_product(&lone).await.unwrap();
    assert!(b
        .catalog
        .product_activities(lone.id)
        .await
        .unwrap()
        .is_empty());
    b.catalog.delete_product(lone.id).await.unwrap();
    assert_eq!(b.catalog.product(lone.id).await.unwrap(), None);
    assert!(matches!(
        b.catalog.delete_product(lone.id).await,
        Err(Error::NotFound { .. })
    ));
}

/// The order transaction: created once; a redelivery or a second message for the same hold is
/// a duplicate; `sold` grows once.
pub async fn order_insert_is_idempotent(b: &Backend) {
    let a = activity(b, 10, 5).await;
    // The buy's trace context is kept with the order.
    let o = Order {
        trace_parent: Some(TRACE.into()),
        ..order(&a, 1, 2)
    };
    assert_eq!(
        b.orders.create_from_hold("m1", &o).await.unwrap(),
        CreateOrder::Created(o.clone())
    );
    assert_eq!(
        b.orders.create_from_hold("m1", &o).await.unwrap(),
        CreateOrder::Duplicate(o.clone())
    );
    let same_hold = Order {
        id: OrderId(id()),
        ..o.clone()
    };
    assert_eq!(
        b.orders.create_from_hold("m2", &same_hold).await.unwrap(),
        CreateOrder::Duplicate(o.clone())
    );
    assert_eq!(b.catalog.activity(a.id).await.unwrap().unwrap().sold, 2);
    assert_eq!(
        b.orders.order_by_hold(o.hold_id).await.unwrap(),
        Some(o.clone())
    );
}

const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A voided order id is never written afterwards (alone or in a batch); a written order cannot
/// be voided; voiding twice says so; and when the void and the order race, exactly one wins.
pub async fn voided_orders_are_never_written(b: &Backend) {
    let a = activity(b, 100, 100).await;
    let lost = order(&a, 1, 1);
    assert_eq!(
        b.orders
            .void_unwritten(lost.id, lost.user_id, t0())
            .await
            .unwrap(),
        Voided::Now
    );
    assert!(b.orders.is_voided(lost.id).await.unwrap());
    assert_eq!(
        b.orders
            .void_unwritten(lost.id, lost.user_id, t0())
            .await
            .unwrap(),
        Voided::Already
    );
    assert_eq!(
        b.orders.create_from_hold("v1", &lost).await.unwrap(),
        CreateOrder::Rejected(OrderRejection::Voided)
    );
    let ok = order(&a, 2, 1);
    let out = b
        .orders
        .create_from_holds(&[("v2".into(), lost.clone()), ("v3".into(), ok.clone())])
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            CreateOrder::Rejected(OrderRejection::Voided),
            CreateOrder::Created(ok.clone())
        ]
    );
    assert_eq!(
        b.orders
            .void_unwritten(ok.id, ok.user_id, t0())
            .await
            .unwrap(),
        Voided::Written(ok.clone())
    );
    assert!(!b.orders.is_voided(ok.id).await.unwrap());
    assert_eq!(b.catalog.activity(a.id).await.unwrap().unwrap().sold, 1);
    // Races: each order id is written or voided, never both.
    let orders = b.orders.clone();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let o = order(&a, 10 + i, 1);
        let (o1, o2) = (orders.clone(), orders.clone());
        let (x, y) = (o.clone(), o.clone());
        tasks.push(tokio::spawn(async move {
            o1.create_from_hold(&format!("race-{}", x.id), &x).await
        }));
        tasks.push(tokio::spawn(async move {
            o2.void_unwritten(y.id, y.user_id, t0()).await.map(|v| {
                CreateOrder::Duplicate(match v {
                    Voided::Written(o) => o,
                    _ => y,
                })
            })
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("no error");
    }
    for o in b.orders.activity_orders(a.id).await.unwrap() {
        assert!(
            !b.orders.is_voided(o.id).await.unwrap(),
            "order {} was written and voided",
            o.id
        );
    }
}

/// The database refuses what would oversell or exceed the per-user limit.
pub async fn order_guard_refuses_oversell_and_limit(b: &Backend) {
    let a = activity(b, 3, 2).await;
    let o1 = order(&a, 1, 2);
    b.orders.create_from_hold("a", &o1).await.unwrap();
    assert_eq!(
        b.orders
            .create_from_hold("b", &order(&a, 1, 1))
            .await
            .unwrap(),
        CreateOrder::Rejected(OrderRejection::LimitExceeded)
    );
    assert_eq!(
        b.orders
            .create_from_hold("c", &order(&a, 2, 2))
            .await
            .unwrap(),
        CreateOrder::Rejected(OrderRejection::SoldOut)
    );
    b.orders
        .create_from_hold("d", &order(&a, 2, 1))
        .await
        .unwrap();
    assert_eq!(
        b.orders
            .create_from_hold("e", &order(&a, 3, 1))
            .await
            .unwrap(),
        CreateOrder::Rejected(OrderRejection::SoldOut)
    );
    assert_eq!(b.catalog.activity(a.id).await.unwrap().unwrap().sold, 3);
    // Cancelling gives units and quota back.
    b.orders
        .change_status(
            o1.id,
            to(OrderStatus::PendingPayment, OrderStatus::Cancelled),
        )
        .await
        .unwrap();
    assert_eq!(b.catalog.activity(a.id).await.unwrap().unwrap().sold, 1);
    assert!(matches!(
        b.orders
            .create_from_hold("f", &order(&a, 1, 2))
            .await
            .unwrap(),
        CreateOrder::Created(_)
    ));
}

/// Status changes are compare-and-set and only along legal transitions.
pub async fn status_changes_are_compare_and_set(b: &Backend) {
    let a = activity(b, 10, 5).await;
    let o = order(&a, 1, 1);
    b.orders.create_from_hold("m", &o).await.unwrap();
    let pay = StatusChange {
        payment_id: Some(PaymentId(77)),
        ..to(OrderStatus::PendingPayment, OrderStatus::Paid)
    };
    match b.orders.change_status(o.id, pay).await.unwrap() {
        StatusChanged::Applied(p) => {
            assert_eq!(p.status, OrderStatus::Paid);
            assert_eq!(p.payment_id, Some(PaymentId(77)));
        }
        other => panic!("{other:?}"),
    }
    match b
        .orders
        .change_status(
            o.id,
            to(OrderStatus::PendingPayment, OrderStatus::Cancelled),
        )
        .await
        .unwrap()
    {
        StatusChanged::Conflict(now) => assert_eq!(now.status, OrderStatus::Paid),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        b.orders
            .change_status(o.id, to(OrderStatus::Paid, OrderStatus::Cancelled))
            .await,
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(
        b.orders
            .change_status(OrderId(id()), to(OrderStatus::Paid, OrderStatus::Refunded))
            .await
            .unwrap(),
        StatusChanged::NotFound
    );
    assert_eq!(b.catalog.activity(a.id).await.unwrap().unwrap().sold, 1);
}

/// Lists filter by user and status, newest first, with pagination; expired pending orders are
/// found by deadline.
pub async fn lists_filter_and_paginate(b: &Backend) {
    let a = activity(b, 100, 100).await;
    let user = id();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut o = order(&a, user, 1);
        o.expires_at = t0() + CDuration::minutes(i);
        b.orders
            .create_from_hold(&format!("m{i}"), &o)
            .await
            .unwrap();
        ids.push(o.id);
    }
    b.orders
        .create_from_hold("other", &order(&a, id(), 1))
        .await
        .unwrap();
    let f = OrderFilter {
        user_id: Some(UserId(user)),
        ..OrderFilter::default()
    };
    let p1 = b
        .orders
        .list_orders(
            &f,
            PageRequest {
                page: 1,
                page_size: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(p1.total, 5);
    assert_eq!(
        p1.items.iter().map(|o| o.id).collect::<Vec<_>>(),
        [ids[4], ids[3]]
    );
    let p3 = b
        .orders
        .list_orders(
            &f,
            PageRequest {
                page: 3,
                page_size: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(p3.items.len(), 1);
    b.orders
        .change_status(
            ids[0],
            to(OrderStatus::PendingPayment, OrderStatus::Cancelled),
        )
        .await
        .unwrap();
    let cancelled = OrderFilter {
        status: Some(OrderStatus::Cancelled),
        ..f.clone()
    };
    assert_eq!(
        b.orders
            .list_orders(&cancelled, PageRequest::DEFAULT)
            .await
            .unwrap()
            .total,
        1
    );
    let expired = b
        .orders
        .expired_pending(t0() + CDuration::minutes(2), 100)
        .await
        .unwrap();
    let mine: Vec<_> = expired
        .iter()
        .filter(|o| o.user_id == UserId(user))
        .map(|o| o.id)
        .collect();
    assert_eq!(mine, [ids[1], ids[2]]);
}

/// A new pending payment of `order`.
fn pending_payment(order: OrderId) -> Payment {
    Payment {
        id: PaymentId(id()),
        order_id: order,
        user_id: UserId(1),
        provider: "mock".into(),
        amount: Money(4_800),
        status: PaymentStatus::Pending,
        provider_txn_id: None,
        callbacks_seen: 0,
        created_at: t0(),
        updated_at: t0(),
    }
}

/// Payment results are compare-and-set, idempotent per transaction id, and transaction ids are
/// unique; a refund happens once.
pub async fn payments_record_once(b: &Backend) {
    let a = activity(b, 10, 5).await;
    let o = order(&a, 1, 1);
    b.orders.create_from_hold("m", &o).await.unwrap();
    // A payment is of an order of its own buyer: someone else's, or no order, is refused.
    for stranger in [
        Payment {
            user_id: UserId(2),
            ..pending_payment(o.id)
        },
        pending_payment(OrderId(id())),
    ] {
        let got = b.payments.insert_payment(&stranger).await;
        assert!(
            matches!(
                got,
                Err(Error::NotFound {
                    entity: crate::Entity::Order,
                    ..
                })
            ),
            "{got:?}"
        );
        assert_eq!(b.payments.payment(stranger.id).await.unwrap(), None);
    }
    let p = pending_payment(o.id);
    b.payments.insert_payment(&p).await.unwrap();
    let txn = format!("txn-{}", id());
    let at = t0();
    assert!(matches!(
        b.payments.record_result(p.id, &txn, PaymentStatus::Succeeded, at).await.unwrap(),
        PaymentRecorded::Applied(ref x) if x.status == PaymentStatus::Succeeded
    ));
    assert!(matches!(
        b.payments
            .record_result(p.id, &txn, PaymentStatus::Succeeded, at)
            .await
            .unwrap(),
        PaymentRecorded::Duplicate(_)
    ));
    assert!(matches!(
        b.payments
            .record_result(p.id, "other-txn", PaymentStatus::Succeeded, at)
            .await
            .unwrap(),
        PaymentRecorded::Conflict(_)
    ));
    let q = pending_payment(p.order_id);
    b.payments.insert_payment(&q).await.unwrap();
    let txn_q = format!("txn-{}", id());
    assert!(matches!(
        b.payments
            .record_result(q.id, &txn, PaymentStatus::Succeeded, at)
            .await
            .unwrap(),
        PaymentRecorded::Conflict(_)
    ));
    assert_eq!(
        b.payments.order_payments(p.order_id).await.unwrap().len(),
        2
    );
    // A second payment of the same order succeeding: recorded, but as a refund due (an order
    // has at most one succeeded payment).
    match b
        .payments
        .record_result(q.id, &txn_q, PaymentStatus::Succeeded, at)
        .await
        .unwrap()
    {
        PaymentRecorded::Applied(x) => assert_eq!(x.status, PaymentStatus::RefundDue),
        other => panic!("{other:?}"),
    }
    assert!(b.payments.mark_refunded(q.id, at).await.unwrap());
    assert!(b.payments.mark_refunded(p.id, at).await.unwrap());
    assert!(!b.payments.mark_refunded(p.id, at).await.unwrap());
    assert_eq!(
        b.payments.payment(p.id).await.unwrap().unwrap().status,
        PaymentStatus::Refunded
    );
}

/// A batch gives every item the outcome it would get alone, in order: new orders written,
/// duplicates (earlier or within the batch) found, guards applied.
pub async fn order_batches_match_one_at_a_time(b: &Backend) {
    let a = activity(b, 6, 2).await;
    let earlier = order(&a, 1, 1);
    b.orders.create_from_hold("e", &earlier).await.unwrap();
    // A clean batch: all written at once.
    let clean: Vec<(String, Order)> = (0..3)
        .map(|i| {
            let o = Order {
                trace_parent: (i == 1).then(|| TRACE.to_string()),
                ..order(&a, 10 + i, 1)
            };
            (format!("c{i}"), o)
        })
        .collect();
    let out = b.orders.create_from_holds(&clean).await.unwrap();
    assert!(
        out.iter().all(|o| matches!(o, CreateOrder::Created(_))),
        "{out:?}"
    );
    for (_, o) in &clean {
        assert_eq!(
            b.orders.order(o.id).await.unwrap().as_ref(),
            Some(o),
            "read back as written"
        );
    }
    assert_eq!(b.catalog.activity(a.id).await.unwrap().unwrap().sold, 4);
    // A batch with a duplicate, a limit breach and more than the stock left (2 units).
    let again = order(&a, 20, 1);
    let mixed = vec![
        ("e".to_string(), earlier.clone()),
        ("m1".to_string(), order(&a, 1, 2)),
        ("m2".to_string(), again.clone()),
        ("m3".to_string(), order(&a, 21, 2)),
        ("m2".to_string(), again.clone()),
    ];
    let out = b.orders.create_from_holds(&mixed).await.unwrap();
    assert_eq!(out[0], CreateOrder::Duplicate(earlier));
    assert_eq!(out[1], CreateOrder::Rejected(OrderRejection::LimitExceeded));
    assert_eq!(out[2], CreateOrder::Created(again.clone()));
    assert_eq!(out[3], CreateOrder::Rejected(OrderRejection::SoldOut));
    assert_eq!(out[4], CreateOrder::Duplicate(again));
    assert_eq!(b.catalog.activity(a.id).await.unwrap().unwrap().sold, 5);
}

/// Concurrent sweeps cancel every expired pending order exactly once and give its units back.
pub async fn expired_orders_are_cancelled_once(b: &Backend) {
    let a = activity(b, 100, 100).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let mut o = order(&a, 1, 1);
        o.expires_at = t0() + CDuration::minutes(1);
        b.orders
            .create_from_hold(&format!("x{i}"), &o)
            .await
            .unwrap();
        ids.push(o.id);
    }
    // Another buyer's order with the default deadline (15 minutes), also past at 20.
    let other = order(&a, 2, 1);
    b.orders.create_from_hold("other", &other).await.unwrap();
    ids.push(other.id);
    let mut sweeps = Vec::new();
    for _ in 0..4 {
        let b = b.clone();
        sweeps.push(tokio::spawn(async move {
            b.orders
                .cancel_expired(t0() + CDuration::minutes(20), 100)
                .await
                .unwrap()
        }));
    }
    let mut cancelled = Vec::new();
    for s in sweeps {
        cancelled.extend(
            s.await
                .unwrap()
                .into_iter()
                .filter(|o| o.activity_id == a.id),
        );
    }
    let mut got: Vec<OrderId> = cancelled.iter().map(|o| o.id).collect();
    got.sort();
    let before = got.len();
    got.dedup();
    assert_eq!(before, got.len(), "an order was cancelled twice");
    ids.sort();
    assert_eq!(got, ids);
    assert!(cancelled
        .iter()
        .all(|o| o.status == OrderStatus::Cancelled
            && o.cancel_reason == Some(CancelReason::Timeout)));
    assert_eq!(b.catalog.activity(a.id).await.unwrap().unwrap().sold, 0);
}

/// Payments in a status come by id, a page at a time, each page going on after the last; other
/// statuses are left out.
pub async fn payments_page_by_id(b: &Backend) {
    let a = activity(b, 10, 5).await;
    let o = order(&a, 1, 1);
    b.orders.create_from_hold("m", &o).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..6 {
        let p = pending_payment(o.id);
        b.payments.insert_payment(&p).await.unwrap();
        if i == 2 {
            let txn = format!("txn-{}", id());
            b.payments
                .record_result(p.id, &txn, PaymentStatus::Failed, t0())
                .await
                .unwrap();
        } else {
            pending.push(p.id);
        }
    }
    pending.sort();
    let mut seen = Vec::new();
    let mut after = None;
    for _ in 0..4 {
        let page = b
            .payments
            .payments_in(PaymentStatus::Pending, after, 2)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        assert!(page.iter().all(|p| p.status == PaymentStatus::Pending));
        seen.extend(page.iter().map(|p| p.id));
        match page.last() {
            Some(last) => after = Some(last.id),
            None => break,
        }
    }
    assert_eq!(seen, pending);
}

/// One document, one live ticket per session, in the order step itself: an order naming a
/// document of another live order of the activity (or one twice) is `Rejected(HolderTaken)`
/// and writes nothing; another session takes it; a cancellation (by a status change or the
/// expiry sweep) frees it, a refund does not; a batch refuses the one order that clashes.
pub async fn ticket_documents_are_unique_per_session(b: &Backend) {
    let doc = |n: u32| crate::domain::Holder {
        name: format!("Holder {n}"),
        id_type: crate::domain::IdType::IdCard,
        id_masked: "110***********002X".into(),
        id_hash: format!("{:032x}", 1_000 + n),
    };
    let named = |a: &Activity, user: i64, docs: &[u32]| Order {
        holders: docs.iter().map(|&n| doc(n)).collect(),
        ..order(a, user, docs.len() as u32)
    };
    let a = activity(b, 20, 10).await;
    let first = named(&a, 1, &[1, 2]);
    assert_eq!(
        b.orders.create_from_hold("d1", &first).await.unwrap(),
        CreateOrder::Created(first.clone())
    );
    assert_eq!(
        b.orders.order(first.id).await.unwrap().unwrap().holders,
        first.holders,
        "the holders read back"
    );
    for (m, docs) in [("d2", &[2][..]), ("d3", &[3, 3][..])] {
        assert_eq!(
            b.orders
                .create_from_hold(m, &named(&a, 2, docs))
                .await
                .unwrap(),
            CreateOrder::Rejected(OrderRejection::HolderTaken),
            "{docs:?}"
        );
    }
    assert_eq!(b.catalog.activity(a.id).await.unwrap().unwrap().sold, 2);
    let other = activity(b, 20, 10).await;
    let elsewhere = named(&other, 2, &[2]);
    assert_eq!(
        b.orders.create_from_hold("d4", &elsewhere).await.unwrap(),
        CreateOrder::Created(elsewhere),
        "another session"
    );
    b.orders
        .change_status(
            first.id,
            to(OrderStatus::PendingPayment, OrderStatus::Cancelled),
        )
        .await
        .unwrap();
    let again = named(&a, 2, &[2]);
    assert_eq!(
        b.orders.create_from_hold("d5", &again).await.unwrap(),
        CreateOrder::Created(again.clone()),
        "a cancellation frees its documents"
    );
    // A batch: the second order naming document 4 is refused, the others are written.
    let batch = vec![
        ("d6".to_string(), named(&a, 3, &[4])),
        ("d7".to_string(), named(&a, 4, &[4])),
        ("d8".to_string(), named(&a, 5, &[5])),
    ];
    let out = b.orders.create_from_holds(&batch).await.unwrap();
    assert_eq!(out[0], CreateOrder::Created(batch[0].1.clone()));
    assert_eq!(out[1], CreateOrder::Rejected(OrderRejection::HolderTaken));
    assert_eq!(out[2], CreateOrder::Created(batch[2].1.clone()));
    // The expiry sweep frees them too (a deadline long past, so no other case's order is swept).
    let mut late = named(&a, 6, &[6]);
    late.expires_at = t0() - CDuration::days(10);
    b.orders.create_from_hold("d9", &late).await.unwrap();
    let swept = b
        .orders
        .cancel_expired(t0() - CDuration::days(9), 100)
        .await
        .unwrap();
    assert!(swept.iter().any(|o| o.id == late.id), "{swept:?}");
    let after = named(&a, 7, &[6]);
    assert_eq!(
        b.orders.create_from_hold("d10", &after).await.unwrap(),
        CreateOrder::Created(after.clone())
    );
    // A refunded ticket keeps its document, as it keeps its unit.
    for (from, next) in [
        (OrderStatus::PendingPayment, OrderStatus::Paid),
        (OrderStatus::Paid, OrderStatus::Refunded),
    ] {
        b.orders
            .change_status(after.id, to(from, next))
            .await
            .unwrap();
    }
    assert_eq!(
        b.orders
            .create_from_hold("d11", &named(&a, 8, &[6]))
            .await
            .unwrap(),
        CreateOrder::Rejected(OrderRejection::HolderTaken)
    );
    assert_eq!(b.catalog.activity(a.id).await.unwrap().unwrap().sold, 4);
}

/// The order step guards tiers and seats itself (docs/adr/0021), whatever the stock backend
/// let through: a line above its tier's stock is `Rejected(TierShort)`, a seat of another live
/// order (or twice in one) `Rejected(SeatTaken)`, and nothing is written; a cancellation (by a
/// status change or the expiry sweep) gives the units and seats back; a batch refuses the one
/// order that does not fit.
pub async fn tier_and_seat_guards_refuse_what_the_stock_step_let_through(b: &Backend) {
    use crate::domain::{Tier, TierLine};
    let base = activity(b, 10, 10).await;
    let tier = |id: u32, stock: u32| Tier {
        id,
        name: format!("tier {id}"),
        price: Money(100),
        stock,
    };
    let a = Activity {
        id: ActivityId(id()),
        tiers: vec![tier(1, 2), tier(2, 3)],
        stock_buckets: 1,
        ..base
    };
    b.catalog.insert_activity(&a).await.unwrap();
    let line = |t: u32, q: u32, seats: &[&str]| TierLine {
        seats: seats.iter().map(|s| s.to_string()).collect(),
        ..TierLine::new(t, q)
    };
    let with = |user: i64, lines: Vec<TierLine>| Order {
        quantity: lines.iter().map(|l| l.quantity).sum(),
        lines,
        ..order(&a, user, 1)
    };
    let first = with(1, vec![line(1, 2, &["A-1-1", "A-1-2"])]);
    assert_eq!(
        b.orders.create_from_hold("g1", &first).await.unwrap(),
        CreateOrder::Created(first.clone())
    );
    for (m, o, why) in [
        (
            "g2",
            with(2, vec![line(1, 1, &["A-1-3"])]),
            OrderRejection::TierShort,
        ),
        (
            "g3",
            with(2, vec![line(2, 1, &["A-1-1"])]),
            OrderRejection::SeatTaken,
        ),
        (
            "g4",
            with(2, vec![line(2, 2, &["B-1-1", "B-1-1"])]),
            OrderRejection::SeatTaken,
        ),
    ] {
        assert_eq!(
            b.orders.create_from_hold(m, &o).await.unwrap(),
            CreateOrder::Rejected(why),
            "{m}"
        );
    }
    assert_eq!(b.catalog.activity(a.id).await.unwrap().unwrap().sold, 2);
    b.orders
        .change_status(
            first.id,
            to(OrderStatus::PendingPayment, OrderStatus::Cancelled),
        )
        .await
        .unwrap();
    let again = with(2, vec![line(1, 1, &["A-1-1"])]);
    assert_eq!(
        b.orders.create_from_hold("g5", &again).await.unwrap(),
        CreateOrder::Created(again.clone()),
        "a cancellation gives the tier's units and the seats back"
    );
    let batch = vec![
        ("g6".to_string(), with(3, vec![line(2, 2, &[])])),
        ("g7".to_string(), with(4, vec![line(2, 2, &[])])),
    ];
    let out = b.orders.create_from_holds(&batch).await.unwrap();
    assert_eq!(out[0], CreateOrder::Created(batch[0].1.clone()));
    assert_eq!(out[1], CreateOrder::Rejected(OrderRejection::TierShort));
    let mut late = with(5, vec![line(2, 1, &["C-1-1"])]);
    late.expires_at = t0() - CDuration::days(10);
    b.orders.create_from_hold("g8", &late).await.unwrap();
    let swept = b
        .orders
        .cancel_expired(t0() - CDuration::days(9), 100)
        .await
        .unwrap();
    assert!(swept.iter().any(|o| o.id == late.id), "{swept:?}");
    let after = with(6, vec![line(2, 1, &["C-1-1"])]);
    assert_eq!(
        b.orders.create_from_hold("g9", &after).await.unwrap(),
        CreateOrder::Created(after),
        "the sweep gives them back too"
    );
    assert_eq!(b.catalog.activity(a.id).await.unwrap().unwrap().sold, 4);
}

/// Stamps out every case of this suite as a test for a backend.
#[macro_export]
macro_rules! repo_conformance {
    ($make:path) => {
        $crate::__conformance_tests!(repo, $make;
            users_are_unique,
            catalog_round_trips,
            events_group_sessions,
            tiers_and_lines_round_trip,
            stale_fenced_update_is_refused,
            products_update_and_delete,
            order_insert_is_idempotent,
            voided_orders_are_never_written,
            order_guard_refuses_oversell_and_limit,
            status_changes_are_compare_and_set,
            lists_filter_and_paginate,
            payments_record_once,
            payments_page_by_id,
            order_batches_match_one_at_a_time,
            expired_orders_are_cancelled_once,
            ticket_documents_are_unique_per_session,
            tier_and_seat_guards_refuse_what_the_stock_step_let_through,
        );
    };
}
