//! Conformance cases of [`MessageBroker`].

use crate::broker::{Delivery, Message, MessageBroker, Subscription};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Restarts the broker's server (stop, then start on the same address).
pub type Restart = dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// The backend under test, its dead-letter threshold and its capabilities.
#[derive(Clone)]
pub struct Backend {
    /// The broker.
    pub broker: Arc<dyn MessageBroker>,
    /// After this many deliveries a nacked message goes to `<topic>.dlq`.
    pub max_deliveries: u32,
    /// The capability to restart the broker's server: only a test that runs its own server
    /// has it; [`survives_a_broker_restart`] skips without it.
    pub restart: Option<Arc<Restart>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("broker", &self.broker)
            .field("max_deliveries", &self.max_deliveries)
            .field("restart", &self.restart.is_some())
            .finish()
    }
}

impl Backend {
    /// A broker that dead-letters after `max_deliveries`, without the restart capability.
    pub fn new(broker: Arc<dyn MessageBroker>, max_deliveries: u32) -> Self {
        Self {
            broker,
            max_deliveries,
            restart: None,
        }
    }

    /// Adds the capability to restart the broker's server.
    pub fn with_restart<F>(mut self, restart: F) -> Self
    where
        F: Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static,
    {
        self.restart = Some(Arc::new(restart));
        self
    }

    /// Adds the capability to restart the broker's server, which the test started itself.
    pub fn with_own_server(self, server: super::OwnServer) -> Self {
        self.with_restart(move || {
            let server = server.clone();
            Box::pin(async move {
                tokio::task::spawn_blocking(move || server.restart())
                    .await
                    .expect("restarting the server")
            })
        })
    }
}

const WAIT: Duration = Duration::from_secs(5);

fn topic(name: &str) -> String {
    format!("conf-{name}-{}", super::unique_id())
}

fn msg(key: &str, body: &str) -> Message {
    Message::new(key, body.as_bytes().to_vec())
}

fn body(d: &Delivery) -> String {
    String::from_utf8(d.message.payload.clone()).unwrap()
}

/// Fetches until `n` deliveries arrived (or the wait runs out).
async fn fetch_n(sub: &mut Box<dyn Subscription>, n: usize) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < n && tokio::time::Instant::now() < deadline {
        out.extend(
            sub.fetch(n - out.len(), Duration::from_millis(200))
                .await
                .unwrap(),
        );
    }
    out
}

async fn ack_all(sub: &mut Box<dyn Subscription>, ds: &[Delivery]) {
    let tags: Vec<String> = ds.iter().map(|d| d.tag.clone()).collect();
    sub.ack(&tags).await.unwrap();
}

/// Published messages reach a group that subscribes later, with key, body and headers.
pub async fn publish_then_consume(b: &Backend) {
    let t = topic("pc");
    b.broker
        .publish(&t, msg("k", "one").with_header("message-id", "m1"))
        .await
        .unwrap();
    b.broker.publish(&t, msg("k", "two")).await.unwrap();
    let mut sub = b.broker.subscribe(&t, "g").await.unwrap();
    let ds = fetch_n(&mut sub, 2).await;
    assert_eq!(ds.iter().map(body).collect::<Vec<_>>(), ["one", "two"]);
    assert_eq!(ds[0].message.key, "k");
    assert_eq!(
        ds[0].message.headers.get("message-id").map(String::as_str),
        Some("m1")
    );
    assert_eq!(ds[0].attempt, 1);
    ack_all(&mut sub, &ds).await;
    assert_eq!(b.broker.lag(&t, "g").await.unwrap(), 0);
}

/// Each group gets every message.
pub async fn every_group_gets_everything(b: &Backend) {
    let t = topic("groups");
    let mut g1 = b.broker.subscribe(&t, "g1").await.unwrap();
    let mut g2 = b.broker.subscribe(&t, "g2").await.unwrap();
    b.broker
        .publish_batch(&t, vec![msg("a", "1"), msg("b", "2")])
        .await
        .unwrap();
    let d1 = fetch_n(&mut g1, 2).await;
    let d2 = fetch_n(&mut g2, 2).await;
    assert_eq!(d1.len(), 2);
    assert_eq!(d2.len(), 2);
}

