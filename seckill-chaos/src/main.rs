//! `seckill-chaos`: runs faults against a live sale of the real binaries and prints, for each,
//! the acknowledged buys, orders, lost (told) and the violations. Exits 1 on any violation.

use clap::{Parser, Subcommand};
use seckill_chaos::cluster::{Broker, Options, Persistence};
use seckill_chaos::faults::{self, Fault};
use seckill_chaos::run::{run, RunResult, RunSpec};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    name = "seckill-chaos",
    about = "Faults against a live sale of the real binaries"
)]
struct Cli {
    /// Ports from here to here + 200 (below 32768).
    #[arg(long, default_value_t = 21000)]
    base_port: u16,
    /// The `seckill-server` binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Redis without persistence (a restart loses everything) instead of AOF everysec.
    #[arg(long)]
    no_persistence: bool,
    /// The broker: `redis-stream` (on the run's Redis), `amqp://…` (a RabbitMQ, through a
    /// proxy) or `kafka://host:port` (a Kafka-API broker, directly).
    #[arg(long, default_value = "redis-stream")]
    broker: String,
    /// The stock backend's ack: `memory` or `replicas:1` (acknowledged once the replica has it).
    #[arg(long, default_value = "memory")]
    stock_ack: String,
    /// Seconds the buyers buy in each run.
    #[arg(long, default_value_t = 20)]
    sale_secs: u64,
    /// Seconds into the sale when the fault strikes.
    #[arg(long, default_value_t = 4)]
    fault_at_secs: u64,
    /// Seconds the fault lasts.
    #[arg(long, default_value_t = 5)]
    hold_secs: u64,
    /// The sale's payment window in seconds.
    #[arg(long, default_value_t = 15)]
    payment_timeout_secs: u64,
    /// Units for sale.
    #[arg(long, default_value_t = 2000)]
    total: u32,
    /// Per-user limit.
    #[arg(long, default_value_t = 3)]
    limit: u32,
    /// Registered buyers.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seed of the load and of the long form's schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep every run's directory (logs, data).
    #[arg(long)]
    keep: bool,
    /// Negative controls: repairs a server built with `--features sabotage` leaves out
    /// (`no-heal`, `no-void`); the checker must then fail under the matching fault.
    #[arg(long)]
    sabotage: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The CI set: one fault of each class.
    Short,
    /// The named faults, one run each (`seckill-chaos list` names them).
    Run {
        /// Fault names.
        faults: Vec<String>,
    },
    /// A seeded random schedule of every fault, run after run, for this long.
    Long {
        /// Minutes.
        #[arg(long, default_value_t = 30)]
        minutes: u64,
    },
    /// Lists the faults.
    List,
}

fn row(r: &RunResult) -> String {
    let s = &r.verdict.summary;
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        r.fault,
        s.acknowledged,
        s.orders,
        s.lost,
        s.unresolved,
        s.oversold,
        s.duplicates,
        s.paid_lost,
        s.charged_twice,
        s.violations + r.core.len(),
        r.recovered_ms.map_or_else(
            || "-".to_string(),
            |ms| format!("{:.1} s", ms as f64 / 1000.0)
        ),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let list: Vec<Fault> = match &cli.cmd {
        Cmd::List => {
            for f in Fault::all() {
                println!("{}", f.name());
            }
            return ExitCode::SUCCESS;
        }
        Cmd::Short => faults::short_form(),
        Cmd::Run { faults } => match faults.iter().map(|f| Fault::parse(f)).collect() {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        },
        Cmd::Long { minutes } => {
            // About a minute and a half per run; the schedule is long enough and cut by time.
            faults::schedule(cli.seed, (*minutes as usize * 2).max(1))
        }
    };
    let deadline = match &cli.cmd {
        Cmd::Long { minutes } => Some(Instant::now() + Duration::from_secs(minutes * 60)),
        _ => None,
    };
    let server_bin = cli.server_bin.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("seckill-server")))
            .unwrap_or_else(|| PathBuf::from("seckill-server"))
    });
    println!(
        "| fault | acknowledged | orders | lost (told) | unresolved | oversold | duplicates | paid lost | charged twice | all violations | recovered in |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let broker = if cli.broker == "redis-stream" {
        Broker::RedisStream
    } else if cli.broker.starts_with("amqp://") {
        Broker::Amqp(cli.broker.clone())
    } else if let Some(b) = cli.broker.strip_prefix("kafka://") {
        Broker::Kafka(b.to_string())
    } else {
        eprintln!(
            "unknown broker {:?}; use redis-stream, amqp://… or kafka://host:port",
            cli.broker
        );
        return ExitCode::from(2);
    };
    let mut failed = false;
    for (n, fault) in list.into_iter().enumerate() {
        if deadline.is_some_and(|d| Instant::now() > d) {
            break;
        }
        let opts = Options {
            base_port: cli.base_port,
            server_bin: server_bin.clone(),
            persistence: if cli.no_persistence {
                Persistence::None
            } else {
                Persistence::Aof
            },
            payment_timeout_secs: cli.payment_timeout_secs,
            broker: broker.clone(),
            stock_ack: cli.stock_ack.clone(),
            keep: cli.keep,
            sabotage: cli.sabotage.clone(),
        };
        let spec = RunSpec {
            fault,
            fault_at: Duration::from_secs(cli.fault_at_secs),
            hold: Duration::from_secs(cli.hold_secs),
            sale: Duration::from_secs(cli.sale_secs),
            total: cli.total,
            limit: cli.limit,
            users: cli.users,
            concurrency: cli.concurrency,
            seed: cli.seed.wrapping_add(n as u64),
        };
        match run(opts, spec).await {
            Ok(r) => {
                println!("{}", row(&r));
                if !r.ok() {
                    failed = true;
                    for v in &r.verdict.violations {
                        eprintln!("  VIOLATION {:?}: {}", v.kind, v.detail);
                    }
                    for v in &r.core {
                        eprintln!("  VIOLATION (engine checker): {v}");
                    }
                    eprintln!("  history and logs kept in {}", r.dir);
                }
            }
            Err(e) => {
                failed = true;
                println!("| {} | the run could not complete: {e} |", fault.name());
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
