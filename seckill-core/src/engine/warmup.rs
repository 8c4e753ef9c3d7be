//! Warm-up: loads an activity's stock into the stock backend, under the activity's lock.
//!
//! It never resets a live activity from scratch: the backend keeps its own holds, and orders
//! whose holds it no longer has (a Redis that restarted empty or from an older snapshot) get
//! their holds back as confirmed, so re-warming after a loss never re-sells a unit and a later
//! cancel of such an order returns its units. [`Engine::heal_stock`] finds such a loss on its
//! own and re-warms.

use super::Engine;
use crate::domain::{Activity, ActivityId, Hold};
use crate::lock::LockGuard;
use crate::stock::{StockSnapshot, StockSpec};
use crate::{Entity, Error, Result};
use std::collections::HashSet;
use std::time::Duration;

/// The activity lock's lease. Short, and renewed while its holder works, so a process that
/// died holding it blocks warm-up and reconciliation of the activity for at most this long.
const ACTIVITY_LOCK_TTL: Duration = Duration::from_secs(10);

/// The key of an activity's lock: warm-up, reconciliation and updates of the activity run
/// under it, and pass its fencing token to the writes they make.
pub fn activity_lock_key(id: ActivityId) -> String {
    format!("seckill:activity:{id}")
}

impl Engine {
    /// Takes the activity's lock (warm-up, reconciliation and updates share it).
    async fn lock_activity(&self, id: ActivityId) -> Result<LockGuard> {
        self.backends()
            .lock
            .acquire(&activity_lock_key(id), ACTIVITY_LOCK_TTL)
            .await?
            .ok_or_else(|| {
                Error::conflict(
                    Entity::ActivityLock,
                    id,
                    "the activity is being warmed up, reconciled or updated by someone else",
                )
            })
    }

