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

struct Inner {
    program: String,
    args: Vec<String>,
    port: u16,
    child: Option<Child>,
}

impl std::fmt::Debug for OwnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.inner.lock().expect("own server");
        f.debug_struct("OwnServer")
            .field("program", &i.program)
            .field("port", &i.port)
            .finish()
    }
}

impl OwnServer {
    /// Starts `program args…` and waits until it accepts connections on `port`. Panics with a
    /// clear message when the port is already taken (another run's server would answer in its
    /// place), the program is missing, or it does not come up within 20 s.
    pub fn start(program: &str, args: &[&str], port: u16) -> Self {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} is already in use: stop what listens there before running this test"
        );
        let mut inner = Inner {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            port,
            child: None,
        };
        inner.spawn();
        Self {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    /// Kills the process and starts it again with the same arguments; returns once it accepts
    /// connections. Call it off the async threads (`spawn_blocking`).
    pub fn restart(&self) {
        let mut i = self.inner.lock().expect("own server");
        i.kill();
        i.spawn();
    }
}

impl Inner {
    fn spawn(&mut self) {
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program));
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{} did not come up on port {}",
                self.program,
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Wait until the port is free again.
        let stopped = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
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
