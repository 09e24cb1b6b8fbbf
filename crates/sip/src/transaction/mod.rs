//! The transaction layer (RFC 3261 §17, RFC 6026) behind a sans-IO [`Endpoint`].
//!
//! # Contract
//!
//! The endpoint does no I/O and reads no clock. The driver (a tokio task in `telephony`)
//! owns the sockets and a timer, and runs this loop:
//!
//! 1. Feed input: [`Endpoint::handle_datagram`] (UDP, WebSocket messages),
//!    [`Endpoint::handle_message`] / [`Endpoint::handle_parse_error`] (frames from a
//!    [`crate::Framer`]), [`Endpoint::handle_timeout`] when the timer fires,
//!    [`Endpoint::handle_transport_error`] when a send or connection fails.
//! 2. Feed TU commands: [`Endpoint::send_request`], [`Endpoint::respond`],
//!    [`Endpoint::cancel`], [`Endpoint::send_stateless`] (the ACK for a 2xx).
//! 3. Drain [`Endpoint::poll_transmit`] into the sockets and [`Endpoint::poll_event`] into
//!    the TU, then arm the timer for [`Endpoint::poll_timeout`].
//!
//! After any call in 1 or 2, drain step 3 before waiting again. `now` must not go backwards.
//!
//! ```no_run
//! use std::time::Instant;
//! use sip::transaction::{Endpoint, EndpointConfig, Event, Peer};
//!
//! # fn recv() -> (Peer, Vec<u8>) { unimplemented!() }
//! # fn send(_: &Peer, _: &[u8]) {}
//! # fn random() -> u64 { 4 }
//! let mut endpoint = Endpoint::new(EndpointConfig::default(), Box::new(random));
//! loop {
//!     let (peer, datagram) = recv(); // or: the timer at `poll_timeout` fired
//!     endpoint.handle_datagram(Instant::now(), peer, &datagram);
//!     endpoint.handle_timeout(Instant::now());
//!     while let Some(t) = endpoint.poll_transmit() {
//!         send(&t.peer, &t.payload);
//!     }
//!     while let Some(event) = endpoint.poll_event() {
//!         if let Event::Request { transaction, request, .. } = event {
//!             let mut ok = sip::Response::for_request(&request, sip::StatusCode::OK);
//!             ok.set_to_tag(&endpoint.new_tag());
//!             endpoint.respond(Instant::now(), transaction, ok).unwrap();
//!         }
//!     }
//!     let _next_wakeup = endpoint.poll_timeout();
//! }
//! ```
//!
//! Requests that fail [`crate::check_request`] are answered statelessly (400, 416, 505) and
//! never reach the TU. Responses are sent back to the address and connection the request
//! came from (symmetric response routing, as with RFC 3581 rport), and the top Via of every
//! received request gets `received`/`rport` filled in so the TU's responses carry them.

mod client;
mod key;
mod server;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use client::{ClientState, ClientTx, ResponseEffect, build_cancel};
use key::{AckKey, ClientKey, ServerKey};
pub use server::RespondError;
use server::{ServerState, ServerTx};

use crate::check::{check_request, check_response};
use crate::header::{HeaderError, HeaderName, Headers};
use crate::message::{Message, Request, Response, StatusCode};
use crate::method::Method;
use crate::parser::{Disposition, Limits, ParseError, parse_datagram_with};
use crate::via::{BRANCH_MAGIC_COOKIE, Transport};

/// The driver's handle for a stream connection (TCP, TLS, WS), so responses go back on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// The other end of a message: transport, address, and connection for streams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    pub connection: Option<ConnectionId>,
}

impl Peer {
    pub fn udp(addr: SocketAddr) -> Self {
        Self { transport: Transport::Udp, addr, connection: None }
    }

    /// Reliable transports get no retransmissions and zero-length wait timers (§17).
    pub fn is_reliable(&self) -> bool {
        self.transport.is_reliable()
    }
}

/// An opaque transaction handle, unique for the endpoint's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(u64);

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub peer: Peer,
    pub payload: Vec<u8>,
    /// The transaction that sent it, if any (stateless replies have none).
    pub transaction: Option<TransactionId>,
}

