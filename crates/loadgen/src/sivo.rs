//! Calls through sivo: a carrier (UAC on the trunk's allowed address) calls the DID, the
//! queue answers and rings its agents, our agents (UASes registered with Digest through
//! sivo's registrar, all on one SIP socket, told apart by their extension) answer, and RTP
//! flows both ways. SIP is written by hand and read with the `sip` crate's parser; the
//! agents' Digest comes from `sip::auth::DigestClient`.
//!
//! Retransmissions follow RFC 3261 timer A/G style doubling from 500 ms, a bounded number of
//! times; anything unexpected is answered 200 (in-dialog) or ignored.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use sip::auth::DigestClient;
use sip::{HeaderName, Message, Method, Request, Response, Uri};

use crate::engine::Engine;
use crate::runner::Signalling;
use crate::sdp;

const T1: Duration = Duration::from_millis(500);
const MAX_RETRIES: u32 = 6;
/// Registrations in flight at once.
const REGISTER_WINDOW: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    Inviting { provisional: bool },
    Up,
    Ending,
    Ended,
    Failed,
}

struct Call {
    call_id: String,
    from_tag: String,
    from_user: String,
    state: CallState,
    invite: Vec<u8>,
    /// The To header of the 2xx (with sivo's tag) and sivo's Contact.
    to: Option<String>,
    target: Option<String>,
    bye: Option<Vec<u8>>,
    last_sent: Instant,
    retries: u32,
    caller_stream: usize,
    agent: Option<usize>,
    bridged: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Registration {
    Idle,
    Sent { cseq: u32 },
    Registered,
    Failed(String),
}

struct AgentDialog {
    response: Vec<u8>,
    acked: bool,
    last_sent: Instant,
    retries: u32,
    call: Option<usize>,
    stream: usize,
}

struct Agent {
    extension: String,
    client: DigestClient,
    registration: Registration,
    reg_call_id: String,
    reg_tag: String,
    reg_bytes: Vec<u8>,
    reg_sent: Instant,
    reg_retries: u32,
    dialog: Option<AgentDialog>,
}

pub(crate) struct Config {
    pub(crate) server: SocketAddrV4,
    pub(crate) domain: String,
    pub(crate) did: String,
    /// (extension, password)
    pub(crate) agents: Vec<(String, String)>,
    pub(crate) carrier_ip: Ipv4Addr,
    pub(crate) agent_ip: Ipv4Addr,
    pub(crate) sockets_per_side: usize,
}

pub(crate) struct Sivo {
    config: Config,
    carrier: UdpSocket,
    agent_sip: UdpSocket,
    carrier_local: SocketAddrV4,
    agent_local: SocketAddrV4,
    calls: Vec<Call>,
    call_index: HashMap<String, usize>,
    agents: Vec<Agent>,
    by_extension: HashMap<String, usize>,
    by_reg_call_id: HashMap<String, usize>,
    by_dialog: HashMap<String, usize>,
    run: u32,
    buffer: Vec<u8>,
    /// Calls sivo ended on its own (BYE or error answer) while we had not asked.
    pub(crate) dropped_by_server: usize,
    pub(crate) errors: HashMap<String, usize>,
}

fn branch() -> String {
    format!("z9hG4bK{:016x}", rand::random::<u64>())
}

fn udp(ip: Ipv4Addr) -> anyhow::Result<(UdpSocket, SocketAddrV4)> {
    let socket = UdpSocket::bind(SocketAddrV4::new(ip, 0))?;
    socket.set_nonblocking(true)?;
    let SocketAddr::V4(local) = socket.local_addr()? else { anyhow::bail!("not IPv4") };
    Ok((socket, local))
}

/// The first value of a header, or "".
fn header<'a>(m: &'a sip::Headers, name: &HeaderName) -> &'a str {
    m.get(name).unwrap_or_default()
}

/// Copies the headers a response repeats from its request (RFC 3261 §8.2.6.2).
fn response_head(request: &Request, status: &str, to_tag: Option<&str>) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for via in request.headers.get_all(&HeaderName::Via) {
        let _ = write!(out, "Via: {via}\r\n");
    }
    let to = header(&request.headers, &HeaderName::To);
    let to = match to_tag {
        Some(tag) if !to.contains("tag=") => format!("{to};tag={tag}"),
        _ => to.to_owned(),
    };
    let _ = write!(
        out,
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n",
        header(&request.headers, &HeaderName::From),
        header(&request.headers, &HeaderName::CallId),
        header(&request.headers, &HeaderName::CSeq),
    );
    out
}

