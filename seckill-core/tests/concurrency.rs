//! 10,000 buyers race for 1,000 units on the multi-threaded runtime, with the relay and two
//! order workers running concurrently, on the in-memory backends; and the negative control on a
//! reserver that skips the stock check.

use seckill_core::conformance::engine::{race, Fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_buyers_never_oversell() {
    race::ten_thousand_buyers(&Fixture::memory()).await;
}

/// The same race with the stock in four buckets (docs/adr/0020): still exactly the stock is
/// sold (no bucket leaves units unsold while others' buyers are refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_buyers_never_oversell_or_undersell_four_buckets() {
    race::ten_thousand_buyers_in(&Fixture::memory(), 4).await;
}

/// Its negative control: buckets that never borrow leave units unsold, and the race's check
/// that exactly the stock is sold fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_race_catches_buckets_that_do_not_borrow() {
    let caught = tokio::spawn(async {
        race::ten_thousand_buyers_in(&Fixture::not_borrowing_memory(), 4).await;
    })
    .await
    .expect_err("an undersell must fail the race's checks");
    let msg = caught
        .into_panic()
        .downcast::<String>()
        .map(|s| *s)
        .unwrap_or_default();
    assert!(msg.contains("exactly the stock is sold"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checker_catches_an_oversell_in_the_race() {
    race::ten_thousand_buyers_catch_a_broken_reserver(&Fixture::broken_memory()).await;
}

/// An operator lowers an activity's total (1,000 → 250) while 400 buyers race for it: the
/// changes run under the activity's lock, a total below what is held or sold is refused, and
/// at rest nothing is oversold, every reservation has its order, and the stock balances.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lowering_the_total_during_a_race_never_oversells() {
    use seckill_core::conformance::engine::live_activity;
    use seckill_core::domain::UserId;
    use seckill_core::engine::{Backends, BuyOutcome, BuyRequest, Engine, EngineConfig};
    use std::time::Duration;

    let e = Engine::new(
        Backends::in_memory_default(b"race"),
        EngineConfig::default(),
    );
    let a = live_activity(e.backends().catalog.as_ref(), e.now(), 1000, 1).await;
    e.warm_up(a.id).await.unwrap();
    let buyers: Vec<_> = (0..400)
        .map(|i| {
            let e = e.clone();
            tokio::spawn(async move {
                let out = e
                    .buy(BuyRequest {
                        holders: Vec::new(),
                        user_id: UserId(i + 1),
                        activity_id: a.id,
                        quantity: 1,
                        request_id: None,
                        lines: Vec::new(),
                    })
                    .await
                    .unwrap();
                matches!(out, BuyOutcome::Reserved { .. })
            })
        })
        .collect();
    let admin = {
        let e = e.clone();
        let a = a.clone();
        tokio::spawn(async move {
            let mut accepted = 0;
            for total in (250..=900).rev().step_by(50) {
                let lower = seckill_core::domain::Activity {
                    total_stock: total,
                    ..e.backends().catalog.activity(a.id).await.unwrap().unwrap()
                };
                if e.update_activity(&lower).await.is_ok() {
                    accepted += 1;
                }
                tokio::task::yield_now().await;
            }
            accepted
        })
    };
    let mut reserved = 0u64;
    for b in buyers {
        reserved += u64::from(b.await.unwrap());
    }
    assert!(admin.await.unwrap() > 0, "some changes went through");
    let mut w = e.order_worker().await.unwrap();
    loop {
        let moved = e.relay_once().await.unwrap() + w.run_once(Duration::ZERO).await.unwrap();
        if moved == 0 && e.backends().stock.outbox_len().await.unwrap() == 0 {
            break;
        }
    }
    let total = e
        .backends()
        .catalog
        .activity(a.id)
        .await
        .unwrap()
        .unwrap()
        .total_stock;
    let orders = e.backends().orders.activity_orders(a.id).await.unwrap();
    let units: u64 = orders.iter().map(|o| u64::from(o.quantity)).sum();
    assert!(units <= u64::from(total), "{units} units sold of {total}");
    assert_eq!(
        orders.len() as u64,
        reserved,
        "every reservation has its order"
    );
    let snap = e.backends().stock.snapshot(a.id).await.unwrap().unwrap();
    assert!(
        snap.balanced() && snap.total == total,
        "{snap:?} vs total {total}"
    );
    assert!(e.reconcile(a.id, false).await.unwrap().consistent);
}

/// 10,000 buyers for a 500-seat map of a real-name session, best available (docs/adr/0021):
/// every seat sold once, each document holding one ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_buyers_for_500_seats_never_double_sell() {
    seckill_core::conformance::engine::seat_race::ten_thousand_buyers_for_500_seats(
        &Fixture::memory(),
    )
    .await;
}

/// Its negative control: an allocator that sells a seat twice is caught by the checker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checker_catches_a_seat_sold_twice_in_the_race() {
    seckill_core::conformance::engine::seat_race::the_checker_catches_a_seat_sold_twice(
        &Fixture::double_selling_seats_memory(),
    )
    .await;
}

/// The holders' negative control: a reserve that lets a document hold two tickets of a
/// real-name session is caught (the database refuses the second, so a buyer told "reserved"
/// loses the ticket, which the checker reports).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checker_catches_a_document_holding_two_tickets_in_the_race() {
    seckill_core::conformance::engine::seat_race::the_checker_catches_a_document_holding_two_tickets(
        &Fixture::ignoring_documents_memory(),
    )
    .await;
}
