//! [`StockReserver`]: the atomic reserve step and the outbox that leaves it.
//!
//! The stock backend is where a flash sale is decided. One call to [`StockReserver::reserve`]
//! checks, **atomically**, the activity's window, the caller's idempotency key, the per-user
//! limit and the stock; then decrements the stock, records the [`Hold`] and appends its outbox
//! entry. Nothing else on the buy path writes anything, so the outbox entry is the durable
//! hand-off to the rest of the pipeline.

use crate::domain::{
    ActivityId, Hold, HoldId, HoldState, Holder, OrderId, Quota, SeatBlock, Tier, TierLine, UserId,
};
use crate::{Result, Timestamp};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What [`StockReserver::load`] installs for an activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockSpec {
    /// The activity.
    pub activity_id: ActivityId,
    /// Units for sale.
    pub total: u32,
    /// Units already in orders according to the database, excluding orders whose holds the
    /// backend still has (those it counts itself).
    pub sold: u32,
    /// Most units one user may have in live holds and orders.
    pub per_user_limit: u32,
    /// Sale opens (inclusive).
    pub starts_at: Timestamp,
    /// Sale closes (exclusive).
    pub ends_at: Timestamp,
    /// Units each user already has in orders (from the database, same exclusion as `sold`).
    pub user_counts: Vec<(UserId, u32)>,
    /// Holds of live orders that the backend does not have (it lost them: a Redis restarted
    /// empty or from an older snapshot). `load` installs each one it does not know, in any
    /// state, as `Confirmed`, counting its units as sold and against its user, so a later
    /// cancel or timeout releases them as for any hold. Not counted in `sold`/`user_counts`.
    pub adopt: Vec<Hold>,
    /// The fencing token of the activity lock this load runs under (0: unfenced). The backend
    /// keeps the highest token it has loaded with and refuses a lower one
    /// (`Conflict` on [`crate::Entity::ActivityLock`]): a holder that stalled past its lease
    /// cannot overwrite what the next holder loaded.
    pub fence: u64,
    /// Stock buckets the activity is split into (≥ 1; docs/adr/0020). Each buyer belongs to
    /// one ([`bucket_of`]), where their holds, count, request ids and rate charges live; a
    /// bucket that runs short borrows from the others, so a buyer is refused only when the
    /// activity as a whole is short. Fixed once loaded; at most the backend's
    /// [`StockReserver::max_buckets`].
    pub buckets: u32,
    /// The session's price tiers (docs/adr/0021; only their numbers and stock matter here):
    /// empty for a plain sale. With tiers, `total` is the session's capacity over them and
    /// every reserve names its units per tier. A backend that does not keep tiers
    /// ([`StockReserver::sells_tiers`]) refuses a spec with some.
    pub tiers: Vec<Tier>,
    /// Caps over several tiers (their numbers and caps matter here), checked with the tiers.
    pub quotas: Vec<Quota>,
    /// The session's seat map, best blocks first (docs/adr/0021): a seated tier's units are
    /// its seats. Empty for an unseated session. A backend that does not keep seats
    /// ([`StockReserver::sells_seats`]) refuses a spec with some.
    pub seats: Vec<SeatBlock>,
}

/// Units a quota has taken: its tiers' `held + sold` (docs/adr/0021; a quota keeps no counter
/// of its own, so it cannot drift from its tiers).
pub fn quota_taken(quota: &Quota, tiers: &[TierSnapshot]) -> u64 {
    tiers
        .iter()
        .filter(|t| quota.tiers.contains(&t.tier))
        .map(|t| u64::from(t.held) + u64::from(t.sold))
        .sum()
}

