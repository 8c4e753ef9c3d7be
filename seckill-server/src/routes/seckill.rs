//! `POST /api/v1/seckill/activities/{id}/buy`: the hot path.

use crate::auth::{ensure_unrevoked, SignedUser};
use crate::error::{ApiError, ApiResult, Body, Code, Failure, PathParam, Reply, Success};
use crate::limits::{charge, ClientIp, Limit};
use crate::replay;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use seckill_core::domain::{ActivityId, HoldId, OrderId};
use seckill_core::engine::{BuyOutcome, BuyRejection, BuyRequest};
use seckill_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The buy request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyReq {
    /// Units (default 1).
    #[serde(default = "one")]
    #[schema(minimum = 1)]
    quantity: u32,
}

fn one() -> u32 {
    1
}

/// A reservation: the order will exist shortly under `order_id`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BuyResp {
    pub(crate) hold_id: HoldId,
    pub(crate) order_id: OrderId,
    pub(crate) quantity: u32,
    /// Pay before this.
    #[schema(value_type = String, format = DateTime)]
    pub(crate) expires_at: Timestamp,
    /// `true` when this answers a retry with the same `Idempotency-Key`.
    pub(crate) replayed: bool,
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
    }
}

/// Buys. `202 Accepted` with the order id, or a 4xx with the reason.
#[utoipa::path(
    post,
    path = "/api/v1/seckill/activities/{id}/buy",
    tag = "seckill",
    params(("id" = ActivityId, Path, description = "activity id"), ("Idempotency-Key" = Option<String>, Header, description = "1 to 128 visible ASCII characters; a retry with the same key and body replays the first answer")),
    request_body = BuyReq,
    responses((status = 202, description = "success", body = Success<BuyResp>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn buy(
    State(s): State<AppState>,
    me: SignedUser,
    ip: ClientIp,
    PathParam(id): PathParam<ActivityId>,
    headers: HeaderMap,
    Body(req): Body<BuyReq>,
) -> ApiResult<BuyResp> {
    let key = replay::key(&headers)?;
    Ok(Reply(
        StatusCode::ACCEPTED,
        place(&s, &me, &ip.0, id, req.quantity, key).await?,
    ))
}

/// The buy as both APIs place it: checks the quantity, the per-IP limit and the idempotency key,
/// then asks the engine. `me`'s token has verified; its revocation is checked here, after the
/// engine's in-memory refusals (a sold-out sale answers with no I/O), and only here.
pub async fn place(
    s: &AppState,
    me: &SignedUser,
    ip: &str,
    id: ActivityId,
    quantity: u32,
    key: Option<String>,
) -> Result<BuyResp, ApiError> {
    if quantity == 0 {
        return Err(ApiError::new(
            Code::InvalidField,
            "quantity must be at least 1",
        ));
    }
    let key = replay::checked(key)?;
    charge(s, Limit::BuyPerIp, ip).await?;
    let outcome = s
        .engine
        .buy_gated(
            BuyRequest {
                user_id: me.0.id,
                activity_id: id,
                quantity,
                request_id: key,
            },
            ensure_unrevoked(s, &me.0),
        )
        .await
        .map_err(|e| match e {
            seckill_core::Error::Conflict(m) => ApiError::new(Code::IdempotencyMismatch, m),
            other => other.into(),
        })?;
    match outcome {
        BuyOutcome::Reserved {
            hold_id,
            order_id,
            quantity,
            expires_at,
            replayed,
        } => Ok(BuyResp {
            hold_id,
            order_id,
            quantity,
            expires_at,
            replayed,
        }),
        BuyOutcome::Rejected(r) => Err(rejection(r)),
    }
}
