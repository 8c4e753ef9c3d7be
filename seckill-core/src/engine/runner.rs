//! Background roles: the loops that drive the relay, the order worker, the timeout worker and
//! the reconciler until shutdown. The server starts the ones its `--roles` name.

use super::Engine;
use crate::domain::ActivityId;
use crate::Error;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A role a process can play. Any role can run on many machines at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// HTTP (and later gRPC) API.
    Api,
    /// Outbox → broker.
    Relay,
    /// Broker → orders.
    OrderWorker,
    /// Payment deadlines.
    TimeoutWorker,
    /// Consistency checks and repairs.
    Reconciler,
}

impl Role {
    /// Every role (what `all` means).
    pub const ALL: [Role; 5] = [
        Role::Api,
        Role::Relay,
        Role::OrderWorker,
        Role::TimeoutWorker,
        Role::Reconciler,
    ];

    /// The role's name in `--roles`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Relay => "relay",
            Role::OrderWorker => "order-worker",
            Role::TimeoutWorker => "timeout-worker",
            Role::Reconciler => "reconciler",
        }
    }

    /// Parses a comma-separated list; `all` means every role.
    pub fn parse_list(s: &str) -> Result<Vec<Role>, Error> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                out.extend(Role::ALL);
            } else {
                out.push(part.parse()?);
            }
        }
        out.sort();
        out.dedup();
        if out.is_empty() {
            return Err(Error::invalid("no roles given"));
        }
        Ok(out)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Role::ALL.iter().map(|r| r.name()).collect();
                Error::invalid(format!(
                    "unknown role {s:?}; available: all, {}",
                    names.join(", ")
                ))
            })
    }
}

/// The running background roles of a process.
#[derive(Debug)]
pub struct Runner {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// How often idle loops look for work, and the reconciler's period.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Idle poll interval of the relay, workers and timeout loop.
    pub poll: Duration,
    /// Time between reconciliation passes.
    pub reconcile_every: Duration,
    /// Time between the reconciler's checks that the stock backend still has every open
    /// activity ([`Engine::heal_stock`]): the longest buys answer "not warmed up" after a Redis
    /// lost its data, before the activity is re-warmed.
    pub heal_every: Duration,
}

/// A fast pace for tests: poll every millisecond, reconcile every 50 ms.
pub fn runner_pace_for_tests() -> Pace {
    Pace {
        poll: Duration::from_millis(1),
        reconcile_every: Duration::from_millis(50),
        heal_every: Duration::from_millis(50),
    }
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(5),
            reconcile_every: Duration::from_secs(30),
            heal_every: Duration::from_secs(1),
        }
    }
}

async fn idle(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.changed() => true,
    }
}

impl Runner {
    /// Starts the background loops of `roles` (the `api` role has none here).
    pub fn start(engine: &Engine, roles: &[Role], pace: Pace) -> Self {
        let (stop, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for role in roles {
            let e = engine.clone();
            let mut rx = rx.clone();
            let task = match role {
                Role::Api => continue,
                Role::Relay => tokio::spawn(async move {
                    while !*rx.borrow() {
                        match e.relay_once().await {
                            Ok(n) if n > 0 => continue,
                            Ok(_) => {}
                            Err(err) => tracing::warn!(error = %err, "relay pass failed"),
                        }
                        if idle(&mut rx, pace.poll).await {
                            break;
                        }
                    }
                }),
                Role::OrderWorker => tokio::spawn(async move {
                    let mut worker = None;
                    while !*rx.borrow() {
                        if worker.is_none() {
                            match e.order_worker().await {
                                Ok(w) => worker = Some(w),
                                Err(err) => {
                                    tracing::warn!(error = %err, "order worker cannot subscribe");
                                    if idle(&mut rx, Duration::from_secs(1)).await {
                                        break;
                                    }
                                    continue;
                                }
                            }
                        }
                        // Not raced against shutdown: a batch, once fetched, is finished and
                        // acked (a drain); the fetch itself waits at most 200 ms.
                        let w = worker.as_mut().expect("set above");
                        if let Err(err) = w.run_once(Duration::from_millis(200)).await {
                            tracing::warn!(error = %err, "order worker pass failed");
                            worker = None; // resubscribe: unacked deliveries come back
                        }
                    }
                }),
                Role::TimeoutWorker => tokio::spawn(async move {
                    let mut passes = 0u64;
                    while !*rx.borrow() {
                        passes += 1;
                        let r = e.timeout_once().await;
                        if passes % 200 == 0 {
                            if let Err(err) = e.sweep_expired().await {
                                tracing::warn!(error = %err, "expiry sweep failed");
                            }
                        }
                        match r {
                            Ok(n) if n > 0 => continue,
                            Ok(_) => {}
                            Err(err) => tracing::warn!(error = %err, "timeout pass failed"),
                        }
                        if idle(&mut rx, pace.poll.max(Duration::from_millis(50))).await {
                            break;
                        }
                    }
                }),
                Role::Reconciler => {
                    let (he, mut hrx) = (e.clone(), rx.clone());
                    tasks.push(tokio::spawn(async move {
                        while !*hrx.borrow() {
                            if idle(&mut hrx, pace.heal_every).await {
                                break;
                            }
                            for a in he.all_activities().await {
                                match he.heal_stock_of(&a).await {
                                    Ok(_) | Err(Error::Conflict { .. }) => {}
                                    Err(err) => tracing::warn!(activity = %a.id, error = %err,
                                        "stock check failed"),
                                }
                            }
                        }
                    }));
                    tokio::spawn(async move {
                        while !*rx.borrow() {
                            if idle(&mut rx, pace.reconcile_every).await {
                                break;
                            }
                            e.reconcile_pass().await;
                        }
                    })
                }
            };
            tasks.push(task);
        }
        Self { stop, tasks }
    }

    /// Signals every loop to stop after its current step and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Reconciles one activity with repair; its findings (before repair) by kind, with
/// `inconsistent` if it is still out of balance after.
async fn reconcile_one(e: &Engine, id: ActivityId) -> Vec<(&'static str, i64)> {
    match e.reconcile(id, true).await {
        Ok(r) => {
            if !r.issues.is_empty() {
                tracing::warn!(activity = %id, issues = r.issues.len(), repaired = r.repaired,
                    consistent = r.consistent, "reconciler found issues")
            }
            let mut kinds: Vec<_> = r.issues.iter().map(|i| (i.kind(), 1)).collect();
            if !r.consistent {
                kinds.push(("inconsistent", 1));
            }
            kinds
        }
        Err(Error::Conflict { .. }) => Vec::new(),
        Err(err) => {
            tracing::warn!(activity = %id, error = %err, "reconcile failed");
            Vec::new()
        }
    }
}

impl Engine {
    /// One pass of the reconciler role: every activity reconciled with repair (what it found
    /// set in `seckill_reconcile_findings`), then the payments settled. Returns the findings
    /// by kind.
    pub async fn reconcile_pass(&self) -> Vec<(&'static str, i64)> {
        let mut findings = Vec::new();
        for a in self.all_activities().await {
            findings.extend(reconcile_one(self, a.id).await);
        }
        let m = self.metrics();
        m.set_findings(&findings);
        m.reconcile_runs.inc();
        if let Err(err) = self.reconcile_payments().await {
            tracing::warn!(error = %err, "payment reconciliation failed");
        }
        findings
    }
}
