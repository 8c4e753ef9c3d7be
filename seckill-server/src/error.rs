//! The response envelope `{code, message, data, trace_id}` and the error-code catalog.
//!
//! Every answer, success or failure, is this envelope with the right HTTP status. `code` is 0
//! on success; otherwise a stable number from [`Code`]: 1xxx auth, 2xxx validation, 3xxx sale
//! outcomes, 4xxx orders, 5xxx payments, 6xxx catalog, 9xxx internal. docs/api.md lists them.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

tokio::task_local! {
    /// The current request's trace id, set by the trace middleware.
    pub static TRACE_ID: String;
}

/// The current request's trace id (empty outside a request).
pub fn trace_id() -> String {
    TRACE_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Every error code the API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Code {
    /// Missing, malformed, expired or revoked token.
    Unauthenticated = 1001,
    /// Authenticated, but the role may not do this.
    Forbidden = 1002,
    /// Wrong username or password.
    BadCredentials = 1003,
    /// The username is taken.
    UsernameTaken = 1004,
    /// The verification code is wrong (tries are counted).
    WrongCode = 1005,
    /// No verification code is pending for the phone.
    NoPendingCode = 1006,
    /// The body is not valid JSON of the expected shape (unknown fields included).
    MalformedBody = 2001,
    /// A field's value is out of range.
    InvalidField = 2002,
    /// A path or query parameter is malformed.
    InvalidParameter = 2003,
    /// No such route.
    RouteNotFound = 2004,
    /// An `Idempotency-Key` was reused with a different request.
    IdempotencyMismatch = 2005,
    /// The request conflicts with the current state of a resource.
    Conflict = 2006,
    /// A resource the request names does not exist.
    NotFound = 2007,
    /// The request body is larger than `http.max_body_bytes`.
    BodyTooLarge = 2008,
    /// No such activity.
    ActivityNotFound = 3001,
    /// The sale has not started.
    NotStarted = 3002,
    /// The sale has ended.
    Ended = 3003,
    /// Sold out.
    SoldOut = 3004,
    /// Fewer units left than asked for.
    InsufficientStock = 3005,
    /// The per-user limit would be exceeded.
    LimitExceeded = 3006,
    /// Too many requests.
    RateLimited = 3007,
    /// The activity's stock is not warmed up yet.
    NotWarmedUp = 3008,
    /// The activity was cancelled.
    ActivityCancelled = 3009,
    /// A warm-up or reconciliation of the activity is already running.
    ActivityBusy = 3010,
    /// The operator stopped this activity's sale (the kill switch); it may resume.
    SalePaused = 3011,
    /// A price tier asked for has fewer units left than asked.
    TierShort = 3012,
    /// A quota the buy counts against has fewer units left than it asks.
    QuotaShort = 3013,
    /// Seats the buy named are taken.
    SeatsTaken = 3014,
    /// A ticket's holder holds a ticket of this real-name session already (one document, one
    /// ticket per session).
    HolderTaken = 3015,
    /// No such order (or not yours; or still being written: retry shortly).
    OrderNotFound = 4001,
    /// The order's state does not allow this.
    OrderStateConflict = 4002,
    /// The buy's reservation was lost before its order was written (the stock backend lost
    /// its data); the buy failed, nothing is or will be charged, and the order never appears.
    OrderLost = 4003,
    /// No such payment (or not yours).
    PaymentNotFound = 5001,
    /// The callback's signature does not verify.
    BadSignature = 5002,
    /// The payment's state does not allow this.
    PaymentConflict = 5003,
    /// The callback is malformed.
    BadCallback = 5004,
    /// No such payment provider.
    UnknownProvider = 5005,
    /// The provider is switched off for new payments (`payment.disabled`).
    ProviderDisabled = 5006,
    /// No such product.
    ProductNotFound = 6001,
    /// No such event.
    EventNotFound = 6002,
    /// An unexpected failure.
    Internal = 9001,
    /// A backend is unreachable; retry.
    Unavailable = 9002,
    /// The server is at its concurrency limit (`http.buy_concurrency`,
    /// `http.api_concurrency`): refused at once; retry after `Retry-After`.
    Overloaded = 9003,
    /// No answer within the route's deadline; the request's effect is unknown (retry with the
    /// same `Idempotency-Key`).
    DeadlineExceeded = 9004,
}

impl Code {
    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        use Code::*;
        match self {
            Unauthenticated | BadCredentials | BadSignature => StatusCode::UNAUTHORIZED,
            WrongCode | NoPendingCode => StatusCode::BAD_REQUEST,
            Forbidden => StatusCode::FORBIDDEN,
            UsernameTaken | NotStarted | Ended | SoldOut | InsufficientStock | LimitExceeded
            | TierShort | QuotaShort | SeatsTaken | HolderTaken | NotWarmedUp
            | ActivityCancelled | ActivityBusy | SalePaused | ProviderDisabled
            | OrderStateConflict | PaymentConflict | Conflict => StatusCode::CONFLICT,
            IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            MalformedBody | InvalidField | InvalidParameter | BadCallback => {
                StatusCode::BAD_REQUEST
            }
            RouteNotFound | ActivityNotFound | OrderNotFound | PaymentNotFound
            | UnknownProvider | ProductNotFound | EventNotFound | NotFound => StatusCode::NOT_FOUND,
            OrderLost => StatusCode::GONE,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Unavailable | Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl Code {
    /// The gRPC status code that goes with the code (the same table as [`Code::status`]).
    pub fn grpc(self) -> tonic::Code {
        use tonic::Code as G;
        match self {
            Code::Unauthenticated | Code::BadCredentials | Code::BadSignature => G::Unauthenticated,
            Code::Forbidden => G::PermissionDenied,
            Code::RateLimited => G::ResourceExhausted,
            Code::Unavailable | Code::Overloaded => G::Unavailable,
            Code::DeadlineExceeded => G::DeadlineExceeded,
            Code::BodyTooLarge => G::InvalidArgument,
            Code::Internal => G::Internal,
            c => match c.status().as_u16() {
                404 | 410 => G::NotFound,
                400 => G::InvalidArgument,
                _ => G::FailedPrecondition,
            },
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    code: u32,
    message: &'a str,
    data: Option<T>,
    trace_id: String,
}

fn envelope<T: Serialize>(
    status: StatusCode,
    code: u32,
    message: &str,
    data: Option<T>,
) -> Response {
    let body = Envelope {
        code,
        message,
        data,
        trace_id: trace_id(),
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => {
            let mut r = (status, bytes).into_response();
            r.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "serialization failed").into_response(),
    }
}

/// The envelope of a success, as the OpenAPI document describes it (`code` is 0).
#[derive(Debug, utoipa::ToSchema)]
pub struct Success<T> {
    /// 0 on success.
    pub code: u32,
    /// `success`.
    pub message: String,
    /// The answer.
    pub data: T,
    /// The request's trace id.
    pub trace_id: String,
}

/// The envelope of a failure, as the OpenAPI document describes it.
#[derive(Debug, utoipa::ToSchema)]
pub struct Failure {
    /// The error code (docs/api.md lists them all).
    pub code: u32,
    /// What went wrong, for humans.
    pub message: String,
    /// Structured detail for some codes (e.g. `retry_after_ms`, `tries_left`), else null.
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    /// The request's trace id.
    pub trace_id: String,
}

/// The refusals every route documents beside its success: a 4xx whose `code` says why, and
/// a 503 when a backend is unavailable (`responses((status = 200, …), Refusals)`).
#[derive(Debug, utoipa::IntoResponses)]
pub enum Refusals {
    /// Refused: the code says why.
    #[response(status = "4XX", description = "refused: `code` says why (docs/api.md)")]
    Refused(Failure),
    /// A backend is unavailable: retry after `Retry-After` seconds.
    #[response(
        status = 503,
        description = "a backend is unavailable; retry (`Retry-After`)"
    )]
    Unavailable(Failure),
}

/// A successful answer: `data` in the envelope with `code` 0.
#[derive(Debug)]
pub struct Reply<T>(pub StatusCode, pub T);

/// `200 OK` with `data`.
pub fn ok<T>(data: T) -> Reply<T> {
    Reply(StatusCode::OK, data)
}

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        envelope(self.0, 0, "success", Some(self.1))
    }
}

/// A failed answer.
#[derive(Debug)]
pub struct ApiError {
    /// The code.
    pub code: Code,
    /// A human-readable message.
    pub message: String,
    /// Extra structured detail (e.g. `retry_after_ms`).
    pub data: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Adds structured detail.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code.status().is_server_error() {
            tracing::error!(code = self.code as u32, message = %self.message, "request failed");
        }
        let mut r = envelope(
            self.code.status(),
            self.code as u32,
            &self.message,
            self.data,
        );
        if matches!(
            self.code,
            Code::RateLimited | Code::Unavailable | Code::Overloaded
        ) {
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        r
    }
}

impl From<seckill_core::Error> for ApiError {
    /// The one table from engine errors to API codes: a missing or conflicting record answers
    /// the code of its kind; a retryable backend failure answers 503 (9002) with
    /// `Retry-After`, and its detail (a client library's message) goes to the log with the
    /// trace id, never to the caller.
    fn from(e: seckill_core::Error) -> Self {
        use seckill_core::{Entity as K, Error as E};
        match e {
            E::NotFound { entity, id } => {
                let code = match entity {
                    K::Activity => Code::ActivityNotFound,
                    K::Order => Code::OrderNotFound,
                    K::Payment => Code::PaymentNotFound,
                    K::Product => Code::ProductNotFound,
                    K::Event => Code::EventNotFound,
                    K::Provider => Code::UnknownProvider,
                    _ => Code::NotFound,
                };
                ApiError::new(code, format!("no {entity} {id}"))
            }
            E::Conflict { entity, id, reason } => {
                let code = match entity {
                    K::Order => Code::OrderStateConflict,
                    K::Payment => Code::PaymentConflict,
                    K::IdempotencyKey => Code::IdempotencyMismatch,
                    K::Username => Code::UsernameTaken,
                    K::ActivityLock => Code::ActivityBusy,
                    _ => Code::Conflict,
                };
                ApiError::new(code, format!("{entity} {id}: {reason}"))
            }
            E::InvalidArgument(m) => ApiError::new(Code::InvalidField, m),
            E::Unauthenticated(m) => ApiError::new(Code::Unauthenticated, m),
            e if e.is_retryable() => {
                tracing::warn!(error = %e, trace_id = %trace_id(), "a backend is unavailable");
                ApiError::new(
                    Code::Unavailable,
                    "a backend is temporarily unavailable; retry shortly",
                )
            }
            e => {
                tracing::error!(error = %e, trace_id = %trace_id(), "unexpected backend error");
                ApiError::new(Code::Internal, "internal error")
            }
        }
    }
}

/// The result type of handlers.
pub type ApiResult<T> = Result<Reply<T>, ApiError>;

/// A JSON body; a malformed one answers `2001` instead of axum's plain-text rejection.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // The common case without axum's `Json`, which parses the content type into a `Mime`
        // and deserializes through `serde_path_to_error` on every request (a few percent of a
        // buy's CPU). Anything unusual takes axum's path, for its exact rejection texts.
        if !plain_json(req.headers()) {
            let axum::Json(v) = axum::Json::<serde_json::Value>::from_request(req, state)
                .await
                .map_err(json_rejection)?;
            let v = object(v)?;
            return serde_json::from_value(v)
                .map(Body)
                .map_err(|e| ApiError::new(Code::MalformedBody, e.to_string()));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rej| body_rejection(rej.status(), rej.body_text()))?;
        // Every body is an object: serde's derived structs would also take an array of the
        // fields in order (`["bob","pw"]`), which no document describes.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(not_an_object());
        }
        match serde_json::from_slice(&bytes) {
            Ok(v) => Ok(Body(v)),
            Err(_) => {
                // JSON's integers include `2.0` (JSON Schema says so, and clients that hold
                // numbers as floats send it): take a whole number written as a float.
                if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    if whole_floats_to_integers(&mut v) {
                        if let Ok(t) = serde_json::from_value(v) {
                            return Ok(Body(t));
                        }
                    }
                }
                // Again through axum, for the message that names the field.
                axum::Json::<T>::from_bytes(&bytes)
                    .map(|axum::Json(v)| Body(v))
                    .map_err(json_rejection)
            }
        }
    }
}

