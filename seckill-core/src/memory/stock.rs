//! In-memory [`StockReserver`]: one mutex per activity, so the reserve step is atomic exactly as
//! the Redis Lua script is.

use crate::clock::{Clock, SystemClock};
use crate::domain::{ActivityId, Hold, HoldId, HoldState, Quota, SeatBlock, TierLine, UserId};
use crate::stock::{
    HoldRecord, OutboxEntry, ReserveOutcome, ReserveRequest, StockReserver, StockSnapshot,
    StockSpec, TierSnapshot, Transition,
};
use crate::{Entity, Error, Result, Timestamp};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
struct ActivityStock {
    limit: u32,
    starts_at: Timestamp,
    ends_at: Timestamp,
    /// The highest fencing token the activity was loaded with.
    fence: u64,
    /// One or more (docs/adr/0020); a buyer's holds, count and request ids live in
    /// `buckets[bucket_of(user)]`.
    buckets: Vec<Bucket>,
    /// Rate charges' theoretical arrival times (µs), by key ([`ReserveRequest::rates`]): one
    /// map for the activity, since a key (a client address) may be shared by buyers of
    /// different buckets.
    rates: HashMap<String, i64>,
    /// The session's price tiers, in the spec's order (docs/adr/0021); empty for a plain sale.
    tiers: Vec<TierSnapshot>,
    /// Caps over several tiers; what one has taken is its tiers' `held + sold`.
    quotas: Vec<Quota>,
    /// The seat map as loaded, and each seated tier's seats, best block first.
    seat_map: Vec<SeatBlock>,
    seats: HashMap<u32, SeatTier>,
    /// The documents (holders' hashes) of live holds, and the hold each is in.
    docs: HashMap<String, HoldId>,
}

/// A seated tier's seats: its blocks in the map's order, each seat taken or not, and where
/// each seat id is.
#[derive(Debug, Default)]
struct SeatTier {
    blocks: Vec<Vec<(String, bool)>>,
    /// Free seats per block (a full block is skipped without a look at its seats).
    free: Vec<usize>,
    at: HashMap<String, (usize, usize)>,
}

impl SeatTier {
    fn of(map: &[SeatBlock], tier: u32) -> Self {
        let mut t = SeatTier::default();
        for b in map.iter().filter(|b| b.tier == tier) {
            let j = t.blocks.len();
            let seats: Vec<(String, bool)> = b.seat_ids().map(|s| (s, false)).collect();
            for (k, (s, _)) in seats.iter().enumerate() {
                t.at.insert(s.clone(), (j, k));
            }
            t.free.push(seats.len());
            t.blocks.push(seats);
        }
        t
    }

    /// The named seats that are taken (an unknown one counts as taken: the engine checks
    /// names first).
    fn taken<'a>(&self, named: &'a [String]) -> Vec<&'a String> {
        named
            .iter()
            .filter(|s| self.at.get(*s).is_none_or(|&(j, k)| self.blocks[j][k].1))
            .collect()
    }

    /// `n` free seats: adjacent in the first block that has them, else the first free ones in
    /// block order; `None` if there are fewer than `n`.
    fn best(&self, n: usize) -> Option<Vec<String>> {
        for (b, _) in self.blocks.iter().zip(&self.free).filter(|(_, f)| **f >= n) {
            let mut run = 0;
            for (k, (_, taken)) in b.iter().enumerate() {
                run = if *taken { 0 } else { run + 1 };
                if run == n {
                    return Some(b[k + 1 - n..=k].iter().map(|(s, _)| s.clone()).collect());
                }
            }
        }
        let free: Vec<String> = self
            .blocks
            .iter()
            .zip(&self.free)
            .filter(|(_, f)| **f > 0)
            .flat_map(|(b, _)| b)
            .filter(|(_, taken)| !taken)
            .take(n)
            .map(|(s, _)| s.clone())
            .collect();
        (free.len() == n).then_some(free)
    }

    fn set(&mut self, seats: &[String], taken: bool) {
        for s in seats {
            if let Some(&(j, k)) = self.at.get(s) {
                let seat = &mut self.blocks[j][k].1;
                if *seat != taken {
                    *seat = taken;
                    if taken {
                        self.free[j] -= 1;
                    } else {
                        self.free[j] += 1;
                    }
                }
            }
        }
    }
}

