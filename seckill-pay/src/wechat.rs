//! [`WechatPay`]: WeChat Pay API v3 (Native pay).
//!
//! - **Requests** carry `Authorization: WECHATPAY2-SHA256-RSA2048 …`: the merchant key signs
//!   `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`.
//! - **Answers and callbacks** are signed by WeChat Pay: `Wechatpay-Signature` over
//!   `TIMESTAMP\nNONCE\nBODY\n` must verify under the platform key named by `Wechatpay-Serial`,
//!   and the timestamp must be within five minutes (a replayed notification is refused).
//! - **Callbacks** hold the transaction encrypted with AES-256-GCM under the API v3 key; it must
//!   name our `mchid` and `appid`.
//! - **Pay**: `create` opens a Native order; its `code_url` (a QR code's content) is the pay URL.
//!   **Query** reads the transaction by `out_trade_no`; **refund** uses the payment id as
//!   `out_refund_no`, so asking twice returns the money once.

use crate::http::{Client, Reply};
use crate::keys::{Signer, Verifier};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::distributions::{Alphanumeric, DistString};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use seckill_core::domain::{Money, Payment, PaymentId};
use seckill_core::payment::{Callback, Checkout, Notification, PaymentProvider};
use seckill_core::{Entity, Error, Result, Timestamp};
use serde::Deserialize;

/// The production API.
pub const API_BASE: &str = "https://api.mch.weixin.qq.com";
/// The name of the provider in routes and records.
pub const NAME: &str = "wechat";
/// How far a signed timestamp may be from now, in seconds.
pub const MAX_SKEW_SECS: i64 = 300;

/// What [`WechatPay`] needs, as the merchant platform hands it out.
#[derive(Clone)]
pub struct WechatConfig {
    /// The API's base URL ([`API_BASE`], or a local sandbox).
    pub api_base: String,
    /// Merchant id (`mchid`).
    pub mch_id: String,
    /// The app id bound to the merchant (`appid`).
    pub app_id: String,
    /// Serial number of the merchant's API certificate.
    pub merchant_serial: String,
    /// The merchant's API private key (`apiclient_key.pem`).
    pub merchant_private_key: String,
    /// WeChat Pay's public key (or the platform certificate's public key).
    pub platform_public_key: String,
    /// Its id (`PUB_KEY_ID_…`) or certificate serial, as sent in `Wechatpay-Serial`.
    pub platform_serial: String,
    /// The API v3 key: 32 bytes that decrypt callbacks.
    pub api_v3_key: String,
    /// Where WeChat Pay POSTs notifications: the server's `/api/v1/payment/callback/wechat`.
    pub notify_url: String,
}

impl std::fmt::Debug for WechatConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatConfig")
            .field("api_base", &self.api_base)
            .field("mch_id", &self.mch_id)
            .field("app_id", &self.app_id)
            .field("merchant_serial", &self.merchant_serial)
            .field("merchant_private_key", &"<redacted>")
            .field("platform_serial", &self.platform_serial)
            .field("api_v3_key", &"<redacted>")
            .field("notify_url", &self.notify_url)
            .finish()
    }
}

/// The WeChat Pay provider (name `wechat`).
#[derive(Debug)]
pub struct WechatPay {
    config: WechatConfig,
    signer: Signer,
    verifier: Verifier,
    client: Client,
}

/// The `Authorization` header of a request: the merchant signs method, path, time, nonce and
/// body.
pub fn authorization(
    signer: &Signer,
    mch_id: &str,
    serial: &str,
    method: &str,
    path_and_query: &str,
    body: &str,
) -> Result<String> {
    let timestamp = chrono::Utc::now().timestamp();
    let nonce = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
    let signature = signer
        .sign(format!("{method}\n{path_and_query}\n{timestamp}\n{nonce}\n{body}\n").as_bytes())?;
    Ok(format!(
        "WECHATPAY2-SHA256-RSA2048 mchid=\"{mch_id}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"{serial}\""
    ))
}

