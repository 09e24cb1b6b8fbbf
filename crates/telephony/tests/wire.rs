//! The SIP transports on real sockets: the 49 RFC 4475 torture messages over UDP and TCP
//! against the running driver (port 0, loopback), each followed by a good OPTIONS that must
//! still be answered; CRLF keep-alives, size and connection limits.

use std::net::SocketAddr;
use std::time::Duration;

use sip::{Frame, Framer, Message, Response};
use telephony::{SipConfig, StreamLimits, Telephony};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

/// What the server must do with a torture message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Status(u16),
    Silence,
}
use Expect::{Silence, Status};

/// An INVITE from an address inside no trunk's CIDRs.
const INVITE_FROM_NOWHERE: u16 = 403;
/// A REGISTER without credentials: a Digest challenge.
const REGISTER_CHALLENGE: u16 = 401;

/// (file, expectation over UDP, expectation over TCP when it differs).
fn table() -> Vec<(&'static str, Expect, Option<Expect>)> {
    vec![
        // RFC 4475 §3.1.1: valid messages get the application's answer.
        // wsinv's To carries a tag: it claims to be inside a dialog, and no call owns one (§12.2.2).
        ("wsinv", Status(481), None),
        ("intmeth", Status(501), None),
        ("esc01", Status(INVITE_FROM_NOWHERE), None),
        ("escnull", Status(REGISTER_CHALLENGE), None),
        ("esc02", Status(501), None),
        ("lwsdisp", Status(200), None),
        ("longreq", Status(INVITE_FROM_NOWHERE), None),
        ("dblreq", Status(REGISTER_CHALLENGE), None),
        ("semiuri", Status(200), None),
        ("transports", Status(200), None),
        ("mpart01", Status(405), None),
        ("unreason", Silence, None),
        ("noreason", Silence, None),
        // §3.1.2: invalid messages.
        ("badinv01", Status(400), None),
        // On a stream the announced body never arrives: the server waits, then the test closes.
        ("clerr", Status(400), Some(Silence)),
        ("ncl", Status(400), None),
        ("scalar02", Status(400), None),
        ("scalarlg", Silence, None),
        ("quotbal", Status(400), None),
        ("ltgtruri", Status(400), None),
        ("lwsruri", Status(400), None),
        ("lwsstart", Status(400), None),
        ("trws", Status(400), None),
        ("escruri", Status(400), None),
        ("baddate", Status(INVITE_FROM_NOWHERE), None),
        ("regbadct", Status(400), None),
        ("badaspec", Status(400), None),
        // The archive's copy lacks the empty line ending the headers: a stream waits for it.
        ("baddn", Status(400), Some(Silence)),
        ("badvers", Status(505), None),
        ("mismatch01", Status(400), None),
        ("mismatch02", Status(400), None),
        ("bigcode", Silence, None),
        // §3.2.
        ("badbranch", Status(200), None),
        // §3.3.
        ("insuf", Status(400), None),
        ("unkscm", Status(416), None),
        ("novelsc", Status(416), None),
        ("unksm2", Status(400), None),
        ("bext01", Status(420), None),
        ("invut", Status(415), None),
        // Credentials in an unknown scheme: answered with a fresh Digest challenge.
        ("regaut01", Status(REGISTER_CHALLENGE), None),
        ("multi01", Status(400), None),
        ("mcl01", Status(400), None),
        ("bcast", Silence, None),
        ("zeromf", Status(200), None),
        ("cparam01", Status(REGISTER_CHALLENGE), None),
        ("cparam02", Status(REGISTER_CHALLENGE), None),
        ("regescrt", Status(REGISTER_CHALLENGE), None),
        ("sdp01", Status(406), None),
        // §3.4.
        ("inv2543", Status(INVITE_FROM_NOWHERE), None),
    ]
}