/// Something the transaction user (dialog layer, B2BUA) must hear about.
// Events are moved to the TU one at a time; boxing the requests would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A new request. Answer with [`Endpoint::respond`]. An INVITE gets an automatic
    /// 100 Trying if the TU has not answered within [`TimerConfig::trying`].
    Request { transaction: TransactionId, request: Request, peer: Peer },
    /// An ACK that is not part of a non-2xx transaction: the ACK for a 2xx. `transaction` is
    /// the INVITE server transaction it completes, if that is still around.
    Ack { request: Request, peer: Peer, transaction: Option<TransactionId> },
    /// A CANCEL matched an INVITE that has no final response yet. The endpoint has
    /// answered the CANCEL with 200; the TU should answer the INVITE with 487 (§9.2).
    Cancelled { invite: TransactionId, request: Request },
    /// A response to a client transaction: provisional, final, and in Accepted state every
    /// further 2xx (retransmissions and forks), each of which the TU must ACK.
    Response { transaction: TransactionId, response: Response },
    /// Timer B or F (client: treat as 408), Timer H (server: the ACK never came), or a
    /// non-INVITE the TU never answered.
    Timeout { transaction: TransactionId },
    /// The driver reported that sending for this transaction failed.
    TransportError { transaction: TransactionId },
    /// Our 2xx to an INVITE was never ACKed within Timer L: the TU should send BYE
    /// (§13.3.1.4).
    AckTimeout { transaction: TransactionId },
    /// A 2xx to an INVITE that matches no transaction (it arrived after Timer M). The TU
    /// should ACK it, or ACK and BYE it if it has no dialog for it.
    StrayResponse { response: Response, peer: Peer },
    /// The transaction is gone; its id is no longer valid.
    Terminated { transaction: TransactionId },
}

/// RFC 3261 timer values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// Round-trip estimate; 500 ms.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses; 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network; 5 s.
    pub t4: Duration,
    /// How long an INVITE waits for the TU before the endpoint sends 100 Trying; 200 ms.
    pub trying: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            trying: Duration::from_millis(200),
        }
    }
}

impl TimerConfig {
    /// Timer D: at least 32 s on unreliable transports.
    fn timer_d(&self) -> Duration {
        self.t1.saturating_mul(64).max(Duration::from_secs(32))
    }

    /// Zero intervals would make retransmission loops spin; clamp to 1 ms.
    fn sanitized(self) -> Self {
        let min = Duration::from_millis(1);
        Self { t1: self.t1.max(min), t2: self.t2.max(min), t4: self.t4.max(min), trying: self.trying }
    }
}

/// Endpoint settings.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub timers: TimerConfig,
    /// Limits for [`Endpoint::handle_datagram`].
    pub limits: Limits,
    /// New requests beyond this many live server transactions are refused statelessly with
    /// 503 and Retry-After, so a flood cannot grow memory without bound.
    pub max_server_transactions: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self { timers: TimerConfig::default(), limits: Limits::default(), max_server_transactions: 65_536 }
    }
}

/// Why [`Endpoint::send_request`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("ack is not a transaction; use send_stateless")]
    Ack,
    #[error("top via needs a branch starting with the magic cookie")]
    MissingBranch,
    #[error("cseq method does not match the request")]
    CSeqMismatch,
    #[error("a transaction with this branch and method exists")]
    DuplicateTransaction,
    #[error(transparent)]
    Header(#[from] HeaderError),
}

/// Why [`Endpoint::cancel`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CancelError {
    #[error("no such client transaction")]
    UnknownTransaction,
    #[error("only an invite can be cancelled")]
    NotInvite,
    #[error("the invite already has a final response")]
    AlreadyFinal,
}

