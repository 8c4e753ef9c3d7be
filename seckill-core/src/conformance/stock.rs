//! Conformance cases of [`StockReserver`].

use crate::domain::{ActivityId, HoldId, HoldState, OrderId, UserId};
use crate::stock::{ReserveOutcome, ReserveRequest, StockReserver, StockSpec, Transition};
use crate::Timestamp;
use chrono::{Duration as CDuration, TimeZone, Utc};
use std::sync::Arc;
use std::time::Duration;

/// The backend under test.
pub type Backend = Arc<dyn StockReserver>;

fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
}

/// A spec of `total` units, `limit` per user, open for an hour from `t0`, nothing sold yet.
pub(crate) fn spec(a: ActivityId, total: u32, limit: u32) -> StockSpec {
    StockSpec {
        activity_id: a,
        total,
        sold: 0,
        per_user_limit: limit,
        starts_at: t0(),
        ends_at: t0() + CDuration::hours(1),
        user_counts: vec![],
        adopt: vec![],
        fence: 0,
        buckets: 1,
        tiers: Vec::new(),
        quotas: Vec::new(),
        seats: Vec::new(),
    }
}

async fn fresh(b: &Backend, total: u32, limit: u32) -> ActivityId {
    let id = ActivityId(super::unique_id());
    b.load(&spec(id, total, limit)).await.expect("load");
    id
}

/// A plain reserve of `qty` units by `user` under `key`, a minute into the spec's window.
pub(crate) fn req(a: ActivityId, user: i64, qty: u32, key: &str) -> ReserveRequest {
    ReserveRequest {
        holders: Vec::new(),
        activity_id: a,
        user_id: UserId(user),
        quantity: qty,
        request_id: key.to_string(),
        hold_id: HoldId(super::unique_id()),
        order_id: OrderId(super::unique_id()),
        now: t0() + CDuration::minutes(1),
        expires_at: t0() + CDuration::minutes(16),
        trace_parent: None,
        rates: Vec::new(),
        lines: Vec::new(),
    }
}

async fn reserved(b: &Backend, r: &ReserveRequest) -> crate::domain::Hold {
    match b.reserve(r).await.expect("reserve") {
        ReserveOutcome::Reserved { hold, .. } => hold,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

/// A reserve takes the units, records a held hold, counts them for the user and appends one
/// outbox entry.
pub async fn reserve_takes_units_and_records_hold(b: &Backend) {
    let a = fresh(b, 10, 5).await;
    let r = req(a, 1, 3, "k1");
    let hold = reserved(b, &r).await;
    assert_eq!(
        (hold.id, hold.order_id, hold.quantity),
        (r.hold_id, r.order_id, 3)
    );
    assert_eq!(hold.expires_at, r.expires_at);
    let s = b.snapshot(a).await.unwrap().expect("loaded");
    assert_eq!((s.total, s.available, s.held, s.sold), (10, 7, 3, 0));
    assert_eq!(
        b.hold(a, hold.id).await.unwrap().unwrap().state,
        HoldState::Held
    );
    assert_eq!(b.user_count(a, UserId(1)).await.unwrap(), 3);
    let entries = b.outbox_claim(100, Duration::from_secs(30)).await.unwrap();
    assert_eq!(entries.iter().filter(|e| e.hold.id == hold.id).count(), 1);
}

/// Outside the window or before warm-up nothing is reserved.
pub async fn window_and_warm_up_are_checked(b: &Backend) {
    let a = fresh(b, 10, 5).await;
    let mut r = req(a, 1, 1, "early");
    r.now = t0() - CDuration::seconds(1);
    assert_eq!(b.reserve(&r).await.unwrap(), ReserveOutcome::NotStarted);
    let mut r = req(a, 1, 1, "late");
    r.now = t0() + CDuration::hours(1);
    assert_eq!(b.reserve(&r).await.unwrap(), ReserveOutcome::Ended);
    let cold = req(ActivityId(super::unique_id()), 1, 1, "cold");
    assert_eq!(b.reserve(&cold).await.unwrap(), ReserveOutcome::NotLoaded);
    assert_eq!(b.snapshot(a).await.unwrap().unwrap().available, 10);
}

/// The per-user limit counts units across holds, not holds.
pub async fn per_user_limit_counts_units(b: &Backend) {
    let a = fresh(b, 100, 3).await;
    reserved(b, &req(a, 1, 2, "a")).await;
    assert_eq!(
        b.reserve(&req(a, 1, 2, "b")).await.unwrap(),
        ReserveOutcome::LimitExceeded { held: 2, limit: 3 }
    );
    reserved(b, &req(a, 1, 1, "c")).await;
    reserved(b, &req(a, 2, 3, "d")).await;
    assert_eq!(b.snapshot(a).await.unwrap().unwrap().available, 94);
}

/// Running out: fewer than asked is `InsufficientStock`, none is `SoldOut`.
pub async fn sold_out_and_insufficient(b: &Backend) {
    let a = fresh(b, 3, 3).await;
    reserved(b, &req(a, 1, 2, "a")).await;
    assert_eq!(
        b.reserve(&req(a, 2, 2, "b")).await.unwrap(),
        ReserveOutcome::InsufficientStock { available: 1 }
    );
    reserved(b, &req(a, 2, 1, "c")).await;
    assert_eq!(
        b.reserve(&req(a, 3, 1, "d")).await.unwrap(),
        ReserveOutcome::SoldOut
    );
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.available, s.held), (0, 3));
}

/// The same request id returns the same hold and takes nothing more.
pub async fn request_id_replays(b: &Backend) {
    let a = fresh(b, 10, 10).await;
    let first = reserved(b, &req(a, 1, 2, "same")).await;
    match b.reserve(&req(a, 1, 2, "same")).await.unwrap() {
        ReserveOutcome::Reserved { hold, replayed } => {
            assert!(replayed);
            assert_eq!(hold, first);
        }
        other => panic!("{other:?}"),
    }
    // Another user's identical key is another request.
    let other = reserved(b, &req(a, 2, 2, "same")).await;
    assert_ne!(other.id, first.id);
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!(s.available, 6);
    let entries = b.outbox_claim(100, Duration::from_secs(30)).await.unwrap();
    assert_eq!(entries.iter().filter(|e| e.hold.id == first.id).count(), 1);
}

