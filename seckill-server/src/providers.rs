//! The payment providers named by `payment.provider` (comma-separated, the first the default):
//! `mock` (signs its own callbacks, pays from `/api/v1/payment/mock/{id}/complete`), `alipay`
//! and `wechat` (seckill-pay).

use crate::config::{PaymentConfig, Secret};
use seckill_core::memory::MockProvider;
use seckill_core::payment::{PaymentProvider, PaymentProviders};
use seckill_pay::alipay::{Alipay, AlipayConfig};
use seckill_pay::wechat::{WechatConfig, WechatPay};
use std::sync::Arc;

/// The providers `payment.provider` may name.
pub const PROVIDERS: &[&str] = &["mock", "alipay", "wechat"];

/// The configured providers; the mock one also as itself, for its pay page.
#[derive(Debug)]
pub struct Provider {
    /// What the engine pays through (the first is the default).
    pub providers: PaymentProviders,
    /// Set when `mock` is among them.
    pub mock: Option<Arc<MockProvider>>,
}

fn secret(s: &Option<Secret>) -> String {
    s.as_ref()
        .map(|s| s.expose().to_string())
        .unwrap_or_default()
}

/// Builds the providers `config.provider` names (comma-separated, the first the default); an
/// unknown name lists the available ones, and a provider whose settings are incomplete says
/// which.
pub fn build(
    config: &PaymentConfig,
    random_secret: impl FnOnce() -> String,
) -> Result<Provider, String> {
    let mut random_secret = Some(random_secret);
    let mut list: Vec<Arc<dyn PaymentProvider>> = Vec::new();
    let mut mock = None;
    for name in config.provider.split(',').map(str::trim) {
        let provider: Arc<dyn PaymentProvider> = match name {
            "mock" => {
                let key = match &config.mock_secret {
                    Some(s) => s.expose().to_string(),
                    None => random_secret.take().map(|f| f()).unwrap_or_default(),
                };
                let m = Arc::new(MockProvider::new(key.into_bytes()));
                mock = Some(m.clone());
                m
            }
            "alipay" => Arc::new(alipay(config)?),
            "wechat" => Arc::new(wechat(config)?),
            other => {
                return Err(format!(
                    "unknown payment provider {other:?}; available: {}",
                    PROVIDERS.join(", ")
                ))
            }
        };
        list.push(provider);
    }
    let providers = PaymentProviders::new(list).map_err(|e| format!("payment.provider: {e}"))?;
    Ok(Provider { providers, mock })
}

fn notify_url(config: &PaymentConfig, name: &str) -> Result<String, String> {
    match &config.public_url {
        Some(base) if !base.is_empty() => Ok(format!(
            "{}/api/v1/payment/callback/{name}",
            base.trim_end_matches('/')
        )),
        _ => Err(format!(
            "payment.provider {name:?} needs payment.public_url: where {name} sends its callbacks"
        )),
    }
}

fn alipay(config: &PaymentConfig) -> Result<Alipay, String> {
    let a = &config.alipay;
    Alipay::new(AlipayConfig {
        gateway: a.gateway.clone(),
        app_id: a.app_id.clone(),
        app_private_key: secret(&a.app_private_key),
        alipay_public_key: a.alipay_public_key.clone(),
        notify_url: notify_url(config, "alipay")?,
        return_url: a.return_url.clone(),
    })
    .map_err(|e| format!("payment.alipay: {e}"))
}

fn wechat(config: &PaymentConfig) -> Result<WechatPay, String> {
    let w = &config.wechat;
    WechatPay::new(WechatConfig {
        api_base: w.api_base.clone(),
        mch_id: w.mch_id.clone(),
        app_id: w.app_id.clone(),
        merchant_serial: w.merchant_serial.clone(),
        merchant_private_key: secret(&w.merchant_private_key),
        platform_public_key: w.platform_public_key.clone(),
        platform_serial: w.platform_serial.clone(),
        api_v3_key: secret(&w.api_v3_key),
        notify_url: notify_url(config, "wechat")?,
    })
    .map_err(|e| format!("payment.wechat: {e}"))
}
