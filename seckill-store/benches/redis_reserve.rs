//! Reservations per second on one activity with random users, in one run on one machine:
//!
//! 1. baseline: `redis-benchmark` calling the reserve script by EVALSHA (50 clients, no
//!    pipelining) — what a plain client calling the same Lua achieves;
//! 2. our reserver, unbatched (`max_batch = 1`), 50 concurrent callers;
//! 3. our reserver, batched (default `max_batch`), 50 concurrent callers.
//!
//! Prints each rate and its ratio to the baseline. Targets (docs/benchmarks.md): batched ≥ 2.0×,
//! unbatched ≥ 1.0×.
//!
//! 4. with `SECKILL_BENCH_ACK_REPLICAS` set (the Redis has a replica): batched with
//!    `ack=replicas:1`, the cost of waiting for the replica.
//!
//! 5. with `SECKILL_BENCH_REDIS_CLUSTER_URL` set (`redis-cluster://…`, e.g. the local
//!    3-master cluster of `.ci/redis-cluster.sh start`): the scale-out of one hot activity,
//!    batched, with 1 stock bucket (its baseline: one slot, one master) and with 3 and 6
//!    buckets spread over the masters (docs/adr/0020), each over the same number of
//!    reservations, in one run.
//!
//! Run: `cargo bench -p seckill-store --bench redis_reserve` (Redis at
//! `SECKILL_BENCH_REDIS_URL`, default `redis://127.0.0.1:6379/0`; `redis-benchmark` on PATH).

use chrono::{Duration as CDuration, Utc};
use seckill_core::domain::{ActivityId, HoldId, OrderId, UserId};
use seckill_core::registry::BackendUrl;
use seckill_core::stock::{ReserveOutcome, ReserveRequest, StockSpec};
use seckill_core::StockReserver;
use seckill_store::redis::{connect, RedisStockReserver, RedisTarget, DEFAULT_MAX_BATCH};
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

const CLIENTS: usize = 50;
const REQUESTS: usize = 200_000;

static IDS: AtomicI64 = AtomicI64::new(1);

fn next_id() -> i64 {
    IDS.fetch_add(1, Ordering::Relaxed)
}

async fn fresh_activity(r: &RedisStockReserver, buckets: u32) -> ActivityId {
    let a = ActivityId(Utc::now().timestamp_micros());
    let now = Utc::now();
    r.load(&StockSpec {
        activity_id: a,
        total: 100_000_000,
        sold: 0,
        per_user_limit: 1_000_000,
        starts_at: now - CDuration::minutes(1),
        ends_at: now + CDuration::hours(1),
        user_counts: vec![],
        adopt: vec![],
        fence: 0,
        buckets,
        tiers: Vec::new(),
        quotas: Vec::new(),
        seats: Vec::new(),
    })
    .await
    .expect("load");
    a
}

/// The baseline: redis-benchmark EVALSHA of the same script with random users.
async fn baseline(url: &str, t: &RedisTarget, r: &RedisStockReserver) -> f64 {
    let a = fresh_activity(r, 1).await;
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(include_str!("../src/redis/lua/stock_reserve.lua"))
        .query_async(&mut t.conn.clone())
        .await
        .expect("script load");
    let hostport = url
        .trim_start_matches("redis://")
        .split(['/', '?'])
        .next()
        .unwrap_or("127.0.0.1:6379")
        .to_string();
    let (host, port) = hostport.split_once(':').unwrap_or((&hostport, "6379"));
    let key = |p: &str| format!("{}:{{a{}}}:{}", t.prefix, a, p);
    let now = Utc::now().timestamp_millis();
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            host,
            "-p",
            port,
            "-c",
            &CLIENTS.to_string(),
            "-n",
            &REQUESTS.to_string(),
        ])
        .args(["-P", "1", "-r", "100000000", "-q", "--csv"])
        .args(["EVALSHA", &sha, "5"])
        .args([
            key("stock"),
            key("holds"),
            key("users"),
            key("req"),
            key("outbox"),
        ])
        .args([
            "1",
            "0", // one bucket
            "__rand_int__",
            "1",
            "req__rand_int__",
            "__rand_int__",
            "7",
        ])
        .args([(now + 900_000).to_string(), now.to_string()])
        .arg("") // no traceparent
        .arg("0") // no shared rate charge refused it
        .output()
        .expect("redis-benchmark on PATH");
    let text = String::from_utf8_lossy(&out.stdout);
    // CSV: "test","rps",...
    let line = text.lines().last().unwrap_or_default();
    let rps = line
        .split(',')
        .nth(1)
        .and_then(|f| f.trim_matches('"').parse::<f64>().ok())
        .unwrap_or_else(|| panic!("unexpected redis-benchmark output: {text}"));
    let snap = r.snapshot(a).await.unwrap().unwrap();
    assert!(
        snap.held > 0,
        "the baseline must actually reserve: {snap:?}"
    );
    rps
}

