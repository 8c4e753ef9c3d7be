//! The buy: the hot path, as both APIs place it.

use crate::auth::{ensure_unrevoked, SignedUser};
use crate::error::{ApiError, Code};
use crate::limits::{rate_charge, Limit};
use crate::state::AppState;
use seckill_core::domain::{HoldId, Holder, OrderId, TierLine};
use seckill_core::engine::{BuyOutcome, BuyRejection, BuyRequest};
use seckill_core::Timestamp;
use serde::Serialize;
use serde_json::json;

/// A reservation: the order will exist shortly under `order_id`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Bought {
    /// The hold in the stock backend.
    pub hold_id: HoldId,
    /// The order's id (it is written moments later).
    pub order_id: OrderId,
    /// Units reserved.
    pub quantity: u32,
    /// Pay before this.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// `true` when this answers a retry with the same `Idempotency-Key`.
    pub replayed: bool,
    /// Units per tier, for a session with tiers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<TierLine>,
    /// The tickets' holders, for a real-name session (document numbers masked and hashed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<Holder>,
}

/// Maps a refusal to its code.
pub fn rejection(r: BuyRejection) -> ApiError {
    use BuyRejection as R;
    match r {
        R::UnknownActivity => ApiError::new(Code::ActivityNotFound, "no such activity"),
        R::NotStarted => ApiError::new(Code::NotStarted, "the sale has not started"),
        R::Ended => ApiError::new(Code::Ended, "the sale has ended"),
        R::Cancelled => ApiError::new(Code::ActivityCancelled, "the sale was cancelled"),
        R::NotWarmedUp => ApiError::new(Code::NotWarmedUp, "the sale's stock is not ready yet"),
        R::SoldOut => ApiError::new(Code::SoldOut, "sold out"),
        R::InsufficientStock { available } => {
            ApiError::new(Code::InsufficientStock, format!("only {available} left"))
                .with_data(json!({ "available": available }))
        }
        R::LimitExceeded { held, limit } => ApiError::new(
            Code::LimitExceeded,
            format!("at most {limit} per buyer; you have {held}"),
        )
        .with_data(json!({ "held": held, "limit": limit })),
        R::RateLimited { retry_after } => ApiError::new(Code::RateLimited, "too many attempts")
            .with_data(json!({ "retry_after_ms": retry_after.as_millis() as u64 })),
        R::Paused => ApiError::new(
            Code::SalePaused,
            "the sale of this activity is stopped for now",
        ),
        R::TierShort { tier, available } => ApiError::new(
            Code::TierShort,
            format!("tier {tier}: only {available} left"),
        )
        .with_data(json!({ "tier": tier, "available": available })),
        R::QuotaShort { quota, available } => ApiError::new(
            Code::QuotaShort,
            format!("quota {quota}: only {available} left"),
        )
        .with_data(json!({ "quota": quota, "available": available })),
        R::SeatsTaken { seats } => ApiError::new(
            Code::SeatsTaken,
            format!("{} of the seats asked for are taken", seats.len()),
        )
        .with_data(json!({ "seats": seats })),
        R::HolderTaken { holders } => ApiError::new(
            Code::HolderTaken,
            format!(
                "{} of the holders hold a ticket of this session already",
                holders.len()
            ),
        )
        .with_data(json!({ "holders": holders })),
    }
}

/// The buy: the engine, which checks the quantity, the idempotency key and, in the reserve's
/// atomic step, the per-IP limit with its own per-buyer one (the transports have checked the key already, to answer a malformed one as a malformed
/// parameter, 2003). `me`'s token has verified; its revocation is checked here, after the
/// engine's in-memory refusals (a sold-out sale answers with no I/O), and only here.
pub async fn place(
    s: &AppState,
    me: &SignedUser,
    ip: &str,
    req: BuyRequest,
) -> Result<Bought, ApiError> {
    let outcome = s
        .engine
        .buy_with(
            BuyRequest {
                user_id: me.0.id,
                ..req
            },
            rate_charge(s, Limit::BuyPerIp, ip).into_iter().collect(),
            ensure_unrevoked(s, &me.0),
        )
        .await?;
    match outcome {
        BuyOutcome::Reserved {
            hold_id,
            order_id,
            quantity,
            expires_at,
            replayed,
            lines,
            holders,
        } => Ok(Bought {
            hold_id,
            order_id,
            quantity,
            expires_at,
            replayed,
            lines,
            holders,
        }),
        BuyOutcome::Rejected(r) => Err(rejection(r)),
    }
}