/// Confirm and release move units between held, sold and available, once each.
pub async fn confirm_and_release_are_idempotent(b: &Backend) {
    let a = fresh(b, 10, 10).await;
    let h1 = reserved(b, &req(a, 1, 2, "a")).await;
    let h2 = reserved(b, &req(a, 1, 3, "b")).await;
    assert_eq!(b.confirm(a, h1.id).await.unwrap(), Transition::Applied);
    assert_eq!(b.confirm(a, h1.id).await.unwrap(), Transition::AlreadyDone);
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.available, s.held, s.sold), (5, 3, 2));
    // Release a held hold and a confirmed one.
    assert_eq!(b.release(a, h2.id).await.unwrap(), Transition::Applied);
    assert_eq!(b.release(a, h1.id).await.unwrap(), Transition::Applied);
    assert_eq!(b.release(a, h1.id).await.unwrap(), Transition::AlreadyDone);
    assert_eq!(
        b.confirm(a, h2.id).await.unwrap(),
        Transition::Refused(HoldState::Released)
    );
    assert_eq!(b.confirm(a, HoldId(1)).await.unwrap(), Transition::Unknown);
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.available, s.held, s.sold), (10, 0, 0));
    assert_eq!(b.user_count(a, UserId(1)).await.unwrap(), 0);
    assert!(b.live_holds(a).await.unwrap().is_empty());
    // The quota came back: the user can reserve up to the limit again.
    reserved(b, &req(a, 1, 10, "c")).await;
}

/// Many concurrent reserves never take more than the stock.
pub async fn concurrent_reserves_never_oversell(b: &Backend) {
    let a = fresh(b, 50, 1).await;
    let mut tasks = Vec::new();
    for u in 0..200 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            b.reserve(&req(a, 1000 + u, 1, "k")).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            ReserveOutcome::Reserved { .. } => won += 1,
            ReserveOutcome::SoldOut => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(won, 50);
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.available, s.held), (0, 50));
}

/// Loading again keeps holds and never re-sells a unit.
pub async fn reload_keeps_holds(b: &Backend) {
    let a = fresh(b, 10, 10).await;
    let h1 = reserved(b, &req(a, 1, 2, "a")).await;
    reserved(b, &req(a, 2, 3, "b")).await;
    b.confirm(a, h1.id).await.unwrap();
    b.load(&StockSpec {
        activity_id: a,
        total: 12,
        sold: 0,
        per_user_limit: 10,
        starts_at: t0(),
        ends_at: t0() + CDuration::hours(2),
        user_counts: vec![],
        adopt: vec![],
        fence: 0,
        buckets: 1,
        tiers: Vec::new(),
        quotas: Vec::new(),
        seats: Vec::new(),
    })
    .await
    .unwrap();
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.total, s.available, s.held, s.sold), (12, 7, 3, 2));
    let too_small = StockSpec {
        activity_id: a,
        total: 4,
        sold: 0,
        per_user_limit: 10,
        starts_at: t0(),
        ends_at: t0() + CDuration::hours(2),
        user_counts: vec![],
        adopt: vec![],
        fence: 0,
        buckets: 1,
        tiers: Vec::new(),
        quotas: Vec::new(),
        seats: Vec::new(),
    };
    assert!(matches!(
        b.load(&too_small).await,
        Err(crate::Error::Conflict { .. })
    ));
    assert_eq!(b.snapshot(a).await.unwrap().unwrap().total, 12);
    assert_eq!(b.live_holds(a).await.unwrap().len(), 2);
    assert_eq!(b.user_count(a, UserId(2)).await.unwrap(), 3);
}

/// A fresh load counts the database's sold units and per-user counts.
pub async fn fresh_load_counts_prior_sales(b: &Backend) {
    let a = ActivityId(super::unique_id());
    b.load(&StockSpec {
        activity_id: a,
        total: 10,
        sold: 4,
        per_user_limit: 3,
        starts_at: t0(),
        ends_at: t0() + CDuration::hours(1),
        user_counts: vec![(UserId(7), 3)],
        adopt: vec![],
        fence: 0,
        buckets: 1,
        tiers: Vec::new(),
        quotas: Vec::new(),
        seats: Vec::new(),
    })
    .await
    .unwrap();
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.available, s.sold), (6, 4));
    assert!(matches!(
        b.reserve(&req(a, 7, 1, "x")).await.unwrap(),
        ReserveOutcome::LimitExceeded { held: 3, limit: 3 }
    ));
}

/// A load adopts the holds of live orders the backend lost: each unknown one is installed as
/// confirmed (its units sold, counted for its user), a known one is left as it is (also a
/// released one), and a release gives an adopted hold's units back. A total below what is taken
/// with the adopted holds is refused and changes nothing.
pub async fn load_adopts_lost_holds(b: &Backend) {
    let a = ActivityId(super::unique_id());
    let lost = |user: i64, qty: u32| crate::domain::Hold {
        holders: Vec::new(),
        id: HoldId(super::unique_id()),
        order_id: OrderId(super::unique_id()),
        activity_id: a,
        user_id: UserId(user),
        quantity: qty,
        created_at: t0(),
        expires_at: t0() + CDuration::minutes(15),
        lines: Vec::new(),
    };
    let (h1, h2) = (lost(1, 2), lost(2, 1));
    let spec = |total: u32, adopt: Vec<crate::domain::Hold>| StockSpec {
        adopt,
        ..spec(a, total, 2)
    };
    b.load(&spec(5, vec![h1.clone()])).await.unwrap();
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.available, s.held, s.sold), (3, 0, 2));
    assert_eq!(b.user_count(a, UserId(1)).await.unwrap(), 2);
    let rec = b.hold(a, h1.id).await.unwrap().expect("adopted hold");
    assert_eq!(
        (rec.state, rec.hold.order_id),
        (HoldState::Confirmed, h1.order_id)
    );
    // Too small with the second adopted hold: refused, nothing changes.
    assert!(matches!(
        b.load(&spec(2, vec![h1.clone(), h2.clone()])).await,
        Err(crate::Error::Conflict { .. })
    ));
    assert!(b.hold(a, h2.id).await.unwrap().is_none());
    // The same adoption again counts nothing twice; the new one is added.
    b.load(&spec(5, vec![h1.clone(), h2.clone()]))
        .await
        .unwrap();
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.available, s.held, s.sold), (2, 0, 3));
    // Cancelling an adopted hold's order gives its units and the quota back.
    assert_eq!(b.release(a, h1.id).await.unwrap(), Transition::Applied);
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.available, s.sold), (4, 1));
    assert_eq!(b.user_count(a, UserId(1)).await.unwrap(), 0);
    // A released hold is not adopted again.
    b.load(&spec(5, vec![h1.clone(), h2])).await.unwrap();
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.available, s.sold), (4, 1));
    assert!(s.balanced());
}