/// One stock bucket: `total = available + held + sold`, where `total` moves when units are lent
/// to or borrowed from another bucket.
#[derive(Debug, Default)]
struct Bucket {
    total: u32,
    available: i64,
    held: u32,
    sold: u32,
    holds: HashMap<HoldId, HoldRecord>,
    users: HashMap<UserId, u32>,
    requests: HashMap<(UserId, String), HoldId>,
}

impl Bucket {
    fn snapshot(&self) -> StockSnapshot {
        StockSnapshot {
            total: self.total,
            available: self.available,
            held: self.held,
            sold: self.sold,
        }
    }
}

impl ActivityStock {
    fn available(&self) -> i64 {
        self.buckets.iter().map(|b| b.available).sum()
    }

    fn tier_mut(&mut self, tier: u32) -> Option<&mut TierSnapshot> {
        self.tiers.iter_mut().find(|t| t.tier == tier)
    }

    /// The first tier or quota that `lines` would overrun, as the refusal to give; `None` when
    /// every one has room (the lines name tiers of the session: checked before).
    fn tiers_short(&self, lines: &[TierLine]) -> Option<ReserveOutcome> {
        for l in lines {
            let t = self.tiers.iter().find(|t| t.tier == l.tier)?;
            if t.available < i64::from(l.quantity) {
                return Some(ReserveOutcome::TierShort {
                    tier: l.tier,
                    available: t.available.max(0) as u32,
                });
            }
        }
        for q in &self.quotas {
            let taken = crate::stock::quota_taken(q, &self.tiers) as i64;
            let asked: i64 = lines
                .iter()
                .filter(|l| q.tiers.contains(&l.tier))
                .map(|l| i64::from(l.quantity))
                .sum();
            let left = i64::from(q.cap) - taken;
            if asked > 0 && asked > left {
                return Some(ReserveOutcome::QuotaShort {
                    quota: q.id,
                    available: left.max(0) as u32,
                });
            }
        }
        None
    }

    /// The seats each line of a request gets (its named ones, or the best available), or the
    /// refusal when named seats are taken; `broken` double-sells (the negative control).
    fn place_seats(
        &self,
        lines: &[TierLine],
        broken: bool,
    ) -> std::result::Result<Vec<TierLine>, ReserveOutcome> {
        let mut placed = Vec::with_capacity(lines.len());
        for l in lines {
            let mut l = l.clone();
            if let Some(t) = self.seats.get(&l.tier) {
                if l.seats.is_empty() {
                    let got = if broken {
                        // Always the first seats of the map, taken or not.
                        t.blocks
                            .iter()
                            .flatten()
                            .take(l.quantity as usize)
                            .map(|(s, _)| s.clone())
                            .collect()
                    } else {
                        t.best(l.quantity as usize).unwrap_or_default()
                    };
                    if got.len() != l.quantity as usize {
                        return Err(ReserveOutcome::TierShort {
                            tier: l.tier,
                            available: 0,
                        });
                    }
                    l.seats = got;
                } else if !broken {
                    let taken = t.taken(&l.seats);
                    if !taken.is_empty() {
                        return Err(ReserveOutcome::SeatsTaken {
                            seats: taken.into_iter().cloned().collect(),
                        });
                    }
                }
            }
            placed.push(l);
        }
        Ok(placed)
    }

    /// Marks the seats of `lines` taken or free.
    fn mark_seats(&mut self, lines: &[TierLine], taken: bool) {
        for l in lines {
            if let Some(t) = self.seats.get_mut(&l.tier) {
                t.set(&l.seats, taken);
            }
        }
    }

