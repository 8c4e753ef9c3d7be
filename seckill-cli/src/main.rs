//! `seckill`: the command line of seckill-rs.
//!
//! Talks to a running `seckill-server` over its HTTP API. Every command prints a human summary,
//! or the API's JSON with `--json`. Exit codes scripts can rely on: 0 success, 1 the API
//! refused (4xx), 2 bad usage, 3 server unreachable or failing (5xx), 4 a reconciliation (or a
//! bench's verdict) found inconsistencies, 5 a bench saw requests fail other than by a defined
//! refusal.

mod bench;
mod http1;
mod plan;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "seckill", version, about = "Operate a seckill-rs server")]
struct Cli {
    /// Base URL of the server.
    #[arg(long, env = "SECKILL_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Bearer token (see `seckill login`).
    #[arg(long, env = "SECKILL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the API's JSON instead of a summary.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Is the server alive and are its backends reachable?
    Health,
    /// Is the server alive (`GET /health` only: the container image's health check)?
    Alive,
    /// Log in and print a token (use it as SECKILL_TOKEN).
    Login {
        /// Username.
        username: String,
        /// Password (or SECKILL_PASSWORD).
        #[arg(long, env = "SECKILL_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Products: list, show, create, update (create and update need an admin token).
    #[command(subcommand)]
    Products(ProductCmd),
    /// Sale activities: list, show, create, update, warm up, live status.
    #[command(subcommand)]
    Activities(ActivityCmd),
    /// Events (concerts, matches) and their sessions: list; show with live availability per
    /// price tier; create an event with its product and sessions (tiers, quotas, seat maps,
    /// real names) from a JSON or TOML file (admin).
    #[command(subcommand)]
    Events(EventCmd),
    /// Orders: yours (or, with --all and an admin token, everyone's); show; cancel.
    #[command(subcommand)]
    Orders(OrderCmd),
    /// Apply the database migrations (embedded in this binary) to a PostgreSQL database.
    Migrate {
        /// The database (e.g. postgres://user@host/db); defaults to the server's setting.
        #[arg(long, env = "SECKILL_BACKENDS__DATABASE", hide_env_values = true)]
        database: String,
    },
    /// Fire a flash sale at the server and check it: throughput, latency percentiles, outcomes,
    /// and the correctness verdict from the server's data (exit 4 on a violation, 5 when a
    /// request failed other than by a defined refusal). Needs the admin's password.
    Bench(bench::BenchArgs),
    /// Check an activity's stock against the database (admin); `--repair` fixes leftovers.
    /// Exit code 4 when it is not consistent.
    Reconcile {
        /// Activity id.
        id: String,
        /// Repair what is found.
        #[arg(long)]
        repair: bool,
    },
    /// The live configuration (admin): show it, or change reloadable keys on every server
    /// process at once.
    #[command(subcommand)]
    Config(ConfigCmd),
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Every reloadable key's value now, and the shared overrides.
    Show,
    /// Set reloadable keys: `sale.paused_activities=["42"]`, `http.buy_concurrency=128`,
    /// `log.level=debug`; a value is JSON when it parses as JSON, else a string; `key=null`
    /// returns the key to the config file's value.
    Set {
        /// `key=value` pairs.
        #[arg(required = true)]
        pairs: Vec<String>,
    },
}

/// The merge patch of `key=value` pairs (dotted keys nest).
fn config_patch(pairs: &[String]) -> Result<Value, String> {
    let mut patch = json!({});
    for pair in pairs {
        let (key, raw) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?}: expected key=value"))?;
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(format!("{pair:?}: the key is empty"));
        }
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        let mut at = &mut patch;
        let parts: Vec<&str> = key.split('.').collect();
        for k in &parts[..parts.len() - 1] {
            if !at.get(*k).is_some_and(Value::is_object) {
                at[*k] = json!({});
            }
            at = &mut at[*k];
        }
        at[parts[parts.len() - 1]] = value;
    }
    Ok(patch)
}

