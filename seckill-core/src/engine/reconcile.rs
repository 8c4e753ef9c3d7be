//! Step 6: the reconciler. Per activity, under its lock, it compares the stock backend with the
//! database, checks `total = available + held + sold`, and repairs what a crash left behind:
//! holds whose order was written but not confirmed, holds of cancelled orders not released,
//! holds stranded without an order (their order is written now, or they are released if the
//! database refuses), and pending orders past their deadline. Across activities it settles
//! succeeded payments whose order did not take them (refund) or was not yet marked paid.

use super::Engine;
use crate::domain::{ActivityId, Hold, HoldState, Order, OrderStatus, Payment, PaymentStatus};
use crate::stock::StockSnapshot;
use crate::{Entity, Error, Result};
use serde::Serialize;
use std::collections::HashMap;

/// Something the reconciler found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Issue {
    /// `total ≠ available + held + sold`, or something negative.
    Unbalanced {
        /// The figures.
        snapshot: StockSnapshot,
    },
    /// The backend's sold units differ from the database's.
    SoldMismatch {
        /// Backend's sold plus held units that already have orders.
        backend: i64,
        /// Database's `sold`.
        database: u32,
    },
    /// A hold whose order is written but which is not confirmed.
    UnconfirmedHold {
        /// The hold.
        hold: Hold,
    },
    /// A hold whose order is cancelled but which still holds units.
    CancelledButHeld {
        /// The hold.
        hold: Hold,
    },
    /// A hold older than the grace period with no order.
    StrandedHold {
        /// The hold.
        hold: Hold,
    },
    /// An order holding stock whose hold the backend does not have (the backend lost data).
    OrderWithoutHold {
        /// The order.
        order: Order,
    },
    /// A pending order past its deadline.
    ExpiredPending {
        /// The order.
        order: Order,
    },
}

impl Issue {
    /// The issue's kind, as its `kind` field in JSON and its label in
    /// `seckill_reconcile_findings` (one of [`FINDING_KINDS`](super::metrics::FINDING_KINDS)).
    pub fn kind(&self) -> &'static str {
        match self {
            Issue::Unbalanced { .. } => "unbalanced",
            Issue::SoldMismatch { .. } => "sold_mismatch",
            Issue::UnconfirmedHold { .. } => "unconfirmed_hold",
            Issue::CancelledButHeld { .. } => "cancelled_but_held",
            Issue::StrandedHold { .. } => "stranded_hold",
            Issue::OrderWithoutHold { .. } => "order_without_hold",
            Issue::ExpiredPending { .. } => "expired_pending",
        }
    }
}

/// The reconciler's findings for one activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReconcileReport {
    /// The activity.
    pub activity_id: ActivityId,
    /// Stock figures after any repair (`None`: never warmed up).
    pub snapshot: Option<StockSnapshot>,
    /// The database's sold units after any repair.
    pub db_sold: u32,
    /// What was found (before repair).
    pub issues: Vec<Issue>,
    /// How many issues were repaired.
    pub repaired: usize,
    /// Whether, after repair, the figures balance and agree with the database.
    pub consistent: bool,
}

impl Engine {
    /// Reconciles one activity; repairs what it finds if `repair`.
    pub async fn reconcile(&self, id: ActivityId, repair: bool) -> Result<ReconcileReport> {
        self.with_activity_lock(id, |fence| self.reconcile_locked(id, repair, fence))
            .await
    }

