//! Authentication: argon2 password hashes (computed off the async threads) and HS256 JWTs with
//! a pinned algorithm and checked `exp`, `iss` and `aud`. A token also stops working when it is
//! revoked in the [`SessionStore`](seckill_core::SessionStore): by its id (logout) or by its
//! version (a password change revokes every token issued before it).

use crate::error::{ApiError, Code};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use seckill_core::domain::{Role, UserId};
use serde::{Deserialize, Serialize};

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The role.
    pub role: Role,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Token id.
    pub jti: String,
    /// The user's token version when issued: a password change raises it, and tokens of older
    /// versions stop working.
    #[serde(default)]
    pub ver: u32,
}

/// Issues and verifies tokens.
pub struct Tokens {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_secs: i64,
    /// Tokens that verified, by their exact text, with their claims: a buyer's retries skip the
    /// signature and JSON work. Entries are used only before their `exp`; revocation is checked
    /// on every request regardless. Cleared when it reaches [`VERIFIED_CAP`].
    verified: parking_lot::RwLock<std::collections::HashMap<Box<str>, Claims>>,
}

/// Most verified tokens kept in memory.
const VERIFIED_CAP: usize = 100_000;

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("issuer", &self.issuer)
            .field("key", &"***")
            .finish()
    }
}

impl Tokens {
    /// Tokens signed with `secret`.
    pub fn new(secret: &[u8], issuer: &str, audience: &str, ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.into(),
            audience: audience.into(),
            ttl_secs: ttl_secs as i64,
            verified: Default::default(),
        }
    }

    /// How long a token lives.
    pub fn ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.ttl_secs.max(0) as u64)
    }

    /// A token for `user` at token version `version`; returns it and its expiry (seconds since
    /// the epoch).
    pub fn issue(
        &self,
        user: UserId,
        role: Role,
        version: u32,
        now: i64,
    ) -> Result<(String, i64), ApiError> {
        let claims = Claims {
            sub: user.to_string(),
            role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.ttl_secs,
            jti: format!("{:032x}", rand::random::<u128>()),
            ver: version,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(|e| ApiError::new(Code::Internal, format!("token signing failed: {e}")))?;
        Ok((token, claims.exp))
    }

    /// Verifies a token: signature (pinned algorithm), `exp`, `iss`, `aud`. A token verified
    /// before answers from memory until its `exp`.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let now = chrono::Utc::now().timestamp();
        if let Some(c) = self.verified.read().get(token).filter(|c| c.exp > now) {
            return Ok(c.clone());
        }
        let claims = self.verify_signed(token)?;
        let mut cache = self.verified.write();
        if cache.len() >= VERIFIED_CAP {
            cache.clear();
        }
        cache.insert(token.into(), claims.clone());
        Ok(claims)
    }

    fn verify_signed(&self, token: &str) -> Result<Claims, ApiError> {
        decode::<Claims>(token, &self.dec, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer => {
                        "token not issued for this API"
                    }
                    ErrorKind::InvalidAlgorithm => "token algorithm not accepted",
                    _ => "invalid token",
                };
                ApiError::new(Code::Unauthenticated, why)
            })
    }
}

/// Hashes a password with argon2id on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?
    .map_err(|e| ApiError::new(Code::Internal, format!("hashing failed: {e}")))
}

/// Checks a password against a stored hash on a blocking thread.
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        PasswordHash::new(&hash)
            .map(|h| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// User id.
    pub id: UserId,
    /// Role.
    pub role: Role,
    /// The token's id.
    pub token_id: String,
    /// The token's expiry (seconds since the epoch).
    pub expires_at: i64,
    /// The user's token version the token was issued at.
    pub token_version: u32,
}

/// Authenticates an `Authorization` value (`Bearer <token>`): the token verifies and is not
/// revoked. HTTP and gRPC both authenticate through here.
pub async fn authenticate(state: &AppState, header: Option<&str>) -> Result<AuthUser, ApiError> {
    let user = verify_bearer(state, header)?;
    ensure_unrevoked(state, &user).await?;
    Ok(user)
}

