//! The broker restart case on Kafka (feature `kafka`), on a tansu of the test's own (port 9392),
//! in a test binary of its own so the restart cannot disturb the other Kafka tests.
#![cfg(feature = "kafka")]

use seckill_broker::kafka::KafkaBroker;
use seckill_core::conformance::broker::{survives_a_broker_restart, Backend};
use seckill_core::conformance::{service_url, unique_id, OwnServer};
use seckill_core::registry::BackendUrl;

/// The restart case on a tansu of the test's own (port 9392). tansu's memory storage starts
/// empty after the restart: topics and the group's offsets are gone, and the broker and the
/// subscription must find their way back (the topic re-created, the group re-joined).
#[tokio::test]
async fn survives_a_kafka_restart() {
    // The shared broker's variable says the machine has tansu (`.ci/tansu.sh` installs it).
    if service_url("SECKILL_TEST_KAFKA_BROKERS").is_none() {
        return;
    }
    let tansu = which_tansu();
    let server = OwnServer::start(
        &tansu,
        &[
            "broker",
            "--listener-url",
            "tcp://127.0.0.1:9392",
            "--advertised-listener-url",
            "tcp://127.0.0.1:9392",
            "--storage-engine",
            "memory://tansu/",
        ],
        9392,
    );
    let url = format!(
        "kafka://127.0.0.1:9392?partitions=2&prefix=t{}&producer.batch.num.messages=1",
        unique_id()
    );
    let broker = KafkaBroker::connect(&BackendUrl::parse(&url).unwrap(), 3)
        .await
        .expect("connect to the test's tansu");
    let b = Backend::new(broker, 3).with_restart(move || {
        let server = server.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || server.restart())
                .await
                .unwrap()
        })
    });
    survives_a_broker_restart(&b).await;
}

fn which_tansu() -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(std::path::PathBuf::from)
        .chain([std::path::Path::new(&home).join(".cargo/bin")])
        .map(|d| d.join("tansu"))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .expect("tansu is not installed (cargo install tansu --locked --features dynostore)")
}
