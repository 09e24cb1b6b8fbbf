//! The core task: the one owner of the sans-IO [`sip::transaction::Endpoint`].
//!
//! It reads the UDP socket itself, takes frames from stream connections and commands from the
//! application tasks over one channel, runs the transaction timers, and writes every transmit
//! to the UDP socket or the connection it belongs to. Nothing in here waits on the database:
//! requests that need it are handed to the [`Tu`], which answers later through
//! [`CoreHandle::respond`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use sip::transaction::{ConnectionId, Endpoint, EndpointConfig, Event, Peer, TransactionId};
use sip::{HeaderName, Message, ParseError, Request, Response, StatusCode, Transport};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use crate::transport::Connections;

/// Commands and frames the core consumes.
// One message moves at a time; boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    /// A message framed by a stream connection.
    Message { peer: Peer, message: Message },
    /// A stream frame that did not parse.
    ParseError { peer: Peer, error: ParseError },
    /// A stream connection closed.
    Closed { id: ConnectionId },
    /// The TU's answer to a server transaction.
    Respond { transaction: TransactionId, response: Response },
    /// Start a client transaction and report its final outcome.
    Request { request: Request, peer: Peer, reply: oneshot::Sender<Outcome> },
    /// Start a client transaction whose every response (provisional, final, and each
    /// retransmitted 2xx the TU must ACK) goes to `sink`; `started` gets its id.
    Dialog { request: Request, peer: Peer, sink: ClientSink, started: oneshot::Sender<Option<TransactionId>> },
    /// Cancel an INVITE client transaction (§9.1).
    Cancel { transaction: TransactionId },
    /// Send outside any transaction: the ACK for a 2xx.
    Stateless { peer: Peer, message: Message },
}

/// Where a streamed client transaction reports.
pub(crate) type ClientSink = mpsc::UnboundedSender<ClientEvent>;

/// Something that happened to a streamed client transaction.
#[derive(Debug)]
pub(crate) struct ClientEvent {
    pub(crate) transaction: TransactionId,
    pub(crate) kind: ClientEventKind,
}

#[derive(Debug)]
pub(crate) enum ClientEventKind {
    Response(Response),
    /// Timer B/F: treat as 408.
    Timeout,
    TransportError,
}

/// Who waits on a client transaction.
enum Pending {
    Once(oneshot::Sender<Outcome>),
    Stream(ClientSink),
}

/// How a client transaction ended.
#[derive(Debug)]
pub enum Outcome {
    Response(Response),
    /// Timer B/F: no final response.
    Timeout,
    /// The request could not be sent or built.
    TransportError,
}

/// A cheap handle on the core task.
#[derive(Clone)]
pub(crate) struct CoreHandle {
    tx: mpsc::Sender<Command>,
}

impl CoreHandle {
    pub(crate) async fn send(&self, command: Command) -> Result<(), ()> {
        self.tx.send(command).await.map_err(|_| ())
    }

    pub(crate) async fn respond(&self, transaction: TransactionId, response: Response) {
        let _ = self.tx.send(Command::Respond { transaction, response }).await;
    }

    /// Sends a request in a client transaction and waits for its final outcome.
    pub(crate) async fn request(&self, request: Request, peer: Peer) -> Outcome {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Request { request, peer, reply }).await.is_err() {
            return Outcome::TransportError;
        }
        rx.await.unwrap_or(Outcome::TransportError)
    }

    /// Starts a client transaction reporting every response to `sink`; `None` if the
    /// transaction layer refused the request.
    pub(crate) async fn start(
        &self,
        request: Request,
        peer: Peer,
        sink: ClientSink,
    ) -> Option<TransactionId> {
        let (started, rx) = oneshot::channel();
        self.tx.send(Command::Dialog { request, peer, sink, started }).await.ok()?;
        rx.await.ok().flatten()
    }

    pub(crate) async fn cancel(&self, transaction: TransactionId) {
        let _ = self.tx.send(Command::Cancel { transaction }).await;
    }

    pub(crate) async fn send_stateless(&self, peer: Peer, message: Message) {
        let _ = self.tx.send(Command::Stateless { peer, message }).await;
    }
}