/// The message as the RFC has it, except that the branch most of them share
/// (`z9hG4bKkdjuw…`) gets a per-file prefix: several files are otherwise the same transaction
/// (same branch, sent-by and method, e.g. escnull and regescrt), and the server rightly treats
/// the second as a retransmission of the first.
fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/../sip/tests/torture/{name}.dat", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let from = b"z9hG4bKkdjuw";
    let to = format!("z9hG4bK{name}kdjuw").into_bytes();
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            out.extend_from_slice(&to);
            i += from.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn options(call_id: &str, transport: &str, local: SocketAddr) -> Vec<u8> {
    format!(
        "OPTIONS sip:probe@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:tester@127.0.0.1>;tag=t{call_id}\r\n\
         To: <sip:probe@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

async fn start(stream: StreamLimits) -> Telephony {
    let db = test_support::TestDb::new().await;
    let config = SipConfig { addr: "127.0.0.1:0".parse().unwrap(), stream, ..SipConfig::default() };
    let vault = vault::Vault::from_bytes(&[7u8; 32]);
    Telephony::start(config, db.db.clone(), vault).await.unwrap()
}

async fn udp_response(socket: &UdpSocket, wait: Duration) -> Option<Response> {
    let mut buf = vec![0u8; 65_535];
    let (n, _) = tokio::time::timeout(wait, socket.recv_from(&mut buf)).await.ok()?.ok()?;
    match sip::parse_datagram(&buf[..n]) {
        Ok(Message::Response(r)) => Some(r),
        other => panic!("server sent something that is not a response: {other:?}"),
    }
}

async fn tcp_response(stream: &mut TcpStream, framer: &mut Framer, wait: Duration) -> Option<Response> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 65_535];
    loop {
        match framer.next_frame() {
            Ok(Some(Frame::Message(Message::Response(r)))) => return Some(r),
            Ok(Some(other)) => panic!("unexpected frame {other:?}"),
            Ok(None) => {}
            Err(e) => panic!("server sent an unparsable frame: {e}"),
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        framer.push(&buf[..n]);
    }
}

fn wait_for(expect: Expect) -> Duration {
    match expect {
        Status(_) => Duration::from_secs(3),
        Silence => Duration::from_millis(300),
    }
}

#[tokio::test]
async fn torture_messages_over_udp_get_the_rfc_answer_and_the_server_keeps_answering() {
    let server = start(StreamLimits::default()).await;
    let mut failures = Vec::new();
    for (i, (name, expect, _)) in table().into_iter().enumerate() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.send_to(&load(name), server.udp_addr()).await.unwrap();
        let got = udp_response(&socket, wait_for(expect)).await.map(|r| r.status.as_u16());
        let want = match expect {
            Status(s) => Some(s),
            Silence => None,
        };
        if got != want {
            failures.push(format!("{name}: expected {want:?}, got {got:?}"));
        }
        // Whatever came before, a good OPTIONS is still answered. Skip the INVITE's
        // retransmitted final responses: match on Call-ID.
        let call_id = format!("probe-udp-{i}");
        socket
            .send_to(&options(&call_id, "UDP", socket.local_addr().unwrap()), server.udp_addr())
            .await
            .unwrap();
        let mut answered = false;
        while let Some(r) = udp_response(&socket, Duration::from_secs(3)).await {
            if r.headers.call_id().ok() == Some(call_id.as_str()) {
                assert_eq!(r.status.as_u16(), 200, "OPTIONS after {name}");
                answered = true;
                break;
            }
        }
        assert!(answered, "no answer to a good OPTIONS after {name}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(table().len(), 49);
    server.shutdown().await;
}

#[tokio::test]
async fn torture_messages_over_tcp_get_the_rfc_answer_and_the_server_keeps_answering() {
    let server = start(StreamLimits::default()).await;
    let mut failures = Vec::new();
    for (i, (name, udp, tcp)) in table().into_iter().enumerate() {
        let expect = tcp.unwrap_or(udp);
        let mut stream = TcpStream::connect(server.tcp_addr()).await.unwrap();
        let bytes = load(name);
        if i % 2 == 0 {
            stream.write_all(&bytes).await.unwrap();
        } else {
            // Odd messages trickle in one byte at a time: framing must not depend on chunking.
            for b in &bytes {
                stream.write_all(std::slice::from_ref(b)).await.unwrap();
            }
        }
        let mut framer = Framer::default();
        let got = tcp_response(&mut stream, &mut framer, wait_for(expect)).await.map(|r| r.status.as_u16());
        let want = match expect {
            Status(s) => Some(s),
            Silence => None,
        };
        if got != want {
            failures.push(format!("{name}: expected {want:?}, got {got:?}"));
        }
        drop(stream);
        let mut probe = TcpStream::connect(server.tcp_addr()).await.unwrap();
        let call_id = format!("probe-tcp-{i}");
        probe.write_all(&options(&call_id, "TCP", probe.local_addr().unwrap())).await.unwrap();
        let mut framer = Framer::default();
        let r = tcp_response(&mut probe, &mut framer, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("no answer to a good OPTIONS after {name}"));
        assert_eq!(r.status.as_u16(), 200, "OPTIONS after {name}");
        assert_eq!(r.headers.call_id().unwrap(), call_id);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    server.shutdown().await;
}

#[tokio::test]
async fn options_over_udp_carries_received_and_rport_and_tcp_reuses_the_connection() {
    let server = start(StreamLimits::default()).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The Via names an address the packet did not come from.
    let request = String::from_utf8(options("via-1", "UDP", "192.0.2.1:5999".parse().unwrap())).unwrap();
    socket.send_to(request.as_bytes(), server.udp_addr()).await.unwrap();
    let r = udp_response(&socket, Duration::from_secs(3)).await.unwrap();
    assert_eq!(r.status.as_u16(), 200);
    let via = r.headers.top_via().unwrap();
    assert_eq!(via.received(), Some("127.0.0.1".parse().unwrap()));
    assert_eq!(via.rport(), Some(Some(socket.local_addr().unwrap().port())));
    assert!(r.headers.get(&sip::HeaderName::Allow).unwrap().contains("REGISTER"));
    // OPTIONS are answered statelessly; a retransmission gets the very same To tag.
    socket.send_to(request.as_bytes(), server.udp_addr()).await.unwrap();
    let again = udp_response(&socket, Duration::from_secs(3)).await.unwrap();
    assert_eq!(again.headers.to().unwrap().tag(), r.headers.to().unwrap().tag());
    assert!(r.headers.to().unwrap().tag().is_some());

    // Several requests on one connection, each answered on it; a CRLF ping gets a pong.
    let mut stream = TcpStream::connect(server.tcp_addr()).await.unwrap();
    let mut framer = Framer::default();
    for i in 0..3 {
        let call_id = format!("reuse-{i}");
        stream.write_all(&options(&call_id, "TCP", stream.local_addr().unwrap())).await.unwrap();
        let r = tcp_response(&mut stream, &mut framer, Duration::from_secs(3)).await.unwrap();
        assert_eq!(r.headers.call_id().unwrap(), call_id);
    }
    stream.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(3), stream.read_exact(&mut pong)).await.unwrap().unwrap();
    assert_eq!(&pong, b"\r\n");
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_stream_messages_get_413_and_the_connection_closes() {
    let server = start(StreamLimits::default()).await;
    let mut stream = TcpStream::connect(server.tcp_addr()).await.unwrap();
    let head = String::from_utf8(options("big-1", "TCP", stream.local_addr().unwrap())).unwrap();
    let head = head.replace("Content-Length: 0", "Content-Type: application/sdp\r\nContent-Length: 100000");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut framer = Framer::default();
    let r = tcp_response(&mut stream, &mut framer, Duration::from_secs(3)).await.unwrap();
    assert_eq!(r.status.as_u16(), 413);
    // Then the server closes: reads end.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_per_address_limit_are_refused() {
    let limits = StreamLimits { max_connections_per_ip: 2, ..StreamLimits::default() };
    let server = start(limits).await;
    let mut kept = Vec::new();
    for i in 0..2 {
        let mut s = TcpStream::connect(server.tcp_addr()).await.unwrap();
        let call_id = format!("limit-{i}");
        s.write_all(&options(&call_id, "TCP", s.local_addr().unwrap())).await.unwrap();
        let mut framer = Framer::default();
        assert!(tcp_response(&mut s, &mut framer, Duration::from_secs(3)).await.is_some());
        kept.push(s);
    }
    let mut third = TcpStream::connect(server.tcp_addr()).await.unwrap();
    let _ = third.write_all(&options("limit-3", "TCP", third.local_addr().unwrap())).await;
    let mut framer = Framer::default();
    assert!(tcp_response(&mut third, &mut framer, Duration::from_secs(2)).await.is_none());
    // Closing one frees a slot.
    drop(kept.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = TcpStream::connect(server.tcp_addr()).await.unwrap();
    again.write_all(&options("limit-4", "TCP", again.local_addr().unwrap())).await.unwrap();
    let mut framer = Framer::default();
    assert!(tcp_response(&mut again, &mut framer, Duration::from_secs(3)).await.is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn ipv6_is_served() {
    let db = test_support::TestDb::new().await;
    let config = SipConfig { addr: "[::1]:0".parse().unwrap(), ..SipConfig::default() };
    let server = Telephony::start(config, db.db.clone(), vault::Vault::from_bytes(&[7u8; 32])).await.unwrap();
    let socket = UdpSocket::bind("[::1]:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    socket.send_to(&options("v6-1", "UDP", local), server.udp_addr()).await.unwrap();
    let r = udp_response(&socket, Duration::from_secs(3)).await.unwrap();
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.headers.top_via().unwrap().rport(), Some(Some(local.port())));
    server.shutdown().await;
}
