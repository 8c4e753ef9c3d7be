//! The checker of the guarantees of docs/design.md §5, shared by the property test, the concurrency
//! test, the backend test suites and `seckill bench`.
//!
//! The rules are one pure function, [`violations`], over plain data: the [`Books`] of one
//! activity (its figures in the database, its orders, the stock backend's figures and holds, the
//! payments) and what the caller knows buyers were told ([`Expect`]). It returns every violation
//! it finds. [`check`] gathers the books from an engine's backends and calls it; `seckill bench`
//! gathers what a server's admin API shows and calls the same function. A part of the books the
//! caller could not observe is `None`, and the rules over it are skipped.
//!
//! Some facts only hold once the pipeline is idle (nothing in the outbox, the broker or the
//! delay queue's due items); pass [`Expect::quiescent`] after draining it.

use crate::domain::{
    Activity, ActivityId, HoldId, HoldState, Order, OrderId, OrderStatus, Payment, PaymentId,
    PaymentStatus, UserId,
};
use crate::engine::Engine;
use crate::payment::MockLedger;
use crate::stock::{HoldRecord, StockSnapshot};
use crate::Result;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// What the caller knows happened, to check nothing of it was lost.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Orders that buyers were told were reserved. At rest each one exists (or, with
    /// `told_lost_allowed`, was declared lost to its buyer and does not).
    pub reserved: Vec<OrderId>,
    /// Payments whose callback was answered "paid".
    pub paid: Vec<PaymentId>,
    /// Money movements at the provider, if known.
    pub ledger: Option<MockLedger>,
    /// The pipeline is drained: also check what holds only at rest.
    pub quiescent: bool,
    /// Accept a reserved order that was never written when its buyer was told so (the id was
    /// declared lost: the stock backend lost the hold, or the database refused it). Only where
    /// a loss is expected: a stock backend that lost data (docs/guarantees.md gives the window).
    pub told_lost_allowed: bool,
}

/// An activity's figures in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleFigures {
    /// Units for sale.
    pub total_stock: u32,
    /// Units in its orders that hold stock, by the database's own count.
    pub sold: u32,
    /// Most units one user may hold across their live orders.
    pub per_user_limit: u32,
    /// Its price tiers (empty for a plain sale; docs/adr/0021).
    pub tiers: Vec<crate::domain::Tier>,
    /// Its quotas over tiers.
    pub quotas: Vec<crate::domain::Quota>,
    /// Its seat map.
    pub seats: Vec<crate::domain::SeatBlock>,
    /// Whether each ticket names its holder (one document, one live ticket).
    pub real_name: bool,
}

impl From<&Activity> for SaleFigures {
    fn from(a: &Activity) -> Self {
        Self {
            total_stock: a.total_stock,
            sold: a.sold,
            per_user_limit: a.per_user_limit,
            tiers: a.tiers.clone(),
            quotas: a.quotas.clone(),
            seats: a.seats.clone(),
            real_name: a.real_name,
        }
    }
}

/// The stock backend's holds of an activity, read with the pipeline at rest.
#[derive(Debug, Clone, Default)]
pub struct Holds {
    /// The activity's holds in state `Held` or `Confirmed`.
    pub live: Vec<HoldRecord>,
    /// The hold of each order that holds stock, by hold id, in whatever state it is (absent:
    /// the backend has no such hold).
    pub of_orders: HashMap<HoldId, HoldRecord>,
}

