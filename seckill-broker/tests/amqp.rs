//! The RabbitMQ broker runs the broker conformance suite and the engine's never-oversell proofs
//! (feature `amqp`: `cargo test -p seckill-broker --features amqp`, with
//! `SECKILL_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f`).
//!
//! Every property-test case declares fresh quorum queues (a Raft group each); the fixture's
//! teardown deletes them after the case, so a small RabbitMQ never holds more than one case's.
#![cfg(feature = "amqp")]

use seckill_broker::amqp::AmqpBroker;
use seckill_core::conformance::broker::Backend;
use seckill_core::conformance::engine::{machine, race, Fixture};
use seckill_core::conformance::{service_url, unique_id};
use seckill_core::engine::Backends;
use seckill_core::registry::BackendUrl;
use std::sync::{Arc, Mutex};

async fn broker_at(url: &str, groups: &str, max_deliveries: u32) -> Arc<AmqpBroker> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{url}{sep}groups={groups}&prefix=t{}&expires=60000",
        unique_id()
    );
    AmqpBroker::connect(&BackendUrl::parse(&url).unwrap(), max_deliveries)
        .await
        .expect("connect to the test RabbitMQ")
}

async fn broker() -> Option<Backend> {
    let url = service_url("SECKILL_TEST_AMQP_URL")?;
    Some(Backend::new(broker_at(&url, "g,g1,g2", 3).await, 3))
}

mod broker_suite {
    use super::*;
    seckill_core::message_broker_conformance!(broker);
}

fn fixture(url: String) -> Fixture {
    let made: Arc<Mutex<Vec<Arc<AmqpBroker>>>> = Arc::default();
    let teardown = made.clone();
    Fixture::new("rabbitmq", move |clock, provider| {
        let (url, made) = (url.clone(), made.clone());
        Box::pin(async move {
            let mut b = Backends::in_memory(clock, provider);
            let broker = broker_at(&url, "order-workers", 5).await;
            made.lock().unwrap().push(broker.clone());
            b.broker = broker;
            b
        })
    })
    .with_teardown(move || {
        let brokers: Vec<_> = teardown.lock().unwrap().drain(..).collect();
        Box::pin(async move {
            // Best effort: cleanup must not fail a case. What it leaves, RabbitMQ deletes once
            // unused for the URL's `expires`.
            for b in brokers {
                if let Err(e) = b.delete_declared().await {
                    eprintln!("teardown left queues behind: {e}");
                }
            }
        })
    })
}

/// The never-oversell state machine, with RabbitMQ between the relay and the order worker.
/// Every case drops subscriptions mid-delivery: this is what caught lapin failing the whole
/// connection when a consumer's cancel raced its channel's close.
#[test]
fn guarantees_hold_with_rabbitmq() {
    let Some(url) = service_url("SECKILL_TEST_AMQP_URL") else {
        return;
    };
    let cases = (machine::cases_from_env() / 8).max(16);
    if let Err(e) = machine::state_machine(&fixture(url), cases) {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_buyers_with_rabbitmq() {
    let Some(url) = service_url("SECKILL_TEST_AMQP_URL") else {
        return;
    };
    race::ten_thousand_buyers(&fixture(url)).await;
}
