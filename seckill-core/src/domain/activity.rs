//! Activities: flash sales of a product.

use super::text::check_line;
use super::{ActivityId, EventId, Money, ProductId, Quota, SeatBlock, Tier};
use crate::{Error, Result, Timestamp};
use serde::{Deserialize, Serialize};

/// Where an activity stands. `Scheduled`, `Live` and `Ended` follow from the clock;
/// `Cancelled` is set by an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActivityStatus {
    /// Before `starts_at`.
    Scheduled,
    /// Between `starts_at` (inclusive) and `ends_at` (exclusive).
    Live,
    /// At or after `ends_at`.
    Ended,
    /// Called off by an operator; nothing can be bought.
    Cancelled,
}

/// A flash sale of one product: a price, a stock and a time window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Activity {
    /// Snowflake id.
    pub id: ActivityId,
    /// What is sold.
    pub product_id: ProductId,
    /// Display title.
    pub title: String,
    /// Sale price of one unit, in minor units.
    pub price: Money,
    /// Units for sale.
    pub total_stock: u32,
    /// Units in orders that are pending payment, paid or refunded (the database's count; the
    /// guard `sold + n <= total_stock` is checked on every order insert).
    pub sold: u32,
    /// Most units one user may hold across all their live orders of this activity.
    pub per_user_limit: u32,
    /// Sale opens (inclusive).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub starts_at: Timestamp,
    /// Sale closes (exclusive).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub ends_at: Timestamp,
    /// Set by an operator to call the sale off.
    pub cancelled: bool,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Stock buckets its stock is split into (1 to 64, and at most what the stock backend
    /// keeps: the memory backend 64, Redis 1 so far; docs/adr/0020). Fixed at creation.
    #[serde(default = "one_bucket")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 64))]
    pub stock_buckets: u32,
    /// The event this activity is a session of (docs/adr/0021); `None` for a plain sale.
    #[serde(default)]
    pub event_id: Option<EventId>,
    /// Its price tiers (docs/adr/0021): empty for a plain sale of one price. With tiers,
    /// `total_stock` is the session's capacity over them and `price` the cheapest tier's; a
    /// buy names units per tier. Fixed at creation.
    #[serde(default)]
    pub tiers: Vec<Tier>,
    /// Caps that units of several tiers count against together, beside each tier's stock and
    /// the capacity. Fixed at creation.
    #[serde(default)]
    pub quotas: Vec<Quota>,
    /// Its seat map (docs/adr/0021): blocks of seats, each of one row and one tier, best
    /// first; empty for an unseated session. A seated tier's stock is its seat count, and
    /// each of its units is a seat. Fixed at creation.
    #[serde(default)]
    pub seats: Vec<SeatBlock>,
    /// Whether each ticket names its holder (实名制, docs/adr/0021): a buy then gives one
    /// holder (name, document kind and number) per ticket, and one document holds at most one
    /// live ticket of the session. Fixed at creation; one stock bucket.
    #[serde(default)]
    pub real_name: bool,
}

fn one_bucket() -> u32 {
    1
}

impl Activity {
    /// Most characters in a title.
    pub const TITLE_MAX: usize = 200;
    /// Most units one activity may sell.
    pub const STOCK_MAX: u32 = 10_000_000;

