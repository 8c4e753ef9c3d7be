//! A property-based model of one activity's stock, split into 1 to 5 buckets, for any
//! [`StockReserver`]: random reserves (several buyers, several units, replays), confirms and
//! releases, each outcome compared with what a plain counter of the whole activity says it must
//! be. It catches an oversell (a reserve the counter cannot cover), an **undersell** (a buyer
//! refused while the activity as a whole still had the units: a bucket that did not borrow),
//! a broken per-user limit or replay, and buckets that do not balance.
//!
//! Cases are generated with proptest's strategies and run one by one in the caller's async
//! context (the backend may be a network service); a failing case is reported whole, not
//! shrunk.

use crate::domain::{ActivityId, Hold, HoldId, HoldState, OrderId, UserId};
use crate::stock::{ReserveOutcome, ReserveRequest, StockReserver, StockSpec, Transition};
use chrono::{Duration as CDuration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use std::collections::HashMap;

/// One step.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Step {
    Reserve {
        user: i64,
        qty: u32,
    },
    /// The same request as an earlier reserve (by index among all reserves so far).
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

/// One case: the activity and the steps.
#[derive(Debug, Clone)]
pub struct Case {
    /// Stock buckets (1..=5).
    pub buckets: u32,
    /// Units.
    pub total: u32,
    /// Per-user limit.
    pub limit: u32,
    /// What happens.
    pub steps: Vec<Step>,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1i64..9, 1u32..=3).prop_map(|(user, qty)| Step::Reserve { user, qty }),
        1 => any::<usize>().prop_map(|pick| Step::Replay { pick }),
        2 => any::<usize>().prop_map(|pick| Step::Confirm { pick }),
        2 => any::<usize>().prop_map(|pick| Step::Release { pick }),
    ]
}

/// The strategy of a case.
pub fn case() -> impl Strategy<Value = Case> {
    (
        1u32..=5,
        0u32..24,
        1u32..6,
        proptest::collection::vec(step(), 1..60),
    )
        .prop_map(|(buckets, total, limit, steps)| Case {
            buckets,
            total,
            limit,
            steps,
        })
}

/// Runs `cases` random cases against `b` (buckets above its
/// [`max_buckets`](StockReserver::max_buckets) are cut to it); the first violation, with its
/// case.
pub async fn run(b: &dyn StockReserver, cases: u32) -> Result<(), String> {
    let most = b.max_buckets();
    run_generated(case(), cases, |mut c: Case| async move {
        c.buckets = c.buckets.min(most);
        run_case(b, &c).await
    })
    .await
}

/// Runs `cases` cases drawn from `strategy` one by one with `one`, in the caller's async
/// context; the first failure, with its case (as drawn).
pub(crate) async fn run_generated<S, F, Fut>(
    strategy: S,
    cases: u32,
    mut one: F,
) -> Result<(), String>
where
    S: Strategy,
    S::Value: Clone + std::fmt::Debug,
    F: FnMut(S::Value) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    for _ in 0..cases {
        let c = strategy
            .new_tree(&mut runner)
            .map_err(|e| e.to_string())?
            .current();
        one(c.clone())
            .await
            .map_err(|e| format!("{e}\nin {c:#?}"))?;
    }
    Ok(())
}

struct Model {
    available: i64,
    held: u32,
    sold: u32,
    users: HashMap<i64, u32>,
    /// Every reserve that reserved, with its request and its hold's state.
    holds: Vec<(ReserveRequest, Hold, HoldState)>,
}