/// Refuses a spec whose tiers the backend cannot keep exactly: with tiers, one bucket, no
/// `sold` of the database's (the tiers could not tell whose) and every adopted hold naming
/// tiers of the spec once each, adding up to its units (a plain spec's adopted holds name
/// none); seats only with tiers. Both backends check it before they write anything.
pub fn check_tier_spec(spec: &StockSpec) -> Result<()> {
    if spec.tiers.is_empty() {
        if !spec.seats.is_empty() || !spec.quotas.is_empty() {
            return Err(crate::Error::invalid("quotas and seats need tiers"));
        }
    } else if spec.buckets != 1 || spec.sold > 0 {
        return Err(crate::Error::invalid(
            "a session with tiers has one stock bucket and counts its sold units by its holds",
        ));
    }
    for h in &spec.adopt {
        let fits = if spec.tiers.is_empty() {
            h.lines.is_empty()
        } else {
            crate::domain::tier::check_lines(&spec.tiers, &spec.seats, &h.lines)
                .is_ok_and(|n| n == h.quantity)
                && h.lines.iter().all(|l| {
                    // An adopted seated line lists its seats (it was allocated).
                    !spec.seats.iter().any(|b| b.tier == l.tier) || !l.seats.is_empty()
                })
        };
        if !fits {
            return Err(crate::Error::invalid(format!(
                "adopted hold {}: its lines do not fit the session's tiers",
                h.id
            )));
        }
    }
    Ok(())
}

/// Refuses a request whose holders are neither none nor one per unit (the contract's rule,
/// which every backend checks before its atomic step).
pub fn check_holders(req: &ReserveRequest) -> Result<()> {
    if !req.holders.is_empty() && req.holders.len() != req.quantity as usize {
        return Err(crate::Error::invalid("holders: one per unit, or none"));
    }
    Ok(())
}

/// Most stock buckets an activity may have.
pub const MAX_BUCKETS: u32 = 64;

/// The bucket of `user` among `buckets` (a mix of the id's bits, so sequential ids spread).
pub fn bucket_of(user: UserId, buckets: u32) -> u32 {
    if buckets <= 1 {
        return 0;
    }
    // splitmix64's finaliser.
    let mut z = user.0 as u64;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % u64::from(buckets)) as u32
}

/// Refuses a bucket count a backend allowing at most `max` cannot load.
pub fn check_buckets(spec: &StockSpec, max: u32) -> Result<()> {
    if spec.buckets == 0 || spec.buckets > MAX_BUCKETS.min(max) {
        return Err(crate::Error::invalid(format!(
            "stock buckets must be 1 to {} on this backend, not {}",
            MAX_BUCKETS.min(max),
            spec.buckets
        )));
    }
    Ok(())
}

/// One buy attempt, as the engine hands it to the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveRequest {
    /// The activity.
    pub activity_id: ActivityId,
    /// The buyer.
    pub user_id: UserId,
    /// Units wanted (≥ 1).
    pub quantity: u32,
    /// The caller's idempotency key: a second reserve with the same `(activity, user,
    /// request_id)` returns the first one's hold instead of reserving again.
    pub request_id: String,
    /// Id of the hold to create (ignored on a replay).
    pub hold_id: HoldId,
    /// Id of the order the hold becomes (ignored on a replay).
    pub order_id: OrderId,
    /// The engine's current time: the window is checked against it and the hold stamped with it.
    pub now: Timestamp,
    /// Payment deadline of the hold.
    pub expires_at: Timestamp,
    /// The buy's trace context (W3C `traceparent`), kept with the outbox entry so the relay's
    /// span continues the buy's trace; `None` when the buy is not traced.
    pub trace_parent: Option<String>,
    /// Rate charges checked and charged in the same atomic step, after the window and before
    /// the per-user limit and the stock (a replay of a known request id charges nothing). Any
    /// one over its quota refuses the reserve as [`ReserveOutcome::RateLimited`] and charges
    /// none. Keys are per activity.
    pub rates: Vec<crate::rate_limit::RateCharge>,
    /// Units per tier of a session with tiers, adding up to `quantity`, each tier once; empty
    /// for a plain sale. All or nothing: every tier's stock and every quota is checked in the
    /// same atomic step.
    pub lines: Vec<TierLine>,
    /// The tickets' holders of a real-name session, sealed (docs/adr/0021): none, or one per
    /// unit. Checked last in the same atomic step: no document ([`Holder::id_hash`]) may hold
    /// a live ticket of the activity already, nor two of this request; a release frees them.
    pub holders: Vec<Holder>,
}