/// What the state machines emit.
#[derive(Debug, Default)]
struct Output {
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

/// `now + d`, or `None` if that is beyond what `Instant` can hold (then the timer never
/// fires, which beats panicking).
fn later(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

/// Source of randomness for branches and tags, supplied by the driver.
pub type RandomSource = Box<dyn FnMut() -> u64 + Send>;

/// The transaction layer. See the module documentation for the driving contract.
pub struct Endpoint {
    config: EndpointConfig,
    random: RandomSource,
    next_id: u64,
    clients: HashMap<TransactionId, ClientTx>,
    client_keys: HashMap<ClientKey, TransactionId>,
    servers: HashMap<TransactionId, ServerTx>,
    server_keys: HashMap<ServerKey, TransactionId>,
    /// INVITE server transactions in Accepted, by the identifiers of the ACK for the 2xx.
    accepted: HashMap<AckKey, TransactionId>,
    /// Wake-ups by deadline; stale entries are skipped when popped.
    timers: BinaryHeap<Reverse<(Instant, TransactionId)>>,
    out: Output,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("clients", &self.clients.len())
            .field("servers", &self.servers.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// `random` supplies the randomness in branches and tags; give it a CSPRNG in production.
    pub fn new(config: EndpointConfig, random: RandomSource) -> Self {
        let config = EndpointConfig { timers: config.timers.sanitized(), ..config };
        Self {
            config,
            random,
            next_id: 1,
            clients: HashMap::new(),
            client_keys: HashMap::new(),
            servers: HashMap::new(),
            server_keys: HashMap::new(),
            accepted: HashMap::new(),
            timers: BinaryHeap::new(),
            out: Output::default(),
        }
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// A fresh RFC 3261 branch (`z9hG4bK` and 128 random bits).
    pub fn new_branch(&mut self) -> String {
        format!("{BRANCH_MAGIC_COOKIE}{:016x}{:016x}", (self.random)(), (self.random)())
    }

    /// A fresh From/To tag (64 random bits).
    pub fn new_tag(&mut self) -> String {
        format!("{:016x}", (self.random)())
    }

    /// A fresh Call-ID (128 random bits), optionally `@host`.
    pub fn new_call_id(&mut self, host: Option<&str>) -> String {
        let id = format!("{:016x}{:016x}", (self.random)(), (self.random)());
        match host {
            Some(h) => format!("{id}@{h}"),
            None => id,
        }
    }

    fn allocate_id(&mut self) -> TransactionId {
        let id = TransactionId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Number of live transactions, client and server.
    pub fn transaction_count(&self) -> usize {
        self.clients.len() + self.servers.len()
    }

    /// The request that created a server transaction.
    pub fn server_request(&self, transaction: TransactionId) -> Option<&Request> {
        self.servers.get(&transaction).map(|tx| &tx.request)
    }

    /// The request a client transaction sent.
    pub fn client_request(&self, transaction: TransactionId) -> Option<&Request> {
        self.clients.get(&transaction).map(|tx| &tx.request)
    }

    // ---- Input -------------------------------------------------------------------------

    /// Parses a datagram and handles it; a broken request is answered if possible.
    pub fn handle_datagram(&mut self, now: Instant, peer: Peer, bytes: &[u8]) {
        match parse_datagram_with(bytes, &self.config.limits) {
            Ok(message) => self.handle_message(now, peer, message),
            Err(error) => self.handle_parse_error(peer, &error),
        }
    }

    /// Answers a message that failed to parse, if [`ParseError::disposition`] says so.
    pub fn handle_parse_error(&mut self, peer: Peer, error: &ParseError) {
        if let (Disposition::Reply { status, reason }, Some(headers)) = (error.disposition(), error.headers())
        {
            let mut response = Response::for_headers(headers, status).with_reason(reason);
            let tag = self.new_tag();
            response.set_to_tag(&tag);
            self.send_stateless(peer, &Message::Response(response));
        }
    }

    pub fn handle_message(&mut self, now: Instant, peer: Peer, message: Message) {
        match message {
            Message::Request(r) => self.handle_request(now, peer, r),
            Message::Response(r) => self.handle_response(now, peer, r),
        }
    }

    fn handle_request(&mut self, now: Instant, peer: Peer, mut request: Request) {
        if let Err(defect) = check_request(&request) {
            if request.method != Method::Ack && request.headers.contains(&HeaderName::Via) {
                let mut response = defect.response_to(&request);
                let tag = self.new_tag();
                response.set_to_tag(&tag);
                self.send_stateless(peer, &Message::Response(response));
            }
            return;
        }
        let Some(key) = ServerKey::from_request(&request) else {
            return;
        };
        stamp_received(&mut request.headers, peer.addr);

        if request.method == Method::Ack {
            self.handle_ack(now, peer, request, &key);
            return;
        }
        if let Some(&id) = self.server_keys.get(&key) {
            if let Some(tx) = self.servers.get_mut(&id) {
                tx.on_retransmission(&mut self.out);
            }
            return;
        }
        if self.servers.len() >= self.config.max_server_transactions {
            let mut response = Response::for_request(&request, StatusCode::SERVICE_UNAVAILABLE);
            response.headers.push(HeaderName::RetryAfter, "5");
            let tag = self.new_tag();
            response.set_to_tag(&tag);
            self.send_stateless(peer, &Message::Response(response));
            return;
        }
        if request.method == Method::Cancel {
            self.handle_cancel(now, peer, request, key);
            return;
        }
        let id = self.allocate_id();
        let tx = ServerTx::new(id, key.clone(), request.clone(), peer.clone(), now, &self.config.timers);
        self.servers.insert(id, tx);
        self.server_keys.insert(key, id);
        self.schedule_server(id);
        self.out.events.push_back(Event::Request { transaction: id, request, peer });
    }

    fn handle_ack(&mut self, now: Instant, peer: Peer, request: Request, key: &ServerKey) {
        // The ACK for a non-2xx shares the INVITE's transaction key (§17.2.3).
        if let Some(&id) = self.server_keys.get(key)
            && let Some(tx) = self.servers.get_mut(&id)
        {
            match tx.state {
                ServerState::Completed => tx.on_ack(now, &self.config.timers),
                ServerState::Confirmed => {}
                // An RFC 2543 peer's ACK for our 2xx can match the key as well.
                ServerState::Accepted => {
                    tx.on_2xx_ack();
                    self.out.events.push_back(Event::Ack { request, peer, transaction: Some(id) });
                }
                _ => {}
            }
            self.schedule_server(id);
            return;
        }
        let accepted = AckKey::from_request(&request)
            .and_then(|k| self.accepted.get(&k).copied())
            .filter(|id| self.servers.contains_key(id));
        if let Some(id) = accepted
            && let Some(tx) = self.servers.get_mut(&id)
        {
            tx.on_2xx_ack();
            self.schedule_server(id);
        }
        self.out.events.push_back(Event::Ack { request, peer, transaction: accepted });
    }

    fn handle_cancel(&mut self, now: Instant, peer: Peer, request: Request, key: ServerKey) {
        let invite = self.server_keys.get(&key.with_method(Method::Invite)).copied();
        let id = self.allocate_id();
        let tx = ServerTx::new(id, key.clone(), request.clone(), peer, now, &self.config.timers);
        self.servers.insert(id, tx);
        self.server_keys.insert(key, id);

        let invite_tx = invite.and_then(|i| self.servers.get(&i));
        let (status, tag, pending) = match invite_tx {
            None => (StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST, None, false),
            Some(inv) => (StatusCode::OK, inv.to_tag.clone(), inv.state == ServerState::Proceeding),
        };
        let tag = tag.unwrap_or_else(|| self.new_tag());
        let mut response = Response::for_request(&request, status);
        response.set_to_tag(&tag);
        if let Some(tx) = self.servers.get_mut(&id) {
            // A fresh transaction accepts any first response, so this cannot fail.
            let _ = tx.respond(now, &response, &self.config.timers, &mut self.out);
        }
        self.schedule_server(id);
        if let (Some(invite), true) = (invite, pending) {
            self.out.events.push_back(Event::Cancelled { invite, request });
        }
    }

    fn handle_response(&mut self, now: Instant, peer: Peer, response: Response) {
        if check_response(&response).is_err() {
            return;
        }
        // A UA discards responses with more than one Via (§8.1.3.3, RFC 4475 §3.3.10).
        if response.headers.vias().map_or(true, |v| v.len() != 1) {
            return;
        }
        let Some(key) = ClientKey::from_response(&response) else {
            return;
        };
        let Some(&id) = self.client_keys.get(&key) else {
            let invite_2xx = response.status.is_success()
                && response.headers.cseq().is_ok_and(|c| c.method == Method::Invite);
            if invite_2xx {
                self.out.events.push_back(Event::StrayResponse { response, peer });
            }
            return;
        };
        let Some(tx) = self.clients.get_mut(&id) else {
            return;
        };
        let effect = tx.on_response(now, response, &self.config.timers, &mut self.out);
        let pending = match effect {
            ResponseEffect::Provisional => tx.pending_cancel.take().map(|c| (c, true)),
            ResponseEffect::Final => tx.pending_cancel.take().map(|c| (c, false)),
            ResponseEffect::Ignored => None,
        };
        let invite = tx.request.clone();
        let invite_peer = tx.peer.clone();
        match pending {
            Some((cancel_id, true)) => {
                self.start_client(now, cancel_id, build_cancel(&invite), invite_peer);
            }
            // The INVITE finished before the CANCEL could go out: it never will.
            Some((cancel_id, false)) => {
                self.out.events.push_back(Event::Terminated { transaction: cancel_id })
            }
            None => {}
        }
        self.schedule_client(id);
    }

    /// Runs every timer that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(tx) = self.clients.get_mut(&id) {
                if tx.next_deadline().is_some_and(|d| d <= now) {
                    tx.on_timer(now, &self.config.timers, &mut self.out);
                    self.schedule_client(id);
                }
            } else if let Some(tx) = self.servers.get_mut(&id)
                && tx.next_deadline().is_some_and(|d| d <= now)
            {
                tx.on_timer(now, &self.config.timers, &mut self.out);
                self.schedule_server(id);
            }
        }
    }

    /// The driver could not deliver for this transaction (connection refused, reset, ICMP).
    pub fn handle_transport_error(&mut self, transaction: TransactionId) {
        if let Some(tx) = self.clients.get_mut(&transaction) {
            tx.on_transport_error(&mut self.out);
            self.schedule_client(transaction);
        } else if let Some(tx) = self.servers.get_mut(&transaction) {
            tx.on_transport_error(&mut self.out);
            self.schedule_server(transaction);
        }
    }

    // ---- TU commands -------------------------------------------------------------------

    /// Starts a client transaction. The request must carry a top Via with a fresh
    /// [`Endpoint::new_branch`] and a CSeq matching its method.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        peer: Peer,
    ) -> Result<TransactionId, SendError> {
        if request.method == Method::Ack {
            return Err(SendError::Ack);
        }
        let via = request.headers.top_via()?;
        if !via.has_rfc3261_branch() {
            return Err(SendError::MissingBranch);
        }
        if request.headers.cseq()?.method != request.method {
            return Err(SendError::CSeqMismatch);
        }
        let key = ClientKey::from_request(&request).ok_or(SendError::MissingBranch)?;
        if self.client_keys.contains_key(&key) {
            return Err(SendError::DuplicateTransaction);
        }
        let id = self.allocate_id();
        self.start_client(now, id, request, peer);
        Ok(id)
    }

    fn start_client(&mut self, now: Instant, id: TransactionId, request: Request, peer: Peer) {
        let Some(key) = ClientKey::from_request(&request) else {
            return;
        };
        let tx = ClientTx::start(id, key.clone(), request, peer, now, &self.config.timers, &mut self.out);
        self.clients.insert(id, tx);
        self.client_keys.insert(key, id);
        self.schedule_client(id);
    }

    /// Sends a message outside any transaction: the ACK for a 2xx, or a stateless reply.
    pub fn send_stateless(&mut self, peer: Peer, message: &Message) {
        self.out.transmits.push_back(Transmit { peer, payload: message.to_bytes(), transaction: None });
    }

    /// Sends the TU's response on a server transaction. The TU sets the To tag (every
    /// response but 100 needs one, and all of a dialog's responses share it).
    pub fn respond(
        &mut self,
        now: Instant,
        transaction: TransactionId,
        response: Response,
    ) -> Result<(), RespondError> {
        let tx = self.servers.get_mut(&transaction).ok_or(RespondError::UnknownTransaction)?;
        tx.respond(now, &response, &self.config.timers, &mut self.out)?;
        if tx.state == ServerState::Accepted
            && let Some(key) = tx.ack_key.clone()
        {
            self.accepted.insert(key, transaction);
        }
        self.schedule_server(transaction);
        Ok(())
    }

    /// Cancels an INVITE client transaction (§9.1). Before any provisional response the
    /// CANCEL is held back and sent when one arrives; if a final response comes first it
    /// is dropped and its id reported [`Event::Terminated`]. Returns the CANCEL's id.
    pub fn cancel(&mut self, now: Instant, invite: TransactionId) -> Result<TransactionId, CancelError> {
        let tx = self.clients.get(&invite).ok_or(CancelError::UnknownTransaction)?;
        if tx.request.method != Method::Invite {
            return Err(CancelError::NotInvite);
        }
        match tx.state {
            ClientState::Calling => {
                if let Some(pending) = tx.pending_cancel {
                    return Ok(pending);
                }
                let id = self.allocate_id();
                if let Some(tx) = self.clients.get_mut(&invite) {
                    tx.pending_cancel = Some(id);
                }
                Ok(id)
            }
            ClientState::Proceeding => {
                let cancel = build_cancel(&tx.request);
                let peer = tx.peer.clone();
                let key = ClientKey::from_request(&cancel);
                if let Some(&existing) = key.and_then(|k| self.client_keys.get(&k)) {
                    return Ok(existing);
                }
                let id = self.allocate_id();
                self.start_client(now, id, cancel, peer);
                Ok(id)
            }
            _ => Err(CancelError::AlreadyFinal),
        }
    }

    // ---- Output ------------------------------------------------------------------------

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] should next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Drop entries whose transaction is gone or has moved its deadline.
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            let current = self
                .clients
                .get(&id)
                .map(ClientTx::next_deadline)
                .or_else(|| self.servers.get(&id).map(ServerTx::next_deadline))
                .flatten();
            if current.is_some_and(|d| d <= at) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    // ---- Bookkeeping -------------------------------------------------------------------