impl Sivo {
    pub(crate) fn new(config: Config) -> anyhow::Result<Self> {
        let (carrier, carrier_local) = udp(config.carrier_ip)?;
        let (agent_sip, agent_local) = udp(config.agent_ip)?;
        let run = rand::random::<u32>();
        let agents: Vec<Agent> = config
            .agents
            .iter()
            .map(|(extension, password)| Agent {
                extension: extension.clone(),
                client: DigestClient::new(extension.clone(), password.clone()),
                registration: Registration::Idle,
                reg_call_id: format!("reg-{extension}-{run:08x}@loadgen"),
                reg_tag: format!("{:08x}", rand::random::<u32>()),
                reg_bytes: Vec::new(),
                reg_sent: Instant::now(),
                reg_retries: 0,
                dialog: None,
            })
            .collect();
        let by_extension = agents.iter().enumerate().map(|(i, a)| (a.extension.clone(), i)).collect();
        let by_reg_call_id = agents.iter().enumerate().map(|(i, a)| (a.reg_call_id.clone(), i)).collect();
        Ok(Self {
            config,
            carrier,
            agent_sip,
            carrier_local,
            agent_local,
            calls: Vec::new(),
            call_index: HashMap::new(),
            agents,
            by_extension,
            by_reg_call_id,
            by_dialog: HashMap::new(),
            run,
            buffer: vec![0; 65536],
            dropped_by_server: 0,
            errors: HashMap::new(),
        })
    }

    fn error(&mut self, what: impl Into<String>) {
        *self.errors.entry(what.into()).or_default() += 1;
    }

    fn send_carrier(&self, bytes: &[u8]) {
        let _ = self.carrier.send_to(bytes, self.config.server);
    }

    fn send_agent(&self, bytes: &[u8], to: SocketAddr) {
        let _ = self.agent_sip.send_to(bytes, to);
    }

    // ---- registration ----

