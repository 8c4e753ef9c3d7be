//! The PostgreSQL repositories: the repository conformance suite, and the engine's
//! never-oversell proofs with PostgreSQL as the system of record (stock in memory, and stock in
//! Redis), each case in a schema of its own.

mod support;

use seckill_core::conformance::engine::{machine, race, Fixture};
use seckill_core::conformance::service_url;
use seckill_core::engine::Backends;
use seckill_store::redis::{RedisDelayQueue, RedisLock, RedisStockReserver, DEFAULT_MAX_BATCH};
use std::sync::Arc;

mod repo_suite {
    use super::support::pg_repos;
    seckill_core::repo_conformance!(pg_repos);
}

fn with_pg(name: &'static str, pg: String, redis: Option<String>) -> Fixture {
    Fixture::new(name, move |clock, provider| {
        let (pg, redis) = (pg.clone(), redis.clone());
        Box::pin(async move {
            let repos = support::pg_repos_at(&pg).await;
            let mut b = Backends::in_memory(clock, provider);
            b.users = repos.users;
            b.catalog = repos.catalog;
            b.orders = repos.orders;
            b.payments = repos.payments;
            if let Some(r) = redis {
                let t = support::redis_at(&r).await;
                b.stock = Arc::new(RedisStockReserver::new(t.clone(), DEFAULT_MAX_BATCH));
                b.delay = Arc::new(RedisDelayQueue::new(t.clone()));
                b.lock = Arc::new(RedisLock::new(t));
            }
            b
        })
    })
}

fn cases() -> u32 {
    // Each case creates a schema; a quarter of the in-memory count keeps CI time in check.
    (machine::cases_from_env() / 4).max(16)
}

#[test]
fn guarantees_hold_with_postgres_and_memory_stock() {
    let Some(pg) = service_url("SECKILL_TEST_PG_URL") else {
        return;
    };
    if let Err(e) = machine::state_machine(&with_pg("pg+memory", pg, None), cases()) {
        panic!("{e}");
    }
}

