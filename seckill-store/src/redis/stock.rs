//! [`RedisStockReserver`]: the atomic reserve step as one Lua script per batch of requests,
//! with the hold records, per-user counts, request ids and the outbox stream of an activity under
//! one hash tag (`{a<id>}`), so every script touches one slot, also on a cluster.
//!
//! Concurrent reserves for the same activity are coalesced: the first caller starts a driver
//! task that sends everything queued meanwhile as one script call (up to `max_batch`), and goes
//! on while more arrive; no timer on the hot path. Results go back to each caller in order.
//!
//! Stock buckets (docs/adr/0020): an activity of K > 1 buckets keeps bucket 0 under `{a<id>}`
//! and bucket `j` under `{a<id>.<j>}` (so a cluster spreads them over masters). A buyer's
//! reserve runs in their bucket; a bucket too short answers "borrow", and the reserver moves
//! units from the other buckets by journaled transfers (`stock_lend.lua` on the donor, then
//! `stock_receive.lua` on the target, idempotent by transfer id) before sending it again. A
//! transfer a crash interrupted stays in the donor's journal, counted in transit by `snapshot`,
//! and is completed by the next load. K is stored on bucket 0 and cached per activity.
//!
//! Sold-out fast path: when a reserve finds an activity sold out, the node flags it locally and
//! publishes it on `<prefix>:soldout`; every node's subscriber flags it too, so
//! [`StockReserver::sold_out_hint`] answers without a Redis call. A release that brings stock
//! back, or a reload, publishes the clear. A flag lives at most [`SOLD_OUT_TTL`] unless
//! renewed, and a (re)subscription clears every flag, so a lost message costs at most that long.

use super::codec::{
    hold_record, hold_record_text, holders_text, int, items, lines_text, outbox_payload, string,
    unexpected,
};
use super::conn::{map_err, RedisConn, RedisTarget};
use async_trait::async_trait;
use parking_lot::Mutex;
use redis::{Script, Value};
use seckill_core::domain::{ActivityId, Hold, HoldId, HoldState, UserId};
use seckill_core::rate_limit::RateCharge;
use seckill_core::stock::{
    HoldRecord, OutboxEntry, ReserveOutcome, ReserveRequest, StockReserver, StockSnapshot,
    StockSpec, TierSnapshot, Transition,
};
use seckill_core::{Entity, Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};

/// How long a sold-out flag is trusted without being renewed.
pub const SOLD_OUT_TTL: Duration = Duration::from_secs(1);

static LOAD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/stock_load.lua")));
static RESERVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/stock_reserve.lua")));
static CONFIRM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/stock_confirm.lua")));
static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/stock_release.lua")));
static OUTBOX_CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/outbox_claim.lua")));
static BUCKET_LOAD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/stock_bucket_load.lua")));
static LEND: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/stock_lend.lua")));
static RECEIVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/stock_receive.lua")));
static RESIZE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/stock_resize.lua")));
static CHARGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/stock_charge.lua")));

/// How many times a buy whose bucket ran short borrows and tries again before it is answered
/// with what the activity has (only concurrent buyers taking the borrowed units make it retry).
const BORROW_ROUNDS: usize = 4;

/// A script's answer to one reserve of a batch.
#[derive(Debug)]
enum Answer {
    /// Decided.
    Done(ReserveOutcome),
    /// The bucket has this many units available, too few: borrow, then send it again.
    Short(i64),
    /// The request does not fit the activity (its quantity or lines): refused alone, so that
    /// the other requests of its batch get their answers.
    Invalid,
}

impl Answer {
    /// The refusal of an [`Answer::Invalid`] request.
    fn invalid() -> Error {
        Error::invalid(
            "quantity must be a whole number ≥ 1, and lines must name the session's tiers once \
             each, adding up to it (a plain sale takes none)",
        )
    }
}

/// A queued reserve: the request, the wait a shared rate charge imposed on it (µs, 0: none),
/// and where its answer goes.
type Waiter = (ReserveRequest, u64, oneshot::Sender<Result<Answer>>);

/// What a lending bucket gives ([`Inner::lend`]).
#[derive(Clone, Copy)]
enum Want {
    /// `max(missing, half of what it has)`, at most what it has.
    Units(i64),
    /// Everything it has available, even a shortfall (below 0) that the target then covers.
    All,
}

#[derive(Default)]
struct Queue {
    pending: Mutex<Vec<Waiter>>,
    running: AtomicBool,
}

struct Inner {
    t: RedisTarget,
    consumer: String,
    max_batch: usize,
    queues: Mutex<HashMap<(ActivityId, u32), Arc<Queue>>>,
    /// Stock buckets per activity (fixed once loaded, so cached for good).
    counts: parking_lot::RwLock<HashMap<ActivityId, u32>>,
    sold_out: parking_lot::RwLock<HashMap<ActivityId, Instant>>,
    stop: Arc<Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

/// The Redis stock backend.
#[derive(Clone)]
pub struct RedisStockReserver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStockReserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStockReserver")
            .field("prefix", &self.inner.t.prefix)
            .field("max_batch", &self.inner.max_batch)
            .finish()
    }
}

fn ms(t: seckill_core::Timestamp) -> i64 {
    t.timestamp_millis()
}

/// The stored precision of times: milliseconds.
fn truncate_ms(t: seckill_core::Timestamp) -> seckill_core::Timestamp {
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

impl RedisStockReserver {
    /// A reserver on `target` that coalesces up to `max_batch` concurrent reserves of an
    /// activity into one script call (`max_batch = 1`: every reserve is its own call).
    ///
    /// Called inside a tokio runtime, it also subscribes to the sold-out notifications of the
    /// other nodes (outside one, its sold-out flags are local only).
    pub fn new(target: RedisTarget, max_batch: usize) -> Self {
        let stop = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            t: target,
            consumer: format!("relay-{:016x}", rand::random::<u64>()),
            max_batch: max_batch.max(1),
            queues: Mutex::new(HashMap::new()),
            counts: parking_lot::RwLock::new(HashMap::new()),
            sold_out: parking_lot::RwLock::new(HashMap::new()),
            stop: stop.clone(),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(listen(Arc::downgrade(&inner), stop));
        }
        Self { inner }
    }
}

fn sold_out_channel(prefix: &str) -> String {
    format!("{prefix}:soldout")
}

