//! Products: what is sold.

use super::{Money, ProductId};
use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// A show's ticket tier, or goods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Snowflake id.
    pub id: ProductId,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The regular price, in minor units.
    pub list_price: Money,
    /// When it was created.
    pub created_at: Timestamp,
}
