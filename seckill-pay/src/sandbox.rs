//! [`Sandbox`]: a local HTTP server that plays Alipay's gateway and WeChat Pay's API v3, with
//! their signatures, WeChat Pay's encrypted notifications and a ledger of the money moved. It
//! checks every merchant signature the way the providers do, so a provider that signs wrongly
//! fails against it.
//!
//! The buyer's side is [`Sandbox::pay`]: open the pay URL a provider returned, pay, and get the
//! signed notification the provider would POST to the merchant's `notify_url`.

use crate::alipay::{form_fields, signing_string, AlipayConfig};
use crate::keys::{Signer, Verifier};
use crate::wechat::WechatConfig;
use crate::yuan;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use parking_lot::Mutex;
use seckill_core::domain::{Money, PaymentId};
use seckill_core::payment::{Callback, MockLedger};
use seckill_core::{Entity, Error, Result, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The serial the sandbox's WeChat Pay signs under (`Wechatpay-Serial`).
pub const PLATFORM_SERIAL: &str = "PUB_KEY_ID_SANDBOX";

/// Keys generated for tests and demos (`seckill-pay/demo-keys/`). They protect nothing: never
/// configure them against a real provider.
pub mod demo_keys {
    /// The merchant's RSA private key (PKCS#8 PEM).
    pub const MERCHANT_PRIVATE: &str = include_str!("../demo-keys/merchant.key.pem");
    /// The merchant's RSA public key.
    pub const MERCHANT_PUBLIC: &str = include_str!("../demo-keys/merchant.pub.pem");
    /// The sandbox provider's RSA private key.
    pub const PROVIDER_PRIVATE: &str = include_str!("../demo-keys/provider.key.pem");
    /// The sandbox provider's RSA public key.
    pub const PROVIDER_PUBLIC: &str = include_str!("../demo-keys/provider.pub.pem");
    /// A WeChat Pay API v3 key.
    pub const API_V3: &str = "0123456789abcdef0123456789abcdef";
}

impl SandboxKeys {
    /// The [`demo_keys`].
    pub fn demo() -> Self {
        Self {
            merchant_public_key: demo_keys::MERCHANT_PUBLIC.into(),
            provider_private_key: demo_keys::PROVIDER_PRIVATE.into(),
            api_v3_key: demo_keys::API_V3.into(),
        }
    }
}

/// The sandbox's keys.
#[derive(Clone)]
pub struct SandboxKeys {
    /// The merchant's public key: checks the merchant's requests and pay URLs.
    pub merchant_public_key: String,
    /// The provider's private key: signs answers and notifications (Alipay's and WeChat Pay's).
    pub provider_private_key: String,
    /// The WeChat Pay API v3 key (32 bytes) that encrypts notifications.
    pub api_v3_key: String,
}

#[derive(Debug, Clone)]
struct Trade {
    amount: Money,
    app_id: String,
    mch_id: String,
    paid: bool,
    refunded: bool,
    txn_id: String,
    /// The merchant's `time_expire`: unpaid by then, the trade closes.
    expires: Option<Timestamp>,
}

impl Trade {
    fn closed(&self) -> bool {
        !self.paid && self.expires.is_some_and(|e| chrono::Utc::now() > e)
    }
}

struct Inner {
    merchant: Verifier,
    provider: Signer,
    api_v3_key: Vec<u8>,
    trades: Mutex<HashMap<String, Trade>>,
    ledger: Mutex<MockLedger>,
}

/// A running sandbox; stopped when dropped.
pub struct Sandbox {
    inner: Arc<Inner>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("addr", &self.addr).finish()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback listener on the first free port from `first` (up to 100 tried), so tests keep
/// their servers below the ephemeral range.
pub async fn loopback_listener(first: u16) -> std::io::Result<TcpListener> {
    let mut last = None;
    for port in first..first.saturating_add(100) {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port to try")))
}

impl Sandbox {
    /// Serves both gateways on `listener`.
    pub async fn start(listener: TcpListener, keys: SandboxKeys) -> Result<Self> {
        let inner = Arc::new(Inner {
            merchant: Verifier::from_key(&keys.merchant_public_key)?,
            provider: Signer::from_key(&keys.provider_private_key)?,
            api_v3_key: keys.api_v3_key.into_bytes(),
            trades: Mutex::new(HashMap::new()),
            ledger: Mutex::new(MockLedger::default()),
        });
        let addr = listener
            .local_addr()
            .map_err(|e| Error::backend("sandbox", e))?;
        let app = Router::new()
            .route("/gateway.do", post(alipay_gateway))
            .route("/v3/pay/transactions/native", post(wechat_native))
            .route("/v3/pay/transactions/out-trade-no/{id}", get(wechat_query))
            .route("/v3/refund/domestic/refunds", post(wechat_refund))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { inner, addr, task })
    }

    /// `http://127.0.0.1:port`: WeChat Pay's `api_base`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Alipay's gateway URL.
    pub fn alipay_gateway(&self) -> String {
        format!("{}/gateway.do", self.base_url())
    }

    /// An Alipay merchant of this sandbox with the [`demo_keys`], called back at `notify_url`.
    pub fn alipay_config(&self, notify_url: &str) -> AlipayConfig {
        AlipayConfig {
            gateway: self.alipay_gateway(),
            app_id: "2021000000000001".into(),
            app_private_key: demo_keys::MERCHANT_PRIVATE.into(),
            alipay_public_key: demo_keys::PROVIDER_PUBLIC.into(),
            notify_url: notify_url.into(),
            return_url: None,
        }
    }

    /// A WeChat Pay merchant of this sandbox with the [`demo_keys`], called back at
    /// `notify_url`.
    pub fn wechat_config(&self, notify_url: &str) -> WechatConfig {
        WechatConfig {
            api_base: self.base_url(),
            mch_id: "1900000001".into(),
            app_id: "wx0000000000000001".into(),
            merchant_serial: "5157F09EFDC096DE15EBE81A47057A7232F1B8E1".into(),
            merchant_private_key: demo_keys::MERCHANT_PRIVATE.into(),
            platform_public_key: demo_keys::PROVIDER_PUBLIC.into(),
            platform_serial: PLATFORM_SERIAL.into(),
            api_v3_key: demo_keys::API_V3.into(),
            notify_url: notify_url.into(),
        }
    }

    /// Money moved so far, per payment.
    pub fn ledger(&self) -> MockLedger {
        self.inner.ledger.lock().clone()
    }

    /// The buyer opens `pay_url` (an Alipay page-pay URL or a WeChat Pay `code_url`) and pays:
    /// the money is taken once (paying again changes nothing) and the signed notification the
    /// provider sends to `notify_url` is returned. A pay URL the merchant did not sign is refused.
    pub fn pay(&self, pay_url: &str) -> Result<Callback> {
        match pay_url.strip_prefix("weixin://wxpay/bizpayurl?pr=") {
            Some(out_trade_no) => self.inner.pay_wechat(out_trade_no),
            None => self.inner.pay_alipay(pay_url),
        }
    }
}

impl Inner {
    fn charge(&self, out_trade_no: &str, trade: &mut Trade) -> Result<()> {
        if trade.closed() {
            return Err(Error::conflict(
                Entity::Other,
                format!("trade {out_trade_no}"),
                "it closed at its time_expire",
            ));
        }
        if !trade.paid {
            trade.paid = true;
            if let Ok(id) = out_trade_no.parse::<PaymentId>() {
                self.ledger.lock().charged.entry(id).or_insert(trade.amount);
            }
        }
        Ok(())
    }

    fn refund(&self, out_trade_no: &str, trade: &mut Trade) {
        if !trade.refunded {
            trade.refunded = true;
            if let Ok(id) = out_trade_no.parse::<PaymentId>() {
                self.ledger
                    .lock()
                    .refunded
                    .entry(id)
                    .or_insert(trade.amount);
            }
        }
    }

    fn pay_alipay(&self, pay_url: &str) -> Result<Callback> {
        let query = pay_url
            .split_once('?')
            .map(|(_, q)| q)
            .ok_or_else(|| Error::invalid("the pay URL has no query"))?;
        let fields = form_fields(query.as_bytes())?;
        self.check_alipay_request(&fields)?;
        if fields.get("method").map(String::as_str) != Some("alipay.trade.page.pay") {
            return Err(Error::invalid("not a page-pay URL"));
        }
        let biz: serde_json::Value =
            serde_json::from_str(fields.get("biz_content").map_or("", String::as_str))
                .map_err(|e| Error::invalid(format!("biz_content: {e}")))?;
        let out_trade_no = biz["out_trade_no"].as_str().unwrap_or_default().to_string();
        let amount = yuan::parse(biz["total_amount"].as_str().unwrap_or_default())?;
        let app_id = fields.get("app_id").cloned().unwrap_or_default();
        let expires = match biz["time_expire"].as_str() {
            Some(t) => Some(crate::alipay::parse_time(t)?),
            None => None,
        };
        let trade = {
            let mut trades = self.trades.lock();
            let n = trades.len() + 1;
            let trade = trades.entry(out_trade_no.clone()).or_insert_with(|| Trade {
                amount,
                app_id: app_id.clone(),
                mch_id: String::new(),
                paid: false,
                refunded: false,
                txn_id: format!("2026{n:024}"),
                expires,
            });
            self.charge(&out_trade_no, trade)?;
            trade.clone()
        };
        let now = crate::alipay::timestamp();
        let mut notify: Vec<(&str, String)> = vec![
            ("notify_time", now.clone()),
            ("notify_type", "trade_status_sync".into()),
            ("notify_id", format!("sandbox-{}", trade.txn_id)),
            ("app_id", trade.app_id.clone()),
            ("charset", "utf-8".into()),
            ("version", "1.0".into()),
            ("sign_type", "RSA2".into()),
            ("trade_no", trade.txn_id.clone()),
            ("out_trade_no", out_trade_no),
            ("trade_status", "TRADE_SUCCESS".into()),
            ("total_amount", yuan::format(trade.amount)),
            ("receipt_amount", yuan::format(trade.amount)),
            (
                "subject",
                biz["subject"].as_str().unwrap_or_default().into(),
            ),
            ("gmt_create", now.clone()),
            ("gmt_payment", now),
        ];
        let content = signing_string(
            notify.iter().map(|(k, v)| (*k, v.as_str())),
            &["sign", "sign_type"],
        );
        notify.push(("sign", self.provider.sign(content.as_bytes())?));
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&notify)
            .finish();
        let mut headers = BTreeMap::new();
        headers.insert(
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        );
        Ok(Callback {
            headers,
            body: body.into_bytes(),
        })
    }

    fn check_alipay_request(&self, fields: &BTreeMap<String, String>) -> Result<()> {
        let sign = fields
            .get("sign")
            .ok_or_else(|| Error::Unauthenticated("unsigned request".into()))?;
        let content = signing_string(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &["sign"],
        );
        self.merchant.verify(content.as_bytes(), sign)
    }

    fn pay_wechat(&self, out_trade_no: &str) -> Result<Callback> {
        let trade = {
            let mut trades = self.trades.lock();
            let trade = trades.get_mut(out_trade_no).ok_or_else(|| {
                Error::not_found(Entity::Other, format!("Native order {out_trade_no}"))
            })?;
            self.charge(out_trade_no, trade)?;
            trade.clone()
        };
        let tx = wechat_transaction(out_trade_no, &trade);
        let r = crate::wechat::encrypt(
            &self.api_v3_key,
            "sandboxnonce",
            "transaction",
            tx.to_string().as_bytes(),
        )?;
        let body = serde_json::json!({
            "id": format!("EV-{}", trade.txn_id),
            "create_time": chrono::Utc::now().to_rfc3339(),
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": r.algorithm,
                "ciphertext": r.ciphertext,
                "associated_data": r.associated_data,
                "nonce": r.nonce,
            }
        })
        .to_string();
        let headers = self
            .wechat_signature(&body)?
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain([("content-type".to_string(), "application/json".to_string())])
            .collect();
        Ok(Callback {
            headers,
            body: body.into_bytes(),
        })
    }

    fn wechat_signature(&self, body: &str) -> Result<Vec<(&'static str, String)>> {
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let nonce = format!("{:032x}", rand::random::<u128>());
        let signature = self
            .provider
            .sign(format!("{timestamp}\n{nonce}\n{body}\n").as_bytes())?;
        Ok(vec![
            ("wechatpay-timestamp", timestamp),
            ("wechatpay-nonce", nonce),
            ("wechatpay-signature", signature),
            ("wechatpay-serial", PLATFORM_SERIAL.to_string()),
        ])
    }

    fn wechat_reply(&self, status: StatusCode, body: serde_json::Value) -> Response {
        let body = body.to_string();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().expect("static"));
        if let Ok(signed) = self.wechat_signature(&body) {
            for (k, v) in signed {
                if let Ok(v) = v.parse() {
                    headers.insert(k, v);
                }
            }
        }
        (status, headers, body).into_response()
    }

    /// Checks the merchant's `Authorization` of a WeChat Pay request.
    fn check_wechat_request(
        &self,
        headers: &HeaderMap,
        method: &str,
        path_and_query: &str,
        body: &str,
    ) -> Result<String> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("WECHATPAY2-SHA256-RSA2048 "))
            .ok_or_else(|| {
                Error::Unauthenticated("no WECHATPAY2-SHA256-RSA2048 authorization".into())
            })?;
        let params: HashMap<&str, &str> = auth
            .split(',')
            .filter_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                Some((k, v.trim_matches('"')))
            })
            .collect();
        let p = |k: &str| {
            params
                .get(k)
                .copied()
                .ok_or_else(|| Error::Unauthenticated(format!("authorization without {k}")))
        };
        let message = format!(
            "{method}\n{path_and_query}\n{}\n{}\n{body}\n",
            p("timestamp")?,
            p("nonce_str")?
        );
        p("serial_no")?;
        self.merchant.verify(message.as_bytes(), p("signature")?)?;
        Ok(p("mchid")?.to_string())
    }
}

