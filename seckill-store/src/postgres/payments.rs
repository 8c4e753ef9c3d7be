//! The payments of [`PgStore`]: `impl PaymentRepo` with the payment row mapper and the status
//! helper.

use super::map_err;
use super::store::{bad, PgStore};
use async_trait::async_trait;
use seckill_core::domain::{Money, OrderId, Payment, PaymentId, PaymentStatus, UserId};
use seckill_core::repo::{check_callback_status, PaymentRecorded, PaymentRepo};
use seckill_core::{Entity, Error, Result, Timestamp};
use tokio_postgres::Row;

fn payment_status_str(s: PaymentStatus) -> &'static str {
    match s {
        PaymentStatus::Pending => "pending",
        PaymentStatus::Succeeded => "succeeded",
        PaymentStatus::Failed => "failed",
        PaymentStatus::Refunded => "refunded",
        PaymentStatus::RefundDue => "refund_due",
    }
}

fn payment(r: &Row) -> Result<Payment> {
    let status: String = r.get("status");
    Ok(Payment {
        id: PaymentId(r.get("id")),
        order_id: OrderId(r.get("order_id")),
        user_id: UserId(r.get("user_id")),
        provider: r.get("provider"),
        amount: Money(r.get("amount")),
        status: match status.as_str() {
            "pending" => PaymentStatus::Pending,
            "succeeded" => PaymentStatus::Succeeded,
            "failed" => PaymentStatus::Failed,
            "refunded" => PaymentStatus::Refunded,
            "refund_due" => PaymentStatus::RefundDue,
            other => return Err(bad("payment status", other)),
        },
        provider_txn_id: r.get("provider_txn_id"),
        callbacks_seen: r.get::<_, i32>("callbacks_seen") as u32,
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

#[async_trait]
impl PaymentRepo for PgStore {
    async fn insert_payment(&self, p: &Payment) -> Result<()> {
        self.exec(
            "INSERT INTO payments (id, order_id, user_id, provider, amount, status,
                     provider_txn_id, callbacks_seen, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &p.id.0,
                &p.order_id.0,
                &p.user_id.0,
                &p.provider,
                &p.amount.0,
                &payment_status_str(p.status),
                &p.provider_txn_id,
                &(p.callbacks_seen as i32),
                &p.created_at,
                &p.updated_at,
            ],
        )
        .await
        .map_err(|e| match e {
            // The (order_id, user_id) foreign key: no such order of this buyer.
            Error::NotFound { .. } => Error::not_found(Entity::Order, p.order_id),
            e => e,
        })?;
        Ok(())
    }

    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>> {
        self.one("SELECT * FROM payments WHERE id = $1", &[&id.0], payment)
            .await
    }

    async fn order_payments(&self, o: OrderId) -> Result<Vec<Payment>> {
        let sql = "SELECT * FROM payments WHERE order_id = $1 ORDER BY id";
        self.many(sql, &[&o.0], payment).await
    }

    async fn record_result(
        &self,
        id: PaymentId,
        txn_id: &str,
        status: PaymentStatus,
        at: Timestamp,
    ) -> Result<PaymentRecorded> {
        check_callback_status(status)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(map_err)?;
        let Some(row) = tx
            .query_opt("SELECT * FROM payments WHERE id = $1 FOR UPDATE", &[&id.0])
            .await
            .map_err(map_err)?
        else {
            return Err(Error::not_found(Entity::Payment, id));
        };
        let p = payment(&row)?;
        let owner = tx
            .query_opt(
                "SELECT id FROM payments WHERE provider_txn_id = $1 AND id <> $2",
                &[&txn_id, &id.0],
            )
            .await
            .map_err(map_err)?;
        if owner.is_some() {
            return Ok(PaymentRecorded::Conflict(p));
        }
        if p.status != PaymentStatus::Pending {
            if p.provider_txn_id.as_deref() != Some(txn_id) {
                return Ok(PaymentRecorded::Conflict(p));
            }
            let r = tx
                .query_one(
                    "UPDATE payments SET callbacks_seen = callbacks_seen + 1 WHERE id = $1 RETURNING *",
                    &[&id.0],
                )
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            return Ok(PaymentRecorded::Duplicate(payment(&r)?));
        }
        // At most one succeeded payment per order (a partial unique index): a success for an
        // order that already has one is recorded as a refund due. The order's row lock
        // serializes concurrent callbacks of its payments.
        tx.execute(
            "SELECT 1 FROM orders WHERE id = $1 FOR UPDATE",
            &[&p.order_id.0],
        )
        .await
        .map_err(map_err)?;
        let other = tx
            .query_opt(
                "SELECT 1 FROM payments WHERE order_id = $1 AND id <> $2 AND status = 'succeeded'",
                &[&p.order_id.0, &id.0],
            )
            .await
            .map_err(map_err)?;
        let status = match (status, other) {
            (PaymentStatus::Succeeded, Some(_)) => PaymentStatus::RefundDue,
            (s, _) => s,
        };
        let r = tx
            .query_one(
                "UPDATE payments SET status = $2, provider_txn_id = $3,
                     callbacks_seen = callbacks_seen + 1, updated_at = $4
                 WHERE id = $1 RETURNING *",
                &[&id.0, &payment_status_str(status), &txn_id, &at],
            )
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(PaymentRecorded::Applied(payment(&r)?))
    }

    async fn mark_refunded(&self, id: PaymentId, at: Timestamp) -> Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE payments SET status = 'refunded', updated_at = $2
                 WHERE id = $1 AND status IN ('succeeded', 'refund_due')",
                &[&id.0, &at],
            )
            .await
            .map_err(map_err)?;
        if n == 1 {
            return Ok(true);
        }
        match c
            .query_opt("SELECT 1 FROM payments WHERE id = $1", &[&id.0])
            .await
            .map_err(map_err)?
        {
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
        let sql = "SELECT * FROM payments WHERE status = $1 AND id > $2 ORDER BY id LIMIT $3";
        self.many(
            sql,
            &[
                &payment_status_str(status),
                &after.map_or(i64::MIN, |a| a.0),
                &(limit as i64),
            ],
            payment,
        )
        .await
    }
}