/// Checks WeChat Pay's signature headers over `body`: the serial is `serial`, the timestamp is
/// within [`MAX_SKEW_SECS`] of now, and the signature verifies.
pub fn verify_signed<'a>(
    verifier: &Verifier,
    serial: &str,
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> Result<()> {
    let get =
        |name: &str| header(name).ok_or_else(|| Error::Unauthenticated(format!("missing {name}")));
    let (timestamp, nonce, signature) = (
        get("wechatpay-timestamp")?,
        get("wechatpay-nonce")?,
        get("wechatpay-signature")?,
    );
    if get("wechatpay-serial")? != serial {
        return Err(Error::Unauthenticated(
            "signed with a key this server does not know (wechatpay-serial)".into(),
        ));
    }
    let at: i64 = timestamp
        .parse()
        .map_err(|_| Error::Unauthenticated("wechatpay-timestamp is not a number".into()))?;
    if (chrono::Utc::now().timestamp() - at).abs() > MAX_SKEW_SECS {
        return Err(Error::Unauthenticated(
            "wechatpay-timestamp is more than five minutes off".into(),
        ));
    }
    let mut message = format!("{timestamp}\n{nonce}\n").into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    verifier.verify(&message, signature)
}

/// The encrypted part of a notification.
#[derive(Debug, Deserialize)]
pub struct Resource {
    /// Must be `AEAD_AES_256_GCM`.
    pub algorithm: String,
    /// base64 of ciphertext and tag.
    pub ciphertext: String,
    /// Additional authenticated data.
    #[serde(default)]
    pub associated_data: String,
    /// The 12-byte nonce.
    pub nonce: String,
}

/// The AES-256-GCM key and nonce of a resource.
fn aead(api_v3_key: &[u8], nonce: &str) -> Result<(LessSafeKey, Nonce)> {
    let key = UnboundKey::new(&AES_256_GCM, api_v3_key)
        .map_err(|_| Error::invalid("the API v3 key is not 32 bytes"))?;
    let nonce = Nonce::try_assume_unique_for_key(nonce.as_bytes())
        .map_err(|_| Error::invalid("the resource nonce is not 12 bytes"))?;
    Ok((LessSafeKey::new(key), nonce))
}

/// Decrypts a [`Resource`] with the API v3 key.
pub fn decrypt(api_v3_key: &[u8], r: &Resource) -> Result<Vec<u8>> {
    if r.algorithm != "AEAD_AES_256_GCM" {
        return Err(Error::invalid(format!(
            "resource algorithm {:?}",
            r.algorithm
        )));
    }
    let (key, nonce) = aead(api_v3_key, &r.nonce)?;
    let mut data = STANDARD
        .decode(&r.ciphertext)
        .map_err(|_| Error::invalid("the resource ciphertext is not base64"))?;
    let plain = key
        .open_in_place(nonce, Aad::from(r.associated_data.as_bytes()), &mut data)
        .map_err(|_| Error::Unauthenticated("the resource does not decrypt".into()))?;
    Ok(plain.to_vec())
}

/// Encrypts `plain` as WeChat Pay does a notification's resource (the sandbox plays it).
pub fn encrypt(
    api_v3_key: &[u8],
    nonce: &str,
    associated_data: &str,
    plain: &[u8],
) -> Result<Resource> {
    let (key, sealing_nonce) = aead(api_v3_key, nonce)?;
    let mut data = plain.to_vec();
    key.seal_in_place_append_tag(
        sealing_nonce,
        Aad::from(associated_data.as_bytes()),
        &mut data,
    )
    .map_err(|_| Error::invalid("sealing the resource"))?;
    Ok(Resource {
        algorithm: "AEAD_AES_256_GCM".into(),
        ciphertext: STANDARD.encode(data),
        associated_data: associated_data.into(),
        nonce: nonce.into(),
    })
}

#[derive(Debug, Deserialize)]
struct Event {
    event_type: String,
    resource: Resource,
}

/// A transaction as WeChat Pay describes it (the fields this provider reads).
#[derive(Debug, Deserialize)]
pub struct Transaction {
    /// Merchant id.
    pub mchid: String,
    /// App id.
    pub appid: String,
    /// Our payment id.
    pub out_trade_no: String,
    /// WeChat Pay's transaction id, once there is one.
    #[serde(default)]
    pub transaction_id: Option<String>,
    /// `SUCCESS`, `REFUND`, `NOTPAY`, `USERPAYING`, `CLOSED`, `REVOKED`, `PAYERROR`.
    pub trade_state: String,
    /// Amounts, in fen.
    pub amount: Amount,
}

/// A transaction's amount.
#[derive(Debug, Deserialize)]
pub struct Amount {
    /// The order total, in fen.
    pub total: i64,
}