/// Outbox entries go to one claimer at a time, come back after their lease, and leave on ack.
pub async fn outbox_claims_lease_and_ack(b: &Backend) {
    let a = fresh(b, 10, 10).await;
    for k in ["a", "b", "c"] {
        reserved(b, &req(a, 1, 1, k)).await;
    }
    // The lag names the activity with its three entries.
    let lag = b.outbox_lag().await.unwrap();
    assert!(lag.contains(&(a, 3)), "{lag:?}");
    let lease = Duration::from_millis(300);
    let first = b.outbox_claim(2, lease).await.unwrap();
    assert_eq!(first.len(), 2);
    let second = b.outbox_claim(10, lease).await.unwrap();
    assert_eq!(second.len(), 1);
    assert!(first.iter().all(|e| e.id != second[0].id));
    assert!(b.outbox_claim(10, lease).await.unwrap().is_empty());
    b.outbox_ack(&[first[0].id.clone(), second[0].id.clone()])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    let again = b.outbox_claim(10, lease).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, first[1].id);
    assert_eq!(again[0].attempts, 2);
    b.outbox_ack(&[again[0].id.clone()]).await.unwrap();
    assert_eq!(b.outbox_len().await.unwrap(), 0);
    assert!(b.outbox_lag().await.unwrap().iter().all(|(x, _)| *x != a));
}

/// An outbox entry carries the trace context of its reserve, and none when the reserve had
/// none (so the relay's span continues the buy's trace).
pub async fn outbox_entries_carry_the_trace_context(b: &Backend) {
    let a = fresh(b, 10, 10).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = reserved(
        b,
        &ReserveRequest {
            trace_parent: Some(tp.into()),
            ..req(a, 1, 1, "traced")
        },
    )
    .await;
    let plain = reserved(b, &req(a, 2, 1, "plain")).await;
    let entries = b.outbox_claim(10, Duration::from_secs(30)).await.unwrap();
    let of = |h: &crate::domain::Hold| {
        entries
            .iter()
            .find(|e| e.hold.id == h.id)
            .unwrap_or_else(|| panic!("no outbox entry for {h:?}: {entries:?}"))
            .trace_parent
            .clone()
    };
    assert_eq!(of(&traced).as_deref(), Some(tp));
    assert_eq!(of(&plain), None);
}

/// A load fenced with a token below the highest one the activity was loaded with is refused
/// and changes nothing (the holder stalled past its lease and a later holder has loaded); an
/// equal or higher token loads, and an unfenced load (token 0) is not checked.
pub async fn stale_fence_is_refused(b: &Backend) {
    let a = ActivityId(super::unique_id());
    let spec = |total: u32, fence: u64| StockSpec {
        fence,
        ..spec(a, total, 2)
    };
    // Tokens as the locks issue them: above the clock in microseconds.
    let (old, new) = (1_900_000_000_000_000, 1_900_000_000_000_001);
    b.load(&spec(10, new))
        .await
        .expect("the newest holder loads");
    let stale = b.load(&spec(99, old)).await;
    assert!(
        matches!(
            &stale,
            Err(crate::Error::Conflict {
                entity: crate::Entity::ActivityLock,
                ..
            })
        ),
        "a stale token must be refused: {stale:?}"
    );
    assert_eq!(b.snapshot(a).await.unwrap().unwrap().total, 10);
    b.load(&spec(11, new)).await.expect("the same holder again");
    b.load(&spec(12, new + 1)).await.expect("a later holder");
    assert!(b.load(&spec(98, new)).await.is_err(), "now stale too");
    assert_eq!(b.snapshot(a).await.unwrap().unwrap().total, 12);
}

/// Rate charges ride in the reserve: over its quota a reserve is `RateLimited` with a wait and
/// takes nothing; a refused reserve charges none of its charges; a replay charges nothing;
/// keys are independent and refill with time; a zero quota is refused.
pub async fn rate_charges_are_checked_in_the_reserve(b: &Backend) {
    use crate::rate_limit::{Quota, RateCharge};
    let a = fresh(b, 100, 100).await;
    let two = Quota::per_second(2, 2);
    let charged = |user: i64, key: &str, charges: &[(&str, Quota)]| {
        let mut r = req(a, user, 1, key);
        r.rates = charges
            .iter()
            .map(|(k, q)| RateCharge::new(*k, *q))
            .collect();
        r
    };
    let first = charged(1, "r1", &[("u:1", two)]);
    reserved(b, &first).await;
    reserved(b, &charged(1, "r2", &[("u:1", two)])).await;
    match b.reserve(&charged(1, "r3", &[("u:1", two)])).await.unwrap() {
        ReserveOutcome::RateLimited { retry_after } => assert!(
            retry_after > Duration::ZERO && retry_after <= Duration::from_millis(500),
            "{retry_after:?}"
        ),
        other => panic!("the third within the burst of 2 must be limited, got {other:?}"),
    }
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!(
        (s.available, s.held),
        (98, 2),
        "a limited reserve takes nothing"
    );
    assert_eq!(b.user_count(a, UserId(1)).await.unwrap(), 2);
    // A replay is answered, not charged.
    match b.reserve(&first).await.unwrap() {
        ReserveOutcome::Reserved { replayed, .. } => assert!(replayed),
        other => panic!("a replay must answer its hold, got {other:?}"),
    }
    // Another key is not limited by this one.
    reserved(b, &charged(2, "r1", &[("u:2", two)])).await;
    // A reserve refused by its second charge does not charge its first.
    let one = Quota::per_second(1, 1);
    let both = charged(3, "r1", &[("ip:x", one), ("u:1", two)]);
    assert!(matches!(
        b.reserve(&both).await.unwrap(),
        ReserveOutcome::RateLimited { .. }
    ));
    reserved(b, &charged(3, "r2", &[("ip:x", one)])).await;
    assert!(
        matches!(
            b.reserve(&charged(3, "r3", &[("ip:x", one)]))
                .await
                .unwrap(),
            ReserveOutcome::RateLimited { .. }
        ),
        "ip:x has its burst of 1 spent now"
    );
    // One key twice in one request counts twice.
    assert!(matches!(
        b.reserve(&charged(4, "r1", &[("k:twice", one), ("k:twice", one)]))
            .await
            .unwrap(),
        ReserveOutcome::RateLimited { .. }
    ));
    // Half a second later u:1 has one request again, not two.
    let later = |key: &str| {
        let mut r = charged(1, key, &[("u:1", two)]);
        r.now += CDuration::milliseconds(500);
        r
    };
    reserved(b, &later("r4")).await;
    assert!(matches!(
        b.reserve(&later("r5")).await.unwrap(),
        ReserveOutcome::RateLimited { .. }
    ));
    let zero = charged(5, "r1", &[("u:5", Quota::per_second(0, 1))]);
    assert!(matches!(
        b.reserve(&zero).await,
        Err(crate::Error::InvalidArgument(_))
    ));
    assert_eq!(b.snapshot(a).await.unwrap().unwrap().held, 5);
}

