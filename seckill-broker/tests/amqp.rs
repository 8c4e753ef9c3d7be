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
use seckill_core::conformance::{service_url, unique_id, Launch};
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

/// The restart case on a RabbitMQ node of the test's own (`seckill7203@localhost`, AMQP on
/// port 7203, distribution on 7204, data in a temporary directory): stopped and started again
/// under a live subscription, its durable queue and the subscription go on. It needs the
/// machine's `rabbitmq-server` and `rabbitmqctl` (whose wrapper runs the node as the
/// `rabbitmq` user, so the data directory is handed to that user) and rights on them, as CI's
/// root has; the shared RabbitMQ is never restarted.
#[tokio::test]
async fn survives_a_rabbitmq_restart() {
    // The shared RabbitMQ's variable says the machine has RabbitMQ.
    if service_url("SECKILL_TEST_AMQP_URL").is_none() {
        return;
    }
    let (node, port) = ("seckill7203@localhost", 7203);
    let dir = std::env::temp_dir().join(format!("seckill-rabbitmq-restart-{}", unique_id()));
    std::fs::create_dir_all(dir.join("log")).unwrap();
    let conf = dir.join("rabbitmq.conf");
    std::fs::write(
        &conf,
        format!("listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n"),
    )
    .unwrap();
    let plugins = dir.join("enabled_plugins");
    std::fs::write(&plugins, "[].\n").unwrap();
    let chown = std::process::Command::new("chown")
        .args(["-R", "rabbitmq:rabbitmq", dir.to_str().unwrap()])
        .status()
        .expect("chown");
    assert!(chown.success(), "hand {dir:?} to the rabbitmq user");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let server = Launch::new("rabbitmq-server", &[], port)
        .env("RABBITMQ_NODENAME", node)
        .env("RABBITMQ_DIST_PORT", "7204")
        .env("RABBITMQ_CONFIG_FILE", &path(&conf))
        .env("RABBITMQ_ENABLED_PLUGINS_FILE", &path(&plugins))
        .env("RABBITMQ_MNESIA_BASE", &path(&dir))
        .env("RABBITMQ_LOG_BASE", &path(&dir.join("log")))
        .stop_with("rabbitmqctl", &["-n", node, "stop"])
        .startup(std::time::Duration::from_secs(90))
        .start();
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let b = Backend::new(broker_at(&url, "g", 3).await, 3).with_own_server(server);
    seckill_core::conformance::broker::survives_a_broker_restart(&b).await;
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}