#[test]
fn guarantees_hold_with_postgres_and_redis_stock() {
    let Some(pg) = service_url("SECKILL_TEST_PG_URL") else {
        return;
    };
    let Some(redis) = service_url("SECKILL_TEST_REDIS_URL") else {
        return;
    };
    if let Err(e) = machine::state_machine(&with_pg("pg+redis", pg, Some(redis)), cases()) {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_buyers_with_postgres_and_redis_stock() {
    let Some(pg) = service_url("SECKILL_TEST_PG_URL") else {
        return;
    };
    let Some(redis) = service_url("SECKILL_TEST_REDIS_URL") else {
        return;
    };
    race::ten_thousand_buyers(&with_pg("pg+redis", pg, Some(redis))).await;
}

/// A Redis restarted empty under PostgreSQL: re-warmed from the database's orders, whose units
/// it keeps (finding 2 of the chaos run).
#[tokio::test]
async fn a_redis_that_lost_its_data_is_healed_from_postgres() {
    let Some(pg) = service_url("SECKILL_TEST_PG_URL") else {
        return;
    };
    let Some(redis) = service_url("SECKILL_TEST_REDIS_URL") else {
        return;
    };
    use seckill_core::conformance::engine::stock_loss;
    let f = with_pg("pg+redis", pg, Some(redis));
    stock_loss::a_stock_backend_that_lost_its_data_is_healed(&f).await;
    stock_loss::an_acknowledged_buy_lost_with_the_stock_backend_is_told_lost(&f).await;
    stock_loss::the_checker_reports_an_acknowledged_buy_nobody_was_told_about(&f).await;
}

/// The stock backend "rewound" (a reserver that skips the stock check lets every buyer through):
/// the database still never sells more than the stock, and the refused holds are released.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rewound_stock_backend_cannot_oversell_the_database() {
    let Some(pg) = service_url("SECKILL_TEST_PG_URL") else {
        return;
    };
    let broken = Fixture::new("pg+broken-stock", move |clock, provider| {
        let pg = pg.clone();
        Box::pin(async move {
            let mut b = (Fixture::broken_memory().make)(clock, provider).await;
            let repos = support::pg_repos_at(&pg).await;
            b.users = repos.users;
            b.catalog = repos.catalog;
            b.orders = repos.orders;
            b.payments = repos.payments;
            b
        })
    });
    race::ten_thousand_buyers_catch_a_broken_reserver(&broken).await;
}

pub(crate) mod order_transaction {
    use super::support::pg_repos;
    use chrono::{Duration as CDuration, Utc};
    use seckill_core::domain::*;
    use seckill_core::repo::CreateOrder;
    use seckill_core::Error;

    async fn setup(repos: &seckill_core::registry::Repos, total: u32) -> Activity {
        seckill_core::conformance::engine::live_activity(
            repos.catalog.as_ref(),
            Utc::now() - CDuration::minutes(1),
            total,
            100,
        )
        .await
    }

    pub(crate) fn order(a: &Activity, hold: i64, user: i64) -> Order {
        let now = Utc::now();
        Order {
            holders: Vec::new(),
            id: OrderId(hold + 1_000_000),
            hold_id: HoldId(hold),
            user_id: UserId(user),
            activity_id: a.id,
            quantity: 1,
            amount: Money(100),
            status: OrderStatus::PendingPayment,
            expires_at: now + CDuration::minutes(15),
            payment_id: None,
            cancel_reason: None,
            created_at: now,
            updated_at: now,
            trace_parent: None,
            lines: Vec::new(),
        }
    }

    /// Retries what PostgreSQL aborted (a deadlock between batches in opposite orders), as a
    /// redelivery would.
    async fn with_retry(
        repos: &seckill_core::registry::Repos,
        batch: &[(String, Order)],
    ) -> Vec<CreateOrder> {
        for _ in 0..20 {
            match repos.orders.create_from_holds(batch).await {
                Ok(v) => return v,
                Err(e @ Error::Unavailable { .. }) => eprintln!("retrying: {e}"),
                Err(e) => panic!("{e}"),
            }
        }
        panic!("no progress")
    }

    /// Duplicated and reordered deliveries of the same holds, by concurrent workers (batches
    /// in opposite orders, single deliveries, different message ids): exactly one order each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn duplicate_and_reordered_deliveries_make_exactly_one_order_per_hold() {
        let Some(repos) = pg_repos().await else {
            return;
        };
        let a = setup(&repos, 1_000).await;
        let base = seckill_core::conformance::unique_id() % 1_000_000_000;
        let holds: Vec<i64> = (0..40).map(|i| base + i).collect();
        let mut tasks = Vec::new();
        for worker in 0..8 {
            let repos = repos.clone();
            let a = a.clone();
            let mut mine: Vec<(String, Order)> = holds
                .iter()
                .map(|h| (format!("hold-{h}"), order(&a, *h, h % 7)))
                .collect();
            if worker % 2 == 1 {
                mine.reverse();
            }
            if worker >= 6 {
                // Different message ids for the same holds (a relay re-published them).
                for (m, _) in &mut mine {
                    m.push_str("-again");
                }
            }
            tasks.push(tokio::spawn(async move {
                if worker == 4 {
                    let mut out = Vec::new();
                    for item in &mine {
                        out.extend(with_retry(&repos, std::slice::from_ref(item)).await);
                    }
                    out
                } else {
                    with_retry(&repos, &mine).await
                }
            }));
        }
        let mut created = std::collections::HashMap::new();
        for t in tasks {
            for o in t.await.unwrap() {
                match o {
                    CreateOrder::Created(o) => *created.entry(o.hold_id).or_insert(0) += 1,
                    CreateOrder::Duplicate(_) => {}
                    CreateOrder::Rejected(r) => panic!("unexpected rejection {r:?}"),
                }
            }
        }
        assert_eq!(created.len(), holds.len());
        assert!(created.values().all(|n| *n == 1), "{created:?}");
        let orders = repos.orders.activity_orders(a.id).await.unwrap();
        assert_eq!(orders.len(), holds.len());
        assert_eq!(
            repos.catalog.activity(a.id).await.unwrap().unwrap().sold,
            holds.len() as u32
        );
    }
}