    fn register_request(&self, index: usize, cseq: u32, authorization: Option<String>) -> Vec<u8> {
        let Some(agent) = self.agents.get(index) else { return Vec::new() };
        let domain = &self.config.domain;
        let mut text = format!(
            "REGISTER sip:{domain} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={b};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:{ext}@{domain}>;tag={tag}\r\nTo: <sip:{ext}@{domain}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{ext}@{local}>\r\nExpires: 3600\r\nUser-Agent: sivo-loadgen\r\n",
            local = self.agent_local,
            b = branch(),
            ext = agent.extension,
            tag = agent.reg_tag,
            cid = agent.reg_call_id,
        );
        if let Some(a) = authorization {
            let _ = write!(text, "Authorization: {a}\r\n");
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        text.into_bytes()
    }

    fn send_register(&mut self, index: usize, cseq: u32, authorization: Option<String>, now: Instant) {
        let bytes = self.register_request(index, cseq, authorization);
        let server = SocketAddr::V4(self.config.server);
        self.send_agent(&bytes, server);
        if let Some(agent) = self.agents.get_mut(index) {
            agent.registration = Registration::Sent { cseq };
            agent.reg_bytes = bytes;
            agent.reg_sent = now;
            agent.reg_retries = 0;
        }
    }

    fn on_register_response(&mut self, response: &Response, now: Instant) {
        let call_id = header(&response.headers, &HeaderName::CallId);
        let Some(&index) = self.by_reg_call_id.get(call_id) else { return };
        let Some(agent) = self.agents.get_mut(index) else { return };
        let Registration::Sent { cseq } = agent.registration else { return };
        if response.headers.cseq().map(|c| c.seq).ok() != Some(cseq) {
            return;
        }
        let status = response.status.as_u16();
        match status {
            100..=199 => {}
            200..=299 => agent.registration = Registration::Registered,
            401 | 407 if cseq < 3 => {
                let Some(challenge) = DigestClient::select_challenge(response) else {
                    agent.registration = Registration::Failed("401 without a usable challenge".into());
                    return;
                };
                let uri = format!("sip:{}", self.config.domain);
                let cnonce = format!("{:016x}", rand::random::<u64>());
                let credentials = agent.client.authorize(&challenge, &Method::Register, &uri, b"", &cnonce);
                self.send_register(index, cseq + 1, Some(credentials.to_string()), now);
            }
            _ => agent.registration = Registration::Failed(format!("{status} {}", response.reason)),
        }
    }

    /// Registers every agent (bounded window in flight, bounded retries, until `deadline`).
    pub(crate) fn register_all(&mut self, engine: &mut Engine, deadline: Instant) -> anyhow::Result<()> {
        let mut next = 0;
        loop {
            let now = Instant::now();
            let in_flight =
                self.agents.iter().filter(|a| matches!(a.registration, Registration::Sent { .. })).count();
            let mut budget = REGISTER_WINDOW.saturating_sub(in_flight);
            while budget > 0 && next < self.agents.len() {
                self.send_register(next, 1, None, now);
                next += 1;
                budget -= 1;
            }
            let done = self
                .agents
                .iter()
                .all(|a| matches!(a.registration, Registration::Registered | Registration::Failed(_)));
            if done && next >= self.agents.len() {
                break;
            }
            if now >= deadline {
                anyhow::bail!("registration timed out");
            }
            crate::runner::pump(engine, self, now + Duration::from_millis(5));
        }
        let failed: Vec<String> = self
            .agents
            .iter()
            .filter_map(|a| match &a.registration {
                Registration::Failed(why) => Some(format!("{}: {why}", a.extension)),
                _ => None,
            })
            .take(5)
            .collect();
        if !failed.is_empty() {
            anyhow::bail!("registrations failed, e.g. {failed:?}");
        }
        Ok(())
    }

    // ---- the carrier (UAC) ----

    fn invite_for(
        &self,
        index: usize,
        call_id: &str,
        from_tag: &str,
        from_user: &str,
        rtp: SocketAddrV4,
    ) -> Vec<u8> {
        let server = self.config.server;
        let did = &self.config.did;
        let body = sdp::offer(rtp, index as u64);
        format!(
            "INVITE sip:{did}@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={b};rport\r\nMax-Forwards: 70\r\n\
             From: \"Load {index}\" <sip:{from_user}@{ip}>;tag={from_tag}\r\nTo: <sip:{did}@{server}>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:carrier@{local}>\r\nUser-Agent: sivo-loadgen\r\n\
             Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{body}",
            local = self.carrier_local,
            b = branch(),
            ip = self.carrier_local.ip(),
            len = body.len(),
        )
        .into_bytes()
    }

    fn in_dialog(&self, call: &Call, method: &str, cseq: u32) -> Vec<u8> {
        let target = call.target.clone().unwrap_or_else(|| format!("sip:{}", self.config.server));
        format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={b};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@{ip}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            local = self.carrier_local,
            b = branch(),
            user = call.from_user,
            ip = self.carrier_local.ip(),
            tag = call.from_tag,
            to = call.to.clone().unwrap_or_default(),
            cid = call.call_id,
        )
        .into_bytes()
    }

    /// ACK of a non-2xx final answer: same branch and Request-URI as the INVITE.
    fn ack_failure(&self, call: &Call, response: &Response) {
        let Ok(Message::Request(invite)) = sip::parse_datagram(&call.invite) else { return };
        let via = header(&invite.headers, &HeaderName::Via);
        let text = format!(
            "ACK {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            uri = invite.uri,
            from = header(&invite.headers, &HeaderName::From),
            to = header(&response.headers, &HeaderName::To),
            cid = call.call_id,
        );
        self.send_carrier(text.as_bytes());
    }

