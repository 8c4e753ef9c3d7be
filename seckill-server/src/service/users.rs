//! Users: registration, login and sessions, profile, password, phone verification codes.

use crate::auth::{hash_password, verify_password, AuthUser};
use crate::error::{ApiError, Code};
use crate::limits::{charge, Limit};
use crate::state::AppState;
use seckill_core::domain::{Role, User, UserId};
use seckill_core::engine::NewUser;
use seckill_core::session::CodeCheck;
use seckill_core::Timestamp;
use serde::Serialize;
use serde_json::json;
use std::time::Duration;

/// A user as clients see it (never the password hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    /// Its id.
    pub id: UserId,
    /// Login name.
    pub username: String,
    /// Phone number, if given.
    pub phone: Option<String>,
    /// Role.
    pub role: Role,
    /// When it registered.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
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

/// Creates a user with a hashed password (registration, the bootstrap admin, the demo seed);
/// the engine checks the username and phone, this checks the password before hashing it.
pub async fn create_user(
    s: &AppState,
    username: String,
    password: String,
    phone: Option<String>,
    role: Role,
) -> Result<User, ApiError> {
    User::check_username(&username)?;
    User::check_password(&password)?;
    if let Some(p) = &phone {
        User::check_phone(p)?;
    }
    let password_hash = hash_password(password).await?;
    Ok(s.engine
        .create_user(NewUser {
            username,
            phone,
            password_hash,
            role,
        })
        .await?)
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

/// Logs in: a bearer token. Rate-limited per client IP and per username; an unknown user
/// costs the same time as a wrong password.
pub async fn login(
    s: &AppState,
    ip: &str,
    username: &str,
    password: String,
) -> Result<LoginResp, ApiError> {
    charge(s, Limit::LoginPerIp, ip).await?;
    let bad = || ApiError::new(Code::BadCredentials, "wrong username or password");
    // No account has a name that breaks the username rule (too long, NUL, …): refuse it
    // before it becomes a rate-limit key or reaches a backend.
    if User::check_username(username).is_err() {
        return Err(bad());
    }
    charge(s, Limit::LoginPerUser, username).await?;
    let user = s.engine.backends().users.user_by_name(username).await?;
    // Verify against a dummy hash when the user is unknown, so timing does not reveal it.
    let (hash, user) = match user {
        Some(u) => (u.password_hash.clone(), Some(u)),
        None => (dummy_hash().await?, None),
    };
    let valid = verify_password(password, hash).await;
    let user = user.filter(|_| valid).ok_or_else(bad)?;
    session(s, user)
}

async fn dummy_hash() -> Result<String, ApiError> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_try_init(|| hash_password("not-a-real-password".into()))
        .await
        .cloned()
}

/// The caller's record.
pub async fn me(s: &AppState, me: &AuthUser) -> Result<User, ApiError> {
    s.engine
        .backends()
        .users
        .user(me.id)
        .await?
        .ok_or_else(|| ApiError::new(Code::Unauthenticated, "user no longer exists"))
}

/// A user by id, as `me` may see it: themselves, or anyone for an admin; otherwise not found.
pub async fn user(s: &AppState, me: &AuthUser, id: UserId) -> Result<User, ApiError> {
    let missing = || ApiError::new(Code::NotFound, format!("no user {id}"));
    if me.id != id && me.role != Role::Admin {
        return Err(missing());
    }
    s.engine
        .backends()
        .users
        .user(id)
        .await?
        .ok_or_else(missing)
}

/// Sets (or with `None` removes) the caller's phone.
pub async fn update_phone(
    s: &AppState,
    caller: &AuthUser,
    phone: Option<String>,
) -> Result<User, ApiError> {
    if let Some(p) = &phone {
        User::check_phone(p)?;
    }
    let mut user = me(s, caller).await?;
    user.phone = phone;
    s.engine.update_user(&user).await?;
    Ok(user)
}

/// Ends the session: this token stops working (until it would have expired anyway).
pub async fn logout(s: &AppState, me: &AuthUser) -> Result<(), ApiError> {
    let left = (me.expires_at - s.engine.now().timestamp()).max(1) as u64;
    s.engine
        .backends()
        .sessions
        .revoke_token(me.id, &me.token_id, Duration::from_secs(left))
        .await?;
    Ok(())
}

/// Changes the caller's password. Every token issued before stops working; the answer carries
/// a fresh one.
pub async fn change_password(
    s: &AppState,
    caller: &AuthUser,
    old_password: String,
    new_password: String,
) -> Result<LoginResp, ApiError> {
    User::check_password(&new_password)?;
    let mut user = me(s, caller).await?;
    if !verify_password(old_password, user.password_hash.clone()).await {
        return Err(ApiError::new(Code::BadCredentials, "wrong password"));
    }
    user.password_hash = hash_password(new_password).await?;
    user.token_version += 1;
    s.engine.update_user(&user).await?;
    s.engine
        .backends()
        .sessions
        .revoke_versions_below(user.id, user.token_version, s.tokens.ttl())
        .await?;
    session(s, user)
}

/// Sends a 6-digit verification code to a phone through the configured notifier.
/// Rate-limited per phone and per client IP; a new code replaces the pending one.
pub async fn send_code(s: &AppState, ip: &str, phone: &str) -> Result<serde_json::Value, ApiError> {
    User::check_phone(phone)?;
    charge(s, Limit::SendCodePerIp, ip).await?;
    charge(s, Limit::SendCodePerPhone, phone).await?;
    let code = format!("{:06}", rand::random::<u32>() % 1_000_000);
    let ttl = Duration::from_secs(s.live.limits().code_ttl_secs.max(1));
    s.engine
        .backends()
        .sessions
        .put_code(phone, &code, ttl)
        .await?;
    s.notifier.send_code(phone, &code, ttl).await?;
    Ok(json!({ "sent": true, "expires_in_secs": ttl.as_secs() }))
}

/// Checks a verification code: valid once; a limited number of wrong tries drops it.
pub async fn verify_code(s: &AppState, phone: &str, code: &str) -> Result<(), ApiError> {
    User::check_phone(phone)?;
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::new(Code::InvalidField, "code: 6 digits"));
    }
    let check = s
        .engine
        .backends()
        .sessions
        .check_code(phone, code, s.live.limits().code_max_tries.max(1))
        .await?;
    match check {
        CodeCheck::Valid => Ok(()),
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
