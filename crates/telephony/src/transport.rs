//! Stream transports (TCP, TLS): the connection table, accept loops, outbound connects with
//! reuse, and one task per connection that frames bytes into SIP messages.
//!
//! UDP is owned by the core task itself (one socket, no per-peer state). Stream connections
//! are registered in [`Connections`] under a [`ConnectionId`]; the core writes to a connection
//! through its bounded channel, and the connection task hands every frame to the core.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sip::transaction::{ConnectionId, Peer};
use sip::{Frame, Framer, Limits, Transport};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::core::{Command, CoreHandle};

/// Bytes queued for one connection; a peer that does not read them is dropped.
const CONNECTION_QUEUE: usize = 256;

/// Limits on stream connections.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    /// Open connections (inbound and outbound) in all.
    pub max_connections: usize,
    /// Open inbound connections from one IP address.
    pub max_connections_per_ip: usize,
    /// A connection that sends nothing (not even a CRLF keep-alive) for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self { max_connections: 10_000, max_connections_per_ip: 100, idle_timeout: Duration::from_secs(3600) }
    }
}

struct Conn {
    transport: Transport,
    addr: SocketAddr,
    tx: mpsc::Sender<Vec<u8>>,
    inbound: bool,
}

#[derive(Default)]
struct Table {
    next: u64,
    by_id: HashMap<ConnectionId, Conn>,
    by_addr: HashMap<(Transport, SocketAddr), ConnectionId>,
    inbound_per_ip: HashMap<IpAddr, usize>,
}

/// The open stream connections, shared by the core and the transport tasks.
#[derive(Clone, Default)]
pub(crate) struct Connections(Arc<Mutex<Table>>);

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a connection, or refuses it when a limit is reached.
    pub(crate) fn register(
        &self,
        transport: Transport,
        addr: SocketAddr,
        inbound: bool,
        limits: &StreamLimits,
    ) -> Option<(ConnectionId, mpsc::Receiver<Vec<u8>>)> {
        let mut t = self.lock();
        if t.by_id.len() >= limits.max_connections {
            return None;
        }
        let ip = addr.ip().to_canonical();
        if inbound {
            let n = t.inbound_per_ip.entry(ip).or_default();
            if *n >= limits.max_connections_per_ip {
                return None;
            }
            *n += 1;
        }
        t.next += 1;
        let id = ConnectionId(t.next);
        let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
        t.by_addr.insert((transport.clone(), addr), id);
        t.by_id.insert(id, Conn { transport, addr, tx, inbound });
        Some((id, rx))
    }

    pub(crate) fn remove(&self, id: ConnectionId) {
        let mut t = self.lock();
        if let Some(c) = t.by_id.remove(&id) {
            let key = (c.transport, c.addr);
            if t.by_addr.get(&key) == Some(&id) {
                t.by_addr.remove(&key);
            }
            if c.inbound {
                let ip = c.addr.ip().to_canonical();
                if let Some(n) = t.inbound_per_ip.get_mut(&ip) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        t.inbound_per_ip.remove(&ip);
                    }
                }
            }
        }
    }

    /// Queues bytes on a connection; false if it is gone or not keeping up.
    pub(crate) fn send(&self, id: ConnectionId, bytes: Vec<u8>) -> bool {
        let tx = self.lock().by_id.get(&id).map(|c| c.tx.clone());
        tx.is_some_and(|tx| tx.try_send(bytes).is_ok())
    }

    /// An open connection to `addr` over `transport`, for reuse (RFC 3261 §18.1.1).
    pub(crate) fn find(&self, transport: &Transport, addr: SocketAddr) -> Option<ConnectionId> {
        self.lock().by_addr.get(&(transport.clone(), addr)).copied()
    }
}

/// What a connection task needs.
#[derive(Clone)]
pub(crate) struct StreamCtx {
    pub(crate) connections: Connections,
    pub(crate) core: CoreHandle,
    pub(crate) limits: StreamLimits,
    pub(crate) message_limits: Limits,
    pub(crate) stop: watch::Receiver<bool>,
    /// The bound SIP address, for Via headers of our own requests.
    pub(crate) local_addr: SocketAddr,
}

