//! The Kafka broker runs the broker conformance suite and the engine's never-oversell proofs
//! (feature `kafka`: `cargo test -p seckill-broker --features kafka`, with
//! `SECKILL_TEST_KAFKA_BROKERS=127.0.0.1:9092`; `.ci/run` starts tansu there).
#![cfg(feature = "kafka")]

use seckill_broker::kafka::KafkaBroker;
use seckill_core::conformance::broker::Backend;
use seckill_core::conformance::engine::{machine, race, Fixture};
use seckill_core::conformance::{service_url, unique_id, Launch};
use seckill_core::engine::Backends;
use seckill_core::registry::BackendUrl;
use std::sync::Arc;

async fn broker_at(brokers: &str, max_deliveries: u32) -> Arc<KafkaBroker> {
    // One partition per topic keeps the many small topics of the tests cheap for the broker;
    // two consumers of a group still share the work between partitions of the `share` case.
    // tansu (in CI) needs one message per record batch: see the module docs.
    let url = format!(
        "kafka://{brokers}?partitions=2&prefix=t{}&producer.batch.num.messages=1",
        unique_id()
    );
    KafkaBroker::connect(&BackendUrl::parse(&url).unwrap(), max_deliveries)
        .await
        .expect("connect to the test Kafka")
}

async fn broker() -> Option<Backend> {
    let brokers = service_url("SECKILL_TEST_KAFKA_BROKERS")?;
    Some(Backend::new(broker_at(&brokers, 3).await, 3))
}

mod broker_suite {
    use super::*;
    seckill_core::message_broker_conformance!(broker);
}

fn fixture(brokers: String) -> Fixture {
    Fixture::new("kafka", move |clock, provider| {
        let brokers = brokers.clone();
        Box::pin(async move {
            let mut b = Backends::in_memory(clock, provider);
            b.broker = broker_at(&brokers, 5).await;
            b
        })
    })
}

#[test]
fn guarantees_hold_with_kafka() {
    let Some(brokers) = service_url("SECKILL_TEST_KAFKA_BROKERS") else {
        return;
    };
    let cases = (machine::cases_from_env() / 4).max(16);
    if let Err(e) = machine::state_machine(&fixture(brokers), cases) {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_buyers_with_kafka() {
    let Some(brokers) = service_url("SECKILL_TEST_KAFKA_BROKERS") else {
        return;
    };
    race::ten_thousand_buyers(&fixture(brokers)).await;
}

/// The restart case on a tansu of the test's own (Kafka API on port 7205) that keeps its data in
/// SQLite in a temporary directory: stopped and started again under a live subscription, its
/// topic, the group's offsets and the subscription go on. The shared tansu keeps its data in
/// memory, so a restart of it would lose the topics; it is never restarted. Needs a `tansu`
/// built with the `libsql` feature, as `.ci/tansu.sh` installs it.
#[tokio::test]
async fn survives_a_kafka_restart() {
    // The shared broker's variable says the machine has tansu.
    if service_url("SECKILL_TEST_KAFKA_BROKERS").is_none() {
        return;
    }
    let port = 7205;
    let dir = std::env::temp_dir().join(format!("seckill-tansu-restart-{}", unique_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = format!("tcp://127.0.0.1:{port}");
    let server = Launch::new(
        "tansu",
        &[
            "broker",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &listener,
            // Relative to the working directory.
            "--storage-engine",
            "sqlite://tansu.db",
        ],
        port,
    )
    .current_dir(&dir)
    .start();
    let b =
        Backend::new(broker_at(&format!("127.0.0.1:{port}"), 3).await, 3).with_own_server(server);
    seckill_core::conformance::broker::survives_a_broker_restart(&b).await;
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}
