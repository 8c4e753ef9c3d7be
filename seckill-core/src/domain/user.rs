//! Users.

use super::UserId;
use crate::Timestamp;
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
