//! A property-based model of a real-name session (docs/adr/0021), for any [`StockReserver`]
//! that [keeps holders](StockReserver::sells_holders): random buys naming holders from a small
//! pool of documents (so they clash often), confirms, releases and reloads, each answer
//! compared with a plain model (which document holds a live ticket, the units left). It
//! catches a document given two tickets, a refusal that names the wrong documents, a release
//! that does not free its documents (or frees others), and a reload that forgets them.

use crate::domain::{ActivityId, HoldId, Holder, IdType};
use crate::stock::{ReserveOutcome, ReserveRequest, StockReserver, Transition};
use proptest::prelude::*;
use std::collections::HashMap;

/// One step.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Step {
    /// A buy of one ticket per document named (a document may be named twice).
    Buy { docs: Vec<u8> },
    /// Confirms an earlier hold (by index among holds so far).
    Confirm { pick: usize },
    /// Releases an earlier hold.
    Release { pick: usize },
    /// Reloads the session's stock (a re-warm).
    Reload,
}

/// The strategy of a case: the session's units and the steps.
pub fn case() -> impl Strategy<Value = (u32, Vec<Step>)> {
    let step = prop_oneof![
        6 => proptest::collection::vec(0u8..8, 1..=3).prop_map(|docs| Step::Buy { docs }),
        2 => any::<usize>().prop_map(|pick| Step::Confirm { pick }),
        3 => any::<usize>().prop_map(|pick| Step::Release { pick }),
        1 => Just(Step::Reload),
    ];
    (4u32..12, proptest::collection::vec(step, 1..40))
}

/// Runs `cases` random cases against `b`; the first violation, with its case. A backend that
/// does not keep holders is skipped (`Ok`).
pub async fn run(b: &dyn StockReserver, cases: u32) -> Result<(), String> {
    if !b.sells_holders() {
        eprintln!("skipped: the backend does not keep real-name holders");
        return Ok(());
    }
    super::stock_model::run_generated(
        case(),
        cases,
        |(total, steps): (u32, Vec<Step>)| async move { run_case(b, total, &steps).await },
    )
    .await
}

fn holder(d: u8) -> Holder {
    Holder {
        name: format!("Holder {d}"),
        id_type: IdType::IdCard,
        id_masked: format!("110***********{d:04}"),
        id_hash: format!("{:032x}", 0xd0c_0000 + u32::from(d)),
    }
}

/// One case, step by step.
pub async fn run_case(b: &dyn StockReserver, total: u32, steps: &[Step]) -> Result<(), String> {
    let a = ActivityId(super::unique_id());
    let spec = super::stock::spec(a, total, 1_000);
    b.load(&spec).await.map_err(|e| format!("load: {e}"))?;
    // The model: each live document's hold, and each hold's documents, state.
    let mut live: HashMap<u8, usize> = HashMap::new();
    let mut holds: Vec<(HoldId, Vec<u8>, Option<bool>)> = Vec::new(); // Some(confirmed): live
    let mut taken = 0u32;
    let err = |i: usize, s: &Step, what: String| format!("step {i} ({s:?}): {what}");
    for (i, s) in steps.iter().enumerate() {
        match s {
            Step::Buy { docs } => {
                let n = docs.len() as u32;
                let mut seen = std::collections::HashSet::new();
                let clash: Vec<String> = docs
                    .iter()
                    .filter(|d| live.contains_key(d) || !seen.insert(**d))
                    .map(|&d| holder(d).id_hash)
                    .collect();
                let left = total - taken;
                let want = if n > left {
                    Err(if left == 0 {
                        ReserveOutcome::SoldOut
                    } else {
                        ReserveOutcome::InsufficientStock { available: left }
                    })
                } else if !clash.is_empty() {
                    Err(ReserveOutcome::HolderTaken { id_hashes: clash })
                } else {
                    Ok(())
                };
                let r = ReserveRequest {
                    holders: docs.iter().map(|&d| holder(d)).collect(),
                    ..super::stock::req(a, 1 + i as i64, n, &format!("r{i}"))
                };
                let got = b.reserve(&r).await.map_err(|e| err(i, s, e.to_string()))?;
                match (want, got) {
                    (Ok(()), ReserveOutcome::Reserved { hold, .. }) => {
                        if hold.holders != r.holders {
                            return Err(err(
                                i,
                                s,
                                format!("the hold's holders {:?}", hold.holders),
                            ));
                        }
                        for d in docs {
                            live.insert(*d, holds.len());
                        }
                        holds.push((hold.id, docs.clone(), Some(false)));
                        taken += n;
                    }
                    (Err(want), got) if got == want => {}
                    (want, got) => {
                        return Err(err(i, s, format!("got {got:?}, the model says {want:?}")));
                    }
                }
            }
            Step::Confirm { pick } | Step::Release { pick } => {
                if holds.is_empty() {
                    continue;
                }
                let k = pick % holds.len();
                let (id, docs, state) = holds[k].clone();
                let release = matches!(s, Step::Release { .. });
                let got = if release {
                    b.release(a, id).await
                } else {
                    b.confirm(a, id).await
                }
                .map_err(|e| err(i, s, e.to_string()))?;
                let want = match (release, state) {
                    (true, Some(_)) => Transition::Applied,
                    (true, None) => Transition::AlreadyDone,
                    (false, Some(false)) => Transition::Applied,
                    (false, Some(true)) => Transition::AlreadyDone,
                    (false, None) => Transition::Refused(crate::domain::HoldState::Released),
                };
                if got != want {
                    return Err(err(i, s, format!("got {got:?}, the model says {want:?}")));
                }
                if release && state.is_some() {
                    for d in &docs {
                        live.remove(d);
                    }
                    taken -= docs.len() as u32;
                    holds[k].2 = None;
                } else if !release && state == Some(false) {
                    holds[k].2 = Some(true);
                }
            }
            Step::Reload => b.load(&spec).await.map_err(|e| err(i, s, e.to_string()))?,
        }
        // The stock backend's live holds name exactly the model's live documents.
        let mut got: Vec<String> = b
            .live_holds(a)
            .await
            .map_err(|e| err(i, s, e.to_string()))?
            .into_iter()
            .flat_map(|r| r.hold.holders)
            .map(|h| h.id_hash)
            .collect();
        got.sort();
        let mut want: Vec<String> = live.keys().map(|&d| holder(d).id_hash).collect();
        want.sort();
        if got != want {
            return Err(err(
                i,
                s,
                format!("live holds name {got:?}, the model {want:?}"),
            ));
        }
    }
    Ok(())
}
