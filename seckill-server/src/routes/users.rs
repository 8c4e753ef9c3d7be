//! `/api/v1/user/*`: register, login, logout, profile, password, and phone verification codes.

use crate::auth::{hash_password, verify_password, AuthUser};
use crate::error::{ok, ApiError, ApiResult, Body, Code, Failure, Reply, Success};
use crate::limits::{charge, ClientIp, Limit};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use seckill_core::domain::{Role, User, UserId};
use seckill_core::session::CodeCheck;
use seckill_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// `POST /api/v1/user/register`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterReq {
    username: String,
    password: String,
    #[serde(default)]
    phone: Option<String>,
}

/// `POST /api/v1/user/login`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginReq {
    username: String,
    password: String,
}

/// A user as clients see it (never the password hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    id: UserId,
    username: String,
    phone: Option<String>,
    role: Role,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            phone: u.phone,
            role: u.role,
            created_at: u.created_at,
        }
    }
}

/// A login's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResp {
    token: String,
    token_type: &'static str,
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
    user: UserView,
}

fn validate_phone(p: &str) -> Result<(), ApiError> {
    if !(6..=20).contains(&p.len())
        || !p
            .trim_start_matches('+')
            .chars()
            .all(|c| c.is_ascii_digit())
        || p.len() - p.trim_start_matches('+').len() > 1
    {
        return Err(ApiError::new(
            Code::InvalidField,
            "phone: 6 to 20 characters, digits with an optional leading '+'",
        ));
    }
    Ok(())
}

fn validate_password(p: &str) -> Result<(), ApiError> {
    if !(8..=128).contains(&p.chars().count()) {
        return Err(ApiError::new(
            Code::InvalidField,
            "password: 8 to 128 characters",
        ));
    }
    Ok(())
}

fn validate_username(u: &str) -> Result<(), ApiError> {
    let ok_chars = u
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if !(3..=32).contains(&u.len()) || !ok_chars {
        return Err(ApiError::new(
            Code::InvalidField,
            "username: 3 to 32 characters of letters, digits, '_', '-', '.'",
        ));
    }
    Ok(())
}

/// Creates a user with a hashed password (shared by registration and the bootstrap admin).
pub async fn create_user(
    state: &AppState,
    username: String,
    password: String,
    phone: Option<String>,
    role: Role,
) -> Result<User, ApiError> {
    validate_username(&username)?;
    validate_password(&password)?;
    if let Some(p) = &phone {
        validate_phone(p)?;
    }
    let engine = &state.engine;
    let user = User {
        id: UserId(engine.next_id()),
        username,
        phone,
        password_hash: hash_password(password).await?,
        role,
        token_version: 0,
        created_at: engine.now(),
    };
    match engine.backends().users.insert_user(&user).await {
        Ok(()) => Ok(user),
        Err(seckill_core::Error::Conflict(_)) => Err(ApiError::new(
            Code::UsernameTaken,
            format!("username {:?} is taken", user.username),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Registers a buyer.
#[utoipa::path(
    post,
    path = "/api/v1/user/register",
    tag = "users",
    request_body = RegisterReq,
    responses((status = 201, description = "success", body = Success<UserView>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure))
)]
pub async fn register(
    State(s): State<AppState>,
    Body(req): Body<RegisterReq>,
) -> ApiResult<UserView> {
    let user = create_user(&s, req.username, req.password, req.phone, Role::User).await?;
    Ok(Reply(StatusCode::CREATED, user.into()))
}

/// A fresh token for `user`, as login and password change answer it.
fn session(s: &AppState, user: User) -> Result<LoginResp, ApiError> {
    let now = s.engine.now();
    let (token, exp) = s
        .tokens
        .issue(user.id, user.role, user.token_version, now.timestamp())?;
    Ok(LoginResp {
        token,
        token_type: "Bearer",
        expires_at: chrono::DateTime::from_timestamp(exp, 0).unwrap_or(now),
        user: user.into(),
    })
}

/// Logs in: a bearer token. Rate-limited per client IP and per username.
#[utoipa::path(
    post,
    path = "/api/v1/user/login",
    tag = "users",
    request_body = LoginReq,
    responses((status = 200, description = "success", body = Success<LoginResp>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure))
)]
pub async fn login(
    State(s): State<AppState>,
    ip: ClientIp,
    Body(req): Body<LoginReq>,
) -> ApiResult<LoginResp> {
    charge(&s, Limit::LoginPerIp, &ip.0).await?;
    let bad = || ApiError::new(Code::BadCredentials, "wrong username or password");
    // No account has a name this long: refuse before it becomes a rate-limit key.
    if req.username.len() > 64 {
        return Err(bad());
    }
    charge(&s, Limit::LoginPerUser, &req.username).await?;
    let user = s
        .engine
        .backends()
        .users
        .user_by_name(&req.username)
        .await?;
    // Verify against a dummy hash when the user is unknown, so timing does not reveal it.
    let (hash, user) = match user {
        Some(u) => (u.password_hash.clone(), Some(u)),
        None => (dummy_hash().await?, None),
    };
    let valid = verify_password(req.password, hash).await;
    let user = user.filter(|_| valid).ok_or_else(bad)?;
    Ok(ok(session(&s, user)?))
}

async fn dummy_hash() -> Result<String, ApiError> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_try_init(|| hash_password("not-a-real-password".into()))
        .await
        .cloned()
}

/// The caller's record.
async fn me_user(s: &AppState, me: &AuthUser) -> Result<User, ApiError> {
    s.engine
        .backends()
        .users
        .user(me.id)
        .await?
        .ok_or_else(|| ApiError::new(Code::Unauthenticated, "user no longer exists"))
}

