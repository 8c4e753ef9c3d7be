//! Payments.

use super::{Money, OrderId, PaymentId, UserId};
use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Created at the provider, waiting for its callback.
    Pending,
    /// The provider reported the money taken.
    Succeeded,
    /// The provider reported a failure.
    Failed,
    /// The provider took the money, but the order is already paid by another payment: it must
    /// go back. (An order has at most one `Succeeded` payment.)
    RefundDue,
    /// The money went back (a late payment for a cancelled order, a second payment for a paid
    /// order, or a refund of a paid order).
    Refunded,
}

/// One payment attempt for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Payment {
    /// Snowflake id; sent to the provider as the merchant reference.
    pub id: PaymentId,
    /// The order paid for.
    pub order_id: OrderId,
    /// The payer.
    pub user_id: UserId,
    /// Provider name (`mock`, …).
    pub provider: String,
    /// The order's amount at creation.
    pub amount: Money,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The provider's transaction id, once it called back (unique across payments).
    pub provider_txn_id: Option<String>,
    /// How many verified callbacks arrived for it (duplicates included).
    pub callbacks_seen: u32,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Last change.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}