    fn schedule_client(&mut self, id: TransactionId) {
        let Some(tx) = self.clients.get(&id) else {
            return;
        };
        if tx.state == ClientState::Terminated {
            let key = tx.key.clone();
            if let Some(pending) = tx.pending_cancel {
                self.out.events.push_back(Event::Terminated { transaction: pending });
            }
            self.clients.remove(&id);
            self.client_keys.remove(&key);
            self.out.events.push_back(Event::Terminated { transaction: id });
            return;
        }
        if let Some(at) = tx.next_deadline() {
            self.timers.push(Reverse((at, id)));
        }
    }

    fn schedule_server(&mut self, id: TransactionId) {
        let Some(tx) = self.servers.get(&id) else {
            return;
        };
        if tx.state == ServerState::Terminated {
            let key = tx.key.clone();
            let ack_key = tx.ack_key.clone();
            self.servers.remove(&id);
            if self.server_keys.get(&key) == Some(&id) {
                self.server_keys.remove(&key);
            }
            if let Some(k) = ack_key
                && self.accepted.get(&k) == Some(&id)
            {
                self.accepted.remove(&k);
            }
            self.out.events.push_back(Event::Terminated { transaction: id });
            return;
        }
        if let Some(at) = tx.next_deadline() {
            self.timers.push(Reverse((at, id)));
        }
    }
}

/// Fills `received` and `rport` in the top Via with the packet's source (§18.2.1,
/// RFC 3581), rewriting only the first value of the first Via line.
fn stamp_received(headers: &mut Headers, source: SocketAddr) {
    let Ok(mut via) = headers.top_via() else {
        return;
    };
    let before = via.clone();
    via.set_received(source);
    if via == before {
        return;
    }
    let Some(first_line) = headers.get(&HeaderName::Via) else {
        return;
    };
    let rest: Vec<String> = crate::scan::split_commas(first_line)
        .map(|parts| parts.into_iter().skip(1).map(str::to_owned).collect())
        .unwrap_or_default();
    let mut line = via.to_string();
    for part in rest {
        line.push_str(", ");
        line.push_str(&part);
    }
    headers.replace_first(&HeaderName::Via, line);
}
