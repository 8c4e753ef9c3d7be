//! A buyer's order by id: written, still on its way, or lost.
//!
//! A buy is answered 202 with its order id before the order exists: the order worker writes it
//! moments later. If the stock backend loses the hold before then (a Redis restarted without
//! its data, or rewound), the order never comes. Its buyer must not wait for ever: once the
//! hold's payment deadline has passed (the order could no longer be paid anyway), the id is
//! declared lost in the database ([`crate::repo::OrderRepo::void_unwritten`]), atomically with
//! the order transaction, so the answer "lost" is final: a late delivery of the hold is refused
//! and its units released, and nothing is ever charged for it. A hold the database's guard
//! refused (a stock backend that rewound let it past the stock or the limit) is declared so
//! by the order worker at once, and its buyer hears "lost" at once.

use super::Engine;
use crate::domain::{ids::Snowflake, Order, OrderId, UserId};
use crate::repo::Voided;
use crate::{Result, Timestamp};

/// For how many days past its deadline an unwritten id is still declared lost when asked for
/// (older ids, and made-up ones, stay "pending": no row is written for them).
const VOID_WINDOW_DAYS: i64 = 7;

/// What a buyer's order id stands for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderLookup {
    /// The order.
    Written(Order),
    /// Not written yet; it may still come (within moments normally). Ask again.
    Pending,
    /// Its reservation was lost before its order was written: the buy failed, nothing is or
    /// will be charged, and no order with this id will ever appear.
    Lost {
        /// Past this the id was declared lost (its payment deadline).
        deadline: Timestamp,
    },
}

impl Engine {
    /// `user`'s order `id`. Someone else's order, or an id that is not a buy's, answers
    /// `Pending` until its deadline and `Lost` after (an id reveals nothing about others).
    ///
    /// The reads go to [`crate::engine::Backends::read`] (a replica a moment behind answers
    /// `Pending` for an order just written, which is true of an order on its way); declaring
    /// an id lost is a write on the primary, which answers with the order if it is written.
    pub async fn order_lookup(&self, user: UserId, id: OrderId) -> Result<OrderLookup> {
        let orders = self.backends().read().orders;
        if let Some(o) = orders.order(id).await? {
            return Ok(if o.user_id == user {
                OrderLookup::Written(o)
            } else {
                OrderLookup::Pending
            });
        }
        let Some(deadline) = self.void_deadline(id) else {
            return Ok(OrderLookup::Pending);
        };
        // Refused by the database's guard already (or declared lost by an earlier lookup).
        if orders.is_voided(id).await? {
            return Ok(OrderLookup::Lost { deadline });
        }
        if self.now() < deadline || super::sabotage::on(super::sabotage::Sabotage::NoVoid) {
            return Ok(OrderLookup::Pending);
        }
        // Only ids of recent buys are declared: an old or made-up id leaves no row behind.
        if self.now() > deadline + chrono::Duration::days(VOID_WINDOW_DAYS) {
            return Ok(OrderLookup::Pending);
        }
        Ok(
            match self
                .backends()
                .orders
                .void_unwritten(id, user, self.now())
                .await?
            {
                Voided::Now => {
                    tracing::warn!(order = %id, user = %user,
                    "an acknowledged order was never written by its deadline; declared lost");
                    self.metrics().orders_lost.inc();
                    OrderLookup::Lost { deadline }
                }
                Voided::Already => OrderLookup::Lost { deadline },
                Voided::Written(o) if o.user_id == user => OrderLookup::Written(o),
                Voided::Written(_) => OrderLookup::Pending,
            },
        )
    }

    /// When an unwritten order id may be declared lost: its hold's payment deadline (the id's
    /// time plus the payment timeout). The void is atomic with the order transaction, so no
    /// margin is needed for correctness; the deadline only bounds how long a buyer waits.
    fn void_deadline(&self, id: OrderId) -> Option<Timestamp> {
        let minted = Snowflake::time_of(id.0)?;
        let wait = chrono::Duration::from_std(self.config().payment_timeout).ok()?;
        minted.checked_add_signed(wait)
    }
}
