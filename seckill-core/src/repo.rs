//! Repositories: the system of record (users, catalog, orders with their inbox, payments).
//!
//! The in-memory store ([`crate::memory::MemoryStore`]) and PostgreSQL implement all four. The
//! order worker's whole step — inbox, guarded stock update, order insert — is **one** call,
//! [`OrderRepo::create_from_hold`], so a backend can make it one transaction.

use crate::domain::{
    Activity, ActivityId, CancelReason, Event, EventId, HoldId, Order, OrderId, OrderStatus,
    Payment, PaymentId, PaymentStatus, Product, ProductId, User, UserId,
};
use crate::{Result, Timestamp};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Which page of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page: u32,
    /// Items per page (1..=100).
    pub page_size: u32,
}

impl PageRequest {
    /// The first page of 20.
    pub const DEFAULT: PageRequest = PageRequest {
        page: 1,
        page_size: 20,
    };

    /// How many items to skip.
    pub fn offset(&self) -> usize {
        (self.page.max(1) as usize - 1) * self.page_size as usize
    }

    /// Slices an already filtered and sorted list into this page.
    pub fn slice<T: Clone>(&self, all: &[T]) -> Page<T> {
        let items = all
            .iter()
            .skip(self.offset())
            .take(self.page_size as usize)
            .cloned()
            .collect();
        Page {
            items,
            total: all.len() as u64,
            page: self.page,
            page_size: self.page_size,
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Items in the whole list.
    pub total: u64,
    /// This page's number.
    pub page: u32,
    /// Items per page.
    pub page_size: u32,
}

/// Users.
///
/// Contract: usernames are unique (`insert` of a taken one is [`crate::Error::Conflict`]).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait UserRepo: Send + Sync + std::fmt::Debug {
    /// Adds a user.
    async fn insert_user(&self, user: &User) -> Result<()>;
    /// By id.
    async fn user(&self, id: UserId) -> Result<Option<User>>;
    /// By username.
    async fn user_by_name(&self, username: &str) -> Result<Option<User>>;
    /// Replaces a user's record (same id); `NotFound` if absent.
    async fn update_user(&self, user: &User) -> Result<()>;
}

/// Products, events and activities.
///
/// Contract: `update_activity` changes everything but `sold`, which only order inserts and
/// cancellations move, `stock_buckets` and `event_id`, which are fixed at creation.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait CatalogRepo: Send + Sync + std::fmt::Debug {
    /// Adds a product.
    async fn insert_product(&self, p: &Product) -> Result<()>;
    /// By id.
    async fn product(&self, id: ProductId) -> Result<Option<Product>>;
    /// Newest first.
    async fn list_products(&self, page: PageRequest) -> Result<Page<Product>>;
    /// Replaces a product's name, description and list price; `NotFound` if absent.
    async fn update_product(&self, p: &Product) -> Result<()>;
    /// Deletes a product; `NotFound` if absent, `Conflict` if it has activities (their orders
    /// refer to it).
    async fn delete_product(&self, id: ProductId) -> Result<()>;
    /// The product's activities, newest start first.
    async fn product_activities(&self, id: ProductId) -> Result<Vec<Activity>>;
    /// Adds an event.
    async fn insert_event(&self, e: &Event) -> Result<()>;
    /// By id.
    async fn event(&self, id: EventId) -> Result<Option<Event>>;
    /// Newest first.
    async fn list_events(&self, page: PageRequest) -> Result<Page<Event>>;
    /// Replaces an event's title, venue and description; `NotFound` if absent.
    async fn update_event(&self, e: &Event) -> Result<()>;
    /// The event's sessions (activities), earliest start first.
    async fn event_activities(&self, id: EventId) -> Result<Vec<Activity>>;
    /// Adds an activity (its product and its event, if it names one, must exist: `NotFound`
    /// on that entity otherwise).
    async fn insert_activity(&self, a: &Activity) -> Result<()>;
    /// By id.
    async fn activity(&self, id: ActivityId) -> Result<Option<Activity>>;
    /// By start time, newest first.
    async fn list_activities(&self, page: PageRequest) -> Result<Page<Activity>>;
    /// Updates an activity's fields except `sold`; `total_stock` may not drop below `sold`
    /// (`Conflict`). `fence` is the fencing token of the activity lock the update runs under
    /// (0: unfenced): one below the highest token the activity was updated with is refused
    /// (`Conflict` on [`crate::Entity::ActivityLock`]) and changes nothing.
    async fn update_activity(&self, a: &Activity, fence: u64) -> Result<()>;
}