/// An acked message never comes back, even to a new consumer of the group.
pub async fn acked_is_never_redelivered(b: &Backend) {
    let t = topic("acked");
    b.broker.publish(&t, msg("k", "x")).await.unwrap();
    let mut sub = b.broker.subscribe(&t, "g").await.unwrap();
    let ds = fetch_n(&mut sub, 1).await;
    ack_all(&mut sub, &ds).await;
    drop(sub);
    let mut again = b.broker.subscribe(&t, "g").await.unwrap();
    assert!(again
        .fetch(10, Duration::from_millis(500))
        .await
        .unwrap()
        .is_empty());
}

/// A nacked message is delivered again with a higher attempt count.
pub async fn nacked_is_redelivered(b: &Backend) {
    let t = topic("nack");
    b.broker.publish(&t, msg("k", "x")).await.unwrap();
    let mut sub = b.broker.subscribe(&t, "g").await.unwrap();
    let ds = fetch_n(&mut sub, 1).await;
    sub.nack(&ds[0].tag).await.unwrap();
    let again = fetch_n(&mut sub, 1).await;
    assert_eq!(again.len(), 1);
    assert_eq!(body(&again[0]), "x");
    assert!(again[0].attempt >= 2);
    ack_all(&mut sub, &again).await;
}

/// A consumer that drops without acking hands its deliveries to the next one.
pub async fn dropped_consumer_redelivers(b: &Backend) {
    let t = topic("drop");
    b.broker.publish(&t, msg("k", "x")).await.unwrap();
    let mut sub = b.broker.subscribe(&t, "g").await.unwrap();
    assert_eq!(fetch_n(&mut sub, 1).await.len(), 1);
    drop(sub);
    let mut next = b.broker.subscribe(&t, "g").await.unwrap();
    let ds = fetch_n(&mut next, 1).await;
    assert_eq!(ds.len(), 1, "the unacked message must come back");
    assert_eq!(body(&ds[0]), "x");
    ack_all(&mut next, &ds).await;
}

/// A consumer that acked part of a batch and dropped: the next one gets exactly the rest (this
/// catches a broker resuming from the wrong place inside a batch).
pub async fn partly_acked_batch_resumes_after_the_acked(b: &Backend) {
    let t = topic("resume");
    let batch: Vec<Message> = (0..10).map(|i| msg("k", &i.to_string())).collect();
    b.broker.publish_batch(&t, batch).await.unwrap();
    let mut sub = b.broker.subscribe(&t, "g").await.unwrap();
    let first = fetch_n(&mut sub, 3).await;
    assert_eq!(first.iter().map(body).collect::<Vec<_>>(), ["0", "1", "2"]);
    ack_all(&mut sub, &first).await;
    drop(sub);
    let mut next = b.broker.subscribe(&t, "g").await.unwrap();
    let rest = fetch_n(&mut next, 7).await;
    assert_eq!(
        rest.iter().map(body).collect::<Vec<_>>(),
        ["3", "4", "5", "6", "7", "8", "9"],
        "the unacked rest of the batch, and nothing acked"
    );
    ack_all(&mut next, &rest).await;
}

/// Messages with the same key arrive in publish order.
pub async fn per_key_order(b: &Backend) {
    let t = topic("order");
    for i in 0..30 {
        let key = if i % 2 == 0 { "even" } else { "odd" };
        b.broker
            .publish(&t, msg(key, &i.to_string()))
            .await
            .unwrap();
    }
    let mut sub = b.broker.subscribe(&t, "g").await.unwrap();
    let ds = fetch_n(&mut sub, 30).await;
    assert_eq!(ds.len(), 30);
    let mut last: BTreeMap<String, i32> = BTreeMap::new();
    for d in &ds {
        let n: i32 = body(d).parse().unwrap();
        if let Some(prev) = last.insert(d.message.key.clone(), n) {
            assert!(
                prev < n,
                "key {} out of order: {prev} then {n}",
                d.message.key
            );
        }
    }
    ack_all(&mut sub, &ds).await;
}

/// A batch publish delivers every message.
pub async fn batch_publish(b: &Backend) {
    let t = topic("batch");
    let batch: Vec<Message> = (0..200).map(|i| msg("k", &i.to_string())).collect();
    b.broker.publish_batch(&t, batch).await.unwrap();
    let mut sub = b.broker.subscribe(&t, "g").await.unwrap();
    let ds = fetch_n(&mut sub, 200).await;
    let got: HashSet<String> = ds.iter().map(body).collect();
    assert_eq!(got.len(), 200);
    ack_all(&mut sub, &ds).await;
}

