//! The payment provider named by `payment.provider`: `mock` (signs its own callbacks, pays from
//! `/api/v1/payment/mock/{id}/complete`), `alipay` or `wechat` (seckill-pay).

use crate::config::{PaymentConfig, Secret};
use seckill_core::payment::{MockProvider, PaymentProvider};
use seckill_pay::alipay::{Alipay, AlipayConfig};
use seckill_pay::wechat::{WechatConfig, WechatPay};
use std::sync::Arc;

/// The providers `payment.provider` may name.
pub const PROVIDERS: &[&str] = &["mock", "alipay", "wechat"];

/// The configured provider; the mock one also as itself, for its pay page.
#[derive(Debug)]
pub struct Provider {
    /// What the engine pays through.
    pub provider: Arc<dyn PaymentProvider>,
    /// Set when the provider is `mock`.
    pub mock: Option<Arc<MockProvider>>,
}

fn secret(s: &Option<Secret>) -> String {
    s.as_ref()
        .map(|s| s.expose().to_string())
        .unwrap_or_default()
}

/// Builds the provider `config` names; an unknown name lists the available ones, and a
/// provider whose settings are incomplete says which.
pub fn build(
    config: &PaymentConfig,
    random_secret: impl FnOnce() -> String,
) -> Result<Provider, String> {
    let notify_url = |name: &str| match &config.public_url {
        Some(base) if !base.is_empty() => Ok(format!(
            "{}/api/v1/payment/callback/{name}",
            base.trim_end_matches('/')
        )),
        _ => Err(format!(
            "payment.provider {name:?} needs payment.public_url: where {name} sends its callbacks"
        )),
    };
    let refused = |name: &str, e: seckill_core::Error| format!("payment.{name}: {e}");
    match config.provider.as_str() {
        "mock" => {
            let key = config
                .mock_secret
                .as_ref()
                .map_or_else(random_secret, |s| s.expose().to_string());
            let mock = Arc::new(MockProvider::new(key.into_bytes()));
            Ok(Provider {
                provider: mock.clone(),
                mock: Some(mock),
            })
        }
        "alipay" => {
            let a = &config.alipay;
            let provider = Alipay::new(AlipayConfig {
                gateway: a.gateway.clone(),
                app_id: a.app_id.clone(),
                app_private_key: secret(&a.app_private_key),
                alipay_public_key: a.alipay_public_key.clone(),
                notify_url: notify_url("alipay")?,
                return_url: a.return_url.clone(),
            })
            .map_err(|e| refused("alipay", e))?;
            Ok(Provider {
                provider: Arc::new(provider),
                mock: None,
            })
        }
        "wechat" => {
            let w = &config.wechat;
            let provider = WechatPay::new(WechatConfig {
                api_base: w.api_base.clone(),
                mch_id: w.mch_id.clone(),
                app_id: w.app_id.clone(),
                merchant_serial: w.merchant_serial.clone(),
                merchant_private_key: secret(&w.merchant_private_key),
                platform_public_key: w.platform_public_key.clone(),
                platform_serial: w.platform_serial.clone(),
                api_v3_key: secret(&w.api_v3_key),
                notify_url: notify_url("wechat")?,
            })
            .map_err(|e| refused("wechat", e))?;
            Ok(Provider {
                provider: Arc::new(provider),
                mock: None,
            })
        }
        other => Err(format!(
            "unknown payment provider {other:?}; available: {}",
            PROVIDERS.join(", ")
        )),
    }
}