/// Follows the sold-out notifications of every node until the reserver is dropped.
async fn listen(inner: Weak<Inner>, stop: Arc<Notify>) {
    use futures::StreamExt;
    loop {
        let Some((client, channel)) = inner
            .upgrade()
            .map(|i| (i.t.pubsub.clone(), sold_out_channel(&i.t.prefix)))
        else {
            return;
        };
        let session = async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            // Clears may have been missed while not subscribed.
            if let Some(i) = inner.upgrade() {
                i.sold_out.write().clear();
            }
            let mut messages = ps.on_message();
            while let Some(msg) = messages.next().await {
                let Some(i) = inner.upgrade() else { break };
                let payload: String = msg.get_payload().unwrap_or_default();
                let Some((flag, id)) = payload.split_once(':') else {
                    continue;
                };
                let Ok(id) = id.parse() else { continue };
                let mut map = i.sold_out.write();
                if flag == "1" {
                    map.insert(ActivityId(id), Instant::now());
                } else {
                    map.remove(&ActivityId(id));
                }
            }
            Ok::<(), redis::RedisError>(())
        };
        tokio::select! {
            r = session => if let Err(e) = r {
                tracing::debug!(error = %e, "sold-out subscription lost; resubscribing");
            },
            _ = stop.notified() => return,
        }
        if let Some(i) = inner.upgrade() {
            i.sold_out.write().clear();
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.notified() => return,
        }
    }
}

impl Inner {
    fn conn(&self) -> RedisConn {
        self.t.conn.clone()
    }

    /// The key of one of bucket 0's parts (every part of an activity of one bucket).
    fn key(&self, a: ActivityId, part: &str) -> String {
        self.key_in(a, 0, part)
    }

    /// The key of one part of bucket `j`: its own hash tag for `j > 0`.
    fn key_in(&self, a: ActivityId, j: u32, part: &str) -> String {
        if j == 0 {
            format!("{}:{{a{}}}:{}", self.t.prefix, a, part)
        } else {
            format!("{}:{{a{}.{}}}:{}", self.t.prefix, a, j, part)
        }
    }

    fn activities_key(&self) -> String {
        format!("{}:activities", self.t.prefix)
    }

