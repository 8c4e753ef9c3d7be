//! One run: start the cluster, open a sale, let the buyers loose, inject one fault mid-sale,
//! heal, drain the pipeline, run the reconciler, let every buyer look up every order it was
//! promised, read the database and the stock backend, and check.

use crate::checker::{self, DbView, OrderRow, PaymentRow, StockRow, Verdict};
use crate::client::{call, Reply};
use crate::cluster::{Cluster, Options};
use crate::faults::Fault;
use crate::history::{History, Outcome, Request};
use crate::load::{self, Buyer, LoadSpec, REQUEST_DEADLINE};
use seckill_core::domain::{ActivityId, OrderId, PaymentStatus};
use seckill_core::engine::{Engine, EngineConfig};
use seckill_core::invariants::{self, Expect};
use seckill_core::registry::{BackendUrls, Registry};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a run does.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The fault.
    pub fault: Fault,
    /// Seconds into the sale when it strikes.
    pub fault_at: Duration,
    /// How long it lasts.
    pub hold: Duration,
    /// How long the buyers buy.
    pub sale: Duration,
    /// Units for sale.
    pub total: u32,
    /// Per-user limit.
    pub limit: u32,
    /// Registered buyers.
    pub users: usize,
    /// Concurrent clients.
    pub concurrency: usize,
    /// The seed of the load.
    pub seed: u64,
}

/// A run's result: a row of the table.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The fault's name.
    pub fault: String,
    /// The checker's verdict.
    pub verdict: Verdict,
    /// What the engine's own invariant checker found (the same function the test suites use).
    pub core: Vec<String>,
    /// From the fault's end to the next acknowledged buy, if there was one.
    pub recovered_ms: Option<u64>,
    /// Where the logs are (kept when the run failed).
    pub dir: String,
}

impl RunResult {
    /// No violation from either checker.
    pub fn ok(&self) -> bool {
        self.verdict.ok() && self.core.is_empty()
    }
}

