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