    /// The buckets of every activity ever loaded (whose outbox streams the relay reads): set
    /// members `<id>` (bucket 0) and `<id>.<j>`.
    async fn activities(&self) -> Result<Vec<(ActivityId, u32)>> {
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.activities_key())
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(ids.iter().filter_map(|m| parse_bucket(m)).collect())
    }

    /// The activity's number of stock buckets: cached, else read from bucket 0 (1 when it
    /// has none recorded, or is not loaded; only a loaded activity's count is cached).
    async fn count(&self, a: ActivityId) -> Result<u32> {
        if let Some(k) = self.counts.read().get(&a) {
            return Ok(*k);
        }
        let (k, total): (Option<u32>, Option<i64>) = redis::cmd("HMGET")
            .arg(self.key(a, "stock"))
            .arg("buckets")
            .arg("total")
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        if total.is_none() {
            return Ok(1);
        }
        let k = k.unwrap_or(1).max(1);
        self.counts.write().insert(a, k);
        Ok(k)
    }

    /// One field of one of a bucket's hashes.
    async fn hget<T: redis::FromRedisValue>(
        &self,
        a: ActivityId,
        j: u32,
        part: &str,
        field: i64,
    ) -> Result<Option<T>> {
        redis::cmd("HGET")
            .arg(self.key_in(a, j, part))
            .arg(field)
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)
    }

    /// Flags (`true`) or clears an activity's sold-out state here and on every node.
    async fn announce_sold_out(&self, a: ActivityId, sold_out: bool) {
        if sold_out {
            let recent = self
                .sold_out
                .read()
                .get(&a)
                .is_some_and(|t| t.elapsed() < SOLD_OUT_TTL / 2);
            self.sold_out.write().insert(a, Instant::now());
            if recent {
                return; // announced moments ago
            }
        } else {
            // Announced even if not flagged here: other nodes may have it flagged.
            self.sold_out.write().remove(&a);
        }
        let r: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(sold_out_channel(&self.t.prefix))
            .arg(format!("{}:{}", u8::from(sold_out), a))
            .query_async(&mut self.conn())
            .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "sold-out announcement failed (flags expire anyway)");
        }
    }

    /// One script call for a batch of reserves in bucket `j` (`bucketed`: of an activity of
    /// several, where a short bucket answers [`Answer::Short`]).
    async fn reserve_batch(
        &self,
        a: ActivityId,
        j: u32,
        bucketed: bool,
        reqs: &[(ReserveRequest, u64)],
    ) -> Result<Vec<Answer>> {
        let mut inv = RESERVE.prepare_invoke();
        for part in [
            "stock", "holds", "users", "req", "outbox", "rate", "seats", "docs",
        ] {
            inv.key(self.key_in(a, j, part));
        }
        inv.arg(reqs.len()).arg(u8::from(bucketed));
        for (r, refused) in reqs {
            inv.arg(r.user_id.0);
            if r.lines.is_empty() && r.holders.is_empty() {
                inv.arg(r.quantity);
            } else {
                let mut q = format!("{}/{}", r.quantity, lines_text(&r.lines));
                if !r.holders.is_empty() {
                    q.push('#');
                    q.push_str(&holders_text(&r.holders));
                }
                inv.arg(q);
            }
            inv.arg(&r.request_id)
                .arg(r.hold_id.0)
                .arg(r.order_id.0)
                .arg(r.expires_at.timestamp_millis())
                .arg(r.now.timestamp_millis())
                .arg(r.trace_parent.as_deref().unwrap_or(""))
                .arg(*refused)
                .arg(r.rates.len());
            if !r.rates.is_empty() {
                inv.arg(r.now.timestamp_micros());
                for c in &r.rates {
                    let (interval, tolerance) = gcra_args(c);
                    inv.arg(&c.key).arg(interval).arg(tolerance);
                }
            }
        }
        let mut conn = self.conn();
        let reply: Value = inv.invoke_async(&mut conn).await.map_err(map_err)?;
        let outs = items(reply, "reserve")?;
        if outs.len() != reqs.len() {
            return Err(Error::backend(
                "redis",
                "reserve answered a different number of results",
            ));
        }
        let answers: Vec<Answer> =
            outs.into_iter()
                .zip(reqs)
                .map(|(o, (r, _))| {
                    let f = items(o, "reserve result")?;
                    let code = f.first().map(|c| int(c, "reserve code")).transpose()?;
                    if code == Some(9) {
                        return Ok(Answer::Short(int(&f[1], "available")?));
                    }
                    Ok(Answer::Done(match code {
                        // Reserved now: the hold is exactly what the request described.
                        Some(0) if f.len() == 1 => ReserveOutcome::Reserved {
                            hold: Hold {
                                holders: r.holders.clone(),
                                id: r.hold_id,
                                order_id: r.order_id,
                                activity_id: a,
                                user_id: r.user_id,
                                quantity: r.quantity,
                                created_at: truncate_ms(r.now),
                                expires_at: truncate_ms(r.expires_at),
                                lines: r.lines.clone(),
                            },
                            replayed: false,
                        },
                        // Reserved now in a seated session: the record has the seats it got.
                        Some(14) => {
                            let rec = string(&f[1], "hold record")?;
                            let (hold, _) = hold_record(a, r.hold_id, &rec)?;
                            ReserveOutcome::Reserved {
                                hold,
                                replayed: false,
                            }
                        }
                        Some(15) => ReserveOutcome::HolderTaken {
                            id_hashes: f[1..]
                                .iter()
                                .map(|v| string(v, "document"))
                                .collect::<Result<_>>()?,
                        },
                        Some(12) => ReserveOutcome::SeatsTaken {
                            seats: f[1..]
                                .iter()
                                .map(|v| string(v, "seat"))
                                .collect::<Result<_>>()?,
                        },
                        Some(0) => {
                            let id = HoldId(int(&f[1], "hold id")?);
                            let rec = string(&f[2], "hold record")?;
                            let (hold, _) = hold_record(a, id, &rec)?;
                            ReserveOutcome::Reserved {
                                hold,
                                replayed: true,
                            }
                        }
                        Some(1) => ReserveOutcome::SoldOut,
                        Some(2) => ReserveOutcome::InsufficientStock {
                            available: int(&f[1], "available")?.max(0) as u32,
                        },
                        Some(3) => ReserveOutcome::LimitExceeded {
                            held: int(&f[1], "held")? as u32,
                            limit: int(&f[2], "limit")? as u32,
                        },
                        Some(4) => ReserveOutcome::NotStarted,
                        Some(5) => ReserveOutcome::Ended,
                        Some(6) => ReserveOutcome::NotLoaded,
                        Some(7) => return Ok(Answer::Invalid),
                        Some(10) => ReserveOutcome::TierShort {
                            tier: int(&f[1], "tier")? as u32,
                            available: int(&f[2], "available")?.max(0) as u32,
                        },
                        Some(11) => ReserveOutcome::QuotaShort {
                            quota: int(&f[1], "quota")? as u32,
                            available: int(&f[2], "available")?.max(0) as u32,
                        },
                        Some(8) => ReserveOutcome::RateLimited {
                            retry_after: Duration::from_micros(
                                int(&f[1], "retry after")?.max(0) as u64
                            ),
                        },
                        _ => return Err(unexpected("reserve code", &Value::Array(f))),
                    }))
                })
                .collect::<Result<_>>()?;
        let done = |want: fn(&ReserveOutcome) -> bool| {
            answers
                .iter()
                .any(|o| matches!(o, Answer::Done(o) if want(o)))
        };
        if let super::conn::Ack::Replicas { n, timeout } = self.t.ack {
            // Every write of this connection so far, the batch's included (a replay writes its
            // request id again), must reach `n` replicas before any buy of the batch is
            // acknowledged. A batch that reserved nothing waits for nothing (it may have written
            // rate charges: a failover that loses one only gives a buyer back part of a burst).
            if done(|o| matches!(o, ReserveOutcome::Reserved { .. })) {
                self.wait_for_replicas(&mut conn, n, timeout).await?;
            }
        }
        // With buckets, the bucket's caller decides that the whole activity is sold out.
        if done(|o| *o == ReserveOutcome::SoldOut) {
            self.announce_sold_out(a, true).await;
        }
        if done(|o| *o == ReserveOutcome::NotLoaded) {
            self.counts.write().remove(&a);
        }
        Ok(answers)
    }

    /// `WAIT n timeout`; fewer replicas than `n` is "unavailable, retry under the same key".
    async fn wait_for_replicas(
        &self,
        conn: &mut RedisConn,
        n: u32,
        timeout: Duration,
    ) -> Result<()> {
        let acked: i64 = redis::cmd("WAIT")
            .arg(n)
            .arg(timeout.as_millis() as u64)
            .query_async(conn)
            .await
            .map_err(map_err)?;
        if acked < i64::from(n) {
            return Err(Error::Unavailable {
                backend: "redis",
                message: format!(
                    "the reservation reached {acked} of {n} replicas within {timeout:?}; \
                     retry with the same idempotency key"
                ),
            });
        }
        Ok(())
    }

    /// Drains a bucket's queue: one script call per batch, until nothing is queued.
    async fn drive(self: Arc<Self>, a: ActivityId, j: u32, bucketed: bool, q: Arc<Queue>) {
        loop {
            // Let the callers woken by the last batch queue their next requests first: bigger
            // batches, no timer.
            tokio::task::yield_now().await;
            let batch: Vec<Waiter> = {
                let mut p = q.pending.lock();
                if p.is_empty() {
                    q.running.store(false, Ordering::Release);
                    return;
                }
                let n = p.len().min(self.max_batch);
                p.drain(..n).collect()
            };
            let (reqs, txs): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|(r, w, tx)| ((r, w), tx)).unzip();
            match self.reserve_batch(a, j, bucketed, &reqs).await {
                Ok(outs) => {
                    for (tx, out) in txs.into_iter().zip(outs) {
                        let _ = tx.send(Ok(out));
                    }
                }
                Err(e) => {
                    let retryable = e.is_retryable();
                    let msg = e.to_string();
                    for tx in txs {
                        let _ = tx.send(Err(if retryable {
                            Error::Unavailable {
                                backend: "redis",
                                message: msg.clone(),
                            }
                        } else {
                            Error::backend("redis", msg.clone())
                        }));
                    }
                }
            }
        }
    }

    /// One reserve in bucket `j`: batched with the bucket's other reserves, unless batching is
    /// off.
    async fn submit(
        self: &Arc<Self>,
        a: ActivityId,
        j: u32,
        bucketed: bool,
        req: &ReserveRequest,
        refused: u64,
    ) -> Result<Answer> {
        if self.max_batch == 1 {
            let mut v = self
                .reserve_batch(a, j, bucketed, &[(req.clone(), refused)])
                .await?;
            return v
                .pop()
                .ok_or_else(|| Error::backend("redis", "empty reserve reply"));
        }
        let q = self.queues.lock().entry((a, j)).or_default().clone();
        let (tx, rx) = oneshot::channel();
        q.pending.lock().push((req.clone(), refused, tx));
        if !q.running.swap(true, Ordering::AcqRel) {
            tokio::spawn(self.clone().drive(a, j, bucketed, q));
        }
        rx.await
            .map_err(|_| Error::backend("redis", "reserve batch driver stopped"))?
    }

    /// A reserve of an activity of `k > 1` buckets: in the buyer's bucket, borrowing from the
    /// others while it is short; refused only when the activity as a whole is.
    async fn reserve_in_buckets(
        self: &Arc<Self>,
        req: &ReserveRequest,
        k: u32,
    ) -> Result<ReserveOutcome> {
        let a = req.activity_id;
        let home = seckill_core::stock::bucket_of(req.user_id, k);
        // Charges only this buyer makes live in their bucket, in the reserve's own step; a
        // charge buyers share is the activity's, on bucket 0: charged first, given back when
        // the reserve took nothing for a reason that charges nothing.
        let (shared, own): (Vec<_>, Vec<_>) =
            req.rates.iter().cloned().partition(|c| !c.buyer_only);
        let mut mine = req.clone();
        mine.rates = own;
        let now_us = req.now.timestamp_micros();
        let mut refused = 0;
        let charged = if shared.is_empty() {
            false
        } else {
            match self.charge(a, &shared, now_us, "charge").await? {
                None => true,
                Some(wait) => {
                    refused = wait.max(1);
                    false
                }
            }
        };
        let out = self.reserve_borrowing(&mine, k, home, refused).await;
        if charged {
            let keeps = matches!(
                out,
                Ok(ReserveOutcome::Reserved {
                    replayed: false,
                    ..
                } | ReserveOutcome::LimitExceeded { .. }
                    | ReserveOutcome::SoldOut
                    | ReserveOutcome::InsufficientStock { .. })
                    | Err(_)
            );
            if !keeps {
                self.charge(a, &shared, now_us, "refund").await?;
            }
        }
        out
    }

    async fn reserve_borrowing(
        self: &Arc<Self>,
        req: &ReserveRequest,
        k: u32,
        home: u32,
        refused: u64,
    ) -> Result<ReserveOutcome> {
        let a = req.activity_id;
        let mut whole = 0;
        for _ in 0..BORROW_ROUNDS {
            match self.submit(a, home, true, req, refused).await? {
                Answer::Done(o) => return Ok(o),
                Answer::Invalid => return Err(Answer::invalid()),
                Answer::Short(avail) => {
                    let short = i64::from(req.quantity) - avail;
                    let (moved, left) = self.borrow(a, home, k, short).await?;
                    whole = avail + moved + left;
                    if moved == 0 {
                        break;
                    }
                }
            }
        }
        if whole <= 0 {
            self.announce_sold_out(a, true).await;
            Ok(ReserveOutcome::SoldOut)
        } else {
            Ok(ReserveOutcome::InsufficientStock {
                available: whole.min(i64::from(req.quantity) - 1).max(1) as u32,
            })
        }
    }

    /// Moves units into bucket `home` from the others in turn until `short` more are there or
    /// the others have none. Returns (units moved, units the visited donors have left).
    async fn borrow(&self, a: ActivityId, home: u32, k: u32, short: i64) -> Result<(i64, i64)> {
        let (mut need, mut moved, mut left) = (short, 0, 0);
        for step in 1..k {
            if need <= 0 {
                break;
            }
            let d = (home + step) % k;
            let (take, after) = self.lend(a, d, home, Want::Units(need)).await?;
            moved += take;
            need -= take;
            left += after.max(0);
        }
        Ok((moved, left))
    }

    /// A journaled transfer from bucket `from` to bucket `to`, completed. Returns (units moved,
    /// units `from` has left).
    async fn lend(&self, a: ActivityId, from: u32, to: u32, want: Want) -> Result<(i64, i64)> {
        let tid = format!("{:016x}", rand::random::<u64>());
        let mut inv = LEND.prepare_invoke();
        inv.key(self.key_in(a, from, "stock"))
            .key(self.key_in(a, from, "lent"))
            .arg(&tid)
            .arg(to);
        match want {
            Want::Units(n) => inv.arg(n),
            Want::All => inv.arg("all"),
        };
        let f = items(
            inv.invoke_async(&mut self.conn()).await.map_err(map_err)?,
            "lend",
        )?;
        let (take, after) = match f.as_slice() {
            [t, l] => (int(t, "lent")?, int(l, "left")?),
            _ => return Err(unexpected("lend", &Value::Array(f))),
        };
        if take != 0 {
            self.complete(a, from, to, &tid, take).await?;
        }
        Ok((take, after))
    }

    /// The target's half of a transfer, then the journal entry's removal (both idempotent).
    async fn complete(
        &self,
        a: ActivityId,
        from: u32,
        to: u32,
        tid: &str,
        units: i64,
    ) -> Result<()> {
        let mut conn = self.conn();
        let _: i64 = RECEIVE
            .key(self.key_in(a, to, "stock"))
            .key(self.key_in(a, to, "got"))
            .arg(tid)
            .arg(units)
            .invoke_async(&mut conn)
            .await
            .map_err(map_err)?;
        // The journal entry first: while it exists, the target's record of the transfer must
        // stay, or completing it again would add the units twice.
        for (j, part) in [(from, "lent"), (to, "got")] {
            redis::cmd("HDEL")
                .arg(self.key_in(a, j, part))
                .arg(tid)
                .query_async::<()>(&mut conn)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// The transfers bucket `from` has in its journal: (id, target, units).
    async fn journal(&self, a: ActivityId, from: u32) -> Result<Vec<(String, u32, i64)>> {
        let all: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.key_in(a, from, "lent"))
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        all.into_iter()
            .map(|(tid, v)| {
                v.split_once('|')
                    .and_then(|(t, n)| Some((tid.clone(), t.parse().ok()?, n.parse().ok()?)))
                    .ok_or_else(|| Error::backend("redis", format!("stock journal entry {v:?}")))
            })
            .collect()
    }

    /// Completes every transfer of `from` that a crash left in transit.
    async fn settle(&self, a: ActivityId, from: u32) -> Result<()> {
        for (tid, to, units) in self.journal(a, from).await? {
            self.complete(a, from, to, &tid, units).await?;
        }
        Ok(())
    }

    /// Charges (or gives back) rate charges buyers share, on bucket 0. `Some(wait)` when
    /// over quota (then nothing was charged).
    async fn charge(
        &self,
        a: ActivityId,
        charges: &[RateCharge],
        now_us: i64,
        mode: &str,
    ) -> Result<Option<u64>> {
        let mut inv = CHARGE.prepare_invoke();
        inv.key(self.key(a, "rate")).arg(mode).arg(now_us);
        for c in charges {
            let (interval, tolerance) = gcra_args(c);
            inv.arg(&c.key).arg(interval).arg(tolerance);
        }
        let f = items(
            inv.invoke_async(&mut self.conn()).await.map_err(map_err)?,
            "rate charge",
        )?;
        match f.first().map(|c| int(c, "charge code")).transpose()? {
            Some(0) => Ok(None),
            Some(1) => Ok(Some(int(&f[1], "retry after")?.max(1) as u64)),
            _ => Err(unexpected("rate charge", &Value::Array(f))),
        }
    }

    /// Warm-up of an activity of `k > 1` buckets (docs/adr/0020): completes transfers left in
    /// transit, gathers what is available into bucket 0, checks the total against what is
    /// held or sold, loads each bucket (window, limit, its buyers' counts and adopted holds),
    /// then sets the total on bucket 0 and spreads what is available evenly.
    async fn load_buckets(&self, spec: &StockSpec) -> Result<()> {
        let (a, k) = (spec.activity_id, spec.buckets);
        let mut conn = self.conn();
        let (stored, total, fence): (Option<u32>, Option<i64>, Option<u64>) = redis::cmd("HMGET")
            .arg(self.key(a, "stock"))
            .arg(&["buckets", "total", "fence"])
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        let exists = total.is_some();
        if exists {
            check_count(a, stored.unwrap_or(1), k)?;
        }
        if spec.fence > 0 && spec.fence < fence.unwrap_or(0) {
            return Err(seckill_core::lock::stale_fence(
                a,
                spec.fence,
                fence.unwrap_or(0),
            ));
        }
        let mut members = vec![a.0.to_string()];
        members.extend((1..k).map(|j| format!("{a}.{j}")));
        redis::cmd("SADD")
            .arg(self.activities_key())
            .arg(&members)
            .query_async::<()>(&mut conn)
            .await
            .map_err(map_err)?;
        for j in 0..k {
            self.settle(a, j).await?;
        }
        if exists {
            self.gather(a, k).await?;
        }
        // What adopting would add, before anything changes.
        let mut adopt: Vec<Vec<&seckill_core::domain::Hold>> = vec![Vec::new(); k as usize];
        for h in &spec.adopt {
            adopt[seckill_core::stock::bucket_of(h.user_id, k) as usize].push(h);
        }
        let mut adopted = 0u32;
        for (j, holds) in adopt.iter().enumerate() {
            for h in holds {
                let known: bool = redis::cmd("HEXISTS")
                    .arg(self.key_in(a, j as u32, "holds"))
                    .arg(h.id.0)
                    .query_async(&mut conn)
                    .await
                    .map_err(map_err)?;
                adopted += if known { 0 } else { h.quantity };
            }
        }
        let taken = if exists {
            let (avail, atotal): (i64, i64) = redis::cmd("HMGET")
                .arg(self.key(a, "stock"))
                .arg(&["avail", "atotal"])
                .query_async(&mut conn)
                .await
                .map_err(map_err)?;
            (atotal - avail).max(0) as u64
        } else {
            u64::from(spec.sold)
        };
        if u64::from(spec.total) < taken + u64::from(adopted) {
            return Err(total_too_low(spec, taken + u64::from(adopted)));
        }
        for j in (1..k).chain([0]) {
            let mut inv = BUCKET_LOAD.prepare_invoke();
            inv.key(self.key_in(a, j, "stock"))
                .key(self.key_in(a, j, "users"))
                .key(self.key_in(a, j, "outbox"))
                .key(self.key_in(a, j, "holds"))
                .arg(if j == 0 { spec.sold } else { 0 })
                .arg(spec.per_user_limit)
                .arg(ms(spec.starts_at))
                .arg(ms(spec.ends_at))
                .arg(spec.fence)
                .arg(k);
            let users: Vec<_> = spec
                .user_counts
                .iter()
                .filter(|(u, _)| seckill_core::stock::bucket_of(*u, k) == j)
                .collect();
            inv.arg(users.len());
            for (u, n) in users {
                inv.arg(u.0).arg(*n);
            }
            for h in &adopt[j as usize] {
                inv.arg(h.id.0)
                    .arg(hold_record_text(h, HoldState::Confirmed));
            }
            let reply = items(inv.invoke_async(&mut conn).await.map_err(map_err)?, "load")?;
            match reply.first().map(|c| int(c, "load code")).transpose()? {
                Some(0) => {}
                Some(2) => {
                    return Err(seckill_core::lock::stale_fence(
                        a,
                        spec.fence,
                        u64::try_from(int(&reply[1], "newest fence")?).unwrap_or(0),
                    ))
                }
                _ => return Err(unexpected("load", &Value::Array(reply))),
            }
        }
        // Adopted holds may have left a bucket short (below 0): bucket 0 covers it.
        self.gather(a, k).await?;
        let tids: Vec<String> = (1..k)
            .map(|_| format!("{:016x}", rand::random::<u64>()))
            .collect();
        let mut inv = RESIZE.prepare_invoke();
        inv.key(self.key(a, "stock"))
            .key(self.key(a, "lent"))
            .arg(spec.total)
            .arg(spec.fence)
            .arg(&tids);
        let reply = items(
            inv.invoke_async(&mut conn).await.map_err(map_err)?,
            "resize",
        )?;
        match reply.first().map(|c| int(c, "resize code")).transpose()? {
            Some(0) => {
                let share = int(&reply[1], "share")?;
                if share > 0 {
                    for (j, tid) in (1..k).zip(&tids) {
                        self.complete(a, 0, j, tid, share).await?;
                    }
                }
            }
            Some(1) => {
                return Err(total_too_low(
                    spec,
                    u64::try_from(int(&reply[1], "taken")?).unwrap_or(0),
                ))
            }
            Some(2) => {
                return Err(seckill_core::lock::stale_fence(
                    a,
                    spec.fence,
                    u64::try_from(int(&reply[1], "newest fence")?).unwrap_or(0),
                ))
            }
            _ => return Err(unexpected("resize", &Value::Array(reply))),
        }
        self.counts.write().insert(a, k);
        Ok(())
    }

    /// Each bucket's figures (`None` for a bucket not loaded).
    async fn bucket_figures(&self, a: ActivityId, k: u32) -> Result<Vec<Option<StockSnapshot>>> {
        let mut out = Vec::with_capacity(k as usize);
        for j in 0..k {
            let v: Vec<Option<i64>> = redis::cmd("HMGET")
                .arg(self.key_in(a, j, "stock"))
                .arg(&["total", "avail", "held", "sold"])
                .query_async(&mut self.conn())
                .await
                .map_err(map_err)?;
            out.push(match v.as_slice() {
                [Some(total), Some(avail), Some(held), Some(sold)] => Some(StockSnapshot {
                    total: *total as u32,
                    available: *avail,
                    held: *held as u32,
                    sold: *sold as u32,
                }),
                _ => None,
            });
        }
        Ok(out)
    }

    /// Moves every other bucket's available units (or shortfall) into bucket 0.
    async fn gather(&self, a: ActivityId, k: u32) -> Result<()> {
        for j in 1..k {
            self.lend(a, j, 0, Want::All).await?;
        }
        Ok(())
    }
}

