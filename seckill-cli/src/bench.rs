//! `seckill bench`: fires a real flash sale at a server and proves it correct.
//!
//! It creates an activity of S units (limit L per buyer) and N buyers with their tokens, then
//! sends M buy requests: at concurrency C in a closed loop, or at a fixed rate R in an open
//! loop (latency measured from each request's intended start, so a slow server cannot hide its
//! queueing: no coordinated omission). It waits for the pipeline to drain, then checks the
//! server's data with the checker every test uses ([`invariants::violations`]): no oversell
//! (orders ≤ S, the database's count and the stock backend's figures), every reservation has its
//! order and one order per hold, nobody above the limit, `total = available + held + sold`,
//! nothing held at rest; and the server's reconciler agrees. The load is bounded by count and
//! time, always.

use crate::http1;
use hdrhistogram::Histogram;
use seckill_core::domain::{Activity, Order};
use seckill_core::invariants::{self, Books, Expect, SaleFigures};
use seckill_core::stock::StockSnapshot;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to fire.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Buyers (created with their tokens).
    #[arg(long, default_value_t = 200)]
    pub buyers: usize,
    /// Units in the sale.
    #[arg(long, default_value_t = 100)]
    pub stock: u32,
    /// Most units per buyer.
    #[arg(long, default_value_t = 1)]
    pub limit: u32,
    /// Buy requests to send.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Requests in flight (closed loop), or senders (open loop).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Requests per second (open loop); unset: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop sending after this many seconds, whatever is left.
    #[arg(long, default_value_t = 120)]
    pub max_seconds: u64,
    /// After a load-shed refusal (503, code 9003), wait this long before the buyer's next
    /// request, as a client that heeds `Retry-After` does (0: ask again at once, a retry storm).
    #[arg(long, default_value_t = 0)]
    pub shed_backoff_ms: u64,
    /// Also run the same load against the no-op route (`/health`) and print the ratio.
    #[arg(long)]
    pub baseline: bool,
    /// A seated sale (docs/adr/0021): a session of one price tier seated on a map of this many
    /// seats (rows of 25), each buy asking for the best available seat; `--stock` is then the
    /// seat count. The verdict adds: no seat in two live orders, each order's seats its tier's.
    #[arg(long)]
    pub seats: Option<u32>,
    /// A real-name sale: each buy names a holder, by a passport from a pool of half as many
    /// documents as buyers (so buyers clash on documents and some are refused, 3015). The
    /// verdict adds: no document in two live orders, one holder per ticket.
    #[arg(long)]
    pub real_name: bool,
    /// Admin username (to create the sale and read every order).
    #[arg(long, default_value = "admin")]
    pub admin: String,
    /// Admin password (or SECKILL_ADMIN_PASSWORD).
    #[arg(
        long,
        env = "SECKILL_ADMIN_PASSWORD",
        hide_env_values = true,
        default_value = "admin123"
    )]
    pub admin_password: String,
}

/// Why a bench could not run.
#[derive(Debug)]
pub struct BenchError(pub String);

/// One HTTP call: status and JSON body (`Null` when it had none).
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let mut req = agent.request(method, url);
    if let Some(t) = token {
        req = req.set("authorization", &format!("Bearer {t}"));
    }
    let res = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match res {
        Ok(r) => Ok((r.status(), r.into_json().unwrap_or(Value::Null))),
        Err(ureq::Error::Status(code, r)) => Ok((code, r.into_json().unwrap_or(Value::Null))),
        Err(e) => Err(e.to_string()),
    }
}

