//! The orders of [`PgStore`]: `impl OrderRepo` — the order transaction (inbox, guards, batched
//! writes), voided orders, status changes and the expiry sweep — with the order row mapper.

use super::map_err;
use super::store::{bad, page, PgStore};
use async_trait::async_trait;
use deadpool_postgres::Object;
use seckill_core::domain::{
    ActivityId, CancelReason, HoldId, Holder, Money, Order, OrderId, PaymentId, TierLine, UserId,
};
use seckill_core::repo::{
    CreateOrder, OrderFilter, OrderRejection, OrderRepo, Page, PageRequest, StatusChange,
    StatusChanged, Voided,
};
use seckill_core::{Entity, Error, Result, Timestamp};
use tokio_postgres::types::Json;
use tokio_postgres::Row;

fn cancel_reason_str(c: CancelReason) -> &'static str {
    match c {
        CancelReason::User => "user",
        CancelReason::Timeout => "timeout",
        CancelReason::Admin => "admin",
    }
}

fn order(r: &Row) -> Result<Order> {
    let status: String = r.get("status");
    let reason: Option<String> = r.get("cancel_reason");
    Ok(Order {
        id: OrderId(r.get("id")),
        hold_id: HoldId(r.get("hold_id")),
        user_id: UserId(r.get("user_id")),
        activity_id: ActivityId(r.get("activity_id")),
        quantity: r.get::<_, i32>("quantity") as u32,
        amount: Money(r.get("amount")),
        status: status.parse().map_err(|_| bad("order status", &status))?,
        expires_at: r.get("expires_at"),
        payment_id: r.get::<_, Option<i64>>("payment_id").map(PaymentId),
        cancel_reason: match reason.as_deref() {
            None => None,
            Some("user") => Some(CancelReason::User),
            Some("timeout") => Some(CancelReason::Timeout),
            Some("admin") => Some(CancelReason::Admin),
            Some(other) => return Err(bad("cancel reason", other)),
        },
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        trace_parent: r.get("trace_parent"),
        lines: super::catalog::json_column::<TierLine>(r, "lines")?,
        holders: super::catalog::json_column::<Holder>(r, "holders")?,
    })
}

const ORDER_COLUMNS: &str = "id, hold_id, user_id, activity_id, quantity, amount, status, \
     expires_at, payment_id, cancel_reason, created_at, updated_at, trace_parent, lines, holders";

/// A transaction at READ COMMITTED whatever the role's or database's default: the order
/// transaction and [`OrderRepo::void_unwritten`] exclude each other by an advisory lock and then
/// read what the winner committed, which needs a fresh snapshot per statement.
async fn read_committed(c: &mut Object) -> Result<deadpool_postgres::Transaction<'_>> {
    c.build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(map_err)
}

/// Takes the transaction-level advisory locks of `order_ids` (in id order, so two batches never
/// wait on each other in a cycle), then says whether any of them was voided. The order
/// transaction and [`OrderRepo::void_unwritten`] both start with it: the lock makes one wait for
/// the other, and the check, a statement after the lock, sees what the winner committed.
async fn lock_and_find_voided(
    tx: &tokio_postgres::Transaction<'_>,
    order_ids: &[i64],
) -> Result<bool> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(id) FROM (SELECT unnest($1::BIGINT[]) AS id ORDER BY 1) s",
        &[&order_ids],
    )
    .await
    .map_err(map_err)?;
    let row = tx
        .query_opt(
            "SELECT 1 FROM voided_orders WHERE order_id = ANY($1) LIMIT 1",
            &[&order_ids],
        )
        .await
        .map_err(map_err)?;
    Ok(row.is_some())
}

