//! The payments of [`MemoryStore`]: `impl PaymentRepo`.

use super::store::MemoryStore;
use crate::domain::{OrderId, Payment, PaymentId, PaymentStatus};
use crate::repo::{check_callback_status, PaymentRecorded, PaymentRepo};
use crate::{Entity, Error, Result, Timestamp};
use async_trait::async_trait;

#[async_trait]
impl PaymentRepo for MemoryStore {
    async fn insert_payment(&self, p: &Payment) -> Result<()> {
        let mut t = self.t.lock();
        if t.payments.contains_key(&p.id) {
            return Err(Error::conflict(Entity::Payment, p.id, "the payment exists"));
        }
        // A payment is of an order of its buyer (PostgreSQL: the (order_id, user_id) key).
        if t.orders
            .get(&p.order_id)
            .is_none_or(|o| o.user_id != p.user_id)
        {
            return Err(Error::not_found(Entity::Order, p.order_id));
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
