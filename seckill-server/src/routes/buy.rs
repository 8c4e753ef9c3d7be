//! `POST /api/v1/seckill/activities/{id}/buy`: the hot path.

use crate::auth::SignedUser;
use crate::error::{ApiResult, Body, PathParam, Refusals, Reply, Success};
use crate::idempotent;
use crate::limits::ClientIp;
use crate::service::buy::{place, Bought};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use seckill_core::domain::ActivityId;
use serde::Deserialize;

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
    Ok(Reply(
        StatusCode::ACCEPTED,
        place(&s, &me, &ip.0, id, req.quantity, key).await?,
    ))
}
