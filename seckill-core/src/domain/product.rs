//! Products: what is sold.

use super::{Money, ProductId};
use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// A show's ticket tier, or goods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}
