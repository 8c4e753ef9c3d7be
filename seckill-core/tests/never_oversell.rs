//! The proof that the pipeline never oversells, never loses an order and never charges twice,
//! on the in-memory backends: the state machine of `seckill_core::conformance::engine::machine`
//! (buys, cancels, payments, duplicate/forged/lost/late callbacks, clock jumps, duplicated and
//! redelivered messages, crashes between any two pipeline steps), checked after every step.
//!
//! `the_checker_catches_a_broken_reserver` is the negative control: the same machine against a
//! reserver that skips the stock check must find a violation.

use seckill_core::conformance::engine::{machine, Fixture};

#[test]
fn guarantees_hold_under_random_interleavings_and_crashes() {
    if let Err(e) = machine::state_machine(&Fixture::memory(), machine::cases_from_env()) {
        panic!("{e}");
    }
}

#[test]
fn the_checker_catches_a_broken_reserver() {
    let err = machine::state_machine(&Fixture::broken_memory(), 256)
        .expect_err("the broken reserver must be caught");
    assert!(
        err.contains("oversold") || err.contains("balance") || err.contains("lost"),
        "{err}"
    );
    eprintln!(
        "negative control caught the broken reserver: {}",
        err.lines().take(3).collect::<Vec<_>>().join(" ")
    );
}

/// The machine runs with 1 to 3 stock buckets; buckets that never borrow refuse buyers while
/// the activity has units, and the model of what buyers were told must catch it.
#[test]
fn the_checker_catches_buckets_that_do_not_borrow() {
    let err = machine::state_machine(&Fixture::not_borrowing_memory(), 256)
        .expect_err("buckets that do not borrow must be caught");
    eprintln!(
        "negative control caught the lazy buckets: {}",
        err.lines().take(3).collect::<Vec<_>>().join(" ")
    );
}

/// A quarter of the machine's cases sell the concert session (tiers, a quota, seats, real
/// names): an allocator that hands out taken seats is caught there (the database's seat guard
/// refuses the second order of a seat, whose buyer was told "reserved").
#[test]
fn the_checker_catches_a_seat_sold_twice() {
    let err = machine::state_machine(&Fixture::double_selling_seats_memory(), 256)
        .expect_err("a seat sold twice must be caught");
    assert!(err.contains("sold twice") || err.contains("lost"), "{err}");
    eprintln!(
        "negative control caught the double-selling allocator: {}",
        err.lines().take(3).collect::<Vec<_>>().join(" ")
    );
}

/// And a reserve that lets a document hold two tickets is caught (the database refuses the
/// second ticket that its buyer was told of).
#[test]
fn the_checker_catches_a_document_holding_two_tickets() {
    let err = machine::state_machine(&Fixture::ignoring_documents_memory(), 256)
        .expect_err("a document holding two tickets must be caught");
    assert!(err.contains("two tickets") || err.contains("lost"), "{err}");
    eprintln!(
        "negative control caught the reserve ignoring documents: {}",
        err.lines().take(3).collect::<Vec<_>>().join(" ")
    );
}
