//! `/api/v1/user/*`: register, login, logout, profile, password, and phone verification codes.

use crate::auth::AuthUser;
use crate::error::{ok, ApiResult, Body, Refusals, Reply, Success};
use crate::limits::ClientIp;
use crate::service::users::{self, LoginResp, UserView};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use seckill_core::domain::Role;
use serde::Deserialize;
use serde_json::json;

/// `POST /api/v1/user/register`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterReq {
    /// 3 to 32 letters, digits, `_`, `-`, `.`.
    #[schema(min_length = 3, max_length = 32, pattern = r"^[A-Za-z0-9_.-]+$")]
    username: String,
    /// 8 to 128 characters, no control characters.
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u001F\u007F-\u009F \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    password: String,
    /// 6 to 20 characters: digits with an optional leading `+`.
    #[serde(default)]
    #[schema(min_length = 6, max_length = 20, pattern = r"^\+?[0-9]+$")]
    phone: Option<String>,
}

/// `POST /api/v1/user/login`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginReq {
    username: String,
    password: String,
}

/// Registers a buyer.
#[utoipa::path(
    post,
    path = "/api/v1/user/register",
    tag = "users",
    request_body = RegisterReq,
    responses((status = 201, description = "success", body = Success<UserView>), Refusals)
)]
pub async fn register(
    State(s): State<AppState>,
    Body(req): Body<RegisterReq>,
) -> ApiResult<UserView> {
    let user = users::create_user(&s, req.username, req.password, req.phone, Role::User).await?;
    Ok(Reply(StatusCode::CREATED, user.into()))
}

/// Logs in: a bearer token. Rate-limited per client IP and per username.
#[utoipa::path(
    post,
    path = "/api/v1/user/login",
    tag = "users",
    request_body = LoginReq,
    responses((status = 200, description = "success", body = Success<LoginResp>), Refusals)
)]
pub async fn login(
    State(s): State<AppState>,
    ip: ClientIp,
    Body(req): Body<LoginReq>,
) -> ApiResult<LoginResp> {
    Ok(ok(
        users::login(&s, &ip.0, &req.username, req.password).await?
    ))
}

/// The caller's profile.
#[utoipa::path(
    get,
    path = "/api/v1/user/profile",
    tag = "users",
    responses((status = 200, description = "success", body = Success<UserView>), Refusals),
    security(("bearer" = []))
)]
pub async fn profile(State(s): State<AppState>, me: AuthUser) -> ApiResult<UserView> {
    Ok(ok(users::me(&s, &me).await?.into()))
}

/// `PUT /api/v1/user/profile`: the fields a user may change about themselves.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    /// The phone number (6 to 20 characters: digits with an optional leading `+`); `null`
    /// removes it.
    #[schema(min_length = 6, max_length = 20, pattern = r"^\+?[0-9]+$")]
    phone: Option<String>,
}

/// Updates the caller's profile.
#[utoipa::path(
    put,
    path = "/api/v1/user/profile",
    tag = "users",
    request_body = ProfileUpdate,
    responses((status = 200, description = "success", body = Success<UserView>), Refusals),
    security(("bearer" = []))
)]
pub async fn update_profile(
    State(s): State<AppState>,
    me: AuthUser,
    Body(req): Body<ProfileUpdate>,
) -> ApiResult<UserView> {
    Ok(ok(users::update_phone(&s, &me, req.phone).await?.into()))
}

/// Ends the session: this token stops working (until it would have expired anyway).
#[utoipa::path(
    post,
    path = "/api/v1/user/logout",
    tag = "users",
    responses((status = 200, description = "success", body = Success<serde_json::Value>), Refusals),
    security(("bearer" = []))
)]
pub async fn logout(State(s): State<AppState>, me: AuthUser) -> ApiResult<serde_json::Value> {
    users::logout(&s, &me).await?;
    Ok(ok(json!({ "logged_out": true })))
}

/// `POST /api/v1/user/password`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    old_password: String,
    /// 8 to 128 characters, no control characters.
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u001F\u007F-\u009F \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    new_password: String,
}

/// Changes the caller's password. Every token issued before stops working; the answer carries
/// a fresh one.
#[utoipa::path(
    post,
    path = "/api/v1/user/password",
    tag = "users",
    request_body = PasswordChange,
    responses((status = 200, description = "success", body = Success<LoginResp>), Refusals),
    security(("bearer" = []))
)]
pub async fn change_password(
    State(s): State<AppState>,
    me: AuthUser,
    Body(req): Body<PasswordChange>,
) -> ApiResult<LoginResp> {
    Ok(ok(users::change_password(
        &s,
        &me,
        req.old_password,
        req.new_password,
    )
    .await?))
}

/// `POST /api/v1/user/send-code`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendCode {
    /// 6 to 20 characters: digits with an optional leading `+`.
    #[schema(min_length = 6, max_length = 20, pattern = r"^\+?[0-9]+$")]
    phone: String,
}

/// Sends a 6-digit verification code to a phone through the configured notifier. Rate-limited
/// per phone and per client IP; a new code replaces the pending one.
#[utoipa::path(
    post,
    path = "/api/v1/user/send-code",
    tag = "users",
    request_body = SendCode,
    responses((status = 200, description = "success", body = Success<serde_json::Value>), Refusals)
)]
pub async fn send_code(
    State(s): State<AppState>,
    ip: ClientIp,
    Body(req): Body<SendCode>,
) -> ApiResult<serde_json::Value> {
    Ok(ok(users::send_code(&s, &ip.0, &req.phone).await?))
}

/// `POST /api/v1/user/verify-code`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyCode {
    /// 6 to 20 characters: digits with an optional leading `+`.
    #[schema(min_length = 6, max_length = 20, pattern = r"^\+?[0-9]+$")]
    phone: String,
    /// The 6 digits sent.
    #[schema(pattern = r"^[0-9]{6}$")]
    code: String,
}

/// Checks a verification code: valid once; a limited number of wrong tries drops it.
#[utoipa::path(
    post,
    path = "/api/v1/user/verify-code",
    tag = "users",
    request_body = VerifyCode,
    responses((status = 200, description = "success", body = Success<serde_json::Value>), Refusals)
)]
pub async fn verify_code(
    State(s): State<AppState>,
    Body(req): Body<VerifyCode>,
) -> ApiResult<serde_json::Value> {
    users::verify_code(&s, &req.phone, &req.code).await?;
    Ok(ok(json!({ "verified": true })))
}
