//! A Redis restart mid-run: while it is down, calls fail fast with a retryable error (no hang,
//! no panic); when it is back, the backends recover by themselves (connections re-made, scripts
//! reloaded on NOSCRIPT). The test starts and stops its own `redis-server` on a loopback port.

mod support;

use seckill_core::conformance::{service_url, unique_id};
use seckill_core::domain::ActivityId;
use seckill_core::registry::BackendUrl;
use seckill_core::stock::{ReserveOutcome, ReserveRequest, StockSpec};
use seckill_core::{DelayQueue, Lock, StockReserver};
use seckill_store::redis::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PORT: u16 = 7201;

struct OwnRedis(Child);

impl OwnRedis {
    fn start() -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &PORT.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", PORT)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        OwnRedis(child)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spec(a: ActivityId) -> StockSpec {
    support::open_stock(a)
}

fn req(a: ActivityId) -> ReserveRequest {
    support::one_unit(a, &format!("r{}", unique_id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_fail_fast_while_redis_is_down_and_recover_after() {
    // Runs where the Redis tooling is (CI sets the URL); our own server, not the shared one.
    if service_url("SECKILL_TEST_REDIS_URL").is_none() {
        return;
    }
    let mut redis = Some(OwnRedis::start());
    let url = BackendUrl::parse(&format!("redis://127.0.0.1:{PORT}/0?prefix=res")).unwrap();
    let t = connect(&url).await.unwrap();
    let stock = RedisStockReserver::new(t.clone(), DEFAULT_MAX_BATCH);
    let delay = RedisDelayQueue::new(t.clone());
    let lock = RedisLock::new(t);
    let a = ActivityId(unique_id());
    stock.load(&spec(a)).await.unwrap();
    assert!(matches!(
        stock.reserve(&req(a)).await.unwrap(),
        ReserveOutcome::Reserved { .. }
    ));

    // Down: every call fails quickly with a retryable error.
    redis.take();
    for _ in 0..3 {
        let started = Instant::now();
        let err = stock.reserve(&req(a)).await.expect_err("Redis is down");
        assert!(err.is_retryable(), "{err}");
        let err = delay.len("q").await.expect_err("Redis is down");
        assert!(err.is_retryable(), "{err}");
        let err = lock
            .acquire("k", Duration::from_secs(1))
            .await
            .expect_err("Redis is down");
        assert!(err.is_retryable(), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "calls must not hang: {:?}",
            started.elapsed()
        );
    }

    // Back (empty: this server keeps nothing): the same objects work again by themselves,
    // scripts reloaded on NOSCRIPT.
    let _redis = OwnRedis::start();
    let started = Instant::now();
    loop {
        match stock.load(&spec(a)).await {
            Ok(()) => break,
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "no recovery: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(matches!(
        stock.reserve(&req(a)).await.unwrap(),
        ReserveOutcome::Reserved { .. }
    ));
    assert_eq!(delay.len("q").await.unwrap(), 0);
    assert!(lock
        .acquire("k", Duration::from_secs(1))
        .await
        .unwrap()
        .is_some());
}
