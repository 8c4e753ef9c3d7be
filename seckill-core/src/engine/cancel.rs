//! Step 4: cancellation — by the buyer, by an operator, or by the timeout worker when the
//! payment deadline passes. Each is a compare-and-set `pending_payment → cancelled` followed by
//! the release of the hold; a retry that finds the order cancelled still makes sure the hold is
//! released.

use super::faults::CrashPoint;
use super::Engine;
use crate::domain::{ActivityId, CancelReason, HoldId, Order, OrderId, OrderStatus, UserId};
use crate::repo::{StatusChange, StatusChanged};
use crate::{Entity, Error, Result};

impl Engine {
    /// Releases a hold's units (idempotent; the stock backend clears its sold-out flag).
    pub(crate) async fn release(&self, activity: ActivityId, hold: HoldId) -> Result<()> {
        self.backends()
            .stock
            .release(activity, hold)
            .await
            .map(|_| ())
    }

    async fn release_order(&self, o: &Order) -> Result<()> {
        self.release(o.activity_id, o.hold_id).await
    }

    /// Cancels a pending order (CAS), then releases its hold and drops its deadline. If the
    /// order is already cancelled, only makes sure the hold is released. Returns the order as it
    /// ends up, or `Err(Conflict)` if it is paid or refunded.
    pub async fn cancel(&self, id: OrderId, reason: CancelReason) -> Result<Order> {
        let b = self.backends();
        let change = StatusChange {
            from: OrderStatus::PendingPayment,
            to: OrderStatus::Cancelled,
            at: self.now(),
            payment_id: None,
            cancel_reason: Some(reason),
        };
        let order = match b.orders.change_status(id, change).await? {
            StatusChanged::Applied(o) => {
                self.metrics().orders_cancelled.inc();
                o
            }
            StatusChanged::Conflict(o) if o.status == OrderStatus::Cancelled => o,
            StatusChanged::Conflict(o) => {
                return Err(Error::conflict(
                    Entity::Order,
                    id,
                    format!("the order is {}", o.status),
                ))
            }
            StatusChanged::NotFound => return Err(Error::not_found(Entity::Order, id)),
        };
        self.crash_point(CrashPoint::AfterCancel)?;
        self.release_order(&order).await?;
        b.delay
            .cancel(&self.config().timeout_queue, &id.to_string())
            .await?;
        Ok(order)
    }

    /// The buyer cancels their own order. Someone else's order is `NotFound`.
    pub async fn cancel_by_user(&self, user: UserId, id: OrderId) -> Result<Order> {
        match self.backends().orders.order(id).await? {
            Some(o) if o.user_id == user => self.cancel(id, CancelReason::User).await,
            _ => Err(Error::not_found(Entity::Order, id)),
        }
    }

    /// Handles an order whose deadline item came due: cancels it if still unpaid after its
    /// deadline; otherwise makes sure a cancelled order's hold is released.
    pub async fn expire_order(&self, id: OrderId) -> Result<()> {
        let Some(o) = self.backends().orders.order(id).await? else {
            return Ok(());
        };
        match o.status {
            OrderStatus::PendingPayment if o.expires_at <= self.now() => {
                match self.cancel(id, CancelReason::Timeout).await {
                    Ok(_) => Ok(()),
                    // Paid in the meantime: nothing to expire.
                    Err(Error::Conflict { .. }) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            OrderStatus::PendingPayment => {
                // Not due yet (the deadline moved): put it back at the order's deadline.
                self.backends()
                    .delay
                    .schedule(&self.config().timeout_queue, &id.to_string(), o.expires_at)
                    .await
            }
            OrderStatus::Cancelled => self.release_order(&o).await,
            OrderStatus::Paid | OrderStatus::Refunded => Ok(()),
        }
    }

    /// One pass of the timeout worker: claims due deadlines, expires their orders, completes
    /// the items. Returns how many items it handled.
    pub async fn timeout_once(&self) -> Result<usize> {
        let b = self.backends();
        let q = &self.config().timeout_queue;
        let items = b
            .delay
            .claim(
                q,
                self.now(),
                self.config().batch_size,
                self.config().timeout_lease,
            )
            .await?;
        for it in &items {
            if let Ok(id) = it.id.parse::<i64>() {
                self.expire_order(OrderId(id)).await?;
            }
            self.crash_point(CrashPoint::TimeoutBeforeComplete)?;
            // `false` when the cancel above already removed the item, or it was rescheduled.
            b.delay.complete(q, &it.id, it.token).await?;
        }
        Ok(items.len())
    }

    /// The safety net behind the delay queue: cancels pending orders past their deadline that
    /// the queue missed (each by exactly one sweeper), releases their holds and drops their
    /// deadlines. Returns how many it cancelled.
    pub async fn sweep_expired(&self) -> Result<usize> {
        let b = self.backends();
        let orders = b
            .orders
            .cancel_expired(self.now(), self.config().batch_size)
            .await?;
        self.metrics().orders_cancelled.inc_by(orders.len() as u64);
        for o in &orders {
            self.crash_point(CrashPoint::AfterCancel)?;
            self.release_order(o).await?;
            b.delay
                .cancel(&self.config().timeout_queue, &o.id.to_string())
                .await?;
        }
        Ok(orders.len())
    }
}