/// An activity of `k` buckets, or `None` (with a message) when the backend keeps fewer.
async fn fresh_buckets(b: &Backend, total: u32, limit: u32, k: u32) -> Option<ActivityId> {
    if b.max_buckets() < k {
        eprintln!(
            "skipped: the backend keeps at most {} stock buckets",
            b.max_buckets()
        );
        return None;
    }
    let id = ActivityId(super::unique_id());
    b.load(&StockSpec {
        buckets: k,
        ..spec(id, total, limit)
    })
    .await
    .expect("load");
    Some(id)
}

/// Users whose buckets among `k` differ: one per bucket, in bucket order.
fn one_user_per_bucket(k: u32) -> Vec<i64> {
    (0..k)
        .map(|j| {
            (1..)
                .find(|&u| crate::stock::bucket_of(UserId(u), k) == j)
                .expect("some user")
        })
        .collect()
}

/// Every bucket keeps `total = available + held + sold`, and they add up to the snapshot.
async fn buckets_balance(b: &Backend, a: ActivityId, k: usize) {
    let parts = b.buckets(a).await.unwrap();
    assert_eq!(parts.len(), k, "{parts:?}");
    let s = b.snapshot(a).await.unwrap().unwrap();
    for p in &parts {
        assert!(p.available >= 0, "{parts:?}");
        assert_eq!(
            i64::from(p.total),
            p.available + i64::from(p.held) + i64::from(p.sold),
            "{parts:?}"
        );
    }
    assert_eq!(parts.iter().map(|p| p.total).sum::<u32>(), s.total);
    assert_eq!(parts.iter().map(|p| p.available).sum::<i64>(), s.available);
    assert_eq!(parts.iter().map(|p| p.held).sum::<u32>(), s.held);
}

/// With buckets, one buyer can take every unit of the activity (their bucket borrows from
/// the others), the next is refused only then, and a released unit can be bought by a buyer
/// of another bucket: no undersell.
pub async fn buckets_borrow_before_refusing(b: &Backend) {
    let k = 4;
    let Some(a) = fresh_buckets(b, 8, 9, k).await else {
        return;
    };
    let users = one_user_per_bucket(k);
    let mut holds = Vec::new();
    for i in 0..8 {
        holds.push(reserved(b, &req(a, users[0], 1, &format!("u0-{i}"))).await);
        buckets_balance(b, a, k as usize).await;
    }
    assert_eq!(
        b.reserve(&req(a, users[0], 1, "u0-late")).await.unwrap(),
        ReserveOutcome::SoldOut
    );
    for (j, &u) in users.iter().enumerate().skip(1) {
        assert_eq!(
            b.reserve(&req(a, u, 1, &format!("late-{j}")))
                .await
                .unwrap(),
            ReserveOutcome::SoldOut,
            "bucket {j}"
        );
    }
    assert_eq!(b.user_count(a, UserId(users[0])).await.unwrap(), 8);
    // A unit released in the first buyer's bucket goes to a buyer of the last one.
    assert_eq!(
        b.release(a, holds[3].id).await.unwrap(),
        Transition::Applied
    );
    let other = reserved(b, &req(a, users[3], 1, "after-release")).await;
    assert_eq!(
        b.hold(a, other.id).await.unwrap().unwrap().state,
        HoldState::Held
    );
    assert_eq!(
        b.confirm(a, holds[0].id).await.unwrap(),
        Transition::Applied
    );
    buckets_balance(b, a, k as usize).await;
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.total, s.available, s.held, s.sold), (8, 0, 7, 1));
    assert_eq!(b.live_holds(a).await.unwrap().len(), 8);
}

/// A buy of several units gathers them from several buckets; "short" reports what the whole
/// activity has left.
pub async fn buckets_gather_a_multi_unit_buy(b: &Backend) {
    let k = 3;
    let Some(a) = fresh_buckets(b, 6, 6, k).await else {
        return;
    };
    let users = one_user_per_bucket(k);
    let first = reserved(b, &req(a, users[1], 5, "five")).await;
    assert_eq!(first.quantity, 5);
    assert_eq!(
        b.reserve(&req(a, users[2], 2, "two")).await.unwrap(),
        ReserveOutcome::InsufficientStock { available: 1 }
    );
    reserved(b, &req(a, users[2], 1, "one")).await;
    buckets_balance(b, a, k as usize).await;
    assert_eq!(b.snapshot(a).await.unwrap().unwrap().available, 0);
}

/// With buckets, the per-user limit, replays and reloads behave as with one: the limit
/// counts across the buyer's holds, a replay answers the first hold, a reload keeps holds and
/// spreads a new total, the number of buckets cannot change, and too many are refused.
pub async fn buckets_keep_limits_replays_and_reloads(b: &Backend) {
    let k = 3;
    let Some(a) = fresh_buckets(b, 30, 2, k).await else {
        return;
    };
    let users = one_user_per_bucket(k);
    let r = req(a, users[2], 2, "pair");
    let h = reserved(b, &r).await;
    assert_eq!(
        b.reserve(&req(a, users[2], 1, "third")).await.unwrap(),
        ReserveOutcome::LimitExceeded { held: 2, limit: 2 }
    );
    match b.reserve(&r).await.unwrap() {
        ReserveOutcome::Reserved { hold, replayed } => {
            assert!(replayed);
            assert_eq!(hold.id, h.id);
        }
        other => panic!("a replay must answer its hold, got {other:?}"),
    }
    for &u in &users[..2] {
        reserved(b, &req(a, u, 2, "pair")).await;
    }
    // Reload: bigger total, same buckets; holds and counts stay.
    b.load(&StockSpec {
        buckets: k,
        ..spec(a, 40, 2)
    })
    .await
    .expect("reload");
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.total, s.available, s.held), (40, 34, 6));
    assert_eq!(b.user_count(a, UserId(users[2])).await.unwrap(), 2);
    buckets_balance(b, a, k as usize).await;
    // Below what is held: refused, nothing changes.
    assert!(b
        .load(&StockSpec {
            buckets: k,
            ..spec(a, 5, 2)
        })
        .await
        .is_err());
    // Smaller, but above what is held: the units come out of what is available.
    b.load(&StockSpec {
        buckets: k,
        ..spec(a, 7, 2)
    })
    .await
    .expect("shrink");
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.total, s.available, s.held), (7, 1, 6));
    buckets_balance(b, a, k as usize).await;
    let changed = b
        .load(&StockSpec {
            buckets: k + 1,
            ..spec(a, 7, 2)
        })
        .await;
    assert!(
        matches!(changed, Err(crate::Error::Conflict { .. })),
        "{changed:?}"
    );
    let too_many = b
        .load(&StockSpec {
            buckets: b.max_buckets() + 1,
            ..spec(ActivityId(super::unique_id()), 7, 2)
        })
        .await;
    assert!(
        matches!(too_many, Err(crate::Error::InvalidArgument(_))),
        "{too_many:?}"
    );
}