/// The transaction user: what happens to requests that pass the transaction layer.
pub(crate) trait Tu: Send + Sync + 'static {
    /// Answers at once with `Some`, or later through [`CoreHandle::respond`].
    fn on_request(
        &self,
        core: &CoreHandle,
        transaction: TransactionId,
        request: Request,
        peer: Peer,
    ) -> Option<Response>;
    /// A stream connection closed: bindings that depend on it are gone.
    fn on_connection_closed(&self, id: ConnectionId);
    /// The ACK for a 2xx we sent.
    fn on_ack(&self, request: Request, peer: Peer);
    /// A CANCEL matched an INVITE we have not answered finally; `true` if the TU answers the
    /// INVITE itself, otherwise the core sends 487.
    fn on_cancelled(&self, invite: TransactionId) -> bool;
    /// Our 2xx to an INVITE was never ACKed (§13.3.1.4).
    fn on_ack_timeout(&self, invite: TransactionId);
}

pub(crate) fn channel() -> (CoreHandle, mpsc::Receiver<Command>) {
    let (tx, rx) = mpsc::channel(8192);
    (CoreHandle { tx }, rx)
}

pub(crate) struct Core {
    pub(crate) endpoint: Endpoint,
    pub(crate) udp: Arc<UdpSocket>,
    pub(crate) connections: Connections,
    pub(crate) rx: mpsc::Receiver<Command>,
    pub(crate) handle: CoreHandle,
    pub(crate) tu: Arc<dyn Tu>,
    pub(crate) server_header: String,
    /// The UDP socket is IPv6 (dual-stack): IPv4 peers need their mapped form.
    udp_v6: bool,
    pending: HashMap<TransactionId, Pending>,
}