fn not_an_object() -> ApiError {
    ApiError::new(Code::MalformedBody, "the body must be a JSON object")
}

/// `v` if it is an object, with its whole floats as integers.
fn object(mut v: serde_json::Value) -> Result<serde_json::Value, ApiError> {
    if !v.is_object() {
        return Err(not_an_object());
    }
    whole_floats_to_integers(&mut v);
    Ok(v)
}

/// Rewrites every float without a fraction (within ±2^53, where floats are exact) as an
/// integer; whether anything changed.
fn whole_floats_to_integers(v: &mut serde_json::Value) -> bool {
    use serde_json::Value as V;
    match v {
        V::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
                *v = V::from(f as i64);
                true
            } else {
                false
            }
        }
        V::Array(items) => {
            let mut changed = false;
            for x in items {
                changed |= whole_floats_to_integers(x);
            }
            changed
        }
        V::Object(map) => {
            let mut changed = false;
            for x in map.values_mut() {
                changed |= whole_floats_to_integers(x);
            }
            changed
        }
        _ => false,
    }
}

/// `Content-Type: application/json`, with parameters or not, in any case.
fn plain_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    body_rejection(rej.status(), rej.body_text())
}

/// A body axum could not take: too large (`http.max_body_bytes`, 2008) or malformed (2001).
fn body_rejection(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(Code::BodyTooLarge, "the request body is too large")
    } else {
        ApiError::new(Code::MalformedBody, text)
    }
}

