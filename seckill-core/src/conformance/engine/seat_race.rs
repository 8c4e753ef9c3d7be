//! The seat race (docs/adr/0021): 10,000 buyer tasks for a 500-seat map of a real-name session,
//! each asking for the best 1 or 2 seats of the session's one seated tier and naming a holder
//! per ticket from a pool of 600 documents (each wanted by some 20 buyers, from the start), with the relay
//! and two order workers running meanwhile.

use super::{sale, Fixture, Sale, SaleSpec};
use crate::clock::Clock;
use crate::domain::{
    Activity, ActivityId, Money, OrderId, Product, ProductId, SeatBlock, Tier, TierLine, UserId,
};
use crate::engine::BuyRequest;
use std::collections::HashSet;

/// Buyer tasks.
pub const BUYERS: i64 = 10_000;
/// Rows of the map, and seats per row.
pub const ROWS: u32 = 20;
/// Seats in a row.
pub const PER_ROW: u32 = 25;
/// Per-user limit.
pub const LIMIT: u32 = 4;
/// Documents the buyers name holders from.
pub const DOCUMENTS: i64 = 600;

/// The holder of document `n` of the pool (a passport).
pub fn holder(n: i64) -> crate::domain::HolderInput {
    crate::domain::HolderInput {
        name: format!("Holder {n}"),
        id_type: crate::domain::IdType::Passport,
        id_number: format!("P{n:07}"),
    }
}

/// A live real-name session with one tier of `rows × per_row` seats (sections A and B, best
/// rows first).
pub async fn seated_session(s: &Sale, rows: u32, per_row: u32, limit: u32) -> Activity {
    let catalog = &s.engine.backends().catalog;
    let now = s.clock.now();
    let product = Product {
        id: ProductId(super::super::unique_id()),
        name: "Jay Chou — stand".into(),
        description: "seated".into(),
        list_price: Money(58_000),
        created_at: now,
    };
    catalog.insert_product(&product).await.expect("product");
    let seats: Vec<SeatBlock> = (0..rows)
        .map(|r| SeatBlock {
            section: if r % 2 == 0 { "A" } else { "B" }.into(),
            row: (r / 2 + 1).to_string(),
            tier: 1,
            from: 1,
            to: per_row,
        })
        .collect();
    let a = Activity {
        real_name: true,
        id: ActivityId(super::super::unique_id()),
        product_id: product.id,
        title: "seated session".into(),
        price: Money(58_000),
        total_stock: rows * per_row,
        sold: 0,
        per_user_limit: limit,
        starts_at: now,
        ends_at: now + chrono::Duration::days(2),
        cancelled: false,
        created_at: now,
        stock_buckets: 1,
        event_id: None,
        tiers: vec![Tier {
            id: 1,
            name: "580".into(),
            price: Money(58_000),
            stock: rows * per_row,
        }],
        quotas: Vec::new(),
        seats,
    };
    a.validate().expect("a valid seat map");
    catalog.insert_activity(&a).await.expect("activity");
    s.engine.warm_up(a.id).await.expect("warm up");
    a
}

/// Fires the race; returns the sale (on the seated session) and the orders buyers were told of.
pub async fn race(fixture: &Fixture) -> (Sale, Vec<OrderId>) {
    let mut s = sale(
        fixture,
        SaleSpec {
            total: 1,
            limit: 1,
            batch_size: 128,
            faults: None,
            real_time: false,
            buckets: 1,
        },
    )
    .await;
    let a = seated_session(&s, ROWS, PER_ROW, LIMIT).await;
    s.activity = a.id;
    let reserved = super::race::buyers(&s, BUYERS, |i| {
        let n = 1 + (i as u32 / 2_500) % 2;
        BuyRequest {
            holders: (0..i64::from(n))
                .map(|k| holder((i * 7 + k * DOCUMENTS / 2) % DOCUMENTS))
                .collect(),
            user_id: UserId(i % 2_500),
            activity_id: a.id,
            quantity: 0,
            request_id: None,
            lines: vec![TierLine::new(1, n)],
        }
    })
    .await;
    (s, reserved)
}

