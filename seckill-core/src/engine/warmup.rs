//! Warm-up: loads an activity's stock into the stock backend, under the activity's lock.
//!
//! It never resets a live activity from scratch: units in orders whose holds the backend no
//! longer has count as sold, and the backend keeps its own holds, so re-warming after a restart
//! never re-sells a unit.

use super::Engine;
use crate::domain::{Activity, ActivityId, UserId};
use crate::lock::LockGuard;
use crate::stock::{StockSnapshot, StockSpec};
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const ACTIVITY_LOCK_TTL: Duration = Duration::from_secs(60);

impl Engine {
    /// Takes the activity's lock (warm-up and reconciliation share it).
    pub(crate) async fn lock_activity(&self, id: ActivityId) -> Result<LockGuard> {
        self.backends()
            .lock
            .acquire(&format!("seckill:activity:{id}"), ACTIVITY_LOCK_TTL)
            .await?
            .ok_or_else(|| {
                Error::conflict(format!(
                    "activity {id} is being warmed up or reconciled by someone else"
                ))
            })
    }

    /// Loads (or refreshes) the activity's stock. Returns the resulting stock figures.
    pub async fn warm_up(&self, id: ActivityId) -> Result<StockSnapshot> {
        let guard = self.lock_activity(id).await?;
        let result = self.warm_up_locked(id).await;
        self.backends().lock.release(&guard).await?;
        self.invalidate_activity(id);
        result
    }

    async fn warm_up_locked(&self, id: ActivityId) -> Result<StockSnapshot> {
        let b = self.backends();
        let Some(a) = b.catalog.activity(id).await? else {
            return Err(Error::not_found(format!("activity {id}")));
        };
        let live: HashSet<_> = b
            .stock
            .live_holds(id)
            .await?
            .into_iter()
            .map(|r| r.hold.id)
            .collect();
        let mut sold = 0u32;
        let mut users: HashMap<UserId, u32> = HashMap::new();
        for o in b.orders.activity_orders(id).await? {
            if o.status.holds_stock() && !live.contains(&o.hold_id) {
                sold += o.quantity;
                *users.entry(o.user_id).or_insert(0) += o.quantity;
            }
        }
        b.stock
            .load(&StockSpec {
                activity_id: id,
                total: a.total_stock,
                sold,
                per_user_limit: a.per_user_limit,
                starts_at: a.starts_at,
                ends_at: a.ends_at,
                user_counts: users.into_iter().collect(),
            })
            .await?;
        let snap = b
            .stock
            .snapshot(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("stock of activity {id} after load")))?;
        Ok(snap)
    }

    /// An operator's change to an activity (title, price, total, limit, window, cancelled),
    /// under the activity's lock like warm-up and reconciliation. A warmed-up activity's stock
    /// takes the change at once (a re-warm: never re-sells a unit). A total below the units
    /// held or sold is refused (`Conflict`); if a buy slips in between that check and the
    /// re-warm, the stock backend refuses the load and the catalog goes back to what it was.
    pub async fn update_activity(&self, a: &Activity) -> Result<()> {
        let guard = self.lock_activity(a.id).await?;
        let result = self.update_activity_locked(a).await;
        self.backends().lock.release(&guard).await?;
        self.invalidate_activity(a.id);
        result
    }

    async fn update_activity_locked(&self, a: &Activity) -> Result<()> {
        let b = self.backends();
        let Some(old) = b.catalog.activity(a.id).await? else {
            return Err(Error::not_found(format!("activity {}", a.id)));
        };
        let snapshot = b.stock.snapshot(a.id).await?;
        if let Some(x) = &snapshot {
            let taken = i64::from(x.held) + i64::from(x.sold);
            if i64::from(a.total_stock) < taken {
                return Err(Error::conflict(format!(
                    "total_stock {} is below the {taken} units already held or sold",
                    a.total_stock
                )));
            }
        }
        b.catalog.update_activity(a).await?;
        if snapshot.is_some() {
            if let Err(e) = self.warm_up_locked(a.id).await {
                b.catalog.update_activity(&old).await?;
                return Err(e);
            }
        }
        Ok(())
    }
}
