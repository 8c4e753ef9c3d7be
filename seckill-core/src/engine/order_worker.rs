//! Step 3: the order worker turns holds into orders.
//!
//! For each delivery: one repository call does inbox + guarded stock update + order insert
//! ([`crate::repo::OrderRepo::create_from_hold`]); then the hold is confirmed, the payment
//! deadline scheduled, and the message acked. A redelivery finds the order written and still
//! finishes the steps after the commit. A hold the database refuses is released.

use super::faults::CrashPoint;
use super::Engine;
use crate::broker::{Delivery, Subscription};
use crate::domain::{Hold, HoldEvent, HoldState, Order, OrderStatus};
use crate::repo::{CreateOrder, StatusChange, StatusChanged};
use crate::stock::Transition;
use crate::{Error, Result};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// One order-worker consumer. Dropping it hands its unacked deliveries back to the group.
pub struct OrderWorker {
    engine: Engine,
    sub: Box<dyn Subscription>,
}

impl std::fmt::Debug for OrderWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderWorker").finish_non_exhaustive()
    }
}

impl Engine {
    /// Joins the order workers' consumer group.
    pub async fn order_worker(&self) -> Result<OrderWorker> {
        let sub = self
            .backends()
            .broker
            .subscribe(&self.config().holds_topic, &self.config().order_group)
            .await?;
        Ok(OrderWorker {
            engine: self.clone(),
            sub,
        })
    }

    /// Writes the order of `hold` (idempotent) and finishes every step after it. Shared by the
    /// order worker and the reconciler. Returns the order, or `None` if the database refused.
    pub async fn process_hold(&self, hold: &Hold, message_id: &str) -> Result<Option<Order>> {
        let b = self.backends();
        self.crash_point(CrashPoint::WorkerBeforeInsert)?;
        let Some(activity) = b.catalog.activity(hold.activity_id).await? else {
            return Err(Error::not_found(format!("activity {}", hold.activity_id)));
        };
        let amount = activity
            .price
            .checked_mul(hold.quantity)
            .ok_or_else(|| Error::invalid("order amount overflows"))?;
        let order = Order {
            id: hold.order_id,
            hold_id: hold.id,
            user_id: hold.user_id,
            activity_id: hold.activity_id,
            quantity: hold.quantity,
            amount,
            status: OrderStatus::PendingPayment,
            expires_at: hold.expires_at,
            payment_id: None,
            cancel_reason: None,
            created_at: hold.created_at,
            updated_at: self.now(),
        };
        let order = match b.orders.create_from_hold(message_id, &order).await? {
            CreateOrder::Created(o) => {
                let m = self.metrics();
                m.orders_created.fetch_add(1, Ordering::Relaxed);
                let age = (self.now() - hold.created_at).to_std().unwrap_or_default();
                m.order_create.observe(age);
                o
            }
            CreateOrder::Duplicate(o) => o,
            CreateOrder::Rejected(why) => {
                tracing::warn!(hold = %hold.id, ?why, "database guard refused a hold; releasing it");
                self.metrics()
                    .orders_rejected
                    .fetch_add(1, Ordering::Relaxed);
                self.release(hold.activity_id, hold.id).await?;
                return Ok(None);
            }
        };
        self.crash_point(CrashPoint::WorkerAfterInsert)?;
        if order.status.holds_stock() {
            match b.stock.confirm(hold.activity_id, hold.id).await? {
                Transition::Applied | Transition::AlreadyDone => {}
                Transition::Refused(HoldState::Released) => {
                    // Only a cancelled order releases its hold, so this order was cancelled by a
                    // concurrent step after we read it; make the database agree.
                    self.cancel_released(&order).await?;
                }
                Transition::Refused(_) | Transition::Unknown => {
                    tracing::error!(hold = %hold.id, "stock backend lost a hold; reconcile it");
                }
            }
        } else {
            self.release(hold.activity_id, hold.id).await?;
        }
        self.crash_point(CrashPoint::WorkerAfterConfirm)?;
        if order.status == OrderStatus::PendingPayment {
            b.delay
                .schedule(
                    &self.config().timeout_queue,
                    &order.id.to_string(),
                    order.expires_at,
                )
                .await?;
        }
        Ok(Some(order))
    }

    async fn cancel_released(&self, order: &Order) -> Result<()> {
        let change = StatusChange {
            from: OrderStatus::PendingPayment,
            to: OrderStatus::Cancelled,
            at: self.now(),
            payment_id: None,
            cancel_reason: Some(crate::domain::CancelReason::Timeout),
        };
        match self
            .backends()
            .orders
            .change_status(order.id, change)
            .await?
        {
            StatusChanged::Applied(_) => {
                self.metrics()
                    .orders_cancelled
                    .fetch_add(1, Ordering::Relaxed);
            }
            StatusChanged::Conflict(o) if o.status == OrderStatus::Paid => {
                tracing::error!(order = %o.id, "paid order whose hold was released; reconcile it");
            }
            _ => {}
        }
        Ok(())
    }
}

impl OrderWorker {
    /// Handles up to one batch, waiting at most `wait` for it. Returns how many deliveries it
    /// acked. An injected crash returns at once without acking anything further, as a dead
    /// process would.
    pub async fn run_once(&mut self, wait: Duration) -> Result<usize> {
        let batch = self
            .sub
            .fetch(self.engine.config().batch_size, wait)
            .await?;
        let mut done = Vec::with_capacity(batch.len());
        for d in batch {
            match handle(&self.engine, &d).await {
                Ok(()) => done.push(d.tag),
                Err(e @ Error::Crashed(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, attempt = d.attempt, "order worker failed a delivery");
                    self.sub.nack(&d.tag).await?;
                }
            }
        }
        if !done.is_empty() {
            self.sub.ack(&done).await?;
        }
        Ok(done.len())
    }
}

async fn handle(engine: &Engine, d: &Delivery) -> Result<()> {
    {
        let event: HoldEvent = match serde_json::from_slice(&d.message.payload) {
            Ok(e) => e,
            Err(e) => {
                // A message that can never parse would loop forever: nack it until it goes to
                // the dead-letter topic.
                return Err(Error::invalid(format!("undecodable hold event: {e}")));
            }
        };
        engine
            .process_hold(&event.hold, &event.message_id())
            .await?;
        engine.crash_point(CrashPoint::WorkerBeforeAck)
    }
}
