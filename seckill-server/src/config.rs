//! Configuration: defaults < TOML file < `SECKILL_*` environment variables.
//!
//! Nested keys use `__` in the environment: `SECKILL_BACKENDS__STOCK=redis://…`,
//! `SECKILL_AUTH__JWT_SECRET=…`. Variables starting with `SECKILL_TEST_` (the test suite's
//! service URLs) and `SECKILL_CONFIG` (the file's path) are not configuration keys.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use seckill_core::registry::BackendUrls;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

/// A secret string: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl Secret {
    /// The secret's value, to hand to the component that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// gRPC listen address (processes with the `api` role); unset: no gRPC.
    pub grpc_listen: Option<SocketAddr>,
    /// Comma-separated roles (`api,relay,order-worker,timeout-worker,reconciler` or `all`).
    pub roles: String,
    /// Seed a demo product, a live demo activity and an admin user at start.
    pub demo: bool,
    /// One URL per backend kind; `memory://` everywhere by default.
    pub backends: BackendUrls,
    /// Tokens.
    pub auth: AuthConfig,
    /// The sale pipeline.
    pub sale: SaleConfig,
    /// Payments.
    pub payment: PaymentConfig,
    /// The bootstrap admin account.
    pub admin: AdminConfig,
    /// Rate limits and verification codes.
    pub limits: LimitsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Tracing export (OpenTelemetry).
    pub telemetry: TelemetryConfig,
    /// Deadlines, load shedding, body size and CORS of the HTTP API.
    pub http: HttpConfig,
    /// Circuit breakers on the stock backend, the broker, the database, the session store and
    /// each payment provider.
    pub breakers: seckill_core::breaker::BreakersConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            grpc_listen: Some("127.0.0.1:9090".parse().expect("valid address")),
            roles: "all".into(),
            demo: true,
            backends: BackendUrls::default(),
            auth: AuthConfig::default(),
            sale: SaleConfig::default(),
            payment: PaymentConfig::default(),
            admin: AdminConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
            http: HttpConfig::default(),
            breakers: seckill_core::breaker::BreakersConfig::default(),
        }
    }
}

/// JWT settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 key. Unset: a random key per process (tokens die with it, and several API
    /// processes must share one, so set it whenever more than one process serves the API).
    pub jwt_secret: Option<Secret>,
    /// `iss` claim.
    pub issuer: String,
    /// `aud` claim.
    pub audience: String,
    /// Token lifetime in seconds.
    pub token_ttl_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            issuer: "seckill-rs".into(),
            audience: "seckill-api".into(),
            token_ttl_secs: 24 * 3600,
        }
    }
}

/// Sale pipeline settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SaleConfig {
    /// How long an order waits for payment.
    pub payment_timeout_secs: u64,
    /// Buy attempts per user per second (0: unlimited).
    pub buy_rate_per_sec: u32,
    /// Burst of buy attempts per user.
    pub buy_burst: u32,
    /// Batch size of relay and workers.
    pub batch_size: usize,
    /// Snowflake worker id of this process (0..=1023). Unset: leased from the lock backend at
    /// start (and renewed), so two processes never share one.
    pub worker_id: Option<u16>,
    /// Seconds between reconciliation passes.
    pub reconcile_every_secs: u64,
    /// The kill switch: activities whose buys are refused now (code 3011), by id. Reloadable:
    /// set it live with `PUT /api/v1/admin/config` or `seckill config set`.
    pub paused_activities: Vec<seckill_core::domain::ActivityId>,
    /// The key real-name holders' document numbers are hashed under (HMAC-SHA256, at least 16
    /// bytes; docs/adr/0021): the same in every process of a deployment, and kept, since a
    /// document is "the same" only under one key. Unset: with the in-memory database a random
    /// key (one process, nothing kept); with any other, real-name sessions are refused (409)
    /// until it is set, since each process would hash a document differently.
    pub document_key: Option<Secret>,
}

impl Default for SaleConfig {
    fn default() -> Self {
        Self {
            payment_timeout_secs: 15 * 60,
            buy_rate_per_sec: 20,
            buy_burst: 20,
            batch_size: 256,
            worker_id: None,
            reconcile_every_secs: 30,
            paused_activities: Vec::new(),
            document_key: None,
        }
    }
}

/// Payment settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentConfig {
    /// The providers buyers pay through, comma-separated, the default first: `mock`,
    /// `alipay`, `wechat` (`alipay,wechat` offers both).
    pub provider: String,
    /// HMAC key of the mock provider's callbacks. Unset: random per process.
    pub mock_secret: Option<Secret>,
    /// The server's public base URL (`https://tickets.example.com`): providers send their
    /// callbacks to `{public_url}/api/v1/payment/callback/{provider}`. Required by `alipay` and
    /// `wechat`.
    pub public_url: Option<String>,
    /// The `alipay` provider.
    pub alipay: AlipaySettings,
    /// The `wechat` provider.
    pub wechat: WechatSettings,
    /// Providers switched off for new payments (their callbacks, queries and refunds still
    /// work, so no payment already made is lost). Reloadable.
    pub disabled: Vec<String>,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        Self {
            provider: "mock".into(),
            mock_secret: None,
            public_url: None,
            alipay: AlipaySettings::default(),
            wechat: WechatSettings::default(),
            disabled: Vec::new(),
        }
    }
}

