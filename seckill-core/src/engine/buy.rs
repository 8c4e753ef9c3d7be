//! Step 1, the hot path: gate, then one atomic reserve. Never waits for the broker or the DB.

use super::Engine;
use crate::domain::{
    ActivityId, ActivityStatus, HoldId, Holder, HolderInput, OrderId, TierLine, UserId,
};
use crate::rate_limit::RateCharge;
use crate::stock::{ReserveOutcome, ReserveRequest};
use crate::{Entity, Error, Result, Timestamp};
use std::time::Duration;
use tracing::Instrument;

/// A buy attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyRequest {
    /// The buyer.
    pub user_id: UserId,
    /// The activity.
    pub activity_id: ActivityId,
    /// Units (≥ 1). With `lines`, 0 or their sum.
    pub quantity: u32,
    /// Idempotency key: retrying with the same key returns the same hold. `None` makes every
    /// call a new attempt.
    pub request_id: Option<String>,
    /// Units per price tier, for a session with tiers (docs/adr/0021): all or nothing, each
    /// tier once. Empty for a plain sale.
    pub lines: Vec<TierLine>,
    /// One holder per ticket, in line order, for a real-name session (docs/adr/0021); empty
    /// otherwise. The engine seals them (the numbers hashed and masked) before any backend
    /// sees them.
    pub holders: Vec<HolderInput>,
}

/// Why a buy was refused. All of these are normal outcomes of a flash sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuyRejection {
    /// No such activity.
    UnknownActivity,
    /// Before the start.
    NotStarted,
    /// After the end.
    Ended,
    /// Called off.
    Cancelled,
    /// Its stock was not warmed up.
    NotWarmedUp,
    /// Nothing left.
    SoldOut,
    /// Less left than asked.
    InsufficientStock {
        /// Units left.
        available: u32,
    },
    /// The per-user limit would be exceeded.
    LimitExceeded {
        /// Units the user already has.
        held: u32,
        /// The limit.
        limit: u32,
    },
    /// Too many attempts by this user.
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
    /// The operator stopped this activity's sale (the kill switch of
    /// [`SaleControls`](crate::engine::SaleControls)).
    Paused,
    /// A tier asked for has fewer units left than asked (the session still has some).
    TierShort {
        /// The tier.
        tier: u32,
        /// Its units left.
        available: u32,
    },
    /// A quota the buy counts against has fewer units left than it asks.
    QuotaShort {
        /// The quota.
        quota: u32,
        /// Its units left.
        available: u32,
    },
    /// Seats the buy named are taken.
    SeatsTaken {
        /// Those seats.
        seats: Vec<String>,
    },
    /// Holders of the buy hold a live ticket of this session already (one document, one
    /// ticket per session).
    HolderTaken {
        /// Their documents, masked (as the buyer gave them, ticket order).
        holders: Vec<String>,
    },
}

impl BuyRejection {
    /// A stable name, used as the `reason` label of `seckill_fail_reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            BuyRejection::UnknownActivity => "unknown_activity",
            BuyRejection::NotStarted => "not_started",
            BuyRejection::Ended => "ended",
            BuyRejection::Cancelled => "cancelled",
            BuyRejection::NotWarmedUp => "not_warmed_up",
            BuyRejection::SoldOut => "sold_out",
            BuyRejection::InsufficientStock { .. } => "insufficient_stock",
            BuyRejection::LimitExceeded { .. } => "limit_exceeded",
            BuyRejection::RateLimited { .. } => "rate_limited",
            BuyRejection::Paused => "paused",
            BuyRejection::TierShort { .. } => "tier_short",
            BuyRejection::QuotaShort { .. } => "quota_short",
            BuyRejection::SeatsTaken { .. } => "seats_taken",
            BuyRejection::HolderTaken { .. } => "holder_taken",
        }
    }
}

/// The answer to a buy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuyOutcome {
    /// Units reserved; the order will be written from the hold shortly.
    Reserved {
        /// The hold.
        hold_id: HoldId,
        /// The order it becomes (poll it).
        order_id: OrderId,
        /// Units.
        quantity: u32,
        /// Payment deadline.
        expires_at: Timestamp,
        /// Whether this answers a retry of an earlier request with the same key.
        replayed: bool,
        /// Its units per tier (empty for a plain sale).
        lines: Vec<TierLine>,
        /// Its tickets' holders, sealed (empty unless real-name).
        holders: Vec<Holder>,
    },
    /// Refused.
    Rejected(BuyRejection),
}

