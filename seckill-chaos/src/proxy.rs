//! A TCP fault proxy. The harness places one between a server process and each of its
//! backends (Redis, PostgreSQL): the server is configured with the proxy's address, and the
//! harness injects network faults by calling [`Proxy::set`] — cut every open connection,
//! refuse new ones, partition, add latency, or stall (a backend that accepts and never
//! answers) — and fails over with [`Proxy::set_upstream`].
//!
//! Shared state lives in a [`tokio::sync::watch`] channel holding the fault, the upstream and
//! a *generation* counter. Cut, Partition, a new upstream and leaving Stall bump the
//! generation; every connection task that started in an older generation closes both of its
//! sockets. Dropping the [`Proxy`] drops the channel's sender, which closes every connection,
//! and aborts the accept loop.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Size of the buffer each forwarding direction reads into.
const BUF_SIZE: usize = 16 * 1024;

/// A fault the proxy applies until another is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward bytes both ways.
    None,
    /// Close every open connection now (both sides), then forward again (one-shot).
    Cut,
    /// Close new connections at once (accept, then drop); open ones keep working.
    Refuse,
    /// Cut every open connection and refuse new ones, until another fault is set.
    Partition,
    /// Forward, but hold each chunk this long before passing it on (both directions).
    Latency(Duration),
    /// Accept connections but forward nothing either way (open ones stop too): the peer sees a
    /// backend that never answers. When another fault is set, stalled connections are closed
    /// (as a timed-out peer would be).
    Stall,
}

/// What the accept loop and the connection tasks watch.
#[derive(Debug, Clone, Copy)]
struct State {
    /// The fault in force (never `Cut`: a cut only bumps `generation`).
    fault: Fault,
    /// Where new connections go.
    upstream: SocketAddr,
    /// Bumped to close every connection opened before.
    generation: u64,
}

/// A running fault proxy: listens on one address and forwards each connection to the
/// upstream. Dropping it stops the accept loop and closes every connection.
pub struct Proxy {
    local_addr: SocketAddr,
    state: watch::Sender<State>,
    accepted: Arc<AtomicU64>,
    accept_task: JoinHandle<()>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = *self.state.borrow();
        f.debug_struct("Proxy")
            .field("local_addr", &self.local_addr)
            .field("upstream", &state.upstream)
            .field("fault", &state.fault)
            .field("generation", &state.generation)
            .field("accepted", &self.accepted())
            .finish()
    }
}

impl Proxy {
    /// Listens on `listen` (port 0 = any free port) and forwards to `upstream`.
    ///
    /// Must be called within a tokio runtime: the accept loop and the connection tasks are
    /// spawned on it.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let (state, rx) = watch::channel(State {
            fault: Fault::None,
            upstream,
            generation: 0,
        });
        let accepted = Arc::new(AtomicU64::new(0));
        let accept_task = tokio::spawn(accept_loop(listener, rx, Arc::clone(&accepted)));
        tracing::debug!(%local_addr, %upstream, "fault proxy started");
        Ok(Proxy {
            local_addr,
            state,
            accepted,
            accept_task,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Applies a fault (see [`Fault`]).
    pub fn set(&self, fault: Fault) {
        self.state.send_modify(|s| {
            let leaving_stall = s.fault == Fault::Stall && fault != Fault::Stall;
            if leaving_stall || matches!(fault, Fault::Cut | Fault::Partition) {
                s.generation = s.generation.wrapping_add(1);
            }
            s.fault = if fault == Fault::Cut {
                Fault::None
            } else {
                fault
            };
        });
        tracing::debug!(local_addr = %self.local_addr, ?fault, "fault set");
    }

    /// The fault now in force (Cut reads back as None once applied).
    pub fn fault(&self) -> Fault {
        self.state.borrow().fault
    }

    /// Points new connections at another upstream (a failover to a replica); open
    /// connections are cut.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        self.state.send_modify(|s| {
            s.upstream = upstream;
            s.generation = s.generation.wrapping_add(1);
        });
        tracing::debug!(local_addr = %self.local_addr, %upstream, "upstream set");
    }

    /// Connections accepted so far (for tests and reports), refused ones included.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The accept loop stops here; the connection tasks stop when `self.state` (the only
        // sender) is dropped right after, which closes the watch channel.
        self.accept_task.abort();
    }
}