/// Alipay's settings (keys in PEM or as the bare base64 of Alipay's key tool).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlipaySettings {
    /// The gateway: production by default; Alipay's sandbox is
    /// `https://openapi-sandbox.dl.alipaydev.com/gateway.do`.
    pub gateway: String,
    /// The application's id.
    pub app_id: String,
    /// The application's RSA private key.
    pub app_private_key: Option<Secret>,
    /// Alipay's RSA public key.
    pub alipay_public_key: String,
    /// Where the buyer's browser returns after paying.
    pub return_url: Option<String>,
}

impl Default for AlipaySettings {
    fn default() -> Self {
        Self {
            gateway: "https://openapi.alipay.com/gateway.do".into(),
            app_id: String::new(),
            app_private_key: None,
            alipay_public_key: String::new(),
            return_url: None,
        }
    }
}

/// WeChat Pay's (API v3) settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WechatSettings {
    /// The API's base URL.
    pub api_base: String,
    /// Merchant id.
    pub mch_id: String,
    /// App id bound to the merchant.
    pub app_id: String,
    /// Serial number of the merchant's API certificate.
    pub merchant_serial: String,
    /// The merchant's API private key (`apiclient_key.pem`).
    pub merchant_private_key: Option<Secret>,
    /// WeChat Pay's public key.
    pub platform_public_key: String,
    /// Its id (`PUB_KEY_ID_…`) or the platform certificate's serial.
    pub platform_serial: String,
    /// The API v3 key (32 bytes).
    pub api_v3_key: Option<Secret>,
}

impl Default for WechatSettings {
    fn default() -> Self {
        Self {
            api_base: "https://api.mch.weixin.qq.com".into(),
            mch_id: String::new(),
            app_id: String::new(),
            merchant_serial: String::new(),
            merchant_private_key: None,
            platform_public_key: String::new(),
            platform_serial: String::new(),
            api_v3_key: None,
        }
    }
}

/// The bootstrap admin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Username.
    pub username: String,
    /// Password. Unset: no admin is created (the demo creates `admin`/`admin123`).
    pub password: Option<Secret>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            username: "admin".into(),
            password: None,
        }
    }
}

/// A rate limit: `rate` requests per `per_secs` seconds, in bursts of up to `burst`; a rate
/// of 0 turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Requests per period (0: no limit).
    pub rate: u32,
    /// The period in seconds.
    pub per_secs: u64,
    /// Most requests at once after a quiet spell.
    pub burst: u32,
}

impl RateConfig {
    const fn new(rate: u32, per_secs: u64, burst: u32) -> Self {
        Self {
            rate,
            per_secs,
            burst,
        }
    }

    /// The quota, or `None` when off.
    pub fn quota(&self) -> Option<seckill_core::Quota> {
        (self.rate > 0).then(|| seckill_core::Quota {
            rate: self.rate,
            period: std::time::Duration::from_secs(self.per_secs.max(1)),
            burst: self.burst.max(1),
        })
    }
}

/// Rate limits (per client IP, per username, per phone) and verification codes. The per-user
/// buy limit is `sale.buy_rate_per_sec`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Logins per client IP.
    pub login_per_ip: RateConfig,
    /// Logins per username (wrong passwords included): slows password guessing.
    pub login_per_user: RateConfig,
    /// Buy attempts per client IP. Off by default: buyers behind one NAT share an address;
    /// the per-user limit applies to everyone.
    pub buy_per_ip: RateConfig,
    /// Verification codes sent per phone.
    pub send_code_per_phone: RateConfig,
    /// Verification codes sent per client IP.
    pub send_code_per_ip: RateConfig,
    /// Take the client IP from the first `X-Forwarded-For` address (only behind a proxy that
    /// sets it); otherwise from the connection.
    pub trust_forwarded_for: bool,
    /// How long a verification code is valid.
    pub code_ttl_secs: u64,
    /// Wrong tries before a verification code is dropped.
    pub code_max_tries: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            login_per_ip: RateConfig::new(60, 60, 20),
            login_per_user: RateConfig::new(10, 60, 5),
            buy_per_ip: RateConfig::new(0, 1, 1),
            send_code_per_phone: RateConfig::new(1, 60, 1),
            send_code_per_ip: RateConfig::new(10, 60, 5),
            trust_forwarded_for: false,
            code_ttl_secs: 300,
            code_max_tries: 5,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `json`, `pretty`, or `auto` (JSON in release builds, pretty in debug builds).
    pub format: String,
    /// An `EnvFilter` directive (`RUST_LOG` overrides it).
    pub level: String,
}

/// OpenTelemetry tracing: off unless `otlp_endpoint` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP (protobuf) collector, e.g. `http://otel-collector:4318` (`/v1/traces` is
    /// added when the URL has no path). Unset: no spans are exported.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// The share of new traces sampled, 0.0 to 1.0 (a request carrying a sampled
    /// `traceparent` is always followed).
    pub sample_ratio: f64,
}

