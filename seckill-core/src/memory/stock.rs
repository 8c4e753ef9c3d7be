//! In-memory [`StockReserver`]: one mutex per activity, so the reserve step is atomic exactly as
//! the Redis Lua script is.

use crate::clock::{Clock, SystemClock};
use crate::domain::{ActivityId, Hold, HoldId, HoldState, UserId};
use crate::stock::{
    HoldRecord, OutboxEntry, ReserveOutcome, ReserveRequest, StockReserver, StockSnapshot,
    StockSpec, Transition,
};
use crate::{Entity, Error, Result, Timestamp};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
struct ActivityStock {
    total: u32,
    available: i64,
    held: u32,
    sold: u32,
    limit: u32,
    starts_at: Timestamp,
    ends_at: Timestamp,
    holds: HashMap<HoldId, HoldRecord>,
    users: HashMap<UserId, u32>,
    requests: HashMap<(UserId, String), HoldId>,
    /// Rate charges' theoretical arrival times (µs), by key ([`ReserveRequest::rates`]).
    rates: HashMap<String, i64>,
    /// The highest fencing token the activity was loaded with.
    fence: u64,
}

#[derive(Debug, Default)]
struct Outbox {
    next_id: u64,
    entries: BTreeMap<u64, Pending>,
}

/// An outbox entry not yet acked.
#[derive(Debug)]
struct Pending {
    hold: Hold,
    attempts: u32,
    leased_until: Option<Timestamp>,
    trace_parent: Option<String>,
}

/// The in-memory stock backend (the embedded default).
#[derive(Debug)]
pub struct MemoryStockReserver {
    activities: Mutex<HashMap<ActivityId, Arc<Mutex<ActivityStock>>>>,
    outbox: Mutex<Outbox>,
    clock: Arc<dyn Clock>,
    skip_stock_check: bool,
}

impl Default for MemoryStockReserver {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl MemoryStockReserver {
    /// A reserver whose outbox leases run on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            activities: Mutex::new(HashMap::new()),
            outbox: Mutex::new(Outbox::default()),
            clock,
            skip_stock_check: false,
        }
    }

    /// **Deliberately broken**: a reserver that skips the stock check. It exists only so the
    /// test suite can show that its checkers catch an oversell (the negative control). Never
    /// use it for anything else.
    #[doc(hidden)]
    pub fn broken_skipping_stock_check(clock: Arc<dyn Clock>) -> Self {
        Self {
            skip_stock_check: true,
            ..Self::new(clock)
        }
    }

    fn activity(&self, id: ActivityId) -> Option<Arc<Mutex<ActivityStock>>> {
        self.activities.lock().get(&id).cloned()
    }
}

/// The new arrival times of every charge in `rates` (checked in order against `tats`, a key
/// charged twice counting twice), or the first one's wait when any is over its quota.
fn charge_rates(
    tats: &HashMap<String, i64>,
    rates: &[crate::rate_limit::RateCharge],
    now: Timestamp,
) -> std::result::Result<Vec<(String, i64)>, Duration> {
    let now = now.timestamp_micros();
    let mut out: Vec<(String, i64)> = Vec::with_capacity(rates.len());
    for r in rates {
        let tat = out
            .iter()
            .rev()
            .find(|(k, _)| *k == r.key)
            .map(|(_, t)| *t)
            .or_else(|| tats.get(&r.key).copied());
        out.push((
            r.key.clone(),
            crate::rate_limit::gcra(tat, now, r.quota, 1)?,
        ));
    }
    Ok(out)
}