/// The result of a reserve: every business outcome is a value, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Units reserved. `replayed` is true when the request id had reserved before and this is
    /// that same hold.
    Reserved {
        /// The hold.
        hold: Hold,
        /// Whether this is a replay of an earlier reserve.
        replayed: bool,
    },
    /// No units left at all.
    SoldOut,
    /// Fewer units left than asked for (but some).
    InsufficientStock {
        /// Units still available.
        available: u32,
    },
    /// The user would exceed the per-user limit.
    LimitExceeded {
        /// Units the user already has.
        held: u32,
        /// The limit.
        limit: u32,
    },
    /// Before `starts_at`.
    NotStarted,
    /// At or after `ends_at`.
    Ended,
    /// The activity's stock was never loaded (not warmed up).
    NotLoaded,
    /// One of the request's [`rates`](ReserveRequest::rates) is over its quota: nothing was
    /// reserved or charged.
    RateLimited {
        /// How long until that charge would be allowed.
        retry_after: std::time::Duration,
    },
    /// A tier of the request's [`lines`](ReserveRequest::lines) has fewer units left than
    /// asked (the session as a whole still has some): nothing was reserved.
    TierShort {
        /// The tier.
        tier: u32,
        /// Its units left (0: that tier is sold out).
        available: u32,
    },
    /// A quota the request's lines count against has fewer units left than they ask.
    QuotaShort {
        /// The quota.
        quota: u32,
        /// Its units left.
        available: u32,
    },
    /// Seats the request named are taken (held or sold): nothing was reserved.
    SeatsTaken {
        /// The named seats that are taken.
        seats: Vec<String>,
    },
    /// Documents of the request's [`holders`](ReserveRequest::holders) hold a live ticket of
    /// the activity already (or two of the request name one): nothing was reserved.
    HolderTaken {
        /// Their hashes ([`Holder::id_hash`]).
        id_hashes: Vec<String>,
    },
}

/// Stock figures of one price tier of a session: `total = available + held + sold` (the tier's
/// own stock; a quota or the session's capacity may leave fewer to buy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierSnapshot {
    /// The tier.
    pub tier: u32,
    /// Its units for sale.
    pub total: u32,
    /// Its units nobody holds or bought (signed, as in [`StockSnapshot`]).
    pub available: i64,
    /// Its units in holds whose order is not confirmed yet.
    pub held: u32,
    /// Its units in confirmed holds (orders).
    pub sold: u32,
}

/// Stock figures of an activity. The backend keeps `total = available + held + sold`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StockSnapshot {
    /// Units for sale.
    pub total: u32,
    /// Units anyone may still reserve. Signed so that a broken backend shows up as negative
    /// instead of wrapping.
    pub available: i64,
    /// Units in holds whose order is not confirmed yet.
    pub held: u32,
    /// Units in confirmed holds (orders) plus the `sold` loaded at warm-up.
    pub sold: u32,
}

impl StockSnapshot {
    /// Whether `total = available + held + sold` and nothing is negative.
    pub fn balanced(&self) -> bool {
        self.available >= 0
            && i64::from(self.total) == self.available + i64::from(self.held) + i64::from(self.sold)
    }
}

/// A hold as the backend stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRecord {
    /// The hold.
    pub hold: Hold,
    /// Its state.
    pub state: HoldState,
}

/// What a [`StockReserver::confirm`] or [`StockReserver::release`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The hold moved to the asked state now.
    Applied,
    /// The hold was already in the asked state; nothing changed (a retry).
    AlreadyDone,
    /// The hold is in another state that forbids the move (confirm of a released hold).
    Refused(HoldState),
    /// No such hold.
    Unknown,
}