/// One case, step by step, checking every outcome and the balance after each.
pub async fn run_case(b: &dyn StockReserver, c: &Case) -> Result<(), String> {
    let a = ActivityId(super::unique_id());
    let t0 = Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap();
    b.load(&StockSpec {
        activity_id: a,
        total: c.total,
        sold: 0,
        per_user_limit: c.limit,
        starts_at: t0,
        ends_at: t0 + CDuration::hours(1),
        user_counts: vec![],
        adopt: vec![],
        fence: 0,
        buckets: c.buckets,
        tiers: Vec::new(),
        quotas: Vec::new(),
        seats: Vec::new(),
    })
    .await
    .map_err(|e| format!("load: {e}"))?;
    let mut m = Model {
        available: i64::from(c.total),
        held: 0,
        sold: 0,
        users: HashMap::new(),
        holds: Vec::new(),
    };
    let err = |i: usize, s: &Step, what: String| format!("step {i} ({s:?}): {what}");
    for (i, s) in c.steps.iter().enumerate() {
        match s {
            Step::Reserve { user, qty } => {
                let r = ReserveRequest {
                    holders: Vec::new(),
                    activity_id: a,
                    user_id: UserId(*user),
                    quantity: *qty,
                    request_id: format!("r{i}"),
                    hold_id: HoldId(super::unique_id()),
                    order_id: OrderId(super::unique_id()),
                    now: t0 + CDuration::minutes(1),
                    expires_at: t0 + CDuration::minutes(16),
                    trace_parent: None,
                    rates: Vec::new(),
                    lines: Vec::new(),
                };
                let got = b.reserve(&r).await.map_err(|e| err(i, s, e.to_string()))?;
                let has = m.users.get(user).copied().unwrap_or(0);
                let want = if has + qty > c.limit {
                    ReserveOutcome::LimitExceeded {
                        held: has,
                        limit: c.limit,
                    }
                } else if m.available >= i64::from(*qty) {
                    match &got {
                        ReserveOutcome::Reserved { hold, .. } => ReserveOutcome::Reserved {
                            hold: hold.clone(),
                            replayed: false,
                        },
                        _ => {
                            return Err(err(
                                i,
                                s,
                                format!(
                                    "undersold: refused with {got:?} while the activity had \
                                     {} units",
                                    m.available
                                ),
                            ))
                        }
                    }
                } else if m.available <= 0 {
                    ReserveOutcome::SoldOut
                } else {
                    ReserveOutcome::InsufficientStock {
                        available: m.available as u32,
                    }
                };
                if got != want {
                    return Err(err(i, s, format!("got {got:?}, the model says {want:?}")));
                }
                if let ReserveOutcome::Reserved { hold, .. } = got {
                    if hold.id != r.hold_id || hold.quantity != *qty {
                        return Err(err(i, s, format!("another hold: {hold:?}")));
                    }
                    m.available -= i64::from(*qty);
                    m.held += qty;
                    *m.users.entry(*user).or_insert(0) += qty;
                    m.holds.push((r, hold, HoldState::Held));
                }
            }
            Step::Replay { pick } => {
                if m.holds.is_empty() {
                    continue;
                }
                let (r, h, _) = &m.holds[pick % m.holds.len()];
                match b.reserve(r).await.map_err(|e| err(i, s, e.to_string()))? {
                    ReserveOutcome::Reserved { hold, replayed } if replayed && hold.id == h.id => {}
                    other => return Err(err(i, s, format!("replay of {}: {other:?}", h.id))),
                }
            }
            Step::Confirm { pick } | Step::Release { pick } => {
                if m.holds.is_empty() {
                    continue;
                }
                let n = pick % m.holds.len();
                let (_, h, state) = m.holds[n].clone();
                let release = matches!(s, Step::Release { .. });
                let got = if release {
                    b.release(a, h.id).await
                } else {
                    b.confirm(a, h.id).await
                }
                .map_err(|e| err(i, s, e.to_string()))?;
                let (want, next) = transition(release, state);
                if got != want {
                    return Err(err(i, s, format!("got {got:?}, the model says {want:?}")));
                }
                if want == Transition::Applied {
                    let q = h.quantity;
                    match (state, next) {
                        (HoldState::Held, HoldState::Confirmed) => {
                            m.held -= q;
                            m.sold += q;
                        }
                        (was, HoldState::Released) => {
                            if was == HoldState::Held {
                                m.held -= q;
                            } else {
                                m.sold -= q;
                            }
                            m.available += i64::from(q);
                            *m.users.get_mut(&h.user_id.0).expect("the buyer") -= q;
                        }
                        _ => {}
                    }
                    m.holds[n].2 = next;
                }
            }
        }
        balance(b, a, c, &m).await.map_err(|e| err(i, s, e))?;
    }
    Ok(())
}

/// What a release (or a confirm) of a hold in `state` must answer, and the state after it.
pub(crate) fn transition(release: bool, state: HoldState) -> (Transition, HoldState) {
    match (release, state) {
        (false, HoldState::Held) => (Transition::Applied, HoldState::Confirmed),
        (false, HoldState::Confirmed) => (Transition::AlreadyDone, state),
        (false, HoldState::Released) => (Transition::Refused(HoldState::Released), state),
        (true, HoldState::Released) => (Transition::AlreadyDone, state),
        (true, _) => (Transition::Applied, HoldState::Released),
    }
}

async fn balance(b: &dyn StockReserver, a: ActivityId, c: &Case, m: &Model) -> Result<(), String> {
    let s = b
        .snapshot(a)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("not loaded")?;
    if (s.total, s.available, s.held, s.sold) != (c.total, m.available, m.held, m.sold) {
        return Err(format!(
            "snapshot {s:?}, the model: available {} held {} sold {}",
            m.available, m.held, m.sold
        ));
    }
    let parts = b.buckets(a).await.map_err(|e| e.to_string())?;
    if parts.len() != c.buckets as usize
        || parts.iter().map(|p| p.total).sum::<u32>() != c.total
        || parts.iter().any(|p| {
            p.available < 0
                || i64::from(p.total) != p.available + i64::from(p.held) + i64::from(p.sold)
        })
    {
        return Err(format!("buckets do not balance: {parts:?}"));
    }
    Ok(())
}