/// The caller's profile.
#[utoipa::path(
    get,
    path = "/api/v1/user/profile",
    tag = "users",
    responses((status = 200, description = "success", body = Success<UserView>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn profile(State(s): State<AppState>, me: AuthUser) -> ApiResult<UserView> {
    Ok(ok(me_user(&s, &me).await?.into()))
}

/// `PUT /api/v1/user/profile`: the fields a user may change about themselves.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    /// The phone number; `null` removes it.
    phone: Option<String>,
}

/// Updates the caller's profile.
#[utoipa::path(
    put,
    path = "/api/v1/user/profile",
    tag = "users",
    request_body = ProfileUpdate,
    responses((status = 200, description = "success", body = Success<UserView>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn update_profile(
    State(s): State<AppState>,
    me: AuthUser,
    Body(req): Body<ProfileUpdate>,
) -> ApiResult<UserView> {
    if let Some(p) = &req.phone {
        validate_phone(p)?;
    }
    let mut user = me_user(&s, &me).await?;
    user.phone = req.phone;
    s.engine.backends().users.update_user(&user).await?;
    Ok(ok(user.into()))
}

/// Ends the session: this token stops working (until it would have expired anyway).
#[utoipa::path(
    post,
    path = "/api/v1/user/logout",
    tag = "users",
    responses((status = 200, description = "success", body = Success<serde_json::Value>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn logout(State(s): State<AppState>, me: AuthUser) -> ApiResult<serde_json::Value> {
    let left = (me.expires_at - s.engine.now().timestamp()).max(1) as u64;
    s.engine
        .backends()
        .sessions
        .revoke_token(me.id, &me.token_id, Duration::from_secs(left))
        .await?;
    Ok(ok(json!({ "logged_out": true })))
}

/// `POST /api/v1/user/password`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    old_password: String,
    new_password: String,
}

/// Changes the caller's password. Every token issued before stops working; the answer carries
/// a fresh one.
#[utoipa::path(
    post,
    path = "/api/v1/user/password",
    tag = "users",
    request_body = PasswordChange,
    responses((status = 200, description = "success", body = Success<LoginResp>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure)),
    security(("bearer" = []))
)]
pub async fn change_password(
    State(s): State<AppState>,
    me: AuthUser,
    Body(req): Body<PasswordChange>,
) -> ApiResult<LoginResp> {
    validate_password(&req.new_password)?;
    let mut user = me_user(&s, &me).await?;
    if !verify_password(req.old_password, user.password_hash.clone()).await {
        return Err(ApiError::new(Code::BadCredentials, "wrong password"));
    }
    user.password_hash = hash_password(req.new_password).await?;
    user.token_version += 1;
    s.engine.backends().users.update_user(&user).await?;
    s.engine
        .backends()
        .sessions
        .revoke_versions_below(user.id, user.token_version, s.tokens.ttl())
        .await?;
    Ok(ok(session(&s, user)?))
}

/// `POST /api/v1/user/send-code`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendCode {
    phone: String,
}

/// Sends a 6-digit verification code to a phone through the configured notifier. Rate-limited
/// per phone and per client IP; a new code replaces the pending one.
#[utoipa::path(
    post,
    path = "/api/v1/user/send-code",
    tag = "users",
    request_body = SendCode,
    responses((status = 200, description = "success", body = Success<serde_json::Value>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure))
)]
pub async fn send_code(
    State(s): State<AppState>,
    ip: ClientIp,
    Body(req): Body<SendCode>,
) -> ApiResult<serde_json::Value> {
    validate_phone(&req.phone)?;
    charge(&s, Limit::SendCodePerIp, &ip.0).await?;
    charge(&s, Limit::SendCodePerPhone, &req.phone).await?;
    let code = format!("{:06}", rand::random::<u32>() % 1_000_000);
    let ttl = Duration::from_secs(s.limits.code_ttl_secs.max(1));
    let sessions = &s.engine.backends().sessions;
    sessions.put_code(&req.phone, &code, ttl).await?;
    s.notifier.send_code(&req.phone, &code, ttl).await?;
    Ok(ok(
        json!({ "sent": true, "expires_in_secs": ttl.as_secs() }),
    ))
}

/// `POST /api/v1/user/verify-code`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyCode {
    phone: String,
    code: String,
}

/// Checks a verification code: valid once; a limited number of wrong tries drops it.
#[utoipa::path(
    post,
    path = "/api/v1/user/verify-code",
    tag = "users",
    request_body = VerifyCode,
    responses((status = 200, description = "success", body = Success<serde_json::Value>), (status = "4XX", description = "refused: `code` says why (docs/api.md)", body = Failure), (status = 503, description = "a backend is unavailable; retry", body = Failure))
)]
pub async fn verify_code(
    State(s): State<AppState>,
    Body(req): Body<VerifyCode>,
) -> ApiResult<serde_json::Value> {
    validate_phone(&req.phone)?;
    if req.code.len() != 6 || !req.code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::new(Code::InvalidField, "code: 6 digits"));
    }
    let check = s
        .engine
        .backends()
        .sessions
        .check_code(&req.phone, &req.code, s.limits.code_max_tries.max(1))
        .await?;
    match check {
        CodeCheck::Valid => Ok(ok(json!({ "verified": true }))),
        CodeCheck::Wrong { left } => Err(ApiError::new(
            Code::WrongCode,
            format!("wrong code; {left} tries left"),
        )
        .with_data(json!({ "tries_left": left }))),
        CodeCheck::Missing => Err(ApiError::new(
            Code::NoPendingCode,
            "no pending code for this phone (expired, used, or too many wrong tries): send a new one",
        )),
    }
}