/// An outbox entry handed out by [`StockReserver::outbox_claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The backend's id of the entry (monotonic per backend).
    pub id: String,
    /// The hold it announces.
    pub hold: Hold,
    /// How many times it was claimed (1 the first time).
    pub attempts: u32,
    /// The trace context its reserve carried ([`ReserveRequest::trace_parent`]).
    pub trace_parent: Option<String>,
}

/// The atomic stock step and its outbox. See the module docs.
///
/// # Contract (checked by `conformance::stock`, feature `conformance`)
/// - `reserve` is atomic: concurrent reserves never take more than `total` units, never give a
///   user more than `per_user_limit` units across their live holds, and a replay of a request id
///   returns the first hold without taking stock again. A rejection changes nothing.
/// - Every successful reserve appends exactly one outbox entry, in the same atomic step.
/// - `confirm` moves `Held → Confirmed` (units go from held to sold); `release` moves
///   `Held | Confirmed → Released` (units go back to available, the user's quota comes back).
///   Both are idempotent, and `confirm` of a released hold is refused.
/// - Holds never vanish by themselves (no TTL): their units must come back by `release`.
/// - `load` on a fresh activity installs the spec; on an activity the backend already has, it
///   updates total, window and limit and recomputes `available = total − sold − held − confirmed`
///   without touching holds, so re-warming never re-sells a unit; a `total` below the units
///   already held or sold (adopted holds included) is refused (`Conflict`) and changes nothing.
///   In both cases it installs the spec's `adopt` holds it does not know, as `Confirmed`.
/// - `load` with a `fence` below the highest one the activity was loaded with is refused
///   (`Conflict` on `Entity::ActivityLock`) and changes nothing; fence 0 is unfenced.
/// - `outbox_claim` hands an entry to one claimer at a time; an entry not acked within its lease
///   is handed out again. `outbox_ack` removes entries for good.
/// - With `buckets > 1` all of the above holds for the activity as a whole, and a reserve is
///   refused as sold out or short only when the activity as a whole is: the buyer's bucket
///   borrows from the others first (no undersell). Each bucket keeps
///   `total = available + held + sold`, and the buckets' totals add up to the activity's.
/// - With tiers ([`sells_tiers`](StockReserver::sells_tiers)), a reserve's lines take from
///   each tier's stock, from the capacity (`total`) and from every quota listing the tier, all
///   or nothing: no tier, quota or capacity is ever exceeded by live holds; a short tier
///   refuses as `TierShort`, a short quota as `QuotaShort`, a short capacity as `SoldOut` or
///   `InsufficientStock`. Confirm and release move each line's units as they move the hold's.
///   Lines naming a tier the spec lacks, or a plain activity given lines (or a tiered one
///   given none), are `InvalidArgument`.
/// - With seats ([`sells_seats`](StockReserver::sells_seats)), each unit of a seated tier is a
///   seat, held by one live hold at most. A line names its seats (all free, or `SeatsTaken`
///   and nothing taken) or none, and then gets the best available: `quantity` adjacent seats
///   of one block, trying the blocks in the spec's order, else the first free seats in that
///   order. The hold's lines list the seats; a release frees exactly them. Named seats that are
///   not the tier's are `InvalidArgument`. The checks after the quotas: the seats.
/// - With holders ([`sells_holders`](StockReserver::sells_holders)), a document
///   ([`Holder::id_hash`]) holds at most one unit of the activity's live holds: a reserve whose
///   holders name one that does (or name one twice) is `HolderTaken` and takes nothing; a
///   release frees its holders' documents; `load` installs adopted holds' documents and refuses
///   (`Conflict`) one held by another live hold. Holders, when given, are one per unit
///   (else `InvalidArgument`). The last check: after the seats.
/// - `sold_out_hint` answers from memory, without I/O: `true` only if the activity was seen
///   sold out recently (on this node or, through the backend's notifications, on another) and
///   no release or reload since. It may be stale for at most about a second; it is a fast path
///   for new requests, never a decision about a request id that may have reserved before.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait StockReserver: Send + Sync + std::fmt::Debug {
    /// Installs or refreshes an activity's stock (warm-up).
    async fn load(&self, spec: &StockSpec) -> Result<()>;
    /// The atomic reserve step.
    async fn reserve(&self, req: &ReserveRequest) -> Result<ReserveOutcome>;
    /// Marks a hold's order as written.
    async fn confirm(&self, activity: ActivityId, hold: HoldId) -> Result<Transition>;
    /// Gives a hold's units and the user's quota back.
    async fn release(&self, activity: ActivityId, hold: HoldId) -> Result<Transition>;
    /// The activity's stock figures, or `None` if never loaded.
    async fn snapshot(&self, activity: ActivityId) -> Result<Option<StockSnapshot>>;
    /// One hold, in any state.
    async fn hold(&self, activity: ActivityId, hold: HoldId) -> Result<Option<HoldRecord>>;
    /// The activity's holds in state `Held` or `Confirmed`.
    async fn live_holds(&self, activity: ActivityId) -> Result<Vec<HoldRecord>>;
    /// Units the user has in live holds of the activity.
    async fn user_count(&self, activity: ActivityId, user: UserId) -> Result<u32>;
    /// Claims up to `max` outbox entries for `lease`.
    async fn outbox_claim(&self, max: usize, lease: Duration) -> Result<Vec<OutboxEntry>>;
    /// Removes entries (after the broker has them).
    async fn outbox_ack(&self, ids: &[String]) -> Result<()>;
    /// Entries not yet acked, per activity that has any (the `seckill_outbox_lag` metric).
    async fn outbox_lag(&self) -> Result<Vec<(ActivityId, u64)>>;
    /// Entries not yet acked, in all.
    async fn outbox_len(&self) -> Result<u64> {
        Ok(self.outbox_lag().await?.iter().map(|(_, n)| n).sum())
    }
    /// A cached "sold out" flag (see the contract above); `false` when unknown.
    fn sold_out_hint(&self, activity: ActivityId) -> bool;
    /// Most stock buckets this backend splits an activity into ([`StockSpec::buckets`]);
    /// 1 for a backend without buckets. The bucket cases of the conformance suite run up to it.
    fn max_buckets(&self) -> u32 {
        1
    }
    /// Each bucket's figures, in bucket order (one entry for an activity of one bucket); empty
    /// if never loaded. They add up to [`snapshot`](Self::snapshot).
    async fn buckets(&self, activity: ActivityId) -> Result<Vec<StockSnapshot>> {
        Ok(self.snapshot(activity).await?.into_iter().collect())
    }
    /// Whether this backend keeps price tiers and quotas ([`StockSpec::tiers`]); `false` for a
    /// backend that sells plain activities only. The tier cases of the conformance suite run
    /// when it does.
    fn sells_tiers(&self) -> bool {
        false
    }
    /// Whether this backend keeps seat maps ([`StockSpec::seats`]); the seat cases of the
    /// conformance suite run when it does.
    fn sells_seats(&self) -> bool {
        false
    }
    /// Whether this backend keeps real-name holders ([`ReserveRequest::holders`]: one
    /// document, one live ticket per activity); the holder cases of the conformance suite run
    /// when it does. A backend that does not refuses a request with holders as invalid.
    fn sells_holders(&self) -> bool {
        false
    }
    /// The session's seats held or sold now, in no order; empty for an unseated session or
    /// if never loaded.
    async fn taken_seats(&self, activity: ActivityId) -> Result<Vec<String>> {
        let _ = activity;
        Ok(Vec::new())
    }
    /// Each tier's figures, in the order the spec gave them; empty for a plain sale or if
    /// never loaded.
    async fn tiers(&self, activity: ActivityId) -> Result<Vec<TierSnapshot>> {
        let _ = activity;
        Ok(Vec::new())
    }
}
