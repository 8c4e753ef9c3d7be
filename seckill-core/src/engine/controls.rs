//! Live sale controls: what an operator changes while the engine runs, with no restart. The
//! kill switch stops buys of one activity now (the others keep selling); the per-user buy quota
//! can be moved. Every engine of a deployment applies the same values (the server spreads them
//! through its shared settings store); the engine checks them on every buy, from memory.

use crate::domain::ActivityId;
use crate::rate_limit::Quota;
use parking_lot::RwLock;
use std::collections::HashSet;

/// The engine's live controls (see the module's documentation).
#[derive(Debug, Default)]
pub struct SaleControls {
    paused: RwLock<HashSet<ActivityId>>,
    buy_quota: RwLock<Option<Quota>>,
}

impl SaleControls {
    /// Controls with nothing paused and `buy_quota` per user.
    pub fn new(buy_quota: Option<Quota>) -> Self {
        Self {
            paused: RwLock::new(HashSet::new()),
            buy_quota: RwLock::new(buy_quota),
        }
    }

    /// Whether buys of `activity` are stopped.
    pub fn is_paused(&self, activity: ActivityId) -> bool {
        let p = self.paused.read();
        !p.is_empty() && p.contains(&activity)
    }

    /// Stops buys of exactly these activities (an empty set resumes every one).
    pub fn set_paused(&self, activities: impl IntoIterator<Item = ActivityId>) {
        *self.paused.write() = activities.into_iter().collect();
    }

    /// The activities whose buys are stopped, in id order.
    pub fn paused(&self) -> Vec<ActivityId> {
        let mut v: Vec<_> = self.paused.read().iter().copied().collect();
        v.sort();
        v
    }

    /// The per-user buy quota (`None`: unlimited).
    pub fn buy_quota(&self) -> Option<Quota> {
        *self.buy_quota.read()
    }

    /// Moves the per-user buy quota.
    pub fn set_buy_quota(&self, quota: Option<Quota>) {
        *self.buy_quota.write() = quota;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_exactly_the_named_activities() {
        let c = SaleControls::new(None);
        assert!(!c.is_paused(ActivityId(1)));
        c.set_paused([ActivityId(2), ActivityId(1)]);
        assert!(c.is_paused(ActivityId(1)) && c.is_paused(ActivityId(2)));
        assert!(!c.is_paused(ActivityId(3)));
        assert_eq!(c.paused(), vec![ActivityId(1), ActivityId(2)]);
        c.set_paused([]);
        assert!(!c.is_paused(ActivityId(1)));
        c.set_buy_quota(Some(Quota::per_second(3, 3)));
        assert_eq!(c.buy_quota().unwrap().rate, 3);
    }
}