    /// Runs `work` under the activity's lock, renewing the lease every third of its TTL until
    /// `work` is done, then lets go (also when `work` failed). `work` gets the lock's fencing
    /// token and passes it to every write it makes to the activity's stock and record, so that
    /// storage refuses those writes once a later holder has written (this holder stalled past
    /// its lease).
    pub(crate) async fn with_activity_lock<T, F, Fut>(&self, id: ActivityId, work: F) -> Result<T>
    where
        F: FnOnce(u64) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let guard = self.lock_activity(id).await?;
        let work = work(guard.token);
        let lock = self.backends().lock.clone();
        // If the lease is lost meanwhile the work still runs to its end: dropped half-way, an
        // activity update would leave the catalog and the stock backend disagreeing, and every
        // step under this lock is safe to overlap with another holder's (the stock backend's
        // load and the repairs are atomic and idempotent).
        let keep = async {
            loop {
                tokio::time::sleep(ACTIVITY_LOCK_TTL / 3).await;
                match lock.extend(&guard, ACTIVITY_LOCK_TTL).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(activity = %id, "lost the activity lock while holding it");
                        std::future::pending::<()>().await;
                    }
                    Err(e) => {
                        tracing::warn!(activity = %id, error = %e, "renewing the activity lock failed")
                    }
                }
            }
        };
        let result = tokio::select! {
            r = work => r,
            () = keep => unreachable!("the keeper never ends"),
        };
        let released = lock.release(&guard).await;
        let out = result?;
        released?;
        Ok(out)
    }

    /// Loads (or refreshes) the activity's stock. Returns the resulting stock figures.
    pub async fn warm_up(&self, id: ActivityId) -> Result<StockSnapshot> {
        let result = self
            .with_activity_lock(id, |fence| self.warm_up_locked(id, fence))
            .await;
        self.invalidate_activity(id);
        result
    }

    /// Warm-up's work, under the activity's lock whose fencing token is `fence`.
    pub(crate) async fn warm_up_locked(&self, id: ActivityId, fence: u64) -> Result<StockSnapshot> {
        let b = self.backends();
        let Some(a) = b.catalog.activity(id).await? else {
            return Err(Error::not_found(Entity::Activity, id));
        };
        let live: HashSet<_> = b
            .stock
            .live_holds(id)
            .await?
            .into_iter()
            .map(|r| r.hold.id)
            .collect();
        // Live orders whose holds the backend does not have (it lost them, or never had them)
        // are installed as confirmed holds, so that cancelling such an order gives its units back.
        let adopt: Vec<Hold> = b
            .orders
            .activity_orders(id)
            .await?
            .into_iter()
            .filter(|o| o.status.holds_stock() && !live.contains(&o.hold_id))
            .map(|o| o.hold())
            .collect();
        let adopt = if super::sabotage::on(super::sabotage::Sabotage::NoHeal) {
            Vec::new()
        } else {
            adopt
        };
        if !adopt.is_empty() {
            tracing::warn!(activity = %id, orders = adopt.len(),
                "the stock backend lacks the holds of live orders; installing them");
        }
        b.stock
            .load(&StockSpec {
                activity_id: id,
                total: a.total_stock,
                sold: 0,
                per_user_limit: a.per_user_limit,
                starts_at: a.starts_at,
                ends_at: a.ends_at,
                user_counts: Vec::new(),
                adopt,
                fence,
                buckets: a.stock_buckets,
                tiers: a.tiers.clone(),
                quotas: a.quotas.clone(),
                seats: a.seats.clone(),
            })
            .await?;
        let snap = b.stock.snapshot(id).await?.ok_or_else(|| {
            Error::not_found(
                Entity::Activity,
                format!("{id} (its stock, after the load)"),
            )
        })?;
        Ok(snap)
    }

    /// Re-warms the activity if the stock backend lost it: its stock is gone (a Redis restarted
    /// empty) or it counts fewer units held and sold than the database's orders (a Redis
    /// restarted from an older snapshot, or a failover to a replica that missed writes). Only
    /// an open or upcoming, not cancelled activity is kept warm. Returns whether it re-warmed.
    ///
    /// The database is read before the backend: every order counted then still has its hold
    /// in a backend that lost nothing (a cancel in between only makes this re-warm needlessly,
    /// which is harmless).
    pub async fn heal_stock(&self, id: ActivityId) -> Result<bool> {
        match self.backends().catalog.activity(id).await? {
            Some(a) => self.heal_stock_of(&a).await,
            None => Ok(false),
        }
    }

    /// [`Engine::heal_stock`] for an activity as the database has it, read just now (the
    /// reconciler role lists the catalog and checks each one without reading it again).
    pub(crate) async fn heal_stock_of(&self, a: &Activity) -> Result<bool> {
        if super::sabotage::on(super::sabotage::Sabotage::NoHeal) || !a.kept_warm(self.now()) {
            return Ok(false);
        }
        let lost = match self.backends().stock.snapshot(a.id).await? {
            None => true,
            Some(s) => u64::from(s.sold) + u64::from(s.held) < u64::from(a.sold),
        };
        if !lost {
            return Ok(false);
        }
        tracing::warn!(activity = %a.id, "the stock backend lost this activity's stock; re-warming");
        self.warm_up(a.id).await?;
        self.metrics().stock_rewarms.inc();
        Ok(true)
    }

    /// An operator's change to an activity (title, price, total, limit, window, cancelled),
    /// under the activity's lock like warm-up and reconciliation. A warmed-up activity's stock
    /// takes the change at once (a re-warm: never re-sells a unit). A total below the units
    /// held or sold is refused (`Conflict`); if a buy slips in between that check and the
    /// re-warm, the stock backend refuses the load and the catalog goes back to what it was.
    pub async fn update_activity(&self, a: &Activity) -> Result<()> {
        a.validate()?;
        let result = self
            .with_activity_lock(a.id, |fence| self.update_activity_locked(a, fence))
            .await;
        self.invalidate_activity(a.id);
        result
    }

    async fn update_activity_locked(&self, a: &Activity, fence: u64) -> Result<()> {
        let b = self.backends();
        let Some(old) = b.catalog.activity(a.id).await? else {
            return Err(Error::not_found(Entity::Activity, a.id));
        };
        if a.stock_buckets != old.stock_buckets {
            return Err(Error::conflict(
                Entity::Activity,
                a.id,
                format!(
                    "stock_buckets is fixed at creation ({}), not {}",
                    old.stock_buckets, a.stock_buckets
                ),
            ));
        }
        if a.event_id != old.event_id
            || a.tiers != old.tiers
            || a.quotas != old.quotas
            || a.seats != old.seats
            || a.real_name != old.real_name
        {
            return Err(Error::conflict(
                Entity::Activity,
                a.id,
                "event_id, tiers, quotas, seats and real_name are fixed at creation",
            ));
        }
        let snapshot = b.stock.snapshot(a.id).await?;
        if let Some(x) = &snapshot {
            let taken = i64::from(x.held) + i64::from(x.sold);
            if i64::from(a.total_stock) < taken {
                return Err(Error::conflict(
                    Entity::Activity,
                    a.id,
                    format!(
                        "total_stock {} is below the {taken} units already held or sold",
                        a.total_stock
                    ),
                ));
            }
        }
        b.catalog.update_activity(a, fence).await?;
        if snapshot.is_some() {
            match self.warm_up_locked(a.id, fence).await {
                Ok(_) => {}
                // A later holder of the lock loaded since (this one stalled past its lease);
                // it read the record written above, so stock and record agree: rolling the
                // record back would leave them apart.
                Err(
                    e @ Error::Conflict {
                        entity: Entity::ActivityLock,
                        ..
                    },
                ) => return Err(e),
                Err(e) => {
                    b.catalog.update_activity(&old, fence).await?;
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}
