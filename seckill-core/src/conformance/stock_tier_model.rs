//! A property-based model of one session's stock with price tiers and quotas
//! (docs/adr/0021), for any [`StockReserver`] that [sells tiers](StockReserver::sells_tiers):
//! random multi-tier reserves (several buyers, replays), confirms and releases, each outcome
//! compared with what plain counters per tier, per quota and for the session's capacity say it
//! must be, in the contract's order (limit, capacity, each line's tier, each quota). It catches
//! a tier or quota oversold, a buyer refused while everything had room (an undersell), a
//! per-user limit broken across tiers, a release that does not give a tier back, and tier
//! figures that do not balance.
//!
//! Cases come from proptest's strategies and run one by one in the caller's async context; a
//! failing case is reported whole, not shrunk.

use crate::domain::{ActivityId, HoldId, HoldState, OrderId, Quota, Tier, TierLine, UserId};
use crate::stock::{ReserveOutcome, ReserveRequest, StockReserver, StockSpec, Transition};
use chrono::{Duration as CDuration, TimeZone, Utc};
use proptest::prelude::*;
use std::collections::HashMap;

/// One step.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Step {
    /// Units of tiers by their index in the case's tiers (a tier named twice is merged).
    Reserve {
        user: i64,
        lines: Vec<(usize, u32)>,
    },
    /// The same request as an earlier reserve that reserved.
    Replay {
        pick: usize,
    },
    Confirm {
        pick: usize,
    },
    Release {
        pick: usize,
    },
}

/// One case: the session's tiers and quota, and the steps.
#[derive(Debug, Clone)]
pub struct Case {
    /// Each tier's stock (tier numbers 1, 2, …).
    pub tiers: Vec<u32>,
    /// The session's capacity (at most the tiers' stock together).
    pub capacity: u32,
    /// One quota's cap over the first two tiers.
    pub quota: u32,
    /// Per-user limit across tiers.
    pub limit: u32,
    /// What happens.
    pub steps: Vec<Step>,
}

fn step(tiers: usize) -> impl Strategy<Value = Step> {
    let line = (0..tiers, 1u32..=2);
    prop_oneof![
        6 => (1i64..7, proptest::collection::vec(line, 1..=3))
            .prop_map(|(user, lines)| Step::Reserve { user, lines }),
        1 => any::<usize>().prop_map(|pick| Step::Replay { pick }),
        2 => any::<usize>().prop_map(|pick| Step::Confirm { pick }),
        2 => any::<usize>().prop_map(|pick| Step::Release { pick }),
    ]
}

/// The strategy of a case.
pub fn case() -> impl Strategy<Value = Case> {
    proptest::collection::vec(1u32..6, 2..=4).prop_flat_map(|tiers| {
        let sum: u32 = tiers.iter().sum();
        let n = tiers.len();
        (
            Just(tiers),
            1..=sum,
            1u32..8,
            1u32..7,
            proptest::collection::vec(step(n), 1..50),
        )
            .prop_map(|(tiers, capacity, quota, limit, steps)| Case {
                tiers,
                capacity,
                quota,
                limit,
                steps,
            })
    })
}

/// Runs `cases` random cases against `b`; the first violation, with its case. A backend that
/// does not sell tiers is skipped (`Ok`).
pub async fn run(b: &dyn StockReserver, cases: u32) -> Result<(), String> {
    if !b.sells_tiers() {
        eprintln!("skipped: the backend does not keep price tiers");
        return Ok(());
    }
    super::stock_model::run_generated(
        case(),
        cases,
        |c: Case| async move { run_case(b, &c).await },
    )
    .await
}

/// The session's tiers and quota as the spec gives them.
fn tiers_of(c: &Case) -> (Vec<Tier>, Vec<Quota>) {
    let tiers = c
        .tiers
        .iter()
        .enumerate()
        .map(|(i, &stock)| Tier {
            id: i as u32 + 1,
            name: format!("tier {}", i + 1),
            price: crate::domain::Money(100 * (i as i64 + 1)),
            stock,
        })
        .collect();
    let quota = Quota {
        id: 7,
        name: "quota".into(),
        cap: c.quota,
        tiers: vec![1, 2],
    };
    (tiers, vec![quota])
}

