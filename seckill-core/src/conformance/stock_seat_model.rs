//! A property-based model of a seated session (docs/adr/0021), for any [`StockReserver`] that
//! [sells seats](StockReserver::sells_seats): random buys of the best available or of named
//! seats, and releases, each answer compared with a plain model of the map (which seat is
//! taken) and the contract's allocation (adjacent seats in the first block that has them,
//! else the first free ones in block order). It catches a seat sold twice, a named seat given
//! while taken, a release that frees other seats, and an allocator that differs from the
//! contract.

use crate::domain::{ActivityId, HoldId, Money, OrderId, SeatBlock, Tier, TierLine, UserId};
use crate::stock::{ReserveOutcome, ReserveRequest, StockReserver, StockSpec, Transition};
use chrono::{Duration as CDuration, TimeZone, Utc};
use proptest::prelude::*;

/// One step.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Step {
    /// The best `n` seats.
    Best { n: u32 },
    /// The seats at these positions of the map (in block order), taken or not.
    Named { at: Vec<usize> },
    /// Releases an earlier hold (by index among holds so far).
    Release { pick: usize },
}

/// One case: each block's length (one row each), and the steps.
#[derive(Debug, Clone)]
pub struct Case {
    /// Seats per block.
    pub blocks: Vec<u32>,
    /// What happens.
    pub steps: Vec<Step>,
}

/// The strategy of a case.
pub fn case() -> impl Strategy<Value = Case> {
    let step = prop_oneof![
        4 => (1u32..=4).prop_map(|n| Step::Best { n }),
        2 => proptest::collection::vec(0usize..40, 1..=3).prop_map(|at| Step::Named { at }),
        2 => any::<usize>().prop_map(|pick| Step::Release { pick }),
    ];
    (
        proptest::collection::vec(1u32..8, 1..5),
        proptest::collection::vec(step, 1..40),
    )
        .prop_map(|(blocks, steps)| Case { blocks, steps })
}

/// Runs `cases` random cases against `b`; the first violation, with its case. A backend that
/// does not keep seat maps is skipped (`Ok`).
pub async fn run(b: &dyn StockReserver, cases: u32) -> Result<(), String> {
    if !b.sells_seats() {
        eprintln!("skipped: the backend does not keep seat maps");
        return Ok(());
    }
    super::stock_model::run_generated(
        case(),
        cases,
        |c: Case| async move { run_case(b, &c).await },
    )
    .await
}

/// The contract's best available `n` of `taken` (seat ids by block): adjacent in the first
/// block that has them, else the first free in block order.
fn best(
    map: &[Vec<String>],
    taken: &std::collections::HashSet<String>,
    n: usize,
) -> Option<Vec<String>> {
    for row in map {
        let mut run = 0;
        for (k, s) in row.iter().enumerate() {
            run = if taken.contains(s) { 0 } else { run + 1 };
            if run == n {
                return Some(row[k + 1 - n..=k].to_vec());
            }
        }
    }
    let free: Vec<String> = map
        .iter()
        .flatten()
        .filter(|s| !taken.contains(*s))
        .take(n)
        .cloned()
        .collect();
    (free.len() == n).then_some(free)
}