#[async_trait]
impl StockReserver for MemoryStockReserver {
    async fn load(&self, spec: &StockSpec) -> Result<()> {
        if spec.starts_at >= spec.ends_at {
            return Err(Error::invalid("starts_at must be before ends_at"));
        }
        if spec.sold > spec.total {
            return Err(Error::invalid("sold exceeds total"));
        }
        let mut map = self.activities.lock();
        let act = match map.get(&spec.activity_id) {
            Some(existing) => existing.clone(),
            None => {
                let adopted: u32 = spec.adopt.iter().map(|h| h.quantity).sum();
                if spec.total < spec.sold + adopted {
                    return Err(Error::conflict(
                        Entity::Activity,
                        spec.activity_id,
                        format!(
                            "total {} is below the {} units already sold",
                            spec.total,
                            spec.sold + adopted
                        ),
                    ));
                }
                let users = spec.user_counts.iter().copied().collect();
                let fresh = Arc::new(Mutex::new(ActivityStock {
                    total: spec.total,
                    available: i64::from(spec.total - spec.sold),
                    held: 0,
                    sold: spec.sold,
                    limit: spec.per_user_limit,
                    starts_at: spec.starts_at,
                    ends_at: spec.ends_at,
                    holds: HashMap::new(),
                    users,
                    requests: HashMap::new(),
                    rates: HashMap::new(),
                    fence: 0,
                }));
                map.insert(spec.activity_id, fresh.clone());
                fresh
            }
        };
        let mut a = act.lock();
        if spec.fence > 0 && spec.fence < a.fence {
            return Err(crate::lock::stale_fence(
                spec.activity_id,
                spec.fence,
                a.fence,
            ));
        }
        let adopt: Vec<&Hold> = spec
            .adopt
            .iter()
            .filter(|h| !a.holds.contains_key(&h.id))
            .collect();
        let adopted: u32 = adopt.iter().map(|h| h.quantity).sum();
        let taken = a.held + a.sold + adopted;
        if spec.total < taken {
            return Err(Error::conflict(
                Entity::Activity,
                spec.activity_id,
                format!(
                    "total {} is below the {taken} units already held or sold",
                    spec.total
                ),
            ));
        }
        for h in adopt {
            a.holds.insert(
                h.id,
                HoldRecord {
                    hold: h.clone(),
                    state: HoldState::Confirmed,
                },
            );
            *a.users.entry(h.user_id).or_insert(0) += h.quantity;
        }
        a.sold += adopted;
        a.fence = a.fence.max(spec.fence);
        a.total = spec.total;
        a.limit = spec.per_user_limit;
        a.starts_at = spec.starts_at;
        a.ends_at = spec.ends_at;
        // Keep holds and the backend's own sold count: never re-sell a unit.
        a.available = i64::from(a.total) - i64::from(a.held) - i64::from(a.sold);
        Ok(())
    }

    async fn reserve(&self, req: &ReserveRequest) -> Result<ReserveOutcome> {
        if req.quantity == 0 {
            return Err(Error::invalid("quantity must be at least 1"));
        }
        crate::rate_limit::check_charges(&req.rates)?;
        let Some(act) = self.activity(req.activity_id) else {
            return Ok(ReserveOutcome::NotLoaded);
        };
        let hold = {
            let mut a = act.lock();
            if let Some(id) = a.requests.get(&(req.user_id, req.request_id.clone())) {
                let hold = a.holds[id].hold.clone();
                return Ok(ReserveOutcome::Reserved {
                    hold,
                    replayed: true,
                });
            }
            if req.now < a.starts_at {
                return Ok(ReserveOutcome::NotStarted);
            }
            if req.now >= a.ends_at {
                return Ok(ReserveOutcome::Ended);
            }
            let charged = match charge_rates(&a.rates, &req.rates, req.now) {
                Ok(c) => c,
                Err(retry_after) => return Ok(ReserveOutcome::RateLimited { retry_after }),
            };
            a.rates.extend(charged);
            let has = a.users.get(&req.user_id).copied().unwrap_or(0);
            if has + req.quantity > a.limit {
                return Ok(ReserveOutcome::LimitExceeded {
                    held: has,
                    limit: a.limit,
                });
            }
            if !self.skip_stock_check {
                if a.available <= 0 {
                    return Ok(ReserveOutcome::SoldOut);
                }
                if a.available < i64::from(req.quantity) {
                    return Ok(ReserveOutcome::InsufficientStock {
                        available: a.available as u32,
                    });
                }
            }
            let hold = Hold {
                id: req.hold_id,
                order_id: req.order_id,
                activity_id: req.activity_id,
                user_id: req.user_id,
                quantity: req.quantity,
                created_at: req.now,
                expires_at: req.expires_at,
            };
            a.available -= i64::from(req.quantity);
            a.held += req.quantity;
            *a.users.entry(req.user_id).or_insert(0) += req.quantity;
            a.requests
                .insert((req.user_id, req.request_id.clone()), hold.id);
            a.holds.insert(
                hold.id,
                HoldRecord {
                    hold: hold.clone(),
                    state: HoldState::Held,
                },
            );
            // Same critical section as the decrement: the outbox entry exists iff the hold does.
            let mut ob = self.outbox.lock();
            ob.next_id += 1;
            let id = ob.next_id;
            ob.entries.insert(
                id,
                Pending {
                    hold: hold.clone(),
                    attempts: 0,
                    leased_until: None,
                    trace_parent: req.trace_parent.clone(),
                },
            );
            hold
        };
        Ok(ReserveOutcome::Reserved {
            hold,
            replayed: false,
        })
    }