/// The first half of [`authenticate`], with no I/O: the token's signature, algorithm, `exp`,
/// `iss` and `aud`. Its revocation is still to be checked ([`ensure_unrevoked`]).
pub fn verify_bearer(state: &AppState, header: Option<&str>) -> Result<AuthUser, ApiError> {
    let header =
        header.ok_or_else(|| ApiError::new(Code::Unauthenticated, "missing bearer token"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::new(Code::Unauthenticated, "expected 'Bearer <token>'"))?;
    let claims = state.tokens.verify(token.trim())?;
    let id = claims
        .sub
        .parse()
        .map(UserId)
        .map_err(|_| ApiError::new(Code::Unauthenticated, "invalid token subject"))?;
    Ok(AuthUser {
        id,
        role: claims.role,
        token_id: claims.jti,
        expires_at: claims.exp,
        token_version: claims.ver,
    })
}

/// The second half of [`authenticate`]: refuses a revoked token (logout, or a password change
/// since it was issued) with `Unauthenticated`. One [`SessionStore`](seckill_core::SessionStore)
/// call.
pub async fn ensure_unrevoked(state: &AppState, user: &AuthUser) -> seckill_core::Result<()> {
    let revoked = state
        .engine
        .backends()
        .sessions
        .is_revoked(user.id, &user.token_id, user.token_version)
        .await?;
    if revoked {
        return Err(seckill_core::Error::Unauthenticated("token revoked".into()));
    }
    Ok(())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(state, bearer(parts)).await
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// A caller whose token verified but whose revocation is not checked yet ([`verify_bearer`]):
/// only the buy takes it, and `service::buy::place` checks the revocation after the engine's
/// in-memory refusals ([`Engine::buy_gated`](seckill_core::engine::Engine::buy_gated)), so a
/// sold-out sale answers with no I/O. Anything else takes [`AuthUser`].
#[derive(Debug, Clone)]
pub struct SignedUser(pub AuthUser);

impl FromRequestParts<AppState> for SignedUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        verify_bearer(state, bearer(parts)).map(SignedUser)
    }
}

/// An authenticated admin.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let u = AuthUser::from_request_parts(parts, state).await?;
        if u.role != Role::Admin {
            return Err(ApiError::new(Code::Forbidden, "admin role required"));
        }
        Ok(AdminUser(u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_checked() {
        let t = Tokens::new(b"k", "iss", "aud", 60);
        let now = chrono::Utc::now().timestamp();
        let (tok, exp) = t.issue(UserId(7), Role::User, 3, now).unwrap();
        assert_eq!(exp, now + 60);
        let c = t.verify(&tok).unwrap();
        assert_eq!((c.sub.as_str(), c.ver), ("7", 3));
        // Expired.
        let (old, _) = t.issue(UserId(7), Role::User, 0, now - 3600).unwrap();
        assert_eq!(t.verify(&old).unwrap_err().message, "token expired");
        // Other key, other audience.
        assert!(Tokens::new(b"other", "iss", "aud", 60)
            .verify(&tok)
            .is_err());
        assert!(Tokens::new(b"k", "iss", "other", 60).verify(&tok).is_err());
        // alg=none is refused.
        let none = format!(
            "{}.{}.",
            base64_url("{\"alg\":\"none\",\"typ\":\"JWT\"}"),
            tok.split('.').nth(1).unwrap()
        );
        assert!(t.verify(&none).is_err());
    }

    fn base64_url(s: &str) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let b = s.as_bytes();
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn a_verified_token_is_remembered_only_until_it_expires() {
        let t = Tokens::new(b"k", "iss", "aud", 2);
        let now = chrono::Utc::now().timestamp();
        // Expires in 2 s (plus the validator's 5 s leeway for the first, signed check).
        let (tok, _) = t.issue(UserId(9), Role::User, 0, now - 1).unwrap();
        assert_eq!(t.verify(&tok).unwrap().sub, "9");
        assert_eq!(t.verify(&tok).unwrap().sub, "9", "from memory");
        assert!(t.verified.read().contains_key(tok.as_str()));
        // A token differing in one character is not the remembered one.
        let mut forged = tok.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert!(t.verify(&forged).is_err());
        // Past `exp` the memory is not used: the signed check (with its leeway) decides.
        let (old, _) = t.issue(UserId(9), Role::User, 0, now - 60).unwrap();
        t.verified.write().insert(
            old.as_str().into(),
            Claims {
                exp: now - 1,
                ..t.verify_signed(&tok).unwrap()
            },
        );
        assert_eq!(t.verify(&old).unwrap_err().message, "token expired");
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let h = hash_password("s3cret-pass".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret-pass".into(), h.clone()).await);
        assert!(!verify_password("wrong".into(), h).await);
    }
}