impl Core {
    pub(crate) fn new(
        config: EndpointConfig,
        udp: Arc<UdpSocket>,
        connections: Connections,
        rx: mpsc::Receiver<Command>,
        handle: CoreHandle,
        tu: Arc<dyn Tu>,
    ) -> Self {
        let endpoint = Endpoint::new(config, Box::new(rand::random::<u64>));
        let udp_v6 = matches!(udp.local_addr(), Ok(SocketAddr::V6(_)));
        Self {
            udp_v6,
            endpoint,
            udp,
            connections,
            rx,
            handle,
            tu,
            server_header: format!("SIVO/{}", env!("CARGO_PKG_VERSION")),
            pending: HashMap::new(),
        }
    }

    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut buf = vec![0u8; 65_535];
        loop {
            let deadline = self.endpoint.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                received = self.udp.recv_from(&mut buf) => {
                    if let Ok((n, from)) = received {
                        self.datagram(buf.get(..n).unwrap_or_default(), from);
                        // Take what else is waiting without another trip through the reactor.
                        for _ in 0..64 {
                            match self.udp.try_recv_from(&mut buf) {
                                Ok((n, from)) => self.datagram(buf.get(..n).unwrap_or_default(), from),
                                Err(_) => break,
                            }
                        }
                    }
                }
                command = self.rx.recv() => {
                    let Some(command) = command else { break };
                    self.command(command);
                    // Drain what else is queued before polling the socket again.
                    for _ in 0..64 {
                        match self.rx.try_recv() {
                            Ok(c) => self.command(c),
                            Err(_) => break,
                        }
                    }
                }
                () = sleep_until(deadline) => {
                    self.endpoint.handle_timeout(StdInstant::now());
                }
                () = crate::stopped(&mut stop) => break,
            }
            self.flush().await;
        }
    }

    fn datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        // Bare CRLF keep-alives (RFC 5626 §4.4.1 uses STUN; some phones send CRLF).
        if bytes.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return;
        }
        let peer = Peer::udp(crate::transport::canonical(from));
        match sip::parse_datagram_with(bytes, &self.endpoint.config().limits) {
            Ok(message) => self.message(StdInstant::now(), peer, message),
            Err(error) => self.endpoint.handle_parse_error(peer, &error),
        }
    }

    fn command(&mut self, command: Command) {
        let now = StdInstant::now();
        match command {
            Command::Message { peer, message } => self.message(now, peer, message),
            Command::ParseError { peer, error } => self.endpoint.handle_parse_error(peer, &error),
            Command::Closed { id } => self.tu.on_connection_closed(id),
            Command::Respond { transaction, response } => self.respond(transaction, response),
            Command::Request { request, peer, reply } => match self.endpoint.send_request(now, request, peer)
            {
                Ok(id) => {
                    self.pending.insert(id, Pending::Once(reply));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "sip request refused by the transaction layer");
                    let _ = reply.send(Outcome::TransportError);
                }
            },
            Command::Dialog { request, peer, sink, started } => {
                match self.endpoint.send_request(now, request, peer) {
                    Ok(id) => {
                        self.pending.insert(id, Pending::Stream(sink));
                        let _ = started.send(Some(id));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "sip request refused by the transaction layer");
                        let _ = started.send(None);
                    }
                }
            }
            Command::Cancel { transaction } => {
                if let Ok(cancel) = self.endpoint.cancel(now, transaction) {
                    // The CANCEL's own 200 matters to nobody; the INVITE's 487 does.
                    self.pending.remove(&cancel);
                }
            }
            Command::Stateless { peer, message } => self.endpoint.send_stateless(peer, &message),
        }
    }

    /// A received message. OPTIONS that need no application answer are answered statelessly
    /// (RFC 3261 §8.2.7), like Kamailio's `sl_send_reply`: a keepalive ping then costs no
    /// transaction kept for Timer J (32 s over UDP); a retransmission gets the same answer.
    fn message(&mut self, now: StdInstant, peer: Peer, message: Message) {
        if let Message::Request(request) = &message
            && request.method == sip::Method::Options
            && sip::check_request(request).is_ok()
            && crate::policy::precheck(request).is_none()
            && let Some(mut response) = crate::policy::simple(request)
        {
            stamp_received(&mut response, peer.addr);
            response.set_to_tag(&stateless_tag(request));
            response.headers.push(HeaderName::Server, self.server_header.clone());
            self.endpoint.send_stateless(peer, &Message::Response(response));
            return;
        }
        self.endpoint.handle_message(now, peer, message);
    }

    fn respond(&mut self, transaction: TransactionId, mut response: Response) {
        if response.status != StatusCode::TRYING {
            let tag = self.endpoint.new_tag();
            response.set_to_tag(&tag);
        }
        if !response.headers.contains(&HeaderName::Server) {
            response.headers.push(HeaderName::Server, self.server_header.clone());
        }
        // The transaction may be gone (CANCEL answered it, or it timed out): nothing to do.
        let _ = self.endpoint.respond(StdInstant::now(), transaction, response);
    }

    async fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(event) = self.endpoint.poll_event() {
                progressed = true;
                self.event(event);
            }
            while let Some(t) = self.endpoint.poll_transmit() {
                progressed = true;
                self.transmit(t).await;
            }
            if !progressed {
                break;
            }
        }
    }

    async fn transmit(&mut self, t: sip::transaction::Transmit) {
        let sent = match (&t.peer.transport, t.peer.connection) {
            (Transport::Udp, _) => send_udp(&self.udp, self.udp_v6, &t.payload, t.peer.addr).await,
            (_, Some(id)) => self.connections.send(id, t.payload),
            (_, None) => false,
        };
        if !sent && let Some(tx) = t.transaction {
            self.endpoint.handle_transport_error(tx);
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Request { transaction, request, peer } => {
                if let Some(response) = self.tu.on_request(&self.handle, transaction, request, peer) {
                    self.respond(transaction, response);
                }
            }
            Event::Cancelled { invite, .. } => {
                if !self.tu.on_cancelled(invite)
                    && let Some(request) = self.endpoint.server_request(invite).cloned()
                {
                    self.respond(invite, Response::for_request(&request, StatusCode::REQUEST_TERMINATED));
                }
            }
            Event::Ack { request, peer, .. } => self.tu.on_ack(request, peer),
            Event::AckTimeout { transaction } => self.tu.on_ack_timeout(transaction),
            Event::Response { transaction, response } => match self.pending.get(&transaction) {
                Some(Pending::Stream(sink)) => {
                    let _ = sink.send(ClientEvent { transaction, kind: ClientEventKind::Response(response) });
                }
                Some(Pending::Once(_)) if response.status.is_final() => {
                    if let Some(Pending::Once(reply)) = self.pending.remove(&transaction) {
                        let _ = reply.send(Outcome::Response(response));
                    }
                }
                _ => {}
            },
            Event::Timeout { transaction } => {
                self.finish(transaction, Outcome::Timeout, ClientEventKind::Timeout)
            }
            Event::TransportError { transaction } => {
                self.finish(transaction, Outcome::TransportError, ClientEventKind::TransportError);
            }
            Event::Terminated { transaction } => {
                // A streamed transaction already reported its final response (or timeout).
                if let Some(Pending::Once(reply)) = self.pending.remove(&transaction) {
                    let _ = reply.send(Outcome::Timeout);
                }
            }
            // A 2xx after Timer M: its dialog's actor re-ACKs the retransmissions it sees
            // inside the transaction; one this late is left to the peer's Timer H.
            _ => {}
        }
    }

    /// A client transaction ended without a final response.
    fn finish(&mut self, transaction: TransactionId, once: Outcome, stream: ClientEventKind) {
        match self.pending.remove(&transaction) {
            Some(Pending::Once(reply)) => {
                let _ = reply.send(once);
            }
            Some(Pending::Stream(sink)) => {
                let _ = sink.send(ClientEvent { transaction, kind: stream });
            }
            None => {}
        }
    }
}

