//! In-memory repositories: every repository trait over one set of tables behind one mutex, so
//! the order worker's step is atomic as it is in a PostgreSQL transaction.

use crate::domain::{
    Activity, ActivityId, HoldId, Order, OrderId, OrderStatus, Payment, PaymentId, PaymentStatus,
    Product, ProductId, User, UserId,
};
use crate::repo::{
    check_callback_status, CatalogRepo, CreateOrder, OrderFilter, OrderRejection, OrderRepo, Page,
    PageRequest, PaymentRecorded, PaymentRepo, StatusChange, StatusChanged, UserRepo, Voided,
};
use crate::{Entity, Error, Result, Timestamp};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Default)]
struct Tables {
    users: BTreeMap<UserId, User>,
    usernames: HashMap<String, UserId>,
    products: BTreeMap<ProductId, Product>,
    activities: BTreeMap<ActivityId, Activity>,
    orders: BTreeMap<OrderId, Order>,
    orders_by_hold: HashMap<HoldId, OrderId>,
    inbox: HashSet<String>,
    // Order ids declared lost before their order was written, and when.
    voided: HashMap<OrderId, Timestamp>,
    // (activity, user) → units in the user's non-cancelled orders: the per-user limit's index.
    user_units: HashMap<(ActivityId, UserId), u32>,
    payments: BTreeMap<PaymentId, Payment>,
    txn_ids: HashMap<String, PaymentId>,
}

/// The in-memory system of record (the embedded default). Implements [`UserRepo`],
/// [`CatalogRepo`], [`OrderRepo`] and [`PaymentRepo`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    t: Mutex<Tables>,
}

impl MemoryStore {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl UserRepo for MemoryStore {
    async fn insert_user(&self, user: &User) -> Result<()> {
        let mut t = self.t.lock();
        if t.usernames.contains_key(&user.username) {
            return Err(Error::conflict(
                Entity::Username,
                &user.username,
                "the username is taken",
            ));
        }
        if t.users.contains_key(&user.id) {
            return Err(Error::conflict(Entity::User, user.id, "the user exists"));
        }
        t.usernames.insert(user.username.clone(), user.id);
        t.users.insert(user.id, user.clone());
        Ok(())
    }

    async fn user(&self, id: UserId) -> Result<Option<User>> {
        Ok(self.t.lock().users.get(&id).cloned())
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let t = self.t.lock();
        Ok(t.usernames
            .get(username)
            .and_then(|id| t.users.get(id))
            .cloned())
    }

    async fn update_user(&self, user: &User) -> Result<()> {
        let mut t = self.t.lock();
        let Some(old) = t.users.get(&user.id).cloned() else {
            return Err(Error::not_found(Entity::User, user.id));
        };
        if old.username != user.username {
            if t.usernames.contains_key(&user.username) {
                return Err(Error::conflict(
                    Entity::Username,
                    &user.username,
                    "the username is taken",
                ));
            }
            t.usernames.remove(&old.username);
            t.usernames.insert(user.username.clone(), user.id);
        }
        t.users.insert(user.id, user.clone());
        Ok(())
    }
}

#[async_trait]
impl CatalogRepo for MemoryStore {
    async fn insert_product(&self, p: &Product) -> Result<()> {
        let mut t = self.t.lock();
        if t.products.contains_key(&p.id) {
            return Err(Error::conflict(Entity::Product, p.id, "the product exists"));
        }
        t.products.insert(p.id, p.clone());
        Ok(())
    }

    async fn product(&self, id: ProductId) -> Result<Option<Product>> {
        Ok(self.t.lock().products.get(&id).cloned())
    }

    async fn list_products(&self, page: PageRequest) -> Result<Page<Product>> {
        let t = self.t.lock();
        let all: Vec<Product> = t.products.values().rev().cloned().collect();
        Ok(page.slice(&all))
    }

    async fn update_product(&self, p: &Product) -> Result<()> {
        let mut t = self.t.lock();
        let Some(old) = t.products.get_mut(&p.id) else {
            return Err(Error::not_found(Entity::Product, p.id));
        };
        *old = Product {
            created_at: old.created_at,
            ..p.clone()
        };
        Ok(())
    }

    async fn delete_product(&self, id: ProductId) -> Result<()> {
        let mut t = self.t.lock();
        if !t.products.contains_key(&id) {
            return Err(Error::not_found(Entity::Product, id));
        }
        if t.activities.values().any(|a| a.product_id == id) {
            return Err(Error::conflict(
                Entity::Product,
                id,
                "the product has sale activities",
            ));
        }
        t.products.remove(&id);
        Ok(())
    }

    async fn product_activities(&self, id: ProductId) -> Result<Vec<Activity>> {
        let t = self.t.lock();
        let mut v: Vec<Activity> = t
            .activities
            .values()
            .filter(|a| a.product_id == id)
            .cloned()
            .collect();
        v.sort_by_key(|a| std::cmp::Reverse((a.starts_at, a.id)));
        Ok(v)
    }