    fn on_carrier_response(&mut self, response: &Response, engine: &mut Engine, now: Instant) {
        let call_id = header(&response.headers, &HeaderName::CallId);
        let Some(&index) = self.call_index.get(call_id) else { return };
        let Ok(cseq) = response.headers.cseq() else { return };
        let status = response.status.as_u16();
        let Some(call) = self.calls.get(index) else { return };
        let state = call.state;
        match (cseq.method, state) {
            (Method::Invite, CallState::Inviting { .. }) if status < 200 => {
                if let Some(c) = self.calls.get_mut(index) {
                    c.state = CallState::Inviting { provisional: true };
                }
            }
            (Method::Invite, CallState::Inviting { .. }) if status < 300 => {
                let body = std::str::from_utf8(&response.body).unwrap_or_default();
                let target = response
                    .headers
                    .contacts()
                    .ok()
                    .and_then(|c| c.addresses().first().map(|a| a.uri.to_string()));
                let Some(media) = sdp::media_address(body) else {
                    self.error("carrier: 2xx without usable SDP");
                    return;
                };
                let to = header(&response.headers, &HeaderName::To).to_owned();
                let stream = call.caller_stream;
                if let Some(c) = self.calls.get_mut(index) {
                    c.to = Some(to);
                    c.target = target;
                    c.state = CallState::Up;
                }
                engine.start(stream, media);
                if let Some(c) = self.calls.get(index) {
                    let ack = self.in_dialog(c, "ACK", 1);
                    self.send_carrier(&ack);
                }
            }
            (Method::Invite, CallState::Up | CallState::Ending) if (200..300).contains(&status) => {
                if let Some(c) = self.calls.get(index) {
                    let ack = self.in_dialog(c, "ACK", 1);
                    self.send_carrier(&ack);
                }
            }
            (Method::Invite, CallState::Inviting { .. }) => {
                self.ack_failure(call, response);
                self.error(format!("carrier: INVITE answered {status} {}", response.reason));
                if let Some(c) = self.calls.get_mut(index) {
                    c.state = CallState::Failed;
                }
            }
            (Method::Bye, CallState::Ending) if status >= 200 => {
                let stream = call.caller_stream;
                if let Some(c) = self.calls.get_mut(index) {
                    c.state = CallState::Ended;
                }
                engine.stop(stream);
            }
            _ => {}
        }
        let _ = now;
    }

    fn on_carrier_request(&mut self, request: &Request, engine: &mut Engine) {
        let call_id = header(&request.headers, &HeaderName::CallId).to_owned();
        let reply = format!("{}Content-Length: 0\r\n\r\n", response_head(request, "200 OK", None));
        if request.method == Method::Ack {
            return;
        }
        self.send_carrier(reply.as_bytes());
        if request.method == Method::Bye
            && let Some(&index) = self.call_index.get(&call_id)
            && let Some(call) = self.calls.get_mut(index)
        {
            if matches!(call.state, CallState::Up | CallState::Inviting { .. }) {
                self.dropped_by_server += 1;
            }
            call.state = CallState::Ended;
            let stream = call.caller_stream;
            engine.stop(stream);
        }
    }

    // ---- the agents (UAS) ----

    fn on_agent_request(&mut self, request: &Request, from: SocketAddr, engine: &mut Engine, now: Instant) {
        let call_id = header(&request.headers, &HeaderName::CallId).to_owned();
        match request.method {
            Method::Invite => self.on_agent_invite(request, &call_id, from, engine, now),
            Method::Ack => {
                let Some(&agent) = self.by_dialog.get(&call_id) else { return };
                let Some(dialog) = self.agents.get_mut(agent).and_then(|a| a.dialog.as_mut()) else { return };
                if dialog.acked {
                    return;
                }
                dialog.acked = true;
                let (stream, call) = (dialog.stream, dialog.call);
                engine.set_bridged(stream);
                if let Some(call) = call.and_then(|c| self.calls.get_mut(c)) {
                    call.bridged = true;
                    engine.set_bridged(call.caller_stream);
                }
            }
            Method::Bye | Method::Cancel => {
                let reply = format!("{}Content-Length: 0\r\n\r\n", response_head(request, "200 OK", None));
                self.send_agent(reply.as_bytes(), from);
                let Some(agent) = self.by_dialog.remove(&call_id) else { return };
                if let Some(dialog) = self.agents.get_mut(agent).and_then(|a| a.dialog.take()) {
                    engine.stop(dialog.stream);
                    if let Some(call) = dialog.call.and_then(|c| self.calls.get_mut(c)) {
                        call.bridged = false;
                        call.agent = None;
                        engine.stop(call.caller_stream);
                        if matches!(call.state, CallState::Up) {
                            self.dropped_by_server += 1;
                        }
                    }
                }
            }
            _ => {
                let reply = format!("{}Content-Length: 0\r\n\r\n", response_head(request, "200 OK", None));
                self.send_agent(reply.as_bytes(), from);
            }
        }
    }

