//! The system under test, started by the harness on loopback in a temporary directory: its own
//! Redis (AOF `everysec`, or no persistence), its own PostgreSQL cluster (`initdb` + the
//! machine's `postgres`), and the server split into roles as in production (two `api`
//! processes, relay, order worker, timeout worker, reconciler), each process reaching each
//! backend through its own [`Proxy`], so a fault can hit one link. Everything it started is
//! stopped when the [`Cluster`] is dropped.

use crate::proxy::{Fault, Proxy};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A server role as `--roles` names it, one process each.
pub const ROLES: [&str; 6] = [
    "api",
    "api",
    "relay",
    "order-worker",
    "timeout-worker",
    "reconciler",
];

/// Which backend a proxy leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Redis: stock, delay queue, locks, limits, idempotency, sessions and the Redis Streams
    /// broker.
    Redis,
    /// PostgreSQL: the system of record.
    Postgres,
    /// The broker, when it is RabbitMQ (Redis Streams is `Redis`; Kafka has no proxy).
    Broker,
}

/// The message broker of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broker {
    /// Redis Streams on the run's own Redis (killed, emptied and rewound with it).
    RedisStream,
    /// The machine's RabbitMQ at this URL (`amqp://guest:guest@127.0.0.1:5672/%2f`), through a
    /// proxy per process (the harness does not kill it; link faults reach it).
    Amqp(String),
    /// A Kafka-API broker at these bootstrap servers (`127.0.0.1:9092`). Kafka clients follow
    /// the broker's advertised address, so it is reached directly, without a proxy.
    Kafka(String),
}

impl Broker {
    /// A short name for tables.
    pub fn name(&self) -> &'static str {
        match self {
            Broker::RedisStream => "redis-stream",
            Broker::Amqp(_) => "amqp",
            Broker::Kafka(_) => "kafka",
        }
    }
}

/// What Redis keeps on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Append-only file, fsync every second (`appendfsync everysec`).
    Aof,
    /// Nothing: a restart comes back empty.
    None,
}

/// How the harness lays the cluster out.
#[derive(Debug, Clone)]
pub struct Options {
    /// Ports from here up to `base_port + 200` (keep below 32768).
    pub base_port: u16,
    /// Where `seckill-server` is.
    pub server_bin: PathBuf,
    /// Redis persistence.
    pub persistence: Persistence,
    /// The broker.
    pub broker: Broker,
    /// The stock backend's `ack` (`memory`, or `replicas:1`: a reservation is acknowledged
    /// once the replica has it).
    pub stock_ack: String,
    /// The payment window of the sale (short, so unpaid orders time out and lost holds are
    /// declared lost within the run).
    pub payment_timeout_secs: u64,
    /// Keep the temporary directory (logs, data) after the run.
    pub keep: bool,
    /// `CHAOS_SABOTAGE` for the servers (a server built with the `sabotage` feature leaves
    /// those repairs out: the negative controls).
    pub sabotage: Option<String>,
}

/// A child process killed (with its process group) on drop.
#[derive(Debug)]
pub(crate) struct Proc {
    child: Child,
}