    /// Moves `lines`' units between a tier's counters: `(from, to)` of held, sold, available.
    fn move_lines(&mut self, lines: &[TierLine], from: Counter, to: Counter) {
        for l in lines {
            if let Some(t) = self.tier_mut(l.tier) {
                let q = l.quantity;
                match from {
                    Counter::Available => t.available -= i64::from(q),
                    Counter::Held => t.held -= q,
                    Counter::Sold => t.sold -= q,
                }
                match to {
                    Counter::Available => t.available += i64::from(q),
                    Counter::Held => t.held += q,
                    Counter::Sold => t.sold += q,
                }
            }
        }
    }

    fn home(&self, user: UserId) -> usize {
        crate::stock::bucket_of(user, self.buckets.len() as u32) as usize
    }

    /// The bucket holding `hold`.
    fn bucket_with(&mut self, hold: HoldId) -> Option<&mut Bucket> {
        self.buckets
            .iter_mut()
            .find(|b| b.holds.contains_key(&hold))
    }

    /// Moves units from the other buckets to `home` until it has `need` available or the
    /// others have none: from each donor in turn, `max(short, half its available)`, so an
    /// emptied bucket refills for the next buyers too.
    fn borrow(&mut self, home: usize, need: i64) {
        let k = self.buckets.len();
        for step in 1..k {
            let short = need - self.buckets[home].available;
            if short <= 0 {
                return;
            }
            let d = (home + step) % k;
            let avail = self.buckets[d].available;
            let take = short.max(avail / 2).min(avail);
            if take <= 0 {
                continue;
            }
            let donor = &mut self.buckets[d];
            donor.available -= take;
            donor.total -= take as u32;
            let h = &mut self.buckets[home];
            h.available += take;
            h.total += take as u32;
        }
    }

    /// Makes the buckets' totals add up to `total`: units added are spread evenly; units
    /// removed come out of the buckets with the most available first (the caller has checked
    /// that enough is available).
    fn set_total(&mut self, total: u32) {
        let k = self.buckets.len() as i64;
        let now: i64 = self.buckets.iter().map(|b| i64::from(b.total)).sum();
        let mut delta = i64::from(total) - now;
        if delta > 0 {
            let (each, extra) = (delta / k, delta % k);
            for (j, b) in self.buckets.iter_mut().enumerate() {
                let add = each + i64::from((j as i64) < extra);
                b.available += add;
                b.total += add as u32;
            }
        }
        while delta < 0 {
            let Some(b) = self.buckets.iter_mut().max_by_key(|b| b.available) else {
                return;
            };
            let take = (-delta).min(b.available.max(0));
            if take == 0 {
                return;
            }
            b.available -= take;
            b.total -= take as u32;
            delta += take;
        }
    }
}

/// A tier's counters, for [`ActivityStock::move_lines`].
#[derive(Debug, Clone, Copy)]
enum Counter {
    Available,
    Held,
    Sold,
}

/// The stock of a hold's state.
fn counter(state: HoldState) -> Counter {
    match state {
        HoldState::Held => Counter::Held,
        HoldState::Confirmed => Counter::Sold,
        HoldState::Released => Counter::Available,
    }
}