    async fn reconcile_locked(
        &self,
        id: ActivityId,
        repair: bool,
        fence: u64,
    ) -> Result<ReconcileReport> {
        let b = self.backends();
        if b.catalog.activity(id).await?.is_none() {
            return Err(Error::not_found(Entity::Activity, id));
        }
        let now = self.now();
        let grace =
            chrono::Duration::from_std(self.config().reconcile_grace).map_err(Error::invalid)?;
        let orders: HashMap<_, _> = b
            .orders
            .activity_orders(id)
            .await?
            .into_iter()
            .map(|o| (o.hold_id, o))
            .collect();
        let live = b.stock.live_holds(id).await?;
        let mut issues = Vec::new();
        let mut repaired = 0;
        for rec in &live {
            let hold = &rec.hold;
            let issue = match (rec.state, orders.get(&hold.id)) {
                (_, Some(o)) if o.status == OrderStatus::Cancelled => {
                    Some(Issue::CancelledButHeld { hold: hold.clone() })
                }
                (HoldState::Held, Some(_)) => Some(Issue::UnconfirmedHold { hold: hold.clone() }),
                (HoldState::Held, None) if hold.created_at + grace <= now => {
                    Some(Issue::StrandedHold { hold: hold.clone() })
                }
                (HoldState::Confirmed, None) => Some(Issue::StrandedHold { hold: hold.clone() }),
                _ => None,
            };
            let Some(issue) = issue else { continue };
            if repair {
                match &issue {
                    Issue::CancelledButHeld { hold } => {
                        self.release(hold.activity_id, hold.id).await?
                    }
                    Issue::UnconfirmedHold { hold } | Issue::StrandedHold { hold } => {
                        let msg = crate::domain::HoldEvent { hold: hold.clone() }.message_id();
                        self.process_hold(hold, &msg).await?;
                    }
                    _ => {}
                }
                repaired += 1;
            }
            issues.push(issue);
        }
        let live_ids: std::collections::HashSet<_> = live.iter().map(|r| r.hold.id).collect();
        let mut holds_missing = false;
        for o in orders.values() {
            if o.status.holds_stock() && !live_ids.contains(&o.hold_id) {
                issues.push(Issue::OrderWithoutHold { order: o.clone() });
                holds_missing = true;
            }
            if o.status == OrderStatus::PendingPayment && o.expires_at <= now {
                issues.push(Issue::ExpiredPending { order: o.clone() });
                if repair {
                    self.expire_order(o.id).await?;
                    repaired += 1;
                }
            }
        }
        if repair && holds_missing {
            // The backend lost holds of live orders: a re-warm gives them back as confirmed.
            self.warm_up_locked(id, fence).await?;
            repaired += issues
                .iter()
                .filter(|i| matches!(i, Issue::OrderWithoutHold { .. }))
                .count();
        }
        // Figures after repair.
        let snapshot = b.stock.snapshot(id).await?;
        let activity = b
            .catalog
            .activity(id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Activity, id))?;
        let mut consistent = true;
        if let Some(s) = snapshot {
            if !s.balanced() {
                consistent = false;
                issues.push(Issue::Unbalanced { snapshot: s });
            }
            // Units of held holds whose order is already written count as sold in the DB.
            let orders_now: HashMap<_, _> = b
                .orders
                .activity_orders(id)
                .await?
                .into_iter()
                .map(|o| (o.hold_id, o.status))
                .collect();
            let in_flight: i64 = b
                .stock
                .live_holds(id)
                .await?
                .iter()
                .filter(|r| r.state == HoldState::Held)
                .filter(|r| orders_now.get(&r.hold.id).is_some_and(|s| s.holds_stock()))
                .map(|r| i64::from(r.hold.quantity))
                .sum();
            let backend = i64::from(s.sold) + in_flight;
            if backend != i64::from(activity.sold) {
                consistent = false;
                issues.push(Issue::SoldMismatch {
                    backend,
                    database: activity.sold,
                });
            }
        }
        if holds_missing && !repair {
            consistent = false;
        }
        if !repair
            && issues
                .iter()
                .any(|i| !matches!(i, Issue::ExpiredPending { .. }))
        {
            consistent = false;
        }
        Ok(ReconcileReport {
            activity_id: id,
            snapshot,
            db_sold: activity.sold,
            issues,
            repaired,
            consistent,
        })
    }

    /// This pass's page of payments in `status`: after where the last pass stopped, and from
    /// the start again once a scan reached the end. Each pass does a bounded amount of work
    /// (provider queries included), and no payment waits behind older ones for ever.
    async fn payment_page(&self, status: PaymentStatus) -> Result<Vec<Payment>> {
        let page = self.config().reconcile_page.max(1);
        let after = self.inner.payment_cursors.lock().get(&status).copied();
        let got = self
            .backends()
            .payments
            .payments_in(status, after, page)
            .await?;
        let mut cursors = self.inner.payment_cursors.lock();
        match got.last() {
            Some(last) if got.len() == page => cursors.insert(status, last.id),
            _ => cursors.remove(&status),
        };
        Ok(got)
    }

    /// Settles payments the callbacks left unfinished: asks the provider about pending payments
    /// (a callback may never have arrived), and settles every succeeded payment whose order is
    /// not paid by it (refunds late or double payments, finishes callbacks that crashed
    /// mid-way). Each pass looks at one page per status ([`EngineConfig::reconcile_page`]),
    /// going on from the last pass. Returns how many payments it changed or settled.
    ///
    /// [`EngineConfig::reconcile_page`]: super::EngineConfig::reconcile_page
    pub async fn reconcile_payments(&self) -> Result<usize> {
        let b = self.backends();
        let mut n = 0;
        for p in self.payment_page(PaymentStatus::Pending).await? {
            // A payment opened with a provider no longer configured cannot be asked about.
            let Some(provider) = b.providers.get(&p.provider) else {
                continue;
            };
            // One payment the provider cannot answer for now does not hold up the others.
            match provider.query(&p).await {
                Ok(Some(result)) => {
                    self.apply_notification(provider.name(), &result).await?;
                    n += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(payment = %p.id, error = %e, "asking the provider failed")
                }
            }
        }
        for p in self.payment_page(PaymentStatus::RefundDue).await? {
            self.settle(&p).await?;
            n += 1;
        }
        for p in self.payment_page(PaymentStatus::Succeeded).await? {
            let settled = self
                .backends()
                .orders
                .order(p.order_id)
                .await?
                .is_some_and(|o| o.status == OrderStatus::Paid && o.payment_id == Some(p.id));
            if !settled {
                self.settle(&p).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}