impl PgStore {
    /// Writes a whole batch of new orders in one transaction with multi-row statements.
    /// Returns `false` (and writes nothing) if any item is a duplicate or meets a guard; the
    /// caller then goes row by row, which gives each item its own outcome.
    async fn try_batch(&self, batch: &[(String, Order)]) -> Result<bool> {
        use std::collections::{BTreeMap, HashSet};
        let holds: Vec<i64> = batch.iter().map(|(_, o)| o.hold_id.0).collect();
        let ids: Vec<i64> = batch.iter().map(|(_, o)| o.id.0).collect();
        let msgs: Vec<&str> = batch.iter().map(|(m, _)| m.as_str()).collect();
        let distinct = |v: &[i64]| v.iter().collect::<HashSet<_>>().len() == v.len();
        if !distinct(&holds)
            || !distinct(&ids)
            || msgs.iter().collect::<HashSet<_>>().len() != msgs.len()
        {
            return Ok(false);
        }
        let mut c = self.client().await?;
        let tx = read_committed(&mut c).await?;
        if lock_and_find_voided(&tx, &ids).await? {
            return Ok(false); // one at a time refuses the voided ones
        }
        let fresh = tx
            .execute(
                "INSERT INTO inbox (message_id) SELECT unnest($1::TEXT[]) ON CONFLICT DO NOTHING",
                &[&msgs],
            )
            .await
            .map_err(map_err)?;
        if fresh as usize != batch.len() {
            return Ok(false); // dropped: rolls back
        }
        let existing = tx
            .query_opt(
                "SELECT 1 FROM orders WHERE hold_id = ANY($1) OR id = ANY($2) LIMIT 1",
                &[&holds, &ids],
            )
            .await
            .map_err(map_err)?;
        if existing.is_some() {
            return Ok(false);
        }
        let mut per_activity: BTreeMap<i64, i32> = BTreeMap::new();
        let mut per_user: BTreeMap<(i64, i64), i32> = BTreeMap::new();
        for (_, o) in batch {
            *per_activity.entry(o.activity_id.0).or_default() += o.quantity as i32;
            *per_user.entry((o.activity_id.0, o.user_id.0)).or_default() += o.quantity as i32;
        }
        let (acts, units): (Vec<i64>, Vec<i32>) = per_activity.into_iter().unzip();
        // The per-user limit (the row's CHECK enforces it too).
        let (pairs, pair_units): (Vec<(i64, i64)>, Vec<i32>) = per_user.into_iter().unzip();
        let (pa, pu): (Vec<i64>, Vec<i64>) = pairs.into_iter().unzip();
        let within = match tx
            .execute(
                "INSERT INTO activity_user_units AS u (activity_id, user_id, units, per_user_limit)
                 SELECT x.a, x.u, x.n, a.per_user_limit
                 FROM unnest($1::BIGINT[], $2::BIGINT[], $3::INT[]) AS x(a, u, n)
                 JOIN activities a ON a.id = x.a
                 ON CONFLICT (activity_id, user_id) DO UPDATE SET units = u.units + EXCLUDED.units
                 WHERE u.units + EXCLUDED.units <= u.per_user_limit",
                &[&pa, &pu, &pair_units],
            )
            .await
            .map_err(map_err)
        {
            Ok(n) => n as usize == pa.len(),
            Err(Error::Conflict { .. }) => false, // a first order above the limit
            Err(e) => return Err(e),
        };
        if !within {
            return Ok(false);
        }
        let users: Vec<i64> = batch.iter().map(|(_, o)| o.user_id.0).collect();
        let activities: Vec<i64> = batch.iter().map(|(_, o)| o.activity_id.0).collect();
        let qty: Vec<i32> = batch.iter().map(|(_, o)| o.quantity as i32).collect();
        let amount: Vec<i64> = batch.iter().map(|(_, o)| o.amount.0).collect();
        let status: Vec<&str> = batch.iter().map(|(_, o)| o.status.as_str()).collect();
        let expires: Vec<Timestamp> = batch.iter().map(|(_, o)| o.expires_at).collect();
        let created: Vec<Timestamp> = batch.iter().map(|(_, o)| o.created_at).collect();
        let updated: Vec<Timestamp> = batch.iter().map(|(_, o)| o.updated_at).collect();
        let traces: Vec<Option<&str>> = batch
            .iter()
            .map(|(_, o)| o.trace_parent.as_deref())
            .collect();
        let lines: Vec<Json<&Vec<TierLine>>> = batch.iter().map(|(_, o)| Json(&o.lines)).collect();
        let holders: Vec<Json<&Vec<Holder>>> =
            batch.iter().map(|(_, o)| Json(&o.holders)).collect();
        // Each tier within its stock, each seat in one live order: the batch's units per tier
        // and its seats, all new (else one at a time tells which order is refused).
        let mut per_tier: BTreeMap<(i64, i32), i32> = BTreeMap::new();
        let (mut seat_acts, mut seat_ids, mut seat_orders) = (Vec::new(), Vec::new(), Vec::new());
        for (_, o) in batch {
            for l in &o.lines {
                *per_tier
                    .entry((o.activity_id.0, l.tier as i32))
                    .or_default() += l.quantity as i32;
                for s in &l.seats {
                    seat_acts.push(o.activity_id.0);
                    seat_ids.push(s.as_str());
                    seat_orders.push(o.id.0);
                }
            }
        }
        if !per_tier.is_empty() {
            let (pairs, n): (Vec<(i64, i32)>, Vec<i32>) = per_tier.into_iter().unzip();
            let (ta, tt): (Vec<i64>, Vec<i32>) = pairs.into_iter().unzip();
            if !guard_tiers(&tx, &ta, &tt, &n).await? {
                return Ok(false);
            }
        }
        if !claim(&tx, Claim::Seats, &seat_acts, &seat_ids, &seat_orders).await? {
            return Ok(false);
        }
        // One document, one live ticket per session: the batch's documents, all new.
        let (mut doc_acts, mut doc_hashes, mut doc_orders) = (Vec::new(), Vec::new(), Vec::new());
        for (_, o) in batch {
            for h in &o.holders {
                doc_acts.push(o.activity_id.0);
                doc_hashes.push(h.id_hash.as_str());
                doc_orders.push(o.id.0);
            }
        }
        if !claim(&tx, Claim::Documents, &doc_acts, &doc_hashes, &doc_orders).await? {
            return Ok(false); // one at a time tells which order is refused
        }
        let inserted = tx
            .execute(
                "INSERT INTO orders (id, hold_id, user_id, activity_id, quantity, amount, status,
                 expires_at, created_at, updated_at, trace_parent, lines, holders)
             SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[],
                 $5::INT[], $6::BIGINT[], $7::TEXT[], $8::TIMESTAMPTZ[], $9::TIMESTAMPTZ[],
                 $10::TIMESTAMPTZ[], $11::TEXT[], $12::JSONB[], $13::JSONB[])",
                &[
                    &ids,
                    &holds,
                    &users,
                    &activities,
                    &qty,
                    &amount,
                    &status,
                    &expires,
                    &created,
                    &updated,
                    &traces,
                    &lines,
                    &holders,
                ],
            )
            .await
            .map_err(map_err);
        match inserted {
            Ok(_) => {}
            // A concurrent worker wrote one of these holds first: go row by row.
            Err(Error::Conflict { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        // The guard, per activity: sold + the batch's units <= total_stock. Last, so the
        // activity's row lock is held only for this update and the commit, not the inserts.
        let guarded = tx
            .execute(
                "UPDATE activities a SET sold = a.sold + x.n
                 FROM unnest($1::BIGINT[], $2::INT[]) AS x(id, n)
                 WHERE a.id = x.id AND a.sold + x.n <= a.total_stock",
                &[&acts, &units],
            )
            .await
            .map_err(map_err)?;
        if guarded as usize != acts.len() {
            return Ok(false);
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }
}

#[async_trait]
impl OrderRepo for PgStore {
    async fn create_from_hold(&self, message_id: &str, o: &Order) -> Result<CreateOrder> {
        let mut c = self.client().await?;
        let tx = read_committed(&mut c).await?;
        let voided = lock_and_find_voided(&tx, &[o.id.0]).await?;
        // 1. Inbox: a message processed before is a duplicate.
        let fresh = tx
            .execute(
                "INSERT INTO inbox (message_id) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&message_id],
            )
            .await
            .map_err(map_err)?
            == 1;
        let existing = tx
            .query_opt(
                &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE hold_id = $1 OR id = $2"),
                &[&o.hold_id.0, &o.id.0],
            )
            .await
            .map_err(map_err)?;
        if let Some(r) = existing {
            return Ok(CreateOrder::Duplicate(order(&r)?));
        }
        if !fresh {
            return Err(Error::conflict(
                Entity::Order,
                o.id,
                format!("message {message_id} was processed but its order is missing"),
            ));
        }
        if voided {
            return Ok(CreateOrder::Rejected(OrderRejection::Voided)); // rolls back the inbox
        }
        // 2. The guard: never more than the stock, whatever the stock backend says.
        let guarded = tx
            .query_opt(
                "UPDATE activities SET sold = sold + $2
                 WHERE id = $1 AND sold + $2 <= total_stock RETURNING per_user_limit",
                &[&o.activity_id.0, &(o.quantity as i32)],
            )
            .await
            .map_err(map_err)?;
        let Some(limit_row) = guarded else {
            let known = tx
                .query_opt(
                    "SELECT 1 FROM activities WHERE id = $1",
                    &[&o.activity_id.0],
                )
                .await
                .map_err(map_err)?
                .is_some();
            return Ok(CreateOrder::Rejected(if known {
                OrderRejection::SoldOut
            } else {
                OrderRejection::UnknownActivity
            }));
        };
        let limit: i32 = limit_row.get(0);
        // 3. The per-user limit, enforced by the row's CHECK as well.
        let within =
            tx.execute(
                "INSERT INTO activity_user_units AS u (activity_id, user_id, units, per_user_limit)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (activity_id, user_id) DO UPDATE SET units = u.units + EXCLUDED.units
                 WHERE u.units + EXCLUDED.units <= u.per_user_limit",
                &[&o.activity_id.0, &o.user_id.0, &(o.quantity as i32), &limit],
            )
            .await
            .map_err(map_err)
            .or_else(|e| match e {
                Error::Conflict { .. } => Ok(0), // the CHECK refused a first order above the limit
                other => Err(other),
            })? == 1;
        if !within {
            return Ok(CreateOrder::Rejected(OrderRejection::LimitExceeded));
        }
        // 4. Each tier's units within its stock, each seat in one live order, one document in
        //    one live ticket (activity_tier_units' guarded upsert and CHECK, the primary keys of
        //    order_seats and ticket_documents; a concurrent order on the same row waits for this
        //    one's outcome).
        if !o.lines.is_empty() {
            let (tiers, units): (Vec<i32>, Vec<i32>) = o
                .lines
                .iter()
                .map(|l| (l.tier as i32, l.quantity as i32))
                .unzip();
            let acts = vec![o.activity_id.0; tiers.len()];
            if !guard_tiers(&tx, &acts, &tiers, &units).await? {
                return Ok(CreateOrder::Rejected(OrderRejection::TierShort));
            }
            let seats: Vec<&str> = o
                .lines
                .iter()
                .flat_map(|l| &l.seats)
                .map(String::as_str)
                .collect();
            let (acts, ids) = (
                vec![o.activity_id.0; seats.len()],
                vec![o.id.0; seats.len()],
            );
            if !claim(&tx, Claim::Seats, &acts, &seats, &ids).await? {
                return Ok(CreateOrder::Rejected(OrderRejection::SeatTaken));
            }
        }
        let hashes: Vec<&str> = o.holders.iter().map(|h| h.id_hash.as_str()).collect();
        let (acts, ids) = (
            vec![o.activity_id.0; hashes.len()],
            vec![o.id.0; hashes.len()],
        );
        if !claim(&tx, Claim::Documents, &acts, &hashes, &ids).await? {
            return Ok(CreateOrder::Rejected(OrderRejection::HolderTaken));
        }
        // 5. The order (unique hold id). A concurrent transaction for the same hold (under
        //    another message id) that committed first makes this insert a unique violation:
        //    that is a duplicate, answered with the winner's order after rolling back.
        let inserted = tx
            .execute(
                &format!("INSERT INTO orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"),
                &[&o.id.0, &o.hold_id.0, &o.user_id.0, &o.activity_id.0, &(o.quantity as i32),
                  &o.amount.0, &o.status.as_str(), &o.expires_at, &o.payment_id.map(|p| p.0),
                  &o.cancel_reason.map(cancel_reason_str), &o.created_at, &o.updated_at,
                  &o.trace_parent, &Json(&o.lines), &Json(&o.holders)],
            )
            .await
            .map_err(map_err);
        match inserted {
            Ok(_) => {
                tx.commit().await.map_err(map_err)?;
                Ok(CreateOrder::Created(o.clone()))
            }
            Err(why @ Error::Conflict { .. }) => {
                drop(tx); // rolls back the guard's increments
                match self.order_by_hold(o.hold_id).await? {
                    Some(winner) => Ok(CreateOrder::Duplicate(winner)),
                    None => match self.order(o.id).await? {
                        Some(winner) => Ok(CreateOrder::Duplicate(winner)),
                        None => Err(why),
                    },
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn create_from_holds(&self, batch: &[(String, Order)]) -> Result<Vec<CreateOrder>> {
        if batch.len() > 1 && self.try_batch(batch).await? {
            return Ok(batch
                .iter()
                .map(|(_, o)| CreateOrder::Created(o.clone()))
                .collect());
        }
        // One at a time: a single order, or a batch that met a duplicate or a guard.
        let mut out = Vec::with_capacity(batch.len());
        for (message_id, o) in batch {
            out.push(self.create_from_hold(message_id, o).await?);
        }
        Ok(out)
    }

    async fn void_unwritten(&self, id: OrderId, user: UserId, at: Timestamp) -> Result<Voided> {
        let mut c = self.client().await?;
        let tx = read_committed(&mut c).await?;
        lock_and_find_voided(&tx, &[id.0]).await?;
        let existing = tx
            .query_opt(
                &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"),
                &[&id.0],
            )
            .await
            .map_err(map_err)?;
        if let Some(r) = existing {
            return Ok(Voided::Written(order(&r)?));
        }
        let n = tx
            .execute(
                "INSERT INTO voided_orders (order_id, user_id, voided_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&id.0, &user.0, &at],
            )
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(if n == 1 { Voided::Now } else { Voided::Already })
    }

    async fn is_voided(&self, id: OrderId) -> Result<bool> {
        let c = self.client().await?;
        let row = c
            .query_opt("SELECT 1 FROM voided_orders WHERE order_id = $1", &[&id.0])
            .await
            .map_err(map_err)?;
        Ok(row.is_some())
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
        self.one(&sql, &[&id.0], order).await
    }

    async fn order_by_hold(&self, hold: HoldId) -> Result<Option<Order>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE hold_id = $1");
        self.one(&sql, &[&hold.0], order).await
    }

    async fn list_orders(&self, f: &OrderFilter, p: PageRequest) -> Result<Page<Order>> {
        let c = self.client().await?;
        let filter =
            "($1::BIGINT IS NULL OR user_id = $1) AND ($2::BIGINT IS NULL OR activity_id = $2)
                      AND ($3::TEXT IS NULL OR status = $3)";
        let user = f.user_id.map(|u| u.0);
        let act = f.activity_id.map(|a| a.0);
        let status = f.status.map(|s| s.as_str());
        // The page and its total from one statement, so one snapshot: counted apart, orders
        // written between the two queries made a total that the items did not add up to.
        let rows = c
            .query(
                &format!("SELECT {ORDER_COLUMNS}, count(*) OVER () AS page_total FROM orders WHERE {filter} ORDER BY id DESC LIMIT $4 OFFSET $5"),
                &[&user, &act, &status, &i64::from(p.page_size), &(p.offset() as i64)],
            )
            .await
            .map_err(map_err)?;
        let total: i64 = match rows.first() {
            Some(r) => r.get("page_total"),
            // A page past the end has no row to carry the total.
            None => c
                .query_one(
                    &format!("SELECT count(*) FROM orders WHERE {filter}"),
                    &[&user, &act, &status],
                )
                .await
                .map_err(map_err)?
                .get(0),
        };
        let items = rows.iter().map(order).collect::<Result<_>>()?;
        Ok(page(items, total, p))
    }

    async fn change_status(&self, id: OrderId, ch: StatusChange) -> Result<StatusChanged> {
        if !ch.from.can_become(ch.to) {
            return Err(Error::invalid(format!(
                "an order cannot go from {} to {}",
                ch.from, ch.to
            )));
        }
        let c = self.client().await?;
        // One statement: the compare-and-set, and for a cancellation the units back to the
        // activity and to the buyer's count.
        let cancel = !ch.to.holds_stock();
        let row = c
            .query_opt(
                &format!(
                    "WITH o AS (
                         UPDATE orders SET status = $3, updated_at = $4,
                             payment_id = COALESCE($5, payment_id),
                             cancel_reason = COALESCE($6, cancel_reason)
                         WHERE id = $1 AND status = $2
                         RETURNING {ORDER_COLUMNS}),
                     a AS (
                         UPDATE activities SET sold = activities.sold - o.quantity FROM o
                         WHERE $7 AND activities.id = o.activity_id),
                     u AS (
                         UPDATE activity_user_units SET units = activity_user_units.units - o.quantity
                         FROM o WHERE $7 AND activity_user_units.activity_id = o.activity_id
                             AND activity_user_units.user_id = o.user_id),
                     {}
                     SELECT * FROM o",
                    give_back_claims("$7 AND")
                ),
                &[&id.0, &ch.from.as_str(), &ch.to.as_str(), &ch.at, &ch.payment_id.map(|p| p.0),
                  &ch.cancel_reason.map(cancel_reason_str), &cancel],
            )
            .await
            .map_err(map_err)?;
        if let Some(r) = row {
            return Ok(StatusChanged::Applied(order(&r)?));
        }
        Ok(match self.order(id).await? {
            Some(o) => StatusChanged::Conflict(o),
            None => StatusChanged::NotFound,
        })
    }

    async fn expired_pending(&self, now: Timestamp, limit: usize) -> Result<Vec<Order>> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders
             WHERE status = 'pending_payment' AND expires_at <= $1
             ORDER BY expires_at, id LIMIT $2"
        );
        self.many(&sql, &[&now, &(limit as i64)], order).await
    }

    async fn cancel_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<Order>> {
        let c = self.client().await?;
        // One statement: claim the oldest expired pending orders no one else holds, cancel
        // them, and give their units back to the activities and the buyers' counts.
        c.query(
            &format!(
                "WITH picked AS (
                     SELECT id FROM orders
                     WHERE status = 'pending_payment' AND expires_at <= $1
                     ORDER BY expires_at, id LIMIT $2
                     FOR UPDATE SKIP LOCKED),
                 o AS (
                     UPDATE orders SET status = 'cancelled', cancel_reason = 'timeout',
                         updated_at = $1
                     FROM picked WHERE orders.id = picked.id AND orders.status = 'pending_payment'
                     RETURNING orders.*),
                 a AS (
                     UPDATE activities SET sold = activities.sold - x.q
                     FROM (SELECT activity_id, sum(quantity)::INT AS q FROM o GROUP BY activity_id) x
                     WHERE activities.id = x.activity_id),
                 u AS (
                     UPDATE activity_user_units SET units = activity_user_units.units - x.q
                     FROM (SELECT activity_id, user_id, sum(quantity)::INT AS q FROM o
                           GROUP BY activity_id, user_id) x
                     WHERE activity_user_units.activity_id = x.activity_id
                       AND activity_user_units.user_id = x.user_id),
                 {}
                 SELECT {ORDER_COLUMNS} FROM o",
                give_back_claims("")
            ),
            &[&now, &(limit as i64)],
        )
        .await
        .map_err(map_err)?
        .iter()
        .map(order)
        .collect()
    }

    async fn activity_orders(&self, a: ActivityId) -> Result<Vec<Order>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE activity_id = $1 ORDER BY id");
        self.many(&sql, &[&a.0], order).await
    }
}