/// Refuses lines that do not fit the session's tiers (a plain sale takes none).
fn check_request_lines(
    tiers: &[TierSnapshot],
    map: &[SeatBlock],
    req: &ReserveRequest,
) -> Result<()> {
    if tiers.is_empty() != req.lines.is_empty() {
        return Err(Error::invalid(if tiers.is_empty() {
            "lines: this activity has no price tiers"
        } else {
            "lines: this session sells by tier; name its tiers"
        }));
    }
    let mut sum = 0u32;
    for (i, l) in req.lines.iter().enumerate() {
        if !tiers.iter().any(|t| t.tier == l.tier) || l.quantity == 0 {
            return Err(Error::invalid(format!(
                "lines: no tier {} in this session, or no units of it",
                l.tier
            )));
        }
        if req.lines[..i].iter().any(|o| o.tier == l.tier) {
            return Err(Error::invalid(format!("lines: tier {} twice", l.tier)));
        }
        let blocks: Vec<&SeatBlock> = map.iter().filter(|b| b.tier == l.tier).collect();
        let mut named = std::collections::BTreeSet::new();
        if !l.seats.is_empty()
            && (l.seats.len() != l.quantity as usize
                || l.seats.iter().any(|s| {
                    !named.insert(s.as_str())
                        || !blocks.iter().any(|b| crate::domain::tier::holds_seat(b, s))
                }))
        {
            return Err(Error::invalid(format!(
                "lines.seats: not {} distinct seats of tier {}",
                l.quantity, l.tier
            )));
        }
        sum = sum.saturating_add(l.quantity);
    }
    if !tiers.is_empty() && sum != req.quantity {
        return Err(Error::invalid("lines: their units must add up to quantity"));
    }
    Ok(())
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
    skip_borrowing: bool,
    skip_tier_check: bool,
    double_sell_seats: bool,
    skip_document_check: bool,
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
            skip_borrowing: false,
            skip_tier_check: false,
            double_sell_seats: false,
            skip_document_check: false,
        }
    }

    /// **Deliberately broken**: a reserver that never checks the holders' documents, so one
    /// document holds several tickets of a real-name session. Only for the negative control
    /// of the holder cases and model.
    #[doc(hidden)]
    pub fn broken_ignoring_documents(clock: Arc<dyn Clock>) -> Self {
        Self {
            skip_document_check: true,
            ..Self::new(clock)
        }
    }

    /// **Deliberately broken**: a reserver whose seat allocator hands out the first seats of
    /// the map whether or not they are taken, and never checks named seats: a seat is sold
    /// twice. Only for the negative control of the seat cases and the seat race.
    #[doc(hidden)]
    pub fn broken_double_selling_seats(clock: Arc<dyn Clock>) -> Self {
        Self {
            double_sell_seats: true,
            ..Self::new(clock)
        }
    }

    /// **Deliberately broken**: a reserver that checks the session's capacity but not its
    /// tiers' stock nor its quotas, so a tier or a quota is oversold while the session has
    /// room. Only for the negative control of the tier cases.
    #[doc(hidden)]
    pub fn broken_skipping_tier_check(clock: Arc<dyn Clock>) -> Self {
        Self {
            skip_tier_check: true,
            ..Self::new(clock)
        }
    }

    /// **Deliberately broken**: a reserver whose buckets never borrow from each other, so a
    /// buyer whose bucket is empty is refused while others still have stock (an undersell).
    /// Only for the negative control of the bucket cases and model.
    #[doc(hidden)]
    pub fn broken_not_borrowing(clock: Arc<dyn Clock>) -> Self {
        Self {
            skip_borrowing: true,
            ..Self::new(clock)
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
        crate::stock::check_buckets(spec, self.max_buckets())?;
        crate::stock::check_tier_spec(spec)?;
        let mut map = self.activities.lock();
        let existing = map.get(&spec.activity_id).cloned();
        let fresh = existing.is_none().then(|| {
            let mut buckets: Vec<Bucket> = (0..spec.buckets).map(|_| Bucket::default()).collect();
            buckets[0].sold = spec.sold;
            buckets[0].total = spec.sold;
            for &(u, n) in &spec.user_counts {
                let j = crate::stock::bucket_of(u, spec.buckets) as usize;
                buckets[j].users.insert(u, n);
            }
            Arc::new(Mutex::new(ActivityStock {
                limit: spec.per_user_limit,
                starts_at: spec.starts_at,
                ends_at: spec.ends_at,
                fence: 0,
                buckets,
                rates: HashMap::new(),
                tiers: Vec::new(),
                quotas: Vec::new(),
                seat_map: Vec::new(),
                seats: HashMap::new(),
                docs: HashMap::new(),
            }))
        });
        let act = existing
            .clone()
            .or_else(|| fresh.clone())
            .expect("one of them");
        let mut a = act.lock();
        if existing.is_some() && a.buckets.len() != spec.buckets as usize {
            return Err(Error::conflict(
                Entity::Activity,
                spec.activity_id,
                format!(
                    "its stock is in {} buckets; the number cannot change once loaded",
                    a.buckets.len()
                ),
            ));
        }
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
            .filter(|h| !a.buckets.iter().any(|b| b.holds.contains_key(&h.id)))
            .collect();
        let adopted: u32 = adopt.iter().map(|h| h.quantity).sum();
        let taken = a.buckets.iter().map(|b| b.held + b.sold).sum::<u32>() + adopted;
        if spec.total < taken {
            let what = if existing.is_some() {
                "held or sold"
            } else {
                "sold"
            };
            return Err(Error::conflict(
                Entity::Activity,
                spec.activity_id,
                format!(
                    "total {} is below the {taken} units already {what}",
                    spec.total
                ),
            ));
        }
        // Each tier's units held or sold now (adopted holds included) must fit its new stock.
        let mut tiers: Vec<TierSnapshot> = spec
            .tiers
            .iter()
            .map(|t| {
                let old = a.tiers.iter().find(|o| o.tier == t.id);
                TierSnapshot {
                    tier: t.id,
                    total: t.stock,
                    available: 0,
                    held: old.map_or(0, |o| o.held),
                    sold: old.map_or(0, |o| o.sold),
                }
            })
            .collect();
        for h in &adopt {
            for l in &h.lines {
                if let Some(t) = tiers.iter_mut().find(|t| t.tier == l.tier) {
                    t.sold += l.quantity;
                }
            }
        }
        for old in &a.tiers {
            let kept = tiers.iter().find(|t| t.tier == old.tier);
            let taken = old.held + old.sold;
            if taken > 0 && kept.is_none() {
                return Err(Error::conflict(
                    Entity::Activity,
                    spec.activity_id,
                    format!("tier {} has units held or sold; it cannot go", old.tier),
                ));
            }
        }
        for t in &mut tiers {
            if t.total < t.held + t.sold {
                return Err(Error::conflict(
                    Entity::Activity,
                    spec.activity_id,
                    format!(
                        "tier {}'s stock {} is below the {} units already held or sold",
                        t.tier,
                        t.total,
                        t.held + t.sold
                    ),
                ));
            }
            t.available = i64::from(t.total) - i64::from(t.held) - i64::from(t.sold);
        }
        let seats_taken = a
            .seats
            .values()
            .any(|t| t.blocks.iter().flatten().any(|s| s.1));
        if spec.seats != a.seat_map && seats_taken {
            return Err(Error::conflict(
                Entity::Activity,
                spec.activity_id,
                "its seat map cannot change while seats are held or sold",
            ));
        }
        // An adopted hold's seats must be free (another live hold may have been sold them
        // after the backend lost the adopted one): a seat is never held twice.
        let mut claimed = std::collections::HashSet::new();
        for h in &adopt {
            for l in &h.lines {
                for seat in &l.seats {
                    let busy = spec.seats == a.seat_map
                        && a.seats
                            .get(&l.tier)
                            .is_some_and(|t| !t.taken(std::slice::from_ref(seat)).is_empty());
                    if busy || !claimed.insert(seat.clone()) {
                        return Err(Error::conflict(
                            Entity::Activity,
                            spec.activity_id,
                            format!(
                                "seat {seat} of adopted hold {} is held by another hold",
                                h.id
                            ),
                        ));
                    }
                }
            }
        }
        // An adopted hold's documents must be free too: one document, one live ticket.
        let mut docs = std::collections::HashSet::new();
        for h in &adopt {
            for d in &h.holders {
                if a.docs.contains_key(&d.id_hash) || !docs.insert(d.id_hash.as_str()) {
                    return Err(Error::conflict(
                        Entity::Activity,
                        spec.activity_id,
                        format!(
                            "a holder of adopted hold {} holds a ticket of another hold",
                            h.id
                        ),
                    ));
                }
            }
        }
        a.tiers = tiers;
        a.quotas = spec.quotas.clone();
        if spec.seats != a.seat_map {
            a.seat_map = spec.seats.clone();
            let seated: std::collections::BTreeSet<u32> =
                spec.seats.iter().map(|b| b.tier).collect();
            a.seats = seated
                .into_iter()
                .map(|t| (t, SeatTier::of(&spec.seats, t)))
                .collect();
        }
        for h in &adopt {
            a.mark_seats(&h.lines, true);
            for d in &h.holders {
                a.docs.insert(d.id_hash.clone(), h.id);
            }
        }
        for h in adopt {
            let j = a.home(h.user_id);
            let b = &mut a.buckets[j];
            b.holds.insert(
                h.id,
                HoldRecord {
                    hold: h.clone(),
                    state: HoldState::Confirmed,
                },
            );
            *b.users.entry(h.user_id).or_insert(0) += h.quantity;
            b.sold += h.quantity;
            b.total += h.quantity;
        }
        a.fence = a.fence.max(spec.fence);
        a.limit = spec.per_user_limit;
        a.starts_at = spec.starts_at;
        a.ends_at = spec.ends_at;
        // Keep holds and the backend's own sold count: never re-sell a unit.
        a.set_total(spec.total);
        drop(a);
        if let Some(f) = fresh {
            map.insert(spec.activity_id, f);
        }
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
        crate::stock::check_holders(req)?;
        let hold = {
            let mut a = act.lock();
            check_request_lines(&a.tiers, &a.seat_map, req)?;
            let home = a.home(req.user_id);
            let key = (req.user_id, req.request_id.clone());
            if let Some(id) = a.buckets[home].requests.get(&key) {
                let hold = a.buckets[home].holds[id].hold.clone();
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
            let has = a.buckets[home]
                .users
                .get(&req.user_id)
                .copied()
                .unwrap_or(0);
            if has + req.quantity > a.limit {
                return Ok(ReserveOutcome::LimitExceeded {
                    held: has,
                    limit: a.limit,
                });
            }
            if !self.skip_stock_check {
                let need = i64::from(req.quantity);
                if a.buckets[home].available < need && !self.skip_borrowing {
                    a.borrow(home, need);
                }
                if a.buckets[home].available < need {
                    let all = if self.skip_borrowing {
                        a.buckets[home].available
                    } else {
                        a.available()
                    };
                    if all <= 0 {
                        return Ok(ReserveOutcome::SoldOut);
                    }
                    return Ok(ReserveOutcome::InsufficientStock {
                        available: all as u32,
                    });
                }
                if let Some(short) = a.tiers_short(&req.lines).filter(|_| !self.skip_tier_check) {
                    return Ok(short);
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
                lines: if a.seats.is_empty() {
                    req.lines.clone()
                } else {
                    match a.place_seats(&req.lines, self.double_sell_seats) {
                        Ok(placed) => placed,
                        Err(refused) => return Ok(refused),
                    }
                },
                holders: req.holders.clone(),
            };
            if !self.skip_document_check {
                let mut mine = std::collections::HashSet::new();
                let taken: Vec<String> = req
                    .holders
                    .iter()
                    .filter(|h| a.docs.contains_key(&h.id_hash) || !mine.insert(&h.id_hash))
                    .map(|h| h.id_hash.clone())
                    .collect();
                if !taken.is_empty() {
                    return Ok(ReserveOutcome::HolderTaken { id_hashes: taken });
                }
            }
            for h in &req.holders {
                a.docs.insert(h.id_hash.clone(), hold.id);
            }
            a.move_lines(&req.lines, Counter::Available, Counter::Held);
            a.mark_seats(&hold.lines, true);
            let b = &mut a.buckets[home];
            b.available -= i64::from(req.quantity);
            b.held += req.quantity;
            *b.users.entry(req.user_id).or_insert(0) += req.quantity;
            b.requests.insert(key, hold.id);
            b.holds.insert(
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
        let Some(b) = a.bucket_with(hold) else {
            return Ok(Transition::Unknown);
        };
        let rec = b.holds.get_mut(&hold).expect("bucket_with found it");
        match rec.state {
            HoldState::Confirmed => Ok(Transition::AlreadyDone),
            HoldState::Released => Ok(Transition::Refused(HoldState::Released)),
            HoldState::Held => {
                rec.state = HoldState::Confirmed;
                let q = rec.hold.quantity;
                b.held -= q;
                b.sold += q;
                let lines = rec.hold.lines.clone();
                a.move_lines(&lines, Counter::Held, Counter::Sold);
                Ok(Transition::Applied)
            }
        }
    }

    async fn release(&self, activity: ActivityId, hold: HoldId) -> Result<Transition> {
        let Some(act) = self.activity(activity) else {
            return Ok(Transition::Unknown);
        };
        let mut a = act.lock();
        let Some(b) = a.bucket_with(hold) else {
            return Ok(Transition::Unknown);
        };
        let rec = b.holds.get_mut(&hold).expect("bucket_with found it");
        let was = rec.state;
        if was == HoldState::Released {
            return Ok(Transition::AlreadyDone);
        }
        rec.state = HoldState::Released;
        let (q, user) = (rec.hold.quantity, rec.hold.user_id);
        let lines = rec.hold.lines.clone();
        let holders = rec.hold.holders.clone();
        match was {
            HoldState::Held => b.held -= q,
            _ => b.sold -= q,
        }
        b.available += i64::from(q);
        if let Some(c) = b.users.get_mut(&user) {
            *c = c.saturating_sub(q);
        }
        a.move_lines(&lines, counter(was), Counter::Available);
        a.mark_seats(&lines, false);
        for h in &holders {
            if a.docs.get(&h.id_hash) == Some(&hold) {
                a.docs.remove(&h.id_hash);
            }
        }
        Ok(Transition::Applied)
    }

    async fn snapshot(&self, activity: ActivityId) -> Result<Option<StockSnapshot>> {
        Ok(self.activity(activity).map(|act| {
            let a = act.lock();
            let mut s = StockSnapshot {
                total: 0,
                available: 0,
                held: 0,
                sold: 0,
            };
            for b in &a.buckets {
                s.total += b.total;
                s.available += b.available;
                s.held += b.held;
                s.sold += b.sold;
            }
            s
        }))
    }

    async fn buckets(&self, activity: ActivityId) -> Result<Vec<StockSnapshot>> {
        Ok(self
            .activity(activity)
            .map(|act| act.lock().buckets.iter().map(Bucket::snapshot).collect())
            .unwrap_or_default())
    }

    fn max_buckets(&self) -> u32 {
        crate::stock::MAX_BUCKETS
    }

    fn sells_tiers(&self) -> bool {
        true
    }

    fn sells_holders(&self) -> bool {
        true
    }

    fn sells_seats(&self) -> bool {
        true
    }

    async fn taken_seats(&self, activity: ActivityId) -> Result<Vec<String>> {
        Ok(self
            .activity(activity)
            .map(|act| {
                act.lock()
                    .seats
                    .values()
                    .flat_map(|t| t.blocks.iter().flatten())
                    .filter(|(_, taken)| *taken)
                    .map(|(s, _)| s.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn tiers(&self, activity: ActivityId) -> Result<Vec<TierSnapshot>> {
        Ok(self
            .activity(activity)
            .map(|act| act.lock().tiers.clone())
            .unwrap_or_default())
    }

    async fn hold(&self, activity: ActivityId, hold: HoldId) -> Result<Option<HoldRecord>> {
        Ok(self.activity(activity).and_then(|act| {
            act.lock()
                .buckets
                .iter()
                .find_map(|b| b.holds.get(&hold).cloned())
        }))
    }

    async fn live_holds(&self, activity: ActivityId) -> Result<Vec<HoldRecord>> {
        let Some(act) = self.activity(activity) else {
            return Ok(Vec::new());
        };
        let a = act.lock();
        let mut v: Vec<_> = a
            .buckets
            .iter()
            .flat_map(|b| b.holds.values())
            .filter(|r| r.state != HoldState::Released)
            .cloned()
            .collect();
        v.sort_by_key(|r| r.hold.id);
        Ok(v)
    }

    async fn user_count(&self, activity: ActivityId, user: UserId) -> Result<u32> {
        Ok(self
            .activity(activity)
            .map(|act| {
                let a = act.lock();
                let home = a.home(user);
                a.buckets[home].users.get(&user).copied().unwrap_or(0)
            })
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
                .is_some_and(|a| a.lock().available() <= 0)
    }
}