/// A rate charge's key is the activity's, whatever bucket its buyers are in: two buyers of
/// different buckets behind one address share its quota.
pub async fn buckets_share_a_rate_charge_key(b: &Backend) {
    use crate::rate_limit::{Quota, RateCharge};
    let k = 4;
    let Some(a) = fresh_buckets(b, 10, 5, k).await else {
        return;
    };
    let users = one_user_per_bucket(k);
    let behind_one_ip = |user: i64, key: &str| {
        let mut r = req(a, user, 1, key);
        r.rates = vec![RateCharge::new("buy-ip:x", Quota::per_second(1, 1))];
        r
    };
    reserved(b, &behind_one_ip(users[0], "first")).await;
    assert!(matches!(
        b.reserve(&behind_one_ip(users[3], "second")).await.unwrap(),
        ReserveOutcome::RateLimited { .. }
    ));
}

/// A session of three tiers (stock 3, 2 and 5), a capacity of 8 and a quota of 4 over tiers 1
/// and 2, or `None` (with a message) when the backend does not keep tiers.
async fn fresh_tiers(b: &Backend, limit: u32) -> Option<(ActivityId, StockSpec)> {
    if !b.sells_tiers() {
        eprintln!("skipped: the backend does not keep price tiers");
        return None;
    }
    let tier = |id: u32, stock: u32| crate::domain::Tier {
        id,
        name: format!("tier {id}"),
        price: crate::domain::Money(i64::from(id) * 100),
        stock,
    };
    let id = ActivityId(super::unique_id());
    let s = StockSpec {
        tiers: vec![tier(1, 3), tier(2, 2), tier(3, 5)],
        quotas: vec![crate::domain::Quota {
            id: 9,
            name: "student".into(),
            cap: 4,
            tiers: vec![1, 2],
        }],
        ..spec(id, 8, limit)
    };
    b.load(&s).await.expect("load");
    Some((id, s))
}

fn lines(l: &[(u32, u32)]) -> Vec<crate::domain::TierLine> {
    l.iter()
        .map(|&(tier, quantity)| crate::domain::TierLine::new(tier, quantity))
        .collect()
}

fn tier_req(a: ActivityId, user: i64, l: &[(u32, u32)], key: &str) -> ReserveRequest {
    let lines = lines(l);
    ReserveRequest {
        lines: lines.clone(),
        ..req(a, user, lines.iter().map(|l| l.quantity).sum(), key)
    }
}

/// Each tier's `(available, held, sold)`, in the spec's order.
async fn tier_figures(b: &Backend, a: ActivityId) -> Vec<(i64, u32, u32)> {
    b.tiers(a)
        .await
        .unwrap()
        .iter()
        .map(|t| (t.available, t.held, t.sold))
        .collect()
}

/// A multi-tier reserve takes from each tier, the capacity and the quota at once, or nothing:
/// a short tier answers `TierShort`, a short quota `QuotaShort`, a short capacity `SoldOut`;
/// confirm and release move each line's units; the per-user limit counts across tiers; lines
/// that do not fit the session are invalid.
pub async fn tiers_take_all_or_nothing(b: &Backend) {
    let Some((a, _)) = fresh_tiers(b, 6).await else {
        return;
    };
    let first = reserved(b, &tier_req(a, 1, &[(1, 2), (2, 1)], "t1")).await;
    assert_eq!(
        (first.quantity, first.lines.clone()),
        (3, lines(&[(1, 2), (2, 1)]))
    );
    assert_eq!(tier_figures(b, a).await, [(1, 2, 0), (1, 1, 0), (5, 0, 0)]);
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.total, s.available, s.held), (8, 5, 3));
    // Tier 1 has one left: nothing of the request is taken.
    assert_eq!(
        b.reserve(&tier_req(a, 2, &[(3, 1), (1, 2)], "t2"))
            .await
            .unwrap(),
        ReserveOutcome::TierShort {
            tier: 1,
            available: 1
        }
    );
    // Tiers 1 and 2 have one each, but the quota over both has one left of 4.
    assert_eq!(
        b.reserve(&tier_req(a, 2, &[(2, 1), (1, 1)], "t3"))
            .await
            .unwrap(),
        ReserveOutcome::QuotaShort {
            quota: 9,
            available: 1
        }
    );
    assert_eq!(tier_figures(b, a).await, [(1, 2, 0), (1, 1, 0), (5, 0, 0)]);
    // The per-user limit (6) counts the buyer's 3 units of tiers 1 and 2.
    assert_eq!(
        b.reserve(&tier_req(a, 1, &[(3, 4)], "t4")).await.unwrap(),
        ReserveOutcome::LimitExceeded { held: 3, limit: 6 }
    );
    let big = reserved(b, &tier_req(a, 2, &[(3, 5)], "t5")).await;
    // Capacity 8: 3 + 5 taken; tier 1 still has one, but the session is full.
    assert_eq!(
        b.reserve(&tier_req(a, 3, &[(1, 1)], "t6")).await.unwrap(),
        ReserveOutcome::SoldOut
    );
    assert!(b.sold_out_hint(a) || !b.sells_tiers());
    assert_eq!(b.confirm(a, big.id).await.unwrap(), Transition::Applied);
    assert_eq!(tier_figures(b, a).await, [(1, 2, 0), (1, 1, 0), (0, 0, 5)]);
    assert_eq!(b.release(a, first.id).await.unwrap(), Transition::Applied);
    assert_eq!(tier_figures(b, a).await, [(3, 0, 0), (2, 0, 0), (0, 0, 5)]);
    assert_eq!(b.release(a, big.id).await.unwrap(), Transition::Applied);
    assert_eq!(tier_figures(b, a).await, [(3, 0, 0), (2, 0, 0), (5, 0, 0)]);
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.available, s.held, s.sold), (8, 0, 0));
    // A replay answers the first hold with its lines.
    let again = b
        .reserve(&tier_req(a, 1, &[(1, 2), (2, 1)], "t1"))
        .await
        .unwrap();
    assert!(
        matches!(&again, ReserveOutcome::Reserved { hold, replayed: true } if hold.id == first.id && hold.lines == first.lines),
        "{again:?}"
    );
    for bad in [
        tier_req(a, 4, &[(4, 1)], "b1"),
        tier_req(a, 4, &[(1, 1), (1, 1)], "b2"),
        tier_req(a, 4, &[(1, 0)], "b3"),
        req(a, 4, 1, "b4"),
        ReserveRequest {
            quantity: 3,
            ..tier_req(a, 4, &[(1, 1)], "b5")
        },
    ] {
        assert!(
            matches!(b.reserve(&bad).await, Err(crate::Error::InvalidArgument(_))),
            "{:?}",
            bad.lines
        );
    }
    // A plain activity takes no lines.
    let plain = fresh(b, 5, 5).await;
    assert!(matches!(
        b.reserve(&tier_req(plain, 1, &[(1, 1)], "p")).await,
        Err(crate::Error::InvalidArgument(_))
    ));
    assert_eq!(tier_figures(b, a).await, [(3, 0, 0), (2, 0, 0), (5, 0, 0)]);
}

