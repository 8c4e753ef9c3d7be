//! `POST /api/v1/seckill/activities/{id}/buy`: the hot path.

use crate::auth::SignedUser;
use crate::error::{ApiResult, Body, PathParam, Refusals, Reply, Success};
use crate::idempotent;
use crate::limits::ClientIp;
use crate::service::buy::{place, Bought};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use seckill_core::domain::{ActivityId, HolderInput, TierLine};
use seckill_core::engine::BuyRequest;
use serde::Deserialize;

/// The buy request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyReq {
    /// Units (default 1, or one per holder; with `lines`, their sum).
    #[serde(default)]
    #[schema(minimum = 1)]
    quantity: Option<u32>,
    /// Units per price tier, for a session with tiers (docs/adr/0021): all or nothing, each
    /// tier once; omitted for a plain sale.
    #[serde(default)]
    #[schema(max_items = 32)]
    lines: Vec<TierLine>,
    /// One holder per ticket, in line order, for a real-name session (docs/adr/0021): name,
    /// document kind and number; omitted otherwise. The number is hashed and masked at once
    /// and never stored, logged or answered in the clear.
    #[serde(default)]
    #[schema(max_items = 100)]
    holders: Vec<HolderInput>,
}

/// Buys. `202 Accepted` with the order id, or a 4xx with the reason.
#[utoipa::path(
    post,
    path = "/api/v1/seckill/activities/{id}/buy",
    tag = "seckill",
    params(("id" = ActivityId, Path, description = "activity id"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = r"^[!-~]+$", description = "1 to 128 visible ASCII characters; a retry with the same key and body replays the first answer")),
    request_body = BuyReq,
    responses((status = 202, description = "success", body = Success<Bought>), Refusals),
    security(("bearer" = []))
)]
pub async fn buy(
    State(s): State<AppState>,
    me: SignedUser,
    ip: ClientIp,
    PathParam(id): PathParam<ActivityId>,
    headers: HeaderMap,
    Body(req): Body<BuyReq>,
) -> ApiResult<Bought> {
    let key = idempotent::key(&headers)?;
    // Without lines one unit by default, or one per holder; with lines, their sum (0 asks the
    // engine for it).
    let quantity = req.quantity.unwrap_or(if !req.lines.is_empty() {
        0
    } else if !req.holders.is_empty() {
        u32::try_from(req.holders.len()).unwrap_or(u32::MAX)
    } else {
        1
    });
    Ok(Reply(
        StatusCode::ACCEPTED,
        place(
            &s,
            &me,
            &ip.0,
            BuyRequest {
                user_id: me.0.id,
                activity_id: id,
                quantity,
                request_id: key,
                lines: req.lines,
                holders: req.holders,
            },
        )
        .await?,
    ))
}
