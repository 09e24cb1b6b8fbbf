//! The reference: the same calls set up on rtpengine through its ng control protocol
//! (`<cookie> <bencoded dict>` over UDP): `offer` with the caller's SDP gives the address the
//! agent sends to, `answer` with the agent's SDP the address the caller sends to; `delete`
//! ends a call. Then the same RTP flows through it as through sivo.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::runner::Signalling;
use crate::sdp;

const TIMEOUT: Duration = Duration::from_millis(1000);
const MAX_RETRIES: u32 = 4;

/// A bencode value (the subset ng uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Bytes(Vec<u8>),
    Int(i64),
    List(Vec<Self>),
    Dict(BTreeMap<Vec<u8>, Self>),
}

impl Value {
    pub(crate) fn str(s: &str) -> Self {
        Self::Bytes(s.as_bytes().to_vec())
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Bytes(b) => {
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(b);
            }
            Self::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Self::List(items) => {
                out.push(b'l');
                items.iter().for_each(|v| v.encode(out));
                out.push(b'e');
            }
            Self::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    Self::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Decodes one value from the start of `input`; returns it and the rest. Depth-bounded.
    pub(crate) fn decode(input: &[u8]) -> Option<(Self, &[u8])> {
        Self::decode_depth(input, 0)
    }

    fn decode_depth(input: &[u8], depth: usize) -> Option<(Self, &[u8])> {
        if depth > 32 {
            return None;
        }
        match *input.first()? {
            b'i' => {
                let end = input.iter().position(|&c| c == b'e')?;
                let n = std::str::from_utf8(input.get(1..end)?).ok()?.parse().ok()?;
                Some((Self::Int(n), input.get(end + 1..)?))
            }
            b'l' => {
                let mut rest = input.get(1..)?;
                let mut items = Vec::new();
                while *rest.first()? != b'e' {
                    let (v, r) = Self::decode_depth(rest, depth + 1)?;
                    items.push(v);
                    rest = r;
                }
                Some((Self::List(items), rest.get(1..)?))
            }
            b'd' => {
                let mut rest = input.get(1..)?;
                let mut map = BTreeMap::new();
                while *rest.first()? != b'e' {
                    let (Self::Bytes(k), r) = Self::decode_depth(rest, depth + 1)? else { return None };
                    let (v, r) = Self::decode_depth(r, depth + 1)?;
                    map.insert(k, v);
                    rest = r;
                }
                Some((Self::Dict(map), rest.get(1..)?))
            }
            b'0'..=b'9' => {
                let colon = input.iter().position(|&c| c == b':')?;
                let len: usize = std::str::from_utf8(input.get(..colon)?).ok()?.parse().ok()?;
                let end = colon.checked_add(1)?.checked_add(len)?;
                let bytes = input.get(colon + 1..end)?.to_vec();
                Some((Self::Bytes(bytes), input.get(end..)?))
            }
            _ => None,
        }
    }

    fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Self::Dict(map) => map.get(key.as_bytes()),
            _ => None,
        }
    }

    fn text(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Self::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

fn dict(entries: &[(&str, Value)]) -> Value {
    Value::Dict(entries.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.clone())).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Offering,
    Answering,
    Up,
    Deleting,
    Ended,
    Failed,
}

struct Call {
    state: State,
    caller_stream: usize,
    agent_stream: usize,
}

struct Outstanding {
    call: usize,
    bytes: Vec<u8>,
    sent: Instant,
    retries: u32,
}

pub(crate) struct Rtpengine {
    socket: UdpSocket,
    server: SocketAddrV4,
    carrier_ip: Ipv4Addr,
    sockets_per_side: usize,
    calls: Vec<Call>,
    outstanding: HashMap<String, Outstanding>,
    next_cookie: u64,
    run: u32,
    buffer: Vec<u8>,
    pub(crate) errors: HashMap<String, usize>,
}