    fn on_agent_invite(
        &mut self,
        request: &Request,
        call_id: &str,
        from: SocketAddr,
        engine: &mut Engine,
        now: Instant,
    ) {
        // A retransmission (or re-INVITE) of a dialog we hold: the same answer again.
        if let Some(&agent) = self.by_dialog.get(call_id)
            && let Some(dialog) = self.agents.get(agent).and_then(|a| a.dialog.as_ref())
        {
            let response = dialog.response.clone();
            self.send_agent(&response, from);
            return;
        }
        let extension = match &request.uri {
            Uri::Sip(u) => u.user.clone().unwrap_or_default(),
            _ => String::new(),
        };
        let Some(&agent) = self.by_extension.get(&extension) else {
            let reply =
                format!("{}Content-Length: 0\r\n\r\n", response_head(request, "404 Not Found", Some("x")));
            self.send_agent(reply.as_bytes(), from);
            self.error("agent: INVITE for an unknown extension");
            return;
        };
        if self.agents.get(agent).is_some_and(|a| a.dialog.is_some()) {
            let reply =
                format!("{}Content-Length: 0\r\n\r\n", response_head(request, "486 Busy Here", Some("x")));
            self.send_agent(reply.as_bytes(), from);
            self.error("agent: INVITE while on a call");
            return;
        }
        let body = std::str::from_utf8(&request.body).unwrap_or_default();
        let Some(media) = sdp::media_address(body) else {
            let reply = format!(
                "{}Content-Length: 0\r\n\r\n",
                response_head(request, "488 Not Acceptable Here", Some("x"))
            );
            self.send_agent(reply.as_bytes(), from);
            self.error("agent: INVITE without usable SDP");
            return;
        };
        // Which carrier call this is: sivo keeps the caller's number in From.
        let call = request.headers.from().ok().and_then(|f| match &f.uri {
            Uri::Sip(u) => {
                u.user.as_ref().and_then(|user| self.call_index.get(&format!("user:{user}")).copied())
            }
            _ => None,
        });
        let socket = self.config.sockets_per_side + agent % self.config.sockets_per_side.max(1);
        let stream = engine.add_stream(socket);
        let Ok(rtp) = engine.local(socket) else { return };
        let extension = self.agents.get(agent).map(|a| a.extension.clone()).unwrap_or_default();
        let sdp_body = sdp::answer(rtp, agent as u64);
        let tag = format!("{:08x}", rand::random::<u32>());
        let response = format!(
            "{}Contact: <sip:{extension}@{}>\r\nUser-Agent: sivo-loadgen\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp_body}",
            response_head(request, "200 OK", Some(&tag)),
            self.agent_local,
            sdp_body.len(),
        )
        .into_bytes();
        self.send_agent(&response, from);
        engine.start(stream, media);
        if let Some(c) = call.and_then(|c| self.calls.get_mut(c)) {
            c.agent = Some(agent);
        }
        self.by_dialog.insert(call_id.to_owned(), agent);
        if let Some(a) = self.agents.get_mut(agent) {
            a.dialog = Some(AgentDialog { response, acked: false, last_sent: now, retries: 0, call, stream });
        }
    }

    fn drain(&mut self, engine: &mut Engine, now: Instant) {
        // Bounded: at most this many datagrams per socket per service round.
        for _ in 0..256 {
            let Ok((len, _)) = self.carrier.recv_from(&mut self.buffer) else { break };
            let bytes = self.buffer.get(..len).unwrap_or_default().to_vec();
            match sip::parse_datagram(&bytes) {
                Ok(Message::Response(r)) => self.on_carrier_response(&r, engine, now),
                Ok(Message::Request(r)) => self.on_carrier_request(&r, engine),
                Err(_) => self.error("carrier: unparsable datagram"),
            }
        }
        for _ in 0..256 {
            let Ok((len, from)) = self.agent_sip.recv_from(&mut self.buffer) else { break };
            let bytes = self.buffer.get(..len).unwrap_or_default().to_vec();
            match sip::parse_datagram(&bytes) {
                Ok(Message::Response(r)) => self.on_register_response(&r, now),
                Ok(Message::Request(r)) => self.on_agent_request(&r, from, engine, now),
                Err(_) => self.error("agent: unparsable datagram"),
            }
        }
    }

