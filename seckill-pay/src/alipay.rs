//! [`Alipay`]: the Alipay open platform with RSA2 keys.
//!
//! - **Pay**: `create` signs an `alipay.trade.page.pay` request and returns it as the URL the
//!   buyer is sent to; nothing is called until the buyer pays.
//! - **Callback**: Alipay POSTs a form to `notify_url`. Every field but `sign` and `sign_type`,
//!   sorted by name and joined as `k=v&…`, must verify under Alipay's public key; the
//!   notification must be for our `app_id`. Alipay stops retrying once the body is `success`
//!   ([`PaymentProvider::callback_ack`]).
//! - **Query / refund**: `alipay.trade.query` and `alipay.trade.refund`, signed with the
//!   merchant key; each response's `…_response` object must verify under Alipay's key. The refund
//!   request number is the payment id, so a second refund returns nothing more.

use crate::http::Client;
use crate::keys::{Signer, Verifier};
use crate::time::cst;
use crate::yuan;
use async_trait::async_trait;
use chrono::Utc;
use seckill_core::domain::{Payment, PaymentId};
use seckill_core::payment::{Callback, Checkout, Notification, PaymentProvider};
use seckill_core::{Entity, Error, Result, Timestamp};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// The production gateway.
pub const GATEWAY: &str = "https://openapi.alipay.com/gateway.do";
/// The sandbox gateway of Alipay's developer platform.
pub const SANDBOX_GATEWAY: &str = "https://openapi-sandbox.dl.alipaydev.com/gateway.do";

/// What [`Alipay`] needs; the keys are Alipay's key tool output (PEM or bare base64).
#[derive(Clone)]
pub struct AlipayConfig {
    /// The gateway URL ([`GATEWAY`], [`SANDBOX_GATEWAY`], or a local sandbox).
    pub gateway: String,
    /// The application's id.
    pub app_id: String,
    /// The application's RSA private key.
    pub app_private_key: String,
    /// Alipay's RSA public key, as shown in the application's settings.
    pub alipay_public_key: String,
    /// Where Alipay POSTs notifications: the server's `/api/v1/payment/callback/alipay`.
    pub notify_url: String,
    /// Where the buyer's browser returns after paying, if anywhere.
    pub return_url: Option<String>,
}

impl std::fmt::Debug for AlipayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlipayConfig")
            .field("gateway", &self.gateway)
            .field("app_id", &self.app_id)
            .field("app_private_key", &"<redacted>")
            .field("notify_url", &self.notify_url)
            .field("return_url", &self.return_url)
            .finish()
    }
}

/// The Alipay provider (name `alipay`).
#[derive(Debug)]
pub struct Alipay {
    config: AlipayConfig,
    signer: Signer,
    verifier: Verifier,
    client: Client,
}

/// The name of the provider in routes and records.
pub const NAME: &str = "alipay";

/// The sorted `k=v&…` string Alipay signs: every non-empty field except `skip`.
pub fn signing_string<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    skip: &[&str],
) -> String {
    let sorted: BTreeMap<&str, &str> = fields
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && !skip.contains(k))
        .collect();
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Parses a form body into its fields; a field given twice is refused.
pub fn form_fields(body: &[u8]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Error::invalid(format!("field {k:?} appears twice")));
        }
    }
    Ok(out)
}

/// `at` in Alipay's time format (`yyyy-MM-dd HH:mm:ss`, China Standard Time).
pub fn format_time(at: Timestamp) -> String {
    at.with_timezone(&cst())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Parses Alipay's time format back.
pub fn parse_time(s: &str) -> Result<Timestamp> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .and_then(|t| t.and_local_timezone(cst()).single())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| Error::invalid(format!("time {s:?} is not yyyy-MM-dd HH:mm:ss")))
}

/// Now, in Alipay's time format.
pub fn timestamp() -> String {
    format_time(Utc::now())
}

impl Alipay {
    /// A provider from `config`; refuses keys that do not parse.
    pub fn new(config: AlipayConfig) -> Result<Self> {
        if config.app_id.is_empty() || config.gateway.is_empty() || config.notify_url.is_empty() {
            return Err(Error::invalid(
                "alipay needs gateway, app_id and notify_url",
            ));
        }
        Ok(Self {
            signer: Signer::from_key(&config.app_private_key)?,
            verifier: Verifier::from_key(&config.alipay_public_key)?,
            client: Client::new("alipay")?,
            config,
        })
    }

