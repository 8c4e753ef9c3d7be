//! Holds: units taken from stock by the atomic reserve step, waiting to become an order.

use super::{ActivityId, HoldId, Holder, OrderId, TierLine, UserId};
use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// Units of an activity reserved for one user. Its id and the id of the order it becomes are
/// both assigned at reserve time. The hold travels from the stock backend through the outbox and
/// the broker to the order worker as a [`HoldEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hold {
    /// Snowflake id; unique across holds, and unique among orders (one order per hold).
    pub id: HoldId,
    /// The order this hold becomes.
    pub order_id: OrderId,
    /// The activity whose stock it holds.
    pub activity_id: ActivityId,
    /// The buyer.
    pub user_id: UserId,
    /// Units held (≥ 1).
    pub quantity: u32,
    /// When it was reserved.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Payment deadline of the order it becomes.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
    /// Its units per price tier, adding up to `quantity` (docs/adr/0021); empty for a plain
    /// sale, whose messages are then as they always were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<TierLine>,
    /// Its tickets' holders, one per unit in line order, for a real-name session
    /// (docs/adr/0021; document numbers only hashed and masked); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<Holder>,
}

/// Where a hold stands in the stock backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HoldState {
    /// Reserved; its order may not be written yet. Counts as `held`.
    Held,
    /// Its order is written. Counts as `sold`.
    Confirmed,
    /// Given back: its units are available again and the user's quota restored.
    Released,
}

/// The message the relay hands to the broker for every hold (the outbox entry's payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HoldEvent {
    /// The hold.
    pub hold: Hold,
}

impl HoldEvent {
    /// The message id used for de-duplication: one per hold.
    pub fn message_id(&self) -> String {
        format!("hold-{}", self.hold.id)
    }
}