/// A call that must succeed; rate-limited answers are waited out (the server says how long),
/// and so is an activity busy with another warm-up or reconciliation (3010).
fn must(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Value, BenchError> {
    for _ in 0..600 {
        let (status, v) = call(agent, method, url, token, body.clone()).map_err(BenchError)?;
        if status == 429 {
            let ms = v["data"]["retry_after_ms"]
                .as_u64()
                .unwrap_or(100)
                .clamp(10, 5000);
            std::thread::sleep(Duration::from_millis(ms));
            continue;
        }
        // The activity is busy with the server's own reconciler or a warm-up: its lock frees
        // in moments.
        if status == 409 && v["code"] == json!(3010) {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        if status >= 300 {
            return Err(BenchError(format!("{method} {url} answered {status}: {v}")));
        }
        return Ok(v);
    }
    Err(BenchError(format!("{method} {url} stayed rate-limited")))
}

/// The outcome of one buy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Reserved,
    SoldOut,
    Limit,
    /// A document named holds a ticket already (3015).
    HolderTaken,
    RateLimited,
    /// Refused at once for load (503, code 9003).
    Shed,
    Error,
}

impl Outcome {
    fn of(status: u16, code: u64) -> Self {
        match (status, code) {
            (202, _) | (200, _) => Outcome::Reserved,
            // A tier sold out, or its seats: in the bench's one-tier session, the sale's end.
            (_, 3004 | 3005 | 3012 | 3014) => Outcome::SoldOut,
            (_, 3006) => Outcome::Limit,
            (_, 3015) => Outcome::HolderTaken,
            (429, _) | (_, 3007) => Outcome::RateLimited,
            (503, 9003) => Outcome::Shed,
            _ => Outcome::Error,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Outcome::Reserved => "reserved",
            Outcome::SoldOut => "sold_out",
            Outcome::Limit => "limit",
            Outcome::HolderTaken => "holder_taken",
            Outcome::RateLimited => "rate_limited",
            Outcome::Shed => "shed",
            Outcome::Error => "errors",
        }
    }
}

/// One load phase's measurements.
struct Phase {
    sent: usize,
    elapsed: Duration,
    latency: Histogram<u64>,
    /// The latency of each outcome alone (accepted buys and load-shed refusals apart).
    by_outcome: HashMap<Outcome, Histogram<u64>>,
    outcomes: HashMap<Outcome, usize>,
    /// Buyer index → units reserved (buy phase).
    reserved_by: HashMap<usize, u32>,
}

impl Phase {
    fn throughput(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn report(&self) -> Value {
        json!({
            "requests": self.sent,
            "seconds": self.elapsed.as_secs_f64(),
            "throughput_per_sec": self.throughput(),
            "latency_ms": quantiles(&self.latency),
            "latency_ms_by_outcome": self.by_outcome.iter().map(|(k, h)| (k.name().to_string(), quantiles(h))).collect::<serde_json::Map<_, _>>(),
            "outcomes": self.outcomes.iter().map(|(k, v)| (k.name().to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram")
}

/// A latency histogram (µs) as milliseconds at the quantiles reports show.
fn quantiles(h: &Histogram<u64>) -> Value {
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    json!({
        "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p99_9": q(0.999),
        "max": h.max() as f64 / 1000.0,
    })
}

/// Buyer `i`'s buy body: one unit, one seat of tier 1 (seated), and a holder from a pool of
/// half as many documents as buyers (real-name).
fn buy_body(a: &BenchArgs, i: usize) -> String {
    let mut body = if a.seats.is_some() {
        json!({"lines": [{"tier": 1, "quantity": 1}]})
    } else {
        json!({"quantity": 1})
    };
    if a.real_name {
        let doc = i % (a.buyers / 2).max(1);
        body["holders"] = json!([{"name": format!("Bench {doc}"), "id_type": "passport",
            "id_number": format!("B{doc:08}")}]);
    }
    body.to_string()
}

/// Sends `a.requests` requests, closed or open loop, bounded by `a.max_seconds`: buys of
/// `buy_path` by every buyer in turn, or (no path) `GET /health`. Each request is built once and
/// sent over a kept-alive connection per sender ([`http1`]).
fn fire(authority: &str, a: &BenchArgs, tokens: &[String], buy_path: Option<&str>) -> Phase {
    let buy = buy_path.is_some();
    let requests: Vec<Vec<u8>> = match buy_path {
        Some(path) => tokens
            .iter()
            .enumerate()
            .map(|(i, t)| http1::request("POST", authority, path, Some(t), Some(&buy_body(a, i))))
            .collect(),
        None => vec![http1::request("GET", authority, "/health", None, None)],
    };
    let requests = &requests;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.max_seconds);
    let progress = indicatif::ProgressBar::new(a.requests as u64);
    let results = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..a.concurrency.max(1) {
            let (next, results, progress) = (next.clone(), results.clone(), progress.clone());
            scope.spawn(move || {
                let mut conn = http1::Conn::new(authority, Duration::from_secs(30));
                let mut h = histogram();
                let mut by_outcome: HashMap<Outcome, Histogram<u64>> = HashMap::new();
                let mut outcomes: HashMap<Outcome, usize> = HashMap::new();
                let mut reserved_by: HashMap<usize, u32> = HashMap::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= a.requests || Instant::now() >= deadline {
                        break;
                    }
                    // Open loop: each request has its intended start; latency counts from it.
                    let intended = match a.rate {
                        Some(r) if r > 0.0 => {
                            let at = start + Duration::from_secs_f64(i as f64 / r);
                            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                            at
                        }
                        _ => Instant::now(),
                    };
                    let buyer = i % requests.len();
                    let outcome = match conn.send(&requests[buyer]) {
                        Ok(a) if buy => Outcome::of(a.status, a.code.unwrap_or(0)),
                        Ok(a) if a.status == 200 => Outcome::Reserved,
                        _ => Outcome::Error,
                    };
                    let took = intended.elapsed().as_micros().max(1) as u64;
                    let _ = h.record(took);
                    let _ = by_outcome
                        .entry(outcome)
                        .or_insert_with(histogram)
                        .record(took);
                    *outcomes.entry(outcome).or_default() += 1;
                    if outcome == Outcome::Reserved && buy {
                        *reserved_by.entry(buyer).or_default() += 1;
                    }
                    if outcome == Outcome::Shed && a.shed_backoff_ms > 0 {
                        std::thread::sleep(Duration::from_millis(a.shed_backoff_ms));
                    }
                    progress.inc(1);
                }
                results
                    .lock()
                    .unwrap()
                    .push((h, by_outcome, outcomes, reserved_by));
            });
        }
    });
    progress.finish_and_clear();
    let elapsed = start.elapsed();
    let mut phase = Phase {
        sent: 0,
        elapsed,
        latency: histogram(),
        by_outcome: HashMap::new(),
        outcomes: HashMap::new(),
        reserved_by: HashMap::new(),
    };
    for (h, by_outcome, outcomes, reserved_by) in results.lock().unwrap().drain(..) {
        let _ = phase.latency.add(&h);
        for (k, h) in by_outcome {
            let _ = phase.by_outcome.entry(k).or_insert_with(histogram).add(&h);
        }
        for (k, v) in outcomes {
            *phase.outcomes.entry(k).or_default() += v;
            phase.sent += v;
        }
        for (k, v) in reserved_by {
            *phase.reserved_by.entry(k).or_default() += v;
        }
    }
    phase
}

/// Runs the bench; its report (with the verdict).
pub fn run(server: &str, a: &BenchArgs) -> Result<Value, BenchError> {
    if a.buyers == 0 || a.requests == 0 || a.stock == 0 || a.limit == 0 || a.seats == Some(0) {
        return Err(BenchError(
            "buyers, requests, stock, seats and limit must be at least 1".into(),
        ));
    }
    let base = server.trim_end_matches('/').to_string();
    let authority = http1::authority(&base).map_err(BenchError)?;
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let u = |p: &str| format!("{base}{p}");
    let login = |name: &str, pw: &str| -> Result<String, BenchError> {
        let v = must(
            &agent,
            "POST",
            &u("/api/v1/user/login"),
            None,
            Some(json!({"username": name, "password": pw})),
        )?;
        Ok(v["data"]["token"].as_str().unwrap_or_default().to_string())
    };
    let admin = login(&a.admin, &a.admin_password)?;
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let product = must(
        &agent,
        "POST",
        &u("/api/v1/admin/products"),
        Some(&admin),
        Some(json!({"name": format!("bench {run_id}"), "list_price": 10000})),
    )?;
    let now = chrono::Utc::now();
    let stock = a.seats.unwrap_or(a.stock);
    let mut body = json!({"product_id": product["data"]["id"], "title": format!("bench {run_id}"),
        "price": 9900, "total_stock": stock, "per_user_limit": a.limit,
        "starts_at": now - chrono::Duration::seconds(1),
        "ends_at": now + chrono::Duration::hours(2), "real_name": a.real_name});
    if let Some(n) = a.seats {
        body["tiers"] = json!([{"id": 1, "name": "seated", "price": 9900, "stock": n}]);
        body["seats"] = json!((0..n.div_ceil(25))
            .map(
                |r| json!({"section": "A", "row": (r + 1).to_string(), "tier": 1,
                "from": 1, "to": (n - 25 * r).min(25)})
            )
            .collect::<Vec<_>>());
    }
    let activity = must(
        &agent,
        "POST",
        &u("/api/v1/admin/seckill/activities"),
        Some(&admin),
        Some(body),
    )?;
    let created: Activity = serde_json::from_value(activity["data"].clone())
        .map_err(|e| BenchError(format!("the created activity cannot be read ({e})")))?;
    let act = activity["data"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    must(
        &agent,
        "POST",
        &u(&format!("/api/v1/admin/seckill/warmup/{act}")),
        Some(&admin),
        None,
    )?;

    // Buyers, registered and logged in by `concurrency` threads.
    let names: Vec<String> = (0..a.buyers)
        .map(|i| format!("bench-{run_id}-{i}"))
        .collect();
    let tokens: Vec<String> = {
        let slots: Vec<Mutex<Option<Result<String, BenchError>>>> =
            names.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..a.concurrency.clamp(1, 16) {
                scope.spawn(|| {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(30))
                        .build();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(name) = names.get(i) else { break };
                        let creds = json!({"username": name, "password": "bench-password"});
                        let r = must(
                            &agent,
                            "POST",
                            &u("/api/v1/user/register"),
                            None,
                            Some(creds.clone()),
                        )
                        .and_then(|_| {
                            must(&agent, "POST", &u("/api/v1/user/login"), None, Some(creds))
                        })
                        .map(|v| v["data"]["token"].as_str().unwrap_or_default().to_string());
                        *slots[i].lock().unwrap() = Some(r);
                    }
                });
            }
        });
        slots
            .into_iter()
            .map(|s| {
                s.into_inner()
                    .unwrap()
                    .unwrap_or_else(|| Err(BenchError("buyer not created".into())))
            })
            .collect::<Result<_, _>>()?
    };

    let buy_path = format!("/api/v1/seckill/activities/{act}/buy");
    let buys = fire(&authority, a, &tokens, Some(&buy_path));
    let reserved = buys.outcomes.get(&Outcome::Reserved).copied().unwrap_or(0);

    // Drain: every reservation becomes an order, and no unit stays held (the pipeline at rest,
    // as far as the server shows it; the verdict checks what holds at rest).
    let orders_url = |page: u32| {
        u(&format!(
            "/api/v1/admin/orders?activity_id={act}&page_size=100&page={page}"
        ))
    };
    let stock_url = u(&format!(
        "/api/v1/products/{}/stock",
        product["data"]["id"].as_str().unwrap_or_default()
    ));
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = must(&agent, "GET", &orders_url(1), Some(&admin), None)?;
        let written = v["data"]["total"].as_u64().unwrap_or(0) >= reserved as u64;
        if (written && held(&must(&agent, "GET", &stock_url, None, None)?) == 0)
            || Instant::now() > drain_deadline
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut orders = Vec::new();
    for page in 1.. {
        let v = must(&agent, "GET", &orders_url(page), Some(&admin), None)?;
        let items = v["data"]["items"].as_array().cloned().unwrap_or_default();
        let done = items.len() < 100;
        orders.extend(items);
        if done {
            break;
        }
    }
    let stock = must(&agent, "GET", &stock_url, None, None)?;
    let figures = stock["data"]["activities"]
        .as_array()
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or(Value::Null);
    let report = must(
        &agent,
        "POST",
        &u(&format!("/api/v1/admin/seckill/activities/{act}/reconcile")),
        Some(&admin),
        None,
    )?;
    let consistent = report["data"]["consistent"] == json!(true);
    let books = books_of(&created, reserved, &orders, &report["data"])?;
    let units = books.live_units();
    let violations = verdict(&books, &report["data"]);

    let baseline = a.baseline.then(|| fire(&authority, a, &tokens, None));
    let mut out = json!({
        "activity_id": act,
        "config": {"buyers": a.buyers, "stock": stock, "limit": a.limit, "requests": a.requests,
            "concurrency": a.concurrency, "rate": a.rate, "shed_backoff_ms": a.shed_backoff_ms,
            "seats": a.seats, "real_name": a.real_name},
        "buy": buys.report(),
        "verdict": {
            "clean": violations.is_empty(),
            "violations": violations,
            "units_sold": units, "orders": orders.len(), "reserved": reserved,
            "stock": figures, "reconciler_consistent": consistent,
        },
    });
    if let Some(b) = &baseline {
        out["baseline"] = b.report();
        out["ratio_to_baseline"] = json!(buys.throughput() / b.throughput().max(1e-9));
    }
    Ok(out)
}