impl Engine {
    /// Buys: gate, then the atomic reserve. Returns at once with the order id; the rest of the
    /// pipeline runs behind the outbox. A `request_id` reused with another quantity is
    /// `Err(Conflict)`.
    pub async fn buy(&self, req: BuyRequest) -> Result<BuyOutcome> {
        self.buy_gated(req, async { Ok(()) }).await
    }

    /// [`buy`](Self::buy) with the caller's own check, `gate`, awaited after the engine's
    /// in-memory refusals (unknown activity, not live, above the limit, sold out) and before
    /// anything that costs a backend call. An API passes the check of its caller that needs
    /// I/O (a token's revocation): once a sale is sold out, its refusals then cost no I/O at
    /// all. An `Err` from `gate` is the buy's answer.
    pub async fn buy_gated(
        &self,
        req: BuyRequest,
        gate: impl std::future::Future<Output = Result<()>>,
    ) -> Result<BuyOutcome> {
        self.buy_with(req, Vec::new(), gate).await
    }

    /// [`buy_gated`](Self::buy_gated) with the caller's own rate charges (an API's limit per
    /// client address, say), checked and charged with the engine's per-buyer quota
    /// ([`SaleControls::buy_quota`](super::SaleControls::buy_quota)) inside the reserve's one
    /// atomic step: a buy waits for one backend call, rate-limited or not (docs/adr/0019).
    /// Charges are per activity; a retry with a known idempotency key charges nothing.
    pub async fn buy_with(
        &self,
        req: BuyRequest,
        rates: Vec<RateCharge>,
        gate: impl std::future::Future<Output = Result<()>>,
    ) -> Result<BuyOutcome> {
        let m = self.metrics();
        m.requests.inc();
        let started = std::time::Instant::now();
        let outcome = self.buy_inner(req, rates, gate).await;
        m.buy_duration.observe(started.elapsed());
        match &outcome {
            Ok(BuyOutcome::Reserved { .. }) => {
                m.successes.inc();
            }
            Ok(BuyOutcome::Rejected(r)) => m.fail(r.reason()),
            Err(Error::InvalidArgument(_)) => m.fail("invalid_request"),
            Err(Error::Conflict { .. }) => m.fail("idempotency_mismatch"),
            Err(Error::Unauthenticated(_)) => m.fail("unauthenticated"),
            Err(_) => m.fail("error"),
        }
        outcome
    }