    fn timers(&mut self, engine: &mut Engine, now: Instant) {
        let backoff = |retries: u32| T1 * 2u32.saturating_pow(retries.min(4));
        let server = SocketAddr::V4(self.config.server);
        let mut resend: Vec<(bool, Vec<u8>)> = Vec::new();
        let mut failed = 0;
        for call in &mut self.calls {
            let pending = match call.state {
                CallState::Inviting { provisional: false } => Some(call.invite.clone()),
                CallState::Ending => call.bye.clone(),
                _ => None,
            };
            let Some(bytes) = pending else { continue };
            if now < call.last_sent + backoff(call.retries) {
                continue;
            }
            if call.retries >= MAX_RETRIES {
                if call.state == CallState::Ending {
                    call.state = CallState::Ended;
                } else {
                    call.state = CallState::Failed;
                    failed += 1;
                }
                engine.stop(call.caller_stream);
                continue;
            }
            call.retries += 1;
            call.last_sent = now;
            resend.push((true, bytes));
        }
        for agent in &mut self.agents {
            if let Registration::Sent { .. } = agent.registration
                && now >= agent.reg_sent + backoff(agent.reg_retries)
            {
                if agent.reg_retries >= MAX_RETRIES {
                    agent.registration = Registration::Failed("no answer".into());
                } else {
                    agent.reg_retries += 1;
                    agent.reg_sent = now;
                    resend.push((false, agent.reg_bytes.clone()));
                }
            }
            if let Some(dialog) = &mut agent.dialog
                && !dialog.acked
                && dialog.retries < MAX_RETRIES
                && now >= dialog.last_sent + backoff(dialog.retries)
            {
                dialog.retries += 1;
                dialog.last_sent = now;
                resend.push((false, dialog.response.clone()));
            }
        }
        for _ in 0..failed {
            self.error("carrier: INVITE timed out");
        }
        for (carrier, bytes) in resend {
            if carrier {
                self.send_carrier(&bytes);
            } else {
                self.send_agent(&bytes, server);
            }
        }
    }
}

impl Signalling for Sivo {
    fn service(&mut self, engine: &mut Engine, now: Instant) {
        self.drain(engine, now);
        self.timers(engine, now);
    }

    fn place_call(&mut self, engine: &mut Engine, now: Instant) {
        let index = self.calls.len();
        let socket = index % self.config.sockets_per_side.max(1);
        let stream = engine.add_stream(socket);
        let Ok(rtp) = engine.local(socket) else { return };
        let call_id = format!("lg-{:08x}-{index}@{}", self.run, self.carrier_local.ip());
        let from_tag = format!("{:08x}", rand::random::<u32>());
        // Unique per run: a call left behind by an earlier run must not pair with this one's.
        let from_user = format!("+1{:04}{index:07}", self.run % 10_000);
        let invite = self.invite_for(index, &call_id, &from_tag, &from_user, rtp);
        self.send_carrier(&invite);
        self.call_index.insert(call_id.clone(), index);
        self.call_index.insert(format!("user:{from_user}"), index);
        self.calls.push(Call {
            call_id,
            from_tag,
            from_user,
            state: CallState::Inviting { provisional: false },
            invite,
            to: None,
            target: None,
            bye: None,
            last_sent: now,
            retries: 0,
            caller_stream: stream,
            agent: None,
            bridged: false,
        });
    }

    fn bridged(&self) -> usize {
        self.calls.iter().filter(|c| c.bridged && c.state == CallState::Up).count()
    }

    fn pending(&self) -> usize {
        self.calls
            .iter()
            .filter(|c| {
                matches!(c.state, CallState::Inviting { .. }) || (c.state == CallState::Up && !c.bridged)
            })
            .count()
    }

    fn failed(&self) -> usize {
        self.calls.iter().filter(|c| c.state == CallState::Failed).count()
    }

    fn ending(&self) -> usize {
        self.calls.iter().filter(|c| c.state == CallState::Ending).count()
    }

    fn hang_up(&mut self, engine: &mut Engine, count: usize, now: Instant) {
        let mut left = count;
        for index in (0..self.calls.len()).rev() {
            if left == 0 {
                break;
            }
            let Some(call) = self.calls.get(index) else { continue };
            if call.state != CallState::Up {
                continue;
            }
            let bye = self.in_dialog(call, "BYE", 2);
            self.send_carrier(&bye);
            // The agent's side stops counting now; sivo's BYE to the agent ends it.
            if let Some(dialog) = call.agent.and_then(|a| self.agents.get(a)).and_then(|a| a.dialog.as_ref())
            {
                engine.stop(dialog.stream);
            }
            if let Some(call) = self.calls.get_mut(index) {
                call.state = CallState::Ending;
                call.bye = Some(bye);
                call.last_sent = now;
                call.retries = 0;
                call.bridged = false;
                engine.stop(call.caller_stream);
            }
            left -= 1;
        }
    }

    fn notes(&self) -> serde_json::Value {
        serde_json::json!({ "dropped_by_server": self.dropped_by_server, "errors": self.errors })
    }
}