/// Everything the rules read about one activity. [`check`] fills every part from the engine's
/// backends; a caller that sees less (`seckill bench` sees a server's HTTP answers) leaves the
/// parts it cannot observe `None`, and the rules over them are skipped.
#[derive(Debug, Clone)]
pub struct Books {
    /// The activity's figures in the database.
    pub activity: SaleFigures,
    /// Its orders, in every status.
    pub orders: Vec<Order>,
    /// The stock backend's figures (`None`: it has no stock for the activity, never warmed up).
    pub stock: Option<StockSnapshot>,
    /// The stock backend's figures per tier (empty: a plain sale, or not observed).
    pub tier_stock: Vec<crate::stock::TierSnapshot>,
    /// The stock backend's units per user, for the users with orders that hold stock (`None`:
    /// not observed; a user absent from the map is not checked).
    pub user_units: Option<HashMap<UserId, u32>>,
    /// Each order's payments (`None`: not observed; an order absent from the map has none).
    pub payments: Option<HashMap<OrderId, Vec<Payment>>>,
    /// The payments of [`Expect::paid`] as found, each with the order it pays (if found). One
    /// absent from the map is missing.
    pub acknowledged_payments: HashMap<PaymentId, (Payment, Option<Order>)>,
    /// The stock backend's holds at rest (`None`: not observed).
    pub holds: Option<Holds>,
    /// Those of [`Expect::reserved`] the database declared lost to their buyers.
    pub voided: HashSet<OrderId>,
    /// Entries left in the stock backend's outbox (`None`: not observed).
    pub outbox: Option<u64>,
    /// How many buys were answered "reserved", for a caller that counted them without knowing
    /// their order ids (`seckill bench`; the tests list the ids in [`Expect::reserved`]). At rest
    /// the orders of distinct holds are at least as many.
    pub reservations: Option<usize>,
}

impl Books {
    /// The books of an activity with these figures, nothing else observed yet: no orders, no
    /// stock figures, and every optional part `None`.
    pub fn new(activity: SaleFigures) -> Self {
        Self {
            activity,
            orders: Vec::new(),
            stock: None,
            tier_stock: Vec::new(),
            user_units: None,
            payments: None,
            acknowledged_payments: HashMap::new(),
            holds: None,
            voided: HashSet::new(),
            outbox: None,
            reservations: None,
        }
    }

    /// Units in the orders that hold stock (every status but `cancelled`): the units sold.
    pub fn live_units(&self) -> u64 {
        self.orders
            .iter()
            .filter(|o| o.status.holds_stock())
            .map(|o| u64::from(o.quantity))
            .sum()
    }
}

/// Checks the guarantees for one activity; returns the violations (empty: all hold).
///
/// It reads the activity's [`Books`] from the engine's backends (the per-order payments, the
/// payments of [`Expect::paid`], and at rest the holds, the voided ids and the outbox) and
/// hands them to [`violations`].
pub async fn check(engine: &Engine, activity: ActivityId, expect: &Expect) -> Result<Vec<String>> {
    let b = engine.backends();
    let Some(act) = b.catalog.activity(activity).await? else {
        return Ok(vec![format!("activity {activity} is missing")]);
    };
    let mut books = Books::new(SaleFigures::from(&act));
    books.orders = b.orders.activity_orders(activity).await?;
    books.stock = b.stock.snapshot(activity).await?;
    if !act.tiers.is_empty() {
        books.tier_stock = b.stock.tiers(activity).await?;
    }

    let users: BTreeSet<UserId> = books
        .orders
        .iter()
        .filter(|o| o.status.holds_stock())
        .map(|o| o.user_id)
        .collect();
    let mut user_units = HashMap::new();
    for u in users {
        user_units.insert(u, b.stock.user_count(activity, u).await?);
    }
    books.user_units = Some(user_units);

    let mut payments = HashMap::new();
    for o in &books.orders {
        payments.insert(o.id, b.payments.order_payments(o.id).await?);
    }
    books.payments = Some(payments);
    for pid in &expect.paid {
        if let Some(p) = b.payments.payment(*pid).await? {
            let o = b.orders.order(p.order_id).await?;
            books.acknowledged_payments.insert(*pid, (p, o));
        }
    }

    if expect.quiescent {
        let live = b.stock.live_holds(activity).await?;
        let mut of_orders = HashMap::new();
        for o in books.orders.iter().filter(|o| o.status.holds_stock()) {
            if let Some(r) = b.stock.hold(activity, o.hold_id).await? {
                of_orders.insert(o.hold_id, r);
            }
        }
        books.holds = Some(Holds { live, of_orders });
        for id in &expect.reserved {
            if b.orders.is_voided(*id).await? {
                books.voided.insert(*id);
            }
        }
        books.outbox = Some(b.stock.outbox_len().await?);
    }
    Ok(violations(&books, expect))
}