/// A bucket set member: `<id>` (bucket 0) or `<id>.<j>`.
fn parse_bucket(m: &str) -> Option<(ActivityId, u32)> {
    match m.split_once('.') {
        None => Some((ActivityId(m.parse().ok()?), 0)),
        Some((a, j)) => Some((ActivityId(a.parse().ok()?), j.parse().ok()?)),
    }
}

/// The name a bucket's outbox entries carry before their stream id: `<id>` or `<id>.<j>`.
fn bucket_name(a: ActivityId, j: u32) -> String {
    if j == 0 {
        a.0.to_string()
    } else {
        format!("{a}.{j}")
    }
}

/// A charge's GCRA parameters in microseconds: (emission interval, tolerance).
/// A hold record the scripts cannot read (they wrote nothing).
fn malformed_record(hold: HoldId) -> Error {
    Error::backend("redis", format!("malformed hold record of hold {hold}"))
}

/// A session's tiers as the load script takes them: `id:stock,...` in spec order.
fn tiers_arg(tiers: &[seckill_core::domain::Tier]) -> String {
    tiers
        .iter()
        .map(|t| format!("{}:{}", t.id, t.stock))
        .collect::<Vec<_>>()
        .join(",")
}

/// A session's seat map as the scripts keep it: `tier:start:len:section:row:from;...` in block
/// order, `start` being the block's first bit in the seat bitmap.
fn seatmap_arg(seats: &[seckill_core::domain::SeatBlock]) -> String {
    let mut start = 0u32;
    seats
        .iter()
        .map(|b| {
            let s = format!(
                "{}:{start}:{}:{}:{}:{}",
                b.tier,
                b.len(),
                b.section,
                b.row,
                b.from
            );
            start += b.len();
            s
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// A session's quotas as the scripts keep them: `id:cap:t.t;...`.
fn quotas_arg(quotas: &[seckill_core::domain::Quota]) -> String {
    quotas
        .iter()
        .map(|q| {
            let tiers: Vec<String> = q.tiers.iter().map(u32::to_string).collect();
            format!("{}:{}:{}", q.id, q.cap, tiers.join("."))
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn gcra_args(c: &RateCharge) -> (i64, i64) {
    let interval = c.quota.interval().as_micros() as i64;
    (interval, interval * i64::from(c.quota.burst.max(1) - 1))
}

/// The number of buckets cannot change once an activity is loaded.
fn check_count(a: ActivityId, stored: u32, asked: u32) -> Result<()> {
    if stored == asked {
        return Ok(());
    }
    Err(Error::conflict(
        Entity::Activity,
        a,
        format!("its stock is in {stored} buckets; the number cannot change once loaded (asked {asked})"),
    ))
}

fn total_too_low(spec: &StockSpec, taken: u64) -> Error {
    Error::conflict(
        Entity::Activity,
        spec.activity_id,
        format!(
            "total {} is below the {taken} units already held or sold",
            spec.total
        ),
    )
}

#[async_trait]
impl StockReserver for RedisStockReserver {
    async fn load(&self, spec: &StockSpec) -> Result<()> {
        if spec.starts_at >= spec.ends_at {
            return Err(Error::invalid("starts_at must be before ends_at"));
        }
        if spec.sold > spec.total {
            return Err(Error::invalid("sold exceeds total"));
        }
        seckill_core::stock::check_buckets(spec, self.max_buckets())?;
        seckill_core::stock::check_tier_spec(spec)?;
        let i = &self.inner;
        let a = spec.activity_id;
        if spec.buckets > 1 {
            i.load_buckets(spec).await?;
            i.announce_sold_out(a, false).await;
            return Ok(());
        }
        let mut conn = i.conn();
        let stored: Option<u32> = redis::cmd("HGET")
            .arg(i.key(a, "stock"))
            .arg("buckets")
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        check_count(a, stored.unwrap_or(1), 1)?;
        redis::cmd("SADD")
            .arg(i.activities_key())
            .arg(a.0)
            .query_async::<()>(&mut conn)
            .await
            .map_err(map_err)?;
        let mut inv = LOAD.prepare_invoke();
        inv.key(i.key(a, "stock"))
            .key(i.key(a, "users"))
            .key(i.key(a, "outbox"))
            .key(i.key(a, "holds"))
            .key(i.key(a, "seats"))
            .key(i.key(a, "docs"))
            .arg(spec.total)
            .arg(spec.sold)
            .arg(spec.per_user_limit)
            .arg(ms(spec.starts_at))
            .arg(ms(spec.ends_at))
            .arg(spec.fence)
            .arg(spec.user_counts.len())
            .arg(tiers_arg(&spec.tiers))
            .arg(quotas_arg(&spec.quotas))
            .arg(seatmap_arg(&spec.seats));
        for (u, n) in &spec.user_counts {
            inv.arg(u.0).arg(*n);
        }
        for h in &spec.adopt {
            inv.arg(h.id.0)
                .arg(hold_record_text(h, HoldState::Confirmed));
        }
        let reply = items(inv.invoke_async(&mut conn).await.map_err(map_err)?, "load")?;
        match reply.first().map(|c| int(c, "load code")).transpose()? {
            Some(0) => {
                i.counts.write().insert(a, 1);
                i.announce_sold_out(a, false).await;
                Ok(())
            }
            Some(1) => Err(total_too_low(
                spec,
                u64::try_from(int(&reply[1], "taken")?).unwrap_or(0),
            )),
            Some(2) => Err(seckill_core::lock::stale_fence(
                a,
                spec.fence,
                u64::try_from(int(&reply[1], "newest fence")?).unwrap_or(0),
            )),
            Some(4) => Err(Error::conflict(
                Entity::Activity,
                a,
                "its seat map cannot change while seats are held or sold",
            )),
            Some(5) => Err(Error::conflict(
                Entity::Activity,
                a,
                format!(
                    "the seat at bit {} of an adopted hold is held by another hold",
                    int(&reply[1], "seat")?
                ),
            )),
            Some(6) => Err(Error::conflict(
                Entity::Activity,
                a,
                format!(
                    "a holder of adopted hold {} holds a ticket of another hold",
                    string(&reply[1], "hold")?
                ),
            )),
            Some(3) => Err(Error::conflict(
                Entity::Activity,
                a,
                format!(
                    "tier {}'s stock is below the {} units already held or sold (or it has \
                     some and is left out)",
                    int(&reply[1], "tier")?,
                    int(&reply[2], "taken")?
                ),
            )),
            _ => Err(unexpected("load", &Value::Array(reply))),
        }
    }

    async fn reserve(&self, req: &ReserveRequest) -> Result<ReserveOutcome> {
        if req.quantity == 0 {
            return Err(Error::invalid("quantity must be at least 1"));
        }
        seckill_core::rate_limit::check_charges(&req.rates)?;
        seckill_core::stock::check_holders(req)?;
        let i = &self.inner;
        let k = i.count(req.activity_id).await?;
        if k > 1 {
            if !req.holders.is_empty() {
                return Err(Error::invalid(
                    "holders: a real-name session has one stock bucket",
                ));
            }
            return i.reserve_in_buckets(req, k).await;
        }
        match i.submit(req.activity_id, 0, false, req, 0).await? {
            Answer::Done(o) => Ok(o),
            Answer::Invalid => Err(Answer::invalid()),
            Answer::Short(_) => Err(Error::backend(
                "redis",
                "a one-bucket reserve asked to borrow",
            )),
        }
    }

    async fn confirm(&self, a: ActivityId, hold: HoldId) -> Result<Transition> {
        let i = &self.inner;
        let k = i.count(a).await?;
        // The hold is in one bucket; in the others the script finds nothing and writes nothing.
        let codes = futures::future::try_join_all((0..k).map(|j| async move {
            CONFIRM
                .key(i.key_in(a, j, "stock"))
                .key(i.key_in(a, j, "holds"))
                .arg(hold.0)
                .invoke_async::<i64>(&mut i.conn())
                .await
                .map_err(map_err)
        }))
        .await?;
        Ok(match codes.into_iter().find(|c| *c != 3) {
            Some(0) => Transition::Applied,
            Some(1) => Transition::AlreadyDone,
            Some(2) => Transition::Refused(HoldState::Released),
            Some(4) => return Err(malformed_record(hold)),
            _ => Transition::Unknown,
        })
    }

    async fn release(&self, a: ActivityId, hold: HoldId) -> Result<Transition> {
        let i = &self.inner;
        let k = i.count(a).await?;
        let replies = futures::future::try_join_all((0..k).map(|j| async move {
            let reply: Value = RELEASE
                .key(i.key_in(a, j, "stock"))
                .key(i.key_in(a, j, "holds"))
                .key(i.key_in(a, j, "users"))
                .key(i.key_in(a, j, "seats"))
                .key(i.key_in(a, j, "docs"))
                .arg(hold.0)
                .invoke_async(&mut i.conn())
                .await
                .map_err(map_err)?;
            items(reply, "release")
        }))
        .await?;
        for f in replies {
            match f.first().map(|c| int(c, "release code")).transpose()? {
                Some(0) => {
                    let before = f.get(1).map(|v| int(v, "available")).transpose()?;
                    if before.unwrap_or(1) <= 0 {
                        i.announce_sold_out(a, false).await;
                    }
                    return Ok(Transition::Applied);
                }
                Some(1) => return Ok(Transition::AlreadyDone),
                Some(4) => return Err(malformed_record(hold)),
                _ => {}
            }
        }
        Ok(Transition::Unknown)
    }

    async fn snapshot(&self, a: ActivityId) -> Result<Option<StockSnapshot>> {
        let i = &self.inner;
        let k = i.count(a).await?;
        let parts = i.bucket_figures(a, k).await?;
        let Some(mut s) = parts
            .into_iter()
            .try_fold(StockSnapshot::default(), |mut s, b| {
                let b = b?;
                s.total += b.total;
                s.available += b.available;
                s.held += b.held;
                s.sold += b.sold;
                Some(s)
            })
        else {
            return Ok(None);
        };
        // Units lent and not yet received belong to the activity (available, in transit).
        if k > 1 {
            for from in 0..k {
                for (tid, to, units) in i.journal(a, from).await? {
                    let got: bool = redis::cmd("HEXISTS")
                        .arg(i.key_in(a, to, "got"))
                        .arg(&tid)
                        .query_async(&mut i.conn())
                        .await
                        .map_err(map_err)?;
                    if !got {
                        s.total = (i64::from(s.total) + units) as u32;
                        s.available += units;
                    }
                }
            }
        }
        Ok(Some(s))
    }

    async fn buckets(&self, a: ActivityId) -> Result<Vec<StockSnapshot>> {
        let i = &self.inner;
        let k = i.count(a).await?;
        Ok(i.bucket_figures(a, k)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    fn sells_tiers(&self) -> bool {
        true
    }

    fn sells_seats(&self) -> bool {
        true
    }

    fn sells_holders(&self) -> bool {
        true
    }

    async fn taken_seats(&self, activity: ActivityId) -> Result<Vec<String>> {
        let i = &self.inner;
        let mut conn = i.conn();
        let map: Option<String> = redis::cmd("HGET")
            .arg(i.key(activity, "stock"))
            .arg("seatmap")
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        let Some(map) = map else {
            return Ok(Vec::new());
        };
        let bits: Vec<u8> = redis::cmd("GET")
            .arg(i.key(activity, "seats"))
            .query_async::<Option<Vec<u8>>>(&mut conn)
            .await
            .map_err(map_err)?
            .unwrap_or_default();
        let taken = |o: u32| {
            bits.get((o / 8) as usize)
                .is_some_and(|byte| byte & (0x80 >> (o % 8)) != 0)
        };
        let bad = || Error::backend("redis", format!("malformed seat map {map:?}"));
        let mut out = Vec::new();
        for b in map.split(';') {
            let f: Vec<&str> = b.split(':').collect();
            let [_, start, len, section, row, from] = f[..] else {
                return Err(bad());
            };
            let (start, len, from): (u32, u32, u32) = (
                start.parse().map_err(|_| bad())?,
                len.parse().map_err(|_| bad())?,
                from.parse().map_err(|_| bad())?,
            );
            for k in 0..len {
                if taken(start + k) {
                    out.push(seckill_core::domain::seat::seat_id(section, row, from + k));
                }
            }
        }
        Ok(out)
    }

    async fn tiers(&self, activity: ActivityId) -> Result<Vec<TierSnapshot>> {
        let i = &self.inner;
        let key = i.key(activity, "stock");
        let mut conn = i.conn();
        let ids: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg("tiers")
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        let ids: Vec<u32> = match ids {
            None => return Ok(Vec::new()),
            Some(s) => s
                .split(',')
                .map(|t| {
                    t.parse()
                        .map_err(|_| Error::backend("redis", format!("malformed tiers {s:?}")))
                })
                .collect::<Result<_>>()?,
        };
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(&key);
        for t in &ids {
            cmd.arg(format!("t{t}"))
                .arg(format!("t{t}h"))
                .arg(format!("t{t}s"));
        }
        let v: Vec<Option<i64>> = cmd.query_async(&mut conn).await.map_err(map_err)?;
        Ok(ids
            .iter()
            .enumerate()
            .map(|(j, &tier)| {
                let get = |k: usize| v.get(3 * j + k).copied().flatten().unwrap_or(0);
                let (total, held, sold) = (get(0), get(1), get(2));
                TierSnapshot {
                    tier,
                    total: total.max(0) as u32,
                    available: total - held - sold,
                    held: held.max(0) as u32,
                    sold: sold.max(0) as u32,
                }
            })
            .collect())
    }

    fn max_buckets(&self) -> u32 {
        seckill_core::stock::MAX_BUCKETS
    }

    async fn hold(&self, a: ActivityId, hold: HoldId) -> Result<Option<HoldRecord>> {
        let i = &self.inner;
        let k = i.count(a).await?;
        let recs = futures::future::try_join_all(
            (0..k).map(|j| i.hget::<Option<String>>(a, j, "holds", hold.0)),
        )
        .await?;
        recs.into_iter()
            .flatten()
            .flatten()
            .next()
            .map(|r| hold_record(a, hold, &r).map(|(hold, state)| HoldRecord { hold, state }))
            .transpose()
    }

    async fn live_holds(&self, a: ActivityId) -> Result<Vec<HoldRecord>> {
        let i = &self.inner;
        let mut out = Vec::new();
        for j in 0..i.count(a).await? {
            let all: HashMap<i64, String> = redis::cmd("HGETALL")
                .arg(i.key_in(a, j, "holds"))
                .query_async(&mut i.conn())
                .await
                .map_err(map_err)?;
            for (id, rec) in all {
                let (hold, state) = hold_record(a, HoldId(id), &rec)?;
                if state != HoldState::Released {
                    out.push(HoldRecord { hold, state });
                }
            }
        }
        out.sort_by_key(|r| r.hold.id);
        Ok(out)
    }

    async fn user_count(&self, a: ActivityId, user: UserId) -> Result<u32> {
        let i = &self.inner;
        let j = seckill_core::stock::bucket_of(user, i.count(a).await?);
        let n: Option<u32> = i.hget(a, j, "users", user.0).await?;
        Ok(n.unwrap_or(0))
    }

    async fn outbox_claim(&self, max: usize, lease: Duration) -> Result<Vec<OutboxEntry>> {
        let i = &self.inner;
        let mut conn = i.conn();
        let mut out = Vec::new();
        for (a, j) in i.activities().await? {
            if out.len() >= max {
                break;
            }
            let reply: Value = OUTBOX_CLAIM
                .key(i.key_in(a, j, "outbox"))
                .arg(&i.consumer)
                .arg(lease.as_millis().max(1) as u64)
                .arg(max - out.len())
                .invoke_async(&mut conn)
                .await
                .map_err(map_err)?;
            for e in items(reply, "outbox claim")? {
                let f = items(e, "outbox entry")?;
                if f.len() != 4 {
                    return Err(unexpected("outbox entry", &Value::Array(f)));
                }
                let trace = string(&f[3], "traceparent")?;
                out.push(OutboxEntry {
                    id: format!("{}/{}", bucket_name(a, j), string(&f[0], "stream id")?),
                    hold: outbox_payload(a, &string(&f[1], "payload")?)?,
                    attempts: int(&f[2], "attempts")? as u32,
                    trace_parent: (!trace.is_empty()).then_some(trace),
                });
            }
        }
        Ok(out)
    }

    async fn outbox_ack(&self, ids: &[String]) -> Result<()> {
        let i = &self.inner;
        let mut by_bucket: HashMap<(ActivityId, u32), Vec<&str>> = HashMap::new();
        for id in ids {
            let (a, sid) = id
                .split_once('/')
                .and_then(|(a, s)| Some((parse_bucket(a)?, s)))
                .ok_or_else(|| Error::invalid(format!("outbox id {id:?}")))?;
            by_bucket.entry(a).or_default().push(sid);
        }
        let mut conn = i.conn();
        for ((a, j), sids) in by_bucket {
            let key = i.key_in(a, j, "outbox");
            redis::pipe()
                .cmd("XACK")
                .arg(&key)
                .arg("relay")
                .arg(&sids)
                .ignore()
                .cmd("XDEL")
                .arg(&key)
                .arg(&sids)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    async fn outbox_lag(&self) -> Result<Vec<(ActivityId, u64)>> {
        let i = &self.inner;
        let mut conn = i.conn();
        let mut lag: std::collections::BTreeMap<ActivityId, u64> = Default::default();
        for (a, j) in i.activities().await? {
            let len: u64 = redis::cmd("XLEN")
                .arg(i.key_in(a, j, "outbox"))
                .query_async(&mut conn)
                .await
                .map_err(map_err)?;
            if len > 0 {
                *lag.entry(a).or_default() += len;
            }
        }
        Ok(lag.into_iter().collect())
    }

    fn sold_out_hint(&self, a: ActivityId) -> bool {
        self.inner
            .sold_out
            .read()
            .get(&a)
            .is_some_and(|t| t.elapsed() < SOLD_OUT_TTL)
    }
}