fn wechat_transaction(out_trade_no: &str, t: &Trade) -> serde_json::Value {
    let state = match (t.paid, t.refunded) {
        (_, true) => "REFUND",
        (true, false) => "SUCCESS",
        (false, false) if t.closed() => "CLOSED",
        (false, false) => "NOTPAY",
    };
    let mut tx = serde_json::json!({
        "appid": t.app_id,
        "mchid": t.mch_id,
        "out_trade_no": out_trade_no,
        "trade_type": "NATIVE",
        "trade_state": state,
        "amount": { "total": t.amount.0, "currency": "CNY" },
    });
    if t.paid {
        tx["transaction_id"] = t.txn_id.clone().into();
    }
    tx
}

fn alipay_reply(inner: &Inner, method: &str, response: serde_json::Value) -> Response {
    let text = response.to_string();
    let sign = inner.provider.sign(text.as_bytes()).unwrap_or_default();
    let key = format!("{}_response", method.replace('.', "_"));
    let body = format!(
        "{{{}:{text},\"sign\":{}}}",
        serde_json::Value::from(key),
        serde_json::Value::from(sign)
    );
    (
        StatusCode::OK,
        [("content-type", "application/json;charset=utf-8")],
        body,
    )
        .into_response()
}

async fn alipay_gateway(State(inner): State<Arc<Inner>>, body: String) -> Response {
    let Ok(fields) = form_fields(body.as_bytes()) else {
        return (StatusCode::BAD_REQUEST, "bad form").into_response();
    };
    let method = fields.get("method").cloned().unwrap_or_default();
    if inner.check_alipay_request(&fields).is_err() {
        // As Alipay does, a request whose signature fails gets an unsigned refusal.
        let body = serde_json::json!({
            format!("{}_response", method.replace('.', "_")): {
                "code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature"
            }
        });
        return (StatusCode::OK, body.to_string()).into_response();
    }
    let biz: serde_json::Value =
        serde_json::from_str(fields.get("biz_content").map_or("{}", String::as_str))
            .unwrap_or_default();
    let out_trade_no = biz["out_trade_no"].as_str().unwrap_or_default().to_string();
    let not_exist = serde_json::json!({"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST"});
    let mut trades = inner.trades.lock();
    let trade = trades.get_mut(&out_trade_no);
    let response = match (method.as_str(), trade) {
        ("alipay.trade.query", Some(t)) => {
            let status = match (t.paid, t.refunded) {
                (_, true) => "TRADE_CLOSED",
                (true, false) => "TRADE_SUCCESS",
                (false, false) if t.closed() => "TRADE_CLOSED",
                (false, false) => "WAIT_BUYER_PAY",
            };
            let mut r = serde_json::json!({
                "code": "10000", "msg": "Success", "trade_no": t.txn_id,
                "out_trade_no": out_trade_no, "trade_status": status,
                "total_amount": yuan::format(t.amount),
            });
            if t.paid {
                r["send_pay_date"] = crate::alipay::timestamp().into();
            }
            r
        }
        ("alipay.trade.refund", Some(t)) if t.paid => {
            let asked = yuan::parse(biz["refund_amount"].as_str().unwrap_or_default());
            if asked.ok() != Some(t.amount) {
                serde_json::json!({"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"})
            } else {
                let fund_change = if t.refunded { "N" } else { "Y" };
                inner.refund(&out_trade_no, t);
                serde_json::json!({
                    "code": "10000", "msg": "Success", "trade_no": t.txn_id,
                    "out_trade_no": out_trade_no, "fund_change": fund_change,
                    "refund_fee": yuan::format(t.amount),
                })
            }
        }
        ("alipay.trade.query" | "alipay.trade.refund", _) => not_exist,
        _ => {
            serde_json::json!({"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.METHOD_NOT_SUPPORTED"})
        }
    };
    drop(trades);
    alipay_reply(&inner, &method, response)
}

