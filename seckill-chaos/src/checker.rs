//! The checker: reads a run's history and the database and stock backend as they stand after
//! the run (pipeline drained, reconciler run, every acknowledged order looked up by its buyer)
//! and reports every broken guarantee: stock oversold or unbalanced, sold counters that
//! disagree, a buyer above the per-user limit, duplicate orders, acknowledged orders left
//! unresolved, orders both written and voided, payments answered "paid" but lost, and buyers
//! charged twice (including refunds owed but never made). It is pure: no I/O.

use crate::history::{Op, Outcome, Request};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// An order row as the database has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderRow {
    /// The order id.
    pub id: String,
    /// The stock hold the order was written from.
    pub hold_id: String,
    /// The buyer.
    pub user: String,
    /// Units ordered.
    pub quantity: u32,
    /// `pending_payment`, `paid`, `cancelled` or `refunded`.
    pub status: String,
}

/// A payment row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentRow {
    /// The payment id.
    pub id: String,
    /// The order it pays.
    pub order: String,
    /// `pending`, `succeeded`, `failed`, `refund_due` or `refunded`.
    pub status: String,
}

/// The stock backend's figures for the activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StockRow {
    /// Total stock as the backend has it.
    pub total: u32,
    /// Units still on sale (negative means oversold).
    pub available: i64,
    /// Units held by reservations not yet written as orders.
    pub held: u32,
    /// Units sold (written as live orders).
    pub sold: u32,
}

/// What the run left, read after it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DbView {
    /// The activity's `total_stock`.
    pub total: u32,
    /// The activity's sold counter in the database.
    pub db_sold: u32,
    /// The activity's per-user limit.
    pub per_user_limit: u32,
    /// Every order of the activity.
    pub orders: Vec<OrderRow>,
    /// Every payment of those orders.
    pub payments: Vec<PaymentRow>,
    /// Order ids declared lost to their buyers.
    pub voided: BTreeSet<String>,
    /// `None`: the stock backend has no stock for the activity (a violation at rest).
    pub stock: Option<StockRow>,
}

/// One broken guarantee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which guarantee.
    pub kind: Kind,
    /// What was seen, naming the ids.
    pub detail: String,
}

/// The kinds of broken guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// More units sold or held than the total.
    Oversold,
    /// The stock backend's figures do not add up to the total.
    Unbalanced,
    /// The sold counters disagree with the live orders (or units are still held at rest).
    SoldMismatch,
    /// A buyer holds more live units than the per-user limit.
    AboveLimit,
    /// One purchase written or answered as more than one order, or one order for two buys.
    Duplicate,
    /// An acknowledged order neither written nor declared lost, or its buyer left without answer.
    Unresolved,
    /// An order both written and declared lost.
    WrittenAndVoided,
    /// A payment answered "paid" that the database does not honour.
    PaidLost,
    /// A buyer charged more than once, or a refund owed but never made.
    ChargedTwice,
    /// Acknowledged reservations lost (and told) under a fault whose documented loss window is
    /// empty (added by the run, which knows the fault: [`crate::faults::Fault::may_lose`]).
    LostOutsideWindow,
}

/// The counts of one run (a row of the results table).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Distinct order ids answered 202 to a buy.
    pub acknowledged: usize,
    /// Orders in the database.
    pub orders: usize,
    /// Acknowledged ids declared lost (allowed: the buyer was told).
    pub lost: usize,
    /// `Unresolved` violations.
    pub unresolved: usize,
    /// Live units above the total (0 normally).
    pub oversold: u32,
    /// `Duplicate` violations.
    pub duplicates: usize,
    /// `PaidLost` violations.
    pub paid_lost: usize,
    /// `ChargedTwice` violations.
    pub charged_twice: usize,
    /// All violations.
    pub violations: usize,
}

/// The verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The run's counts.
    pub summary: Summary,
    /// Every broken guarantee, sorted by kind then detail.
    pub violations: Vec<Violation>,
}