async fn admin_call(
    api: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Reply, String> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let r = call(
            api,
            method,
            path,
            token,
            &[],
            body.as_ref(),
            REQUEST_DEADLINE,
        )
        .await;
        match r {
            Ok(r) if r.status < 300 => return Ok(r),
            Ok(r) if r.status < 500 && r.code() != 3010 => {
                return Err(format!("{method} {path}: {} {}", r.status, r.body))
            }
            other if Instant::now() > until => {
                return Err(format!("{method} {path}: {other:?}"));
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

fn id_of(r: &Reply, field: &str) -> Result<String, String> {
    r.data()[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no {field} in {}", r.body))
}

/// Opens the sale: an admin, a product, an activity (live now), warmed up; and the buyers.
async fn open_sale(
    api: [SocketAddr; 2],
    spec: &RunSpec,
) -> Result<(String, String, Vec<Buyer>), String> {
    let login = admin_call(
        api[0],
        None,
        "POST",
        "/api/v1/user/login",
        Some(json!({"username": "admin", "password": "chaos-admin"})),
    )
    .await?;
    let admin = id_of(&login, "token")?;
    let p = admin_call(
        api[0],
        Some(&admin),
        "POST",
        "/api/v1/admin/products",
        Some(json!({"name": "chaos concert", "list_price": 1000})),
    )
    .await?;
    let now = chrono::Utc::now();
    let a = admin_call(
        api[1],
        Some(&admin),
        "POST",
        "/api/v1/admin/seckill/activities",
        Some(
            json!({"product_id": id_of(&p, "id")?, "title": "chaos sale", "price": 900,
            "total_stock": spec.total, "per_user_limit": spec.limit,
            "starts_at": now - chrono::Duration::minutes(1),
            "ends_at": now + chrono::Duration::hours(2)}),
        ),
    )
    .await?;
    let activity = id_of(&a, "id")?;
    admin_call(
        api[0],
        Some(&admin),
        "POST",
        &format!("/api/v1/admin/seckill/warmup/{activity}"),
        None,
    )
    .await?;
    // Registered and logged in eight at a time (password hashing is slow on purpose).
    let mut buyers = Vec::with_capacity(spec.users);
    for chunk in (0..spec.users).collect::<Vec<_>>().chunks(8) {
        let joins: Vec<_> = chunk
            .iter()
            .map(|&i| {
                tokio::spawn(async move {
                    let creds =
                        json!({"username": format!("buyer{i}"), "password": "correct-horse"});
                    admin_call(
                        api[i % 2],
                        None,
                        "POST",
                        "/api/v1/user/register",
                        Some(creds.clone()),
                    )
                    .await?;
                    let login = admin_call(
                        api[(i + 1) % 2],
                        None,
                        "POST",
                        "/api/v1/user/login",
                        Some(creds),
                    )
                    .await?;
                    Ok::<_, String>(Buyer {
                        id: login.data()["user"]["id"]
                            .as_str()
                            .ok_or("no user id in the login answer")?
                            .to_string(),
                        token: id_of(&login, "token")?,
                    })
                })
            })
            .collect();
        for j in joins {
            buyers.push(j.await.map_err(|e| e.to_string())??);
        }
    }
    Ok((admin, activity, buyers))
}

/// Waits until the pipeline is at rest (nothing held, the outbox empty) and the reconciler finds
/// the activity consistent, twice in a row, or `patience` runs out.
async fn settle(api: SocketAddr, admin: &str, activity: &str, patience: Duration) -> Value {
    let until = Instant::now() + patience;
    let mut streak = 0;
    loop {
        let r = call(
            api,
            "POST",
            &format!("/api/v1/admin/seckill/activities/{activity}/reconcile"),
            Some(admin),
            &[],
            None,
            REQUEST_DEADLINE,
        )
        .await;
        let report = r.as_ref().map(|r| r.data().clone()).unwrap_or(Value::Null);
        let held = report["snapshot"]["held"].as_u64().unwrap_or(1);
        let ready = call(api, "GET", "/ready", None, &[], None, REQUEST_DEADLINE).await;
        let outbox = ready
            .map(|r| r.data()["outbox_lag"].as_u64().unwrap_or(1))
            .unwrap_or(1);
        if report["consistent"] == true && held == 0 && outbox == 0 {
            streak += 1;
        } else {
            streak = 0;
        }
        if streak >= 2 || Instant::now() > until {
            return report;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Reads what the run left, straight from PostgreSQL and Redis (not through the proxies).
async fn read_back(
    c: &Cluster,
    activity: &str,
    acknowledged: &BTreeSet<String>,
) -> Result<(DbView, Vec<String>), String> {
    let mut registry = Registry::with_memory();
    seckill_store::register(&mut registry);
    let urls = BackendUrls {
        stock: c.redis_url(),
        database: format!("{}?migrate=false", c.database_url()),
        ..BackendUrls::default()
    };
    let clock: Arc<dyn seckill_core::Clock> = Arc::new(seckill_core::SystemClock);
    let provider = Arc::new(seckill_core::memory::MockProvider::new(b"chaos".to_vec()));
    let backends = registry
        .build(&urls, clock, provider)
        .await
        .map_err(|e| format!("reading back: {e}"))?;
    let engine = Engine::new(backends, EngineConfig::default());
    let b = engine.backends();
    let id = ActivityId(activity.parse().map_err(|_| "bad activity id")?);
    let act = b
        .catalog
        .activity(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the activity is gone")?;
    let orders = b
        .orders
        .activity_orders(id)
        .await
        .map_err(|e| e.to_string())?;
    let mine: BTreeSet<OrderId> = orders.iter().map(|o| o.id).collect();
    let mut payments = Vec::new();
    for status in [
        PaymentStatus::Pending,
        PaymentStatus::Succeeded,
        PaymentStatus::Failed,
        PaymentStatus::RefundDue,
        PaymentStatus::Refunded,
    ] {
        let mut after = None;
        loop {
            let page = b
                .payments
                .payments_in(status, after, 500)
                .await
                .map_err(|e| e.to_string())?;
            after = page.last().map(|p| p.id);
            for p in &page {
                if mine.contains(&p.order_id) {
                    payments.push(PaymentRow {
                        id: p.id.to_string(),
                        order: p.order_id.to_string(),
                        status: serde_json::to_value(p.status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                    });
                }
            }
            if page.len() < 500 {
                break;
            }
        }
    }
    let mut voided = BTreeSet::new();
    for o in acknowledged {
        let oid = OrderId(o.parse().map_err(|_| "bad order id")?);
        if b.orders.is_voided(oid).await.map_err(|e| e.to_string())? {
            voided.insert(o.clone());
        }
    }
    let stock = b
        .stock
        .snapshot(id)
        .await
        .map_err(|e| e.to_string())?
        .map(|s| StockRow {
            total: s.total,
            available: s.available,
            held: s.held,
            sold: s.sold,
        });
    let view = DbView {
        total: act.total_stock,
        db_sold: act.sold,
        per_user_limit: act.per_user_limit,
        orders: orders
            .iter()
            .map(|o| OrderRow {
                id: o.id.to_string(),
                hold_id: o.hold_id.to_string(),
                user: o.user_id.to_string(),
                quantity: o.quantity,
                status: o.status.to_string(),
            })
            .collect(),
        payments,
        voided,
        stock,
    };
    // The engine's own checker, the one every test suite uses.
    let expect = Expect {
        reserved: acknowledged
            .iter()
            .filter_map(|o| o.parse().ok().map(OrderId))
            .collect(),
        quiescent: true,
        // Lost reservations its buyers were told about are the chaos checker's to count (the
        // "lost (told)" column) against the documented window.
        told_lost_allowed: true,
        ..Expect::default()
    };
    let core = invariants::check(&engine, id, &expect)
        .await
        .map_err(|e| e.to_string())?;
    Ok((view, core))
}

/// Runs one fault against one fresh cluster.
pub async fn run(opts: Options, spec: RunSpec) -> Result<RunResult, String> {
    let payment_timeout = Duration::from_secs(opts.payment_timeout_secs);
    let (persistence, stock_ack) = (opts.persistence, opts.stock_ack.clone());
    let t0 = Instant::now();
    let phase = |what: &str| {
        eprintln!(
            "  [{:>5.1} s] {} {what}",
            t0.elapsed().as_secs_f64(),
            spec.fault.name()
        )
    };
    let mut c = Cluster::start(opts).await?;
    let api = c.api();
    phase("cluster up");
    let (admin, activity, buyers) = open_sale(api, &spec).await?;
    phase("sale open");
    let buyers = Arc::new(buyers);
    let history = Arc::new(History::new());
    let load = tokio::spawn(load::run(
        history.clone(),
        api,
        activity.clone(),
        buyers.clone(),
        LoadSpec {
            concurrency: spec.concurrency,
            duration: spec.sale,
            max_quantity: spec.limit + 1,
            pay_share: 0.4,
            cancel_share: 0.1,
            think: Duration::from_millis(20),
            seed: spec.seed,
        },
    ));
    if spec.fault.needs_snapshot() {
        tokio::time::sleep(spec.fault_at.saturating_sub(Duration::from_secs(3))).await;
        c.snapshot_redis()?;
        tokio::time::sleep(Duration::from_secs(3)).await;
    } else {
        tokio::time::sleep(spec.fault_at).await;
    }
    spec.fault.apply(&mut c, spec.hold).await?;
    let healed_ms = history.now_ms();
    let promised = load.await.map_err(|e| format!("load: {e}"))?;
    let sale_over = Instant::now();
    phase("sale over");
    c.heal().await?;
    settle(api[0], &admin, &activity, Duration::from_secs(90)).await;
    phase("settled");
    // Every promised order is looked up until it is written or declared lost; a lost one is
    // declared at its payment deadline, so wait that long at most (plus a margin).
    load::look_up(
        &history,
        api,
        &buyers,
        &promised,
        payment_timeout + Duration::from_secs(30),
    )
    .await;
    phase("orders looked up");
    // At rest means no order still waiting for its deadline: the last ones bought time out now
    // (a read of orders and stock racing a timeout would see half of it).
    let rest_at = sale_over + payment_timeout + Duration::from_secs(3);
    tokio::time::sleep(rest_at.saturating_duration_since(Instant::now())).await;
    // Lost holds' late deliveries and timeouts meanwhile: settle again before reading.
    settle(api[0], &admin, &activity, Duration::from_secs(60)).await;
    phase("settled again");
    let ops = history.ops();
    let acknowledged: BTreeSet<String> = ops
        .iter()
        .filter_map(|o| match (&o.request, &o.outcome) {
            (Request::Buy { .. }, Outcome::Ok { value }) => Some(value.clone()),
            _ => None,
        })
        .collect();
    let (view, core) = read_back(&c, &activity, &acknowledged).await?;
    let mut verdict = checker::check(&ops, &view);
    if verdict.summary.lost > 0 && !spec.fault.may_lose(persistence, &stock_ack) {
        verdict.violations.push(checker::Violation {
            kind: checker::Kind::LostOutsideWindow,
            detail: format!(
                "{} acknowledged reservations lost under {}, whose loss window is empty",
                verdict.summary.lost,
                spec.fault.name()
            ),
        });
        verdict.summary.violations = verdict.violations.len();
    }
    // Recovered: the first buy after the fault that got a business answer (a reservation or a
    // refusal such as sold out), not "not warmed up", "busy" or an outage.
    let recovered_ms = ops
        .iter()
        .filter(|o| o.at_ms >= healed_ms && matches!(o.request, Request::Buy { .. }))
        .filter(|o| match o.outcome {
            Outcome::Ok { .. } => true,
            Outcome::Fail { code } => ![3008, 3010, 9001, 9002].contains(&code),
            Outcome::Unknown { .. } => false,
        })
        .map(|o| (o.at_ms + o.took_ms).saturating_sub(healed_ms))
        .min();
    let ok = verdict.ok() && core.is_empty();
    let dir = c.dir().display().to_string();
    if !ok {
        let _ = std::fs::write(c.dir().join("history.jsonl"), history.to_json_lines());
        let _ = std::fs::write(
            c.dir().join("view.json"),
            serde_json::to_string_pretty(&view).unwrap_or_default(),
        );
    }
    c.stop_keeping(!ok).await;
    Ok(RunResult {
        fault: spec.fault.name(),
        verdict,
        core,
        recovered_ms,
        dir,
    })
}