/// Fills `received`/`rport` in the response's top Via from the packet's source (RFC 3581), as
/// the transaction layer does for requests it keeps.
fn stamp_received(response: &mut Response, source: SocketAddr) {
    let Ok(mut via) = response.headers.top_via() else { return };
    via.set_received(source);
    let Some(first) = response.headers.get(&HeaderName::Via).map(str::to_owned) else { return };
    // Keep any further Via values that shared the first line.
    let rest = first.split_once(',').map(|(_, r)| r.trim().to_owned());
    let line = match rest {
        Some(r) if !r.is_empty() => format!("{via}, {r}"),
        _ => via.to_string(),
    };
    response.headers.replace_first(&HeaderName::Via, line);
}

/// The same To tag for every retransmission of a request (§8.2.7): a hash of what identifies it.
fn stateless_tag(request: &Request) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    request.headers.call_id().unwrap_or_default().hash(&mut h);
    request.headers.from().ok().and_then(|f| f.tag().map(str::to_owned)).hash(&mut h);
    request.headers.top_via().ok().and_then(|v| v.branch().map(str::to_owned)).hash(&mut h);
    request.headers.cseq().map(|c| c.seq).unwrap_or_default().hash(&mut h);
    format!("{:016x}", h.finish())
}

async fn send_udp(socket: &UdpSocket, v6: bool, payload: &[u8], addr: SocketAddr) -> bool {
    // The socket may be IPv4-only or dual-stack; a v4 peer on a v6 socket needs the mapped form.
    let target = match (v6, addr) {
        (true, SocketAddr::V4(v4)) => {
            SocketAddr::new(std::net::IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
        }
        _ => addr,
    };
    socket.send_to(payload, target).await.is_ok()
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