    async fn buy_inner(
        &self,
        req: BuyRequest,
        mut rates: Vec<RateCharge>,
        gate: impl std::future::Future<Output = Result<()>>,
    ) -> Result<BuyOutcome> {
        use BuyRejection as R;
        if req.quantity == 0 && req.lines.is_empty() {
            return Err(Error::invalid("quantity must be at least 1"));
        }
        if let Some(k) = &req.request_id {
            crate::idempotency::check_key(k)?;
        }
        let Some(activity) = self.activity_cached(req.activity_id).await? else {
            return Ok(BuyOutcome::Rejected(R::UnknownActivity));
        };
        let now = self.now();
        match activity.status_at(now) {
            ActivityStatus::Scheduled => return Ok(BuyOutcome::Rejected(R::NotStarted)),
            ActivityStatus::Ended => return Ok(BuyOutcome::Rejected(R::Ended)),
            ActivityStatus::Cancelled => return Ok(BuyOutcome::Rejected(R::Cancelled)),
            ActivityStatus::Live => {}
        }
        // A session's units come per tier; the domain's rules, before any backend sees them.
        let quantity =
            match crate::domain::tier::check_lines(&activity.tiers, &activity.seats, &req.lines)? {
                0 => req.quantity,
                sum if req.quantity == 0 || req.quantity == sum => sum,
                _ => {
                    return Err(Error::invalid(
                        "quantity: the units of lines add up to another number",
                    ))
                }
            };
        if self.controls().is_paused(req.activity_id) {
            return Ok(BuyOutcome::Rejected(R::Paused));
        }
        if quantity > activity.per_user_limit {
            return Ok(BuyOutcome::Rejected(R::LimitExceeded {
                held: 0,
                limit: activity.per_user_limit,
            }));
        }
        // After the limit: a request of more tickets than anyone may buy costs no hashing.
        let holders = crate::domain::holder::seal_holders(
            self.config().document_key.as_ref(),
            activity.real_name,
            quantity,
            &req.holders,
        )?;
        // The stock backend's cached flag, before any I/O (most of a sale's traffic arrives
        // after sell-out). A retry with a key must reach the backend to replay its hold.
        if req.request_id.is_none() && self.backends().stock.sold_out_hint(req.activity_id) {
            return Ok(BuyOutcome::Rejected(R::SoldOut));
        }
        gate.await?;
        if let Some(quota) = self.controls().buy_quota() {
            rates.insert(0, RateCharge::buyer(format!("u:{}", req.user_id), quota));
        }
        let expires_at = now
            + chrono::Duration::from_std(self.config().payment_timeout).map_err(Error::invalid)?;
        let request_id = req
            .request_id
            .unwrap_or_else(|| format!("auto-{:032x}", rand::random::<u128>()));
        // The reserve's span, only when traces are propagated: its context is kept with the
        // outbox entry, so the relay's span (in another task, maybe another process) continues
        // this trace.
        let tracing = &self.backends().tracing;
        let span = if tracing.is_on() {
            tracing::info_span!("stock.reserve", activity = %req.activity_id, quantity = quantity)
        } else {
            tracing::Span::none()
        };
        let trace_parent = tracing.of(&span);
        let outcome = self
            .backends()
            .stock
            .reserve(&ReserveRequest {
                activity_id: req.activity_id,
                user_id: req.user_id,
                quantity,
                request_id,
                hold_id: HoldId(self.next_id()),
                order_id: OrderId(self.next_id()),
                now,
                expires_at,
                trace_parent,
                rates,
                lines: req.lines.clone(),
                holders: holders.clone(),
            })
            .instrument(span)
            .await?;
        Ok(match outcome {
            ReserveOutcome::Reserved {
                hold,
                replayed: true,
            } if hold.quantity != quantity
                || !same_lines(&hold.lines, &req.lines)
                || hold.holders != holders =>
            {
                return Err(Error::conflict(
                    Entity::IdempotencyKey,
                    format!("of hold {}", hold.id),
                    "the key was used with a different request",
                ))
            }
            ReserveOutcome::Reserved { hold, replayed } => BuyOutcome::Reserved {
                hold_id: hold.id,
                order_id: hold.order_id,
                quantity: hold.quantity,
                expires_at: hold.expires_at,
                replayed,
                lines: hold.lines,
                holders: hold.holders,
            },
            ReserveOutcome::SoldOut => BuyOutcome::Rejected(R::SoldOut),
            ReserveOutcome::InsufficientStock { available } => {
                BuyOutcome::Rejected(R::InsufficientStock { available })
            }
            ReserveOutcome::LimitExceeded { held, limit } => {
                BuyOutcome::Rejected(R::LimitExceeded { held, limit })
            }
            ReserveOutcome::NotStarted => BuyOutcome::Rejected(R::NotStarted),
            ReserveOutcome::Ended => BuyOutcome::Rejected(R::Ended),
            ReserveOutcome::NotLoaded => BuyOutcome::Rejected(R::NotWarmedUp),
            ReserveOutcome::RateLimited { retry_after } => {
                BuyOutcome::Rejected(R::RateLimited { retry_after })
            }
            ReserveOutcome::TierShort { tier, available } => {
                BuyOutcome::Rejected(R::TierShort { tier, available })
            }
            ReserveOutcome::QuotaShort { quota, available } => {
                BuyOutcome::Rejected(R::QuotaShort { quota, available })
            }
            ReserveOutcome::SeatsTaken { seats } => BuyOutcome::Rejected(R::SeatsTaken { seats }),
            ReserveOutcome::HolderTaken { id_hashes } => BuyOutcome::Rejected(R::HolderTaken {
                holders: holders
                    .iter()
                    .filter(|h| id_hashes.contains(&h.id_hash))
                    .map(|h| h.id_masked.clone())
                    .collect(),
            }),
        })
    }
}

/// Whether a hold's lines answer a request's: the same tiers and units, and the same seats
/// where the request named them (a request for the best available gets whichever seats).
fn same_lines(hold: &[TierLine], asked: &[TierLine]) -> bool {
    hold.len() == asked.len()
        && asked.iter().all(|a| {
            hold.iter().any(|h| {
                h.tier == a.tier
                    && h.quantity == a.quantity
                    && (a.seats.is_empty() || h.seats == a.seats)
            })
        })
}
