//! [`OwnServer`]: a server process a test starts itself on a loopback port, to restart or stop
//! it without disturbing the services other tests share.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A server process on `127.0.0.1:port`, started from a program and its arguments; killed when
/// the last handle is dropped.
#[derive(Clone)]
pub struct OwnServer {
    inner: Arc<Mutex<Inner>>,
}

/// How to start (and stop) an [`OwnServer`]: a program, its arguments and environment, and
/// the loopback port it serves on.
#[derive(Debug, Clone)]
pub struct Launch {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stop: Option<(String, Vec<String>)>,
    dir: Option<std::path::PathBuf>,
    port: u16,
    startup: Duration,
}

impl Launch {
    /// `program args…`, serving on `127.0.0.1:port`.
    pub fn new(program: &str, args: &[&str], port: u16) -> Self {
        Self {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            stop: None,
            dir: None,
            port,
            startup: Duration::from_secs(20),
        }
    }

    /// Sets an environment variable for the program.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Stops the server with this command (then kills the process), for programs whose server
    /// outlives the process started (a wrapper script that runs it as another user).
    pub fn stop_with(mut self, program: &str, args: &[&str]) -> Self {
        self.stop = Some((
            program.to_string(),
            args.iter().map(|a| a.to_string()).collect(),
        ));
        self
    }

    /// Runs the program in `dir` (the test's working directory unless set).
    pub fn current_dir(mut self, dir: &std::path::Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// How long the server may take to accept connections (20 s unless set).
    pub fn startup(mut self, limit: Duration) -> Self {
        self.startup = limit;
        self
    }

    /// Starts the server: see [`OwnServer::start`].
    pub fn start(self) -> OwnServer {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err(),
            "port {} is already in use: stop what listens there before running this test",
            self.port
        );
        let mut inner = Inner {
            launch: self,
            child: None,
        };
        inner.spawn();
        OwnServer {
            inner: Arc::new(Mutex::new(inner)),
        }
    }
}

struct Inner {
    launch: Launch,
    child: Option<Child>,
}

impl std::fmt::Debug for OwnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.inner.lock().expect("own server");
        f.debug_struct("OwnServer")
            .field("program", &i.launch.program)
            .field("port", &i.launch.port)
            .finish()
    }
}

impl OwnServer {
    /// Starts `program args…` and waits until it accepts connections on `port`. Panics with a
    /// clear message when the port is already taken (another run's server would answer in its
    /// place), the program is missing, or it does not come up within 20 s.
    pub fn start(program: &str, args: &[&str], port: u16) -> Self {
        Launch::new(program, args, port).start()
    }

    /// Stops (or kills) the server and starts it again with the same arguments; returns once it accepts
    /// connections. Call it off the async threads (`spawn_blocking`).
    pub fn restart(&self) {
        let mut i = self.inner.lock().expect("own server");
        i.kill();
        i.spawn();
    }
}

impl Inner {
    fn spawn(&mut self) {
        let l = &self.launch;
        let mut cmd = Command::new(&l.program);
        if let Some(dir) = &l.dir {
            cmd.current_dir(dir);
        }
        let child = cmd
            .args(&l.args)
            .envs(l.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", l.program));
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", l.port)).is_err() {
            assert!(
                started.elapsed() < l.startup,
                "{} did not come up on port {}",
                l.program,
                l.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some((program, args)) = &self.launch.stop {
            let _ = Command::new(program)
                .args(args)
                .envs(self.launch.env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Wait until the port is free again.
        let stopped = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.launch.port)).is_ok()
            && stopped.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.kill();
    }
}