/// 10,000 buyers race for 500 seats (best available, 1 or 2 each, limit 4, a holder per
/// ticket): every seat is sold exactly once, each to a document that holds no other ticket,
/// every hold became an order with its seats and holders, the tier balances, and every
/// guarantee holds at rest. Run it on a multi-threaded runtime.
pub async fn ten_thousand_buyers_for_500_seats(fixture: &Fixture) {
    let (s, reserved) = race(fixture).await;
    let orders = s
        .engine
        .backends()
        .orders
        .activity_orders(s.activity)
        .await
        .unwrap();
    let seats: Vec<&String> = orders
        .iter()
        .flat_map(|o| &o.lines)
        .flat_map(|l| &l.seats)
        .collect();
    let distinct: HashSet<&String> = seats.iter().copied().collect();
    assert_eq!(distinct.len(), seats.len(), "no seat sold twice");
    assert_eq!(seats.len() as u32, ROWS * PER_ROW, "every seat sold");
    assert_eq!(orders.len(), reserved.len(), "every hold became an order");
    let docs: Vec<&String> = orders
        .iter()
        .flat_map(|o| &o.holders)
        .map(|h| &h.id_hash)
        .collect();
    let distinct_docs: HashSet<&String> = docs.iter().copied().collect();
    assert_eq!(docs.len(), seats.len(), "a holder per seat");
    assert_eq!(
        distinct_docs.len(),
        docs.len(),
        "no document holds two tickets"
    );
    // A pair of seats is adjacent in one row whenever one was free there: with every row
    // filled in order, all but at most one pair per row are.
    let split = orders
        .iter()
        .filter(|o| o.quantity == 2)
        .filter(|o| {
            let l = &o.lines[0].seats;
            let (a, b) = (
                l[0].rsplit_once('-').unwrap(),
                l[1].rsplit_once('-').unwrap(),
            );
            a.0 != b.0 || a.1.parse::<u32>().unwrap() + 1 != b.1.parse::<u32>().unwrap()
        })
        .count();
    assert!(split <= ROWS as usize, "{split} pairs split");
    let tiers = s.engine.backends().stock.tiers(s.activity).await.unwrap();
    assert_eq!(
        (tiers[0].available, tiers[0].held, tiers[0].sold),
        (0, 0, ROWS * PER_ROW)
    );
    assert_eq!(
        s.engine
            .backends()
            .stock
            .taken_seats(s.activity)
            .await
            .unwrap()
            .len() as u32,
        ROWS * PER_ROW
    );
    s.assert_at_rest(reserved).await;
    drop(s);
    fixture.tear_down().await;
}

/// The negative control of the holders: on a fixture whose stock backend lets a document
/// hold several tickets, buyers are told they have tickets that the database then refuses
/// (its unique key on the document), and the checker reports those reservations lost.
pub async fn the_checker_catches_a_document_holding_two_tickets(fixture: &Fixture) {
    let (s, reserved) = race(fixture).await;
    let v = s.violations_at_rest(reserved).await;
    assert!(
        v.iter().any(|m| m.contains("was lost")),
        "a reserve that lets a document hold two tickets must be caught: {v:#?}"
    );
}

/// The negative control: on a fixture whose allocator double-sells seats, the checker
/// reports it: the database's seat guard refuses the second order of a seat, so a buyer told
/// "reserved" loses the ticket (a seat in two orders, were the guard gone, is reported as sold
/// twice).
pub async fn the_checker_catches_a_seat_sold_twice(fixture: &Fixture) {
    let (s, reserved) = race(fixture).await;
    let v = s.violations_at_rest(reserved).await;
    assert!(
        v.iter()
            .any(|m| m.contains("sold twice") || m.contains("was lost")),
        "a double-selling allocator must be caught: {v:#?}"
    );
}