fn sign_error(inner: &Inner, e: Error) -> Response {
    inner.wechat_reply(
        StatusCode::UNAUTHORIZED,
        serde_json::json!({"code": "SIGN_ERROR", "message": e.to_string()}),
    )
}

async fn wechat_native(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mch_id =
        match inner.check_wechat_request(&headers, "POST", "/v3/pay/transactions/native", &body) {
            Ok(m) => m,
            Err(e) => return sign_error(&inner, e),
        };
    let req: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let expires = req["time_expire"]
        .as_str()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&chrono::Utc)));
    let (Some(out_trade_no), Some(total), Some(app_id), None | Some(Ok(_))) = (
        req["out_trade_no"].as_str(),
        req["amount"]["total"].as_i64(),
        req["appid"].as_str(),
        &expires,
    ) else {
        return inner.wechat_reply(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": "PARAM_ERROR", "message": "out_trade_no, appid and amount.total are required; time_expire is RFC 3339"}),
        );
    };
    let mut trades = inner.trades.lock();
    let n = trades.len() + 1;
    let trade = trades
        .entry(out_trade_no.to_string())
        .or_insert_with(|| Trade {
            amount: Money(total),
            app_id: app_id.to_string(),
            mch_id,
            paid: false,
            refunded: false,
            txn_id: format!("4200{n:024}"),
            expires: expires.and_then(Result::ok),
        });
    if trade.paid {
        drop(trades);
        return inner.wechat_reply(
            StatusCode::FORBIDDEN,
            serde_json::json!({"code": "ORDERPAID", "message": "该订单已支付"}),
        );
    }
    drop(trades);
    inner.wechat_reply(
        StatusCode::OK,
        serde_json::json!({"code_url": format!("weixin://wxpay/bizpayurl?pr={out_trade_no}")}),
    )
}

