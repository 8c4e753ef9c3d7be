//! PostgreSQL clusters of the harness's own: `initdb` and the machine's `postgres`, run as the
//! `postgres` user on a loopback port, and streaming replicas of them (`pg_basebackup`). The
//! chaos [`crate::cluster::Cluster`] runs one; [`PgPair`] is a primary with one replica, for
//! the read-replica tests.

use crate::cluster::Proc;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::process::Command;

/// The newest installed PostgreSQL's `name` binary (else `name` on the `PATH`).
pub fn bin(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| PathBuf::from(name))
}

/// The uid and gid of `user`.
pub fn uid_gid(user: &str) -> std::io::Result<(u32, u32)> {
    let id = |flag: &str| -> std::io::Result<u32> {
        let out = std::process::Command::new("id")
            .args([flag, user])
            .output()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| std::io::Error::other(format!("no user {user}")))
    };
    Ok((id("-u")?, id("-g")?))
}

fn run(cmd: &mut std::process::Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// `chown -R postgres:postgres dir`.
pub fn chown(dir: &Path) -> Result<(), String> {
    run(
        std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir),
        "chown",
    )
}

/// A new cluster in `data` (trust authentication, replication connections allowed).
pub fn initdb(data: &Path, user: (u32, u32)) -> Result<(), String> {
    run(
        std::process::Command::new(bin("initdb"))
            .arg("-D")
            .arg(data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .uid(user.0)
            .gid(user.1),
        "initdb",
    )
}

/// A streaming replica in `data` of the cluster on `primary_port` (`pg_basebackup -R`).
pub fn basebackup(primary_port: u16, data: &Path, user: (u32, u32)) -> Result<(), String> {
    run(
        std::process::Command::new(bin("pg_basebackup"))
            .args(["-h", "127.0.0.1", "-p", &primary_port.to_string()])
            .args(["-U", "postgres", "-X", "stream", "-R", "--no-sync", "-D"])
            .arg(data)
            .uid(user.0)
            .gid(user.1),
        "pg_basebackup",
    )
}

/// Starts `postgres` on `data` at 127.0.0.1:`port` (its socket in `socket_dir`), logging to
/// `log`, and waits until it accepts connections.
pub(crate) async fn start(
    data: &Path,
    socket_dir: &Path,
    port: u16,
    user: (u32, u32),
    log: &Path,
) -> Result<Proc, String> {
    let mut cmd = Command::new(bin("postgres"));
    cmd.arg("-D")
        .arg(data)
        .args(["-p", &port.to_string()])
        .arg("-k")
        .arg(socket_dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
        ])
        .uid(user.0)
        .gid(user.1);
    let p = Proc::spawn(cmd, log).map_err(|e| e.to_string())?;
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        let ok = std::process::Command::new(bin("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(p);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "postgres on {port} did not start (see {})",
        log.display()
    ))
}

/// A primary on `port` and its streaming replica on `port + 1`, in a directory of their own;
/// both stopped and the directory removed on drop.
#[derive(Debug)]
pub struct PgPair {
    dir: PathBuf,
    port: u16,
    user: (u32, u32),
    primary: Option<Proc>,
    replica: Option<Proc>,
}

impl PgPair {
    /// Creates and starts both.
    pub async fn start(port: u16) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("seckill-pg-pair-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("primary")).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir.join("replica")).map_err(|e| e.to_string())?;
        let user = uid_gid("postgres").map_err(|e| e.to_string())?;
        chown(&dir)?;
        let mut pair = Self {
            dir,
            port,
            user,
            primary: None,
            replica: None,
        };
        initdb(&pair.data("primary"), user)?;
        pair.primary = Some(
            start(
                &pair.data("primary"),
                &pair.dir.join("primary"),
                port,
                user,
                &pair.dir.join("primary.log"),
            )
            .await?,
        );
        basebackup(port, &pair.data("replica"), user)?;
        pair.start_replica().await?;
        Ok(pair)
    }

    fn data(&self, which: &str) -> PathBuf {
        self.dir.join(which).join("data")
    }

    /// The primary's URL (database `postgres`).
    pub fn primary_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The replica's URL (database `postgres`).
    pub fn replica_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port + 1)
    }

    /// SIGKILLs the replica.
    pub async fn kill_replica(&mut self) {
        if let Some(mut p) = self.replica.take() {
            p.kill9().await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Starts the replica (again, after [`Self::kill_replica`]: it resumes streaming).
    pub async fn start_replica(&mut self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.data("replica").join("postmaster.pid"));
        self.replica = Some(
            start(
                &self.data("replica"),
                &self.dir.join("replica"),
                self.port + 1,
                self.user,
                &self.dir.join("replica.log"),
            )
            .await?,
        );
        Ok(())
    }
}

impl Drop for PgPair {
    fn drop(&mut self) {
        self.replica.take();
        self.primary.take();
        std::thread::sleep(Duration::from_millis(200));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
