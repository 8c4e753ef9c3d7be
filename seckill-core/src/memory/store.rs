//! In-memory repositories: every repository trait over one set of tables behind one mutex, so
//! the order worker's step is atomic as it is in a PostgreSQL transaction. This file holds the
//! store and its tables; `users`, `catalog`, `orders` and `payments` implement the traits.

use crate::domain::{
    Activity, ActivityId, Event, EventId, HoldId, Order, OrderId, Payment, PaymentId, Product,
    ProductId, User, UserId,
};
use crate::Timestamp;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Default)]
pub(super) struct Tables {
    pub(super) users: BTreeMap<UserId, User>,
    pub(super) usernames: HashMap<String, UserId>,
    pub(super) products: BTreeMap<ProductId, Product>,
    pub(super) activities: BTreeMap<ActivityId, Activity>,
    pub(super) events: BTreeMap<EventId, Event>,
    pub(super) orders: BTreeMap<OrderId, Order>,
    pub(super) orders_by_hold: HashMap<HoldId, OrderId>,
    pub(super) inbox: HashSet<String>,
    // Order ids declared lost before their order was written, and when.
    pub(super) voided: HashMap<OrderId, Timestamp>,
    // (activity, user) → units in the user's non-cancelled orders: the per-user limit's index.
    pub(super) user_units: HashMap<(ActivityId, UserId), u32>,
    // (activity, document hash) → the non-cancelled order whose ticket it holds: one document,
    // one live ticket per real-name session (PostgreSQL's ticket_documents).
    pub(super) ticket_docs: HashMap<(ActivityId, String), OrderId>,
    // (activity, tier) → units in non-cancelled orders (PostgreSQL's activity_tier_units).
    pub(super) tier_units: HashMap<(ActivityId, u32), u32>,
    // (activity, seat) → the non-cancelled order that has it (PostgreSQL's order_seats).
    pub(super) order_seats: HashMap<(ActivityId, String), OrderId>,
    pub(super) payments: BTreeMap<PaymentId, Payment>,
    pub(super) txn_ids: HashMap<String, PaymentId>,
    // activity → the highest fencing token an update of it was made with.
    pub(super) fences: HashMap<ActivityId, u64>,
}

/// The in-memory system of record (the embedded default). Implements
/// [`UserRepo`](crate::repo::UserRepo), [`CatalogRepo`](crate::repo::CatalogRepo),
/// [`OrderRepo`](crate::repo::OrderRepo) and [`PaymentRepo`](crate::repo::PaymentRepo).
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub(super) t: Mutex<Tables>,
}

impl MemoryStore {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }
}