/// Adds `units[i]` to tier `tiers[i]` of activity `acts[i]` (each pair once: the caller sums a
/// batch's units per activity and tier) in `activity_tier_units`, each within the tier's stock
/// (from the activity's `tiers`); whether every one fitted. A tier the activity lacks does not.
async fn guard_tiers(
    tx: &deadpool_postgres::Transaction<'_>,
    acts: &[i64],
    tiers: &[i32],
    units: &[i32],
) -> Result<bool> {
    let r = tx
        .execute(
            "INSERT INTO activity_tier_units AS u (activity_id, tier, units, stock)
             SELECT x.a, x.t, x.n, (tt->>'stock')::INT
             FROM unnest($1::BIGINT[], $2::INT[], $3::INT[]) AS x(a, t, n)
             JOIN activities a ON a.id = x.a
             CROSS JOIN LATERAL jsonb_array_elements(a.tiers) tt
             WHERE (tt->>'id')::INT = x.t
             ON CONFLICT (activity_id, tier) DO UPDATE SET units = u.units + EXCLUDED.units
             WHERE u.units + EXCLUDED.units <= u.stock",
            &[&acts, &tiers, &units],
        )
        .await
        .map_err(map_err);
    match r {
        Ok(n) => Ok(n as usize == tiers.len()),
        Err(Error::Conflict { .. }) => Ok(false), // the CHECK: a first order above the stock
        Err(e) => Err(e),
    }
}