    async fn insert_activity(&self, a: &Activity) -> Result<()> {
        let mut t = self.t.lock();
        if !t.products.contains_key(&a.product_id) {
            return Err(Error::not_found(Entity::Product, a.product_id));
        }
        if t.activities.contains_key(&a.id) {
            return Err(Error::conflict(
                Entity::Activity,
                a.id,
                "the activity exists",
            ));
        }
        t.activities.insert(a.id, a.clone());
        Ok(())
    }

    async fn activity(&self, id: ActivityId) -> Result<Option<Activity>> {
        Ok(self.t.lock().activities.get(&id).cloned())
    }

    async fn list_activities(&self, page: PageRequest) -> Result<Page<Activity>> {
        let t = self.t.lock();
        let mut all: Vec<Activity> = t.activities.values().cloned().collect();
        all.sort_by_key(|a| std::cmp::Reverse((a.starts_at, a.id)));
        Ok(page.slice(&all))
    }

    async fn update_activity(&self, a: &Activity) -> Result<()> {
        let mut t = self.t.lock();
        let Some(old) = t.activities.get_mut(&a.id) else {
            return Err(Error::not_found(Entity::Activity, a.id));
        };
        if a.total_stock < old.sold {
            return Err(Error::conflict(
                Entity::Activity,
                a.id,
                format!(
                    "total_stock {} is below the {} units already sold",
                    a.total_stock, old.sold
                ),
            ));
        }
        let sold = old.sold;
        *old = Activity { sold, ..a.clone() };
        Ok(())
    }
}

fn matches(o: &Order, f: &OrderFilter) -> bool {
    f.user_id.is_none_or(|u| o.user_id == u)
        && f.activity_id.is_none_or(|a| o.activity_id == a)
        && f.status.is_none_or(|s| o.status == s)
}

#[async_trait]
impl OrderRepo for MemoryStore {
    async fn create_from_hold(&self, message_id: &str, order: &Order) -> Result<CreateOrder> {
        let mut t = self.t.lock();
        let existing = t
            .orders_by_hold
            .get(&order.hold_id)
            .or_else(|| t.orders.contains_key(&order.id).then_some(&order.id))
            .and_then(|id| t.orders.get(id));
        if let Some(o) = existing {
            return Ok(CreateOrder::Duplicate(o.clone()));
        }
        if t.inbox.contains(message_id) {
            return Err(Error::conflict(
                Entity::Order,
                order.id,
                format!("message {message_id} was processed but its order is missing"),
            ));
        }
        if t.voided.contains_key(&order.id) {
            return Ok(CreateOrder::Rejected(OrderRejection::Voided));
        }
        let Some(act) = t.activities.get(&order.activity_id) else {
            return Ok(CreateOrder::Rejected(OrderRejection::UnknownActivity));
        };
        if u64::from(act.sold) + u64::from(order.quantity) > u64::from(act.total_stock) {
            return Ok(CreateOrder::Rejected(OrderRejection::SoldOut));
        }
        let key = (order.activity_id, order.user_id);
        let mine = t.user_units.get(&key).copied().unwrap_or(0);
        if mine + order.quantity > act.per_user_limit {
            return Ok(CreateOrder::Rejected(OrderRejection::LimitExceeded));
        }
        t.activities
            .get_mut(&order.activity_id)
            .expect("checked above")
            .sold += order.quantity;
        *t.user_units.entry(key).or_insert(0) += order.quantity;
        t.inbox.insert(message_id.to_string());
        t.orders_by_hold.insert(order.hold_id, order.id);
        t.orders.insert(order.id, order.clone());
        Ok(CreateOrder::Created(order.clone()))
    }

