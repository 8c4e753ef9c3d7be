//! Payment providers for seckill-rs: **Alipay** (open platform, RSA2) and **WeChat Pay**
//! (API v3), each an implementation of [`seckill_core::payment::PaymentProvider`], so the
//! server's `POST /api/v1/payment/callback/alipay` and `…/wechat` verify and apply the real
//! providers' signed notifications. With the `sandbox` feature, `sandbox` runs a local HTTP
//! gateway that plays either provider (its keys, signatures, encryption and ledger), so the whole
//! payment flow runs in tests and demos without the providers' networks.
//!
//! | Provider | Pay URL | Callback check | Query / refund |
//! |---|---|---|---|
//! | [`alipay::Alipay`] | signed `alipay.trade.page.pay` URL | RSA2 over the sorted form | `alipay.trade.query` / `alipay.trade.refund`, responses verified |
//! | [`wechat::WechatPay`] | Native pay `code_url` | SHA256-RSA2048 over timestamp, nonce, body; AES-256-GCM resource | `/v3/pay/transactions/out-trade-no/…` / `/v3/refund/domestic/refunds`, responses verified |
//!
//! Refunds are idempotent at both providers: the refund request number is the payment id, so
//! asking twice returns the money once.

#![warn(missing_docs)]

pub mod keys;
pub mod time;
pub mod yuan;

#[cfg(feature = "alipay")]
pub mod alipay;
#[cfg(feature = "wechat")]
pub mod wechat;

#[cfg(feature = "sandbox")]
pub mod sandbox;

#[cfg(any(feature = "alipay", feature = "wechat"))]
mod http;