/// Why the database refused an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderRejection {
    /// `sold + quantity` would exceed `total_stock`.
    SoldOut,
    /// The user would exceed the per-user limit.
    LimitExceeded,
    /// The activity does not exist.
    UnknownActivity,
    /// The order id was declared lost before its order was written
    /// ([`OrderRepo::void_unwritten`]): its buyer was told it failed.
    Voided,
    /// A holder's document holds a live ticket of the activity already (real-name sessions,
    /// docs/adr/0021).
    HolderTaken,
    /// A price tier's units in live orders would exceed its stock.
    TierShort,
    /// A seat of the order is in another live order of the activity.
    SeatTaken,
}

/// The result of [`OrderRepo::void_unwritten`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Voided {
    /// Declared lost now: no order with this id can be written any more.
    Now,
    /// Declared lost before (by the same or another buyer's call: the id, not the caller,
    /// decides).
    Already,
    /// The order was written first: here it is, nothing was declared.
    Written(Order),
}

/// The result of [`OrderRepo::create_from_hold`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOrder {
    /// Written now.
    Created(Order),
    /// Written before (same message or same hold): the stored order.
    Duplicate(Order),
    /// Refused by the guard; nothing was written.
    Rejected(OrderRejection),
}

/// Extra fields a status change sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    /// The status the order must have now (compare-and-set).
    pub from: OrderStatus,
    /// The new status.
    pub to: OrderStatus,
    /// When.
    pub at: Timestamp,
    /// For `→ paid`: the paying payment.
    pub payment_id: Option<PaymentId>,
    /// For `→ cancelled`: why.
    pub cancel_reason: Option<CancelReason>,
}

/// The result of [`OrderRepo::change_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChanged {
    /// Done; the order as it is now.
    Applied(Order),
    /// The order was not in `from`; nothing changed. The order as it is.
    Conflict(Order),
    /// No such order.
    NotFound,
}

/// Filters of the order lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Only this user's.
    pub user_id: Option<UserId>,
    /// Only this activity's.
    pub activity_id: Option<ActivityId>,
    /// Only in this status.
    pub status: Option<OrderStatus>,
}

