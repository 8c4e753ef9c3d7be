//! `/api/v1/user/*`: register, login, profile.

use crate::auth::{hash_password, verify_password, AuthUser};
use crate::error::{ok, ApiError, ApiResult, Body, Code, Reply};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use seckill_core::domain::{Role, User, UserId};
use seckill_core::Timestamp;
use serde::{Deserialize, Serialize};

/// `POST /api/v1/user/register`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterReq {
    username: String,
    password: String,
    #[serde(default)]
    phone: Option<String>,
}

/// `POST /api/v1/user/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginReq {
    username: String,
    password: String,
}

/// A user as clients see it (never the password hash).
#[derive(Debug, Serialize)]
pub struct UserView {
    id: UserId,
    username: String,
    phone: Option<String>,
    role: Role,
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
#[derive(Debug, Serialize)]
pub struct LoginResp {
    token: String,
    token_type: &'static str,
    expires_at: Timestamp,
    user: UserView,
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
    if !(8..=128).contains(&password.chars().count()) {
        return Err(ApiError::new(
            Code::InvalidField,
            "password: 8 to 128 characters",
        ));
    }
    if let Some(p) = &phone {
        if !(6..=20).contains(&p.len()) || !p.chars().all(|c| c.is_ascii_digit() || c == '+') {
            return Err(ApiError::new(
                Code::InvalidField,
                "phone: 6 to 20 digits, optionally with '+'",
            ));
        }
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
pub async fn register(
    State(s): State<AppState>,
    Body(req): Body<RegisterReq>,
) -> ApiResult<UserView> {
    let user = create_user(&s, req.username, req.password, req.phone, Role::User).await?;
    Ok(Reply(StatusCode::CREATED, user.into()))
}

/// Logs in: a bearer token.
pub async fn login(State(s): State<AppState>, Body(req): Body<LoginReq>) -> ApiResult<LoginResp> {
    let bad = || ApiError::new(Code::BadCredentials, "wrong username or password");
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
    let now = s.engine.now();
    let (token, exp) = s.tokens.issue(user.id, user.role, now.timestamp())?;
    Ok(ok(LoginResp {
        token,
        token_type: "Bearer",
        expires_at: chrono::DateTime::from_timestamp(exp, 0).unwrap_or(now),
        user: user.into(),
    }))
}

async fn dummy_hash() -> Result<String, ApiError> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_try_init(|| hash_password("not-a-real-password".into()))
        .await
        .cloned()
}

/// The caller's profile.
pub async fn profile(State(s): State<AppState>, me: AuthUser) -> ApiResult<UserView> {
    match s.engine.backends().users.user(me.id).await? {
        Some(u) => Ok(ok(u.into())),
        None => Err(ApiError::new(
            Code::Unauthenticated,
            "user no longer exists",
        )),
    }
}