impl WechatPay {
    /// A provider from `config`; refuses keys that do not parse and an API v3 key that is not
    /// 32 bytes.
    pub fn new(config: WechatConfig) -> Result<Self> {
        if config.api_v3_key.len() != 32 {
            return Err(Error::invalid("the WeChat Pay API v3 key must be 32 bytes"));
        }
        for (name, v) in [
            ("api_base", &config.api_base),
            ("mch_id", &config.mch_id),
            ("app_id", &config.app_id),
            ("merchant_serial", &config.merchant_serial),
            ("platform_serial", &config.platform_serial),
            ("notify_url", &config.notify_url),
        ] {
            if v.is_empty() {
                return Err(Error::invalid(format!("wechat needs {name}")));
            }
        }
        Ok(Self {
            signer: Signer::from_key(&config.merchant_private_key)?,
            verifier: Verifier::from_key(&config.platform_public_key)?,
            client: Client::new("wechat")?,
            config,
        })
    }

    /// The transaction's state as a [`Notification`]: `None` while the buyer has not paid.
    fn notification(&self, tx: &Transaction) -> Result<Option<Notification>> {
        if tx.mchid != self.config.mch_id || tx.appid != self.config.app_id {
            return Err(Error::invalid(format!(
                "transaction of merchant {:?} / app {:?}, not this one",
                tx.mchid, tx.appid
            )));
        }
        let payment_id: PaymentId = tx
            .out_trade_no
            .parse()
            .map_err(|_| Error::invalid("out_trade_no is not a payment id"))?;
        let succeeded = match tx.trade_state.as_str() {
            // REFUND: paid, then a refund was asked for.
            "SUCCESS" | "REFUND" => true,
            "CLOSED" | "REVOKED" | "PAYERROR" => false,
            "NOTPAY" | "USERPAYING" => return Ok(None),
            other => return Err(Error::invalid(format!("trade_state {other:?}"))),
        };
        let txn_id = match (&tx.transaction_id, succeeded) {
            (Some(t), _) if !t.is_empty() => t.clone(),
            (_, true) => return Err(Error::invalid("a paid transaction without transaction_id")),
            // A trade closed unpaid has no transaction: name it after the payment.
            (_, false) => format!("wechat-closed-{payment_id}"),
        };
        Ok(Some(Notification {
            payment_id,
            txn_id,
            amount: Money(tx.amount.total),
            succeeded,
        }))
    }

    /// Sends a signed request; a 2xx answer must carry WeChat Pay's signature.
    async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Reply> {
        let url = format!(
            "{}{path_and_query}",
            self.config.api_base.trim_end_matches('/')
        );
        let signed_path = reqwest::Url::parse(&url)
            .map(|u| match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_string(),
            })
            .map_err(|e| Error::invalid(format!("wechat api_base: {e}")))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = authorization(
            &self.signer,
            &self.config.mch_id,
            &self.config.merchant_serial,
            method,
            &signed_path,
            &body,
        )?;
        let request = if method == "GET" {
            self.client.get(&url)
        } else {
            self.client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
        };
        let reply = self
            .client
            .send(
                request
                    .header("authorization", auth)
                    .header("accept", "application/json")
                    .header(
                        "user-agent",
                        concat!("seckill-pay/", env!("CARGO_PKG_VERSION")),
                    ),
            )
            .await?;
        if reply.status >= 500 {
            return Err(Error::Unavailable {
                backend: "wechat",
                message: format!("{path_and_query} answered {}", reply.status),
            });
        }
        if (200..300).contains(&reply.status) {
            verify_signed(
                &self.verifier,
                &self.config.platform_serial,
                |h| reply.header(h),
                reply.body.as_bytes(),
            )?;
        }
        Ok(reply)
    }
}

fn error_code(reply: &Reply) -> String {
    serde_json::from_str::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_string))
        .unwrap_or_default()
}

fn unexpected(what: &str, reply: &Reply) -> Error {
    Error::backend(
        "wechat",
        format!("{what} answered {}: {}", reply.status, reply.body),
    )
}

#[async_trait]
impl PaymentProvider for WechatPay {
    fn name(&self) -> &str {
        NAME
    }