/// Orders, with the inbox of processed messages.
///
/// # Contract (checked by `conformance::repo`, feature `conformance`)
/// - `create_from_hold` is one atomic step: if `message_id` was processed or an order with the
///   hold id exists → `Duplicate`; else if the order id was voided → `Rejected(Voided)`; else if `activity.sold + quantity > total_stock` →
///   `Rejected(SoldOut)`; else if the user's units in non-cancelled orders of the activity plus
///   `quantity` exceed `per_user_limit` → `Rejected(LimitExceeded)`; else if a line's tier's
///   units in non-cancelled orders plus the line's would exceed the tier's stock →
///   `Rejected(TierShort)`; else if a seat of the order is in another non-cancelled order of the
///   activity (or twice in this one) → `Rejected(SeatTaken)`; else if a holder's document
///   ([`Holder::id_hash`](crate::domain::Holder::id_hash)) is in another non-cancelled order of
///   the activity, or twice in this one → `Rejected(HolderTaken)`; else the order is inserted,
///   `sold` grows by its quantity and the message id is recorded.
/// - `change_status` is a compare-and-set on `from` and allows only legal transitions
///   (`InvalidArgument` otherwise). `→ cancelled` gives the units back to `sold` and to their
///   tiers, and the seats and the holders' documents back, in the same step.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait OrderRepo: Send + Sync + std::fmt::Debug {
    /// The order worker's transaction.
    async fn create_from_hold(&self, message_id: &str, order: &Order) -> Result<CreateOrder>;
    /// [`OrderRepo::create_from_hold`] for a batch, with the same outcome for each item as
    /// calling it in order; a backend may write the whole batch in one transaction.
    async fn create_from_holds(&self, batch: &[(String, Order)]) -> Result<Vec<CreateOrder>> {
        let mut out = Vec::with_capacity(batch.len());
        for (message_id, order) in batch {
            out.push(self.create_from_hold(message_id, order).await?);
        }
        Ok(out)
    }
    /// Declares an order id whose order was never written lost, atomically with respect to
    /// [`OrderRepo::create_from_hold`]: either the order exists (and is returned), or from now
    /// on no order with this id is ever written (it is refused as [`OrderRejection::Voided`]).
    /// `user` is who was told; recorded for the operator.
    async fn void_unwritten(&self, id: OrderId, user: UserId, at: Timestamp) -> Result<Voided>;
    /// Whether an order id was declared lost.
    async fn is_voided(&self, id: OrderId) -> Result<bool>;
    /// By id.
    async fn order(&self, id: OrderId) -> Result<Option<Order>>;
    /// By hold id.
    async fn order_by_hold(&self, hold: HoldId) -> Result<Option<Order>>;
    /// Newest first, filtered.
    async fn list_orders(&self, filter: &OrderFilter, page: PageRequest) -> Result<Page<Order>>;
    /// Compare-and-set status change.
    async fn change_status(&self, id: OrderId, change: StatusChange) -> Result<StatusChanged>;
    /// Pending orders whose deadline is ≤ `now`, oldest deadline first.
    async fn expired_pending(&self, now: Timestamp, limit: usize) -> Result<Vec<Order>>;
    /// Cancels (reason `timeout`) up to `limit` pending orders whose deadline is ≤ `now`, as
    /// compare-and-sets, and returns the ones it cancelled. Concurrent callers never both
    /// cancel the same order (PostgreSQL claims them with `FOR UPDATE SKIP LOCKED`).
    async fn cancel_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<Order>> {
        let mut out = Vec::new();
        for o in self.expired_pending(now, limit).await? {
            let change = StatusChange {
                from: OrderStatus::PendingPayment,
                to: OrderStatus::Cancelled,
                at: now,
                payment_id: None,
                cancel_reason: Some(CancelReason::Timeout),
            };
            if let StatusChanged::Applied(o) = self.change_status(o.id, change).await? {
                out.push(o);
            }
        }
        Ok(out)
    }
    /// Every order of an activity (reconciliation).
    async fn activity_orders(&self, activity: ActivityId) -> Result<Vec<Order>>;
}

/// Refuses a result [`PaymentRepo::record_result`] does not take (only `Succeeded` and
/// `Failed` come from a callback). Every backend calls it first.
pub fn check_callback_status(status: PaymentStatus) -> Result<()> {
    if matches!(status, PaymentStatus::Succeeded | PaymentStatus::Failed) {
        Ok(())
    } else {
        Err(crate::Error::invalid(
            "a callback reports succeeded or failed",
        ))
    }
}

/// What [`PaymentRepo::record_result`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentRecorded {
    /// The payment moved from pending to the reported status now.
    Applied(Payment),
    /// The same result was recorded before (a duplicate callback).
    Duplicate(Payment),
    /// The payment is in another state, or the transaction id belongs to another payment.
    Conflict(Payment),
}

/// Payments.
///
/// Contract: provider transaction ids are unique; `record_result` is a compare-and-set from
/// `pending` that is idempotent for the same transaction id, and records a success as
/// `RefundDue` when another payment of the same order already succeeded (an order has at most
/// one `Succeeded` payment); `mark_refunded` moves `succeeded | refund_due → refunded` once (a
/// second call returns `false`).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PaymentRepo: Send + Sync + std::fmt::Debug {
    /// Adds a payment.
    async fn insert_payment(&self, p: &Payment) -> Result<()>;
    /// By id.
    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>>;
    /// All payments of an order, oldest first.
    async fn order_payments(&self, order: OrderId) -> Result<Vec<Payment>>;
    /// Records a verified callback's result (`Succeeded` or `Failed`).
    async fn record_result(
        &self,
        id: PaymentId,
        txn_id: &str,
        status: PaymentStatus,
        at: Timestamp,
    ) -> Result<PaymentRecorded>;
    /// `succeeded | refund_due → refunded`; `true` if it changed now.
    async fn mark_refunded(&self, id: PaymentId, at: Timestamp) -> Result<bool>;
    /// Up to `limit` payments in a status with ids above `after`, by id: one page of a scan
    /// that resumes where the last page ended (reconciliation).
    async fn payments_in(
        &self,
        status: PaymentStatus,
        after: Option<PaymentId>,
        limit: usize,
    ) -> Result<Vec<Payment>>;
}