/// Our reserver with `CLIENTS` concurrent callers, on an activity of one stock bucket.
async fn ours(r: Arc<RedisStockReserver>) -> f64 {
    ours_in(r, 1).await
}

/// Our reserver with `CLIENTS` concurrent callers, on an activity of `buckets` stock buckets.
async fn ours_in(r: Arc<RedisStockReserver>, buckets: u32) -> f64 {
    let a = fresh_activity(&r, buckets).await;
    let started = Instant::now();
    let per_client = REQUESTS / CLIENTS;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for i in 0..per_client {
                let now = Utc::now();
                let req = ReserveRequest {
                    holders: Vec::new(),
                    activity_id: a,
                    user_id: UserId(rand::random::<i64>().rem_euclid(100_000_000)),
                    quantity: 1,
                    request_id: format!("b{c}-{i}"),
                    hold_id: HoldId(next_id()),
                    order_id: OrderId(next_id()),
                    now,
                    expires_at: now + CDuration::minutes(15),
                    trace_parent: None,
                    rates: Vec::new(),
                    lines: Vec::new(),
                };
                if let ReserveOutcome::Reserved { .. } = r.reserve(&req).await.expect("reserve") {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut reserved = 0;
    for t in tasks {
        reserved += t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    assert!(
        reserved > per_client * CLIENTS * 9 / 10,
        "most reserves must succeed"
    );
    reserved as f64 / secs
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::var("SECKILL_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let prefix = format!("bench{}", Utc::now().timestamp());
    let t = connect(&BackendUrl::parse(&format!("{url}?prefix={prefix}")).unwrap())
        .await
        .expect("connect");
    let probe = RedisStockReserver::new(t.clone(), 1);
    println!("reserve throughput, {REQUESTS} reservations, {CLIENTS} concurrent clients, random users, one activity");
    let base = baseline(&url, &t, &probe).await;
    println!(
        "baseline  redis-benchmark EVALSHA (-c {CLIENTS} -P 1): {base:>10.0} reservations/s  1.00x"
    );
    let unbatched = ours(Arc::new(RedisStockReserver::new(t.clone(), 1))).await;
    println!("ours      unbatched (max_batch 1):                {unbatched:>10.0} reservations/s  {:.2}x", unbatched / base);
    let batched = ours(Arc::new(RedisStockReserver::new(
        t.clone(),
        DEFAULT_MAX_BATCH,
    )))
    .await;
    println!("ours      batched (max_batch {DEFAULT_MAX_BATCH}):                {batched:>10.0} reservations/s  {:.2}x", batched / base);
    // The cost of `ack=replicas:1` (a WAIT after each batch), when the Redis has a replica.
    if std::env::var_os("SECKILL_BENCH_ACK_REPLICAS").is_some() {
        let tw =
            connect(&BackendUrl::parse(&format!("{url}?prefix={prefix}&ack=replicas:1")).unwrap())
                .await
                .expect("connect");
        let waited = ours(Arc::new(RedisStockReserver::new(tw, DEFAULT_MAX_BATCH))).await;
        println!("ours      batched, ack=replicas:1 (WAIT 1):        {waited:>10.0} reservations/s  {:.2}x", waited / base);
    }
    if let Ok(cluster) = std::env::var("SECKILL_BENCH_REDIS_CLUSTER_URL") {
        scale_out(&cluster, &prefix).await;
    }
    // Leave nothing behind.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut t.conn.clone())
        .await
        .unwrap_or_default();
    for k in keys {
        let _: redis::RedisResult<i64> = redis::cmd("DEL")
            .arg(k)
            .query_async(&mut t.conn.clone())
            .await;
    }
}

/// One hot activity on a Redis Cluster: 1 bucket (one slot: one master's core) against 3 and 6.
async fn scale_out(url: &str, prefix: &str) {
    let t = connect(&BackendUrl::parse(&format!("{url}?prefix={prefix}c")).unwrap())
        .await
        .expect("connect to the cluster");
    println!("scale-out on {url}, batched (max_batch {DEFAULT_MAX_BATCH})");
    let mut base = 0.0;
    for k in [1, 3, 6] {
        let rate = ours_in(
            Arc::new(RedisStockReserver::new(t.clone(), DEFAULT_MAX_BATCH)),
            k,
        )
        .await;
        if k == 1 {
            base = rate;
        }
        println!(
            "cluster   {k} bucket(s):                             {rate:>10.0} reservations/s  {:.2}x",
            rate / base
        );
    }
    // The cluster's keys of this run: every master holds some of them.
    for node in url.trim_start_matches("redis-cluster://").split(',') {
        let Ok(client) = redis::Client::open(format!("redis://{node}")) else {
            continue;
        };
        let Ok(mut c) = client.get_multiplexed_async_connection().await else {
            continue;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}c:*"))
            .query_async(&mut c)
            .await
            .unwrap_or_default();
        for k in keys {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(k).query_async(&mut c).await;
        }
    }
}
