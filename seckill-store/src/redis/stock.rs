//! [`RedisStockReserver`]: the atomic reserve step as one Lua script per batch of requests,
//! with the hold records, per-user counts, request ids and the outbox stream of an activity under
//! one hash tag (`{a<id>}`), so every script touches one slot, also on a cluster.
//!
//! Concurrent reserves for the same activity are coalesced: the first caller starts a driver
//! task that sends everything queued meanwhile as one script call (up to `max_batch`), and goes
//! on while more arrive; no timer on the hot path. Results go back to each caller in order.
//!
//! Sold-out fast path: when a reserve finds an activity sold out, the node flags it locally and
//! publishes it on `<prefix>:soldout`; every node's subscriber flags it too, so
//! [`StockReserver::sold_out_hint`] answers without a Redis call. A release that brings stock
//! back, or a reload, publishes the clear. A flag lives at most [`SOLD_OUT_TTL`] unless
//! renewed, and a (re)subscription clears every flag, so a lost message costs at most that long.

use super::codec::{hold_record, hold_record_text, int, items, outbox_payload, string, unexpected};
use super::conn::{map_err, RedisConn, RedisTarget};
use async_trait::async_trait;
use parking_lot::Mutex;
use redis::{Script, Value};
use seckill_core::domain::{ActivityId, Hold, HoldId, HoldState, UserId};
use seckill_core::stock::{
    HoldRecord, OutboxEntry, ReserveOutcome, ReserveRequest, StockReserver, StockSnapshot,
    StockSpec, Transition,
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

type Waiter = (ReserveRequest, oneshot::Sender<Result<ReserveOutcome>>);

#[derive(Default)]
struct Queue {
    pending: Mutex<Vec<Waiter>>,
    running: AtomicBool,
}

struct Inner {
    t: RedisTarget,
    consumer: String,
    max_batch: usize,
    queues: Mutex<HashMap<ActivityId, Arc<Queue>>>,
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

    fn key(&self, a: ActivityId, part: &str) -> String {
        format!("{}:{{a{}}}:{}", self.t.prefix, a, part)
    }

    fn activities_key(&self) -> String {
        format!("{}:activities", self.t.prefix)
    }

    /// The activities ever loaded (whose outbox streams the relay reads).
    async fn activities(&self) -> Result<Vec<ActivityId>> {
        let ids: Vec<i64> = redis::cmd("SMEMBERS")
            .arg(self.activities_key())
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(ids.into_iter().map(ActivityId).collect())
    }

    /// One field of one of an activity's hashes.
    async fn hget<T: redis::FromRedisValue>(
        &self,
        a: ActivityId,
        part: &str,
        field: i64,
    ) -> Result<Option<T>> {
        redis::cmd("HGET")
            .arg(self.key(a, part))
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

    async fn reserve_batch(
        &self,
        a: ActivityId,
        reqs: &[ReserveRequest],
    ) -> Result<Vec<ReserveOutcome>> {
        let mut inv = RESERVE.prepare_invoke();
        for part in ["stock", "holds", "users", "req", "outbox", "rate"] {
            inv.key(self.key(a, part));
        }
        inv.arg(reqs.len());
        for r in reqs {
            inv.arg(r.user_id.0)
                .arg(r.quantity)
                .arg(&r.request_id)
                .arg(r.hold_id.0)
                .arg(r.order_id.0)
                .arg(r.expires_at.timestamp_millis())
                .arg(r.now.timestamp_millis())
                .arg(r.trace_parent.as_deref().unwrap_or(""))
                .arg(r.rates.len());
            if !r.rates.is_empty() {
                inv.arg(r.now.timestamp_micros());
                for c in &r.rates {
                    let interval = c.quota.interval().as_micros() as i64;
                    inv.arg(&c.key)
                        .arg(interval)
                        .arg(interval * i64::from(c.quota.burst.max(1) - 1));
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
        let outcomes: Vec<ReserveOutcome> =
            outs.into_iter()
                .zip(reqs)
                .map(|(o, r)| {
                    let f = items(o, "reserve result")?;
                    let code = f.first().map(|c| int(c, "reserve code")).transpose()?;
                    Ok(match code {
                        // Reserved now: the hold is exactly what the request described.
                        Some(0) if f.len() == 1 => ReserveOutcome::Reserved {
                            hold: Hold {
                                id: r.hold_id,
                                order_id: r.order_id,
                                activity_id: a,
                                user_id: r.user_id,
                                quantity: r.quantity,
                                created_at: truncate_ms(r.now),
                                expires_at: truncate_ms(r.expires_at),
                            },
                            replayed: false,
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
                        Some(7) => {
                            return Err(Error::invalid("quantity must be a whole number ≥ 1"))
                        }
                        Some(8) => ReserveOutcome::RateLimited {
                            retry_after: Duration::from_micros(
                                int(&f[1], "retry after")?.max(0) as u64
                            ),
                        },
                        _ => return Err(unexpected("reserve code", &Value::Array(f))),
                    })
                })
                .collect::<Result<_>>()?;
        if let super::conn::Ack::Replicas { n, timeout } = self.t.ack {
            // Every write of this connection so far, the batch's included (a replay writes its
            // request id again), must reach `n` replicas before any buy of the batch is
            // acknowledged. A batch that reserved nothing waits for nothing (it may have written
            // rate charges: a failover that loses one only gives a buyer back part of a burst).
            if outcomes
                .iter()
                .any(|o| matches!(o, ReserveOutcome::Reserved { .. }))
            {
                self.wait_for_replicas(&mut conn, n, timeout).await?;
            }
        }
        if outcomes.contains(&ReserveOutcome::SoldOut) {
            self.announce_sold_out(a, true).await;
        }
        Ok(outcomes)
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

    /// Drains an activity's queue: one script call per batch, until nothing is queued.
    async fn drive(self: Arc<Self>, a: ActivityId, q: Arc<Queue>) {
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
            let (reqs, txs): (Vec<ReserveRequest>, Vec<_>) = batch.into_iter().unzip();
            match self.reserve_batch(a, &reqs).await {
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
        // One bucket per activity here so far (docs/adr/0020).
        seckill_core::stock::check_buckets(spec, self.max_buckets())?;
        let i = &self.inner;
        let a = spec.activity_id;
        let mut conn = i.conn();
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
            .arg(spec.total)
            .arg(spec.sold)
            .arg(spec.per_user_limit)
            .arg(ms(spec.starts_at))
            .arg(ms(spec.ends_at))
            .arg(spec.fence)
            .arg(spec.user_counts.len());
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
                i.announce_sold_out(a, false).await;
                Ok(())
            }
            Some(1) => Err(Error::conflict(
                Entity::Activity,
                a,
                format!(
                    "total {} is below the {} units already held or sold",
                    spec.total,
                    int(&reply[1], "taken")?
                ),
            )),
            Some(2) => Err(seckill_core::lock::stale_fence(
                a,
                spec.fence,
                u64::try_from(int(&reply[1], "newest fence")?).unwrap_or(0),
            )),
            _ => Err(unexpected("load", &Value::Array(reply))),
        }
    }

    async fn reserve(&self, req: &ReserveRequest) -> Result<ReserveOutcome> {
        if req.quantity == 0 {
            return Err(Error::invalid("quantity must be at least 1"));
        }
        seckill_core::rate_limit::check_charges(&req.rates)?;
        let i = &self.inner;
        if i.max_batch == 1 {
            let mut v = i
                .reserve_batch(req.activity_id, std::slice::from_ref(req))
                .await?;
            return v
                .pop()
                .ok_or_else(|| Error::backend("redis", "empty reserve reply"));
        }
        let q = i.queues.lock().entry(req.activity_id).or_default().clone();
        let (tx, rx) = oneshot::channel();
        q.pending.lock().push((req.clone(), tx));
        if !q.running.swap(true, Ordering::AcqRel) {
            tokio::spawn(i.clone().drive(req.activity_id, q));
        }
        rx.await
            .map_err(|_| Error::backend("redis", "reserve batch driver stopped"))?
    }

    async fn confirm(&self, a: ActivityId, hold: HoldId) -> Result<Transition> {
        let i = &self.inner;
        let code: i64 = CONFIRM
            .key(i.key(a, "stock"))
            .key(i.key(a, "holds"))
            .arg(hold.0)
            .invoke_async(&mut i.conn())
            .await
            .map_err(map_err)?;
        Ok(match code {
            0 => Transition::Applied,
            1 => Transition::AlreadyDone,
            2 => Transition::Refused(HoldState::Released),
            _ => Transition::Unknown,
        })
    }

    async fn release(&self, a: ActivityId, hold: HoldId) -> Result<Transition> {
        let i = &self.inner;
        let reply: Value = RELEASE
            .key(i.key(a, "stock"))
            .key(i.key(a, "holds"))
            .key(i.key(a, "users"))
            .arg(hold.0)
            .invoke_async(&mut i.conn())
            .await
            .map_err(map_err)?;
        let f = items(reply, "release")?;
        Ok(
            match f.first().map(|c| int(c, "release code")).transpose()? {
                Some(0) => {
                    let before = f.get(1).map(|v| int(v, "available")).transpose()?;
                    if before.unwrap_or(1) <= 0 {
                        i.announce_sold_out(a, false).await;
                    }
                    Transition::Applied
                }
                Some(1) => Transition::AlreadyDone,
                _ => Transition::Unknown,
            },
        )
    }

    async fn snapshot(&self, a: ActivityId) -> Result<Option<StockSnapshot>> {
        let i = &self.inner;
        let v: Vec<Option<i64>> = redis::cmd("HMGET")
            .arg(i.key(a, "stock"))
            .arg(&["total", "avail", "held", "sold"])
            .query_async(&mut i.conn())
            .await
            .map_err(map_err)?;
        Ok(match v.as_slice() {
            [Some(total), Some(avail), Some(held), Some(sold)] => Some(StockSnapshot {
                total: *total as u32,
                available: *avail,
                held: *held as u32,
                sold: *sold as u32,
            }),
            _ => None,
        })
    }

    async fn hold(&self, a: ActivityId, hold: HoldId) -> Result<Option<HoldRecord>> {
        let rec: Option<String> = self.inner.hget(a, "holds", hold.0).await?;
        rec.map(|r| hold_record(a, hold, &r).map(|(hold, state)| HoldRecord { hold, state }))
            .transpose()
    }

    async fn live_holds(&self, a: ActivityId) -> Result<Vec<HoldRecord>> {
        let i = &self.inner;
        let all: HashMap<i64, String> = redis::cmd("HGETALL")
            .arg(i.key(a, "holds"))
            .query_async(&mut i.conn())
            .await
            .map_err(map_err)?;
        let mut out = Vec::new();
        for (id, rec) in all {
            let (hold, state) = hold_record(a, HoldId(id), &rec)?;
            if state != HoldState::Released {
                out.push(HoldRecord { hold, state });
            }
        }
        out.sort_by_key(|r| r.hold.id);
        Ok(out)
    }

    async fn user_count(&self, a: ActivityId, user: UserId) -> Result<u32> {
        let n: Option<u32> = self.inner.hget(a, "users", user.0).await?;
        Ok(n.unwrap_or(0))
    }

    async fn outbox_claim(&self, max: usize, lease: Duration) -> Result<Vec<OutboxEntry>> {
        let i = &self.inner;
        let mut conn = i.conn();
        let mut out = Vec::new();
        for a in i.activities().await? {
            if out.len() >= max {
                break;
            }
            let reply: Value = OUTBOX_CLAIM
                .key(i.key(a, "outbox"))
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
                    id: format!("{}/{}", a, string(&f[0], "stream id")?),
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
        let mut by_activity: HashMap<ActivityId, Vec<&str>> = HashMap::new();
        for id in ids {
            let (a, sid) = id
                .split_once('/')
                .and_then(|(a, s)| Some((ActivityId(a.parse().ok()?), s)))
                .ok_or_else(|| Error::invalid(format!("outbox id {id:?}")))?;
            by_activity.entry(a).or_default().push(sid);
        }
        let mut conn = i.conn();
        for (a, sids) in by_activity {
            let key = i.key(a, "outbox");
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
        let mut lag = Vec::new();
        for a in i.activities().await? {
            let len: u64 = redis::cmd("XLEN")
                .arg(i.key(a, "outbox"))
                .query_async(&mut conn)
                .await
                .map_err(map_err)?;
            if len > 0 {
                lag.push((a, len));
            }
        }
        Ok(lag)
    }

    fn sold_out_hint(&self, a: ActivityId) -> bool {
        self.inner
            .sold_out
            .read()
            .get(&a)
            .is_some_and(|t| t.elapsed() < SOLD_OUT_TTL)
    }
}
