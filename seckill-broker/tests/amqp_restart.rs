//! The broker restart case on RabbitMQ (feature `amqp`): the machine's RabbitMQ is restarted
//! with `rabbitmqctl stop_app` / `start_app` under a live subscription. A test binary of its
//! own, because cargo runs test binaries one at a time: no other RabbitMQ test runs meanwhile.
//! It needs `rabbitmqctl` (with rights on the node, as CI's root has) besides
//! `SECKILL_TEST_AMQP_URL`.
#![cfg(feature = "amqp")]

use seckill_broker::amqp::AmqpBroker;
use seckill_core::conformance::broker::{survives_a_broker_restart, Backend};
use seckill_core::conformance::{service_url, unique_id};
use seckill_core::registry::BackendUrl;
use std::process::Command;
use std::time::{Duration, Instant};

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl on PATH");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn restart_rabbitmq() {
    rabbitmqctl(&["stop_app"]);
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", 5672)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "RabbitMQ did not come back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn survives_a_rabbitmq_restart() {
    let Some(url) = service_url("SECKILL_TEST_AMQP_URL") else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}groups=g&prefix=r{}&expires=600000", unique_id());
    let broker = AmqpBroker::connect(&BackendUrl::parse(&url).unwrap(), 3)
        .await
        .expect("connect to the test RabbitMQ");
    let b = Backend::new(broker, 3).with_restart(|| {
        Box::pin(async { tokio::task::spawn_blocking(restart_rabbitmq).await.unwrap() })
    });
    survives_a_broker_restart(&b).await;
}