/// What [`claim`] claims for live orders: a seat, or a holder's document.
#[derive(Clone, Copy)]
enum Claim {
    Seats,
    Documents,
}

/// Claims `keys[i]` of activity `acts[i]` for order `orders[i]` (`order_seats`,
/// `ticket_documents`: one live order per key, their primary key); whether all were free (a
/// key taken, or twice in `keys`, is not). Nothing to claim: `true`.
async fn claim(
    tx: &deadpool_postgres::Transaction<'_>,
    what: Claim,
    acts: &[i64],
    keys: &[&str],
    orders: &[i64],
) -> Result<bool> {
    if keys.is_empty() {
        return Ok(true);
    }
    let sql = match what {
        Claim::Seats => {
            "INSERT INTO order_seats (activity_id, seat, order_id)
             SELECT * FROM unnest($1::BIGINT[], $2::TEXT[], $3::BIGINT[]) ON CONFLICT DO NOTHING"
        }
        Claim::Documents => {
            "INSERT INTO ticket_documents (activity_id, doc_hash, order_id)
             SELECT * FROM unnest($1::BIGINT[], $2::TEXT[], $3::BIGINT[]) ON CONFLICT DO NOTHING"
        }
    };
    let fresh = tx
        .execute(sql, &[&acts, &keys, &orders])
        .await
        .map_err(map_err)?;
    Ok(fresh as usize == keys.len())
}

/// The common table expressions that give a cancelled order's claims back, over the orders
/// `o` just cancelled (when `when`, a condition followed by `AND`, holds): its holders'
/// documents, its seats, and its units to each tier. Both cancellations (a status change and
/// the expiry sweep) use them, after their own `a` (the activity's sold) and `u` (the
/// buyer's units).
fn give_back_claims(when: &str) -> String {
    format!(
        "d AS (
             DELETE FROM ticket_documents USING o
             WHERE {when} ticket_documents.activity_id = o.activity_id
                 AND ticket_documents.order_id = o.id),
         s AS (
             DELETE FROM order_seats USING o
             WHERE {when} order_seats.activity_id = o.activity_id AND order_seats.order_id = o.id),
         t AS (
             UPDATE activity_tier_units tu SET units = tu.units - x.q
             FROM (SELECT o.activity_id, (l->>'tier')::INT AS tier,
                       sum((l->>'quantity')::INT)::INT AS q
                   FROM o CROSS JOIN LATERAL jsonb_array_elements(o.lines) l
                   GROUP BY 1, 2) x
             WHERE {when} tu.activity_id = x.activity_id AND tu.tier = x.tier)"
    )
}