/// Accepts connections until the proxy is dropped; refuses them under Refuse and Partition.
async fn accept_loop(
    listener: TcpListener,
    mut rx: watch::Receiver<State>,
    accepted: Arc<AtomicU64>,
) {
    loop {
        let next = tokio::select! {
            r = listener.accept() => r,
            r = rx.changed() => {
                if r.is_err() {
                    return; // the proxy is gone
                }
                continue;
            }
        };
        let (client, peer) = match next {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                // Out of descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let state = *rx.borrow();
        if matches!(state.fault, Fault::Refuse | Fault::Partition) {
            tracing::debug!(%peer, fault = ?state.fault, "connection refused");
            drop(client);
            continue;
        }
        tokio::spawn(connection(client, state, rx.clone()));
    }
}

/// Resolves once the generation differs from `generation` or the proxy is dropped.
async fn closed(rx: &mut watch::Receiver<State>, generation: u64) {
    let _ = rx.wait_for(|s| s.generation != generation).await;
}

/// One proxied connection: connects to the upstream and forwards both ways until either side
/// ends or the connection's generation is over.
async fn connection(mut client: TcpStream, state: State, mut rx: watch::Receiver<State>) {
    let generation = state.generation;
    if state.fault == Fault::Stall {
        // Hold the client without an upstream; it is closed when the stall ends.
        closed(&mut rx, generation).await;
        return;
    }
    let mut server = tokio::select! {
        r = TcpStream::connect(state.upstream) => match r {
            Ok(server) => server,
            Err(e) => {
                tracing::debug!(upstream = %state.upstream, error = %e, "upstream connect failed");
                return;
            }
        },
        _ = closed(&mut rx, generation) => return,
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    let rx_back = rx.clone();
    tokio::select! {
        _ = pump(client_read, server_write, rx, generation, "client->upstream") => {}
        _ = pump(server_read, client_write, rx_back, generation, "upstream->client") => {}
    }
    // Both sockets are dropped here: the other direction ends too.
}

/// Forwards one direction until EOF, an error, or the end of the connection's generation.
async fn pump<R, W>(
    mut reader: R,
    mut writer: W,
    mut rx: watch::Receiver<State>,
    generation: u64,
    direction: &'static str,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = tokio::select! {
            r = reader.read(&mut buf) => match r {
                Ok(0) => {
                    tracing::debug!(direction, "eof");
                    return;
                }
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(direction, error = %e, "read failed");
                    return;
                }
            },
            _ = closed(&mut rx, generation) => return,
        };
        if !hold(&mut rx, generation).await {
            return;
        }
        let written = tokio::select! {
            r = writer.write_all(&buf[..n]) => r,
            _ = closed(&mut rx, generation) => return,
        };
        if let Err(e) = written {
            tracing::debug!(direction, error = %e, "write failed");
            return;
        }
    }
}