#[derive(Default)]
struct Model {
    /// Per tier index: held, sold.
    held: Vec<u32>,
    sold: Vec<u32>,
    users: HashMap<i64, u32>,
    /// Every reserve that reserved, with its request, lines and state.
    holds: Vec<(ReserveRequest, HoldState)>,
}

impl Model {
    fn taken(&self, t: usize) -> u32 {
        self.held[t] + self.sold[t]
    }
    fn move_lines(&mut self, lines: &[TierLine], from: HoldState, to: HoldState) {
        for l in lines {
            let t = l.tier as usize - 1;
            match from {
                HoldState::Held => self.held[t] -= l.quantity,
                HoldState::Confirmed => self.sold[t] -= l.quantity,
                HoldState::Released => {}
            }
            match to {
                HoldState::Held => self.held[t] += l.quantity,
                HoldState::Confirmed => self.sold[t] += l.quantity,
                HoldState::Released => {}
            }
        }
    }
}

/// What the contract says a reserve of `lines` by a buyer who has `has` must answer.
fn expected(c: &Case, m: &Model, has: u32, lines: &[TierLine]) -> Option<ReserveOutcome> {
    let qty: u32 = lines.iter().map(|l| l.quantity).sum();
    if has + qty > c.limit {
        return Some(ReserveOutcome::LimitExceeded {
            held: has,
            limit: c.limit,
        });
    }
    let taken: u32 = (0..c.tiers.len()).map(|t| m.taken(t)).sum();
    let left = i64::from(c.capacity) - i64::from(taken);
    if left < i64::from(qty) {
        return Some(if left <= 0 {
            ReserveOutcome::SoldOut
        } else {
            ReserveOutcome::InsufficientStock {
                available: left as u32,
            }
        });
    }
    for l in lines {
        let t = l.tier as usize - 1;
        let avail = c.tiers[t] - m.taken(t);
        if avail < l.quantity {
            return Some(ReserveOutcome::TierShort {
                tier: l.tier,
                available: avail,
            });
        }
    }
    let asked: u32 = lines
        .iter()
        .filter(|l| l.tier <= 2)
        .map(|l| l.quantity)
        .sum();
    let quota_left = i64::from(c.quota) - i64::from(m.taken(0) + m.taken(1));
    if asked > 0 && i64::from(asked) > quota_left {
        return Some(ReserveOutcome::QuotaShort {
            quota: 7,
            available: quota_left.max(0) as u32,
        });
    }
    None
}