impl Proc {
    pub(crate) fn spawn(mut cmd: Command, log: &Path) -> std::io::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        cmd.stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        Ok(Self {
            child: cmd.spawn()?,
        })
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends `sig` to the whole process group.
    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill")
                .args([format!("-{sig}"), "--".into(), format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }

    pub(crate) async fn kill9(&mut self) {
        self.signal("KILL");
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    async fn terminate(&mut self) {
        self.signal("CONT");
        self.signal("TERM");
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            self.kill9().await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal("CONT");
        self.signal("KILL");
    }
}

/// The running system.
#[derive(Debug)]
pub struct Cluster {
    opts: Options,
    dir: PathBuf,
    redis: Option<Proc>,
    postgres: Option<Proc>,
    servers: Vec<Option<Proc>>,
    /// One proxy per (server process, backend), in `ROLES` order: Redis, then PostgreSQL.
    proxies: Vec<(Proxy, Proxy)>,
    /// One proxy per server process to RabbitMQ, when it is the broker.
    broker_proxies: Vec<Proxy>,
    pg_user: (u32, u32),
    snapshot: Option<PathBuf>,
    /// A replica of the Redis primary (for the failover fault).
    replica: Option<Proc>,
    /// Whether the replica was promoted.
    failed_over: bool,
}

fn wait_port(port: u16, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Cluster {
    /// The port of the Redis primary itself (the promoted replica's after a failover).
    pub fn redis_port(&self) -> u16 {
        if self.failed_over {
            self.replica_port()
        } else {
            self.opts.base_port + 1
        }
    }

    /// The port of the Redis replica.
    pub fn replica_port(&self) -> u16 {
        self.opts.base_port + 3
    }

    /// The directory of the Redis that is primary now.
    fn redis_dir(&self) -> PathBuf {
        self.dir.join(if self.failed_over {
            "redis-replica"
        } else {
            "redis"
        })
    }

    /// The port of PostgreSQL itself.
    pub fn pg_port(&self) -> u16 {
        self.opts.base_port + 2
    }

    /// The HTTP port of server process `i` (in `ROLES` order).
    pub fn http_port(&self, i: usize) -> u16 {
        self.opts.base_port + 10 + i as u16
    }

    /// The HTTP addresses of the two `api` processes.
    pub fn api(&self) -> [SocketAddr; 2] {
        [localhost(self.http_port(0)), localhost(self.http_port(1))]
    }

    /// The Redis key prefix the servers use.
    pub fn prefix(&self) -> &'static str {
        "chaos"
    }

    /// The database URL for the harness itself (not through a proxy).
    pub fn database_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.pg_port())
    }

    /// The Redis URL for the harness itself (not through a proxy).
    pub fn redis_url(&self) -> String {
        format!(
            "redis://127.0.0.1:{}/0?prefix={}",
            self.redis_port(),
            self.prefix()
        )
    }