/// The rules: every violation of the guarantees in `books`, given what buyers were told
/// (empty: all hold). Pure; the one definition of each guarantee that [`check`] and `seckill
/// bench` both use. Rules over a part of the books that is `None` are skipped.
pub fn violations(books: &Books, expect: &Expect) -> Vec<String> {
    let act = &books.activity;
    let orders = &books.orders;
    let mut v = Vec::new();

    // 1. No oversell, in the stock backend and in the database.
    let live_units = books.live_units();
    if live_units != u64::from(act.sold) {
        v.push(format!(
            "database sold {} differs from its orders' units {live_units}",
            act.sold
        ));
    }
    if live_units > u64::from(act.total_stock) {
        v.push(format!(
            "oversold in the database: {live_units} units in orders of {}",
            act.total_stock
        ));
    }
    if let Some(s) = &books.stock {
        if s.available < 0 || u64::from(s.held) + u64::from(s.sold) > u64::from(s.total) {
            v.push(format!("oversold in the stock backend: {s:?}"));
        }
        // 4. total = available + held + sold.
        if !s.balanced() {
            v.push(format!("stock does not balance: {s:?}"));
        }
    }

    // 1b. No tier or quota oversold: in the database's orders and in the stock backend; each
    //     order of a session names tiers of it adding up to its units.
    if act.tiers.is_empty() {
        for o in orders.iter().filter(|o| !o.lines.is_empty()) {
            v.push(format!(
                "order {} of a plain sale has tier lines {:?}",
                o.id, o.lines
            ));
        }
    } else {
        let mut per_tier: BTreeMap<u32, u64> = BTreeMap::new();
        for o in orders {
            let sum: u64 = o.lines.iter().map(|l| u64::from(l.quantity)).sum();
            if sum != u64::from(o.quantity)
                || o.lines
                    .iter()
                    .any(|l| !act.tiers.iter().any(|t| t.id == l.tier))
            {
                v.push(format!(
                    "order {} has tier lines {:?} for {} units",
                    o.id, o.lines, o.quantity
                ));
            }
            if o.status.holds_stock() {
                for l in &o.lines {
                    *per_tier.entry(l.tier).or_default() += u64::from(l.quantity);
                }
            }
        }
        for t in &act.tiers {
            let n = per_tier.get(&t.id).copied().unwrap_or(0);
            if n > u64::from(t.stock) {
                v.push(format!(
                    "tier {} oversold in the database: {n} units of {}",
                    t.id, t.stock
                ));
            }
        }
        for q in &act.quotas {
            let n: u64 = q.tiers.iter().filter_map(|t| per_tier.get(t)).sum();
            if n > u64::from(q.cap) {
                v.push(format!(
                    "quota {} oversold in the database: {n} units of {}",
                    q.id, q.cap
                ));
            }
        }
        for s in &books.tier_stock {
            let taken = u64::from(s.held) + u64::from(s.sold);
            if s.available < 0
                || taken > u64::from(s.total)
                || i64::from(s.total) != s.available + taken as i64
            {
                v.push(format!(
                    "tier {} oversold or unbalanced in the stock backend: {s:?}",
                    s.tier
                ));
            }
        }
        for q in &act.quotas {
            let taken = crate::stock::quota_taken(q, &books.tier_stock);
            if taken > u64::from(q.cap) {
                v.push(format!(
                    "quota {} oversold in the stock backend: {taken} units of {}",
                    q.id, q.cap
                ));
            }
        }
    }

    // 1c. No seat sold twice: each seated line of a live order has its units' worth of seats of
    //     its tier, and no seat is in two live orders.
    if !act.seats.is_empty() {
        let mut owner: HashMap<&str, OrderId> = HashMap::new();
        for o in orders.iter().filter(|o| o.status.holds_stock()) {
            for l in &o.lines {
                let blocks: Vec<_> = act.seats.iter().filter(|b| b.tier == l.tier).collect();
                if blocks.is_empty() {
                    continue;
                }
                if l.seats.len() != l.quantity as usize
                    || l.seats
                        .iter()
                        .any(|s| !blocks.iter().any(|b| crate::domain::tier::holds_seat(b, s)))
                {
                    v.push(format!(
                        "order {} has seats {:?} for {} units of tier {}",
                        o.id, l.seats, l.quantity, l.tier
                    ));
                }
                for s in &l.seats {
                    if let Some(first) = owner.insert(s, o.id) {
                        v.push(format!("seat {s} sold twice: orders {first} and {}", o.id));
                    }
                }
            }
        }
    }

    // 1d. Real names: each live order of a real-name session names one holder per unit, and no
    //     document is in two live orders (nor twice in one), nor in two live holds of the
    //     stock backend; an order of another session names nobody.
    let mut doc_owner: HashMap<&str, OrderId> = HashMap::new();
    for o in orders.iter().filter(|o| o.status.holds_stock()) {
        let named = if act.real_name {
            o.holders.len() == o.quantity as usize
        } else {
            o.holders.is_empty()
        };
        if !named {
            v.push(format!(
                "order {} has {} holders for {} units (real-name: {})",
                o.id,
                o.holders.len(),
                o.quantity,
                act.real_name
            ));
        }
        for h in &o.holders {
            if let Some(first) = doc_owner.insert(&h.id_hash, o.id) {
                v.push(format!(
                    "document {} ({}) holds two tickets: orders {first} and {}",
                    h.id_masked, h.id_hash, o.id
                ));
            }
        }
    }
    if let Some(holds) = &books.holds {
        let mut in_hold: HashMap<&str, crate::domain::HoldId> = HashMap::new();
        for r in &holds.live {
            for h in &r.hold.holders {
                if let Some(first) = in_hold.insert(&h.id_hash, r.hold.id) {
                    v.push(format!(
                        "document {} holds two tickets in the stock backend: holds {first} \
                         and {}",
                        h.id_masked, r.hold.id
                    ));
                }
            }
        }
    }

    // 2. Per-user limit.
    let mut per_user: BTreeMap<UserId, u64> = BTreeMap::new();
    for o in orders.iter().filter(|o| o.status.holds_stock()) {
        *per_user.entry(o.user_id).or_default() += u64::from(o.quantity);
    }
    for (u, n) in &per_user {
        if *n > u64::from(act.per_user_limit) {
            v.push(format!(
                "user {u} has {n} units, above the limit {}",
                act.per_user_limit
            ));
        }
        if let Some(backend) = books.user_units.as_ref().and_then(|m| m.get(u)) {
            if *backend > act.per_user_limit {
                v.push(format!("stock backend gives user {u} {backend} units"));
            }
        }
    }

    // 3. Exactly one order per hold.
    let mut holds = HashSet::new();
    for o in orders {
        if !holds.insert(o.hold_id) {
            v.push(format!("two orders for hold {}", o.hold_id));
        }
    }

    // 5. Payments: a paid order is paid by a succeeded payment; nobody charged twice.
    if let Some(payments) = &books.payments {
        for o in orders {
            let ps: &[Payment] = payments.get(&o.id).map(Vec::as_slice).unwrap_or_default();
            if o.status == OrderStatus::Paid {
                match o.payment_id.and_then(|id| ps.iter().find(|p| p.id == id)) {
                    Some(p) if p.status == PaymentStatus::Succeeded => {}
                    other => v.push(format!(
                        "paid order {} has no succeeded payment ({other:?})",
                        o.id
                    )),
                }
            }
            if expect.quiescent {
                let succeeded = ps
                    .iter()
                    .filter(|p| p.status == PaymentStatus::Succeeded)
                    .count();
                let expected = usize::from(o.status == OrderStatus::Paid);
                if succeeded != expected {
                    v.push(format!(
                        "order {} ({}) keeps {succeeded} succeeded payments at rest",
                        o.id, o.status
                    ));
                }
                // While callbacks are in flight a buyer may be charged twice (they paid twice);
                // the guarantee is that the extra payment is refunded, checked at rest only.
                if let Some(l) = &expect.ledger {
                    let net: i64 = ps
                        .iter()
                        .map(|p| {
                            l.charged.get(&p.id).map_or(0, |m| m.0)
                                - l.refunded.get(&p.id).map_or(0, |m| m.0)
                        })
                        .sum();
                    let want = if o.status == OrderStatus::Paid {
                        o.amount.0
                    } else {
                        0
                    };
                    if net != want {
                        v.push(format!(
                            "order {} ({}) is charged {net} at rest, expected {want}",
                            o.id, o.status
                        ));
                    }
                }
            }
        }
    }
    for pid in &expect.paid {
        match books.acknowledged_payments.get(pid) {
            Some((p, o)) => {
                let ok = o
                    .as_ref()
                    .is_some_and(|o| o.status == OrderStatus::Paid && o.payment_id == Some(p.id));
                if !ok {
                    v.push(format!(
                        "payment {pid} was acknowledged as paid but its order is not paid by it"
                    ));
                }
            }
            None => v.push(format!("acknowledged payment {pid} is missing")),
        }
    }

    // 4 and 6 at rest: every hold ended as an order or was released; nothing reserved was lost.
    if expect.quiescent {
        if let Some(h) = &books.holds {
            let by_hold: HashMap<_, _> = orders.iter().map(|o| (o.hold_id, o)).collect();
            for rec in &h.live {
                match by_hold.get(&rec.hold.id) {
                    Some(o) if o.status.holds_stock() && rec.state == HoldState::Confirmed => {}
                    Some(o) => v.push(format!(
                        "hold {} is {:?} at rest but its order is {}",
                        rec.hold.id, rec.state, o.status
                    )),
                    None => v.push(format!(
                        "hold {} is {:?} at rest with no order",
                        rec.hold.id, rec.state
                    )),
                }
            }
            for o in orders.iter().filter(|o| o.status.holds_stock()) {
                match h.of_orders.get(&o.hold_id) {
                    Some(r) if r.state == HoldState::Confirmed => {}
                    other => v.push(format!(
                        "order {} ({}) has hold state {:?} at rest",
                        o.id,
                        o.status,
                        other.map(|r| r.state)
                    )),
                }
            }
        }
        if let Some(s) = &books.stock {
            if s.held != 0 {
                v.push(format!("{} units still held at rest", s.held));
            }
            if s.sold != act.sold {
                v.push(format!(
                    "stock backend sold {} differs from database sold {} at rest",
                    s.sold, act.sold
                ));
            }
        }
        let known: HashSet<_> = orders.iter().map(|o| o.id).collect();
        for id in &expect.reserved {
            // An order its buyer was told is lost (its hold vanished with the stock backend)
            // is the one allowed absence; an order that exists must not be declared lost.
            match (known.contains(id), books.voided.contains(id)) {
                (true, false) => {}
                (false, true) if expect.told_lost_allowed => {}
                (false, true) => {
                    v.push(format!("reserved order {id} was lost (its buyer was told)"))
                }
                (false, false) => v.push(format!("reserved order {id} was lost")),
                (true, true) => v.push(format!("order {id} was written and declared lost")),
            }
        }
        // Counted reservations (ids unknown): each has its order, one per hold.
        if let Some(n) = books.reservations {
            let written = holds.len();
            if written < n {
                v.push(format!(
                    "{written} orders for {n} reservations: {} reserved orders were lost",
                    n - written
                ));
            }
        }
        if let Some(outbox) = books.outbox {
            if outbox != 0 {
                v.push(format!("{outbox} outbox entries left at rest"));
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;
    use crate::Timestamp;

    fn at() -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a time")
    }

    /// Order `id` (from hold `id`) of `user`.
    fn order(id: i64, user: i64, quantity: u32, status: OrderStatus) -> Order {
        Order {
            holders: Vec::new(),
            id: OrderId(id),
            hold_id: HoldId(id),
            user_id: UserId(user),
            activity_id: ActivityId(1),
            quantity,
            amount: Money(100 * i64::from(quantity)),
            status,
            expires_at: at(),
            payment_id: None,
            cancel_reason: None,
            created_at: at(),
            updated_at: at(),
            trace_parent: None,
            lines: Vec::new(),
        }
    }

    fn hold(o: &Order, state: HoldState) -> HoldRecord {
        HoldRecord {
            hold: o.hold(),
            state,
        }
    }

    fn payment(id: i64, o: &Order, status: PaymentStatus) -> Payment {
        Payment {
            id: PaymentId(id),
            order_id: o.id,
            user_id: o.user_id,
            provider: "mock".into(),
            amount: o.amount,
            status,
            provider_txn_id: None,
            callbacks_seen: 1,
            created_at: at(),
            updated_at: at(),
        }
    }

    fn snapshot(total: u32, available: i64, held: u32, sold: u32) -> StockSnapshot {
        StockSnapshot {
            total,
            available,
            held,
            sold,
        }
    }

    /// A sale of 5 units, limit 1, at rest: order 1 paid by payment 11, order 2 pending, order 3
    /// cancelled; every part observed, every guarantee kept.
    fn clean() -> (Books, Expect) {
        let mut paid = order(1, 1, 1, OrderStatus::Paid);
        paid.payment_id = Some(PaymentId(11));
        let pending = order(2, 2, 1, OrderStatus::PendingPayment);
        let cancelled = order(3, 3, 1, OrderStatus::Cancelled);
        let p11 = payment(11, &paid, PaymentStatus::Succeeded);
        let p12 = payment(12, &cancelled, PaymentStatus::Failed);
        let mut books = Books::new(SaleFigures {
            real_name: false,
            total_stock: 5,
            sold: 2,
            per_user_limit: 1,
            tiers: Vec::new(),
            quotas: Vec::new(),
            seats: Vec::new(),
        });
        books.stock = Some(snapshot(5, 3, 0, 2));
        books.user_units = Some(HashMap::from([(UserId(1), 1), (UserId(2), 1)]));
        books.payments = Some(HashMap::from([
            (paid.id, vec![p11.clone()]),
            (cancelled.id, vec![p12]),
        ]));
        books
            .acknowledged_payments
            .insert(p11.id, (p11.clone(), Some(paid.clone())));
        books.holds = Some(Holds {
            live: vec![
                hold(&paid, HoldState::Confirmed),
                hold(&pending, HoldState::Confirmed),
            ],
            of_orders: HashMap::from([
                (paid.hold_id, hold(&paid, HoldState::Confirmed)),
                (pending.hold_id, hold(&pending, HoldState::Confirmed)),
            ]),
        });
        books.outbox = Some(0);
        books.reservations = Some(3);
        let expect = Expect {
            reserved: vec![paid.id, pending.id, cancelled.id],
            paid: vec![p11.id],
            ledger: Some(MockLedger {
                charged: BTreeMap::from([(p11.id, paid.amount)]),
                refunded: BTreeMap::new(),
            }),
            quiescent: true,
            told_lost_allowed: false,
        };
        books.orders = vec![paid, pending, cancelled];
        (books, expect)
    }

    /// The violations of the clean sale changed by `change`.
    fn violated(change: impl FnOnce(&mut Books, &mut Expect)) -> Vec<String> {
        let (mut books, mut expect) = clean();
        change(&mut books, &mut expect);
        violations(&books, &expect)
    }

    #[track_caller]
    fn has(v: &[String], what: &str) {
        assert!(v.iter().any(|x| x.contains(what)), "{what}: {v:#?}");
    }

    #[test]
    fn a_clean_sale_has_no_violation() {
        let (books, expect) = clean();
        assert_eq!(books.live_units(), 2);
        assert_eq!(violations(&books, &expect), Vec::<String>::new());
        // Mid-flight (not at rest) too.
        let v = violations(
            &books,
            &Expect {
                quiescent: false,
                ..expect
            },
        );
        assert_eq!(v, Vec::<String>::new());
    }

    /// The clean sale as a real-name session: each order names its one holder.
    fn real_name(b: &mut Books) {
        b.activity.real_name = true;
        for (i, o) in b.orders.iter_mut().enumerate() {
            o.holders = vec![crate::domain::Holder {
                name: format!("H{i}"),
                id_type: crate::domain::IdType::Passport,
                id_masked: "E1****67".into(),
                id_hash: format!("{i:032x}"),
            }];
        }
        if let Some(h) = &mut b.holds {
            for r in h.live.iter_mut() {
                let o = b.orders.iter().find(|o| o.hold_id == r.hold.id).unwrap();
                r.hold.holders = o.holders.clone();
            }
        }
    }

    #[test]
    fn the_real_name_rules_catch_a_document_twice_and_a_missing_holder() {
        assert_eq!(violated(|b, _| real_name(b)), Vec::<String>::new());
        let paid_doc = |b: &Books| b.orders[0].holders.clone();
        has(
            &violated(|b, _| {
                real_name(b);
                b.orders[1].holders = paid_doc(b);
            }),
            "holds two tickets: orders",
        );
        // A cancelled order's document is free again.
        assert_eq!(
            violated(|b, _| {
                real_name(b);
                b.orders[2].holders = paid_doc(b);
            }),
            Vec::<String>::new()
        );
        has(
            &violated(|b, _| {
                real_name(b);
                let doc = paid_doc(b);
                b.holds.as_mut().unwrap().live[1].hold.holders = doc;
            }),
            "holds two tickets in the stock backend",
        );
        has(
            &violated(|b, _| {
                real_name(b);
                b.orders[1].holders.clear();
            }),
            "has 0 holders for 1 units (real-name: true)",
        );
        has(
            &violated(|b, _| {
                real_name(b);
                b.activity.real_name = false;
            }),
            "(real-name: false)",
        );
    }

    #[test]
    fn every_rule_catches_its_violation() {
        // 1. Oversold: in the database (more units in orders than for sale, or than its count)
        //    and in the stock backend.
        has(
            &violated(|b, _| b.activity.total_stock = 1),
            "oversold in the database: 2 units in orders of 1",
        );
        has(
            &violated(|b, _| b.activity.sold = 3),
            "database sold 3 differs from its orders' units 2",
        );
        has(
            &violated(|b, _| b.stock = Some(snapshot(5, -1, 0, 6))),
            "oversold in the stock backend",
        );
        // 2. Above the per-user limit, in the orders and in the stock backend's count.
        has(
            &violated(|b, _| b.orders[1].user_id = UserId(1)),
            "user 1 has 2 units, above the limit 1",
        );
        has(
            &violated(|b, _| b.user_units = Some(HashMap::from([(UserId(2), 2)]))),
            "stock backend gives user 2 2 units",
        );
        // 3. Two orders for one hold.
        has(
            &violated(|b, _| {
                let mut dup = order(4, 4, 1, OrderStatus::Cancelled);
                dup.hold_id = HoldId(2);
                b.orders.push(dup);
            }),
            "two orders for hold 2",
        );
        // 4. total ≠ available + held + sold.
        has(
            &violated(|b, _| b.stock = Some(snapshot(5, 4, 0, 2))),
            "stock does not balance",
        );
        // 5. A paid order without its succeeded payment; a second succeeded payment; a charge
        //    not refunded; an acknowledged payment missing or not paying its order.
        has(
            &violated(|b, _| {
                let o = b.orders[0].clone();
                let p = payment(11, &o, PaymentStatus::Failed);
                b.payments.as_mut().unwrap().insert(o.id, vec![p]);
            }),
            "paid order 1 has no succeeded payment",
        );
        has(
            &violated(|b, _| {
                let o = b.orders[0].clone();
                let p = payment(13, &o, PaymentStatus::Succeeded);
                b.payments.as_mut().unwrap().get_mut(&o.id).unwrap().push(p);
            }),
            "order 1 (paid) keeps 2 succeeded payments at rest",
        );
        has(
            &violated(|b, e| {
                let o = b.orders[0].clone();
                let p = payment(13, &o, PaymentStatus::RefundDue);
                b.payments.as_mut().unwrap().get_mut(&o.id).unwrap().push(p);
                e.ledger
                    .as_mut()
                    .unwrap()
                    .charged
                    .insert(PaymentId(13), o.amount);
            }),
            "order 1 (paid) is charged 200 at rest, expected 100",
        );
        has(
            &violated(|b, _| b.acknowledged_payments.clear()),
            "acknowledged payment 11 is missing",
        );
        has(
            &violated(|b, e| {
                let o = b.orders[1].clone();
                let p = payment(14, &o, PaymentStatus::Succeeded);
                e.paid.push(p.id);
                b.acknowledged_payments.insert(p.id, (p, Some(o)));
            }),
            "payment 14 was acknowledged as paid but its order is not paid by it",
        );
        // 4 at rest: units still held, sold figures that disagree, holds without their order
        //    or of a cancelled one, an order whose hold is not confirmed, the outbox not empty.
        has(
            &violated(|b, _| b.stock = Some(snapshot(5, 2, 1, 2))),
            "1 units still held at rest",
        );
        has(
            &violated(|b, _| b.stock = Some(snapshot(5, 2, 0, 3))),
            "stock backend sold 3 differs from database sold 2 at rest",
        );
        has(
            &violated(|b, _| {
                let stray = hold(
                    &order(9, 9, 1, OrderStatus::PendingPayment),
                    HoldState::Held,
                );
                b.holds.as_mut().unwrap().live.push(stray);
            }),
            "hold 9 is Held at rest with no order",
        );
        has(
            &violated(|b, _| {
                let h = hold(&b.orders[2], HoldState::Confirmed);
                b.holds.as_mut().unwrap().live.push(h);
            }),
            "hold 3 is Confirmed at rest but its order is cancelled",
        );
        has(
            &violated(|b, _| {
                b.holds.as_mut().unwrap().of_orders.remove(&HoldId(2));
            }),
            "order 2 (pending_payment) has hold state None at rest",
        );
        has(
            &violated(|b, _| b.outbox = Some(2)),
            "2 outbox entries left at rest",
        );
        // 6. A reservation its buyer was told about, lost: by id, or by count.
        has(
            &violated(|_, e| e.reserved.push(OrderId(7))),
            "reserved order 7 was lost",
        );
        has(
            &violated(|b, e| {
                e.reserved.push(OrderId(7));
                b.voided.insert(OrderId(7));
            }),
            "reserved order 7 was lost (its buyer was told)",
        );
        has(
            &violated(|b, _| {
                b.voided.insert(OrderId(2));
            }),
            "order 2 was written and declared lost",
        );
        has(
            &violated(|b, _| b.reservations = Some(4)),
            "3 orders for 4 reservations",
        );
        // A declared loss is accepted where a loss is expected.
        let v = violated(|b, e| {
            e.reserved.push(OrderId(7));
            e.told_lost_allowed = true;
            b.voided.insert(OrderId(7));
        });
        assert_eq!(v, Vec::<String>::new());
    }

    #[test]
    fn what_holds_only_at_rest_is_not_checked_mid_flight() {
        let v = violated(|b, e| {
            e.quiescent = false;
            b.stock = Some(snapshot(5, 2, 1, 2));
            b.reservations = Some(4);
            b.outbox = Some(2);
        });
        assert_eq!(v, Vec::<String>::new());
    }

    #[test]
    fn parts_not_observed_are_skipped_and_the_rest_still_checked() {
        // What a server's admin API shows: the figures, the orders, the stock, a count of
        // reservations (the `seckill bench` books).
        let (full, _) = clean();
        let mut books = Books::new(full.activity);
        books.orders = full.orders.clone();
        books.stock = full.stock;
        books.reservations = Some(3);
        let at_rest = Expect {
            quiescent: true,
            ..Expect::default()
        };
        assert_eq!(violations(&books, &at_rest), Vec::<String>::new());
        books.orders[1].user_id = UserId(1);
        books.reservations = Some(5);
        let v = violations(&books, &at_rest);
        has(&v, "above the limit");
        has(&v, "3 orders for 5 reservations");
    }
}
