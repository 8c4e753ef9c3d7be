//! The Redis Streams broker runs the broker conformance suite and the engine's never-oversell
//! proofs (with Redis stock and delay queue). Feature `redis-stream`.
#![cfg(feature = "redis-stream")]

use seckill_broker::redis_stream::RedisStreamBroker;
use seckill_core::conformance::broker::Backend;
use seckill_core::conformance::engine::{machine, race, Fixture};
use seckill_core::conformance::{service_url, unique_id, OwnServer};
use seckill_core::engine::Backends;
use seckill_core::registry::BackendUrl;
use seckill_store::redis::{connect, RedisDelayQueue, RedisStockReserver, DEFAULT_MAX_BATCH};
use std::sync::Arc;
use std::time::Duration;

async fn target(url: &str) -> seckill_store::redis::RedisTarget {
    let sep = if url.contains('?') { '&' } else { '?' };
    connect(&BackendUrl::parse(&format!("{url}{sep}prefix=b{}", unique_id())).unwrap())
        .await
        .expect("connect to the test Redis")
}

async fn broker() -> Option<Backend> {
    let url = service_url("SECKILL_TEST_REDIS_URL")?;
    Some(Backend::new(
        Arc::new(RedisStreamBroker::new(
            target(&url).await,
            3,
            Duration::from_secs(30),
        )),
        3,
    ))
}

mod broker_suite {
    use super::*;
    seckill_core::message_broker_conformance!(broker);
}

fn fixture(url: String) -> Fixture {
    Fixture::new("redis-stream", move |clock, provider| {
        let url = url.clone();
        Box::pin(async move {
            let t = target(&url).await;
            let mut b = Backends::in_memory(clock, provider);
            // Short redelivery so a crashed worker's deliveries come back within the test.
            b.broker = Arc::new(RedisStreamBroker::new(
                t.clone(),
                5,
                Duration::from_millis(50),
            ));
            b.stock = Arc::new(RedisStockReserver::new(t.clone(), DEFAULT_MAX_BATCH));
            b.delay = Arc::new(RedisDelayQueue::new(t));
            b
        })
    })
}

#[test]
fn guarantees_hold_with_redis_streams() {
    let Some(url) = service_url("SECKILL_TEST_REDIS_URL") else {
        return;
    };
    let cases = (machine::cases_from_env() / 4).max(16);
    if let Err(e) = machine::state_machine(&fixture(url), cases) {
        panic!("{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_buyers_with_redis_streams() {
    let Some(url) = service_url("SECKILL_TEST_REDIS_URL") else {
        return;
    };
    race::ten_thousand_buyers(&fixture(url)).await;
}

/// The restart case on a Redis of the test's own (port 7202, append-only file on, so the
/// stream and its group survive the restart as they do in a deployment that keeps its data).
#[tokio::test]
async fn survives_a_redis_restart() {
    // The shared Redis's variable says the machine has redis-server.
    if service_url("SECKILL_TEST_REDIS_URL").is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("seckill-stream-restart-{}", unique_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = OwnServer::start(
        "redis-server",
        &[
            "--port",
            "7202",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            dir.to_str().unwrap(),
        ],
        7202,
    );
    let b = Backend::new(
        Arc::new(RedisStreamBroker::new(
            target("redis://127.0.0.1:7202/0").await,
            3,
            Duration::from_secs(30),
        )),
        3,
    )
    .with_own_server(server);
    seckill_core::conformance::broker::survives_a_broker_restart(&b).await;
    let _ = std::fs::remove_dir_all(&dir);
}