/// Concurrent multi-tier reserves never take more of a tier, of the quota or of the capacity
/// than it has.
pub async fn tiers_never_oversell_under_concurrency(b: &Backend) {
    let Some((a, _)) = fresh_tiers(b, 3).await else {
        return;
    };
    let mut tasks = Vec::new();
    for u in 0..40i64 {
        let b = b.clone();
        let l: &[(u32, u32)] = match u % 3 {
            0 => &[(1, 1)],
            1 => &[(2, 1), (3, 1)],
            _ => &[(1, 1), (3, 2)],
        };
        let r = tier_req(a, 100 + u, l, "c");
        tasks.push(tokio::spawn(async move { b.reserve(&r).await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let t = b.tiers(a).await.unwrap();
    let taken = |i: usize| t[i].held + t[i].sold;
    assert!(taken(0) <= 3 && taken(1) <= 2 && taken(2) <= 5, "{t:?}");
    assert!(taken(0) + taken(1) <= 4, "the quota: {t:?}");
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert!(s.balanced() && s.held <= 8, "{s:?}");
    assert_eq!(s.held, taken(0) + taken(1) + taken(2));
    assert!(t.iter().all(|x| x.available >= 0
        && i64::from(x.total) == x.available + i64::from(x.held) + i64::from(x.sold)));
}

/// A reload keeps the tiers' holds; a tier's stock below its units held is refused and changes
/// nothing; an adopted hold counts its lines as sold.
pub async fn tiers_survive_reloads_and_adoption(b: &Backend) {
    let Some((a, s)) = fresh_tiers(b, 6).await else {
        return;
    };
    let h = reserved(b, &tier_req(a, 1, &[(1, 2), (3, 1)], "r1")).await;
    b.load(&s).await.unwrap();
    assert_eq!(tier_figures(b, a).await, [(1, 2, 0), (2, 0, 0), (4, 1, 0)]);
    let mut small = s.clone();
    small.tiers[0].stock = 1;
    assert!(matches!(
        b.load(&small).await,
        Err(crate::Error::Conflict { .. })
    ));
    assert_eq!(tier_figures(b, a).await, [(1, 2, 0), (2, 0, 0), (4, 1, 0)]);
    let mut more = s.clone();
    more.tiers[2].stock = 6;
    b.load(&more).await.unwrap();
    assert_eq!(tier_figures(b, a).await, [(1, 2, 0), (2, 0, 0), (5, 1, 0)]);
    let lost = crate::domain::Hold {
        holders: Vec::new(),
        id: HoldId(super::unique_id()),
        order_id: OrderId(super::unique_id()),
        activity_id: a,
        user_id: UserId(2),
        quantity: 2,
        created_at: t0(),
        expires_at: t0() + CDuration::minutes(15),
        lines: lines(&[(2, 2)]),
    };
    b.load(&StockSpec {
        adopt: vec![lost.clone()],
        ..more.clone()
    })
    .await
    .unwrap();
    assert_eq!(tier_figures(b, a).await, [(1, 2, 0), (0, 0, 2), (5, 1, 0)]);
    assert_eq!(b.release(a, lost.id).await.unwrap(), Transition::Applied);
    assert_eq!(b.release(a, h.id).await.unwrap(), Transition::Applied);
    assert_eq!(tier_figures(b, a).await, [(3, 0, 0), (2, 0, 0), (6, 0, 0)]);
}

/// A session of one tier (id 1) seated in rows A-1 (seats 1-4) and A-2 (seats 1-3), best
/// first, and an unseated tier 2 of 5; or `None` when the backend keeps no seat maps.
async fn fresh_seats(b: &Backend) -> Option<(ActivityId, StockSpec)> {
    if !b.sells_seats() {
        eprintln!("skipped: the backend does not keep seat maps");
        return None;
    }
    let block = |row: &str, to: u32| crate::domain::SeatBlock {
        section: "A".into(),
        row: row.into(),
        tier: 1,
        from: 1,
        to,
    };
    let tier = |id: u32, stock: u32| crate::domain::Tier {
        id,
        name: format!("tier {id}"),
        price: crate::domain::Money(100),
        stock,
    };
    let id = ActivityId(super::unique_id());
    let s = StockSpec {
        tiers: vec![tier(1, 7), tier(2, 5)],
        seats: vec![block("1", 4), block("2", 3)],
        ..spec(id, 12, 10)
    };
    b.load(&s).await.expect("load");
    Some((id, s))
}

fn seated(seats: &[&str]) -> crate::domain::TierLine {
    crate::domain::TierLine {
        seats: seats.iter().map(|s| s.to_string()).collect(),
        ..crate::domain::TierLine::new(1, seats.len() as u32)
    }
}

fn seat_req(
    a: ActivityId,
    user: i64,
    lines: Vec<crate::domain::TierLine>,
    key: &str,
) -> ReserveRequest {
    ReserveRequest {
        quantity: lines.iter().map(|l| l.quantity).sum(),
        lines,
        ..req(a, user, 1, key)
    }
}

async fn taken(b: &Backend, a: ActivityId) -> Vec<String> {
    let mut t = b.taken_seats(a).await.unwrap();
    t.sort();
    t
}

/// Each seat goes to one live hold: named seats are taken all or none (`SeatsTaken` names the
/// taken ones), the best available are adjacent in the best block that has room, else the
/// first free ones; a release frees exactly the hold's seats; a reload keeps them and an
/// adopted hold takes its own.
pub async fn seats_are_sold_once(b: &Backend) {
    let Some((a, s)) = fresh_seats(b).await else {
        return;
    };
    let first = reserved(b, &seat_req(a, 1, vec![seated(&["A-1-2", "A-1-3"])], "s1")).await;
    assert_eq!(first.lines[0].seats, ["A-1-2", "A-1-3"]);
    // A-1-3 is taken: nothing of this request is.
    assert_eq!(
        b.reserve(&seat_req(a, 2, vec![seated(&["A-1-4", "A-1-3"])], "s2"))
            .await
            .unwrap(),
        ReserveOutcome::SeatsTaken {
            seats: vec!["A-1-3".into()]
        }
    );
    // Two adjacent: row A-1 has 1 and 4 apart, so row A-2 gives 1 and 2.
    let pair = reserved(
        b,
        &seat_req(a, 2, vec![crate::domain::TierLine::new(1, 2)], "s3"),
    )
    .await;
    assert_eq!(pair.lines[0].seats, ["A-2-1", "A-2-2"]);
    // Three more: no block has three adjacent, so the first free ones in block order.
    let spread = reserved(
        b,
        &seat_req(
            a,
            3,
            vec![
                crate::domain::TierLine::new(1, 3),
                crate::domain::TierLine::new(2, 1),
            ],
            "s4",
        ),
    )
    .await;
    assert_eq!(spread.lines[0].seats, ["A-1-1", "A-1-4", "A-2-3"]);
    assert!(spread.lines[1].seats.is_empty(), "tier 2 is unseated");
    assert_eq!(taken(b, a).await.len(), 7);
    assert_eq!(
        b.reserve(&seat_req(
            a,
            4,
            vec![crate::domain::TierLine::new(1, 1)],
            "s5"
        ))
        .await
        .unwrap(),
        ReserveOutcome::TierShort {
            tier: 1,
            available: 0
        }
    );
    // A replay answers the same seats.
    match b
        .reserve(&seat_req(
            a,
            2,
            vec![crate::domain::TierLine::new(1, 2)],
            "s3",
        ))
        .await
        .unwrap()
    {
        ReserveOutcome::Reserved {
            hold,
            replayed: true,
        } => assert_eq!(hold.lines, pair.lines),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.release(a, pair.id).await.unwrap(), Transition::Applied);
    assert_eq!(
        taken(b, a).await,
        ["A-1-1", "A-1-2", "A-1-3", "A-1-4", "A-2-3"]
    );
    b.load(&s).await.unwrap();
    assert_eq!(taken(b, a).await.len(), 5, "a reload keeps the seats");
    assert_eq!(b.confirm(a, first.id).await.unwrap(), Transition::Applied);
    let lost = crate::domain::Hold {
        holders: Vec::new(),
        id: HoldId(super::unique_id()),
        order_id: OrderId(super::unique_id()),
        activity_id: a,
        user_id: UserId(5),
        quantity: 1,
        created_at: t0(),
        expires_at: t0() + CDuration::minutes(15),
        lines: vec![seated(&["A-2-2"])],
    };
    b.load(&StockSpec {
        adopt: vec![lost],
        ..s.clone()
    })
    .await
    .unwrap();
    assert_eq!(taken(b, a).await.len(), 6, "an adopted hold takes its seat");
    let last = reserved(
        b,
        &seat_req(a, 6, vec![crate::domain::TierLine::new(1, 1)], "s6"),
    )
    .await;
    assert_eq!(last.lines[0].seats, ["A-2-1"]);
    let t = b.tiers(a).await.unwrap();
    assert_eq!((t[0].available, t[0].held, t[0].sold), (0, 4, 3));
    // A lost hold whose seat another live hold has since been given is refused, not adopted
    // (the seat would be held twice), and nothing changes.
    let clash = crate::domain::Hold {
        holders: Vec::new(),
        id: HoldId(super::unique_id()),
        order_id: OrderId(super::unique_id()),
        activity_id: a,
        user_id: UserId(7),
        quantity: 1,
        created_at: t0(),
        expires_at: t0() + CDuration::minutes(15),
        lines: vec![seated(&["A-2-1"])],
    };
    assert!(matches!(
        b.load(&StockSpec {
            adopt: vec![clash],
            ..s.clone()
        })
        .await,
        Err(crate::Error::Conflict { .. })
    ));
    assert_eq!(taken(b, a).await.len(), 7);
    let t = b.tiers(a).await.unwrap();
    assert_eq!((t[0].available, t[0].held, t[0].sold), (0, 4, 3));
}

/// A sealed holder whose document hash is `n`'s (the backend sees only sealed holders).
fn holder(n: u32) -> crate::domain::Holder {
    crate::domain::Holder {
        name: format!("Holder {n}"),
        id_type: crate::domain::IdType::Passport,
        id_masked: format!("E1****{:02}", n % 100),
        id_hash: format!("{n:032x}"),
    }
}

fn named(mut r: ReserveRequest, docs: &[u32]) -> ReserveRequest {
    r.holders = docs.iter().map(|&n| holder(n)).collect();
    r
}

fn doc_taken(docs: &[u32]) -> ReserveOutcome {
    ReserveOutcome::HolderTaken {
        id_hashes: docs.iter().map(|&n| holder(n).id_hash).collect(),
    }
}

/// One document holds at most one ticket of an activity's live holds: a request naming a
/// document in a live hold (or one twice) is `HolderTaken` and takes nothing, a replay answers
/// the first holders, the hold as stored keeps them, a release frees them, and a reload keeps
/// them; an adopted hold takes its documents, and one whose document another live hold has is
/// refused. Holders, when given, are one per unit.
pub async fn holders_hold_one_ticket_per_document(b: &Backend) {
    if !b.sells_holders() {
        eprintln!("skipped: the backend does not keep real-name holders");
        return;
    }
    let a = fresh(b, 10, 4).await;
    let first = reserved(b, &named(req(a, 1, 2, "h1"), &[1, 2])).await;
    assert_eq!(first.holders, [holder(1), holder(2)]);
    let stored = b.hold(a, first.id).await.unwrap().expect("stored");
    assert_eq!(stored.hold, first, "the stored hold keeps its holders");
    assert_eq!(
        b.reserve(&named(req(a, 2, 2, "h2"), &[3, 1]))
            .await
            .unwrap(),
        doc_taken(&[1])
    );
    assert_eq!(
        b.reserve(&named(req(a, 2, 2, "h3"), &[3, 3]))
            .await
            .unwrap(),
        doc_taken(&[3]),
        "one document twice in a request"
    );
    assert!(matches!(
        b.reserve(&named(req(a, 2, 2, "h4"), &[3])).await,
        Err(crate::Error::InvalidArgument(_))
    ));
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.available, s.held), (8, 2), "a refusal takes nothing");
    match b
        .reserve(&named(req(a, 1, 2, "h1"), &[1, 2]))
        .await
        .unwrap()
    {
        ReserveOutcome::Reserved {
            hold,
            replayed: true,
        } => assert_eq!(hold, first),
        other => panic!("{other:?}"),
    }
    // A plain buy beside them names nobody.
    let anon = reserved(b, &req(a, 3, 1, "h5")).await;
    assert!(anon.holders.is_empty());
    let second = reserved(b, &named(req(a, 2, 2, "h6"), &[3, 4])).await;
    b.load(&spec(a, 10, 4)).await.unwrap();
    assert_eq!(
        b.reserve(&named(req(a, 4, 1, "h7"), &[4])).await.unwrap(),
        doc_taken(&[4]),
        "a reload keeps the documents"
    );
    assert_eq!(b.confirm(a, first.id).await.unwrap(), Transition::Applied);
    assert_eq!(b.release(a, first.id).await.unwrap(), Transition::Applied);
    let again = reserved(b, &named(req(a, 4, 2, "h8"), &[2, 1])).await;
    assert_eq!(again.holders, [holder(2), holder(1)]);
    // Adoption: a lost hold's documents are taken; one clashing with a live hold is refused.
    let lost = |docs: &[u32]| crate::domain::Hold {
        id: HoldId(super::unique_id()),
        order_id: OrderId(super::unique_id()),
        activity_id: a,
        user_id: UserId(9),
        quantity: docs.len() as u32,
        created_at: t0(),
        expires_at: t0() + CDuration::minutes(15),
        lines: Vec::new(),
        holders: docs.iter().map(|&n| holder(n)).collect(),
    };
    b.load(&StockSpec {
        adopt: vec![lost(&[5])],
        ..spec(a, 10, 4)
    })
    .await
    .unwrap();
    assert_eq!(
        b.reserve(&named(req(a, 5, 1, "h9"), &[5])).await.unwrap(),
        doc_taken(&[5])
    );
    for clash in [lost(&[3]), lost(&[6, 6])] {
        assert!(matches!(
            b.load(&StockSpec {
                adopt: vec![clash],
                ..spec(a, 10, 4)
            })
            .await,
            Err(crate::Error::Conflict { .. })
        ));
    }
    let s = b.snapshot(a).await.unwrap().unwrap();
    assert_eq!((s.held, s.sold), (5, 1), "a refused load changes nothing");
    assert_eq!(b.release(a, second.id).await.unwrap(), Transition::Applied);
    assert_eq!(b.release(a, anon.id).await.unwrap(), Transition::Applied);
    reserved(b, &named(req(a, 6, 2, "h10"), &[3, 6])).await;
}

/// Holders in a tiered, seated session: the hold has its lines, its seats and its holders,
/// and a taken document refuses the buy after its seats were found free.
pub async fn holders_in_a_seated_session(b: &Backend) {
    if !b.sells_holders() {
        eprintln!("skipped: the backend does not keep real-name holders");
        return;
    }
    let Some((a, _)) = fresh_seats(b).await else {
        return;
    };
    let r = named(
        seat_req(
            a,
            1,
            vec![seated(&["A-1-1"]), crate::domain::TierLine::new(2, 1)],
            "hs1",
        ),
        &[11, 12],
    );
    let first = reserved(b, &r).await;
    assert_eq!(first.lines[0].seats, ["A-1-1"]);
    assert_eq!(first.holders, [holder(11), holder(12)]);
    let live = b.live_holds(a).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].hold, first);
    let clash = named(
        seat_req(a, 2, vec![crate::domain::TierLine::new(1, 2)], "hs2"),
        &[13, 12],
    );
    assert_eq!(b.reserve(&clash).await.unwrap(), doc_taken(&[12]));
    assert_eq!(taken(b, a).await, ["A-1-1"], "the refused buy took no seat");
    assert_eq!(b.release(a, first.id).await.unwrap(), Transition::Applied);
    let second = reserved(b, &clash).await;
    assert_eq!(second.lines[0].seats, ["A-1-1", "A-1-2"]);
}