impl Rtpengine {
    pub(crate) fn new(
        server: SocketAddrV4,
        carrier_ip: Ipv4Addr,
        sockets_per_side: usize,
    ) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            server,
            carrier_ip,
            sockets_per_side: sockets_per_side.max(1),
            calls: Vec::new(),
            outstanding: HashMap::new(),
            next_cookie: 0,
            run: rand::random(),
            buffer: vec![0; 65536],
            errors: HashMap::new(),
        })
    }

    fn error(&mut self, what: impl Into<String>) {
        *self.errors.entry(what.into()).or_default() += 1;
    }

    fn call_id(&self, call: usize) -> String {
        format!("lg-{:08x}-{call}", self.run)
    }

    fn send(&mut self, call: usize, message: &Value, now: Instant) {
        self.next_cookie += 1;
        let cookie = format!("{:08x}{}", self.run, self.next_cookie);
        let mut bytes = format!("{cookie} ").into_bytes();
        message.encode(&mut bytes);
        let _ = self.socket.send_to(&bytes, self.server);
        self.outstanding.insert(cookie, Outstanding { call, bytes, sent: now, retries: 0 });
    }

    fn answer(&mut self, call: usize, engine: &Engine, now: Instant) {
        let Some(c) = self.calls.get(call) else { return };
        let Ok(rtp) = engine.local(self.sockets_per_side + call % self.sockets_per_side) else { return };
        let message = dict(&[
            ("command", Value::str("answer")),
            ("call-id", Value::str(&self.call_id(call))),
            ("from-tag", Value::str(&format!("ft{call}"))),
            ("to-tag", Value::str(&format!("tt{call}"))),
            ("sdp", Value::str(&sdp::answer(rtp, call as u64))),
        ]);
        let _ = c;
        self.send(call, &message, now);
    }

    fn on_reply(&mut self, datagram: &[u8], engine: &mut Engine, now: Instant) {
        let Some(space) = datagram.iter().position(|&c| c == b' ') else { return };
        let cookie = String::from_utf8_lossy(datagram.get(..space).unwrap_or_default()).into_owned();
        let Some(pending) = self.outstanding.remove(&cookie) else { return };
        let Some((reply, _)) = datagram.get(space + 1..).and_then(Value::decode) else {
            self.error("ng: undecodable reply");
            return;
        };
        let call = pending.call;
        let Some(state) = self.calls.get(call).map(|c| c.state) else { return };
        if reply.text("result").as_deref() != Some("ok") {
            let why = reply.text("error-reason").unwrap_or_else(|| format!("{reply:?}"));
            self.error(format!("ng: {why}"));
            if let Some(c) = self.calls.get_mut(call) {
                c.state = if state == State::Deleting { State::Ended } else { State::Failed };
            }
            return;
        }
        let media = reply.text("sdp").and_then(|s| sdp::media_address(&s));
        match (state, media) {
            (State::Offering, Some(media)) => {
                // rtpengine's side towards the agent: where the agent sends.
                if let Some(c) = self.calls.get_mut(call) {
                    engine.start(c.agent_stream, media);
                    c.state = State::Answering;
                }
                self.answer(call, engine, now);
            }
            (State::Answering, Some(media)) => {
                if let Some(c) = self.calls.get_mut(call) {
                    engine.start(c.caller_stream, media);
                    engine.set_bridged(c.caller_stream);
                    engine.set_bridged(c.agent_stream);
                    c.state = State::Up;
                }
            }
            (State::Deleting, _) => {
                if let Some(c) = self.calls.get_mut(call) {
                    c.state = State::Ended;
                }
            }
            _ => {
                self.error("ng: reply without usable SDP");
                if let Some(c) = self.calls.get_mut(call) {
                    c.state = State::Failed;
                    engine.stop(c.agent_stream);
                }
            }
        }
    }
}