    async fn confirm(&self, activity: ActivityId, hold: HoldId) -> Result<Transition> {
        let Some(act) = self.activity(activity) else {
            return Ok(Transition::Unknown);
        };
        let mut a = act.lock();
        let Some(rec) = a.holds.get_mut(&hold) else {
            return Ok(Transition::Unknown);
        };
        match rec.state {
            HoldState::Confirmed => Ok(Transition::AlreadyDone),
            HoldState::Released => Ok(Transition::Refused(HoldState::Released)),
            HoldState::Held => {
                rec.state = HoldState::Confirmed;
                let q = rec.hold.quantity;
                a.held -= q;
                a.sold += q;
                Ok(Transition::Applied)
            }
        }
    }

    async fn release(&self, activity: ActivityId, hold: HoldId) -> Result<Transition> {
        let Some(act) = self.activity(activity) else {
            return Ok(Transition::Unknown);
        };
        let mut a = act.lock();
        let Some(rec) = a.holds.get_mut(&hold) else {
            return Ok(Transition::Unknown);
        };
        let was = rec.state;
        if was == HoldState::Released {
            return Ok(Transition::AlreadyDone);
        }
        rec.state = HoldState::Released;
        let (q, user) = (rec.hold.quantity, rec.hold.user_id);
        match was {
            HoldState::Held => a.held -= q,
            _ => a.sold -= q,
        }
        a.available += i64::from(q);
        if let Some(c) = a.users.get_mut(&user) {
            *c = c.saturating_sub(q);
        }
        Ok(Transition::Applied)
    }

    async fn snapshot(&self, activity: ActivityId) -> Result<Option<StockSnapshot>> {
        Ok(self.activity(activity).map(|act| {
            let a = act.lock();
            StockSnapshot {
                total: a.total,
                available: a.available,
                held: a.held,
                sold: a.sold,
            }
        }))
    }

    async fn hold(&self, activity: ActivityId, hold: HoldId) -> Result<Option<HoldRecord>> {
        Ok(self
            .activity(activity)
            .and_then(|act| act.lock().holds.get(&hold).cloned()))
    }

    async fn live_holds(&self, activity: ActivityId) -> Result<Vec<HoldRecord>> {
        let Some(act) = self.activity(activity) else {
            return Ok(Vec::new());
        };
        let a = act.lock();
        let mut v: Vec<_> = a
            .holds
            .values()
            .filter(|r| r.state != HoldState::Released)
            .cloned()
            .collect();
        v.sort_by_key(|r| r.hold.id);
        Ok(v)
    }

    async fn user_count(&self, activity: ActivityId, user: UserId) -> Result<u32> {
        Ok(self
            .activity(activity)
            .map(|act| act.lock().users.get(&user).copied().unwrap_or(0))
            .unwrap_or(0))
    }

    async fn outbox_claim(&self, max: usize, lease: Duration) -> Result<Vec<OutboxEntry>> {
        let now = self.clock.now();
        let until = now + chrono::Duration::from_std(lease).map_err(Error::invalid)?;
        let mut ob = self.outbox.lock();
        let mut out = Vec::new();
        for (id, p) in ob.entries.iter_mut() {
            if out.len() >= max {
                break;
            }
            if p.leased_until.is_some_and(|t| t > now) {
                continue;
            }
            p.attempts += 1;
            p.leased_until = Some(until);
            out.push(OutboxEntry {
                id: id.to_string(),
                hold: p.hold.clone(),
                attempts: p.attempts,
                trace_parent: p.trace_parent.clone(),
            });
        }
        Ok(out)
    }

    async fn outbox_ack(&self, ids: &[String]) -> Result<()> {
        let mut ob = self.outbox.lock();
        for id in ids {
            let n: u64 = id
                .parse()
                .map_err(|_| Error::invalid(format!("outbox id {id:?}")))?;
            ob.entries.remove(&n);
        }
        Ok(())
    }

    async fn outbox_lag(&self) -> Result<Vec<(ActivityId, u64)>> {
        let mut lag = BTreeMap::<ActivityId, u64>::new();
        for p in self.outbox.lock().entries.values() {
            *lag.entry(p.hold.activity_id).or_default() += 1;
        }
        Ok(lag.into_iter().collect())
    }

    fn sold_out_hint(&self, activity: ActivityId) -> bool {
        // In one process the state itself is at hand: never stale.
        !self.skip_stock_check
            && self
                .activity(activity)
                .is_some_and(|a| a.lock().available <= 0)
    }
}