/// One case, step by step.
pub async fn run_case(b: &dyn StockReserver, c: &Case) -> Result<(), String> {
    let a = ActivityId(super::unique_id());
    let t0 = Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap();
    let blocks: Vec<SeatBlock> = c
        .blocks
        .iter()
        .enumerate()
        .map(|(r, &len)| SeatBlock {
            section: "S".into(),
            row: (r + 1).to_string(),
            tier: 1,
            from: 1,
            to: len,
        })
        .collect();
    let total: u32 = c.blocks.iter().sum();
    b.load(&StockSpec {
        activity_id: a,
        total,
        sold: 0,
        per_user_limit: 1_000,
        starts_at: t0,
        ends_at: t0 + CDuration::hours(1),
        user_counts: vec![],
        adopt: vec![],
        fence: 0,
        buckets: 1,
        tiers: vec![Tier {
            id: 1,
            name: "seated".into(),
            price: Money(100),
            stock: total,
        }],
        quotas: Vec::new(),
        seats: blocks.clone(),
    })
    .await
    .map_err(|e| format!("load: {e}"))?;
    let map: Vec<Vec<String>> = blocks.iter().map(|b| b.seat_ids().collect()).collect();
    let all: Vec<&String> = map.iter().flatten().collect();
    let mut taken = std::collections::HashSet::new();
    let mut holds: Vec<(HoldId, Vec<String>, bool)> = Vec::new();
    let err = |i: usize, s: &Step, what: String| format!("step {i} ({s:?}): {what}");
    for (i, s) in c.steps.iter().enumerate() {
        let line = match s {
            Step::Best { n } => TierLine::new(1, *n),
            Step::Named { at } => {
                let mut seats: Vec<String> = Vec::new();
                for &p in at {
                    let id = all[p % all.len()].clone();
                    if !seats.contains(&id) {
                        seats.push(id);
                    }
                }
                TierLine {
                    seats: seats.clone(),
                    ..TierLine::new(1, seats.len() as u32)
                }
            }
            Step::Release { pick } => {
                if holds.is_empty() {
                    continue;
                }
                let n = pick % holds.len();
                let (id, seats, live) = holds[n].clone();
                let got = b
                    .release(a, id)
                    .await
                    .map_err(|e| err(i, s, e.to_string()))?;
                let want = if live {
                    Transition::Applied
                } else {
                    Transition::AlreadyDone
                };
                if got != want {
                    return Err(err(i, s, format!("got {got:?}, the model says {want:?}")));
                }
                if live {
                    for seat in &seats {
                        taken.remove(seat);
                    }
                }
                holds[n].2 = false;
                check_taken(b, a, &taken).await.map_err(|e| err(i, s, e))?;
                continue;
            }
        };
        // The session's capacity first (here the seats' count, as the tier's stock), then the
        // seats.
        let left = (total as usize - taken.len()) as u32;
        let want: Result<Vec<String>, ReserveOutcome> = if line.quantity > left {
            Err(if left == 0 {
                ReserveOutcome::SoldOut
            } else {
                ReserveOutcome::InsufficientStock { available: left }
            })
        } else if line.seats.is_empty() {
            best(&map, &taken, line.quantity as usize).ok_or(ReserveOutcome::TierShort {
                tier: 1,
                available: (total as usize - taken.len()) as u32,
            })
        } else {
            let busy: Vec<String> = line
                .seats
                .iter()
                .filter(|x| taken.contains(*x))
                .cloned()
                .collect();
            if busy.is_empty() {
                Ok(line.seats.clone())
            } else {
                Err(ReserveOutcome::SeatsTaken { seats: busy })
            }
        };
        let r = ReserveRequest {
            holders: Vec::new(),
            activity_id: a,
            user_id: UserId(1 + i as i64),
            quantity: line.quantity,
            request_id: format!("r{i}"),
            hold_id: HoldId(super::unique_id()),
            order_id: OrderId(super::unique_id()),
            now: t0 + CDuration::minutes(1),
            expires_at: t0 + CDuration::minutes(16),
            trace_parent: None,
            rates: Vec::new(),
            lines: vec![line],
        };
        let got = b.reserve(&r).await.map_err(|e| err(i, s, e.to_string()))?;
        match (want, got) {
            (Ok(seats), ReserveOutcome::Reserved { hold, .. }) => {
                if hold.lines.len() != 1 || hold.lines[0].seats != seats {
                    return Err(err(
                        i,
                        s,
                        format!("got seats {:?}, the model says {seats:?}", hold.lines),
                    ));
                }
                taken.extend(seats.iter().cloned());
                holds.push((hold.id, seats, true));
            }
            (Err(want), got) if got == want => {}
            (want, got) => {
                return Err(err(i, s, format!("got {got:?}, the model says {want:?}")));
            }
        }
        check_taken(b, a, &taken).await.map_err(|e| err(i, s, e))?;
    }
    Ok(())
}

async fn check_taken(
    b: &dyn StockReserver,
    a: ActivityId,
    taken: &std::collections::HashSet<String>,
) -> Result<(), String> {
    let mut got = b.taken_seats(a).await.map_err(|e| e.to_string())?;
    got.sort();
    let mut want: Vec<String> = taken.iter().cloned().collect();
    want.sort();
    if got != want {
        return Err(format!("taken seats {got:?}, the model: {want:?}"));
    }
    let t = b.tiers(a).await.map_err(|e| e.to_string())?;
    if t.len() != 1 || t[0].held as usize != want.len() || t[0].available < 0 {
        return Err(format!(
            "tier figures {t:?} with {} seats taken",
            want.len()
        ));
    }
    Ok(())
}

/// The seat benchmarks' session (`seckill-core/benches/seats.rs`, `seckill-store/benches/
/// redis_seats.rs`; docs/benchmarks.md), open from a minute ago for an hour: tier 1 seated on
/// `rows` rows of `per_row` seats (section A, best row first), tier 2 unseated with a million
/// units (the baseline's), a capacity of both and no per-user limit to speak of.
pub fn bench_session(a: ActivityId, rows: u32, per_row: u32) -> StockSpec {
    let now = Utc::now();
    let seats = rows * per_row;
    StockSpec {
        activity_id: a,
        total: seats + 1_000_000,
        sold: 0,
        per_user_limit: 1_000_000,
        starts_at: now - CDuration::minutes(1),
        ends_at: now + CDuration::hours(1),
        user_counts: vec![],
        adopt: vec![],
        fence: 0,
        buckets: 1,
        tiers: vec![
            Tier {
                id: 1,
                name: "seated".into(),
                price: Money(58_000),
                stock: seats,
            },
            Tier {
                id: 2,
                name: "standing".into(),
                price: Money(38_000),
                stock: 1_000_000,
            },
        ],
        quotas: Vec::new(),
        seats: (0..rows)
            .map(|r| SeatBlock {
                section: "A".into(),
                row: (r + 1).to_string(),
                tier: 1,
                from: 1,
                to: per_row,
            })
            .collect(),
    }
}