    /// The rules every stored activity obeys (the engine checks them on every write): a title
    /// of 1 to [`Activity::TITLE_MAX`] characters with no control characters, a price that is
    /// not negative, 1 to [`Activity::STOCK_MAX`] units, a per-user limit of at least 1, and a
    /// window that starts before it ends, and 1 to 64 stock buckets; its tiers and quotas
    /// obey [`check_tiers`](super::tier::check_tiers), and with tiers `price` is the cheapest
    /// tier's.
    pub fn validate(&self) -> Result<()> {
        check_line("title", &self.title, 1, Self::TITLE_MAX)?;
        if self.price.0 < 0 {
            return Err(Error::invalid("price must not be negative"));
        }
        if self.total_stock == 0 || self.total_stock > Self::STOCK_MAX {
            return Err(Error::invalid("total_stock: 1 to 10,000,000"));
        }
        if self.per_user_limit == 0 {
            return Err(Error::invalid("per_user_limit must be at least 1"));
        }
        if self.starts_at >= self.ends_at {
            return Err(Error::invalid("starts_at must be before ends_at"));
        }
        if self.stock_buckets == 0 || self.stock_buckets > crate::stock::MAX_BUCKETS {
            return Err(Error::invalid(format!(
                "stock_buckets: 1 to {}",
                crate::stock::MAX_BUCKETS
            )));
        }
        super::tier::check_tiers(
            &self.tiers,
            &self.quotas,
            self.total_stock,
            self.stock_buckets,
            Self::STOCK_MAX,
        )?;
        super::seat::check_seats(&self.tiers, &self.seats)?;
        if self.real_name && self.stock_buckets != 1 {
            return Err(Error::invalid(
                "stock_buckets: a real-name session has one stock bucket (docs/adr/0021)",
            ));
        }
        if let Some(cheapest) = self.tiers.iter().map(|t| t.price).min() {
            if self.price != cheapest {
                return Err(Error::invalid(
                    "price: with tiers, the cheapest tier's price",
                ));
            }
        }
        Ok(())
    }

    /// The status at `now`.
    pub fn status_at(&self, now: Timestamp) -> ActivityStatus {
        if self.cancelled {
            ActivityStatus::Cancelled
        } else if now < self.starts_at {
            ActivityStatus::Scheduled
        } else if now < self.ends_at {
            ActivityStatus::Live
        } else {
            ActivityStatus::Ended
        }
    }

    /// Whether the stock backend must hold the activity at `now`: not cancelled, and on sale
    /// now or later (the reconciler role re-warms such an activity when the backend lost it).
    pub fn kept_warm(&self, now: Timestamp) -> bool {
        matches!(
            self.status_at(now),
            ActivityStatus::Scheduled | ActivityStatus::Live
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn status_follows_the_clock() {
        let t = chrono::Utc::now();
        let mut a = Activity {
            id: ActivityId(1),
            product_id: ProductId(1),
            title: "t".into(),
            price: Money(100),
            total_stock: 1,
            sold: 0,
            per_user_limit: 1,
            starts_at: t,
            ends_at: t + Duration::hours(1),
            cancelled: false,
            created_at: t,
            stock_buckets: 1,
            event_id: None,
            tiers: Vec::new(),
            quotas: Vec::new(),
            seats: Vec::new(),
            real_name: false,
        };
        assert_eq!(
            a.status_at(t - Duration::seconds(1)),
            ActivityStatus::Scheduled
        );
        assert_eq!(a.status_at(t), ActivityStatus::Live);
        assert_eq!(a.status_at(t + Duration::hours(1)), ActivityStatus::Ended);
        a.cancelled = true;
        assert_eq!(a.status_at(t), ActivityStatus::Cancelled);
        assert!(a.validate().is_ok());
        for (f, field) in [
            (
                (|a: &mut Activity| a.title = "\0".into()) as fn(&mut Activity),
                "title",
            ),
            (|a| a.price = Money(-1), "price"),
            (|a| a.total_stock = 0, "total_stock"),
            (|a| a.total_stock = Activity::STOCK_MAX + 1, "total_stock"),
            (|a| a.per_user_limit = 0, "per_user_limit"),
            (|a| a.ends_at = a.starts_at, "starts_at"),
            (
                |a| {
                    a.real_name = true;
                    a.stock_buckets = 2
                },
                "stock_buckets",
            ),
        ] {
            let mut b = a.clone();
            f(&mut b);
            assert!(
                b.validate().unwrap_err().to_string().contains(field),
                "{field}"
            );
        }
    }
}
