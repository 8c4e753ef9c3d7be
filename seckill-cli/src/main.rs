//! `seckill`: the command line of seckill-rs.
//!
//! Talks to a running `seckill-server` over its HTTP API. Every command prints a human summary,
//! or the API's JSON with `--json`. Exit codes scripts can rely on: 0 success, 1 the API
//! refused (4xx), 2 bad usage, 3 server unreachable or failing (5xx), 4 a reconciliation found
//! inconsistencies.

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
    /// Log in and print a token (use it as SECKILL_TOKEN).
    Login {
        /// Username.
        username: String,
        /// Password (or SECKILL_PASSWORD).
        #[arg(long, env = "SECKILL_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// List activities.
    Activities,
    /// Live status of an activity.
    Status {
        /// Activity id.
        id: String,
    },
    /// Apply the database migrations (embedded in this binary) to a PostgreSQL database.
    Migrate {
        /// The database (e.g. postgres://user@host/db); defaults to the server's setting.
        #[arg(long, env = "SECKILL_BACKENDS__DATABASE", hide_env_values = true)]
        database: String,
    },
    /// Check an activity's stock against the database (admin); `--repair` fixes leftovers.
    Reconcile {
        /// Activity id.
        id: String,
        /// Repair what is found.
        #[arg(long)]
        repair: bool,
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
        Cmd::Login { username, password } => c.call(
            "POST",
            "/api/v1/user/login",
            Some(json!({ "username": username, "password": password })),
        ),
        Cmd::Migrate { database } => migrate(database),
        Cmd::Activities => c.call("GET", "/api/v1/seckill/activities?page_size=100", None),
        Cmd::Status { id } => c.call(
            "GET",
            &format!("/api/v1/seckill/activities/{id}/status"),
            None,
        ),
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

fn summary(cmd: &Cmd, v: &Value) -> String {
    let d = &v["data"];
    match cmd {
        Cmd::Health => format!("ready: {} ({})", d["ready"], d["checks"]),
        Cmd::Migrate { .. } => format!("migrated {}: applied {}", d["database"], d["applied"]),
        Cmd::Login { .. } => d["token"].as_str().unwrap_or_default().to_string(),
        Cmd::Activities => d["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|a| {
                        format!(
                            "{}  {:<9} {:>6}/{:<6} {}",
                            a["id"].as_str().unwrap_or("?"),
                            a["status"].as_str().unwrap_or("?"),
                            a["available"],
                            a["total_stock"],
                            a["title"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default(),
        Cmd::Status { .. } => format!("{} available={}", d["status"], d["available"]),
        Cmd::Reconcile { .. } => format!(
            "consistent={} issues={} repaired={} stock={}",
            d["consistent"],
            d["issues"].as_array().map_or(0, Vec::len),
            d["repaired"],
            d["snapshot"]
        ),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(v) => {
            if cli.json {
                println!("{v}");
            } else {
                println!("{}", summary(&cli.cmd, &v));
            }
            ExitCode::SUCCESS
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
