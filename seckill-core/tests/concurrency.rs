//! 10,000 buyers race for 1,000 units on the multi-threaded runtime, with the relay and two
//! order workers running concurrently, on the in-memory backends; and the negative control on a
//! reserver that skips the stock check.

use seckill_core::conformance::engine::{race, Fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_buyers_never_oversell() {
    race::ten_thousand_buyers(&Fixture::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checker_catches_an_oversell_in_the_race() {
    race::ten_thousand_buyers_catch_a_broken_reserver(&Fixture::broken_memory()).await;
}