/// Many buyers naming one document at once: exactly one gets a ticket.
pub async fn holders_race_for_one_document(b: &Backend) {
    if !b.sells_holders() {
        eprintln!("skipped: the backend does not keep real-name holders");
        return;
    }
    let a = fresh(b, 100, 2).await;
    let tries = (0..20).map(|u| {
        let b = b.clone();
        async move {
            b.reserve(&named(req(a, 100 + u, 1, &format!("race{u}")), &[7]))
                .await
                .unwrap()
        }
    });
    let outs = futures::future::join_all(tries).await;
    let won = outs
        .iter()
        .filter(|o| matches!(o, ReserveOutcome::Reserved { .. }))
        .count();
    assert_eq!(won, 1, "{outs:?}");
    assert!(outs
        .iter()
        .all(|o| matches!(o, ReserveOutcome::Reserved { .. }) || *o == doc_taken(&[7])));
    assert_eq!(b.snapshot(a).await.unwrap().unwrap().held, 1);
}

/// Stamps out every case of this suite as a test for a backend.
#[macro_export]
macro_rules! stock_reserver_conformance {
    ($make:path) => {
        $crate::__conformance_tests!(stock, $make;
            reserve_takes_units_and_records_hold,
            window_and_warm_up_are_checked,
            per_user_limit_counts_units,
            sold_out_and_insufficient,
            request_id_replays,
            confirm_and_release_are_idempotent,
            concurrent_reserves_never_oversell,
            reload_keeps_holds,
            fresh_load_counts_prior_sales,
            load_adopts_lost_holds,
            stale_fence_is_refused,
            outbox_claims_lease_and_ack,
            outbox_entries_carry_the_trace_context,
            rate_charges_are_checked_in_the_reserve,
            buckets_borrow_before_refusing,
            buckets_gather_a_multi_unit_buy,
            buckets_keep_limits_replays_and_reloads,
            buckets_share_a_rate_charge_key,
            tiers_take_all_or_nothing,
            tiers_never_oversell_under_concurrency,
            tiers_survive_reloads_and_adoption,
            seats_are_sold_once,
            holders_hold_one_ticket_per_document,
            holders_in_a_seated_session,
            holders_race_for_one_document,
        );
    };
}