/// Two consumers of one group share the work; nothing is handled by both.
pub async fn consumers_share_a_group(b: &Backend) {
    let t = topic("share");
    let mut c1 = b.broker.subscribe(&t, "g").await.unwrap();
    let mut c2 = b.broker.subscribe(&t, "g").await.unwrap();
    let batch: Vec<Message> = (0..40)
        .map(|i| msg(&format!("k{i}"), &i.to_string()))
        .collect();
    b.broker.publish_batch(&t, batch).await.unwrap();
    let mut seen = HashSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.len() < 40 && tokio::time::Instant::now() < deadline {
        for c in [&mut c1, &mut c2] {
            let ds = c.fetch(7, Duration::from_millis(100)).await.unwrap();
            for d in &ds {
                assert!(seen.insert(body(d)), "message {} handled twice", body(d));
            }
            ack_all(c, &ds).await;
        }
    }
    assert_eq!(seen.len(), 40);
}

/// A message that keeps failing goes to `<topic>.dlq` after `max_deliveries`.
pub async fn poison_goes_to_dead_letter(b: &Backend) {
    let t = topic("poison");
    b.broker.publish(&t, msg("k", "poison")).await.unwrap();
    let mut sub = b.broker.subscribe(&t, "g").await.unwrap();
    for _ in 0..b.max_deliveries {
        let ds = fetch_n(&mut sub, 1).await;
        assert_eq!(ds.len(), 1);
        sub.nack(&ds[0].tag).await.unwrap();
    }
    assert!(sub
        .fetch(1, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    let mut dlq = b.broker.subscribe(&format!("{t}.dlq"), "g").await.unwrap();
    let ds = fetch_n(&mut dlq, 1).await;
    assert_eq!(ds.len(), 1);
    assert_eq!(body(&ds[0]), "poison");
}

/// A waiting fetch wakes up when a message is published.
pub async fn fetch_waits_for_a_publish(b: &Backend) {
    let t = topic("wait");
    let mut sub = b.broker.subscribe(&t, "g").await.unwrap();
    let broker = b.broker.clone();
    let t2 = t.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        broker.publish(&t2, msg("k", "late")).await.unwrap();
    });
    let ds = sub.fetch(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(ds.len(), 1);
}

/// The broker's server restarts under a live subscription: publishing fails with a retryable
/// error, or waits, until the server is back, then succeeds; the same subscription goes on and
/// receives what is published after the restart. Skipped for a backend without the restart
/// capability.
pub async fn survives_a_broker_restart(b: &Backend) {
    let Some(restart) = b.restart.clone() else {
        eprintln!("skipped: this backend has no restart capability (its server is shared)");
        return;
    };
    let t = topic("restart");
    let mut sub = b.broker.subscribe(&t, "g").await.unwrap();
    b.broker.publish(&t, msg("k", "before")).await.unwrap();
    let ds = fetch_n(&mut sub, 1).await;
    assert_eq!(ds.iter().map(body).collect::<Vec<_>>(), ["before"]);
    ack_all(&mut sub, &ds).await;

    restart().await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match b.broker.publish(&t, msg("k", "after")).await {
            Ok(()) => break,
            Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("publishing after the restart: {e}"),
        }
    }
    while tokio::time::Instant::now() < deadline {
        match sub.fetch(10, Duration::from_millis(500)).await {
            Ok(ds) => {
                let got = ds.iter().any(|d| body(d) == "after");
                ack_all(&mut sub, &ds).await;
                if got {
                    return;
                }
            }
            Err(e) => {
                assert!(e.is_retryable(), "fetch after the restart: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    panic!("the subscription did not go on after the broker restarted");
}

/// Stamps out every case of this suite as a test for a backend.
#[macro_export]
macro_rules! message_broker_conformance {
    ($make:path) => {
        $crate::__conformance_tests!(broker, $make;
            publish_then_consume,
            every_group_gets_everything,
            acked_is_never_redelivered,
            nacked_is_redelivered,
            dropped_consumer_redelivers,
            partly_acked_batch_resumes_after_the_acked,
            per_key_order,
            batch_publish,
            consumers_share_a_group,
            poison_goes_to_dead_letter,
            fetch_waits_for_a_publish,
            survives_a_broker_restart,
        );
    };
}