impl Verdict {
    /// No violation.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Records a violation: `flag!(v, Kind; "format {args}", more args)`.
macro_rules! flag {
    ($v:expr, $kind:ident; $($fmt:tt)+) => {
        $v.push(Violation { kind: Kind::$kind, detail: format!($($fmt)+) })
    };
}

/// Checks every guarantee of the history `ops` against the view `db` read after the run.
pub fn check(ops: &[Op], db: &DbView) -> Verdict {
    let mut v = Vec::new();
    let live_orders = || db.orders.iter().filter(|o| is_live(&o.status));
    let live: u64 = live_orders().map(|o| u64::from(o.quantity)).sum();
    let buys: Vec<(&str, &str, &str)> = ops
        .iter()
        .filter_map(|op| match (&op.request, &op.outcome) {
            (Request::Buy { user, key, .. }, Outcome::Ok { value }) => {
                Some((value.as_str(), user.as_str(), key.as_str()))
            }
            _ => None,
        })
        .collect();
    let acked: BTreeSet<&str> = buys.iter().map(|b| b.0).collect();
    check_stock(db, live, &mut v);
    let mut per_user: BTreeMap<&str, u64> = BTreeMap::new();
    for o in live_orders() {
        *per_user.entry(&o.user).or_default() += u64::from(o.quantity);
    }
    let limit = db.per_user_limit;
    for (user, units) in per_user.into_iter().filter(|u| u.1 > u64::from(limit)) {
        flag!(v, AboveLimit; "user {user} holds {units} live units, limit {limit}");
    }
    check_duplicates(&buys, db, &mut v);
    let lost = check_resolution(ops, db, &acked, &mut v);
    check_payments(ops, db, &mut v);
    v.sort_by(|a, b| a.kind.cmp(&b.kind).then_with(|| a.detail.cmp(&b.detail)));
    v.dedup();
    let count = |kind: Kind| v.iter().filter(|x| x.kind == kind).count();
    let summary = Summary {
        acknowledged: acked.len(),
        orders: db.orders.len(),
        lost,
        unresolved: count(Kind::Unresolved),
        oversold: u32::try_from(live.saturating_sub(u64::from(db.total))).unwrap_or(u32::MAX),
        duplicates: count(Kind::Duplicate),
        paid_lost: count(Kind::PaidLost),
        charged_twice: count(Kind::ChargedTwice),
        violations: v.len(),
    };
    Verdict {
        summary,
        violations: v,
    }
}

/// A live order holds stock.
fn is_live(status: &str) -> bool {
    matches!(status, "pending_payment" | "paid")
}

/// Joins items with ", ".
fn list<I: IntoIterator<Item = S>, S: std::fmt::Display>(items: I) -> String {
    items
        .into_iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks 1 to 3: oversold, unbalanced, sold mismatch.
fn check_stock(db: &DbView, live: u64, v: &mut Vec<Violation>) {
    let (total, db_sold) = (db.total, db.db_sold);
    if live > u64::from(total) {
        flag!(v, Oversold; "live orders hold {live} units of a total of {total}");
    }
    if db_sold > total {
        flag!(v, Oversold; "database sold counter {db_sold} above total {total}");
    }
    if u64::from(db_sold) != live {
        flag!(v, SoldMismatch; "database sold counter {db_sold} but live orders hold {live}");
    }
    let Some(s) = db.stock else {
        flag!(v, Unbalanced; "no stock for the activity at rest");
        return;
    };
    let (available, held, sold) = (s.available, s.held, s.sold);
    if available < 0 {
        flag!(v, Oversold; "stock available {available} below zero");
    }
    if u64::from(held) + u64::from(sold) > u64::from(total) {
        flag!(v, Oversold; "stock held {held} + sold {sold} above total {total}");
    }
    if s.total != total {
        flag!(v, Unbalanced; "stock total {} but activity total {total}", s.total);
    }
    if available.saturating_add(i64::from(held) + i64::from(sold)) != i64::from(total) {
        flag!(v, Unbalanced; "total {total} != available {available} + held {held} + sold {sold}");
    }
    if held != 0 {
        flag!(v, SoldMismatch; "{held} units still held at rest");
    }
    if sold != db_sold {
        flag!(v, SoldMismatch; "stock sold {sold} but database sold {db_sold}");
    }
}

/// Check 5 and ownership: one purchase, one order, for its buyer.
fn check_duplicates(buys: &[(&str, &str, &str)], db: &DbView, v: &mut Vec<Violation>) {
    let mut by_hold: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut by_id: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for o in &db.orders {
        by_hold.entry(&o.hold_id).or_default().push(&o.id);
        by_id.entry(&o.id).or_default().push(&o.user);
    }
    for (hold, ids) in by_hold.iter().filter(|h| h.1.len() > 1) {
        flag!(v, Duplicate; "hold {hold} written as {} orders: {}", ids.len(), list(ids));
    }
    for (id, users) in by_id.iter().filter(|i| i.1.len() > 1) {
        flag!(v, Duplicate; "order id {id} written {} times", users.len());
    }
    let mut by_key: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    let mut by_order: BTreeMap<&str, BTreeSet<(&str, &str)>> = BTreeMap::new();
    for &(id, user, key) in buys {
        by_key.entry((user, key)).or_default().insert(id);
        by_order.entry(id).or_default().insert((user, key));
    }
    for ((user, key), ids) in by_key.iter().filter(|k| k.1.len() > 1) {
        flag!(v, Duplicate; "user {user} key {key} answered {} orders: {}", ids.len(), list(ids));
    }
    for (id, pairs) in &by_order {
        if pairs.len() > 1 {
            let buys = list(pairs.iter().map(|(u, k)| format!("{u}/{k}")));
            flag!(v, Duplicate; "order {id} given to several buys: {buys}");
        }
        let given_to: BTreeSet<&str> = pairs.iter().map(|p| p.0).collect();
        let written_for: BTreeSet<&str> = by_id.get(*id).into_iter().flatten().copied().collect();
        for (a, b) in given_to
            .iter()
            .flat_map(|a| written_for.iter().map(move |b| (a, b)))
        {
            if a != b {
                flag!(v, Duplicate; "order {id} given to user {a} but written for {b}");
            }
        }
    }
}

/// Checks 6 and 7; returns how many acknowledged ids were declared lost.
fn check_resolution(
    ops: &[Op],
    db: &DbView,
    acked: &BTreeSet<&str>,
    v: &mut Vec<Violation>,
) -> usize {
    let written: BTreeSet<&str> = db.orders.iter().map(|o| o.id.as_str()).collect();
    // The last lookup of each order, in the order the operations ended.
    let mut last_lookup: BTreeMap<&str, &Outcome> = BTreeMap::new();
    for op in ops {
        if let Request::Lookup { order, .. } = &op.request {
            last_lookup.insert(order, &op.outcome);
        }
    }
    let mut lost = 0;
    for &id in acked {
        let (is_written, is_voided) = (written.contains(id), db.voided.contains(id));
        if !is_written && !is_voided {
            flag!(v, Unresolved; "acknowledged order {id} neither written nor declared lost");
        }
        if is_voided && !is_written {
            lost += 1;
        }
        match last_lookup.get(id).copied() {
            None => {}
            Some(Outcome::Ok { value }) if value.as_str() == "lost" => {
                if is_written && !is_voided {
                    flag!(v, WrittenAndVoided; "order {id} written but its buyer was told lost");
                } else if !is_voided {
                    flag!(v, Unresolved; "order {id}: buyer told lost but it is not declared lost");
                }
            }
            Some(Outcome::Ok { value }) if !is_written => {
                flag!(v, Unresolved; "order {id}: buyer shown {value} but it is not written");
            }
            Some(Outcome::Ok { .. }) => {}
            Some(Outcome::Fail { code }) => {
                flag!(v, Unresolved; "order {id}: last lookup refused with code {code}");
            }
            Some(Outcome::Unknown { error }) => {
                flag!(v, Unresolved; "order {id}: last lookup had no answer ({error})");
            }
        }
    }
    for id in db.voided.iter().filter(|id| written.contains(id.as_str())) {
        flag!(v, WrittenAndVoided; "order {id} both written and declared lost");
    }
    lost
}

/// Checks 8 and 9: paid means paid, once.
fn check_payments(ops: &[Op], db: &DbView, v: &mut Vec<Violation>) {
    let payments: BTreeMap<&str, &PaymentRow> =
        db.payments.iter().map(|p| (p.id.as_str(), p)).collect();
    let orders: BTreeMap<&str, &OrderRow> = db.orders.iter().map(|o| (o.id.as_str(), o)).collect();
    let answered: BTreeSet<(&str, &str)> = ops
        .iter()
        .filter_map(|op| match (&op.request, &op.outcome) {
            (Request::Pay { order, .. }, Outcome::Ok { value }) => {
                Some((value.as_str(), order.as_str()))
            }
            _ => None,
        })
        .collect();
    for (pid, order) in answered {
        let Some(p) = payments.get(pid) else {
            flag!(v, PaidLost; "payment {pid} of order {order} answered paid but not written");
            continue;
        };
        let (paid_order, status) = (p.order.as_str(), p.status.as_str());
        if paid_order != order {
            flag!(v, PaidLost; "payment {pid} answered paid for {order} but pays {paid_order}");
        }
        match (status, orders.get(paid_order)) {
            ("succeeded", Some(o)) if o.status == "paid" => {}
            ("succeeded", Some(o)) => {
                let order_status = o.status.as_str();
                flag!(v, PaidLost; "payment {pid} succeeded but {paid_order} is {order_status}");
            }
            ("succeeded", None) => {
                flag!(v, PaidLost; "payment {pid} succeeded but order {paid_order} is not written");
            }
            ("refund_due" | "refunded", _) => {}
            (other, _) => {
                flag!(v, PaidLost; "payment {pid} of order {order} answered paid but is {other}");
            }
        }
    }
    let mut succeeded: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in db.payments.iter().filter(|p| p.status == "succeeded") {
        succeeded.entry(&p.order).or_default().push(&p.id);
    }
    for o in db
        .orders
        .iter()
        .filter(|o| o.status == "paid" && !succeeded.contains_key(o.id.as_str()))
    {
        flag!(v, PaidLost; "order {} is paid but has no succeeded payment", o.id);
    }
    for (order, pids) in succeeded.iter().filter(|s| s.1.len() > 1) {
        flag!(v, ChargedTwice; "order {order} charged {} times: {}", pids.len(), list(pids));
    }
    for p in db.payments.iter().filter(|p| p.status == "refund_due") {
        flag!(v, ChargedTwice; "payment {} of order {} left refund_due at rest", p.id, p.order);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ok:VALUE`, `fail:CODE` or `unknown:ERROR`.
    fn outcome(spec: &str) -> Outcome {
        match spec.split_once(':').expect("kind:value") {
            ("ok", value) => Outcome::Ok {
                value: value.into(),
            },
            ("fail", code) => Outcome::Fail {
                code: code.parse().expect("a code"),
            },
            (_, error) => Outcome::Unknown {
                error: error.into(),
            },
        }
    }

    fn op(request: Request, spec: &str) -> Op {
        let outcome = outcome(spec);
        Op {
            at_ms: 0,
            took_ms: 1,
            request,
            outcome,
        }
    }

    fn buy(user: &str, key: &str, spec: &str) -> Op {
        let (user, key) = (user.into(), key.into());
        op(
            Request::Buy {
                user,
                quantity: 1,
                key,
            },
            spec,
        )
    }

    fn pay(user: &str, order: &str, spec: &str) -> Op {
        let (user, order) = (user.into(), order.into());
        op(Request::Pay { user, order }, spec)
    }

    fn lookup(user: &str, order: &str, spec: &str) -> Op {
        let (user, order) = (user.into(), order.into());
        op(Request::Lookup { user, order }, spec)
    }

    fn order(id: &str, user: &str, quantity: u32, status: &str) -> OrderRow {
        let (hold_id, user, status) = (format!("h-{id}"), user.into(), status.into());
        OrderRow {
            id: id.into(),
            hold_id,
            user,
            quantity,
            status,
        }
    }

    fn payment(id: &str, order: &str, status: &str) -> PaymentRow {
        let (id, order, status) = (id.into(), order.into(), status.into());
        PaymentRow { id, order, status }
    }

    /// A clean run: o1 paid, o2 awaiting payment, o3 refunded, o4 acknowledged then lost.
    fn healthy() -> (Vec<Op>, DbView) {
        let ops = vec![
            buy("alice", "k1", "ok:o1"),
            buy("alice", "k1", "ok:o1"),
            buy("bob", "k2", "ok:o2"),
            buy("carol", "k3", "ok:o3"),
            buy("dave", "k4", "ok:o4"),
            buy("erin", "k5", "fail:4001"),
            buy("frank", "k6", "unknown:timeout"),
            pay("alice", "o1", "ok:p1"),
            pay("carol", "o3", "ok:p3"),
            lookup("alice", "o1", "unknown:connection reset"),
            lookup("alice", "o1", "ok:paid"),
            lookup("bob", "o2", "ok:pending_payment"),
            lookup("dave", "o4", "ok:lost"),
        ];
        let orders = vec![
            order("o1", "alice", 2, "paid"),
            order("o2", "bob", 1, "pending_payment"),
            order("o3", "carol", 1, "refunded"),
        ];
        let payments = vec![
            payment("p1", "o1", "succeeded"),
            payment("p2", "o2", "failed"),
            payment("p3", "o3", "refunded"),
        ];
        let (total, available, held, sold) = (10, 7, 0, 3);
        let stock = Some(StockRow {
            total,
            available,
            held,
            sold,
        });
        let voided = BTreeSet::from(["o4".to_string()]);
        let (db_sold, per_user_limit) = (3, 2);
        let db = DbView {
            total,
            db_sold,
            per_user_limit,
            orders,
            payments,
            voided,
            stock,
        };
        (ops, db)
    }

    fn has(verdict: &Verdict, kind: Kind) -> bool {
        verdict.violations.iter().any(|v| v.kind == kind)
    }

    #[test]
    fn clean_run_passes() {
        let (ops, db) = healthy();
        let verdict = check(&ops, &db);
        assert!(verdict.ok(), "{:?}", verdict.violations);
        let (acknowledged, orders, lost) = (4, 3, 1);
        let want = Summary {
            acknowledged,
            orders,
            lost,
            ..Summary::default()
        };
        assert_eq!(verdict.summary, want);
    }

    #[test]
    fn catches_oversold_units() {
        let (ops, mut db) = healthy();
        db.orders.push(order("o5", "gina", 8, "paid"));
        let verdict = check(&ops, &db);
        assert!(has(&verdict, Kind::Oversold));
        assert_eq!(verdict.summary.oversold, 1);
    }

    #[test]
    fn catches_unbalanced_stock() {
        let (ops, mut db) = healthy();
        if let Some(stock) = db.stock.as_mut() {
            stock.available = 6;
        }
        assert!(has(&check(&ops, &db), Kind::Unbalanced));
        db.stock = None;
        assert!(has(&check(&ops, &db), Kind::Unbalanced));
    }

    #[test]
    fn catches_sold_mismatch() {
        let (ops, mut db) = healthy();
        db.db_sold = 2;
        assert!(has(&check(&ops, &db), Kind::SoldMismatch));
    }

    #[test]
    fn catches_above_limit() {
        let (ops, mut db) = healthy();
        db.per_user_limit = 1;
        assert!(has(&check(&ops, &db), Kind::AboveLimit));
    }

    #[test]
    fn catches_two_orders_for_one_key() {
        let (mut ops, db) = healthy();
        ops.push(buy("alice", "k1", "ok:o9"));
        let verdict = check(&ops, &db);
        assert!(has(&verdict, Kind::Duplicate));
        assert!(verdict.summary.duplicates >= 1);
    }

    #[test]
    fn catches_order_written_for_another_user() {
        let (mut ops, db) = healthy();
        ops.push(buy("gina", "k7", "ok:o2"));
        let want = "order o2 given to user gina but written for bob";
        let verdict = check(&ops, &db);
        assert!(verdict.violations.iter().any(|v| v.detail == want));
    }

    #[test]
    fn catches_acknowledged_order_neither_written_nor_voided() {
        let (mut ops, db) = healthy();
        ops.push(buy("gina", "k7", "ok:o7"));
        let verdict = check(&ops, &db);
        assert!(has(&verdict, Kind::Unresolved));
        assert_eq!(verdict.summary.unresolved, 1);
    }

    #[test]
    fn catches_last_lookup_still_pending() {
        let (mut ops, db) = healthy();
        ops.push(lookup("bob", "o2", "fail:404"));
        assert!(has(&check(&ops, &db), Kind::Unresolved));
    }

    #[test]
    fn catches_written_and_voided() {
        let (ops, mut db) = healthy();
        db.voided.insert("o2".to_string());
        assert!(has(&check(&ops, &db), Kind::WrittenAndVoided));
    }

    #[test]
    fn catches_paid_callback_with_failed_or_missing_payment() {
        let (mut ops, mut db) = healthy();
        db.payments[0].status = "failed".to_string();
        assert!(has(&check(&ops, &db), Kind::PaidLost));
        ops.push(pay("bob", "o2", "ok:p9"));
        let verdict = check(&ops, &healthy().1);
        let p9 = |v: &Violation| v.kind == Kind::PaidLost && v.detail.contains("p9");
        assert!(verdict.violations.iter().any(p9));
    }

    #[test]
    fn catches_paid_order_without_succeeded_payment() {
        let (mut ops, mut db) = healthy();
        ops.retain(|o| !matches!(&o.request, Request::Pay { order, .. } if order == "o1"));
        db.payments.retain(|p| p.id != "p1");
        let verdict = check(&ops, &db);
        assert!(has(&verdict, Kind::PaidLost));
        assert_eq!(verdict.summary.paid_lost, 1);
    }

    #[test]
    fn catches_two_succeeded_payments() {
        let (ops, mut db) = healthy();
        db.payments.push(payment("p1b", "o1", "succeeded"));
        let verdict = check(&ops, &db);
        assert!(has(&verdict, Kind::ChargedTwice));
        assert_eq!(verdict.summary.charged_twice, 1);
    }

    #[test]
    fn catches_refund_due_left_at_rest() {
        let (ops, mut db) = healthy();
        db.payments[2].status = "refund_due".to_string();
        let verdict = check(&ops, &db);
        assert!(has(&verdict, Kind::ChargedTwice));
        assert!(!has(&verdict, Kind::PaidLost));
    }
}
