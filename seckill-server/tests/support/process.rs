//! The real `seckill-server` binary as a child process, for tests that run it as an operator
//! would: on its own ports, configured by environment, killed when the test ends.

use serde_json::Value;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process, stopped on drop (SIGTERM, then SIGKILL after 10 s), so a failing test
/// leaves nothing running.
pub struct Process(pub Child);

impl Process {
    /// The process's stdout, when it was started with [`Start::capture_stdout`].
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.0.stdout.take()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How to start a server process.
pub struct Start<'a> {
    /// `--roles`.
    pub roles: &'a str,
    /// HTTP port on 127.0.0.1.
    pub port: u16,
    /// gRPC port on 127.0.0.1, if any.
    pub grpc: Option<u16>,
    /// Extra environment (`SECKILL_*`).
    pub env: &'a [(String, String)],
    /// Seed the demo sale (otherwise `--no-demo`).
    pub demo: bool,
    /// `RUST_LOG`.
    pub log: &'a str,
    /// Pipe stdout for the test to read (otherwise it is discarded).
    pub capture_stdout: bool,
}

impl<'a> Start<'a> {
    /// `roles` on `port`, no gRPC, no demo, warnings only, stdout discarded.
    pub fn new(roles: &'a str, port: u16, env: &'a [(String, String)]) -> Self {
        Self {
            roles,
            port,
            grpc: None,
            env,
            demo: false,
            log: "warn",
            capture_stdout: false,
        }
    }

    /// Starts the process and waits (up to 60 s) until `/health` answers.
    pub fn spawn(self) -> Process {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err(),
            "port {} is taken: stop what listens there",
            self.port
        );
        let mut c = Command::new(env!("CARGO_BIN_EXE_seckill-server"));
        c.args(["--roles", self.roles])
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .envs(self.env.iter().cloned())
            .env("RUST_LOG", self.log)
            .stdout(if self.capture_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit());
        if !self.demo {
            c.arg("--no-demo");
        }
        if let Some(g) = self.grpc {
            c.args(["--grpc-listen", &format!("127.0.0.1:{g}")]);
        }
        let p = Process(c.spawn().expect("start seckill-server"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while call(self.port, "GET", "/health", None, None).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} on {} did not come up",
                self.roles,
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }
}

/// `roles` on `port` (and gRPC on `grpc`), configured by `env`: [`Start::spawn`].
pub fn start(roles: &str, port: u16, grpc: Option<u16>, env: &[(String, String)]) -> Process {
    Start {
        grpc,
        ..Start::new(roles, port, env)
    }
    .spawn()
}

/// One HTTP/1.1 request over a fresh TCP connection; the JSON body (a 5xx answer panics).
pub fn call(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Value, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let (head, rest) = out.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    assert!(status < 500, "{method} {path} answered {status}: {rest}");
    serde_json::from_str(rest).map_err(|e| format!("{e}: {rest}"))
}

/// The `data` of an answer.
pub fn data(v: &Value) -> &Value {
    &v["data"]
}

/// Redis and PostgreSQL shared by server processes, configured by environment: every
/// Redis-backed backend under a prefix of its own, the Redis Streams broker on the same Redis,
/// and a PostgreSQL schema of its own, dropped by [`SharedBackends::drop_schema`].
pub struct SharedBackends {
    /// `SECKILL_*` variables selecting the backends (plus the JWT and admin secrets).
    pub env: Vec<(String, String)>,
    schema: String,
    db: seckill_store::postgres::Pool,
}

impl SharedBackends {
    /// Creates the schema `{name}{unique id}` and the environment for it.
    pub async fn new(redis: &str, pg: &str, name: &str) -> Self {
        let id = seckill_core::conformance::unique_id();
        let schema = format!("{name}{id}");
        let db =
            seckill_store::postgres::pool(&seckill_core::registry::BackendUrl::parse(pg).unwrap())
                .unwrap();
        let shared = Self {
            env: Vec::new(),
            schema,
            db,
        };
        shared
            .sql(&format!("CREATE SCHEMA {}", shared.schema))
            .await;
        let sep = |u: &str| if u.contains('?') { '&' } else { '?' };
        let r = format!("{redis}{}prefix={name}{id}", sep(redis));
        let mut env: Vec<(String, String)> = [
            "STOCK",
            "DELAY",
            "LOCK",
            "RATE_LIMIT",
            "IDEMPOTENCY",
            "SESSIONS",
            "SETTINGS",
        ]
        .iter()
        .map(|k| (format!("SECKILL_BACKENDS__{k}"), r.clone()))
        .collect();
        env.extend([
            (
                "SECKILL_BACKENDS__BROKER".into(),
                r.replacen("redis:", "redis-stream:", 1),
            ),
            (
                "SECKILL_BACKENDS__DATABASE".into(),
                format!("{pg}{}schema={}", sep(pg), shared.schema),
            ),
            ("SECKILL_AUTH__JWT_SECRET".into(), "shared-secret".into()),
            ("SECKILL_ADMIN__PASSWORD".into(), "admin-password".into()),
            ("SECKILL_LIMITS__LOGIN_PER_IP__RATE".into(), "0".into()),
        ]);
        Self { env, ..shared }
    }

    /// Runs `q` on the test database.
    pub async fn sql(&self, q: &str) {
        self.db
            .get()
            .await
            .expect("connect to the test PostgreSQL")
            .batch_execute(q)
            .await
            .unwrap()
    }

    /// Drops the schema (call it after the processes have stopped).
    pub async fn drop_schema(self) {
        self.sql(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await;
    }
}
