//! Orders.

use super::{ActivityId, HoldId, Holder, Money, OrderId, PaymentId, TierLine, UserId};
use crate::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An order's life: `pending_payment → paid → refunded`, or `pending_payment → cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Written, waiting for payment until `expires_at`.
    PendingPayment,
    /// Paid.
    Paid,
    /// Cancelled by the user, by the timeout, or by an operator; its units went back to stock.
    Cancelled,
    /// Paid, then refunded.
    Refunded,
}

impl OrderStatus {
    /// Every status, in life order.
    pub const ALL: [OrderStatus; 4] = [
        OrderStatus::PendingPayment,
        OrderStatus::Paid,
        OrderStatus::Cancelled,
        OrderStatus::Refunded,
    ];

    /// Whether `self → to` is a legal transition.
    pub fn can_become(self, to: OrderStatus) -> bool {
        matches!(
            (self, to),
            (OrderStatus::PendingPayment, OrderStatus::Paid)
                | (OrderStatus::PendingPayment, OrderStatus::Cancelled)
                | (OrderStatus::Paid, OrderStatus::Refunded)
        )
    }

    /// Whether the order's units count as sold (everything but `cancelled`).
    pub fn holds_stock(self) -> bool {
        self != OrderStatus::Cancelled
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown order status {s:?}"))
    }
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The buyer cancelled.
    User,
    /// Not paid by `expires_at`.
    Timeout,
    /// An operator cancelled.
    Admin,
}

/// A purchase created from a hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Order {
    /// Snowflake id, assigned at reserve time.
    pub id: OrderId,
    /// The hold it came from (unique among orders).
    pub hold_id: HoldId,
    /// The buyer.
    pub user_id: UserId,
    /// The activity.
    pub activity_id: ActivityId,
    /// Units.
    pub quantity: u32,
    /// `price × quantity`, or with tiers each line's units × its tier's price, in minor units,
    /// from the activity (never from the client).
    pub amount: Money,
    /// Where it stands.
    pub status: OrderStatus,
    /// Payment deadline.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
    /// The payment that paid it, once paid.
    pub payment_id: Option<PaymentId>,
    /// Why it was cancelled, once cancelled.
    pub cancel_reason: Option<CancelReason>,
    /// When it was reserved.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Last status change.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
    /// The trace context (W3C `traceparent`) of the buy it came from, so the payment that
    /// settles it joins the buy's trace; `None` when untraced. Not part of any answer.
    #[serde(skip)]
    pub trace_parent: Option<String>,
    /// Its units per price tier, adding up to `quantity` (docs/adr/0021); empty (and left out
    /// of answers) for a plain sale.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<TierLine>,
    /// Its tickets' holders, one per unit in line order, for a real-name session
    /// (docs/adr/0021): names, document kinds, numbers masked and keyed-hashed; empty (and
    /// left out of answers) otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<Holder>,
}

impl Order {
    /// The hold the order was written from (what a stock backend that lost it gets back).
    pub fn hold(&self) -> super::Hold {
        super::Hold {
            id: self.hold_id,
            order_id: self.id,
            activity_id: self.activity_id,
            user_id: self.user_id,
            quantity: self.quantity,
            created_at: self.created_at,
            expires_at: self.expires_at,
            lines: self.lines.clone(),
            holders: self.holders.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_transitions_only() {
        use OrderStatus::*;
        assert!(PendingPayment.can_become(Paid));
        assert!(PendingPayment.can_become(Cancelled));
        assert!(Paid.can_become(Refunded));
        assert!(!Cancelled.can_become(Paid));
        assert!(!Paid.can_become(Cancelled));
        assert!(!Refunded.can_become(Paid));
        assert_eq!("paid".parse::<OrderStatus>(), Ok(Paid));
        assert!("bogus".parse::<OrderStatus>().is_err());
    }
}