    /// The signed fields of a request calling `method` with `biz_content`.
    fn request(
        &self,
        method: &str,
        biz_content: serde_json::Value,
    ) -> Result<Vec<(String, String)>> {
        let mut fields: Vec<(String, String)> = vec![
            ("app_id".into(), self.config.app_id.clone()),
            ("method".into(), method.into()),
            ("format".into(), "JSON".into()),
            ("charset".into(), "utf-8".into()),
            ("sign_type".into(), "RSA2".into()),
            ("timestamp".into(), timestamp()),
            ("version".into(), "1.0".into()),
            ("biz_content".into(), biz_content.to_string()),
        ];
        if method == "alipay.trade.page.pay" {
            fields.push(("notify_url".into(), self.config.notify_url.clone()));
            if let Some(r) = &self.config.return_url {
                fields.push(("return_url".into(), r.clone()));
            }
        }
        let content = signing_string(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &["sign"],
        );
        let sign = self.signer.sign(content.as_bytes())?;
        fields.push(("sign".into(), sign));
        Ok(fields)
    }

    /// Calls `method` and returns its verified `…_response` object.
    async fn call(
        &self,
        method: &str,
        biz_content: serde_json::Value,
    ) -> Result<serde_json::Value> {
        let fields = self.request(method, biz_content)?;
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&fields)
            .finish();
        let reply = self
            .client
            .send(
                self.client
                    .post(&self.config.gateway)
                    .header(
                        "content-type",
                        "application/x-www-form-urlencoded;charset=utf-8",
                    )
                    .body(body),
            )
            .await?;
        if reply.status >= 500 {
            return Err(Error::Unavailable {
                backend: "alipay",
                message: format!("gateway answered {}", reply.status),
            });
        }
        let key = format!("{}_response", method.replace('.', "_"));
        let parts: BTreeMap<String, &RawValue> =
            serde_json::from_str(&reply.body).map_err(|e| {
                Error::backend("alipay", format!("{method} answered {}: {e}", reply.status))
            })?;
        let raw = parts
            .get(&key)
            .ok_or_else(|| Error::backend("alipay", format!("{method}: no {key} in the answer")))?;
        let sign: String = match parts.get("sign") {
            Some(s) => serde_json::from_str(s.get())
                .map_err(|e| Error::backend("alipay", format!("{method}: sign: {e}")))?,
            // Alipay leaves some refusals unsigned (a request whose own signature failed):
            // reported as they are, never believed as a trade's state.
            None => {
                return Err(Error::backend(
                    "alipay",
                    format!("{method}: an unsigned answer: {}", raw.get()),
                ))
            }
        };
        self.verifier.verify(raw.get().as_bytes(), &sign)?;
        serde_json::from_str(raw.get()).map_err(|e| Error::backend("alipay", e.to_string()))
    }
}

fn field<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str> {
    fields
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::invalid(format!("notification without {name}")))
}

fn str_field<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    v.get(name)
        .and_then(|x| x.as_str())
        .filter(|s| !s.is_empty())
}

/// A trade's state as a [`Notification`]: `None` while the buyer has not paid.
fn notification(
    payment_id: PaymentId,
    trade_no: Option<&str>,
    total_amount: &str,
    trade_status: &str,
    was_paid: bool,
) -> Result<Option<Notification>> {
    let succeeded = match trade_status {
        "TRADE_SUCCESS" | "TRADE_FINISHED" => true,
        // Closed: unpaid and timed out, or paid and then refunded in full (it has a payment time).
        "TRADE_CLOSED" => was_paid,
        "WAIT_BUYER_PAY" => return Ok(None),
        other => return Err(Error::invalid(format!("trade_status {other:?}"))),
    };
    let Some(trade_no) = trade_no else {
        return Ok(None);
    };
    Ok(Some(Notification {
        payment_id,
        txn_id: trade_no.to_string(),
        amount: yuan::parse(total_amount)?,
        succeeded,
    }))
}

#[async_trait]
impl PaymentProvider for Alipay {
    fn name(&self) -> &str {
        NAME
    }