impl Signalling for Rtpengine {
    fn service(&mut self, engine: &mut Engine, now: Instant) {
        for _ in 0..256 {
            let Ok((len, from)) = self.socket.recv_from(&mut self.buffer) else { break };
            if from != SocketAddr::V4(self.server) {
                continue;
            }
            let datagram = self.buffer.get(..len).unwrap_or_default().to_vec();
            self.on_reply(&datagram, engine, now);
        }
        let mut resend = Vec::new();
        let mut expired = Vec::new();
        for (cookie, pending) in &mut self.outstanding {
            if now < pending.sent + TIMEOUT {
                continue;
            }
            if pending.retries >= MAX_RETRIES {
                expired.push((cookie.clone(), pending.call));
            } else {
                pending.retries += 1;
                pending.sent = now;
                resend.push(pending.bytes.clone());
            }
        }
        for bytes in resend {
            let _ = self.socket.send_to(&bytes, self.server);
        }
        for (cookie, call) in expired {
            self.outstanding.remove(&cookie);
            self.error("ng: no reply");
            if let Some(c) = self.calls.get_mut(call) {
                c.state = if c.state == State::Deleting { State::Ended } else { State::Failed };
                engine.stop(c.caller_stream);
                engine.stop(c.agent_stream);
            }
        }
    }

    fn place_call(&mut self, engine: &mut Engine, now: Instant) {
        let call = self.calls.len();
        let caller_socket = call % self.sockets_per_side;
        let caller_stream = engine.add_stream(caller_socket);
        let agent_stream = engine.add_stream(self.sockets_per_side + call % self.sockets_per_side);
        self.calls.push(Call { state: State::Offering, caller_stream, agent_stream });
        let Ok(rtp) = engine.local(caller_socket) else { return };
        debug_assert_eq!(*rtp.ip(), self.carrier_ip);
        let message = dict(&[
            ("command", Value::str("offer")),
            ("call-id", Value::str(&self.call_id(call))),
            ("from-tag", Value::str(&format!("ft{call}"))),
            ("sdp", Value::str(&sdp::offer(rtp, call as u64))),
            ("replace", Value::List(vec![Value::str("origin"), Value::str("session-connection")])),
        ]);
        self.send(call, &message, now);
    }

    fn bridged(&self) -> usize {
        self.calls.iter().filter(|c| c.state == State::Up).count()
    }

    fn pending(&self) -> usize {
        self.calls.iter().filter(|c| matches!(c.state, State::Offering | State::Answering)).count()
    }

    fn failed(&self) -> usize {
        self.calls.iter().filter(|c| c.state == State::Failed).count()
    }

    fn ending(&self) -> usize {
        self.calls.iter().filter(|c| c.state == State::Deleting).count()
    }

    fn hang_up(&mut self, engine: &mut Engine, count: usize, now: Instant) {
        let mut left = count;
        for call in (0..self.calls.len()).rev() {
            if left == 0 {
                break;
            }
            let Some(c) = self.calls.get_mut(call) else { continue };
            if c.state != State::Up {
                continue;
            }
            c.state = State::Deleting;
            engine.stop(c.caller_stream);
            engine.stop(c.agent_stream);
            let message = dict(&[
                ("command", Value::str("delete")),
                ("call-id", Value::str(&self.call_id(call))),
                ("from-tag", Value::str(&format!("ft{call}"))),
            ]);
            self.send(call, &message, now);
            left -= 1;
        }
    }

    fn notes(&self) -> serde_json::Value {
        serde_json::json!({ "errors": self.errors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bencode_round_trip() {
        let v = dict(&[
            ("command", Value::str("offer")),
            ("n", Value::Int(-3)),
            ("flags", Value::List(vec![Value::str("a"), Value::str("")])),
        ]);
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out, b"d7:command5:offer5:flagsl1:a0:e1:ni-3ee".to_vec());
        let (back, rest) = Value::decode(&out).unwrap();
        assert_eq!(back, v);
        assert!(rest.is_empty());
        assert_eq!(back.text("command").as_deref(), Some("offer"));
    }

    #[test]
    fn bencode_rejects_garbage_without_panicking() {
        for input in
            [&b""[..], b"d", b"l", b"5:ab", b"i12", b"d1:a", b"x", b"99999999999999999999:a", b"d1:ai1ee"]
        {
            let _ = Value::decode(input);
        }
        let deep = vec![b'l'; 10_000];
        assert!(Value::decode(&deep).is_none());
    }
}
