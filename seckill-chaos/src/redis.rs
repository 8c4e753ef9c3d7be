//! A `redis-server` of a test's own on a loopback port (no persistence, files in a directory of
//! its own under the system temp dir), killed when dropped; and `redis-cli` against it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts one on `127.0.0.1:port` (extra `args` go on its command line) and waits up to
    /// 10 s for it to accept connections.
    pub fn start(port: u16, args: &[&str]) -> Result<Self, String> {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Err(format!("port {port} is taken: stop what listens there"));
        }
        let dir = std::env::temp_dir().join(format!("seckill-redis-{port}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server (is it on PATH?): {e}"))?;
        let server = Self { child, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!("redis-server on {port} did not start"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// Its URL, `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `redis-cli -p <port> args…`: its standard output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        String::from_utf8_lossy(&out).trim().to_string()
    }

    /// Starts following every command the server runs (`MONITOR`): see [`Monitor`].
    pub fn monitor(&self) -> Result<Monitor, String> {
        let mut child = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "MONITOR"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-cli (is it on PATH?): {e}"))?;
        let out = child.stdout.take().ok_or("no MONITOR output")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let m = Monitor {
            child,
            lines,
            port: self.port,
            marks: std::sync::atomic::AtomicU64::new(0),
        };
        // redis-cli prints OK once the server follows it: the counts start there.
        match m.lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.trim() == "OK" => Ok(m),
            other => Err(format!("MONITOR did not start: {other:?}")),
        }
    }
}

/// The commands clients send to a [`RedisServer`], as `MONITOR` shows them: commands a Lua
/// script runs (`[0 lua]`) are not counted, only the client's call of the script. Each
/// [`window`](Self::window) counts what was sent since the one before, up to a marker command
/// it sends itself, so nothing still in flight is missed or counted twice.
#[derive(Debug)]
pub struct Monitor {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    port: u16,
    marks: std::sync::atomic::AtomicU64,
}

impl Monitor {
    /// Commands by name (lower case) sent since the last window.
    pub fn window(&self) -> Result<std::collections::BTreeMap<String, u64>, String> {
        let n = self
            .marks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mark = format!("seckill-monitor-mark-{n}");
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "ECHO", &mark])
            .output()
            .map_err(|e| format!("redis-cli: {e}"))?;
        let mut counts = std::collections::BTreeMap::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| format!("MONITOR never showed {mark}"))?;
            if line.contains(&mark) {
                return Ok(counts);
            }
            let Some((client, command)) = line.split_once("] ") else {
                continue;
            };
            if client.ends_with(" lua") {
                continue;
            }
            let name = command.split('"').nth(1).unwrap_or("?").to_lowercase();
            *counts.entry(name).or_insert(0) += 1;
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