    async fn create(&self, payment: &Payment, pay_by: Timestamp) -> Result<Checkout> {
        let fields = self.request(
            "alipay.trade.page.pay",
            serde_json::json!({
                "out_trade_no": payment.id.to_string(),
                "total_amount": yuan::format(payment.amount),
                "subject": format!("Order {}", payment.order_id),
                "product_code": "FAST_INSTANT_TRADE_PAY",
                "time_expire": format_time(pay_by),
            }),
        )?;
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&fields)
            .finish();
        Ok(Checkout {
            provider_ref: payment.id.to_string(),
            pay_url: format!("{}?{query}", self.config.gateway),
        })
    }

    fn verify_callback(&self, cb: &Callback) -> Result<Notification> {
        let fields = form_fields(&cb.body)?;
        let sign = fields
            .get("sign")
            .ok_or_else(|| Error::Unauthenticated("notification without sign".into()))?;
        if let Some(t) = fields.get("sign_type").filter(|t| t.as_str() != "RSA2") {
            return Err(Error::Unauthenticated(format!(
                "sign_type {t:?} is not RSA2"
            )));
        }
        let content = signing_string(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &["sign", "sign_type"],
        );
        self.verifier.verify(content.as_bytes(), sign)?;
        let app_id = field(&fields, "app_id")?;
        if app_id != self.config.app_id {
            return Err(Error::invalid(format!(
                "notification for app {app_id:?}, not this one"
            )));
        }
        let payment_id: PaymentId = field(&fields, "out_trade_no")?
            .parse()
            .map_err(|_| Error::invalid("out_trade_no is not a payment id"))?;
        notification(
            payment_id,
            Some(field(&fields, "trade_no")?),
            field(&fields, "total_amount")?,
            field(&fields, "trade_status")?,
            fields.get("gmt_payment").is_some_and(|t| !t.is_empty()),
        )?
        .ok_or_else(|| Error::invalid("a notification of a trade still waiting for payment"))
    }

    fn callback_ack(&self) -> Option<&'static str> {
        Some("success")
    }

    async fn query(&self, payment: &Payment) -> Result<Option<Notification>> {
        let r = self
            .call(
                "alipay.trade.query",
                serde_json::json!({ "out_trade_no": payment.id.to_string() }),
            )
            .await?;
        match str_field(&r, "code") {
            Some("10000") => {}
            // The trade is created when the buyer opens the pay page: none yet means unpaid.
            Some("40004") if str_field(&r, "sub_code") == Some("ACQ.TRADE_NOT_EXIST") => {
                return Ok(None)
            }
            _ => return Err(Error::backend("alipay", format!("alipay.trade.query: {r}"))),
        }
        notification(
            payment.id,
            str_field(&r, "trade_no"),
            str_field(&r, "total_amount").unwrap_or_default(),
            str_field(&r, "trade_status").unwrap_or_default(),
            str_field(&r, "send_pay_date").is_some(),
        )
    }

    async fn refund(&self, payment: &Payment) -> Result<()> {
        let r = self
            .call(
                "alipay.trade.refund",
                serde_json::json!({
                    "out_trade_no": payment.id.to_string(),
                    "refund_amount": yuan::format(payment.amount),
                    "out_request_no": payment.id.to_string(),
                }),
            )
            .await?;
        match str_field(&r, "code") {
            Some("10000") => Ok(()),
            Some("40004") if str_field(&r, "sub_code") == Some("ACQ.TRADE_NOT_EXIST") => Err(
                Error::conflict(Entity::Payment, payment.id, "it was never charged"),
            ),
            _ => Err(Error::backend(
                "alipay",
                format!("alipay.trade.refund: {r}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_string_sorts_and_skips_empty_and_named_fields() {
        let s = signing_string(
            [
                ("b", "2"),
                ("sign", "x"),
                ("a", "1"),
                ("empty", ""),
                ("sign_type", "RSA2"),
            ],
            &["sign", "sign_type"],
        );
        assert_eq!(s, "a=1&b=2");
    }

    #[test]
    fn a_field_given_twice_is_refused() {
        assert!(form_fields(b"a=1&a=2").is_err());
        let f = form_fields(b"a=%E4%B8%AD&b=x+y").unwrap();
        assert_eq!(f["a"], "中");
        assert_eq!(f["b"], "x y");
    }

    #[test]
    fn times_are_written_in_china_standard_time() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-30T16:30:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_time(at), "2026-12-01 00:30:05");
        assert_eq!(parse_time("2026-12-01 00:30:05").unwrap(), at);
        assert!(parse_time("2026-12-01T00:30:05").is_err());
    }

    #[test]
    fn trade_states_map_to_outcomes() {
        let n = |status, paid| notification(PaymentId(7), Some("T1"), "12.80", status, paid);
        assert!(n("TRADE_SUCCESS", true).unwrap().unwrap().succeeded);
        assert!(n("TRADE_FINISHED", true).unwrap().unwrap().succeeded);
        assert!(!n("TRADE_CLOSED", false).unwrap().unwrap().succeeded);
        assert!(n("TRADE_CLOSED", true).unwrap().unwrap().succeeded);
        assert!(n("WAIT_BUYER_PAY", false).unwrap().is_none());
        assert!(n("SOMETHING", false).is_err());
        assert_eq!(n("TRADE_SUCCESS", true).unwrap().unwrap().amount.0, 1280);
    }
}