/// Accepts TCP connections until stopped.
pub(crate) async fn accept_tcp(listener: tokio::net::TcpListener, ctx: StreamCtx) {
    let mut stop = ctx.stop.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = crate::stopped(&mut stop) => return,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "sip tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        spawn_stream(stream, Transport::Tcp, addr, true, ctx.clone());
    }
}

/// Registers and runs a connection; refused connections are closed at once.
pub(crate) fn spawn_stream<S>(
    stream: S,
    transport: Transport,
    addr: SocketAddr,
    inbound: bool,
    ctx: StreamCtx,
) -> Option<ConnectionId>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let addr = canonical(addr);
    let Some((id, rx)) = ctx.connections.register(transport.clone(), addr, inbound, &ctx.limits) else {
        tracing::debug!(transport = %transport, "sip connection refused: connection limit");
        return None;
    };
    let peer = Peer { transport, addr, connection: Some(id) };
    tokio::spawn(run_stream(stream, peer, rx, ctx));
    Some(id)
}

/// Opens (or reuses) a TCP connection to `addr`.
pub(crate) async fn connect_tcp(addr: SocketAddr, ctx: &StreamCtx) -> std::io::Result<ConnectionId> {
    let addr = canonical(addr);
    if let Some(id) = ctx.connections.find(&Transport::Tcp, addr) {
        return Ok(id);
    }
    let stream = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    spawn_stream(stream, Transport::Tcp, addr, false, ctx.clone())
        .ok_or_else(|| std::io::Error::other("connection limit reached"))
}

/// IPv4-mapped IPv6 addresses become plain IPv4, so one peer has one address.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

async fn run_stream<S>(stream: S, peer: Peer, mut rx: mpsc::Receiver<Vec<u8>>, ctx: StreamCtx)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = peer.connection.unwrap_or(ConnectionId(0));
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut framer = Framer::new(ctx.message_limits);
    let mut buf = vec![0u8; 16 * 1024];
    let mut stop = ctx.stop.clone();
    let mut deadline = Instant::now() + ctx.limits.idle_timeout;
    let mut closing = false;
    'conn: loop {
        tokio::select! {
            read = rd.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                deadline = Instant::now() + ctx.limits.idle_timeout;
                framer.push(buf.get(..n).unwrap_or_default());
                loop {
                    match framer.next_frame() {
                        Ok(None) => break,
                        // RFC 5626 §3.5.1: answer a double-CRLF ping with a single CRLF.
                        Ok(Some(Frame::Ping)) => {
                            if wr.write_all(b"\r\n").await.is_err() {
                                break 'conn;
                            }
                        }
                        Ok(Some(Frame::Pong)) => {}
                        Ok(Some(Frame::Message(message))) => {
                            if ctx.core.send(Command::Message { peer: peer.clone(), message }).await.is_err() {
                                break 'conn;
                            }
                        }
                        Err(error) => {
                            let _ = ctx.core.send(Command::ParseError { peer: peer.clone(), error }).await;
                            if framer.is_broken() {
                                closing = true;
                                break;
                            }
                        }
                    }
                }
                if closing {
                    break;
                }
            }
            out = rx.recv() => {
                let Some(bytes) = out else { break };
                if wr.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            () = tokio::time::sleep_until(deadline) => break,
            () = crate::stopped(&mut stop) => break,
        }
    }
    if closing {
        // The stream lost its framing: let the core's answer (400, 413, 513) out, then close.
        let until = Instant::now() + Duration::from_secs(1);
        while let Ok(Some(bytes)) = tokio::time::timeout_at(until, rx.recv()).await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    }
    let _ = wr.shutdown().await;
    ctx.connections.remove(id);
    let _ = ctx.core.send(Command::Closed { id }).await;
}