    /// Where logs and data live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts everything: Redis, PostgreSQL, the proxies and the six server processes.
    pub async fn start(opts: Options) -> Result<Self, String> {
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "seckill-chaos-{}-{}-{run}",
            std::process::id(),
            opts.base_port
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("redis")).map_err(|e| e.to_string())?;
        let pg_user = crate::postgres::uid_gid("postgres").map_err(|e| e.to_string())?;
        let mut c = Self {
            opts,
            dir,
            redis: None,
            postgres: None,
            servers: Vec::new(),
            proxies: Vec::new(),
            broker_proxies: Vec::new(),
            pg_user,
            snapshot: None,
            replica: None,
            failed_over: false,
        };
        c.start_redis(false).await?;
        c.start_replica().await?;
        c.init_postgres()?;
        c.start_postgres().await?;
        for i in 0..ROLES.len() {
            let p = c.opts.base_port + 100 + 2 * i as u16;
            let r = Proxy::start(localhost(p), localhost(c.redis_port()))
                .await
                .map_err(|e| format!("proxy on {p}: {e}"))?;
            let g = Proxy::start(localhost(p + 1), localhost(c.pg_port()))
                .await
                .map_err(|e| format!("proxy on {}: {e}", p + 1))?;
            c.proxies.push((r, g));
            if let Broker::Amqp(url) = &c.opts.broker {
                let upstream = amqp_addr(url)?;
                let b = Proxy::start(localhost(c.opts.base_port + 150 + i as u16), upstream)
                    .await
                    .map_err(|e| format!("broker proxy: {e}"))?;
                c.broker_proxies.push(b);
            }
        }
        for i in 0..ROLES.len() {
            c.servers.push(None);
            c.start_server(i).await?;
        }
        Ok(c)
    }

    async fn start_replica(&mut self) -> Result<(), String> {
        let d = self.dir.join("redis-replica");
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.replica_port().to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
            .args(["--replicaof", "127.0.0.1", &self.redis_port().to_string()])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&d);
        self.replica =
            Some(Proc::spawn(cmd, &self.dir.join("redis-replica.log")).map_err(|e| e.to_string())?);
        if !wait_port(self.replica_port(), Duration::from_secs(20)) {
            return Err("the redis replica did not start".into());
        }
        Ok(())
    }

    /// A failover to a replica that missed the last writes: the replica stops following the
    /// primary (so the writes of the next `hold` reach the primary only), the primary is
    /// SIGKILLed, and every process's Redis link is pointed at the promoted replica.
    pub async fn fail_over(&mut self, hold: Duration) -> Result<(), String> {
        if self.failed_over || self.replica.is_none() {
            return Err("no replica to fail over to".into());
        }
        redis_cli(self.replica_port(), &["REPLICAOF", "NO", "ONE"]);
        tokio::time::sleep(hold).await;
        self.kill_redis().await;
        self.failed_over = true;
        self.redis = self.replica.take();
        let to = localhost(self.replica_port());
        for (r, _) in &self.proxies {
            r.set_upstream(to);
        }
        Ok(())
    }

    async fn start_redis(&mut self, from_snapshot: bool) -> Result<(), String> {
        let d = self.redis_dir();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.redis_port().to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(&d);
        let aof = self.opts.persistence == Persistence::Aof && !from_snapshot;
        cmd.args(["--appendonly", if aof { "yes" } else { "no" }])
            .args(["--appendfsync", "everysec"]);
        self.redis =
            Some(Proc::spawn(cmd, &self.dir.join("redis.log")).map_err(|e| e.to_string())?);
        // A Redis replaying its AOF answers LOADING meanwhile; the port opens first.
        if !wait_port(self.redis_port(), Duration::from_secs(20)) {
            return Err("redis did not start".into());
        }
        if from_snapshot && self.opts.persistence == Persistence::Aof {
            redis_cli(self.redis_port(), &["CONFIG", "SET", "appendonly", "yes"]);
        }
        Ok(())
    }

    fn init_postgres(&self) -> Result<(), String> {
        let d = self.dir.join("pg");
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        crate::postgres::chown(&self.dir)?;
        crate::postgres::initdb(&d.join("data"), self.pg_user)
    }

    async fn start_postgres(&mut self) -> Result<(), String> {
        let d = self.dir.join("pg");
        self.postgres = Some(
            crate::postgres::start(
                &d.join("data"),
                &d,
                self.pg_port(),
                self.pg_user,
                &self.dir.join("postgres.log"),
            )
            .await?,
        );
        Ok(())
    }

    fn server_env(&self, i: usize) -> Vec<(String, String)> {
        let (r, g) = &self.proxies[i];
        let redis = format!("redis://{}/0?prefix={}", r.local_addr(), self.prefix());
        let mut env: Vec<(String, String)> = vec![(
            "SECKILL_BACKENDS__STOCK".into(),
            format!("{redis}&ack={}", self.opts.stock_ack),
        )];
        env.extend(
            ["DELAY", "LOCK", "RATE_LIMIT", "IDEMPOTENCY", "SESSIONS"]
                .iter()
                .map(|k| (format!("SECKILL_BACKENDS__{k}"), redis.clone())),
        );
        env.extend([
            ("SECKILL_BACKENDS__BROKER".into(), self.broker_url(i)),
            (
                "SECKILL_BACKENDS__DATABASE".into(),
                format!("postgres://postgres@{}/postgres", g.local_addr()),
            ),
            (
                "SECKILL_AUTH__JWT_SECRET".into(),
                "chaos-shared-secret".into(),
            ),
            (
                "SECKILL_PAYMENT__MOCK_SECRET".into(),
                "chaos-mock-secret".into(),
            ),
            ("SECKILL_ADMIN__PASSWORD".into(), "chaos-admin".into()),
            (
                "SECKILL_SALE__PAYMENT_TIMEOUT_SECS".into(),
                self.opts.payment_timeout_secs.to_string(),
            ),
            ("SECKILL_SALE__RECONCILE_EVERY_SECS".into(), "2".into()),
            ("SECKILL_SALE__BUY_RATE_PER_SEC".into(), "0".into()),
            ("SECKILL_LIMITS__LOGIN_PER_IP__RATE".into(), "0".into()),
            ("SECKILL_LIMITS__BUY_PER_IP__RATE".into(), "0".into()),
            ("RUST_LOG".into(), "warn".into()),
        ]);
        if let Some(s) = &self.opts.sabotage {
            env.push(("CHAOS_SABOTAGE".into(), s.clone()));
        }
        env
    }

    fn broker_url(&self, i: usize) -> String {
        // Names of the run's own (queues, topics), so runs on a shared broker never meet.
        let run = format!("chaos{}x{}", std::process::id(), self.opts.base_port);
        match &self.opts.broker {
            Broker::RedisStream => format!(
                "redis-stream://{}/0?prefix={}",
                self.proxies[i].0.local_addr(),
                self.prefix()
            ),
            Broker::Amqp(url) => {
                let (scheme_auth, rest) = url.split_once('@').unwrap_or(("amqp://", url));
                let path = rest.split_once('/').map_or("/%2f", |(_, p)| p);
                let path = path.split('?').next().unwrap_or("%2f");
                format!(
                    "{scheme_auth}@{}/{path}?groups=order-workers&prefix={run}&expires=600000",
                    self.broker_proxies[i].local_addr()
                )
            }
            Broker::Kafka(brokers) => format!("kafka://{brokers}?prefix={run}"),
        }
    }

    /// Starts server process `i` and waits for its `/health`.
    pub async fn start_server(&mut self, i: usize) -> Result<(), String> {
        let port = self.http_port(i);
        let mut cmd = Command::new(&self.opts.server_bin);
        cmd.args(["--roles", ROLES[i], "--no-demo"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .envs(self.server_env(i));
        if ROLES[i] == "api" {
            let grpc = self.opts.base_port + 30 + i as u16;
            cmd.args(["--grpc-listen", &format!("127.0.0.1:{grpc}")]);
        }
        let log = self.dir.join(format!("server-{i}-{}.log", ROLES[i]));
        self.servers[i] = Some(Proc::spawn(cmd, &log).map_err(|e| e.to_string())?);
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            let r = crate::client::call(
                localhost(port),
                "GET",
                "/health",
                None,
                &[],
                None,
                Duration::from_secs(2),
            )
            .await;
            if r.is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            if let Some(Some(p)) = self.servers.get_mut(i) {
                if let Ok(Some(status)) = p.child.try_wait() {
                    return Err(format!(
                        "{} exited at start ({status}); see {}",
                        ROLES[i],
                        log.display()
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "{} did not come up; see {}",
            ROLES[i],
            log.display()
        ))
    }

    /// SIGKILLs server process `i`.
    pub async fn kill_server(&mut self, i: usize) {
        if let Some(mut p) = self.servers[i].take() {
            p.kill9().await;
        }
    }

    /// SIGSTOPs (`true`) or SIGCONTs server process `i`.
    pub fn pause_server(&self, i: usize, pause: bool) {
        if let Some(p) = &self.servers[i] {
            p.signal(if pause { "STOP" } else { "CONT" });
        }
    }

    /// SIGKILLs Redis.
    pub async fn kill_redis(&mut self) {
        if let Some(mut p) = self.redis.take() {
            p.kill9().await;
        }
    }

    /// SIGSTOPs (`true`) or SIGCONTs Redis.
    pub fn pause_redis(&self, pause: bool) {
        if let Some(p) = &self.redis {
            p.signal(if pause { "STOP" } else { "CONT" });
        }
    }

    /// Restarts a killed Redis from its files (the AOF, if it keeps one).
    pub async fn restart_redis(&mut self) -> Result<(), String> {
        self.start_redis(false).await
    }

    /// Kills Redis and brings it back with nothing (its files deleted).
    pub async fn restart_redis_empty(&mut self) -> Result<(), String> {
        self.kill_redis().await;
        let d = self.redis_dir();
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        self.start_redis(false).await
    }

    /// Saves an RDB snapshot of Redis now, for a later [`Cluster::rewind_redis`].
    pub fn snapshot_redis(&mut self) -> Result<(), String> {
        redis_cli(self.redis_port(), &["SAVE"]);
        let from = self.redis_dir().join("dump.rdb");
        let to = self.dir.join("snapshot.rdb");
        std::fs::copy(&from, &to).map_err(|e| format!("snapshot: {e}"))?;
        self.snapshot = Some(to);
        Ok(())
    }

    /// Kills Redis and restarts it from the older snapshot: every write since is gone.
    pub async fn rewind_redis(&mut self) -> Result<(), String> {
        let snap = self.snapshot.clone().ok_or("no snapshot taken")?;
        self.kill_redis().await;
        let d = self.redis_dir();
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        std::fs::copy(snap, d.join("dump.rdb")).map_err(|e| e.to_string())?;
        self.start_redis(true).await
    }

    /// SIGKILLs PostgreSQL (the postmaster and every backend).
    pub async fn kill_postgres(&mut self) {
        if let Some(mut p) = self.postgres.take() {
            p.kill9().await;
        }
        // Orphaned backends let go of the shared memory within moments.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    /// Restarts a killed PostgreSQL (crash recovery from its WAL).
    pub async fn restart_postgres(&mut self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.dir.join("pg").join("data").join("postmaster.pid"));
        self.start_postgres().await
    }

    /// Applies `fault` to every process's link to `backend`.
    pub fn proxy_fault(&self, backend: Backend, fault: Fault) {
        for (r, g) in &self.proxies {
            match backend {
                Backend::Redis => r.set(fault),
                Backend::Postgres => g.set(fault),
                Backend::Broker => {}
            }
        }
        if backend == Backend::Broker {
            for b in &self.broker_proxies {
                b.set(fault);
            }
        }
    }

    /// Brings everything back: every proxy forwards, paused processes go on, stopped ones start.
    pub async fn heal(&mut self) -> Result<(), String> {
        self.proxy_fault(Backend::Redis, Fault::None);
        self.proxy_fault(Backend::Postgres, Fault::None);
        self.proxy_fault(Backend::Broker, Fault::None);
        self.pause_redis(false);
        if self.redis.is_none() {
            self.restart_redis().await?;
        }
        if self.postgres.is_none() {
            self.restart_postgres().await?;
        }
        for i in 0..ROLES.len() {
            self.pause_server(i, false);
            if self.servers[i].is_none() {
                self.start_server(i).await?;
            }
        }
        Ok(())
    }

    /// Stops the servers gracefully, then the backends; removes the directory unless the
    /// options or `keep` say to keep it (a failed run keeps its logs and data).
    pub async fn stop_keeping(mut self, keep: bool) {
        for p in self.servers.iter_mut().flatten() {
            p.terminate().await;
        }
        self.servers.clear();
        if let Some(mut p) = self.postgres.take() {
            p.terminate().await;
        }
        if let Some(mut p) = self.redis.take() {
            p.terminate().await;
        }
        if let Some(mut p) = self.replica.take() {
            p.terminate().await;
        }
        if !self.opts.keep && !keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The host and port of an `amqp://user:pass@host:port/vhost` URL.
fn amqp_addr(url: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let rest = url.split_once('@').map_or(url, |(_, r)| r);
    let hostport = rest.split(['/', '?']).next().unwrap_or(rest);
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5672")
    };
    hostport
        .to_socket_addrs()
        .map_err(|e| format!("broker address {hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("broker address {hostport} resolves to nothing"))
}

/// Runs `redis-cli` against a local port, ignoring its answer.
fn redis_cli(port: u16, args: &[&str]) {
    let _ = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