#[derive(Debug, Subcommand)]
enum ProductCmd {
    /// Every product, newest first.
    List,
    /// One product.
    Show {
        /// Product id.
        id: String,
    },
    /// A new product (admin).
    Create {
        /// Name.
        #[arg(long)]
        name: String,
        /// List price in minor units.
        #[arg(long)]
        price: i64,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Changes a product (admin); only the fields given.
    Update {
        /// Product id.
        id: String,
        /// Name.
        #[arg(long)]
        name: Option<String>,
        /// List price in minor units.
        #[arg(long)]
        price: Option<i64>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ActivityCmd {
    /// Every activity, newest start first, with status and stock left.
    List,
    /// One activity.
    Show {
        /// Activity id.
        id: String,
    },
    /// A new activity (admin). Times are RFC 3339 (e.g. 2030-01-01T20:00:00Z).
    Create {
        /// The product sold.
        #[arg(long)]
        product: String,
        /// Title.
        #[arg(long)]
        title: String,
        /// Sale price in minor units.
        #[arg(long)]
        price: i64,
        /// Units for sale.
        #[arg(long)]
        stock: u32,
        /// Most units per buyer.
        #[arg(long, default_value_t = 1)]
        limit: u32,
        /// Start.
        #[arg(long)]
        starts: String,
        /// End.
        #[arg(long)]
        ends: String,
    },
    /// Changes an activity (admin); only the fields given. A warmed-up activity's stock follows.
    Update {
        /// Activity id.
        id: String,
        /// Title.
        #[arg(long)]
        title: Option<String>,
        /// Sale price in minor units.
        #[arg(long)]
        price: Option<i64>,
        /// Units for sale (never below what is held or sold).
        #[arg(long)]
        stock: Option<u32>,
        /// Most units per buyer.
        #[arg(long)]
        limit: Option<u32>,
        /// Start (RFC 3339).
        #[arg(long)]
        starts: Option<String>,
        /// End (RFC 3339).
        #[arg(long)]
        ends: Option<String>,
        /// Call the sale off.
        #[arg(long)]
        cancel: bool,
    },
    /// Loads the activity's stock into the stock backend (admin; idempotent, never re-sells).
    Warmup {
        /// Activity id.
        id: String,
    },
    /// Live status: total / available / held / sold, and (admin) orders by status.
    Status {
        /// Activity id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum EventCmd {
    /// Every event, newest first.
    List,
    /// One event: each session's status and what is left of each price tier.
    Show {
        /// Event id.
        id: String,
    },
    /// Creates an event, its product (unless the file names one) and its sessions from a
    /// file (`.toml`, else JSON; see the crate's README), each session warmed up unless it
    /// says `warm_up = false`. The whole file is checked by the domain's rules first: nothing
    /// is created from a file with a mistake.
    Create {
        /// The plan.
        #[arg(long)]
        file: String,
    },
}

#[derive(Debug, Subcommand)]
enum OrderCmd {
    /// Orders, newest first.
    List {
        /// Only in this status (pending_payment, paid, cancelled, refunded).
        #[arg(long)]
        status: Option<String>,
        /// Only of this activity (with --all).
        #[arg(long)]
        activity: Option<String>,
        /// Everyone's orders (admin).
        #[arg(long)]
        all: bool,
    },
    /// One of your orders.
    Show {
        /// Order id.
        id: String,
    },
    /// Cancels one of your pending orders (with --admin: anyone's, as an operator).
    Cancel {
        /// Order id.
        id: String,
        /// Cancel as an operator (admin token).
        #[arg(long)]
        admin: bool,
    },
}

enum Failure {
    Refused(Value),
    Unreachable(String),
    Inconsistent(Value),
}

struct Client {
    base: String,
    token: Option<String>,
}

impl Client {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        let url = format!("{}{}", self.base.trim_end_matches('/'), path);
        let mut req = ureq::request(method, &url);
        if let Some(t) = &self.token {
            req = req.set("authorization", &format!("Bearer {t}"));
        }
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match res {
            Ok(r) => r
                .into_json::<Value>()
                .map_err(|e| Failure::Unreachable(format!("unreadable answer: {e}"))),
            Err(ureq::Error::Status(code, r)) => {
                let v = r.into_json::<Value>().unwrap_or(json!({ "code": code }));
                if code >= 500 {
                    Err(Failure::Unreachable(format!("server error {code}: {v}")))
                } else {
                    Err(Failure::Refused(v))
                }
            }
            Err(e) => Err(Failure::Unreachable(e.to_string())),
        }
    }
}

fn migrate(url: &str) -> Result<Value, Failure> {
    use seckill_core::registry::BackendUrl;
    let url = BackendUrl::parse(url)
        .map_err(|e| Failure::Refused(json!({ "message": e.to_string(), "code": 2 })))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
    rt.block_on(async {
        let pool = seckill_store::postgres::pool(&url)
            .map_err(|e| Failure::Refused(json!({ "message": e.to_string(), "code": 2 })))?;
        let applied = seckill_store::postgres::migrate(&pool)
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        Ok(json!({ "code": 0, "data": { "applied": applied, "database": url.to_string() } }))
    })
}

/// Drops the `None` fields of a JSON object (only the fields given are sent).
fn given(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

fn run(cli: &Cli) -> Result<Value, Failure> {
    let c = Client {
        base: cli.server.clone(),
        token: cli.token.clone(),
    };
    match &cli.cmd {
        Cmd::Health => {
            c.call("GET", "/health", None)?;
            c.call("GET", "/ready", None)
        }
        Cmd::Alive => c.call("GET", "/health", None),
        Cmd::Login { username, password } => c.call(
            "POST",
            "/api/v1/user/login",
            Some(json!({ "username": username, "password": password })),
        ),
        Cmd::Migrate { database } => migrate(database),
        Cmd::Products(p) => match p {
            ProductCmd::List => c.call("GET", "/api/v1/products?page_size=100", None),
            ProductCmd::Show { id } => c.call("GET", &format!("/api/v1/products/{id}"), None),
            ProductCmd::Create {
                name,
                price,
                description,
            } => c.call(
                "POST",
                "/api/v1/admin/products",
                Some(json!({ "name": name, "list_price": price, "description": description })),
            ),
            ProductCmd::Update {
                id,
                name,
                price,
                description,
            } => c.call(
                "PUT",
                &format!("/api/v1/admin/products/{id}"),
                Some(given(
                    json!({ "name": name, "list_price": price, "description": description }),
                )),
            ),
        },
        Cmd::Activities(a) => match a {
            ActivityCmd::List => c.call("GET", "/api/v1/seckill/activities?page_size=100", None),
            ActivityCmd::Show { id } => {
                c.call("GET", &format!("/api/v1/seckill/activities/{id}"), None)
            }
            ActivityCmd::Create {
                product,
                title,
                price,
                stock,
                limit,
                starts,
                ends,
            } => c.call(
                "POST",
                "/api/v1/admin/seckill/activities",
                Some(
                    json!({ "product_id": product, "title": title, "price": price,
                    "total_stock": stock, "per_user_limit": limit,
                    "starts_at": starts, "ends_at": ends }),
                ),
            ),
            ActivityCmd::Update {
                id,
                title,
                price,
                stock,
                limit,
                starts,
                ends,
                cancel,
            } => c.call(
                "PUT",
                &format!("/api/v1/admin/seckill/activities/{id}"),
                Some(given(
                    json!({ "title": title, "price": price, "total_stock": stock,
                    "per_user_limit": limit, "starts_at": starts, "ends_at": ends,
                    "cancelled": cancel.then_some(true) }),
                )),
            ),
            ActivityCmd::Warmup { id } => {
                c.call("POST", &format!("/api/v1/admin/seckill/warmup/{id}"), None)
            }
            ActivityCmd::Status { id } => status(&c, id),
        },
        Cmd::Events(e) => match e {
            EventCmd::List => c.call("GET", "/api/v1/events?page_size=100", None),
            EventCmd::Show { id } => c.call("GET", &format!("/api/v1/events/{id}"), None),
            EventCmd::Create { file } => create_event(&c, file),
        },
        Cmd::Orders(o) => match o {
            OrderCmd::List {
                status,
                activity,
                all,
            } => {
                let mut q = vec!["page_size=100".to_string()];
                q.extend(status.as_ref().map(|s| format!("status={s}")));
                q.extend(activity.as_ref().map(|a| format!("activity_id={a}")));
                let base = if *all {
                    "/api/v1/admin/orders"
                } else {
                    "/api/v1/orders"
                };
                c.call("GET", &format!("{base}?{}", q.join("&")), None)
            }
            OrderCmd::Show { id } => c.call("GET", &format!("/api/v1/orders/{id}"), None),
            OrderCmd::Cancel { id, admin: false } => {
                c.call("POST", &format!("/api/v1/orders/{id}/cancel"), None)
            }
            OrderCmd::Cancel { id, admin: true } => c.call(
                "PUT",
                &format!("/api/v1/admin/orders/{id}/status"),
                Some(json!({ "status": "cancelled" })),
            ),
        },
        Cmd::Bench(args) => bench::run(&cli.server, args)
            .map(|report| json!({ "code": 0, "data": report }))
            .map_err(|e| Failure::Unreachable(format!("bench could not run: {}", e.0))),
        Cmd::Config(ConfigCmd::Show) => c.call("GET", "/api/v1/admin/config", None),
        Cmd::Config(ConfigCmd::Set { pairs }) => {
            let patch = config_patch(pairs)
                .map_err(|m| Failure::Refused(json!({ "message": m, "code": 2 })))?;
            c.call("PUT", "/api/v1/admin/config", Some(patch))
        }
        Cmd::Reconcile { id, repair } => {
            let v = c.call(
                "POST",
                &format!("/api/v1/admin/seckill/activities/{id}/reconcile?repair={repair}"),
                None,
            )?;
            if v["data"]["consistent"] == json!(false) {
                return Err(Failure::Inconsistent(v));
            }
            Ok(v)
        }
    }
}

/// Creates what a plan file describes, in order (product, event, sessions, warm-ups), after
/// checking all of it; the created ids, or the first refusal with what was created before it.
fn create_event(c: &Client, path: &str) -> Result<Value, Failure> {
    let refuse = |m: String| Failure::Refused(json!({ "message": m, "code": 2 }));
    let text = std::fs::read_to_string(path).map_err(|e| refuse(format!("{path}: {e}")))?;
    let p = plan::parse(path, &text).map_err(refuse)?;
    plan::check(&p).map_err(refuse)?;
    // What exists so far, named in a refusal that stops half way.
    let mut made: Vec<String> = Vec::new();
    let said = |made: &[String], f: Failure| match f {
        Failure::Refused(v) if !made.is_empty() => Failure::Refused(json!({
            "code": v["code"],
            "message": format!("{} (created before it: {})", v["message"], made.join(", ")),
        })),
        other => other,
    };
    let product = match (&p.product_id, &p.product) {
        (Some(id), _) => id.clone(),
        (None, Some(np)) => {
            let id = c.call(
                "POST",
                "/api/v1/admin/products",
                Some(json!({ "name": np.name, "list_price": np.list_price,
                    "description": np.description })),
            )?["data"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            made.push(format!("product {id}"));
            id
        }
        (None, None) => unreachable!("checked"),
    };
    let event = c
        .call(
            "POST",
            "/api/v1/admin/events",
            Some(json!({ "title": p.title, "venue": p.venue, "description": p.description })),
        )
        .map_err(|f| said(&made, f))?["data"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    made.push(format!("event {event}"));
    for s in &p.sessions {
        let (body, warm_up) = plan::session(s, &product, &event);
        let id = c
            .call("POST", "/api/v1/admin/seckill/activities", Some(body))
            .map_err(|f| said(&made, f))?["data"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        made.push(format!("session {id}"));
        if warm_up {
            c.call("POST", &format!("/api/v1/admin/seckill/warmup/{id}"), None)
                .map_err(|f| said(&made, f))?;
        }
    }
    c.call("GET", &format!("/api/v1/events/{event}"), None)
        .map(|mut v| {
            v["data"]["product_id"] = json!(product);
            v
        })
}

/// An event's sessions, each with its status and each tier's availability, one line each.
fn event_lines(d: &Value) -> String {
    let mut out = format!(
        "{}  {}{}",
        s(&d["id"]),
        s(&d["title"]),
        match d["venue"].as_str() {
            Some(v) if !v.is_empty() => format!(" @ {v}"),
            _ => String::new(),
        }
    );
    for a in d["sessions"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "
  {}  {:<9} {:>6}/{:<6} {}{}",
            s(&a["id"]),
            s(&a["status"]),
            a["available"],
            a["total_stock"],
            s(&a["title"]),
            if a["real_name"] == json!(true) {
                "  (real name)"
            } else {
                ""
            }
        ));
        for t in a["tiers"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "
      tier {:<3} {:<12} {:>10}  {:>6}/{:<6} left",
                t["id"],
                s(&t["name"]),
                t["price"],
                t["available"],
                t["stock"]
            ));
        }
    }
    out
}

/// An activity's live figures (from its product's stock report) and, with an admin token,
/// its orders by status.
fn status(c: &Client, id: &str) -> Result<Value, Failure> {
    let a = c.call("GET", &format!("/api/v1/seckill/activities/{id}"), None)?;
    let product = a["data"]["product_id"].as_str().unwrap_or_default();
    let stock = c.call("GET", &format!("/api/v1/products/{product}/stock"), None)?;
    let figures = stock["data"]["activities"]
        .as_array()
        .and_then(|all| all.iter().find(|x| x["activity_id"] == json!(id)))
        .cloned()
        .unwrap_or(Value::Null);
    let mut orders = serde_json::Map::new();
    if c.token.is_some() {
        for s in ["pending_payment", "paid", "cancelled", "refunded"] {
            let path = format!("/api/v1/admin/orders?activity_id={id}&status={s}&page_size=1");
            match c.call("GET", &path, None) {
                Ok(v) => {
                    orders.insert(s.to_string(), v["data"]["total"].clone());
                }
                Err(Failure::Refused(_)) => break, // not an admin: no order counts
                Err(e) => return Err(e),
            }
        }
    }
    Ok(json!({ "code": 0, "data": {
        "activity": a["data"],
        "stock": figures,
        "orders": if orders.is_empty() { Value::Null } else { Value::Object(orders) },
    }}))
}

fn list(items: &Value, line: impl Fn(&Value) -> String) -> String {
    items
        .as_array()
        .map(|items| items.iter().map(line).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

fn summary(cmd: &Cmd, v: &Value) -> String {
    let d = &v["data"];
    let product = |p: &Value| {
        format!(
            "{}  {:>10}  {}",
            s(&p["id"]),
            p["list_price"],
            s(&p["name"])
        )
    };
    let activity = |a: &Value| {
        format!(
            "{}  {:<9} {:>6}/{:<6} {}",
            s(&a["id"]),
            s(&a["status"]),
            a["available"],
            a["total_stock"],
            s(&a["title"])
        )
    };
    let order = |o: &Value| {
        format!(
            "{}  {:<15} x{} {:>10}  activity {}",
            s(&o["id"]),
            s(&o["status"]),
            o["quantity"],
            o["amount"],
            s(&o["activity_id"])
        )
    };
    match cmd {
        Cmd::Health => format!("ready: {} ({})", d["ready"], d["checks"]),
        Cmd::Alive => format!("alive: {}", d["status"]),
        Cmd::Migrate { .. } => format!("migrated {}: applied {}", d["database"], d["applied"]),
        Cmd::Login { .. } => s(&d["token"]).to_string(),
        Cmd::Products(ProductCmd::List) => list(&d["items"], product),
        Cmd::Products(_) => product(d),
        Cmd::Activities(ActivityCmd::List) => list(&d["items"], activity),
        Cmd::Activities(ActivityCmd::Warmup { .. }) => format!(
            "warmed up: total={} available={} held={} sold={}",
            d["total"], d["available"], d["held"], d["sold"]
        ),
        Cmd::Activities(ActivityCmd::Status { .. }) => {
            let st = &d["stock"];
            let mut out = format!(
                "{}  {}\ntotal={} available={} held={} sold={} warmed_up={}",
                s(&d["activity"]["title"]),
                s(&d["activity"]["status"]),
                st["total"],
                st["available"],
                st["held"],
                st["sold"],
                st["warmed_up"]
            );
            if let Some(o) = d["orders"].as_object() {
                let parts: Vec<String> = o.iter().map(|(k, n)| format!("{k}={n}")).collect();
                out.push_str(&format!("\norders: {}", parts.join(" ")));
            }
            out
        }
        Cmd::Activities(ActivityCmd::Create { .. } | ActivityCmd::Update { .. }) => {
            format!(
                "{}  {} stock={} limit={} {}..{}{}",
                s(&d["id"]),
                s(&d["title"]),
                d["total_stock"],
                d["per_user_limit"],
                s(&d["starts_at"]),
                s(&d["ends_at"]),
                if d["cancelled"] == json!(true) {
                    " (cancelled)"
                } else {
                    ""
                }
            )
        }
        Cmd::Activities(ActivityCmd::Show { .. }) => activity(d),
        Cmd::Events(EventCmd::List) => list(&d["items"], |e| {
            format!("{}  {}  {}", s(&e["id"]), s(&e["title"]), s(&e["venue"]))
        }),
        Cmd::Events(_) => event_lines(d),
        Cmd::Orders(OrderCmd::List { .. }) => {
            format!("{} orders\n{}", d["total"], list(&d["items"], order))
        }
        Cmd::Orders(_) => order(d),
        Cmd::Bench(_) => bench::summary(d),
        Cmd::Config(_) => {
            let mut out = format!("version {}\n", d["version"]);
            if let Some(values) = d["values"].as_object() {
                for (k, v) in values {
                    out.push_str(&format!("{k} = {v}\n"));
                }
            }
            out.push_str(&format!("overrides: {}", d["overrides"]));
            out
        }
        Cmd::Reconcile { .. } => format!(
            "consistent={} issues={} repaired={} stock={}",
            d["consistent"],
            d["issues"].as_array().map_or(0, Vec::len),
            d["repaired"],
            d["snapshot"]
        ),
    }
}

/// A bench's exit code: 4 when the verdict found a violation, 5 when a request failed other
/// than by a defined refusal.
fn bench_exit(cmd: &Cmd, report: &Value) -> Option<ExitCode> {
    if !matches!(cmd, Cmd::Bench(_)) {
        return None;
    }
    if report["verdict"]["clean"] != json!(true) {
        Some(ExitCode::from(4))
    } else if report["buy"]["outcomes"]["errors"].as_u64().unwrap_or(0) > 0 {
        Some(ExitCode::from(5))
    } else {
        None
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(v) => {
            if cli.json {
                // A bench prints its report itself (the envelope is the CLI's own).
                let shown = if matches!(cli.cmd, Cmd::Bench(_)) {
                    &v["data"]
                } else {
                    &v
                };
                println!("{shown}");
            } else {
                println!("{}", summary(&cli.cmd, &v));
            }
            bench_exit(&cli.cmd, &v["data"]).unwrap_or(ExitCode::SUCCESS)
        }
        Err(Failure::Refused(v)) => {
            eprintln!("refused: {} (code {})", v["message"], v["code"]);
            if cli.json {
                println!("{v}");
            }
            ExitCode::from(1)
        }
        Err(Failure::Unreachable(m)) => {
            eprintln!("server unreachable or failing: {m}");
            ExitCode::from(3)
        }
        Err(Failure::Inconsistent(v)) => {
            eprintln!("reconciliation found inconsistencies");
            println!(
                "{}",
                if cli.json {
                    v.to_string()
                } else {
                    summary(&cli.cmd, &v)
                }
            );
            ExitCode::from(4)
        }
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn pairs_become_a_merge_patch() {
        let p = config_patch(&[
            r#"sale.paused_activities=["42"]"#.into(),
            "http.buy_concurrency=128".into(),
            "log.level=debug".into(),
            "http.cors.allowed_origins=null".into(),
        ])
        .unwrap();
        assert_eq!(
            p,
            json!({"sale": {"paused_activities": ["42"]},
                "http": {"buy_concurrency": 128, "cors": {"allowed_origins": null}},
                "log": {"level": "debug"}})
        );
        assert!(config_patch(&["nokey".into()]).is_err());
        assert!(config_patch(&["a..b=1".into()]).is_err());
    }
}
