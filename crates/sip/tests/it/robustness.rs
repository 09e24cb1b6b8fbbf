//! Deterministic mutation fuzzing in the normal test run: mangled torture messages must
//! never panic, must survive a round trip through the serializer, and must frame the same
//! however the stream is split. The `fuzz/` crate runs the same properties under libFuzzer.

use sip::{Frame, Framer, HeaderName, Message, parse_datagram};

/// xorshift64*: deterministic, so a failure reproduces from its iteration number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n ",
    b"\r\n\r\n",
    b";",
    b",",
    b"\"",
    b"\\",
    b"<",
    b">",
    b"%",
    b"%0",
    b":",
    b" ",
    b"\t",
    b"@",
    b"=",
    b"[",
    b"]",
    b"[::1]",
    b"?",
    b"sip:",
    b"tel:",
    b"\x00",
    b"\xff",
    b"\xc3\xa9",
    b"99999999999999999999",
    b"-1",
    b"Content-Length: 5\r\n",
    b"Via: SIP/2.0/UDP h\r\n",
    b"SIP/2.0",
    b";branch=z9hG4bK",
    b"Digest ",
    b"*",
];

/// `SIP_FUZZ_ITERATIONS` and `SIP_FUZZ_SEED` let a longer local run explore further.
fn knobs(default_iterations: usize, default_seed: u64) -> (usize, u64) {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    (
        var("SIP_FUZZ_ITERATIONS").map_or(default_iterations, |v: u64| v as usize),
        var("SIP_FUZZ_SEED").unwrap_or(default_seed),
    )
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/torture");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(5) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next() as u8;
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            2 if !data.is_empty() => {
                let end = (at + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 if !data.is_empty() => {
                let start = rng.below(data.len());
                let end = (start + rng.below(32)).min(data.len());
                let copy: Vec<u8> = data[start..end].to_vec();
                data.splice(at..at, copy);
            }
            _ => data.truncate(at),
        }
    }
    data
}

/// What the `parse_datagram` fuzz target checks.
fn check_datagram(data: &[u8]) {
    let message = match parse_datagram(data) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.disposition();
            if let Some(h) = e.headers() {
                let _ = sip::Response::for_headers(h, sip::StatusCode::BAD_REQUEST).to_bytes();
            }
            return;
        }
    };
    let h = message.headers();
    let _ = (h.vias(), h.top_via(), h.from(), h.to(), h.call_id(), h.cseq());
    let _ = (h.max_forwards(), h.expires(), h.contacts(), h.routes(), h.record_routes());
    let _ = (h.content_type(), h.require(), h.supported(), h.allow());
    for v in h.get_all(&HeaderName::Authorization) {
        let _ = v.parse::<sip::auth::Credentials>();
    }
    match &message {
        Message::Request(r) => {
            let _ = (sip::check_request(r), sip::check_register(r));
        }
        Message::Response(r) => {
            let _ = sip::check_response(r);
        }
    }
    let bytes = message.to_bytes();
    let mut again = parse_datagram(&bytes).unwrap_or_else(|e| {
        panic!("canonical output does not parse ({e}):\n{}", String::from_utf8_lossy(&bytes))
    });
    let mut original = message;
    original.headers_mut().remove(&HeaderName::ContentLength);
    again.headers_mut().remove(&HeaderName::ContentLength);
    assert_eq!(original, again);
}

fn frame_messages(chunks: &[&[u8]]) -> Vec<Message> {
    let mut framer = Framer::default();
    let mut out = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(m))) => out.push(m),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) if framer.is_broken() => return out,
                Err(_) => {}
            }
        }
    }
    out
}

#[test]
fn mutated_torture_messages_never_panic_and_round_trip() {
    let corpus = corpus();
    let (iterations, seed) = knobs(20_000, 0x0005_EED0_F51F);
    let mut rng = Rng(seed);
    for iteration in 0..iterations {
        let base = &corpus[rng.below(corpus.len())];
        let data = mutate(&mut rng, base);
        let result = std::panic::catch_unwind(|| check_datagram(&data));
        assert!(result.is_ok(), "iteration {iteration} failed on {:?}", String::from_utf8_lossy(&data));
    }
}

#[test]
fn framing_does_not_depend_on_how_the_stream_is_split() {
    let corpus = corpus();
    let (iterations, seed) = knobs(3_000, 0xF4A3E);
    let mut rng = Rng(seed);
    for iteration in 0..iterations {
        let mut stream = Vec::new();
        for _ in 0..=rng.below(3) {
            let base = &corpus[rng.below(corpus.len())];
            let data = if rng.below(2) == 0 { base.clone() } else { mutate(&mut rng, base) };
            stream.extend_from_slice(&data);
        }
        let size = rng.below(40) + 1;
        let chunks: Vec<&[u8]> = stream.chunks(size).collect();
        assert_eq!(
            frame_messages(&[&stream]),
            frame_messages(&chunks),
            "iteration {iteration}, chunk size {size}"
        );
    }
}

/// Feeds an endpoint a storm of mangled requests and responses, answers every request the
/// way a busy TU might, and checks that nothing panics and every transaction ends.
#[test]
fn endpoint_survives_mangled_traffic_and_leaks_no_transactions() {
    use sip::transaction::{Endpoint, EndpointConfig, Event, Peer};
    use std::time::{Duration, Instant};

    let corpus = corpus();
    let (iterations, seed) = knobs(3_000, 0xE4D9);
    let mut rng = Rng(seed);
    let mut ep = Endpoint::new(EndpointConfig::default(), {
        let mut s = seed;
        Box::new(move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            s
        })
    });
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut now = start;
    let transports = [sip::Transport::Udp, sip::Transport::Tcp];
    for _ in 0..iterations {
        now += Duration::from_millis(rng.below(50) as u64);
        let base = &corpus[rng.below(corpus.len())];
        let data = if rng.below(3) == 0 { base.clone() } else { mutate(&mut rng, base) };
        let peer = Peer {
            transport: transports[rng.below(2)].clone(),
            addr: format!("192.0.2.{}:5060", rng.below(4) + 1).parse().unwrap(),
            connection: None,
        };
        ep.handle_datagram(now, peer, &data);
        if rng.below(4) == 0 {
            ep.handle_timeout(now);
        }
        while ep.poll_transmit().is_some() {}
        while let Some(event) = ep.poll_event() {
            if let Event::Request { transaction, request, .. } = event {
                let status = [100, 180, 200, 404, 486, 500][rng.below(6)];
                let mut response =
                    sip::Response::for_request(&request, sip::StatusCode::new(status).unwrap());
                response.set_to_tag("t");
                let _ = ep.respond(now, transaction, response);
                if status < 200 {
                    let mut last = sip::Response::for_request(&request, sip::StatusCode::NOT_FOUND);
                    last.set_to_tag("t");
                    let _ = ep.respond(now, transaction, last);
                }
            }
        }
    }
    // Every transaction has a final response or none was ever pending: all must end.
    let end = now + Duration::from_secs(120);
    while let Some(at) = ep.poll_timeout() {
        if at > end {
            break;
        }
        ep.handle_timeout(at);
        while ep.poll_transmit().is_some() {}
        while ep.poll_event().is_some() {}
    }
    assert_eq!(ep.transaction_count(), 0, "{ep:?}");
    assert_eq!(ep.poll_timeout(), None);
}