    async fn create(&self, payment: &Payment, pay_by: Timestamp) -> Result<Checkout> {
        let reply = self
            .call(
                "POST",
                "/v3/pay/transactions/native",
                Some(serde_json::json!({
                    "appid": self.config.app_id,
                    "mchid": self.config.mch_id,
                    "description": format!("Order {}", payment.order_id),
                    "out_trade_no": payment.id.to_string(),
                    "notify_url": self.config.notify_url,
                    "time_expire": pay_by
                        .with_timezone(&crate::time::cst())
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                    "amount": { "total": payment.amount.0, "currency": "CNY" },
                })),
            )
            .await?;
        if reply.status != 200 {
            return Err(match error_code(&reply).as_str() {
                "ORDERPAID" => Error::conflict(Entity::Payment, payment.id, "it is already paid"),
                _ => unexpected("native pay", &reply),
            });
        }
        let code_url = serde_json::from_str::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| {
                v.get("code_url")
                    .and_then(|c| c.as_str())
                    .map(str::to_string)
            })
            .ok_or_else(|| unexpected("native pay", &reply))?;
        Ok(Checkout {
            provider_ref: payment.id.to_string(),
            pay_url: code_url,
        })
    }

    fn verify_callback(&self, cb: &Callback) -> Result<Notification> {
        verify_signed(
            &self.verifier,
            &self.config.platform_serial,
            |h| cb.headers.get(h).map(String::as_str),
            &cb.body,
        )?;
        let event: Event = serde_json::from_slice(&cb.body)
            .map_err(|e| Error::invalid(format!("notification: {e}")))?;
        if event.event_type != "TRANSACTION.SUCCESS" {
            return Err(Error::invalid(format!(
                "event_type {:?} is not a payment",
                event.event_type
            )));
        }
        let plain = decrypt(self.config.api_v3_key.as_bytes(), &event.resource)?;
        let tx: Transaction = serde_json::from_slice(&plain)
            .map_err(|e| Error::invalid(format!("transaction: {e}")))?;
        self.notification(&tx)?
            .ok_or_else(|| Error::invalid("a notification of an unpaid transaction"))
    }

    async fn query(&self, payment: &Payment) -> Result<Option<Notification>> {
        let reply = self
            .call(
                "GET",
                &format!(
                    "/v3/pay/transactions/out-trade-no/{}?mchid={}",
                    payment.id, self.config.mch_id
                ),
                None,
            )
            .await?;
        match (reply.status, error_code(&reply).as_str()) {
            (200, _) => {}
            (404, "ORDER_NOT_EXIST") => return Ok(None),
            _ => return Err(unexpected("transaction query", &reply)),
        }
        let tx: Transaction = serde_json::from_str(&reply.body)
            .map_err(|e| Error::backend("wechat", format!("transaction query: {e}")))?;
        self.notification(&tx)
    }

    async fn refund(&self, payment: &Payment) -> Result<()> {
        let reply = self
            .call(
                "POST",
                "/v3/refund/domestic/refunds",
                Some(serde_json::json!({
                    "out_trade_no": payment.id.to_string(),
                    "out_refund_no": payment.id.to_string(),
                    "amount": {
                        "refund": payment.amount.0,
                        "total": payment.amount.0,
                        "currency": "CNY",
                    },
                })),
            )
            .await?;
        let status = serde_json::from_str::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_string));
        match (reply.status, status.as_deref(), error_code(&reply).as_str()) {
            // PROCESSING: accepted, the money follows.
            (200, Some("SUCCESS" | "PROCESSING"), _) => Ok(()),
            (404, _, "RESOURCE_NOT_EXISTS" | "ORDER_NOT_EXIST") => Err(Error::conflict(
                Entity::Payment,
                payment.id,
                "it was never charged",
            )),
            _ => Err(unexpected("refund", &reply)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::{SecureRandom, SystemRandom};

    #[test]
    fn a_resource_decrypts_only_with_its_key_and_data() {
        let mut key = [0u8; 32];
        SystemRandom::new().fill(&mut key).unwrap();
        let r = encrypt(&key, "0123456789ab", "transaction", b"{\"a\":1}").unwrap();
        assert_eq!(decrypt(&key, &r).unwrap(), b"{\"a\":1}");
        let mut other = key;
        other[0] ^= 1;
        assert!(matches!(
            decrypt(&other, &r),
            Err(Error::Unauthenticated(_))
        ));
        let tampered = Resource {
            associated_data: "refund".into(),
            ..r
        };
        assert!(decrypt(&key, &tampered).is_err());
        assert!(decrypt(&key[..16], &tampered).is_err());
    }
}
