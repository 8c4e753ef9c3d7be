//! Products: what is sold.

use super::text::{check_free_text, check_line};
use super::{Money, ProductId};
use crate::{Error, Result, Timestamp};
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

impl Product {
    /// Most characters in a name.
    pub const NAME_MAX: usize = 200;
    /// Most characters in a description.
    pub const DESCRIPTION_MAX: usize = 2000;

    /// The rules every stored product obeys (the engine checks them on every write): a name of
    /// 1 to [`Product::NAME_MAX`] characters, a description of at most
    /// [`Product::DESCRIPTION_MAX`], no control characters, a price that is not negative.
    pub fn validate(&self) -> Result<()> {
        check_line("name", &self.name, 1, Self::NAME_MAX)?;
        check_free_text("description", &self.description, Self::DESCRIPTION_MAX)?;
        if self.list_price.0 < 0 {
            return Err(Error::invalid("list_price must not be negative"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let ok = Product {
            id: ProductId(1),
            name: "VIP".into(),
            description: String::new(),
            list_price: Money(0),
            created_at: chrono::Utc::now(),
        };
        assert!(ok.validate().is_ok());
        let bad = |f: fn(&mut Product)| {
            let mut p = ok.clone();
            f(&mut p);
            p.validate().unwrap_err().to_string()
        };
        assert!(bad(|p| p.name = " ".into()).contains("name"));
        assert!(bad(|p| p.name = "a\0".into()).contains("name"));
        assert!(bad(|p| p.description = "\0".into()).contains("description"));
        assert!(bad(|p| p.list_price = Money(-1)).contains("list_price"));
    }
}