/// One case, step by step, checking every outcome and the tiers' figures after each.
pub async fn run_case(b: &dyn StockReserver, c: &Case) -> Result<(), String> {
    let a = ActivityId(super::unique_id());
    let t0 = Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap();
    let (tiers, quotas) = tiers_of(c);
    b.load(&StockSpec {
        activity_id: a,
        total: c.capacity,
        sold: 0,
        per_user_limit: c.limit,
        starts_at: t0,
        ends_at: t0 + CDuration::hours(1),
        user_counts: vec![],
        adopt: vec![],
        fence: 0,
        buckets: 1,
        tiers,
        quotas,
        seats: Vec::new(),
    })
    .await
    .map_err(|e| format!("load: {e}"))?;
    let mut m = Model {
        held: vec![0; c.tiers.len()],
        sold: vec![0; c.tiers.len()],
        ..Model::default()
    };
    let err = |i: usize, s: &Step, what: String| format!("step {i} ({s:?}): {what}");
    for (i, s) in c.steps.iter().enumerate() {
        match s {
            Step::Reserve { user, lines } => {
                let mut merged: Vec<TierLine> = Vec::new();
                for &(t, q) in lines {
                    let tier = t as u32 + 1;
                    match merged.iter_mut().find(|l| l.tier == tier) {
                        Some(l) => l.quantity += q,
                        None => merged.push(TierLine::new(tier, q)),
                    }
                }
                let r = ReserveRequest {
                    holders: Vec::new(),
                    activity_id: a,
                    user_id: UserId(*user),
                    quantity: merged.iter().map(|l| l.quantity).sum(),
                    request_id: format!("r{i}"),
                    hold_id: HoldId(super::unique_id()),
                    order_id: OrderId(super::unique_id()),
                    now: t0 + CDuration::minutes(1),
                    expires_at: t0 + CDuration::minutes(16),
                    trace_parent: None,
                    rates: Vec::new(),
                    lines: merged.clone(),
                };
                let got = b.reserve(&r).await.map_err(|e| err(i, s, e.to_string()))?;
                let has = m.users.get(user).copied().unwrap_or(0);
                match (expected(c, &m, has, &merged), got) {
                    (None, ReserveOutcome::Reserved { hold, replayed }) => {
                        if replayed || hold.id != r.hold_id || hold.lines != merged {
                            return Err(err(i, s, format!("another hold: {hold:?}")));
                        }
                        m.move_lines(&merged, HoldState::Released, HoldState::Held);
                        *m.users.entry(*user).or_insert(0) += r.quantity;
                        m.holds.push((r, HoldState::Held));
                    }
                    (None, other) => {
                        return Err(err(
                            i,
                            s,
                            format!("undersold: refused with {other:?} while every cap had room"),
                        ))
                    }
                    (Some(want), got) if got != want => {
                        return Err(err(i, s, format!("got {got:?}, the model says {want:?}")))
                    }
                    (Some(_), _) => {}
                }
            }
            Step::Replay { pick } => {
                if m.holds.is_empty() {
                    continue;
                }
                let (r, _) = &m.holds[pick % m.holds.len()];
                match b.reserve(r).await.map_err(|e| err(i, s, e.to_string()))? {
                    ReserveOutcome::Reserved { hold, replayed }
                        if replayed && hold.id == r.hold_id && hold.lines == r.lines => {}
                    other => return Err(err(i, s, format!("replay of {}: {other:?}", r.hold_id))),
                }
            }
            Step::Confirm { pick } | Step::Release { pick } => {
                if m.holds.is_empty() {
                    continue;
                }
                let n = pick % m.holds.len();
                let (r, state) = m.holds[n].clone();
                let release = matches!(s, Step::Release { .. });
                let got = if release {
                    b.release(a, r.hold_id).await
                } else {
                    b.confirm(a, r.hold_id).await
                }
                .map_err(|e| err(i, s, e.to_string()))?;
                let (want, next) = super::stock_model::transition(release, state);
                if got != want {
                    return Err(err(i, s, format!("got {got:?}, the model says {want:?}")));
                }
                if want == Transition::Applied {
                    m.move_lines(&r.lines, state, next);
                    if next == HoldState::Released {
                        *m.users.get_mut(&r.user_id.0).expect("the buyer") -= r.quantity;
                    }
                    m.holds[n].1 = next;
                }
            }
        }
        figures(b, a, c, &m).await.map_err(|e| err(i, s, e))?;
    }
    Ok(())
}

/// The backend's tier figures and snapshot against the model.
async fn figures(b: &dyn StockReserver, a: ActivityId, c: &Case, m: &Model) -> Result<(), String> {
    let got = b.tiers(a).await.map_err(|e| e.to_string())?;
    let want: Vec<(u32, u32, i64, u32, u32)> = (0..c.tiers.len())
        .map(|t| {
            let total = c.tiers[t];
            let avail = i64::from(total) - i64::from(m.taken(t));
            (t as u32 + 1, total, avail, m.held[t], m.sold[t])
        })
        .collect();
    let seen: Vec<_> = got
        .iter()
        .map(|x| (x.tier, x.total, x.available, x.held, x.sold))
        .collect();
    if seen != want {
        return Err(format!(
            "tiers {seen:?}, the model (tier, total, available, held, sold): {want:?}"
        ));
    }
    let s = b
        .snapshot(a)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("not loaded")?;
    let held: u32 = m.held.iter().sum();
    let sold: u32 = m.sold.iter().sum();
    if (s.total, s.held, s.sold) != (c.capacity, held, sold) || !s.balanced() {
        return Err(format!(
            "snapshot {s:?}, the model: capacity {} held {held} sold {sold}",
            c.capacity
        ));
    }
    Ok(())
}
