//! Wiring: config → backends (by URL) → engine → roles → HTTP, and graceful shutdown.

use crate::auth::Tokens;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::routes::app;
use crate::service::users::create_user;
use crate::state::AppState;
use seckill_core::domain::ids::MAX_WORKER_ID;
use seckill_core::domain::Role as UserRole;
use seckill_core::engine::{Engine, EngineConfig, Pace, Role, Runner};
use seckill_core::rate_limit::Quota;
use seckill_core::registry::Registry;
use seckill_core::worker_id::{lease_worker_id, WorkerLease};
use seckill_core::{Clock, SystemClock};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A built server, ready to serve.
#[derive(Debug)]
pub struct Server {
    /// Shared state.
    pub state: AppState,
    /// The roles this process plays.
    pub roles: Vec<Role>,
    /// The configuration it was built from.
    pub config: Config,
    /// The leased snowflake worker id, unless the config fixed one.
    worker_lease: Option<WorkerLease>,
}

fn random_secret() -> String {
    format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    )
}

/// Builds the backends named by the config, the engine and the HTTP state.
pub async fn build(config: Config) -> anyhow_like::Result<Server> {
    build_from(config, None).await
}

/// [`build`], for a configuration loaded from `file`: the file is watched (and re-read on
/// SIGHUP) for its reloadable keys while the server runs.
pub async fn build_from(
    config: Config,
    file: Option<std::path::PathBuf>,
) -> anyhow_like::Result<Server> {
    crate::live::check(&config)?;
    let roles = Role::parse_list(&config.roles)?;
    let overload = Arc::new(crate::overload::Overload::new(&config.http)?);
    let payment = crate::providers::build(&config.payment, random_secret)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut registry = Registry::with_memory();
    seckill_store::register(&mut registry);
    seckill_broker::register(&mut registry);
    let backends = registry
        .build(&config.backends, clock, payment.providers)
        .await?;
    let (mut backends, breakers) =
        seckill_core::breaker::guard_backends(backends, &config.breakers)?;
    // Token checks from memory, kept current by the session store's revocation feed (a buy
    // then waits for no session round trip).
    backends.sessions = seckill_core::session::RevocationCache::wrap(
        backends.sessions.clone(),
        backends.clock.clone(),
    )
    .await;
    // With spans exported, a buy's trace crosses the outbox, the broker and the order; without,
    // the engine makes no span for it.
    if config.telemetry.enabled() {
        backends.tracing =
            seckill_core::trace::Tracing::new(Arc::new(crate::telemetry::OtelPropagator));
    }
    let s = &config.sale;
    let (worker_id, worker_lease) = match s.worker_id {
        Some(id) if id > MAX_WORKER_ID => {
            return Err(format!("sale.worker_id {id} is above {MAX_WORKER_ID}").into())
        }
        Some(id) => (id, None),
        None => {
            let lease = lease_worker_id(backends.lock.clone(), WORKER_LEASE_TTL).await?;
            tracing::info!(worker_id = lease.id, "leased a snowflake worker id");
            (lease.id, Some(lease))
        }
    };
    // Unset: a random key when the system of record is in memory (one process, nothing kept:
    // no other hash to meet); otherwise none, and real-name sessions are refused, since each
    // process (and each restart) would hash one document differently.
    let document_key = match &s.document_key {
        Some(k) => Some(
            seckill_core::domain::DocumentKey::new(k.expose())
                .map_err(|e| format!("sale.document_key: {e}"))?,
        ),
        None if config.backends.database.starts_with("memory") => {
            Some(seckill_core::domain::DocumentKey::random())
        }
        None => {
            if !roles.is_empty() {
                tracing::warn!(
                    "sale.document_key is not set: real-name sessions are refused until it is \
                     (one key for the whole deployment)"
                );
            }
            None
        }
    };
    let engine = Engine::new(
        backends,
        EngineConfig {
            payment_timeout: Duration::from_secs(s.payment_timeout_secs),
            buy_quota: (s.buy_rate_per_sec > 0)
                .then(|| Quota::per_second(s.buy_rate_per_sec, s.buy_burst.max(1))),
            batch_size: s.batch_size.max(1),
            worker_id,
            document_key,
            ..EngineConfig::default()
        },
    );
    if config.auth.jwt_secret.is_none() && !roles.is_empty() {
        tracing::warn!(
            "auth.jwt_secret is not set: using a random key; tokens die with this process"
        );
    }
    let secret = config
        .auth
        .jwt_secret
        .as_ref()
        .map_or_else(random_secret, |s| s.expose().to_string());
    engine
        .controls()
        .set_paused(config.sale.paused_activities.iter().copied());
    let live = Arc::new(crate::live::Live::new(&config, file));
    let metrics = Arc::new(Metrics::new(
        &engine,
        &config.roles,
        &overload,
        &breakers,
        &live,
    ));
    let state = AppState {
        engine,
        tokens: Arc::new(Tokens::new(
            secret.as_bytes(),
            &config.auth.issuer,
            &config.auth.audience,
            config.auth.token_ttl_secs,
        )),
        mock: payment.mock,
        metrics,
        notifier: Arc::new(seckill_core::LogNotifier),
        live,
        overload,
        breakers,
    };
    Ok(Server {
        state,
        roles,
        config,
        worker_lease,
    })
}