impl TelemetryConfig {
    /// Whether spans are exported (an endpoint is set).
    pub fn enabled(&self) -> bool {
        self.otlp_endpoint.as_deref().is_some_and(|e| !e.is_empty())
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "seckill".into(),
            sample_ratio: 1.0,
        }
    }
}

/// Deadlines, load shedding, body size and CORS of the HTTP API (docs/operations.md,
/// "Overload").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Deadline of a request, in milliseconds, unless `route_timeouts_ms` names its route; an
    /// answer later than that is replaced by 504 (code 9004). 0: no deadline.
    pub request_timeout_ms: u64,
    /// Deadlines of single routes, by the route's template as `/openapi.json` spells it
    /// (`"/api/v1/seckill/activities/{id}/buy" = 2000`).
    pub route_timeouts_ms: std::collections::BTreeMap<String, u64>,
    /// Buys in flight at once (HTTP and gRPC); one more is refused at once with 503 (code
    /// 9003) and `Retry-After`. 0: no limit.
    pub buy_concurrency: usize,
    /// Other API requests in flight at once (`/health`, `/ready` and `/metrics` are never
    /// refused). 0: no limit.
    pub api_concurrency: usize,
    /// The `Retry-After` of a refusal for load, in seconds.
    pub retry_after_secs: u64,
    /// The largest request body, in bytes; a larger one answers 413 (code 2008).
    pub max_body_bytes: usize,
    /// Cross-origin requests from browser pages.
    pub cors: CorsConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout_ms: 10_000,
            route_timeouts_ms: [("/api/v1/seckill/activities/{id}/buy".to_string(), 3_000)]
                .into_iter()
                .collect(),
            buy_concurrency: 256,
            api_concurrency: 1024,
            retry_after_secs: 1,
            max_body_bytes: 64 * 1024,
            cors: CorsConfig::default(),
        }
    }
}

/// CORS: which browser origins may call the API. Off (no origin allowed) by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed, exactly as browsers send them (`https://tickets.example.com`); `*`
    /// allows any (never together with `allow_credentials`). Empty: no cross-origin calls.
    pub allowed_origins: Vec<String>,
    /// Methods a page may use.
    pub allowed_methods: Vec<String>,
    /// Request headers a page may send.
    pub allowed_headers: Vec<String>,
    /// Response headers a page may read.
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight answer, in seconds.
    pub max_age_secs: u64,
    /// Let pages send cookies and HTTP authentication (the API authenticates with a bearer
    /// token, so this stays off unless a proxy in front needs it).
    pub allow_credentials: bool,
}

impl Default for CorsConfig {
    fn default() -> Self {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Self {
            allowed_origins: Vec::new(),
            allowed_methods: strings(&["GET", "POST", "PUT", "DELETE"]),
            allowed_headers: strings(&[
                "authorization",
                "content-type",
                "idempotency-key",
                "x-request-id",
                "traceparent",
            ]),
            expose_headers: strings(&["x-trace-id", "retry-after", "idempotent-replayed"]),
            max_age_secs: 600,
            allow_credentials: false,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "auto".into(),
            level: "info".into(),
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut f = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(Box::new(figment::Error::from(format!(
                    "config file {} does not exist",
                    path.display()
                ))));
            }
            f = f.merge(Toml::file(path));
        }
        f.merge(
            Env::prefixed("SECKILL_")
                .filter(|k| {
                    let k = k.as_str().to_ascii_lowercase();
                    !k.starts_with("test_") && !matches!(k.as_str(), "config" | "server" | "token")
                })
                .split("__"),
        )
        .extract()
        .map_err(Box::new)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn defaults_are_all_memory() {
        let c = Config::default();
        assert_eq!(c.backends.stock, "memory://");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn file_then_env_override() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "s.toml",
                "listen = \"127.0.0.1:9000\"\n[sale]\nbuy_burst = 3\n[auth]\njwt_secret = \"k\"\n",
            )?;
            jail.set_env("SECKILL_SALE__BUY_BURST", "7");
            jail.set_env("SECKILL_TEST_REDIS_URL", "redis://ignored");
            let c = Config::load(Some(Path::new("s.toml"))).map_err(|e| *e)?;
            assert_eq!(c.listen.port(), 9000);
            assert_eq!(c.sale.buy_burst, 7);
            assert!(!format!("{c:?}").contains("\"k\""));
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("s.toml", "lisen = \"x\"\n")?;
            assert!(Config::load(Some(Path::new("s.toml"))).is_err());
            Ok(())
        });
    }

    #[test]
    fn the_documented_config_loads() {
        let doc = include_str!("../../docs/operations.md");
        let example = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/operations.md opens with a TOML example");
        figment::Jail::expect_with(|jail| {
            jail.create_file("s.toml", example)?;
            let c = Config::load(Some(Path::new("s.toml"))).map_err(|e| *e)?;
            assert_eq!(c.limits.login_per_user.quota().unwrap().burst, 5);
            assert_eq!(c.limits.buy_per_ip.quota(), None, "rate 0 is off");
            assert_eq!(c.backends.sessions, "memory://");
            Ok(())
        });
    }
}
