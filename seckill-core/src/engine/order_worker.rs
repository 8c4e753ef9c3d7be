//! Step 3: the order worker turns holds into orders.
//!
//! For each delivery: one repository call does inbox + guarded stock update + order insert
//! ([`crate::repo::OrderRepo::create_from_hold`]); then the hold is confirmed, the payment
//! deadline scheduled, and the message acked. A redelivery finds the order written and still
//! finishes the steps after the commit. A hold the database refuses is released.

use super::faults::CrashPoint;
use super::Engine;
use crate::broker::Subscription;
use crate::domain::{Hold, HoldEvent, HoldState, Order, OrderStatus};
use crate::repo::{CreateOrder, StatusChange, StatusChanged};
use crate::stock::Transition;
use crate::trace::TRACEPARENT_HEADER;
use crate::{Entity, Error, Result};
use std::collections::HashMap;
use std::time::Duration;

/// How long a batch that failed on a retryable error is retried in place before it is handed
/// back to the broker.
const RETRY_IN_PLACE_FOR: Duration = Duration::from_secs(20);

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
        let mut done = self
            .process_holds(&[(hold.clone(), message_id.to_string())])
            .await?;
        done.pop()
            .ok_or_else(|| Error::backend("engine", "empty batch result"))?
    }

    /// [`Engine::process_hold`] for a batch: the orders are written by one repository call
    /// ([`crate::repo::OrderRepo::create_from_holds`], one transaction where the backend can),
    /// then each hold's later steps run. One result per hold, in order: `Err` for a hold whose
    /// order could not be built (its activity is missing), else as `process_hold`.
    pub async fn process_holds(
        &self,
        holds: &[(Hold, String)],
    ) -> Result<Vec<Result<Option<Order>>>> {
        self.process_traced_holds(holds, &[]).await
    }

    /// [`Engine::process_holds`], each hold's database transaction traced as a child of the
    /// `traceparent` at its index in `traces` (if any).
    async fn process_traced_holds(
        &self,
        holds: &[(Hold, String)],
        traces: &[Option<String>],
    ) -> Result<Vec<Result<Option<Order>>>> {
        let b = self.backends();
        self.crash_point(CrashPoint::WorkerBeforeInsert)?;
        let mut results: Vec<Option<Result<Option<Order>>>> = Vec::with_capacity(holds.len());
        let mut batch = Vec::with_capacity(holds.len());
        let mut activities: HashMap<_, crate::domain::Activity> = HashMap::new();
        for (i, (hold, message_id)) in holds.iter().enumerate() {
            if let std::collections::hash_map::Entry::Vacant(slot) =
                activities.entry(hold.activity_id)
            {
                match b.catalog.activity(hold.activity_id).await? {
                    Some(a) => {
                        slot.insert(a);
                    }
                    None => {
                        results.push(Some(Err(Error::not_found(
                            Entity::Activity,
                            hold.activity_id,
                        ))));
                        continue;
                    }
                }
            }
            let a = &activities[&hold.activity_id];
            // A plain sale's price × units; a session's each line at its tier's price.
            if a.tiers.is_empty() != hold.lines.is_empty() {
                results.push(Some(Err(Error::invalid(format!(
                    "hold {}: its tier lines do not fit its activity's tiers",
                    hold.id
                )))));
                continue;
            }
            let amount = if hold.lines.is_empty() {
                a.price.checked_mul(hold.quantity)
            } else {
                crate::domain::tier::lines_amount(&a.tiers, &hold.lines)
            };
            let Some(amount) = amount else {
                results.push(Some(Err(Error::invalid(format!(
                    "hold {}: its amount overflows, or a line names a tier its session lacks",
                    hold.id
                )))));
                continue;
            };
            results.push(None);
            batch.push((
                message_id.clone(),
                Order {
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
                    trace_parent: traces.get(i).cloned().flatten(),
                    lines: hold.lines.clone(),
                    holders: hold.holders.clone(),
                },
            ));
        }
        // One span per traced hold for the one transaction that writes the batch.
        let db_spans: Vec<tracing::Span> = traces
            .iter()
            .flatten()
            .map(|tp| {
                b.tracing.child_of(
                    tracing::info_span!(
                        "db.create_orders",
                        orders = batch.len(),
                        otel.kind = "client"
                    ),
                    Some(tp),
                )
            })
            .collect();
        let created = if batch.is_empty() {
            Vec::new()
        } else {
            b.orders.create_from_holds(&batch).await?
        };
        drop(db_spans);
        if created.len() != batch.len() {
            return Err(Error::backend(
                "engine",
                "order batch answered a different count",
            ));
        }
        self.crash_point(CrashPoint::WorkerAfterInsert)?;
        let mut created = created.into_iter();
        let mut out = Vec::with_capacity(holds.len());
        for ((hold, _), slot) in holds.iter().zip(results) {
            out.push(match slot {
                Some(err) => err,
                None => {
                    let outcome = created.next().expect("one outcome per built order");
                    Ok(self.after_insert(hold, outcome).await?)
                }
            });
        }
        Ok(out)
    }

    /// The steps after the order transaction: confirm (or release) the hold, schedule the
    /// payment deadline. Safe to repeat.
    async fn after_insert(&self, hold: &Hold, outcome: CreateOrder) -> Result<Option<Order>> {
        let b = self.backends();
        let order = match outcome {
            CreateOrder::Created(o) => {
                let m = self.metrics();
                m.orders_created.inc();
                let age = (self.now() - hold.created_at).to_std().unwrap_or_default();
                m.order_create.observe(age);
                o
            }
            CreateOrder::Duplicate(o) => o,
            CreateOrder::Rejected(why) => {
                tracing::warn!(hold = %hold.id, ?why, "database guard refused a hold; releasing it");
                self.metrics().orders_rejected.inc();
                // The refusal is final: its buyer hears so now (410, code 4003), not at the
                // payment deadline. (A stock backend that rewound can let a buyer past the
                // limit or the stock for a moment; the database refuses, the buyer is told.)
                // Another copy of the hold may have written the order meanwhile (the refusal
                // kept no inbox entry): then that order stands and keeps its hold.
                match b
                    .orders
                    .void_unwritten(hold.order_id, hold.user_id, self.now())
                    .await?
                {
                    crate::repo::Voided::Written(o) => o,
                    crate::repo::Voided::Now | crate::repo::Voided::Already => {
                        self.release(hold.activity_id, hold.id).await?;
                        return Ok(None);
                    }
                }
            }
        };
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
                self.metrics().orders_cancelled.inc();
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
        let mut holds = Vec::with_capacity(batch.len());
        let mut tags = Vec::with_capacity(batch.len());
        // A traced hold's delivery gets a span, a child of the relay's, open until it is acked.
        let tracing = &self.engine.backends().tracing;
        let mut spans = Vec::new();
        let mut traces = Vec::with_capacity(batch.len());
        for d in batch {
            match serde_json::from_slice::<HoldEvent>(&d.message.payload) {
                Ok(e) => {
                    let id = e.message_id();
                    let parent = d.message.headers.get(TRACEPARENT_HEADER);
                    let trace = parent.and_then(|p| {
                        let span = tracing.child_of(
                            tracing::info_span!("order_worker.deliver", hold = %e.hold.id, attempt = d.attempt, otel.kind = "consumer"),
                            Some(p),
                        );
                        let tp = tracing.of(&span);
                        spans.push(span);
                        tp
                    });
                    traces.push(trace);
                    holds.push((e.hold, id));
                    tags.push(d.tag);
                }
                Err(e) => {
                    // Never decodable: nack it until it goes to the dead-letter topic.
                    tracing::warn!(error = %e, attempt = d.attempt, "undecodable hold event");
                    self.sub.nack(&d.tag).await?;
                }
            }
        }
        if holds.is_empty() {
            return Ok(0);
        }
        // A backend down for a moment (the database failing over, Redis restarting) is waited
        // out with the deliveries still ours: a nack may fail in the same outage, and the
        // broker's redelivery would bring them back only after its timeout.
        let engine = &self.engine;
        let results = match super::retry::retry_for(RETRY_IN_PLACE_FOR, "order batch", || {
            engine.process_traced_holds(&holds, &traces)
        })
        .await
        {
            Ok(r) => r,
            Err(e @ Error::Crashed(_)) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, n = tags.len(), "order batch failed; redelivering it");
                for t in &tags {
                    self.sub.nack(t).await?;
                }
                return Ok(0);
            }
        };
        let mut done = Vec::with_capacity(tags.len());
        for (tag, r) in tags.into_iter().zip(results) {
            match r {
                Ok(_) => done.push(tag),
                Err(e) => {
                    tracing::warn!(error = %e, "order worker failed a delivery");
                    self.sub.nack(&tag).await?;
                }
            }
        }
        self.engine.crash_point(CrashPoint::WorkerBeforeAck)?;
        if !done.is_empty() {
            self.sub.ack(&done).await?;
        }
        drop(spans);
        Ok(done.len())
    }
}
