//! The orders of [`MemoryStore`]: `impl OrderRepo` — the order step (inbox, guards, insert),
//! voided orders, status changes and the expiry sweep.

use super::store::MemoryStore;
use crate::domain::{ActivityId, HoldId, Order, OrderId, OrderStatus, UserId};
use crate::repo::{
    CreateOrder, OrderFilter, OrderRejection, OrderRepo, Page, PageRequest, StatusChange,
    StatusChanged, Voided,
};
use crate::{Entity, Error, Result, Timestamp};
use async_trait::async_trait;

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
        for l in &order.lines {
            let stock = act
                .tiers
                .iter()
                .find(|x| x.id == l.tier)
                .map_or(0, |x| x.stock);
            let had = t
                .tier_units
                .get(&(order.activity_id, l.tier))
                .copied()
                .unwrap_or(0);
            if u64::from(had) + u64::from(l.quantity) > u64::from(stock) {
                return Ok(CreateOrder::Rejected(OrderRejection::TierShort));
            }
        }
        let mut seats = std::collections::HashSet::new();
        if order.lines.iter().flat_map(|l| &l.seats).any(|s| {
            !seats.insert(s) || t.order_seats.contains_key(&(order.activity_id, s.clone()))
        }) {
            return Ok(CreateOrder::Rejected(OrderRejection::SeatTaken));
        }
        let mut docs = std::collections::HashSet::new();
        if order.holders.iter().any(|h| {
            !docs.insert(&h.id_hash)
                || t.ticket_docs
                    .contains_key(&(order.activity_id, h.id_hash.clone()))
        }) {
            return Ok(CreateOrder::Rejected(OrderRejection::HolderTaken));
        }
        for h in &order.holders {
            t.ticket_docs
                .insert((order.activity_id, h.id_hash.clone()), order.id);
        }
        for l in &order.lines {
            *t.tier_units.entry((order.activity_id, l.tier)).or_insert(0) += l.quantity;
            for s in &l.seats {
                t.order_seats
                    .insert((order.activity_id, s.clone()), order.id);
            }
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
            for h in &o.holders {
                t.ticket_docs.remove(&(o.activity_id, h.id_hash.clone()));
            }
            for l in &o.lines {
                if let Some(n) = t.tier_units.get_mut(&(o.activity_id, l.tier)) {
                    *n = n.saturating_sub(l.quantity);
                }
                for s in &l.seats {
                    t.order_seats.remove(&(o.activity_id, s.clone()));
                }
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