/// A path parameter; a malformed one answers `2003`.
#[derive(Debug)]
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|rej: PathRejection| ApiError::new(Code::InvalidParameter, rej.body_text()))
    }
}

/// Query parameters; malformed ones answer `2003`.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|rej: QueryRejection| ApiError::new(Code::InvalidParameter, rej.body_text()))
    }
}

#[cfg(test)]
mod body_tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Q {
        quantity: u32,
    }

    async fn parse(content_type: Option<&str>, body: &str) -> Result<Q, ApiError> {
        let mut b = axum::http::Request::builder().method("POST").uri("/");
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        let req = b.body(axum::body::Body::from(body.to_string())).unwrap();
        Body::<Q>::from_request(req, &()).await.map(|Body(q)| q)
    }

    #[tokio::test]
    async fn bodies_parse_and_refusals_say_why() {
        for ct in ["application/json", "Application/JSON; charset=utf-8"] {
            assert_eq!(
                parse(Some(ct), r#"{"quantity":2}"#).await.unwrap(),
                Q { quantity: 2 }
            );
        }
        // The field-naming message of axum's path, on the fast path's refusals too.
        let e = parse(Some("application/json"), r#"{"quantity":-1}"#)
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::MalformedBody);
        assert!(e.message.contains("quantity"), "{}", e.message);
        let e = parse(Some("application/json"), r#"{"quantity":1,"price":1}"#)
            .await
            .unwrap_err();
        assert!(e.message.contains("unknown field `price`"), "{}", e.message);
        let e = parse(Some("application/json"), r#"{"quantity":"#)
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::MalformedBody);
        // Other content types go through axum's own check.
        let e = parse(None, r#"{"quantity":1}"#).await.unwrap_err();
        assert!(e.message.contains("Content-Type"), "{}", e.message);
        let e = parse(Some("text/plain"), r#"{"quantity":1}"#)
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::MalformedBody);
        assert_eq!(
            parse(Some("application/problem+json"), r#"{"quantity":3}"#)
                .await
                .unwrap(),
            Q { quantity: 3 }
        );
        // A whole number written as a float is an integer; a fraction is not.
        for ct in ["application/json", "application/problem+json"] {
            assert_eq!(
                parse(Some(ct), r#"{"quantity":2.0}"#).await.unwrap(),
                Q { quantity: 2 }
            );
            let e = parse(Some(ct), r#"{"quantity":2.5}"#).await.unwrap_err();
            assert_eq!(e.code, Code::MalformedBody);
            // An array of the fields is not a body.
            let e = parse(Some(ct), "[2]").await.unwrap_err();
            assert_eq!(e.code, Code::MalformedBody);
            assert!(e.message.contains("JSON object"), "{}", e.message);
        }
    }
}

#[cfg(test)]
mod whole_float_tests {
    use super::whole_floats_to_integers;

    /// A whole number spelled as a float reads as that integer, up to 2^53, however many
    /// digits it has (serde_json's default float parsing is best-effort and can land a large
    /// one off the integer: the crate's `float_roundtrip` feature makes it exact).
    #[test]
    fn large_whole_floats_become_their_integers() {
        let mut v: serde_json::Value = serde_json::from_str(
            r#"{"price": 4314982406991678.0, "n": [2.0, 9007199254740992.0], "f": 1.5}"#,
        )
        .unwrap();
        assert!(whole_floats_to_integers(&mut v));
        assert_eq!(
            v,
            serde_json::json!({"price": 4_314_982_406_991_678_i64, "n": [2, 9_007_199_254_740_992_i64], "f": 1.5})
        );
    }
}