async fn wechat_query(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = format!(
        "/v3/pay/transactions/out-trade-no/{id}?mchid={}",
        q.get("mchid").map_or("", String::as_str)
    );
    if let Err(e) = inner.check_wechat_request(&headers, "GET", &path, "") {
        return sign_error(&inner, e);
    }
    let trade = inner.trades.lock().get(&id).cloned();
    match trade {
        Some(t) => inner.wechat_reply(StatusCode::OK, wechat_transaction(&id, &t)),
        None => inner.wechat_reply(
            StatusCode::NOT_FOUND,
            serde_json::json!({"code": "ORDER_NOT_EXIST", "message": "订单不存在"}),
        ),
    }
}

async fn wechat_refund(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Err(e) =
        inner.check_wechat_request(&headers, "POST", "/v3/refund/domestic/refunds", &body)
    {
        return sign_error(&inner, e);
    }
    let req: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let out_trade_no = req["out_trade_no"].as_str().unwrap_or_default().to_string();
    let mut trades = inner.trades.lock();
    let Some(t) = trades.get_mut(&out_trade_no).filter(|t| t.paid) else {
        drop(trades);
        return inner.wechat_reply(
            StatusCode::NOT_FOUND,
            serde_json::json!({"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"}),
        );
    };
    if req["amount"]["refund"].as_i64() != Some(t.amount.0) {
        drop(trades);
        return inner.wechat_reply(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": "PARAM_ERROR", "message": "the sandbox refunds whole payments"}),
        );
    }
    inner.refund(&out_trade_no, t);
    let txn = t.txn_id.clone();
    drop(trades);
    inner.wechat_reply(
        StatusCode::OK,
        serde_json::json!({
            "refund_id": format!("5030{txn}"),
            "out_refund_no": req["out_refund_no"],
            "transaction_id": txn,
            "out_trade_no": out_trade_no,
            "status": "SUCCESS",
        }),
    )
}