/// Payment and timeout race for the same orders on separate connections: exactly one wins
/// each order, and a payment that lost ends refunded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pay_and_timeout_race_and_one_wins() {
    use chrono::Duration as CDuration;
    use seckill_core::conformance::engine::{sale, SaleSpec};
    use seckill_core::domain::{OrderStatus, PaymentStatus, UserId};
    use seckill_core::engine::{BuyOutcome, BuyRequest};
    let Some(pg) = service_url("SECKILL_TEST_PG_URL") else {
        return;
    };
    let s = sale(
        &with_pg("pg+memory", pg, None),
        SaleSpec {
            total: 30,
            limit: 1,
            ..SaleSpec::default()
        },
    )
    .await;
    let e = &s.engine;
    let mut w = e.order_worker().await.unwrap();
    let mut orders = Vec::new();
    for u in 0..30 {
        let r = e
            .buy(BuyRequest {
                holders: Vec::new(),
                user_id: UserId(u),
                activity_id: s.activity,
                quantity: 1,
                request_id: None,
                lines: Vec::new(),
            })
            .await
            .unwrap();
        let BuyOutcome::Reserved { order_id, .. } = r else {
            panic!("{r:?}")
        };
        orders.push((UserId(u), order_id));
    }
    s.drain(&mut w).await;
    let mut payments = Vec::new();
    for (u, o) in &orders {
        payments.push(e.start_payment(*u, *o).await.unwrap().payment);
    }
    // The deadline passes while the buyers pay.
    s.clock.advance(CDuration::seconds(601));
    let mut tasks = Vec::new();
    for ((_, o), p) in orders.iter().zip(&payments) {
        let (e1, e2) = (e.clone(), e.clone());
        let (o, cb) = (*o, s.provider.pay(p));
        tasks.push(tokio::spawn(async move { e1.expire_order(o).await }));
        tasks.push(tokio::spawn(async move {
            e2.handle_callback("mock", &cb).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let (mut paid, mut cancelled) = (0, 0);
    for ((_, o), p) in orders.iter().zip(&payments) {
        let order = e.backends().orders.order(*o).await.unwrap().unwrap();
        let payment = e.backends().payments.payment(p.id).await.unwrap().unwrap();
        match order.status {
            OrderStatus::Paid => {
                paid += 1;
                assert_eq!(payment.status, PaymentStatus::Succeeded);
            }
            OrderStatus::Cancelled => {
                cancelled += 1;
                assert_eq!(
                    payment.status,
                    PaymentStatus::Refunded,
                    "a late payment is refunded"
                );
            }
            other => panic!("order {o} ended {other}"),
        }
    }
    assert_eq!(paid + cancelled, orders.len());
    eprintln!("pay vs timeout: {paid} paid, {cancelled} cancelled and refunded");
    s.assert_at_rest(orders.iter().map(|(_, o)| *o).collect())
        .await;
}

/// Migration 6 partitions `orders` and `inbox` under a schema that already holds orders,
/// payments and processed messages: every row is kept, and every guard of the order
/// transaction still holds on the partitioned tables.
mod partitioning {
    use chrono::{Duration as CDuration, Utc};
    use seckill_core::conformance::service_url;
    use seckill_core::domain::*;
    use seckill_core::repo::{
        CatalogRepo, CreateOrder, OrderFilter, OrderRepo, PageRequest, PaymentRecorded,
        PaymentRepo, StatusChange,
    };
    use seckill_core::{Entity, Error};
    use seckill_store::postgres::{migrate, migrate_to, PgStore};

    /// Ids of this test's own, from its activity's.
    fn base(a: &Activity) -> i64 {
        (a.id.0 % 1_000_000_000) * 10_000
    }

    /// Order `n` of `a` (hold `base + n`), traced, so that the copy is seen to keep it.
    fn order(a: &Activity, n: i64, user: i64) -> Order {
        Order {
            trace_parent: Some(format!("00-{:032x}-{:016x}-01", n + 1, n + 1)),
            ..super::order_transaction::order(a, base(a) + n, user)
        }
    }

    /// Migration 12 counts the live orders written before it: their units per tier in
    /// `activity_tier_units` and their seats in `order_seats` (a cancelled order's not), so the
    /// order transaction's tier and seat guards see every unit sold before the upgrade.
    #[tokio::test]
    async fn migration_12_counts_the_tiers_and_seats_sold_before_it() {
        let Some(url) = service_url("SECKILL_TEST_PG_URL") else {
            return;
        };
        let pool = super::support::pg_schema_at(&url).await;
        assert_eq!(
            migrate_to(&pool, 11).await.unwrap(),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        );
        let s = PgStore::new(pool.clone());
        let now = Utc::now() - CDuration::minutes(1);
        // A session of the product of the plain activity a schema of its age had.
        let a = Activity {
            id: ActivityId(seckill_core::conformance::unique_id()),
            total_stock: 3,
            per_user_limit: 3,
            tiers: vec![Tier {
                id: 1,
                name: "seated".into(),
                price: Money(100),
                stock: 3,
            }],
            seats: vec![SeatBlock {
                section: "A".into(),
                row: "1".into(),
                tier: 1,
                from: 1,
                to: 3,
            }],
            ..activity_at_5(&pool).await
        };
        s.insert_activity(&a).await.unwrap();
        let c = pool.get().await.unwrap();
        for (n, status, seats) in [
            (1, "paid", vec!["A-1-1", "A-1-2"]),
            (2, "cancelled", vec!["A-1-3"]),
        ] {
            let line = TierLine {
                seats: seats.iter().map(|x| x.to_string()).collect(),
                ..TierLine::new(1, seats.len() as u32)
            };
            c.execute(
                "INSERT INTO orders (id, hold_id, user_id, activity_id, quantity, amount, status,
                     expires_at, created_at, updated_at, lines)
                 VALUES ($1, $1, $2, $3, $4, 100, $5, $6, $6, $6, $7)",
                &[
                    &(base(&a) + n),
                    &n,
                    &a.id.0,
                    &(line.quantity as i32),
                    &status,
                    &now,
                    &tokio_postgres::types::Json(vec![line.clone()]),
                ],
            )
            .await
            .unwrap();
        }
        assert_eq!(migrate(&pool).await.unwrap(), [12]);
        let units: i32 = c
            .query_one(
                "SELECT units FROM activity_tier_units WHERE activity_id = $1 AND tier = 1",
                &[&a.id.0],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(units, 2, "the paid order's units, not the cancelled one's");
        let seats: Vec<String> = c
            .query(
                "SELECT seat FROM order_seats WHERE activity_id = $1 ORDER BY seat",
                &[&a.id.0],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(seats, ["A-1-1", "A-1-2"]);
        // The guards count them: seat A-1-2 again is refused, the last unit on A-1-3 is not.
        let line = |seat: &str| TierLine {
            seats: vec![seat.to_string()],
            ..TierLine::new(1, 1)
        };
        let mut again = super::order_transaction::order(&a, base(&a) + 3, 3);
        again.lines = vec![line("A-1-2")];
        assert_eq!(
            s.create_from_hold("m3", &again).await.unwrap(),
            CreateOrder::Rejected(seckill_core::repo::OrderRejection::SeatTaken)
        );
        let mut last = super::order_transaction::order(&a, base(&a) + 4, 4);
        last.lines = vec![line("A-1-3")];
        assert_eq!(
            s.create_from_hold("m4", &last).await.unwrap(),
            CreateOrder::Created(last.clone())
        );
    }

    /// A product and a live activity (100 units, 2 each), written as a schema at migration 5
    /// has them (the store of today writes columns of later migrations).
    async fn activity_at_5(pool: &seckill_store::postgres::Pool) -> Activity {
        let now = Utc::now() - CDuration::minutes(1);
        let id = seckill_core::conformance::unique_id;
        let a = Activity {
            real_name: false,
            id: ActivityId(id()),
            product_id: ProductId(id()),
            title: "flash sale".into(),
            price: Money(48_000),
            total_stock: 100,
            sold: 0,
            per_user_limit: 2,
            starts_at: now,
            ends_at: now + CDuration::days(2),
            cancelled: false,
            created_at: now,
            stock_buckets: 1,
            event_id: None,
            tiers: Vec::new(),
            quotas: Vec::new(),
            seats: Vec::new(),
        };
        let c = pool.get().await.unwrap();
        c.execute(
            "INSERT INTO products (id, name, description, list_price, created_at)
             VALUES ($1, 'stand', 'test', 128000, $2)",
            &[&a.product_id.0, &now],
        )
        .await
        .unwrap();
        c.execute(
            "INSERT INTO activities (id, product_id, title, price, total_stock, sold,
                 per_user_limit, starts_at, ends_at, cancelled, created_at)
             VALUES ($1, $2, $3, $4, 100, 0, 2, $5, $6, false, $5)",
            &[
                &a.id.0,
                &a.product_id.0,
                &a.title,
                &a.price.0,
                &now,
                &a.ends_at,
            ],
        )
        .await
        .unwrap();
        a
    }

    const ALL: PageRequest = PageRequest {
        page: 1,
        page_size: 100,
    };

    #[tokio::test]
    async fn partitioning_orders_keeps_every_row_and_the_order_transactions_guards() {
        let Some(url) = service_url("SECKILL_TEST_PG_URL") else {
            return;
        };
        let pool = super::support::pg_schema_at(&url).await;
        assert_eq!(migrate_to(&pool, 5).await.unwrap(), [1, 2, 3, 4, 5]);
        // Today's store writes the orders' tier lines, holders, tier units and seats
        // (migrations 9, 11 and 12, which do nothing to the partitioning under test and run
        // again, as no-ops, below).
        for m in [8, 10, 11] {
            let (_, sql) = seckill_store::postgres::MIGRATIONS[m];
            pool.get().await.unwrap().batch_execute(sql).await.unwrap();
        }
        let s = PgStore::new(pool.clone());
        let a = activity_at_5(&pool).await;
        // 40 orders of 20 buyers (2 each, the limit), in a batch and one at a time.
        let batch: Vec<(String, Order)> = (0..30)
            .map(|n| (format!("m{n}"), order(&a, n, n % 20)))
            .collect();
        s.create_from_holds(&batch).await.unwrap();
        for n in 30..40 {
            let r = s
                .create_from_hold(&format!("m{n}"), &order(&a, n, n % 20))
                .await
                .unwrap();
            assert!(matches!(r, CreateOrder::Created(_)), "{r:?}");
        }
        // One paid, one cancelled.
        let paid = order(&a, 0, 0);
        let payment = Payment {
            id: PaymentId(base(&a) + 999),
            order_id: paid.id,
            user_id: paid.user_id,
            provider: "mock".into(),
            amount: paid.amount,
            status: PaymentStatus::Pending,
            provider_txn_id: None,
            callbacks_seen: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        s.insert_payment(&payment).await.unwrap();
        let r = s
            .record_result(payment.id, "txn-1", PaymentStatus::Succeeded, Utc::now())
            .await
            .unwrap();
        assert!(matches!(r, PaymentRecorded::Applied(_)), "{r:?}");
        let change = |from, to, payment_id, cancel_reason| StatusChange {
            from,
            to,
            at: Utc::now(),
            payment_id,
            cancel_reason,
        };
        s.change_status(
            paid.id,
            change(
                OrderStatus::PendingPayment,
                OrderStatus::Paid,
                Some(payment.id),
                None,
            ),
        )
        .await
        .unwrap();
        let cancelled = order(&a, 1, 1);
        s.change_status(
            cancelled.id,
            change(
                OrderStatus::PendingPayment,
                OrderStatus::Cancelled,
                None,
                Some(CancelReason::User),
            ),
        )
        .await
        .unwrap();
        let before = s.list_orders(&OrderFilter::default(), ALL).await.unwrap();
        let sold = s.activity(a.id).await.unwrap().unwrap().sold;
        assert_eq!((before.total, sold), (40, 39));

        assert_eq!(migrate(&pool).await.unwrap(), [6, 7, 8, 9, 10, 11, 12]);

        // Every row, as it was.
        let after = s.list_orders(&OrderFilter::default(), ALL).await.unwrap();
        assert_eq!(after, before);
        assert_eq!(s.activity(a.id).await.unwrap().unwrap().sold, sold);
        let p = s.order_payments(paid.id).await.unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].status, PaymentStatus::Succeeded);
        let mine = OrderFilter {
            user_id: Some(UserId(3)),
            ..OrderFilter::default()
        };
        assert_eq!(s.list_orders(&mine, ALL).await.unwrap().total, 2);
        // Partitioned, and the rows spread over the partitions.
        let c = pool.get().await.unwrap();
        let parts: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
                 WHERE p.relname = 'orders' AND p.relkind = 'p'
                   AND p.relnamespace = current_schema()::regnamespace",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(parts, 16);
        let used: i64 = c
            .query_one("SELECT count(DISTINCT tableoid) FROM orders", &[])
            .await
            .unwrap()
            .get(0);
        assert!(used > 1, "every order in one partition");

        // The guards, on the partitioned tables: a message processed before the migration is
        // a duplicate; so is a new message for a hold written before it; the per-user limit
        // holds across the old rows; a payment of someone else's order is refused; one order
        // is paid by one payment.
        let r = s.create_from_hold("m5", &order(&a, 5, 5)).await.unwrap();
        assert!(matches!(r, CreateOrder::Duplicate(_)), "{r:?}");
        let r = s
            .create_from_hold("new-msg", &order(&a, 6, 6))
            .await
            .unwrap();
        assert!(matches!(r, CreateOrder::Duplicate(_)), "{r:?}");
        let over = Order {
            id: OrderId(base(&a) + 100),
            hold_id: HoldId(base(&a) + 600),
            ..order(&a, 7, 7)
        };
        let r = s.create_from_hold("m-over", &over).await.unwrap();
        assert!(matches!(r, CreateOrder::Rejected(_)), "{r:?}");
        let stranger = Payment {
            id: PaymentId(base(&a) + 998),
            user_id: UserId(4),
            order_id: order(&a, 3, 3).id,
            ..payment.clone()
        };
        let got = s.insert_payment(&stranger).await;
        assert!(
            matches!(
                got,
                Err(Error::NotFound {
                    entity: Entity::Order,
                    ..
                })
            ),
            "{got:?}"
        );
        let fresh = Order {
            id: OrderId(base(&a) + 101),
            hold_id: HoldId(base(&a) + 601),
            ..order(&a, 8, 25)
        };
        let r = s.create_from_hold("m-fresh", &fresh).await.unwrap();
        assert!(matches!(r, CreateOrder::Created(_)), "{r:?}");
        assert_eq!(
            s.order(fresh.id).await.unwrap().unwrap().user_id,
            UserId(25)
        );
        assert_eq!(s.activity(a.id).await.unwrap().unwrap().sold, sold + 1);
        // A hold redelivered under a new id but to another buyer (it cannot happen: a hold is
        // one buyer's) is still one order: the transaction's own check reads every partition.
        let moved = Order {
            user_id: UserId(26),
            id: OrderId(base(&a) + 102),
            ..fresh.clone()
        };
        let r = s.create_from_hold("m-moved", &moved).await.unwrap();
        assert!(matches!(r, CreateOrder::Duplicate(_)), "{r:?}");
    }
}