    async fn void_unwritten(&self, id: OrderId, _user: UserId, at: Timestamp) -> Result<Voided> {
        let mut t = self.t.lock();
        if let Some(o) = t.orders.get(&id) {
            return Ok(Voided::Written(o.clone()));
        }
        Ok(match t.voided.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => Voided::Already,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(at);
                Voided::Now
            }
        })
    }

    async fn is_voided(&self, id: OrderId) -> Result<bool> {
        Ok(self.t.lock().voided.contains_key(&id))
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>> {
        Ok(self.t.lock().orders.get(&id).cloned())
    }

    async fn order_by_hold(&self, hold: HoldId) -> Result<Option<Order>> {
        let t = self.t.lock();
        Ok(t.orders_by_hold
            .get(&hold)
            .and_then(|id| t.orders.get(id))
            .cloned())
    }

    async fn list_orders(&self, filter: &OrderFilter, page: PageRequest) -> Result<Page<Order>> {
        let t = self.t.lock();
        let all: Vec<Order> = t
            .orders
            .values()
            .rev()
            .filter(|o| matches(o, filter))
            .cloned()
            .collect();
        Ok(page.slice(&all))
    }

    async fn change_status(&self, id: OrderId, c: StatusChange) -> Result<StatusChanged> {
        if !c.from.can_become(c.to) {
            return Err(Error::invalid(format!(
                "an order cannot go from {} to {}",
                c.from, c.to
            )));
        }
        let mut t = self.t.lock();
        let Some(o) = t.orders.get_mut(&id) else {
            return Ok(StatusChanged::NotFound);
        };
        if o.status != c.from {
            return Ok(StatusChanged::Conflict(o.clone()));
        }
        o.status = c.to;
        o.updated_at = c.at;
        if c.payment_id.is_some() {
            o.payment_id = c.payment_id;
        }
        if c.cancel_reason.is_some() {
            o.cancel_reason = c.cancel_reason;
        }
        let o = o.clone();
        if !c.to.holds_stock() {
            if let Some(a) = t.activities.get_mut(&o.activity_id) {
                a.sold -= o.quantity;
            }
            if let Some(n) = t.user_units.get_mut(&(o.activity_id, o.user_id)) {
                *n -= o.quantity;
            }
        }
        Ok(StatusChanged::Applied(o))
    }

    async fn expired_pending(&self, now: Timestamp, limit: usize) -> Result<Vec<Order>> {
        let t = self.t.lock();
        let mut v: Vec<Order> = t
            .orders
            .values()
            .filter(|o| o.status == OrderStatus::PendingPayment && o.expires_at <= now)
            .cloned()
            .collect();
        v.sort_by_key(|o| (o.expires_at, o.id));
        v.truncate(limit);
        Ok(v)
    }

    async fn activity_orders(&self, activity: ActivityId) -> Result<Vec<Order>> {
        Ok(self
            .t
            .lock()
            .orders
            .values()
            .filter(|o| o.activity_id == activity)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl PaymentRepo for MemoryStore {
    async fn insert_payment(&self, p: &Payment) -> Result<()> {
        let mut t = self.t.lock();
        if t.payments.contains_key(&p.id) {
            return Err(Error::conflict(Entity::Payment, p.id, "the payment exists"));
        }
        t.payments.insert(p.id, p.clone());
        Ok(())
    }

    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>> {
        Ok(self.t.lock().payments.get(&id).cloned())
    }

    async fn order_payments(&self, order: OrderId) -> Result<Vec<Payment>> {
        Ok(self
            .t
            .lock()
            .payments
            .values()
            .filter(|p| p.order_id == order)
            .cloned()
            .collect())
    }

    async fn record_result(
        &self,
        id: PaymentId,
        txn_id: &str,
        status: PaymentStatus,
        at: Timestamp,
    ) -> Result<PaymentRecorded> {
        check_callback_status(status)?;
        let mut t = self.t.lock();
        let owner = t.txn_ids.get(txn_id).copied();
        let Some(p) = t.payments.get_mut(&id) else {
            return Err(Error::not_found(Entity::Payment, id));
        };
        if owner.is_some_and(|o| o != id) {
            return Ok(PaymentRecorded::Conflict(p.clone()));
        }
        if p.status != PaymentStatus::Pending {
            return Ok(if p.provider_txn_id.as_deref() == Some(txn_id) {
                p.callbacks_seen += 1;
                PaymentRecorded::Duplicate(p.clone())
            } else {
                PaymentRecorded::Conflict(p.clone())
            });
        }
        p.status = status;
        let order = p.order_id;
        p.provider_txn_id = Some(txn_id.to_string());
        p.callbacks_seen += 1;
        p.updated_at = at;
        t.txn_ids.insert(txn_id.to_string(), id);
        let other_succeeded = t
            .payments
            .values()
            .any(|q| q.order_id == order && q.id != id && q.status == PaymentStatus::Succeeded);
        let p = t.payments.get_mut(&id).expect("read above");
        if status == PaymentStatus::Succeeded && other_succeeded {
            p.status = PaymentStatus::RefundDue;
        }
        Ok(PaymentRecorded::Applied(p.clone()))
    }

    async fn mark_refunded(&self, id: PaymentId, at: Timestamp) -> Result<bool> {
        let mut t = self.t.lock();
        match t.payments.get_mut(&id) {
            Some(p)
                if matches!(
                    p.status,
                    PaymentStatus::Succeeded | PaymentStatus::RefundDue
                ) =>
            {
                p.status = PaymentStatus::Refunded;
                p.updated_at = at;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(Error::not_found(Entity::Payment, id)),
        }
    }

    async fn payments_in(
        &self,
        status: PaymentStatus,
        after: Option<PaymentId>,
        limit: usize,
    ) -> Result<Vec<Payment>> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        Ok(self
            .t
            .lock()
            .payments
            .range((from, Unbounded))
            .map(|(_, p)| p)
            .filter(|p| p.status == status)
            .take(limit)
            .cloned()
            .collect())
    }
}