/// Units held in the stock backend, from `GET /api/v1/products/{id}/stock` (the bench's product
/// has one activity); 0 when not shown.
fn held(stock: &Value) -> u64 {
    stock["data"]["activities"]
        .as_array()
        .and_then(|v| v.first())
        .and_then(|a| a["held"].as_u64())
        .unwrap_or(0)
}

/// The [`Books`] of the sale from what the server shows: its figures (the activity as created:
/// units, limit, tiers, seat map, real names; the database's sold units from the reconciler's
/// report), its orders as the admin API lists them, the stock backend's figures (the
/// reconciler's snapshot, not clamped at 0) and the `reserved` buys counted. The server does
/// not show the stock backend's per-user counts, holds or outbox, nor payments (the bench pays
/// nothing): those parts stay unobserved.
fn books_of(
    created: &Activity,
    reserved: usize,
    orders: &[Value],
    reconciled: &Value,
) -> Result<Books, BenchError> {
    let sold = reconciled["db_sold"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            BenchError(format!(
                "the reconciler's report has no db_sold: {reconciled}"
            ))
        })?;
    let mut books = Books::new(SaleFigures {
        sold,
        ..SaleFigures::from(created)
    });
    books.orders = orders
        .iter()
        .map(|o| {
            serde_json::from_value::<Order>(o.clone()).map_err(|e| {
                BenchError(format!(
                    "the server listed an order the bench cannot read ({e}): {o}"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let snapshot = reconciled["snapshot"].clone();
    books.stock = serde_json::from_value::<Option<StockSnapshot>>(snapshot).map_err(|e| {
        BenchError(format!(
            "the reconciler's snapshot cannot be read ({e}): {reconciled}"
        ))
    })?;
    books.reservations = Some(reserved);
    Ok(books)
}

/// The correctness verdict: every violation of the guarantees the checker every test uses
/// ([`invariants::violations`]) finds in the sale's books, the pipeline drained; and the server's
/// own reconciler's finding, if it is not consistent.
fn verdict(books: &Books, reconciled: &Value) -> Vec<String> {
    let at_rest = Expect {
        quiescent: true,
        ..Expect::default()
    };
    let mut violations = invariants::violations(books, &at_rest);
    if reconciled["consistent"] != json!(true) {
        violations.push(format!(
            "the reconciler found issues: {}",
            reconciled["issues"]
        ));
    }
    violations
}

/// The human summary of a report.
pub fn summary(r: &Value) -> String {
    let b = &r["buy"];
    let l = &b["latency_ms"];
    let v = &r["verdict"];
    let mut s = format!(
        "buys: {} in {:.2}s = {:.0}/s\nlatency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\noutcomes: {}\nverdict: {} (units sold {}, orders {}, reserved {}, stock {})",
        b["requests"], b["seconds"].as_f64().unwrap_or(0.0), b["throughput_per_sec"].as_f64().unwrap_or(0.0),
        l["p50"].as_f64().unwrap_or(0.0), l["p90"].as_f64().unwrap_or(0.0), l["p99"].as_f64().unwrap_or(0.0),
        l["p99_9"].as_f64().unwrap_or(0.0), l["max"].as_f64().unwrap_or(0.0),
        b["outcomes"], if v["clean"] == json!(true) { "clean" } else { "VIOLATED" },
        v["units_sold"], v["orders"], v["reserved"], v["stock"],
    );
    if let Some(shed) = b["latency_ms_by_outcome"]["shed"].as_object() {
        let p99 = |v: Option<&Value>| v.and_then(Value::as_f64).unwrap_or(0.0);
        s.push_str(&format!(
            "\nload shed: {} refused, p99 {:.3} ms; accepted buys' p99 {:.2} ms",
            b["outcomes"]["shed"],
            p99(shed.get("p99")),
            p99(b["latency_ms_by_outcome"]["reserved"].get("p99")),
        ));
    }
    if let Some(vs) = v["violations"].as_array().filter(|x| !x.is_empty()) {
        for x in vs {
            s.push_str(&format!(
                "\n  violation: {}",
                x.as_str().unwrap_or_default()
            ));
        }
    }
    if let Some(ratio) = r["ratio_to_baseline"].as_f64() {
        s.push_str(&format!(
            "\nbaseline (/health): {:.0}/s; buy / baseline = {ratio:.2}",
            r["baseline"]["throughput_per_sec"].as_f64().unwrap_or(0.0)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An order as the admin API lists it: order `id` from hold `hold`, one unit.
    fn order(id: u64, hold: u64, user: u64, status: &str) -> Value {
        json!({"id": id.to_string(), "hold_id": hold.to_string(), "user_id": user.to_string(),
            "activity_id": "1", "quantity": 1, "amount": 9900, "status": status,
            "expires_at": "2030-01-01T00:15:00Z", "payment_id": null, "cancel_reason": null,
            "created_at": "2030-01-01T00:00:00Z", "updated_at": "2030-01-01T00:00:00Z"})
    }

    /// The reconciler's report: the database's sold units, the stock figures, its finding.
    fn report(db_sold: u32, figures: [i64; 4], consistent: bool) -> Value {
        let [total, available, in_holds, sold] = figures;
        let issues = if consistent {
            json!([])
        } else {
            json!([{"kind": "sold_mismatch"}])
        };
        json!({"db_sold": db_sold,
            "snapshot": {"total": total, "available": available, "held": in_holds, "sold": sold},
            "issues": issues, "consistent": consistent})
    }

    /// A sale of `stock` units, `limit` per buyer, as the server answers its creation.
    fn sale(stock: u32, limit: u32) -> Activity {
        serde_json::from_value(json!({"id": "1", "product_id": "1", "title": "bench",
            "price": 9900, "total_stock": stock, "sold": 0, "per_user_limit": limit,
            "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T02:00:00Z",
            "cancelled": false, "created_at": "2030-01-01T00:00:00Z"}))
        .unwrap()
    }

    /// Units sold and the verdict of a sale of `stock` units, `limit` per buyer.
    fn judged(
        stock: u32,
        limit: u32,
        reserved: usize,
        orders: &[Value],
        reconciled: &Value,
    ) -> (u64, Vec<String>) {
        let books = books_of(&sale(stock, limit), reserved, orders, reconciled).expect("books");
        (books.live_units(), verdict(&books, reconciled))
    }

    #[test]
    fn a_clean_sale_has_no_violation() {
        let orders = [
            order(1, 1, 1, "paid"),
            order(2, 2, 2, "pending_payment"),
            order(3, 3, 3, "cancelled"),
        ];
        let r = report(2, [2, 0, 0, 2], true);
        assert_eq!(judged(2, 1, 3, &orders, &r), (2, Vec::<String>::new()));
    }

    #[test]
    fn the_verdict_is_the_checkers() {
        let has =
            |v: &[String], what: &str| assert!(v.iter().any(|x| x.contains(what)), "{what}: {v:?}");
        // Oversold: three units of a stock of two (the database's count says so too).
        let three = [
            order(1, 1, 1, "paid"),
            order(2, 2, 2, "paid"),
            order(3, 3, 3, "paid"),
        ];
        has(
            &judged(2, 5, 3, &three, &report(3, [2, -1, 0, 3], true)).1,
            "oversold in the database",
        );
        // A reservation without its order (lost), and two orders for one hold (duplicated).
        let one = [order(1, 1, 1, "paid")];
        has(
            &judged(5, 5, 2, &one, &report(1, [5, 4, 0, 1], true)).1,
            "1 orders for 2 reservations",
        );
        let dup = [order(1, 1, 1, "paid"), order(2, 1, 1, "paid")];
        has(
            &judged(5, 5, 1, &dup, &report(2, [5, 3, 0, 2], true)).1,
            "two orders for hold 1",
        );
        // Above the per-user limit.
        let twice = [order(1, 1, 1, "paid"), order(2, 2, 1, "paid")];
        has(
            &judged(5, 1, 2, &twice, &report(2, [5, 3, 0, 2], true)).1,
            "above the limit",
        );
        // Unbalanced stock, units held at rest, and a reconciler that disagrees.
        let v = judged(5, 5, 1, &one, &report(1, [5, 5, 0, 1], false)).1;
        has(&v, "stock does not balance");
        has(&v, "the reconciler found issues");
        has(
            &judged(5, 5, 1, &one, &report(1, [5, 3, 1, 1], true)).1,
            "1 units still held at rest",
        );
    }

    #[test]
    fn unreadable_server_data_is_an_error_not_a_verdict() {
        let r = report(0, [1, 1, 0, 0], true);
        assert!(books_of(&sale(1, 1), 0, &[json!({"id": "x"})], &r).is_err());
        assert!(books_of(&sale(1, 1), 0, &[], &json!({"consistent": true})).is_err());
    }

    /// A seated real-name sale's verdict adds the seat and document rules.
    #[test]
    fn a_seated_real_name_verdict_catches_a_seat_or_a_document_twice() {
        let mut a = sale(4, 1);
        a.tiers =
            serde_json::from_value(json!([{"id": 1, "name": "seated", "price": 9900, "stock": 4}]))
                .unwrap();
        a.seats = serde_json::from_value(
            json!([{"section": "A", "row": "1", "tier": 1, "from": 1, "to": 4}]),
        )
        .unwrap();
        a.real_name = true;
        let seated = |id: u64, seat: &str, doc: &str| {
            let mut o = order(id, id, id, "paid");
            o["lines"] = json!([{"tier": 1, "quantity": 1, "seats": [seat]}]);
            o["holders"] = json!([{"name": "B", "id_type": "passport", "id_masked": "B0****01",
                "id_hash": doc}]);
            o
        };
        let r = report(2, [4, 2, 0, 2], true);
        let judge = |orders: &[Value]| {
            let books = books_of(&a, 2, orders, &r).expect("books");
            verdict(&books, &r)
        };
        assert_eq!(
            judge(&[seated(1, "A-1-1", "d1"), seated(2, "A-1-2", "d2")]),
            Vec::<String>::new()
        );
        let v = judge(&[seated(1, "A-1-1", "d1"), seated(2, "A-1-1", "d2")]);
        assert!(v.iter().any(|x| x.contains("sold twice")), "{v:?}");
        let v = judge(&[seated(1, "A-1-1", "d1"), seated(2, "A-1-2", "d1")]);
        assert!(v.iter().any(|x| x.contains("holds two tickets")), "{v:?}");
    }
}
