//! `seckill-server`: parse arguments, load config, build, serve.

use clap::Parser;
use seckill_core::engine::Role;
use seckill_server::app::{build_from, shutdown_signal};
use seckill_server::config::Config;
use std::path::PathBuf;

/// The seckill-rs flash-sale server. With no arguments: every role in one process, every
/// backend in memory, a demo sale seeded, HTTP on 127.0.0.1:8080.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file (defaults < file < SECKILL_* environment).
    #[arg(long, env = "SECKILL_CONFIG")]
    config: Option<PathBuf>,
    /// Roles to run: comma-separated from api, relay, order-worker, timeout-worker,
    /// reconciler; or all.
    #[arg(long)]
    roles: Option<String>,
    /// Listen address (overrides the config).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// gRPC listen address (overrides the config).
    #[arg(long)]
    grpc_listen: Option<std::net::SocketAddr>,
    /// Do not seed the demo product, activity and admin.
    #[arg(long)]
    no_demo: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut cfg = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("seckill-server: invalid configuration: {e}");
            std::process::exit(2);
        }
    };
    if let Some(r) = args.roles {
        cfg.roles = r;
    }
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(l) = args.grpc_listen {
        cfg.grpc_listen = Some(l);
    }
    if args.no_demo {
        cfg.demo = false;
    }
    let telemetry = match seckill_server::telemetry::Telemetry::new(&cfg.telemetry) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("seckill-server: invalid configuration: {e}");
            std::process::exit(2);
        }
    };
    let (subscriber, log_reload) = telemetry.reloadable_subscriber(&cfg.log);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("seckill-server: a tracing subscriber is already installed");
    }
    let (listen, grpc_listen) = (cfg.listen, cfg.grpc_listen);
    let server = match build_from(cfg, args.config.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("seckill-server: {e}");
            std::process::exit(2);
        }
    };
    server.state.live.set_log_reload(log_reload);
    if let Err(e) = server.seed().await {
        eprintln!("seckill-server: seeding failed: {e}");
        std::process::exit(1);
    }
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("seckill-server: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    let grpc = match grpc_listen.filter(|_| server.roles.contains(&Role::Api)) {
        None => None,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("seckill-server: cannot listen on {addr} (gRPC): {e}");
                std::process::exit(1);
            }
        },
    };
    let served = server
        .serve_with_grpc(listener, grpc, shutdown_signal())
        .await;
    // The spans of the last requests and the drain go out before the process ends.
    telemetry.shutdown();
    if let Err(e) = served {
        eprintln!("seckill-server: {e}");
        std::process::exit(1);
    }
}
