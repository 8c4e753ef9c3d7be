//! Request rate limits of the API (per client IP, per username, per phone) on the shared
//! [`RateLimiter`](seckill_core::RateLimiter), and the client-IP extractor they key on.

use crate::config::LimitsConfig;
use crate::error::{ApiError, Code};
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use seckill_core::{Quota, RateCharge, RateDecision};
use serde_json::json;
use std::net::SocketAddr;

/// The caller's IP address: the connection's peer, or the first `X-Forwarded-For` address when
/// `limits.trust_forwarded_for` is set. `unknown` when neither is known (in-process tests).
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        if state.live.config().limits.trust_forwarded_for {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| v.parse::<std::net::IpAddr>().is_ok());
            if let Some(ip) = forwarded {
                return Ok(ClientIp(ip.to_string()));
            }
        }
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string()),
        ))
    }
}

/// Which limit of [`LimitsConfig`] a request is charged to.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// `login_per_ip`.
    LoginPerIp,
    /// `login_per_user`.
    LoginPerUser,
    /// `buy_per_ip`.
    BuyPerIp,
    /// `send_code_per_phone`.
    SendCodePerPhone,
    /// `send_code_per_ip`.
    SendCodePerIp,
}

impl Limit {
    fn quota(self, c: &LimitsConfig) -> Option<Quota> {
        match self {
            Limit::LoginPerIp => c.login_per_ip,
            Limit::LoginPerUser => c.login_per_user,
            Limit::BuyPerIp => c.buy_per_ip,
            Limit::SendCodePerPhone => c.send_code_per_phone,
            Limit::SendCodePerIp => c.send_code_per_ip,
        }
        .quota()
    }

    fn name(self) -> &'static str {
        match self {
            Limit::LoginPerIp => "login-ip",
            Limit::LoginPerUser => "login-user",
            Limit::BuyPerIp => "buy-ip",
            Limit::SendCodePerPhone => "code-phone",
            Limit::SendCodePerIp => "code-ip",
        }
    }
}

/// The charge of one request to `key` under `limit`, for a backend to apply in its own atomic
/// step (the buy's per-IP limit rides in the reserve: [`Engine::buy_with`]); `None` when the
/// limit is off.
///
/// [`Engine::buy_with`]: seckill_core::engine::Engine::buy_with
pub fn rate_charge(state: &AppState, limit: Limit, key: &str) -> Option<RateCharge> {
    let quota = limit.quota(&state.live.limits())?;
    Some(RateCharge::new(format!("{}:{key}", limit.name()), quota))
}

/// Charges one request to `key` under `limit`: `RateLimited` (429, with `retry_after_ms`) when
/// over it; nothing when the limit is off.
pub async fn charge(state: &AppState, limit: Limit, key: &str) -> Result<(), ApiError> {
    let Some(quota) = limit.quota(&state.live.limits()) else {
        return Ok(());
    };
    let key = format!("api:{}:{key}", limit.name());
    match state
        .engine
        .backends()
        .rate_limiter
        .check(&key, 1, quota)
        .await?
    {
        RateDecision::Allowed => Ok(()),
        RateDecision::Limited { retry_after } => Err(ApiError::new(
            Code::RateLimited,
            "too many requests; slow down",
        )
        .with_data(json!({ "retry_after_ms": retry_after.as_millis() as u64 }))),
    }
}
