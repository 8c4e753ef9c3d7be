//! The pipeline behind each broker, in one run on one machine, with the in-memory broker as the
//! baseline (stock, outbox and orders in memory, so the broker is what differs):
//!
//! 1. **relay throughput**: 20,000 holds wait in the outbox; the relay hands them to the broker
//!    in batches (`publish_batch`, then the outbox ack) until the outbox is empty. Entries/s.
//! 2. **end to end at a steady load**: buys arrive at 400/s for 5 s with the relay and one order
//!    worker running; the time from hold reserved to order committed is the engine's
//!    `order_create_duration_seconds` histogram: its exact mean and the bucket bounds of p50 and
//!    p99.
//!
//! Run: `cargo bench -p seckill-broker --features redis-stream,amqp,kafka --bench relay`.
//! Brokers: `SECKILL_BENCH_REDIS_URL` (default `redis://127.0.0.1:6379/0`),
//! `SECKILL_BENCH_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`),
//! `SECKILL_BENCH_KAFKA_BROKERS` (default `127.0.0.1:9092`, e.g. tansu started by
//! `.ci/tansu.sh start`). A broker that does not answer is skipped with a message.

use chrono::Duration as CDuration;
use seckill_core::conformance::engine::live_activity;
use seckill_core::domain::{ActivityId, UserId};
use seckill_core::engine::{Backends, BuyOutcome, BuyRequest, Engine, EngineConfig, Pace, Role};
use seckill_core::memory::MockProvider;
use seckill_core::registry::{BackendUrl, BuildContext, Registry};
use seckill_core::{Clock, MessageBroker, SystemClock};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RELAY_HOLDS: u32 = 20_000;
const RATE: u32 = 400;
const STEADY_SECS: u32 = 5;

fn unique() -> i64 {
    static NEXT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    chrono::Utc::now().timestamp_micros() * 16
        + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 16
}

/// The broker URLs to measure, by name, each in a fresh namespace.
fn brokers() -> Vec<(&'static str, String)> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let id = unique();
    vec![
        ("memory", "memory://".to_string()),
        (
            "redis-stream",
            format!(
                "{}?prefix=bench{id}",
                env("SECKILL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0").replacen(
                    "redis://",
                    "redis-stream://",
                    1
                )
            ),
        ),
        (
            "amqp",
            format!(
                "{}?groups=order-workers&prefix=bench{id}&expires=60000",
                env(
                    "SECKILL_BENCH_AMQP_URL",
                    "amqp://guest:guest@127.0.0.1:5672/%2f"
                )
            ),
        ),
        (
            "kafka",
            // tansu needs one message per record batch (see the kafka module's docs).
            format!(
                "kafka://{}?prefix=bench{id}&producer.batch.num.messages=1",
                env("SECKILL_BENCH_KAFKA_BROKERS", "127.0.0.1:9092")
            ),
        ),
    ]
}

async fn broker(registry: &Registry, url: &str) -> Option<Arc<dyn MessageBroker>> {
    let ctx = BuildContext::new(Arc::new(SystemClock));
    match registry.broker.build(url, &ctx).await {
        Ok(b) => Some(b),
        Err(e) => {
            let shown = BackendUrl::parse(url)
                .map(|u| u.to_string())
                .unwrap_or_default();
            println!("  skipped {shown}: {e}");
            None
        }
    }
}

/// A live activity of `units` (limit 1) on an engine over `broker`.
async fn sale(broker: Arc<dyn MessageBroker>, units: u32) -> (Engine, ActivityId) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let provider = Arc::new(MockProvider::new(b"bench".to_vec()));
    let mut backends = Backends::in_memory(clock.clone(), provider);
    backends.broker = broker;
    let engine = Engine::new(backends, EngineConfig::default());
    let activity = live_activity(
        engine.backends().catalog.as_ref(),
        clock.now() - CDuration::seconds(1),
        units,
        1,
    )
    .await;
    engine.warm_up(activity.id).await.expect("warm up");
    (engine, activity.id)
}