const WORKER_LEASE_TTL: Duration = Duration::from_secs(30);

/// Renews the worker-id lease until `stop`; if it is lost, the process stops: another process
/// may be generating the same ids now.
async fn keep_worker_lease(lease: WorkerLease, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(lease.ttl / 3) => {}
            _ = stop.changed() => break,
        }
        match lease.renew().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(
                    worker_id = lease.id,
                    "lost the snowflake worker-id lease; stopping to never issue a duplicate id"
                );
                std::process::exit(70);
            }
            Err(e) => tracing::warn!(error = %e, "worker-id lease renewal failed; retrying"),
        }
    }
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "could not release the worker-id lease");
    }
}

/// Tiny error plumbing for the binary: any error as a boxed message.
pub mod anyhow_like {
    /// A boxed error.
    pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;
    /// A result with a boxed error.
    pub type Result<T> = std::result::Result<T, Error>;
}

impl Server {
    /// Seeds the admin and (if configured) the demo data.
    pub async fn seed(&self) -> anyhow_like::Result<()> {
        let admin_pw = self.config.admin.password.as_ref().map(|s| s.expose());
        if self.config.demo {
            if let Some(demo) = crate::demo::seed(&self.state, admin_pw)
                .await
                .map_err(|e| e.message)?
            {
                tracing::info!(
                    activity = %demo.activity, product = %demo.product,
                    admin = crate::demo::DEMO_ADMIN,
                    "demo seeded: a live activity of 100 units (limit 2 per buyer); see README"
                );
                if admin_pw.is_none() {
                    tracing::warn!(
                        "demo admin '{}' has the documented password '{}': for demos only",
                        crate::demo::DEMO_ADMIN,
                        crate::demo::DEMO_ADMIN_PASSWORD
                    );
                }
            }
        } else if let Some(pw) = admin_pw {
            let users = &self.state.engine.backends().users;
            if users
                .user_by_name(&self.config.admin.username)
                .await?
                .is_none()
            {
                create_user(
                    &self.state,
                    self.config.admin.username.clone(),
                    pw.to_string(),
                    None,
                    UserRole::Admin,
                )
                .await
                .map_err(|e| e.message)?;
            }
        }
        Ok(())
    }

    /// Serves HTTP until `shutdown` resolves: stops accepting, drains in-flight requests, then
    /// stops the background roles after their current step.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow_like::Result<()> {
        self.serve_with_grpc(listener, None, shutdown).await
    }

    /// [`Server::serve`], with the gRPC services on `grpc` too (when given and the process has
    /// the `api` role); both drain on `shutdown`.
    pub async fn serve_with_grpc(
        self,
        listener: tokio::net::TcpListener,
        grpc: Option<tokio::net::TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow_like::Result<()> {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        // The shared overrides before the first request (HTTP or gRPC): a process restarted while an activity
        // is paused must not sell it until its first poll.
        if let Err(e) = self.state.poll_shared().await {
            tracing::warn!(error = %e, "cannot read the shared settings at start; retrying in the background");
        }
        let grpc_task = grpc.filter(|_| self.roles.contains(&Role::Api)).map(|l| {
            let addr = l.local_addr().ok();
            tracing::info!(?addr, "gRPC listening");
            let routes = crate::grpc::Grpc::new(self.state.clone()).router();
            tokio::spawn(
                tonic::transport::Server::builder()
                    .trace_fn(|req| {
                        let parent = req
                            .headers()
                            .get(seckill_core::trace::TRACEPARENT_HEADER)
                            .and_then(|v| v.to_str().ok());
                        let span = crate::telemetry::request_span(req.uri().path(), parent);
                        crate::telemetry::request_trace_id(&span, || {
                            format!("{:016x}", rand::random::<u64>())
                        });
                        span
                    })
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(l),
                        stopped(stop.clone()),
                    ),
            )
        });
        let live_task = tokio::spawn(crate::live::watch(self.state.clone(), stop.clone()));
        let (stop_lease, stop_rx) = tokio::sync::watch::channel(false);
        let lease_task = self
            .worker_lease
            .map(|lease| tokio::spawn(keep_worker_lease(lease, stop_rx)));
        let runner = Runner::start(
            &self.state.engine,
            &self.roles,
            Pace {
                reconcile_every: Duration::from_secs(self.config.sale.reconcile_every_secs.max(1)),
                ..Pace::default()
            },
        );
        let router = app(self.state.clone(), self.roles.contains(&Role::Api));
        tracing::info!(
            addr = %listener.local_addr()?,
            roles = ?self.roles.iter().map(|r| r.name()).collect::<Vec<_>>(),
            "seckill-server listening"
        );
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(stopped(stop))
        .await?;
        if let Some(t) = grpc_task {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "gRPC server failed"),
                Err(e) => tracing::error!(error = %e, "gRPC server task failed"),
            }
        }
        let _ = live_task.await;
        tracing::info!("HTTP and gRPC drained; stopping background roles");
        runner.stop().await;
        let _ = stop_lease.send(true);
        if let Some(t) = lease_task {
            let _ = t.await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}
