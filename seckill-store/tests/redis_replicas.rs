//! `ack=replicas:N`: a reservation is acknowledged only once it reached N replicas, so a
//! failover to a replica (the primary killed, `REPLICAOF NO ONE` on the replica) loses no
//! acknowledged reservation; with `ack=memory` (the default) a replica that missed the last
//! writes loses them, which the negative case shows. The test starts its own primary and replica
//! (`redis-server` on 7311 and 7312) and stops them; it runs where `SECKILL_TEST_REDIS_URL` is
//! set (a machine with Redis).

mod support;

use seckill_core::conformance::{service_url, unique_id};
use seckill_core::domain::{ActivityId, HoldId};
use seckill_core::registry::BackendUrl;
use seckill_core::stock::{ReserveOutcome, ReserveRequest};
use seckill_core::{Error, StockReserver};
use seckill_store::redis::{connect, RedisStockReserver, DEFAULT_MAX_BATCH};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PRIMARY: u16 = 7311;
const REPLICA: u16 = 7312;

/// A `redis-server` of the test's own, killed on drop.
struct Node(Child, u16);

impl Node {
    fn start(port: u16, replica_of: Option<u16>) -> Self {
        let mut c = Command::new("redis-server");
        // Its files (the replica's copy of the primary's snapshot) go to a directory of its own.
        let dir = std::env::temp_dir().join(format!("seckill-replicas-test-{port}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        c.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = replica_of {
            c.args(["--replicaof", "127.0.0.1", &p.to_string()]);
        }
        let child = c.spawn().expect("redis-server on PATH");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Node(child, port)
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.1.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .expect("kill");
    }

    /// Waits until the replica has synced with its primary.
    fn wait_synced(&self) {
        let started = Instant::now();
        while !self
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "replica never synced"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.id().to_string()])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn reserver(port: u16, prefix: &str, ack: &str) -> RedisStockReserver {
    let url = format!("redis://127.0.0.1:{port}/0?prefix={prefix}&ack={ack}&ack_timeout_ms=300");
    let t = connect(&BackendUrl::parse(&url).unwrap())
        .await
        .expect("connect");
    RedisStockReserver::new(t, DEFAULT_MAX_BATCH)
}

async fn load(r: &RedisStockReserver, a: ActivityId) {
    r.load(&support::open_stock(a)).await.expect("load");
}

fn req(a: ActivityId, key: &str) -> ReserveRequest {
    support::one_unit(a, key)
}

/// Kills the primary, promotes the replica and says whether the replica has the hold.
async fn fail_over(primary: Node, replica: &Node, prefix: &str, a: ActivityId, h: HoldId) -> bool {
    drop(primary); // SIGKILL
    replica.signal("-CONT");
    replica.cli(&["REPLICAOF", "NO", "ONE"]);
    let promoted = reserver(REPLICA, prefix, "memory").await;
    promoted
        .hold(a, h)
        .await
        .expect("read the promoted replica")
        .is_some()
}

#[tokio::test]
async fn an_acknowledged_reservation_survives_a_failover_only_with_replicas_ack() {
    if service_url("SECKILL_TEST_REDIS_URL").is_none() {
        return;
    }
    // replicas:1, replica healthy: acknowledged, and the replica has it after a failover.
    {
        let primary = Node::start(PRIMARY, None);
        let replica = Node::start(REPLICA, Some(PRIMARY));
        replica.wait_synced();
        let prefix = format!("rep{}", unique_id());
        let r = reserver(PRIMARY, &prefix, "replicas:1").await;
        let a = ActivityId(unique_id());
        load(&r, a).await;
        let ReserveOutcome::Reserved { hold, .. } = r.reserve(&req(a, "k1")).await.unwrap() else {
            panic!("must reserve")
        };
        // The replica stops applying writes now: with replicas:1 a reserve is not acknowledged.
        replica.signal("-STOP");
        let started = Instant::now();
        let second = req(a, "k2");
        let e = r.reserve(&second).await.unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "fails within the ack timeout"
        );
        // A retry under the same key while the replica is still away replays the reservation,
        // and is not acknowledged either, also through another connection (another api
        // process), which wrote nothing before: the replay writes, so its WAIT covers it.
        let other = reserver(PRIMARY, &prefix, "replicas:1").await;
        let e = other.reserve(&req(a, "k2")).await.unwrap_err();
        assert!(
            matches!(e, Error::Unavailable { .. }),
            "a replay waits too: {e}"
        );
        // The buyer retries under the same key once the replica is back: the same hold.
        replica.signal("-CONT");
        let again = r.reserve(&req(a, "k2")).await.unwrap();
        assert!(
            matches!(again, ReserveOutcome::Reserved { replayed: true, .. }),
            "{again:?}"
        );
        drop((r, other));
        assert!(
            fail_over(primary, &replica, &prefix, a, hold.id).await,
            "an acknowledged reservation survives the failover"
        );
    }
    // ack=memory (the negative control): a replica that missed the write loses an acknowledged
    // reservation.
    {
        let primary = Node::start(PRIMARY, None);
        let replica = Node::start(REPLICA, Some(PRIMARY));
        replica.wait_synced();
        let prefix = format!("rep{}", unique_id());
        let r = reserver(PRIMARY, &prefix, "memory").await;
        let a = ActivityId(unique_id());
        load(&r, a).await;
        // Let the activity reach the replica, then cut the replica off (it stops following the
        // primary: the next write never reaches it).
        tokio::time::sleep(Duration::from_millis(300)).await;
        replica.cli(&["REPLICAOF", "NO", "ONE"]);
        let ReserveOutcome::Reserved { hold, .. } = r.reserve(&req(a, "k1")).await.unwrap() else {
            panic!("must reserve")
        };
        drop(r);
        assert!(
            !fail_over(primary, &replica, &prefix, a, hold.id).await,
            "with ack=memory the acknowledged reservation is lost"
        );
    }
}