async fn buy(engine: &Engine, activity: ActivityId, user: i64) -> bool {
    matches!(
        engine
            .buy(BuyRequest {
                holders: Vec::new(),
                user_id: UserId(user),
                activity_id: activity,
                quantity: 1,
                request_id: None,
                lines: Vec::new(),
            })
            .await,
        Ok(BuyOutcome::Reserved { .. })
    )
}

/// Entries per second the relay hands to the broker, from a full outbox.
async fn relay_throughput(broker: Arc<dyn MessageBroker>) -> f64 {
    let (engine, activity) = sale(broker, RELAY_HOLDS).await;
    let mut tasks = Vec::new();
    for chunk in 0..16i64 {
        let e = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            for u in (chunk..RELAY_HOLDS as i64).step_by(16) {
                n += buy(&e, activity, u + 1).await as u32;
            }
            n
        }));
    }
    let mut held = 0;
    for t in tasks {
        held += t.await.expect("buyers");
    }
    assert_eq!(held, RELAY_HOLDS, "every buyer holds a unit");
    let started = Instant::now();
    let mut relayed = 0;
    loop {
        let n = engine.relay_once().await.expect("relay");
        relayed += n;
        if n == 0 && engine.backends().stock.outbox_len().await.expect("outbox") == 0 {
            break;
        }
    }
    assert_eq!(relayed, RELAY_HOLDS as usize, "every entry relayed once");
    RELAY_HOLDS as f64 / started.elapsed().as_secs_f64()
}

/// Hold → committed order at a steady rate: (mean, p50 bound, p99 bound, orders).
async fn end_to_end(broker: Arc<dyn MessageBroker>) -> (Duration, f64, f64, u64) {
    let total = RATE * STEADY_SECS;
    let (engine, activity) = sale(broker, total).await;
    let pace = Pace {
        poll: Duration::from_millis(1),
        ..Pace::default()
    };
    let runner =
        seckill_core::engine::Runner::start(&engine, &[Role::Relay, Role::OrderWorker], pace);
    // Open loop: one buy every 1/RATE s, whatever the previous ones are doing.
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / RATE);
    let mut tasks = Vec::new();
    for u in 0..total as i64 {
        ticker.tick().await;
        let e = engine.clone();
        tasks.push(tokio::spawn(async move { buy(&e, activity, u + 1).await }));
    }
    for t in tasks {
        assert!(t.await.expect("buyer"), "every buyer holds a unit");
    }
    let m = engine.metrics();
    let deadline = Instant::now() + Duration::from_secs(60);
    while m.order_create.count() < u64::from(total) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    runner.stop().await;
    (
        m.order_create.mean(),
        m.order_create.quantile_bound(0.5).unwrap_or(f64::NAN),
        m.order_create.quantile_bound(0.99).unwrap_or(f64::NAN),
        m.order_create.count(),
    )
}

#[tokio::main]
async fn main() {
    let mut registry = Registry::with_memory();
    seckill_broker::register(&mut registry);
    println!(
        "relay: {RELAY_HOLDS} outbox entries; end to end: {RATE} buys/s for {STEADY_SECS} s \
         (memory stock and orders)"
    );
    println!(
        "{:<14} {:>14} {:>9} {:>11} {:>9} {:>9} {:>8}",
        "broker", "relay entries/s", "× memory", "e2e mean", "p50 ≤", "p99 ≤", "orders"
    );
    let mut baseline = None;
    // The end-to-end phase gets namespaces of its own: the relay phase leaves its 20,000
    // messages unconsumed.
    for ((name, url), (_, e2e_url)) in brokers().into_iter().zip(brokers()) {
        let Some(b) = broker(&registry, &url).await else {
            continue;
        };
        let rate = relay_throughput(b).await;
        let base = *baseline.get_or_insert(rate);
        let Some(b) = broker(&registry, &e2e_url).await else {
            continue;
        };
        let (mean, p50, p99, orders) = end_to_end(b).await;
        println!(
            "{name:<14} {rate:>15.0} {:>9.3} {:>9.2}ms {:>7.1}ms {:>7.1}ms {orders:>8}",
            rate / base,
            mean.as_secs_f64() * 1e3,
            p50 * 1e3,
            p99 * 1e3,
        );
    }
}