/// Applies the fault in force to a chunk about to be written: waits out a latency, or under
/// Stall waits for the stall to end. Returns whether to write the chunk (false: close).
async fn hold(rx: &mut watch::Receiver<State>, generation: u64) -> bool {
    let state = *rx.borrow();
    if state.generation != generation {
        return false;
    }
    if let Fault::Latency(delay) = state.fault {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = closed(&mut *rx, generation) => return false,
        }
    }
    let state = *rx.borrow();
    if state.generation != generation {
        return false;
    }
    if state.fault == Fault::Stall {
        // Drop the chunk; leaving Stall bumps the generation, which closes the connection.
        closed(&mut *rx, generation).await;
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::time::timeout;

    /// Upper bound for any single step of a test.
    const LIMIT: Duration = Duration::from_secs(3);

    fn localhost() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    /// An echo server on a free port: each reply is `prefix` followed by the bytes read.
    async fn echo_server(prefix: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind(localhost())
            .await
            .expect("bind echo server");
        let addr = listener.local_addr().expect("echo server address");
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        let n = match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let mut reply = prefix.to_vec();
                        reply.extend_from_slice(&buf[..n]);
                        if sock.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn start(upstream: SocketAddr) -> Proxy {
        Proxy::start(localhost(), upstream)
            .await
            .expect("start proxy")
    }

    async fn connect(proxy: &Proxy) -> TcpStream {
        timeout(LIMIT, TcpStream::connect(proxy.local_addr()))
            .await
            .expect("connect timed out")
            .expect("connect failed")
    }

    async fn ask(stream: &mut TcpStream, msg: &[u8], reply_len: usize) -> io::Result<Vec<u8>> {
        stream.write_all(msg).await?;
        let mut reply = vec![0u8; reply_len];
        stream.read_exact(&mut reply).await?;
        Ok(reply)
    }

    /// A round trip that must succeed within [`LIMIT`].
    async fn echo(stream: &mut TcpStream, msg: &[u8], reply_len: usize) -> Vec<u8> {
        timeout(LIMIT, ask(stream, msg, reply_len))
            .await
            .expect("no reply in time")
            .expect("round trip failed")
    }

    /// The stream's read returns EOF or an error within 1 s.
    async fn assert_closed(stream: &mut TcpStream) {
        let mut buf = [0u8; 64];
        match timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(n)) => panic!("expected a closed connection, read {n} bytes"),
            Err(_) => panic!("connection still open after 1 s"),
        }
    }

    /// A new connection is closed without an echo.
    async fn assert_refused(proxy: &Proxy) {
        let mut stream = connect(proxy).await;
        let _ = stream.write_all(b"ping").await;
        assert_closed(&mut stream).await;
    }

    /// No reply arrives within 300 ms.
    async fn assert_silent(stream: &mut TcpStream) {
        let mut buf = [0u8; 64];
        let read = timeout(Duration::from_millis(300), stream.read(&mut buf)).await;
        assert!(read.is_err(), "expected no answer, got {read:?}");
    }

    #[tokio::test]
    async fn forwards_both_ways() {
        let proxy = start(echo_server(b"").await).await;
        let mut a = connect(&proxy).await;
        assert_eq!(echo(&mut a, b"ping", 4).await, b"ping");
        assert_eq!(echo(&mut a, b"pong", 4).await, b"pong");
        assert_eq!(proxy.accepted(), 1);
        assert_eq!(proxy.fault(), Fault::None);
    }

    #[tokio::test]
    async fn cut_closes_open_connections_once() {
        let proxy = start(echo_server(b"").await).await;
        let mut a = connect(&proxy).await;
        assert_eq!(echo(&mut a, b"ping", 4).await, b"ping");
        proxy.set(Fault::Cut);
        assert_eq!(proxy.fault(), Fault::None);
        assert_closed(&mut a).await;
        let mut b = connect(&proxy).await;
        assert_eq!(echo(&mut b, b"ping", 4).await, b"ping");
    }

    #[tokio::test]
    async fn refuse_drops_new_connections_only() {
        let proxy = start(echo_server(b"").await).await;
        let mut a = connect(&proxy).await;
        assert_eq!(echo(&mut a, b"ping", 4).await, b"ping");
        proxy.set(Fault::Refuse);
        assert_eq!(proxy.fault(), Fault::Refuse);
        assert_refused(&proxy).await;
        assert_eq!(echo(&mut a, b"pong", 4).await, b"pong");
        assert_eq!(proxy.accepted(), 2);
    }

    #[tokio::test]
    async fn partition_cuts_and_refuses_until_lifted() {
        let proxy = start(echo_server(b"").await).await;
        let mut a = connect(&proxy).await;
        assert_eq!(echo(&mut a, b"ping", 4).await, b"ping");
        proxy.set(Fault::Partition);
        assert_closed(&mut a).await;
        assert_refused(&proxy).await;
        proxy.set(Fault::None);
        let mut c = connect(&proxy).await;
        assert_eq!(echo(&mut c, b"ping", 4).await, b"ping");
    }

    #[tokio::test]
    async fn latency_delays_each_chunk() {
        let proxy = start(echo_server(b"").await).await;
        let mut a = connect(&proxy).await;
        assert_eq!(echo(&mut a, b"ping", 4).await, b"ping");
        let delay = Duration::from_millis(200);
        proxy.set(Fault::Latency(delay));
        assert_eq!(proxy.fault(), Fault::Latency(delay));
        let began = Instant::now();
        assert_eq!(echo(&mut a, b"pong", 4).await, b"pong");
        assert!(
            began.elapsed() >= delay,
            "round trip took {:?}",
            began.elapsed()
        );
    }

    #[tokio::test]
    async fn stall_forwards_nothing_then_closes() {
        let proxy = start(echo_server(b"").await).await;
        let mut a = connect(&proxy).await;
        assert_eq!(echo(&mut a, b"ping", 4).await, b"ping");
        proxy.set(Fault::Stall);
        // Opened before the stall: its writes get no answer.
        a.write_all(b"ping").await.expect("write to stalled proxy");
        assert_silent(&mut a).await;
        // Opened during the stall: accepted, never answered.
        let mut b = connect(&proxy).await;
        b.write_all(b"ping").await.expect("write to stalled proxy");
        assert_silent(&mut b).await;
        proxy.set(Fault::None);
        assert_closed(&mut a).await;
        assert_closed(&mut b).await;
        let mut c = connect(&proxy).await;
        assert_eq!(echo(&mut c, b"ping", 4).await, b"ping");
    }

    #[tokio::test]
    async fn set_upstream_fails_over() {
        let proxy = start(echo_server(b"").await).await;
        let mut a = connect(&proxy).await;
        assert_eq!(echo(&mut a, b"ping", 4).await, b"ping");
        proxy.set_upstream(echo_server(b"B:").await);
        assert_closed(&mut a).await;
        let mut b = connect(&proxy).await;
        assert_eq!(echo(&mut b, b"ping", 6).await, b"B:ping");
    }

    #[tokio::test]
    async fn drop_closes_connections() {
        let proxy = start(echo_server(b"").await).await;
        let mut a = connect(&proxy).await;
        assert_eq!(echo(&mut a, b"ping", 4).await, b"ping");
        drop(proxy);
        assert_closed(&mut a).await;
    }
}
