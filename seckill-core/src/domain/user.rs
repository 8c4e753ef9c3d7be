//! Users.

use super::text::check_line;
use super::UserId;
use crate::{Error, Result, Timestamp};
use serde::{Deserialize, Serialize};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A buyer.
    User,
    /// An operator: manages products, activities and orders.
    Admin,
}

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Snowflake id.
    pub id: UserId,
    /// Unique login name.
    pub username: String,
    /// Phone number, if given.
    pub phone: Option<String>,
    /// argon2 PHC string; never serialized to clients by the server.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Bumped when the password changes, so tokens issued before stop working.
    pub token_version: u32,
    /// When the user registered.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

impl User {
    /// Usernames: 3 to 32 characters.
    pub const USERNAME_LEN: (usize, usize) = (3, 32);
    /// Passwords: 8 to 128 characters.
    pub const PASSWORD_LEN: (usize, usize) = (8, 128);
    /// Phones: 6 to 20 characters.
    pub const PHONE_LEN: (usize, usize) = (6, 20);

    /// The rules every stored user obeys (the engine checks them on every write): see
    /// [`User::check_username`] and [`User::check_phone`].
    pub fn validate(&self) -> Result<()> {
        Self::check_username(&self.username)?;
        if let Some(p) = &self.phone {
            Self::check_phone(p)?;
        }
        Ok(())
    }

    /// A username: 3 to 32 characters of ASCII letters, digits, `_`, `-` and `.`.
    pub fn check_username(u: &str) -> Result<()> {
        let (min, max) = Self::USERNAME_LEN;
        let ok_chars = u
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if !(min..=max).contains(&u.len()) || !ok_chars {
            return Err(Error::invalid(
                "username: 3 to 32 characters of letters, digits, '_', '-', '.'",
            ));
        }
        Ok(())
    }

    /// A password (checked before it is hashed): 8 to 128 characters, no control characters.
    pub fn check_password(p: &str) -> Result<()> {
        let (min, max) = Self::PASSWORD_LEN;
        check_line("password", p, min, max)
            .map_err(|_| Error::invalid("password: 8 to 128 characters, no control characters"))
    }

    /// A phone number: 6 to 20 characters, digits with an optional leading `+`.
    pub fn check_phone(p: &str) -> Result<()> {
        let (min, max) = Self::PHONE_LEN;
        let digits = p.strip_prefix('+').unwrap_or(p);
        if !(min..=max).contains(&p.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid(
                "phone: 6 to 20 characters, digits with an optional leading '+'",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(User::check_username("bob_1.x-y").is_ok());
        for bad in ["", "ab", "bob\0", "bob smith", "名字名字", &"a".repeat(33)] {
            assert!(User::check_username(bad).is_err(), "{bad:?}");
        }
        assert!(User::check_password("correct horse").is_ok());
        for bad in ["short", "long enough\0", &"p".repeat(129)] {
            assert!(User::check_password(bad).is_err(), "{bad:?}");
        }
        assert!(User::check_phone("+8613800138000").is_ok());
        for bad in ["", "12345", "++123456", "1380013800\0", "138-0013-8000"] {
            assert!(User::check_phone(bad).is_err(), "{bad:?}");
        }
    }
}
