//! Payments: open one for an order, look it up, refund it, apply a provider's callback, and
//! the mock provider's pay page.

use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::state::AppState;
use seckill_core::domain::{Money, OrderId, OrderStatus, Payment, PaymentId, PaymentStatus};
use seckill_core::engine::CallbackOutcome;
use seckill_core::payment::Callback;
use seckill_core::{Entity, Error};
use serde::Serialize;

/// A payment opened for an order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    payment_id: PaymentId,
    order_id: OrderId,
    amount: Money,
    provider: String,
    status: PaymentStatus,
    /// Where the buyer pays.
    pay_url: String,
}

/// What a callback did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallbackResp {
    payment_id: PaymentId,
    result: &'static str,
    order_status: Option<OrderStatus>,
}

/// The configured provider called `name` (the default one if `None`), or 5005 listing the
/// configured ones.
pub fn provider_name(s: &AppState, name: Option<&str>) -> Result<String, ApiError> {
    let providers = &s.engine.backends().providers;
    match name {
        None => Ok(providers.default_provider().name().to_string()),
        Some(n) => providers
            .get(n)
            .map(|p| p.name().to_string())
            .ok_or_else(|| {
                ApiError::new(
                    Code::UnknownProvider,
                    format!(
                        "payment provider {n:?} is not configured; configured: {}",
                        providers.names().join(", ")
                    ),
                )
            }),
    }
}

/// Opens (or reopens) the payment of the caller's order with `provider` (a configured name).
pub async fn start(
    s: &AppState,
    me: &AuthUser,
    order: OrderId,
    provider: &str,
) -> Result<PaymentView, ApiError> {
    if s.live.provider_disabled(provider) {
        return Err(ApiError::new(
            Code::ProviderDisabled,
            format!("payments through {provider:?} are switched off for now; choose another provider or retry later"),
        ));
    }
    let started = s.engine.start_payment_via(me.id, order, provider).await?;
    let p = started.payment;
    Ok(PaymentView {
        payment_id: p.id,
        order_id: p.order_id,
        amount: p.amount,
        provider: p.provider,
        status: p.status,
        pay_url: started.checkout.pay_url,
    })
}

/// One of the caller's payments (someone else's is not found).
pub async fn mine(s: &AppState, me: &AuthUser, id: PaymentId) -> Result<Payment, ApiError> {
    s.engine
        .payment_of(me.id, id)
        .await?
        .ok_or_else(|| Error::not_found(Entity::Payment, id).into())
}

/// The buyer's refund of one of their payments that paid its order.
pub async fn refund_mine(s: &AppState, me: &AuthUser, id: PaymentId) -> Result<Payment, ApiError> {
    mine(s, me, id).await?;
    Ok(s.engine.refund_payment(id).await?)
}

/// Applies a provider's signed callback: a signature that does not verify answers 5002, a
/// malformed callback 5004.
pub async fn apply_callback(
    s: &AppState,
    provider: &str,
    cb: &Callback,
) -> Result<CallbackResp, ApiError> {
    provider_name(s, Some(provider))?;
    let settled = s
        .engine
        .handle_callback(provider, cb)
        .await
        .map_err(|e| match e {
            Error::Unauthenticated(m) => ApiError::new(Code::BadSignature, m),
            Error::InvalidArgument(m) => ApiError::new(Code::BadCallback, m),
            other => other.into(),
        })?;
    let order_status = s
        .engine
        .backends()
        .orders
        .order(settled.payment.order_id)
        .await?
        .map(|o| o.status);
    Ok(CallbackResp {
        payment_id: settled.payment.id,
        result: match settled.outcome {
            CallbackOutcome::Paid => "paid",
            CallbackOutcome::Failed => "failed",
            CallbackOutcome::Refunded => "refunded",
        },
        order_status,
    })
}

/// The text a provider expects as the acknowledgement of its callback (`success` for
/// Alipay), if it is not the envelope.
pub fn callback_ack(s: &AppState, provider: &str) -> Option<&'static str> {
    s.engine
        .backends()
        .providers
        .get(provider)
        .and_then(|p| p.callback_ack())
}

/// The mock provider's pay page: the buyer "pays"; the provider then sends its signed
/// callback, which is verified and applied as any other.
pub async fn mock_complete(
    s: &AppState,
    me: &AuthUser,
    id: PaymentId,
) -> Result<CallbackResp, ApiError> {
    let Some(mock) = s.mock.clone() else {
        return Err(ApiError::new(
            Code::UnknownProvider,
            "the mock provider is not configured",
        ));
    };
    let payment = mine(s, me, id).await?;
    let cb = mock.pay(&payment);
    apply_callback(s, "mock", &cb).await
}
